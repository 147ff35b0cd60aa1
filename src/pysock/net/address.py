"""What users type as a place, turned into specs: host/port, port lists, CIDR
targets, Unix paths and @abstract names; and name resolution."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from pysock.errors import NetworkError, UsageError

MAX_PORT = 65535
MAX_TARGET_HOSTS = 65536  # a /16; anything larger is almost always a typo
UNIX_PATH_MAX = 108  # sizeof(sun_path), including the terminating NUL

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")
_DOTTED = re.compile(r"^[0-9.]+$")
_SERVICE = re.compile(r"^[A-Za-z][A-Za-z0-9_+.-]*$")

FAMILIES = {None: socket.AF_UNSPEC, 4: socket.AF_INET, 6: socket.AF_INET6}


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int


@dataclass(frozen=True)
class UnixAddress:
    """A filesystem path, or an abstract name (typed as @name)."""

    name: str
    abstract: bool

    @property
    def sockaddr(self) -> str | bytes:
        return b"\0" + self.name.encode() if self.abstract else self.name

    def __str__(self) -> str:
        return "@" + self.name if self.abstract else self.name


@dataclass(frozen=True)
class Resolved:
    family: int
    sockaddr: tuple

    @property
    def host(self) -> str:
        return self.sockaddr[0]

    @property
    def port(self) -> int:
        return self.sockaddr[1]

    def __str__(self) -> str:
        return format_sockaddr(self.sockaddr)


def format_sockaddr(sockaddr) -> str:
    """127.0.0.1:80, [::1]:80, a Unix path or @abstract."""
    if isinstance(sockaddr, (str, bytes)):
        if isinstance(sockaddr, bytes):
            return "@" + sockaddr[1:].decode(errors="replace") if sockaddr[:1] == b"\0" else sockaddr.decode()
        return sockaddr or "(unnamed)"
    host, port = _unmapped(sockaddr[0]), sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _unmapped(host: str) -> str:
    """A dual-stack listener's IPv4 peer (::ffff:a.b.c.d) is shown as a.b.c.d, as ncat does."""
    if host[:7].lower() == "::ffff:" and "." in host:
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        return str(mapped) if mapped else host
    return host


# ---- ports ------------------------------------------------------------------


def parse_port(text: str, *, proto: str = "tcp", allow_zero: bool = False) -> int:
    """A port number or a service name from the system services database."""
    text = str(text).strip()
    if not text:
        raise UsageError("empty port")
    if text.isascii() and text.isdigit():
        port = int(text)
        low = 0 if allow_zero else 1
        if not low <= port <= MAX_PORT:
            raise UsageError(f"port {port} is out of range ({low}-{MAX_PORT})")
        return port
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise UsageError(f"port {text} is out of range (1-{MAX_PORT})")
    if not _SERVICE.match(text):
        raise UsageError(f"'{text}' is not a port number or service name")
    try:
        return socket.getservbyname(text, proto)
    except (OSError, UnicodeError):
        raise UsageError(f"'{text}' is neither a port number nor a known {proto} service name") from None


def _port_range(part: str, proto: str) -> range:
    if "-" not in part[1:] and not part.startswith("-"):
        port = parse_port(part, proto=proto)
        return range(port, port + 1)
    lo_text, _, hi_text = part.partition("-")
    lo = parse_port(lo_text, proto=proto) if lo_text else 1
    hi = parse_port(hi_text, proto=proto) if hi_text else MAX_PORT
    if lo > hi:
        raise UsageError(f"port range '{part}' runs backwards (write {hi}-{lo})")
    return range(lo, hi + 1)


def parse_port_list(text: str, *, proto: str = "tcp") -> list[int]:
    """'22,80,8000-8100', '-' (all), '-1024', '60000-' -> sorted unique ports."""
    text = text.strip()
    if not text:
        raise UsageError("empty port list")
    if text == "-":
        return list(range(1, MAX_PORT + 1))
    ports: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"empty item in port list '{text}'")
        ports.update(_port_range(part, proto))
    return sorted(ports)


