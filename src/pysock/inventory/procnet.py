"""The /proc/net tables: the fallback source, and quick look-ups for error messages."""

from __future__ import annotations

# _socket, the C module socket.py wraps, has all this code uses: socket.py itself
# (its IntEnum conversions, selectors) costs about 2.5 ms of a 30 ms listing
import _socket
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


def listening(proto: str = "tcp") -> Iterator[tuple[int, str, int]]:
    """(port, local address in /proc hex, inode) of every socket bound and waiting
    (TCP listening, UDP bound and unconnected), in one read of each table."""
    state = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    for table in (f"/proc/net/{proto}", f"/proc/net/{proto}6"):
        for cols in _rows(table):
            if len(cols) > 9 and cols[3] == state:
                hex_addr, _, hex_port = cols[1].rpartition(":")
                yield int(hex_port, 16), hex_addr, int(cols[9])


def listening_inodes(port: int, proto: str = "tcp") -> list[tuple[str, int]]:
    """(local address in /proc hex, inode) of sockets bound and waiting on port."""
    return [(hex_addr, inode) for found, hex_addr, inode in listening(proto) if found == port]


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
    af = _socket.AF_INET if family == 4 else _socket.AF_INET6

    def decode(text: str) -> str:
        addr = cache.get(text)
        if addr is None:
            words = [int(text[i:i + 8], 16) for i in range(0, len(text), 8)]
            addr = cache[text] = _socket.inet_ntop(af, struct.pack(f"={len(words)}I", *words))
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


# netlink protocol numbers as ss names them (ss's nl_proto_n2a)
NETLINK_NAMES = {0: "rtnl", 1: "unused", 2: "usersock", 3: "fw", 4: "tcpdiag", 5: "nflog",
                 6: "xfrm", 7: "selinux", 8: "iscsi", 9: "audit", 10: "fiblookup",
                 11: "connector", 12: "nft", 13: "ip6fw", 14: "dec-rt", 15: "uevent",
                 16: "genl", 18: "scsi-trans", 19: "ecryptfs", 20: "rdma", 21: "crypto",
                 22: "smc"}
# ethertypes of packet sockets (linux/if_ether.h)
ETHERTYPES = {0x0003: "all", 0x0800: "ip", 0x0806: "arp", 0x86DD: "ipv6", 0x8100: "802.1q",
              0x88CC: "lldp", 0x888E: "eapol"}
PACKET_TYPES = {2: "dgram", 3: "raw"}


def netlink_sockets() -> Iterator[SocketRecord]:
    """/proc/net/netlink: protocol and port id (0: the kernel's own), queues, inode.
    Netlink sockets have no connection state; ss shows them as UNCONN, so do we."""
    for line in _table_lines("/proc/net/netlink"):
        cols = line.split()
        if len(cols) < 10:
            continue
        protocol, portid = int(cols[1]), int(cols[2])
        yield SocketRecord("netlink", 0, CLOSE, int(cols[4]), int(cols[5]),
                           NETLINK_NAMES.get(protocol, str(protocol)), portid, None, None,
                           int(cols[9]))


def packet_sockets() -> Iterator[SocketRecord]:
    """/proc/net/packet: type, ethertype, interface, receive queue, owner uid, inode."""
    names: dict[int, str] = {}
    for line in _table_lines("/proc/net/packet"):
        cols = line.split()
        if len(cols) < 9:
            continue
        ethertype, ifindex = int(cols[3], 16), int(cols[4])
        if ifindex and ifindex not in names:
            try:
                names[ifindex] = _socket.if_indextoname(ifindex)
            except OSError:
                names[ifindex] = str(ifindex)
        yield SocketRecord("packet", 0, CLOSE, int(cols[6]), 0,
                           ETHERTYPES.get(ethertype, f"0x{ethertype:04x}"), None, None, None,
                           int(cols[8]), int(cols[7]), path=names.get(ifindex, "*"),
                           unix_type=PACKET_TYPES.get(int(cols[2]), cols[2]))


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


def decode_address(hex_addr: str) -> str:
    """A /proc/net address (host-order 32-bit words, IPv4 or IPv6) as text."""
    decode = _DECODERS.get(len(hex_addr))
    if decode is None:
        decode = _DECODERS[len(hex_addr)] = _addr_decoder(4 if len(hex_addr) == 8 else 6)
    return decode(hex_addr)


_DECODERS: dict = {}  # hex length -> its family's cached decoder


def listener_addresses(port: int, proto: str = "tcp") -> list[str]:
    """The local addresses something listens on at port ('0.0.0.0', '::', '127.0.0.1'...)."""
    return [decode_address(hex_addr) for hex_addr, _ in listening_inodes(port, proto)]
