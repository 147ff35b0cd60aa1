"""TCP and UDP "ping" for hosts that drop ICMP: the time to a SYN-ACK (or a RST),
or to a datagram back (or an ICMP port unreachable). No privilege needed. Each
probe is its own non-blocking socket, so answers match probes by socket."""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from pysock.net import errqueue
from pysock.net.errqueue import stamp_and_ttl, stamps_ready
from pysock.net.sockopt import bind_device, set_ttl
from pysock.probes.ping import Answer, PingSpec, Target


@dataclass(eq=False)
class Probe:
    target: Target
    seq: int
    sock: socket.socket
    sent_ns: int
    expires_at: float


class PortProber:
    expires = True  # a probe nobody answers is given up after its wait

    def __init__(self, proto: str, port: int):
        self.proto = proto
        self.port = port
        self.inflight: dict[int, Probe] = {}  # fd -> probe

    def open(self, targets: list[Target], poller, spec: PingSpec, payload: bytes) -> None:
        self.poller = poller
        self.spec = spec
        self.payload = payload
        # a probe is given up after -W, but never outlives its successor by much
        self.wait = min(spec.timeout, max(spec.interval, 1.0)) if spec.count != 1 else spec.timeout
        if self.proto == "udp":
            stamps_ready()

    def kind(self) -> str:
        return self.proto

    def send(self, target: Target, seq: int) -> int:
        kind = socket.SOCK_STREAM if self.proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(target.family, kind)
        try:
            self._prepare(sock)
            sent = time.time_ns()
            if self.proto == "tcp":
                code = sock.connect_ex(_sockaddr(target, self.port))
                if code not in (0, errno.EINPROGRESS):
                    raise OSError(code, _strerror(code))
                events = select.POLLOUT
            else:
                sock.connect(_sockaddr(target, self.port))
                sent = time.time_ns()
                sock.send(self.payload)
                events = select.POLLIN | select.POLLERR
        except BaseException:
            sock.close()
            raise
        self.inflight[sock.fileno()] = Probe(target, seq, sock, sent, time.monotonic() + self.wait)
        self.poller.register(sock.fileno(), events)
        return sent

    def _prepare(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        if self.proto == "tcp":
            # end each probe with a RST: no TIME_WAIT left behind for every probe
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            errqueue.want_stamps(sock)
            errqueue.want_errors(sock)
        if self.spec.ttl is not None:
            set_ttl(sock, self.spec.ttl)
        if self.spec.device:
            bind_device(sock, self.spec.device)
        if self.spec.source:
            sock.bind((self.spec.source, 0))

    def ready(self, fd: int, mask: int) -> list[Answer]:
        probe = self.inflight.pop(fd, None)
        if probe is None:
            return []
        self.poller.unregister(fd)
        try:
            return [self._tcp(probe) if self.proto == "tcp" else self._udp(probe, mask)]
        finally:
            probe.sock.close()

    def _tcp(self, probe: Probe) -> Answer:
        now = time.time_ns()
        code = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        addr = probe.target.addr
        if code == 0:
            return Answer(probe.target, probe.seq, now, addr, state="open")
        if code == errno.ECONNREFUSED:
            return Answer(probe.target, probe.seq, now, addr, state="closed")
        return Answer(probe.target, probe.seq, now, addr, error=_strerror(code))

    def _udp(self, probe: Probe, mask: int) -> Answer:
        sock, target = probe.sock, probe.target
        if not mask & select.POLLERR:
            try:
                data, anc, _, addr = sock.recvmsg(65535, errqueue.ANCILLARY)
                recv_ns, _ = stamp_and_ttl(anc)
                return Answer(target, probe.seq, recv_ns, addr[0], size=len(data), state="open")
            except OSError:
                pass  # an ICMP error is pending: read it from the error queue
        try:
            err = errqueue.read_error(sock, 65535)
        except OSError as exc:
            return Answer(target, probe.seq, time.time_ns(), target.addr, error=_strerror(exc.errno))
        if err is None:
            return Answer(target, probe.seq, time.time_ns(), target.addr, error="unknown error")
        if err.is_port_unreachable(target.family) and err.offender == target.addr:
            return Answer(target, probe.seq, err.recv_ns, err.offender, state="closed")
        if err.is_icmp:
            from pysock.probes.icmp import describe
            return Answer(target, probe.seq, err.recv_ns, err.offender or target.addr,
                          error=describe(target.family, err.icmp_type, err.icmp_code, err.info))
        return Answer(target, probe.seq, err.recv_ns, target.addr, error=_strerror(err.errno))

    def expire(self, now: float) -> None:
        """Probes past their wait: closed and forgotten (a loss, not an error)."""
        for fd, probe in list(self.inflight.items()):
            if probe.expires_at <= now:
                del self.inflight[fd]
                self.poller.unregister(fd)
                probe.sock.close()

    def next_expiry(self) -> float:
        return min((p.expires_at for p in self.inflight.values()), default=float("inf"))

    def close(self) -> None:
        for probe in self.inflight.values():
            probe.sock.close()
        self.inflight.clear()


def _sockaddr(target: Target, port: int) -> tuple:
    return (target.sockaddr[0], port, *target.sockaddr[2:])


def _strerror(code: int) -> str:
    return os.strerror(code)
