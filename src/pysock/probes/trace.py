"""traceroute: TTL-limited probes (ICMP echo, UDP to high ports, or TCP SYN by a
non-blocking connect), several in flight at once; hops answer with ICMP time
exceeded, read from the error queue (IP_RECVERR), so no method needs privilege
except ICMP where ping sockets are closed. Yields one result per probe, hop by hop."""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pysock.net import errqueue
from pysock.net.errqueue import stamp_and_ttl, stamps_ready
from pysock.net.sockopt import bind_device, set_ttl
from pysock.probes import icmp

UDP_BASE_PORT = 33434  # traceroute's default base port
DATA = 32  # probe data bytes (60-byte IPv4 packets, as traceroute)


@dataclass(frozen=True)
class TraceSpec:
    method: str = "icmp"  # icmp | udp | tcp
    port: int | None = None  # udp: base port; tcp: the port to SYN
    queries: int = 3
    max_hops: int = 30
    first_hop: int = 1
    wait: float = 5.0
    window: int = 16  # probes in flight at once (traceroute -N)
    source: str | None = None
    device: str | None = None

    @property
    def packet_size(self) -> int:
        return {"icmp": 8 + DATA, "udp": 8 + DATA, "tcp": 40}[self.method]


@dataclass(slots=True)
class ProbeResult:
    hop: int
    index: int  # 0 .. queries-1
    addr: str | None = None  # None: no answer (a '*')
    rtt_ns: int | None = None
    note: str | None = None  # traceroute's !H !N !X ... or None
    reached: bool = False  # the destination itself answered


@dataclass(eq=False)
class Probe:
    hop: int
    index: int
    sent_ns: int = 0
    expires_at: float = 0.0
    sock: socket.socket | None = None
    result: ProbeResult | None = None
    seq: int = 0  # ICMP: the sequence number that names it


@dataclass
class Hop:
    number: int
    results: list[ProbeResult] = field(default_factory=list)


class Tracer:
    def __init__(self, addr: str, family: int, spec: TraceSpec, *, privileged: bool | None = None):
        self.addr, self.family, self.spec = addr, family, spec
        self.privileged = privileged
        self.sockaddr = socket.getaddrinfo(addr, 0, family, socket.SOCK_DGRAM, 0,
                                           socket.AI_NUMERICHOST)[0][4]

    def __enter__(self) -> Tracer:
        """Opens the sockets (their errors come here, before any output)."""
        method = {"icmp": _IcmpMethod, "udp": _UdpMethod, "tcp": _TcpMethod}[self.spec.method]
        self.poller = select.poll()
        self.method = method(self, self.poller)
        stamps_ready()
        return self

    def __exit__(self, *exc) -> None:
        self.method.close()

    def hops(self) -> Iterator[Hop]:
        """Each hop once all its probes are answered or timed out, in order, up to
        the destination (or an unreachable, or the last hop)."""
        return self._run(self.poller)

    def _run(self, poller) -> Iterator[Hop]:
        spec = self.spec
        pending = [Probe(h, q) for h in range(spec.first_hop, spec.max_hops + 1)
                   for q in range(spec.queries)]
        inflight: list[Probe] = []
        done: dict[int, list[Probe]] = {}
        last_hop = spec.max_hops  # lowered when the destination (or a dead end) answers
        next_hop = spec.first_hop
        while next_hop <= last_hop:
            while pending and len(inflight) < spec.window and pending[0].hop <= last_hop:
                probe = pending.pop(0)
                self.send(probe)
                inflight.append(probe)
            wait = min((p.expires_at for p in inflight), default=time.monotonic()) - time.monotonic()
            for fd, mask in poller.poll(max(0.0, wait) * 1000):
                for probe, result in self.method.ready(fd, mask):
                    if probe in inflight and probe.result is None:
                        probe.result = result
                        if result.reached or result.note:
                            last_hop = min(last_hop, probe.hop)
            now = time.monotonic()
            for probe in list(inflight):
                if probe.result is None and probe.expires_at <= now:
                    probe.result = ProbeResult(probe.hop, probe.index)
                if probe.result is not None:
                    inflight.remove(probe)
                    self.method.forget(probe)
                    done.setdefault(probe.hop, []).append(probe)
            while next_hop <= last_hop and len(done.get(next_hop, ())) == spec.queries:
                probes = sorted(done.pop(next_hop), key=lambda p: p.index)
                yield Hop(next_hop, [p.result for p in probes])
                next_hop += 1
            if not pending and not inflight and next_hop <= last_hop:
                break

    def send(self, probe: Probe) -> None:
        """Send one probe; a probe that cannot leave this host has its result at once."""
        probe.expires_at = time.monotonic() + self.spec.wait
        try:
            probe.sent_ns = self.method.send(probe)
        except OSError as exc:
            probe.result = ProbeResult(probe.hop, probe.index, note=_send_note(exc))
            probe.expires_at = 0.0

    def answer(self, probe: Probe, addr: str, recv_ns: int, *, kind: int = 0, code: int = 0,
               reached: bool = False) -> ProbeResult:
        """The result of a probe from what came back: time exceeded from a hop, or the
        destination (reached), or an unreachable with traceroute's mark."""
        note = None
        if not reached and not icmp.is_time_exceeded(self.family, kind):
            note = icmp.short_code(self.family, kind, code)
            reached = note is None and addr == self.addr  # port unreachable from the target
        rtt = max(0, recv_ns - probe.sent_ns)
        return ProbeResult(probe.hop, probe.index, addr, rtt, note, reached or addr == self.addr)