def parse_port_spec(text: str, *, default_proto: str = "tcp") -> dict[str, list[int]]:
    """nmap's per-protocol lists: 'U:53,T:80,443' -> {'udp': [53], 'tcp': [80, 443]}.

    Items without a prefix belong to the protocol of the last prefix seen, or
    to default_proto before any prefix."""
    text = text.strip()
    if text == "-":
        return {default_proto: parse_port_list("-")}
    prefixes = {"T": "tcp", "U": "udp"}
    out: dict[str, set[int]] = {}
    proto = default_proto
    for part in text.split(","):
        part = part.strip()
        if len(part) > 1 and part[1] == ":":
            if part[0].upper() not in prefixes:
                raise UsageError(f"unknown protocol prefix '{part[:2]}' in '{text}' (use T: or U:)")
            proto, part = prefixes[part[0].upper()], part[2:]
        if not part:
            raise UsageError(f"empty item in port list '{text}'")
        out.setdefault(proto, set()).update(_port_range(part, proto))
    return {p: sorted(v) for p, v in out.items()}


# ---- hosts ------------------------------------------------------------------


def check_host(text: str) -> str:
    """Reject what can be neither an IP address nor a host name."""
    if not text:
        raise UsageError("empty host")
    if _DOTTED.match(text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            raise UsageError(f"'{text}' is not a valid IPv4 address") from None
        return text
    if ":" in text:
        host, pct, zone = text.partition("%")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"'{text}' is not a valid IPv6 address") from None
        if pct:
            _check_zone(text, zone)
        return text
    if not _HOSTNAME.match(text) or ".." in text:
        raise UsageError(f"'{text}' is not a valid host name or address")
    return text


def _check_zone(text: str, zone: str) -> None:
    """The %zone of a scoped address names an interface (or its index) that exists."""
    if zone.isascii() and zone.isdigit():
        return
    try:
        socket.if_nametoindex(zone)
    except (OSError, ValueError, UnicodeError):
        raise UsageError(f"'{text}': no such interface '{zone}'") from None


def unbracket(text: str) -> str:
    """'[::1]' -> '::1'; a bracket without its partner is refused, wherever it is."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "[" in text or "]" in text:
        missing = "']' after" if "[" in text else "'[' before"
        raise UsageError(f"'{text}': missing {missing} the IPv6 address")
    return text


def split_host_port(text: str, *, allow_zero: bool = False, proto: str = "tcp") -> HostPort:
    """'host:port', '[v6]:port' -> HostPort (the one-argument form)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise UsageError(f"'{text}': missing ']' after the IPv6 address")
        if not rest.startswith(":") or len(rest) < 2:
            raise UsageError(f"'{text}': expected [ADDRESS]:PORT")
        return HostPort(check_host(host), parse_port(rest[1:], allow_zero=allow_zero, proto=proto))
    if text.count(":") != 1:
        if text.count(":") > 1:
            raise UsageError(f"'{text}': write IPv6 addresses with a port as [ADDRESS]:PORT")
        raise UsageError(f"'{text}': expected HOST PORT or HOST:PORT")
    host, _, port = text.partition(":")
    return HostPort(check_host(host), parse_port(port, allow_zero=allow_zero, proto=proto))


def host_port(args: tuple[str, ...] | list[str], proto: str = "tcp") -> HostPort:
    """The positional place of connect/udp: HOST PORT, HOST:PORT or [V6]:PORT."""
    if len(args) == 1:
        return split_host_port(args[0], proto=proto)
    if len(args) == 2:
        return HostPort(check_host(unbracket(args[0])), parse_port(args[1], proto=proto))
    raise UsageError("expected HOST PORT (or HOST:PORT)")


def bind_place(args: tuple[str, ...] | list[str], proto: str = "tcp") -> tuple[str | None, int]:
    """The positional place of listen: [ADDRESS] PORT, or ADDRESS:PORT. Port 0 allowed."""
    if len(args) == 1:
        if ":" in args[0]:
            place = split_host_port(args[0], allow_zero=True, proto=proto)
            return place.host, place.port
        return None, parse_port(args[0], allow_zero=True, proto=proto)
    if len(args) == 2:
        return check_host(unbracket(args[0])), parse_port(args[1], allow_zero=True, proto=proto)
    raise UsageError("expected [ADDRESS] PORT")


