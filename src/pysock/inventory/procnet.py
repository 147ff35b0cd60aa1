"""The /proc/net tables: the fallback source, and quick look-ups for error messages."""

from __future__ import annotations

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def _rows(path: str):
    try:
        with open(path) as f:
            next(f, None)
            for line in f:
                yield line.split()
    except OSError:
        return


def _port_of(hex_addr: str) -> int:
    return int(hex_addr.rsplit(":", 1)[1], 16)


def listening_inodes(port: int, proto: str = "tcp") -> list[tuple[str, int]]:
    """(local address in /proc hex, inode) of sockets bound and waiting on port."""
    state = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    out = []
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        for cols in _rows(table):
            if len(cols) > 9 and cols[3] == state and _port_of(cols[1]) == port:
                out.append((cols[1].rsplit(":", 1)[0], int(cols[9])))
    return out


def unix_inodes(path: str) -> list[int]:
    """Inodes of listening Unix sockets bound to path (or @name)."""
    want = path
    out = []
    for cols in _rows("/proc/net/unix"):
        if len(cols) >= 8 and cols[-1] == want:
            out.append(int(cols[6]))
    return out


def _decode_addr(hex_addr: str) -> str:
    import ipaddress
    import struct
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = struct.unpack("<4I", raw)
    return str(ipaddress.IPv6Address(struct.pack(">4I", *words)))


def listener_addresses(port: int, proto: str = "tcp") -> list[str]:
    """The local addresses something listens on at port ('0.0.0.0', '::', '127.0.0.1'...)."""
    return [_decode_addr(hex_addr) for hex_addr, _ in listening_inodes(port, proto)]
