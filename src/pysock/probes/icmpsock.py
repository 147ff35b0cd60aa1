"""The echo socket: raw ICMP/ICMPv6 when privileged, else the kernel's ICMP
datagram ("ping") socket; kernel receive timestamps; ICMP errors read from the
socket's error queue (IP_RECVERR), for raw and datagram sockets alike."""

from __future__ import annotations

import errno
import os
import random
import socket
import struct

from pysock.errors import ExitStatus, PrivilegeError, PysockError
from pysock.net import errqueue
from pysock.net.errqueue import SOL_IP, SOL_IPV6, Origin, QueuedError, stamp_and_ttl, stamps_ready
from pysock.probes import icmp

# Linux constants the socket module does not export (uapi headers, x86_64 and arm64 alike)
SOL_RAW = 255
IP_RECVTTL = 12
IPV6_RECVHOPLIMIT = 51
ICMP_FILTER, ICMP6_FILTER = 1, 1
SO_ATTACH_FILTER = 26
ERROR_ERRNOS = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNREFUSED, errno.EACCES,
                errno.EPROTO, errno.EMSGSIZE, errno.EPERM, errno.ENOPROTOOPT)

PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
__all__ = ["EchoSocket", "Incoming", "stamps_ready"]


class Incoming:
    """One thing read from an echo socket: an echo reply or an ICMP error about one
    of our requests (ident/seq taken from the quoted request). A plain class: see
    icmp.Echo."""

    __slots__ = ("addr", "ident", "seq", "recv_ns", "echo", "error", "icmp_type", "icmp_code",
                 "dest", "local")

    def __init__(self, addr: str, ident: int, seq: int, recv_ns: int,
                 echo: icmp.Echo | None = None, error: str | None = None, icmp_type: int = 0,
                 icmp_code: int = 0, dest: str | None = None, local: bool = False):
        self.addr = addr  # who sent it: the echoing host, or the router reporting the error
        self.ident, self.seq = ident, seq
        self.recv_ns = recv_ns  # kernel receive time, CLOCK_REALTIME ns
        self.echo = echo
        self.error = error  # iputils' words for the error
        self.icmp_type, self.icmp_code = icmp_type, icmp_code
        self.dest = dest  # for errors: whom the request was for
        self.local = local  # the error was raised by this machine (no route, no ARP)


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
        sock, v6 = self.sock, self.family == socket.AF_INET6
        sock.setblocking(False)
        errqueue.want_stamps(sock)
        errqueue.want_errors(sock)
        if v6:
            sock.setsockopt(SOL_IPV6, IPV6_RECVHOPLIMIT, 1)
        elif not self.raw:
            sock.setsockopt(SOL_IP, IP_RECVTTL, 1)
        _best_effort(sock, socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        if device:
            from pysock.net.sockopt import bind_device
            bind_device(sock, device)
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
        from pysock.net.sockopt import set_ttl
        set_ttl(self.sock, ttl)

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
                data, anc, _flags, addr = self.sock.recvmsg(65535, errqueue.ANCILLARY, socket.MSG_DONTWAIT)
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
        recv_ns, ttl = stamp_and_ttl(anc)
        v4_raw = self.family == socket.AF_INET and self.raw
        if v4_raw:
            split = icmp.split_ipv4(data)
            if split is None:
                return None
            ttl, data = split
        echo = icmp.parse_echo_reply(self.family, data, ttl, verify=v4_raw)
        if echo is None or echo.ident != self.ident:
            return None  # another process's ICMP
        return Incoming(addr, echo.ident, echo.seq, recv_ns, echo=echo)

    def _drain_errors(self, out: list[Incoming]) -> None:
        for queued in errqueue.drain_errors(self.sock, 65535):
            item = self._error(queued)
            if item is not None:
                out.append(item)

    def _error(self, err: QueuedError) -> Incoming | None:
        """An error about one of our echo requests (the quoted request is the data)."""
        if len(err.data) < icmp.HEADER.size:
            return None
        kind, _, _, ident, seq = icmp.HEADER.unpack_from(err.data)
        if kind != icmp.ECHO_REQUEST[self.family] or ident != self.ident:
            return None
        dest = err.dest[0] if err.dest else None
        if err.origin == Origin.LOCAL:
            words = f"local error: {os.strerror(err.errno)}"
            if err.errno == errno.EMSGSIZE:
                words += f", mtu={err.info}"
            return Incoming(err.offender or dest or "", ident, seq, err.recv_ns, error=words,
                            dest=dest, local=True)
        if not err.is_icmp:
            return None
        return Incoming(err.offender or "", ident, seq, err.recv_ns, error=icmp.describe(
            self.family, err.icmp_type, err.icmp_code, err.info), icmp_type=err.icmp_type,
            icmp_code=err.icmp_code, dest=dest)


# ---- helpers ---------------------------------------------------------------------

def _open(family: int, privileged: bool | None) -> tuple[socket.socket, bool]:
    """Raw when allowed (or asked for), else a datagram ping socket, else one line
    naming the three ways out."""
    if privileged is not False:
        try:
            return socket.socket(family, socket.SOCK_RAW, PROTO[family]), True
        except PermissionError:
            if privileged:
                raise PrivilegeError("raw sockets need root or CAP_NET_RAW") from None
    try:
        return socket.socket(family, socket.SOCK_DGRAM, PROTO[family]), False
    except PermissionError:
        raise PrivilegeError(_no_permission()) from None
    except OSError as exc:
        if exc.errno == errno.EAFNOSUPPORT:
            version = 6 if family == socket.AF_INET6 else 4
            raise PysockError(f"IPv{version} is not available on this machine",
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


def _bind_source(sock: socket.socket, family: int, source: str | None) -> None:
    host = source or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    try:
        sock.bind((host, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise PysockError(f"cannot send from {host}: no interface on this machine has "
                              f"that address", ExitStatus.USAGE) from None
        raise PysockError(f"cannot bind to {host}: {exc.strerror}", ExitStatus.USAGE) from None
    except socket.gaierror:
        version = 6 if family == socket.AF_INET6 else 4
        raise PysockError(f"'{host}' is not an IPv{version} address", ExitStatus.USAGE) from None


def _install_filters(sock: socket.socket, family: int, ident: int) -> None:
    """Only echo replies reach the data path (errors come by the error queue), and of
    those only ours: a classic BPF program like iputils', so that other processes'
    ICMP never wakes us."""
    if family == socket.AF_INET:
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
        reply = icmp.ECHO_REPLY[socket.AF_INET6]
        blocked[reply >> 5] &= ~(1 << (reply & 31))
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
