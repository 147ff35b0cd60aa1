"""The echo socket: raw ICMP/ICMPv6 when privileged, else the kernel's ICMP
datagram ("ping") socket; kernel receive timestamps; ICMP errors read from the
socket's error queue (IP_RECVERR), for raw and datagram sockets alike."""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
import time
from dataclasses import dataclass

from pysock.errors import ExitStatus, PysockError
from pysock.probes import icmp

# Linux constants the socket module does not export (uapi headers, x86_64 and arm64 alike)
SOL_IP, SOL_IPV6, SOL_RAW = 0, 41, 255
IP_TTL, IP_RECVERR, IP_RECVTTL = 2, 11, 12
IPV6_RECVERR, IPV6_UNICAST_HOPS, IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT = 25, 16, 51, 52
ICMP_FILTER, ICMP6_FILTER = 1, 1
SO_ATTACH_FILTER, SO_TIMESTAMPNS = 26, 35
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 1, 2, 3

EXTENDED_ERR = struct.Struct("=IBBBBII")  # struct sock_extended_err
TIMESPEC = struct.Struct("=qq")
ANCILLARY = 512
ERROR_ERRNOS = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED, errno.EACCES,
                errno.EPROTO, errno.EMSGSIZE, errno.EPERM, errno.ENOPROTOOPT)

AF = {4: socket.AF_INET, 6: socket.AF_INET6}
PROTO = {4: socket.IPPROTO_ICMP, 6: socket.IPPROTO_ICMPV6}


@dataclass(frozen=True)
class Incoming:
    """One thing read from an echo socket: an echo reply or an ICMP error about one
    of our requests (ident/seq taken from the quoted request)."""

    addr: str  # who sent it: the echoing host, or the router reporting the error
    ident: int
    seq: int
    recv_ns: int  # kernel receive time, CLOCK_REALTIME ns
    echo: icmp.Echo | None = None
    error: str | None = None  # iputils' words for the error
    icmp_type: int = 0
    icmp_code: int = 0
    dest: str | None = None  # for errors: whom the request was for
    local: bool = False  # the error was raised by this machine (no route, no ARP)