def _send_note(exc: OSError) -> str:
    import os
    return {errno.EHOSTUNREACH: "!H", errno.ENETUNREACH: "!N", errno.EACCES: "!X"}.get(
        exc.errno, f"!<{os.strerror(exc.errno or 0)}>")


# ---- methods ------------------------------------------------------------------------


class _IcmpMethod:
    """Echo requests on one EchoSocket; the sequence number names the probe."""

    def __init__(self, tracer: Tracer, poller):
        from pysock.probes.icmpsock import EchoSocket
        self.tracer = tracer
        spec = tracer.spec
        self.sock = EchoSocket(tracer.family, privileged=tracer.privileged, source=spec.source,
                               device=spec.device)
        poller.register(self.sock.fileno, select.POLLIN | select.POLLERR)
        self.by_seq: dict[int, Probe] = {}
        self.seq = 0
        self.payload = icmp.fill_payload(DATA, None)

    def send(self, probe: Probe) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        self.by_seq[self.seq] = probe
        probe.seq = self.seq
        self.sock.set_ttl(probe.hop)
        packet = icmp.echo_request(self.tracer.family, self.sock.ident, self.seq, self.payload)
        sent = time.time_ns()
        self.sock.sendto(packet, self.tracer.sockaddr)
        return sent

    def ready(self, fd: int, mask: int):
        out = []
        for item in self.sock.read(bool(mask & select.POLLERR)):
            probe = self.by_seq.get(item.seq)
            if probe is None:
                continue
            if item.error is None:
                out.append((probe, self.tracer.answer(probe, item.addr, item.recv_ns, reached=True)))
            elif not item.local:
                out.append((probe, self.tracer.answer(probe, item.addr, item.recv_ns,
                                                      kind=item.icmp_type, code=item.icmp_code)))
        return out

    def forget(self, probe: Probe) -> None:
        if self.by_seq.get(probe.seq) is probe:
            del self.by_seq[probe.seq]

    def close(self) -> None:
        self.sock.close()


