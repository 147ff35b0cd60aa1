"""A small netlink sock_diag codec: the interface ss uses.

Requests and replies follow linux/netlink.h, sock_diag.h, inet_diag.h and
unix_diag.h. One dump per (protocol, family); a dump the kernel cannot do
(a diag module missing) raises Unsupported so the caller can fall back."""

from __future__ import annotations

# _socket, the C module socket.py wraps, has all this code uses: socket.py itself
# (its IntEnum conversions, selectors) costs about 2.5 ms of a 30 ms listing
import _socket
import errno
import os
import struct
from collections.abc import Iterator

from pysock.inventory.model import UNIX_TYPES, SocketRecord

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
SOCK_DESTROY = 21
NLMSG_ERROR, NLMSG_DONE = 2, 3

NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTATTR = struct.Struct("=HH")  # len, type
# inet_diag_req_v2: family, protocol, ext, raw protocol (pad), states, then the
# sockid (ports, addresses, interface, cookie) left zero for a dump.
INET_REQ = struct.Struct("=BBBBI48x")
# inet_diag_msg: family, state, timer, retrans | ports (network order, read
# apart) | src, dst | if, cookie | expires, rqueue, wqueue, uid, inode
INET_MSG = struct.Struct("=BBBB4x16s16s12xIIIII")
INET_PORTS = struct.Struct(">HH")
SOCKID_SIZE = 48  # inet_diag_sockid: ports 4, src 16, dst 16, if 4, cookie 8
# unix_diag_req: family, protocol, pad, states, ino, show, cookie
UNIX_REQ = struct.Struct("=BBHIII8x")
UNIX_MSG = struct.Struct("=BBBxI8x")  # family, type, state, pad, ino, cookie
UNIX_MSG_SIZE = 16

# inet_diag attributes (INET_DIAG_*) and the request bits that ask for them
INET_DIAG_MEMINFO, INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO = 1, 2, 4, 7
INET_DIAG_PROTOCOL = 10
INET_DIAG_REQ_BYTECODE = 1
EXT_EXTENDED = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1)) \
    | (1 << (INET_DIAG_SKMEMINFO - 1))

UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN, UNIX_DIAG_MEMINFO, UNIX_DIAG_UID = 0, 2, 4, 5, 7
UDIAG_SHOW_NAME, UDIAG_SHOW_PEER, UDIAG_SHOW_RQLEN = 0x1, 0x4, 0x10
UDIAG_SHOW_MEMINFO, UDIAG_SHOW_UID = 0x20, 0x40

PROTOCOLS = {"tcp": _socket.IPPROTO_TCP, "udp": _socket.IPPROTO_UDP, "raw": _socket.IPPROTO_RAW}
FAMILIES = {4: _socket.AF_INET, 6: _socket.AF_INET6}
TIMERS = {0: None, 1: "on", 2: "keepalive", 3: "timewait", 4: "persist"}
ALL_STATES = 0xFFFFFFFF
_RECV_SIZE = 1 << 16


class Unsupported(Exception):
    """The kernel cannot dump this kind of socket over netlink."""


class DiagSocket:
    """One NETLINK_SOCK_DIAG socket for the dumps of one run."""

    def __init__(self):
        try:
            self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        except OSError as exc:
            raise Unsupported(f"no netlink sock_diag: {os.strerror(exc.errno or 0)}") from None
        self.seq = 0
        self.buf = bytearray(_RECV_SIZE)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> DiagSocket:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def dump(self, payload: bytes) -> Iterator[tuple[memoryview, int, int]]:
        """Send one dump request; yield (buffer, start, end) of each reply's payload."""
        self.seq += 1
        header = NLMSG.pack(NLMSG.size + len(payload), SOCK_DIAG_BY_FAMILY,
                            NLM_F_REQUEST | NLM_F_DUMP, self.seq, 0)
        self.sock.send(header + payload)
        view = memoryview(self.buf)
        while True:
            size = self.sock.recv_into(self.buf)
            offset = 0
            while offset + NLMSG.size <= size:
                length, kind, _flags, seq, _pid = NLMSG.unpack_from(view, offset)
                if length < NLMSG.size:
                    return
                if seq == self.seq:
                    if kind in (NLMSG_DONE, NLMSG_ERROR):
                        # both may carry a negative errno: a dump the kernel cannot do
                        _check(view, offset, length)
                        return
                    yield view, offset + NLMSG.size, offset + length
                offset += (length + 3) & ~3


    def command(self, kind: int, payload: bytes) -> int:
        """Send one acknowledged request (not a dump); the errno it was answered with
        (0: done)."""
        self.seq += 1
        self.sock.send(NLMSG.pack(NLMSG.size + len(payload), kind, NLM_F_REQUEST | NLM_F_ACK,
                                  self.seq, 0) + payload)
        while True:
            size = self.sock.recv_into(self.buf)
            offset = 0
            while offset + NLMSG.size <= size:
                length, reply, _flags, seq, _pid = NLMSG.unpack_from(self.buf, offset)
                if length < NLMSG.size:
                    break
                if seq == self.seq and reply == NLMSG_ERROR:
                    return -struct.unpack_from("=i", self.buf, offset + NLMSG.size)[0]
                offset += (length + 3) & ~3


