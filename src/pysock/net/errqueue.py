"""ICMP errors by the socket error queue (IP_RECVERR / IPV6_RECVERR) and kernel
receive stamps (SO_TIMESTAMPNS): how every unprivileged probe (UDP scan, trace,
port ping) and the echo socket learn that a router or a host said no.

The kernel queues one `struct sock_extended_err` per ICMP error that quotes a
packet this socket sent, with the offender's address after it; recvmsg with
MSG_ERRQUEUE returns the quoted packet's payload as data and the address the
packet was for as the peer."""

from __future__ import annotations

import enum
import socket
import struct
import time

# Linux constants the socket module does not export (uapi headers, x86_64 and arm64 alike)
SOL_IP, SOL_IPV6 = 0, 41
IP_RECVERR, IPV6_RECVERR = 11, 25
IP_MTU_DISCOVER, IPV6_MTU_DISCOVER = 10, 23
IP_PMTUDISC_PROBE, IPV6_PMTUDISC_PROBE = 3, 3  # DF set, the kernel's path MTU not applied
SO_TIMESTAMPNS = 35
MSG_ERRQUEUE = 0x2000
ANCILLARY = 512  # room for a stamp, a TTL and an extended error with its address

EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err
TIMESPEC = struct.Struct("=qq")
_TTL_CMSGS = ((SOL_IP, socket.IP_TTL), (SOL_IPV6, socket.IPV6_HOPLIMIT))
_ERR_CMSGS = ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR))

# ICMP (type, code) of "port unreachable", per family
PORT_UNREACH = {socket.AF_INET: (3, 3), socket.AF_INET6: (1, 4)}
UNREACH_TYPE = {socket.AF_INET: 3, socket.AF_INET6: 1}
TIME_EXCEEDED_TYPE = {socket.AF_INET: 11, socket.AF_INET6: 3}


class Origin(enum.IntEnum):
    """Who raised a queued error (SO_EE_ORIGIN_*)."""

    NONE = 0
    LOCAL = 1  # this machine (no route, message too long for the path)
    ICMP = 2
    ICMP6 = 3


class QueuedError:
    """One entry of a socket's error queue. (A plain class: ping's start-up does
    without dataclasses, see probes/icmp.Echo.)"""

    __slots__ = ("origin", "icmp_type", "icmp_code", "info", "errno", "offender", "dest",
                 "data", "recv_ns")

    def __init__(self, origin: Origin, icmp_type: int, icmp_code: int, info: int, errno: int,
                 offender: str | None, dest: tuple | None, data: bytes, recv_ns: int):
        self.origin, self.icmp_type, self.icmp_code = origin, icmp_type, icmp_code
        self.info = info  # the MTU for frag-needed / packet-too-big and local EMSGSIZE
        self.errno = errno
        self.offender = offender  # the router or host that sent the ICMP error
        self.dest = dest  # where the quoted packet was going (address, port, ...)
        self.data = data  # the quoted packet's payload (for ICMP sockets: the echo request)
        self.recv_ns = recv_ns

    def __repr__(self) -> str:
        return (f"QueuedError({self.origin!r}, {self.icmp_type}, {self.icmp_code}, "
                f"errno={self.errno}, offender={self.offender!r}, dest={self.dest!r})")

    @property
    def is_icmp(self) -> bool:
        return self.origin in (Origin.ICMP, Origin.ICMP6)

    def is_port_unreachable(self, family: int) -> bool:
        return self.is_icmp and (self.icmp_type, self.icmp_code) == PORT_UNREACH[family]

    def is_unreachable(self, family: int) -> bool:
        return self.is_icmp and self.icmp_type == UNREACH_TYPE[family]

    def is_time_exceeded(self, family: int) -> bool:
        return self.is_icmp and self.icmp_type == TIME_EXCEEDED_TYPE[family]


def level(family: int) -> int:
    return SOL_IPV6 if family == socket.AF_INET6 else SOL_IP