class EchoSocket:
    """One socket per address family; many targets share it."""

    def __init__(self, family: int, *, privileged: bool | None = None, source: str | None = None,
                 device: str | None = None, ttl: int | None = None):
        self.family = family
        self.sock, self.raw = _open(family, privileged)
        try:
            self._configure(source, device, ttl)
        except BaseException:
            self.sock.close()
            raise
        self.fileno = self.sock.fileno()
        self.sendto = self.sock.sendto

    # ---- set-up --------------------------------------------------------------

    def _configure(self, source: str | None, device: str | None, ttl: int | None) -> None:
        sock, v6 = self.sock, self.family == 6
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(SOL_IPV6 if v6 else SOL_IP, IPV6_RECVERR if v6 else IP_RECVERR, 1)
        if v6:
            sock.setsockopt(SOL_IPV6, IPV6_RECVHOPLIMIT, 1)
        elif not self.raw:
            sock.setsockopt(SOL_IP, IP_RECVTTL, 1)
        _best_effort(sock, socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        if device:
            _bind_device(sock, device)
        if source or not self.raw:
            _bind_source(sock, self.family, source)
        if self.raw:
            self.ident = random.getrandbits(16)
            _install_filters(sock, self.family, self.ident)
        else:
            self.ident = sock.getsockname()[1]  # the kernel rewrites the id to the "port"
        if ttl is not None:
            self.set_ttl(ttl)
        stamps_ready()

    def set_ttl(self, ttl: int) -> None:
        if self.family == 6:
            self.sock.setsockopt(SOL_IPV6, IPV6_UNICAST_HOPS, ttl)
        else:
            self.sock.setsockopt(SOL_IP, IP_TTL, ttl)

    @property
    def kind(self) -> str:
        return "raw" if self.raw else "datagram"

    def close(self) -> None:
        self.sock.close()

    # ---- traffic -------------------------------------------------------------

    def read(self, error_queue: bool) -> list[Incoming]:
        """Everything waiting now: the error queue (when poll said POLLERR), then data."""
        out: list[Incoming] = []
        if error_queue:
            self._drain_errors(out)
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, ANCILLARY, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno not in ERROR_ERRNOS:
                    raise
                self._drain_errors(out)  # a pending error surfaced on the data path
                continue
            item = self._reply(data, anc, addr[0])
            if item is not None:
                out.append(item)

    def _reply(self, data: bytes, anc, addr: str) -> Incoming | None:
        recv_ns, ttl = ancillary(anc)
        if self.family == 4 and self.raw:
            split = icmp.split_ipv4(data)
            if split is None:
                return None
            ttl, data = split
        echo = icmp.parse_echo_reply(self.family, data, ttl, verify=self.family == 4 and self.raw)
        if echo is None or echo.ident != self.ident:
            return None  # another process's ICMP
        return Incoming(addr, echo.ident, echo.seq, recv_ns, echo=echo)

    def _drain_errors(self, out: list[Incoming]) -> None:
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(
                    65535, ANCILLARY, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            item = self._error(data, anc, addr)
            if item is not None:
                out.append(item)

    def _error(self, data: bytes, anc, addr) -> Incoming | None:
        recv_ns, _ = ancillary(anc)
        err = extended_error(anc)
        if err is None or len(data) < icmp.HEADER.size:
            return None
        kind, _, _, ident, seq = icmp.HEADER.unpack_from(data)
        if kind != icmp.ECHO_REQUEST[self.family] or ident != self.ident:
            return None
        origin, etype, ecode, info, offender, errnum = err
        dest = addr[0] if addr else None
        if origin == SO_EE_ORIGIN_LOCAL:
            words = f"local error: {os.strerror(errnum)}"
            if errnum == errno.EMSGSIZE:
                words += f", mtu={info}"
            return Incoming(offender or dest or "", ident, seq, recv_ns, error=words, dest=dest,
                            local=True)
        if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            return None
        return Incoming(offender or "", ident, seq, recv_ns, error=icmp.describe(
            self.family, etype, ecode, info), icmp_type=etype, icmp_code=ecode, dest=dest)


# ---- helpers ---------------------------------------------------------------------

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
            probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            probe.bind(("127.0.0.1", 0))
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                probe.sendto(b"t", probe.getsockname())
                time.sleep(0.0003)
                _, anc, _, _ = probe.recvmsg(16, ANCILLARY)
                stamp, _ = ancillary(anc)
                if time.time_ns() - stamp > 200_000:  # stamped on arrival, not on reading
                    return
        except OSError:
            return  # no loopback here: nothing to learn from


def _open(family: int, privileged: bool | None) -> tuple[socket.socket, bool]:
    """Raw when allowed (or asked for), else a datagram ping socket, else one line
    naming the three ways out."""
    if privileged is not False:
        try:
            return socket.socket(AF[family], socket.SOCK_RAW, PROTO[family]), True
        except PermissionError:
            if privileged:
                raise PysockError("raw sockets need root or CAP_NET_RAW", ExitStatus.USAGE) from None
    try:
        return socket.socket(AF[family], socket.SOCK_DGRAM, PROTO[family]), False
    except PermissionError:
        raise PysockError(_no_permission(), ExitStatus.USAGE) from None
    except OSError as exc:
        if exc.errno == errno.EAFNOSUPPORT:
            raise PysockError(f"IPv{family} is not available on this machine",
                              ExitStatus.USAGE) from None
        raise


def _no_permission() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as f:
            rng = " ".join(f.read().split())
    except OSError:
        rng = "?"
    return (f"no permission to send ICMP: raw sockets need privilege and ping sockets are "
            f"closed to group {os.getgid()} (net.ipv4.ping_group_range = {rng}); run as root, "
            f"or 'setcap cap_net_raw+ep' on the python binary, or "
            f"'sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"'")


def _best_effort(sock: socket.socket, level: int, name: int, value: int) -> None:
    try:
        sock.setsockopt(level, name, value)
    except OSError:
        pass


def _bind_device(sock: socket.socket, device: str) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode() + b"\0")
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise PysockError(f"no such interface: {device}", ExitStatus.USAGE) from None
        raise PysockError(f"cannot bind to interface {device}: {exc.strerror}",
                          ExitStatus.USAGE) from None


def _bind_source(sock: socket.socket, family: int, source: str | None) -> None:
    host = source or ("::" if family == 6 else "0.0.0.0")
    try:
        sock.bind((host, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise PysockError(f"cannot send from {host}: no interface on this machine has "
                              f"that address", ExitStatus.USAGE) from None
        raise PysockError(f"cannot bind to {host}: {exc.strerror}", ExitStatus.USAGE) from None
    except socket.gaierror:
        raise PysockError(f"'{host}' is not an IPv{family} address", ExitStatus.USAGE) from None


def _install_filters(sock: socket.socket, family: int, ident: int) -> None:
    """Only echo replies reach the data path (errors come by the error queue), and of
    those only ours: a classic BPF program like iputils', so that other processes'
    ICMP never wakes us."""
    if family == 4:
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~1 & 0xFFFFFFFF))
        program = [
            (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): skip the IP header
            (0x48, 0, 0, 4),  # ldh [x+4]: the identifier
            (0x15, 0, 1, ident),  # jeq ident
            (0x06, 0, 0, 0xFFFFFFFF),  # ret all
            (0x06, 0, 0, 0),  # ret 0
        ]
    else:
        blocked = [0xFFFFFFFF] * 8
        blocked[icmp.ECHO_REPLY[6] >> 5] &= ~(1 << (icmp.ECHO_REPLY[6] & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *blocked))
        program = [
            (0x28, 0, 0, 4),  # ldh [4]: the identifier
            (0x15, 0, 1, ident),
            (0x06, 0, 0, 0xFFFFFFFF),
            (0x06, 0, 0, 0),
        ]
    _attach_bpf(sock, program)


def _attach_bpf(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    import ctypes
    code = b"".join(struct.pack("=HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buf))  # struct sock_fprog
    _best_effort(sock, socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # user space checks too


def ancillary(anc) -> tuple[int, int | None]:
    """(kernel receive time in ns, TTL or hop limit when the kernel gave one)."""
    stamp, ttl = 0, None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            stamp = sec * 1_000_000_000 + nsec
        elif (level, kind) in ((SOL_IP, IP_TTL), (SOL_IPV6, IPV6_HOPLIMIT)) and len(data) >= 4:
            ttl = struct.unpack_from("=i", data)[0]
    return stamp or time.time_ns(), ttl


def extended_error(anc) -> tuple[int, int, int, int, str | None, int] | None:
    """(origin, type, code, info, offender address, errno) from IP(V6)_RECVERR."""
    for level, kind, data in anc:
        if (level, kind) in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
            if len(data) < EXTENDED_ERR.size:
                return None
            errnum, origin, etype, ecode, _, info, _ = EXTENDED_ERR.unpack_from(data)
            return origin, etype, ecode, info, _offender(data[EXTENDED_ERR.size:]), errnum
    return None


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