def _check(view: memoryview, offset: int, length: int) -> None:
    if length < NLMSG.size + 4:
        return
    code = -struct.unpack_from("=i", view, offset + NLMSG.size)[0]
    if code > 0:
        raise Unsupported("no diag module for this protocol" if code == errno.ENOENT
                          else os.strerror(code))


def _attrs(view: memoryview, start: int, end: int) -> Iterator[tuple[int, memoryview]]:
    while start + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(view, start)
        if length < RTATTR.size:
            return
        yield kind, view[start + RTATTR.size:start + length]
        start += (length + 3) & ~3


def inet_request(proto: str, family: int, states: int, extended: bool,
                 bytecode: bytes | None = None) -> bytes:
    protocol = PROTOCOLS[proto]
    ext = EXT_EXTENDED if extended else 0
    # raw_diag reads the fourth byte as the raw protocol to match; IPPROTO_RAW means any
    raw_protocol = _socket.IPPROTO_RAW if proto == "raw" else 0
    request = INET_REQ.pack(FAMILIES[family], protocol, ext, raw_protocol, states)
    if bytecode:  # INET_DIAG_REQ_BYTECODE: the kernel runs the filter during the dump
        request += RTATTR.pack(RTATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    return request


def socket_ids(diag: DiagSocket, proto: str, family: int) -> dict[int, bytes]:
    """inode -> the kernel's inet_diag_sockid (ports, addresses, interface, cookie) of
    every socket with an owner: what SOCK_DESTROY needs to find one exactly."""
    ids = {}
    for view, start, _end in diag.dump(inet_request(proto, family, ALL_STATES, False)):
        inode = INET_MSG.unpack_from(view, start)[-1]
        if inode:
            ids[inode] = bytes(view[start + 4:start + 4 + SOCKID_SIZE])
    return ids


def destroy(diag: DiagSocket, proto: str, family: int, sockid: bytes,
            raw_protocol: int | None = None) -> int:
    """SOCK_DESTROY one socket (as ss -K); the errno (0: destroyed). A raw socket is
    looked up by its IP protocol as well."""
    request = bytearray(inet_request(proto, family, ALL_STATES, False))
    request[8:8 + SOCKID_SIZE] = sockid
    if raw_protocol is not None:
        request[3] = raw_protocol
    return diag.command(SOCK_DESTROY, bytes(request))


def inet_sockets(diag: DiagSocket, proto: str, family: int, states: int = ALL_STATES,
                 extended: bool = False, bytecode: bytes | None = None
                 ) -> Iterator[SocketRecord]:
    af = FAMILIES[family]
    ntop = _socket.inet_ntop
    addr_len = 4 if family == 4 else 16
    unpack, ports = INET_MSG.unpack_from, INET_PORTS.unpack_from
    names: dict[bytes, str] = {}  # most sockets share a handful of addresses
    attrs = _AttrReader(diag.buf, proto) if extended or proto == "raw" else None
    for view, start, end in diag.dump(inet_request(proto, family, states, extended, bytecode)):
        _, state, timer, _, src, dst, expires, rqueue, wqueue, uid, inode = unpack(view, start)
        sport, dport = ports(view, start + 4)
        local = names.get(src)
        if local is None:
            local = names[src] = ntop(af, src[:addr_len])
        peer = names.get(dst)
        if peer is None:
            peer = names[dst] = ntop(af, dst[:addr_len])
        record = SocketRecord(proto, family, state, rqueue, wqueue, local, sport, peer, dport,
                              inode, uid if inode else None)
        if timer:
            record.timer, record.timer_ms = TIMERS.get(timer, str(timer)), expires
        if attrs is not None and end > start + INET_MSG.size:
            attrs.read(record, start + INET_MSG.size, end)
        yield record


class _AttrReader:
    """The attributes after each inet_diag_msg of one dump, kept as the kernel sent them
    (the tcp_info bytes, the skmem numbers, the congestion name): decoding waits until
    someone asks, and most of a listing shows a few fields.

    This runs per socket and the rtattr walk is most of its cost, while the sockets of
    one dump mostly carry the same chain of attributes (the same kinds and lengths in
    the same order). So a chain seen once is kept as a layout: one Struct reads every
    header of the next socket's chain at once, and when all of them and the total
    length are the same, the wanted attributes are where they were. Anything else is
    walked as _attrs walks."""

    MAX_LAYOUTS = 16

    def __init__(self, buf: bytearray, proto: str):
        from pysock.inventory import tcpinfo
        self.buf = buf
        self.skmem_values = tcpinfo.skmem_values
        self.skmem_unpack, self.skmem_size = tcpinfo.SKMEM.unpack_from, tcpinfo.SKMEM.size
        self.tcp = proto == "tcp"
        self.raw = proto == "raw"
        self.congestion: dict[bytes, str] = {}  # the attribute as sent -> the name
        self.layouts: dict[int, tuple] = {}  # chain length -> (headers, spans)

    def read(self, record: SocketRecord, start: int, end: int) -> None:
        layout = self.layouts.get(end - start)
        if layout is not None and layout[0].unpack_from(self.buf, start) == layout[1]:
            self._take(record, start, layout)
            return
        chain, whole = self._walk(start, end)
        spans = {kind: (offset + 4, offset + length) for offset, length, kind in chain}
        layout = self._layout(chain, tuple(spans.get(kind) for kind in self.KEPT))
        self._take(record, start, layout)
        if whole and len(self.layouts) < self.MAX_LAYOUTS:
            self.layouts[end - start] = layout

    KEPT = (INET_DIAG_INFO, INET_DIAG_SKMEMINFO, INET_DIAG_CONG, INET_DIAG_PROTOCOL)

    def _walk(self, start: int, end: int) -> tuple[list[tuple[int, int, int]], bool]:
        """(offset from start, length, kind) of each attribute, and whether the chain
        ended where the message does (a broken one is read as far as it goes)."""
        chain, unpack, pos = [], RTATTR.unpack_from, start
        while pos + 4 <= end:
            length, kind = unpack(self.buf, pos)
            if length < 4:
                return chain, False
            chain.append((pos - start, min(length, end - pos), kind))
            pos += (length + 3) & ~3
        return chain, pos >= end

    @staticmethod
    def _layout(chain: list[tuple[int, int, int]], spans: tuple) -> tuple:
        """(a Struct of every header, their values, then where each KEPT kind is)."""
        fmt, expected, at = "=", [], 0
        for offset, length, kind in chain:
            fmt += f"{offset - at}xHH"
            expected += (length, kind)
            at = offset + 4
        return (struct.Struct(fmt), tuple(expected), *spans)

    def _take(self, record: SocketRecord, start: int, layout: tuple) -> None:
        _, _, info, skmem, congestion, protocol = layout
        buf = self.buf
        if info is not None and self.tcp:
            record.tcp_raw = bytes(buf[start + info[0]:start + info[1]])
        if skmem is not None:
            if skmem[1] - skmem[0] >= self.skmem_size:
                record.skmem_raw = self.skmem_unpack(buf, start + skmem[0])
            else:  # an older kernel's shorter array
                record.skmem_raw = self.skmem_values(buf[start + skmem[0]:start + skmem[1]])
        if congestion is not None:
            raw = bytes(buf[start + congestion[0]:start + congestion[1]])
            name = self.congestion.get(raw)
            if name is None:
                name = self.congestion[raw] = raw.split(b"\0", 1)[0].decode(errors="replace")
            record.congestion = name
        if protocol is not None and self.raw:  # a raw socket's "port" is its IP protocol
            record.local_port = buf[start + protocol[0]]


def unix_request(states: int, extended: bool) -> bytes:
    show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID
    if extended:
        show |= UDIAG_SHOW_MEMINFO
    return UNIX_REQ.pack(_socket.AF_UNIX, 0, 0, states, 0, show)


def unix_sockets(diag: DiagSocket, states: int = ALL_STATES,
                 extended: bool = False) -> Iterator[SocketRecord]:
    for view, start, end in diag.dump(unix_request(states, extended)):
        _, kind, state, inode = UNIX_MSG.unpack_from(view, start)
        record = SocketRecord("unix", 0, state, 0, 0, None, None, None, None, inode,
                              unix_type=UNIX_TYPES.get(kind, str(kind)))
        for attr, data in _attrs(view, start + UNIX_MSG_SIZE, end):
            if attr == UNIX_DIAG_NAME:
                record.path = _unix_name(bytes(data))
            elif attr == UNIX_DIAG_PEER:
                record.peer_inode = struct.unpack_from("=I", data)[0] or None
            elif attr == UNIX_DIAG_RQLEN:
                record.recv_q, record.send_q = struct.unpack_from("=II", data)
            elif attr == UNIX_DIAG_UID:
                record.uid = struct.unpack_from("=I", data)[0]
            elif attr == UNIX_DIAG_MEMINFO:
                from pysock.inventory.tcpinfo import skmem_values
                record.skmem_raw = skmem_values(data)
        yield record


def _unix_name(raw: bytes) -> str:
    if raw[:1] == b"\0":
        return "@" + raw[1:].decode(errors="replace")
    return raw.split(b"\0", 1)[0].decode(errors="replace")