def want_errors(sock: socket.socket) -> None:
    """Queue ICMP errors about this socket's packets (no privilege needed)."""
    v6 = sock.family == socket.AF_INET6
    sock.setsockopt(level(sock.family), IPV6_RECVERR if v6 else IP_RECVERR, 1)


def want_stamps(sock: socket.socket) -> None:
    """Kernel receive times on every datagram and queued error."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def set_dont_fragment(sock: socket.socket) -> None:
    """DF on every packet, sized as given whatever the kernel believes the path MTU
    is (tracepath's IP_PMTUDISC_PROBE): the routers' answers tell the MTU."""
    v6 = sock.family == socket.AF_INET6
    sock.setsockopt(level(sock.family), IPV6_MTU_DISCOVER if v6 else IP_MTU_DISCOVER,
                    IPV6_PMTUDISC_PROBE if v6 else IP_PMTUDISC_PROBE)


def read_error(sock: socket.socket, size: int = 2048) -> QueuedError | None:
    """The next queued error, or None when the queue is empty (or holds no
    extended error)."""
    try:
        data, anc, _flags, dest = sock.recvmsg(size, ANCILLARY, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    return parse_error(data, anc, dest)


def drain_errors(sock: socket.socket, size: int = 2048):
    """Every queued error, oldest first."""
    while True:
        try:
            data, anc, _flags, dest = sock.recvmsg(size, ANCILLARY,
                                                   MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        found = parse_error(data, anc, dest)
        if found is not None:
            yield found


def parse_error(data: bytes, anc, dest) -> QueuedError | None:
    """A QueuedError from what recvmsg(MSG_ERRQUEUE) returned."""
    for cmsg_level, kind, payload in anc:
        if (cmsg_level, kind) in _ERR_CMSGS and len(payload) >= EXTENDED_ERR.size:
            errnum, origin, etype, ecode, _, info, _ = EXTENDED_ERR.unpack_from(payload)
            try:
                origin = Origin(origin)
            except ValueError:
                return None
            return QueuedError(origin, etype, ecode, info, errnum,
                               _offender(payload[EXTENDED_ERR.size:]), dest or None, data,
                               stamp_and_ttl(anc)[0])
    return None


def stamp_and_ttl(anc) -> tuple[int, int | None]:
    """(kernel receive time in ns, TTL or hop limit when the kernel gave one)."""
    stamp, ttl = 0, None
    for cmsg_level, kind, data in anc:
        if cmsg_level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            stamp = sec * 1_000_000_000 + nsec
        elif (cmsg_level, kind) in _TTL_CMSGS and len(data) >= 4:
            ttl = struct.unpack_from("=i", data)[0]
    return stamp or time.time_ns(), ttl


def _offender(data: bytes) -> str | None:
    """The address in the struct sockaddr that follows sock_extended_err."""
    if len(data) < 2:
        return None
    family = struct.unpack_from("=H", data)[0]
    if family == socket.AF_INET and len(data) >= 8:
        return socket.inet_ntop(socket.AF_INET, data[4:8])
    if family == socket.AF_INET6 and len(data) >= 24:
        return socket.inet_ntop(socket.AF_INET6, data[8:24])
    return None


_stamps_checked = False


def stamps_ready(limit: float = 0.05) -> None:
    """Wait (briefly, once per process) until the kernel stamps packets on arrival.

    The first SO_TIMESTAMPNS socket on a quiet machine turns arrival stamping on
    through deferred work; a reply that comes before that is stamped only when it
    is read, which would add the reading delay to the first RTT. A datagram to
    ourselves on loopback, read a little late, tells which case we are in."""
    global _stamps_checked
    if _stamps_checked:
        return
    _stamps_checked = True
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return
    with probe:
        try:
            want_stamps(probe)
            probe.bind(("127.0.0.1", 0))
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                probe.sendto(b"t", probe.getsockname())
                time.sleep(0.0003)
                _, anc, _, _ = probe.recvmsg(16, ANCILLARY)
                stamp, _ = stamp_and_ttl(anc)
                if time.time_ns() - stamp > 200_000:  # stamped on arrival, not on reading
                    return
        except OSError:
            return  # no loopback here: nothing to learn from
