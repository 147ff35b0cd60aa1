"""The /proc/net tables: the fallback source, and quick look-ups for error messages."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from pysock.inventory.model import CLOSE, ESTABLISHED, LISTEN, UNIX_TYPES, SocketRecord

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


# ---- the fallback source: whole tables as SocketRecords ---------------------

_UNIX_LISTENING = 0x10000  # __SO_ACCEPTCON in the Flags column
_UNIX_CONNECTED = "03"  # SS_CONNECTED in the St column


def _table_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()[1:]
    except FileNotFoundError:
        return []


def _addr_decoder(family: int):
    """A cached decoder for the kernel's hex addresses (host-order 32-bit words)."""
    cache: dict[str, str] = {}
    af = socket.AF_INET if family == 4 else socket.AF_INET6

    def decode(text: str) -> str:
        addr = cache.get(text)
        if addr is None:
            words = [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]
            addr = cache[text] = socket.inet_ntop(af, struct.pack(f"={len(words)}I", *words))
        return addr
    return decode


def inet_sockets(proto: str, family: int) -> Iterator[SocketRecord]:
    """/proc/net/{tcp,udp,raw}[6] for the reader's network namespace."""
    decode = _addr_decoder(family)
    suffix = "6" if family == 6 else ""
    for line in _table_lines(f"/proc/net/{proto}{suffix}"):
        cols = line.split()
        if len(cols) < 10:
            continue
        local, _, lport = cols[1].partition(":")
        peer, _, pport = cols[2].partition(":")
        tx, _, rx = cols[4].partition(":")
        inode = int(cols[9])
        yield SocketRecord(proto, family, int(cols[3], 16), int(rx, 16), int(tx, 16),
                           decode(local), int(lport, 16), decode(peer), int(pport, 16),
                           inode, int(cols[7]) if inode else None)


def unix_sockets() -> Iterator[SocketRecord]:
    """/proc/net/unix: no queues and no peer here (netlink has them)."""
    for line in _table_lines("/proc/net/unix"):
        cols = line.split(None, 7)
        if len(cols) < 7:
            continue
        if int(cols[3], 16) & _UNIX_LISTENING:
            state = LISTEN
        elif cols[5] == _UNIX_CONNECTED:
            state = ESTABLISHED
        else:
            state = CLOSE
        yield SocketRecord("unix", 0, state, None, None, None, None, None, None, int(cols[6]),
                           path=cols[7] if len(cols) > 7 else None,
                           unix_type=UNIX_TYPES.get(int(cols[4], 16), cols[4]))


def sockstat() -> dict[str, dict[str, int]]:
    """/proc/net/sockstat and sockstat6: {'TCP': {'inuse': .., 'tw': ..}, 'TCP6': ...}."""
    out: dict[str, dict[str, int]] = {}
    for path in ("/proc/net/sockstat", "/proc/net/sockstat6"):
        for line in _table_lines_all(path):
            name, _, rest = line.partition(":")
            words = rest.split()
            out[name] = {k: int(v) for k, v in zip(words[::2], words[1::2]) if v.isdigit()}
    return out


def _table_lines_all(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def listener_addresses(port: int, proto: str = "tcp") -> list[str]:
    """The local addresses something listens on at port ('0.0.0.0', '::', '127.0.0.1'...)."""
    decoders = {8: _addr_decoder(4), 32: _addr_decoder(6)}
    return [decoders[len(hex_addr)](hex_addr) for hex_addr, _ in listening_inodes(port, proto)]