def parse_unix(text: str) -> UnixAddress:
    """A Unix socket path, or @name for the abstract namespace."""
    if not text:
        raise UsageError("empty Unix socket path")
    abstract = text.startswith("@")
    name = text[1:] if abstract else text
    if abstract and not name:
        raise UsageError("empty abstract socket name after '@'")
    if "\0" in name:
        raise UsageError("a Unix socket path cannot contain a NUL byte")
    size = len(name.encode()) + 1  # the NUL, or the leading zero byte of an abstract name
    if size > UNIX_PATH_MAX:
        raise UsageError(
            f"Unix socket path is {size - 1} bytes, longer than the kernel's limit of "
            f"{UNIX_PATH_MAX - 1} (use a shorter path or an @abstract name)")
    return UnixAddress(name, abstract)


def stream_place(text: str, *, bind: bool, proto: str = "tcp") -> HostPort | UnixAddress:
    """forward's FROM and TO: a Unix path (it has a '/'), an @abstract name, or an IP
    place: HOST:PORT and [V6]:PORT, and when binding PORT alone (host '' means every
    interface) or ADDRESS:PORT."""
    text = text.strip()
    if text.startswith("@") or "/" in text:
        return parse_unix(text)
    if bind and ":" not in text:
        return HostPort("", parse_port(text, allow_zero=True, proto=proto))
    if not text.startswith("[") and text.count(":") == 0:
        raise UsageError(f"'{text}': expected HOST:PORT, a Unix path (with a '/') or @name")
    return split_host_port(text, allow_zero=bind, proto=proto)


def parse_targets(text: str, *, max_hosts: int = MAX_TARGET_HOSTS) -> list[str]:
    """A scan target: an address, a CIDR block (expanded), or a name (kept)."""
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise UsageError(f"'{text}' is not a valid CIDR block") from None
        if net.num_addresses > max_hosts:
            raise UsageError(
                f"'{text}' holds {net.num_addresses} addresses, more than the limit of "
                f"{max_hosts}; scan smaller blocks")
        hosts = list(net.hosts()) if net.num_addresses > 2 else list(net)
        return [str(h) for h in hosts]
    return [check_host(unbracket(text))]


# ---- resolution -------------------------------------------------------------


def is_numeric_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve(host: str | None, port: int, *, family: int | None = None, numeric: bool = False,
            socktype: int = socket.SOCK_STREAM, passive: bool = False) -> list[Resolved]:
    """getaddrinfo with -4/-6 and -n honoured; one Resolved per distinct address."""
    af = FAMILIES[family]
    flags = socket.AI_PASSIVE if passive else 0
    if host is not None and numeric:
        if not is_numeric_host(host):
            raise UsageError(f"'{host}' is not a numeric address", advice="numeric_lookups")
        flags |= socket.AI_NUMERICHOST
    try:
        infos = socket.getaddrinfo(host, port, af, socktype, 0, flags)
    except socket.gaierror as exc:
        raise _resolution_error(host, family, exc) from None
    except UnicodeError:
        raise UsageError(f"'{host}' is not a valid host name") from None
    seen, out = set(), []
    for fam, _, _, _, sockaddr in infos:
        key = (fam, sockaddr[:2])
        if key not in seen:
            seen.add(key)
            out.append(Resolved(fam, sockaddr))
    return out


def _resolution_error(host: str | None, family: int | None, exc: socket.gaierror) -> Exception:
    if host and family and is_numeric_host(host):
        return UsageError(f"'{host}' is not an IPv{family} address")
    if exc.errno in (socket.EAI_ADDRFAMILY, socket.EAI_NODATA, socket.EAI_FAMILY) and family:
        return NetworkError(f"host '{host}' has no IPv{family} address")
    if exc.errno == socket.EAI_AGAIN:
        return NetworkError(f"could not resolve host '{host}': name server did not answer")
    return NetworkError(f"could not resolve host '{host}'")
