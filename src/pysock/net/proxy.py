"""Reaching a target through a proxy: SOCKS5 (RFC 1928/1929), SOCKS4 and HTTP CONNECT.

open_tunnel() connects to the proxy with endpoints.connect (so -4/-6, -s, -p,
--sockopt and -w apply to that hop), asks it for the target, and returns the
socket once the proxy says the tunnel is open: from then on it is a plain
byte stream to the target (TLS, if asked, goes on top of it). Every refusal
becomes one line naming the proxy, the target and the proxy's reason."""

from __future__ import annotations

import base64
import ipaddress
import socket
import struct
from dataclasses import dataclass, replace

from pysock.errors import NetworkError, OptionError, PysockError, UsageError
from pysock.net.address import format_sockaddr
from pysock.net.endpoints import ClientSpec, connect, os_error

DEFAULT_PORTS = {"socks5": 1080, "socks4": 1080, "http": 3128}
HANDSHAKE_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProxySpec:
    host: str
    port: int
    kind: str = "socks5"
    user: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class Tunnel:
    sock: socket.socket
    bound: str  # the proxy's own end of the tunnel, as the proxy reports it ('' if it does not)
    via: str  # the proxy's address, as connected


def parse_proxy(text: str, kind: str) -> tuple[str, int]:
    """HOST[:PORT] or [V6][:PORT]; the port defaults to the usual one for the kind."""
    from pysock.net.address import check_host, split_host_port
    if text.startswith("[") and text.endswith("]"):
        return check_host(text[1:-1]), DEFAULT_PORTS[kind]
    if text.count(":") == 1 or text.startswith("["):
        place = split_host_port(text)
        return place.host, place.port
    return check_host(text), DEFAULT_PORTS[kind]


def parse_auth(text: str, kind: str = "socks5") -> tuple[str, str | None]:
    """USER:PASS (for socks4, USER alone is the user id); SOCKS5 carries each in at
    most 255 bytes (RFC 1929)."""
    user, sep, password = text.partition(":")
    if not user:
        raise OptionError("proxy_auth", f"'{text}': expected USER:PASS")
    if kind == "socks5" and max(len(user.encode()), len(password.encode())) > 255:
        raise OptionError("proxy_auth", ": user name and password are at most 255 bytes each")
    return user, (password if sep else None)


def open_tunnel(proxy: ProxySpec, target: ClientSpec) -> Tunnel:
    """A socket connected through `proxy` to target.host port target.port."""
    hop = replace(target, host=proxy.host, port=proxy.port)
    try:
        sock = connect(hop)
    except PysockError as exc:
        exc.fact = f"proxy: {exc.fact}"
        raise
    where = _where(proxy)
    sock.settimeout(target.timeout or HANDSHAKE_TIMEOUT)
    try:
        bound = _HANDSHAKES[proxy.kind](sock, proxy, target, where)
        sock.settimeout(None)
        return Tunnel(sock, bound, format_sockaddr(sock.getpeername()))
    except TimeoutError:
        sock.close()
        raise NetworkError(f"{where} did not answer within "
                           f"{target.timeout or HANDSHAKE_TIMEOUT:g} s") from None
    except OSError as exc:
        sock.close()
        raise os_error(exc, "talk to", where) from None
    except BaseException:
        sock.close()
        raise


def _where(proxy: ProxySpec) -> str:
    host = f"[{proxy.host}]" if ":" in proxy.host else proxy.host
    return f"{proxy.kind} proxy {host}:{proxy.port}"


def _target_name(target: ClientSpec) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}"


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _recv_exact(sock: socket.socket, n: int, where: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise NetworkError(f"{where} closed the connection during the handshake")
        data += chunk
    return data


# ---- SOCKS5 -----------------------------------------------------------------

_SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by the proxy's rules",
    3: "network unreachable (from the proxy)",
    4: "host unreachable (from the proxy)",
    5: "connection refused by the target",
    6: "TTL expired",
    7: "command not supported by the proxy",
    8: "address type not supported by the proxy",
}


def _socks5(sock: socket.socket, proxy: ProxySpec, target: ClientSpec, where: str) -> str:
    methods = [0x00] + ([0x02] if proxy.user is not None else [])
    sock.sendall(bytes([5, len(methods), *methods]))
    version, method = _recv_exact(sock, 2, where)
    if version != 5:
        raise NetworkError(f"{where} does not speak SOCKS5 (it answered version {version})")
    if method == 0xFF:
        raise NetworkError(f"{where} accepts none of our authentication methods",
                           advice=None if proxy.user is not None else "proxy_may_need_auth")
    if method == 0x02:
        _socks5_login(sock, proxy, where)
    elif method != 0x00:
        raise NetworkError(f"{where} chose an authentication method pysock does not offer "
                           f"({method})")
    sock.sendall(b"\x05\x01\x00" + _socks5_address(target) + struct.pack("!H", target.port))
    version, reply, _, atyp = _recv_exact(sock, 4, where)
    if reply != 0:
        why = _SOCKS5_REPLIES.get(reply, f"reply code {reply}")
        raise NetworkError(f"{where} could not connect to {_target_name(target)}: {why}")
    return _socks5_bound(sock, atyp, where)


