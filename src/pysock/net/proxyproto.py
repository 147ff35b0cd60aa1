"""HAProxy's PROXY protocol header (v1 text, v2 binary), which forward sends to TO
first, so a backend behind it learns the real client's address and port.

The addresses are the accepted socket's: the client (source) and the address it
connected to (destination). A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d;
they are sent as the IPv4 addresses they are, as HAProxy does. A Unix client has
no address a v1 line can carry (PROXY UNKNOWN); v2 sends its socket paths."""

from __future__ import annotations

import ipaddress
import socket
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_PROXY = 0x21  # version 2, command PROXY
_V2_FAMILY = {(socket.AF_INET, socket.SOCK_STREAM): 0x11, (socket.AF_INET6, socket.SOCK_STREAM): 0x21,
              (socket.AF_INET, socket.SOCK_DGRAM): 0x12, (socket.AF_INET6, socket.SOCK_DGRAM): 0x22,
              (socket.AF_UNIX, socket.SOCK_STREAM): 0x31}
UNIX_PATH = 108


def header(version: int, sock: socket.socket) -> bytes:
    """The PROXY header describing the accepted socket sock."""
    src, dst = _addresses(sock)
    if version == 1:
        return _v1(src, dst)
    if version == 2:
        return _v2(sock, src, dst)
    raise ValueError(f"PROXY protocol version {version}")


def _addresses(sock: socket.socket):
    if sock.family == socket.AF_UNIX:
        return sock.getpeername(), sock.getsockname()
    src, dst = sock.getpeername(), sock.getsockname()
    return (_plain(src[0]), src[1]), (_plain(dst[0]), dst[1])


def _plain(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _v1(src, dst) -> bytes:
    if not isinstance(src, tuple) or src[0].version != dst[0].version:
        return b"PROXY UNKNOWN\r\n"
    proto = "TCP4" if src[0].version == 4 else "TCP6"
    return f"PROXY {proto} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def _v2(sock: socket.socket, src, dst) -> bytes:
    if sock.family == socket.AF_UNIX:
        body = _unix_path(src) + _unix_path(dst)
        family = _V2_FAMILY[(socket.AF_UNIX, socket.SOCK_STREAM)]
    else:
        af = socket.AF_INET if src[0].version == 4 else socket.AF_INET6
        if dst[0].version != src[0].version:
            return V2_SIGNATURE + struct.pack("!BBH", V2_PROXY, 0x00, 0)  # UNSPEC
        body = src[0].packed + dst[0].packed + struct.pack("!HH", src[1], dst[1])
        family = _V2_FAMILY[(af, sock.type)]
    return V2_SIGNATURE + struct.pack("!BBH", V2_PROXY, family, len(body)) + body


def _unix_path(name) -> bytes:
    raw = name.encode() if isinstance(name, str) else bytes(name or b"")
    return raw[:UNIX_PATH].ljust(UNIX_PATH, b"\0")