class _SocketPerProbe:
    """UDP and TCP: a socket per probe, so whatever that socket hears is its answer."""

    kind = socket.SOCK_DGRAM
    events = select.POLLIN | select.POLLERR

    def __init__(self, tracer: Tracer, poller):
        self.tracer, self.poller = tracer, poller
        self.by_fd: dict[int, Probe] = {}
        self.count = 0

    def _socket(self, probe: Probe) -> socket.socket:
        sock = socket.socket(self.tracer.family, self.kind)
        try:
            sock.setblocking(False)
            errqueue.want_errors(sock)
            set_ttl(sock, probe.hop)
            errqueue.want_stamps(sock)
            spec = self.tracer.spec
            if spec.device:
                bind_device(sock, spec.device)
            if spec.source:
                sock.bind((spec.source, 0))
        except BaseException:
            sock.close()
            raise
        probe.sock = sock
        self.by_fd[sock.fileno()] = probe
        self.poller.register(sock.fileno(), self.events)
        return sock

    def _dest(self, port: int) -> tuple:
        return (self.tracer.sockaddr[0], port, *self.tracer.sockaddr[2:])

    def _answered(self, fd: int):
        """(the probe behind fd, its ICMP answer or None); (None, None) if it is gone."""
        probe = self.by_fd.get(fd)
        if probe is None or probe.sock is None:
            return None, None
        return probe, self._icmp_answer(probe)

    def _icmp_answer(self, probe: Probe):
        """The ICMP error on this probe's socket, if there is one."""
        try:
            err = errqueue.read_error(probe.sock, 512)
        except OSError:
            return None
        if err is None or not err.is_icmp or err.offender is None:
            return None
        return self.tracer.answer(probe, err.offender, err.recv_ns, kind=err.icmp_type,
                                  code=err.icmp_code)

    def forget(self, probe: Probe) -> None:
        if probe.sock is not None:
            self.by_fd.pop(probe.sock.fileno(), None)
            self.poller.unregister(probe.sock)
            probe.sock.close()
            probe.sock = None

    def close(self) -> None:
        for probe in list(self.by_fd.values()):
            self.forget(probe)


class _UdpMethod(_SocketPerProbe):
    def send(self, probe: Probe) -> int:
        sock = self._socket(probe)
        base = self.tracer.spec.port or UDP_BASE_PORT
        port = (base + self.count) if not self.tracer.spec.port else base
        self.count += 1
        sock.connect(self._dest(port))
        sent = time.time_ns()
        sock.send(bytes(DATA))
        return sent

    def ready(self, fd: int, mask: int):
        probe, result = self._answered(fd)
        if probe is None:
            return []
        if result is None and mask & select.POLLIN:
            try:
                _, anc, _, addr = probe.sock.recvmsg(2048, errqueue.ANCILLARY, socket.MSG_DONTWAIT)
                result = self.tracer.answer(probe, addr[0], stamp_and_ttl(anc)[0], reached=True)
            except OSError:
                return []
        return [(probe, result)] if result is not None else []


class _TcpMethod(_SocketPerProbe):
    kind = socket.SOCK_STREAM
    events = select.POLLOUT | select.POLLERR

    def send(self, probe: Probe) -> int:
        sock = self._socket(probe)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sent = time.time_ns()
        code = sock.connect_ex(self._dest(self.tracer.spec.port or 80))
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, errno.errorcode.get(code, "error"))
        return sent

    def ready(self, fd: int, mask: int):
        probe, result = self._answered(fd)
        if probe is None:
            return []
        if result is None:
            now = time.time_ns()
            code = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code in (0, errno.ECONNREFUSED):  # SYN-ACK or RST: the destination itself
                result = self.tracer.answer(probe, self.tracer.addr, now, reached=True)
            else:  # failed here, with no ICMP to say where
                result = ProbeResult(probe.hop, probe.index, note=_send_note(OSError(code, "")))
        return [(probe, result)]


def name_of(addr: str, cache: dict[str, str | None]) -> str | None:
    """Reverse DNS for a hop, asked once per address."""
    if addr not in cache:
        try:
            cache[addr] = socket.gethostbyaddr(addr)[0]
        except (OSError, UnicodeError):
            cache[addr] = None
    return cache[addr]