def _socks5_login(sock: socket.socket, proxy: ProxySpec, where: str) -> None:
    user = proxy.user.encode()
    password = (proxy.password or "").encode()
    if len(user) > 255 or len(password) > 255:  # parse_auth refuses these first
        raise UsageError("the proxy's user name and password are at most 255 bytes each")
    sock.sendall(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
    _, status = _recv_exact(sock, 2, where)
    if status != 0:
        raise NetworkError(f"{where} refused the user name or password",
                           advice="proxy_auth_refused")


def _socks5_address(target: ClientSpec) -> bytes:
    """Names go to the proxy to resolve (socks5h); -n insists on a numeric target."""
    literal = _literal(target.host)
    if literal is None:
        if target.numeric:
            raise UsageError(f"'{target.host}' is not a numeric address",
                             advice="numeric_names")
        name = target.host.encode("idna")
        if len(name) > 255:
            raise UsageError(f"host name '{target.host}' is too long for SOCKS5")
        return bytes([3, len(name)]) + name
    return (b"\x01" if literal.version == 4 else b"\x04") + literal.packed


def _socks5_bound(sock: socket.socket, atyp: int, where: str) -> str:
    if atyp == 1:
        host = str(ipaddress.IPv4Address(_recv_exact(sock, 4, where)))
    elif atyp == 4:
        host = f"[{ipaddress.IPv6Address(_recv_exact(sock, 16, where))}]"
    elif atyp == 3:
        size = _recv_exact(sock, 1, where)[0]
        host = _recv_exact(sock, size, where).decode("idna", "replace")
    else:
        raise NetworkError(f"{where} sent an address of unknown type {atyp}")
    port = struct.unpack("!H", _recv_exact(sock, 2, where))[0]
    return f"{host}:{port}"


# ---- SOCKS4 -----------------------------------------------------------------

_SOCKS4_REPLIES = {
    91: "request rejected or failed",
    92: "rejected: the proxy could not reach our identd",
    93: "rejected: identd reported a different user id",
}


def _socks4(sock: socket.socket, proxy: ProxySpec, target: ClientSpec, where: str) -> str:
    address = _socks4_address(target)
    user = (proxy.user or "").encode()
    sock.sendall(struct.pack("!BBH", 4, 1, target.port) + address + user + b"\x00")
    version, code, port = struct.unpack("!BBH", _recv_exact(sock, 4, where))
    bound = socket.inet_ntoa(_recv_exact(sock, 4, where))
    if version != 0:
        raise NetworkError(f"{where} does not speak SOCKS4 (reply version {version})")
    if code != 90:
        why = _SOCKS4_REPLIES.get(code, f"reply code {code}")
        raise NetworkError(f"{where} could not connect to {_target_name(target)}: {why}")
    return f"{bound}:{port}"


def _socks4_address(target: ClientSpec) -> bytes:
    """SOCKS4 carries an IPv4 address only: names are resolved here."""
    literal = _literal(target.host)
    if literal is not None:
        if literal.version != 4:
            raise UsageError("SOCKS4 carries IPv4 addresses only", advice="socks4_v4_only")
        return literal.packed
    from pysock.net.address import resolve
    found = resolve(target.host, target.port, family=4, numeric=target.numeric)
    return socket.inet_aton(found[0].sockaddr[0])


# ---- HTTP CONNECT -----------------------------------------------------------

MAX_HEADER = 65536


def _http(sock: socket.socket, proxy: ProxySpec, target: ClientSpec, where: str) -> str:
    authority = _target_name(target)
    request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.user is not None:
        token = base64.b64encode(f"{proxy.user}:{proxy.password or ''}".encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    sock.sendall((request + "\r\n").encode())
    status_line = _read_head(sock, where).split("\r\n", 1)[0]
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise NetworkError(f"{where} did not answer in HTTP: {status_line[:80]!r}")
    code = int(parts[1])
    if 200 <= code < 300:
        return ""
    if code == 407:
        raise NetworkError(f"{where} refused CONNECT to {authority}: {status_line}",
                           advice="proxy_auth_wrong" if proxy.user is not None
                           else "proxy_auth_needed")
    raise NetworkError(f"{where} refused CONNECT to {authority}: {status_line}"
                       f"{_http_hint(code)}")


def _http_hint(code: int) -> str:
    if code == 403:
        return " (the proxy forbids this target)"
    if code in (502, 503, 504):
        return " (the proxy could not reach the target)"
    return ""


def _read_head(sock: socket.socket, where: str) -> str:
    """The response head, read byte by byte so not one byte of the tunnel is taken."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise NetworkError(f"{where} closed the connection before answering CONNECT")
        head += byte
        if len(head) > MAX_HEADER:
            raise NetworkError(f"{where} sent an answer larger than {MAX_HEADER} bytes")
    return head.decode("latin-1")


_HANDSHAKES = {"socks5": _socks5, "socks4": _socks4, "http": _http}
