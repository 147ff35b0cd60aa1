"""The SYN scan: half-open probes on raw sockets, answers matched by address,
ports and sequence number.

One raw TCP socket per family sends a prebuilt SYN (packets.SynTemplate) per port
and also receives every TCP segment addressed to this host; a raw ICMP socket
catches destination-unreachable errors. A SYN-ACK is open, a RST closed, ICMP
unreachable or silence after retries filtered. Our kernel answers each SYN-ACK
with a RST because no socket of its own made the connection; that is what
nmap's SYN scan relies on too, and it only tears down the target's half-open
connection after we have read the SYN-ACK. The source port is held by a bound
TCP socket so no local program is handed it while the scan runs."""

from __future__ import annotations

import errno
import random
import select
import socket
from collections import deque
from collections.abc import Callable

from pysock.errors import NetworkError, PysockError
from pysock.probes.scan import packets
from pysock.probes.scan.model import CLOSED, FILTERED, OPEN, Target, Timing, Verdict
from pysock.probes.scan.timing import RateLimit, RttEstimator, monotonic

DEFAULT_WINDOW = 2048  # SYNs in flight; answers queue in the raw socket's buffer meanwhile
RECV_BUFFER = 8 << 20
RTT_SAMPLING = 8  # feed the estimator one answer in 8: plenty, and cheaper per packet
SO_RCVBUFFORCE = 33  # not in the socket module: <asm-generic/socket.h>
ICMP_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
PRIVILEGE = ("--syn needs raw sockets: run as root or with the CAP_NET_RAW capability "
             "(or drop --syn for a connect scan)")


def raw_socket(family: int, proto: int) -> socket.socket:
    try:
        sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, proto)
    except PermissionError:
        raise PysockError(PRIVILEGE) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECV_BUFFER)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
    return sock


def source_address(target: Target) -> str:
    """The address this host sends from towards target (a route look-up, no packet)."""
    with socket.socket(target.family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((target.addr, 9))
        except OSError as exc:
            raise NetworkError(f"cannot scan {target.label}: {exc.strerror.lower()}") from None
        return probe.getsockname()[0]


class SynScan:
    """run() returns {target index: {port: Verdict}}, like ConnectScan."""

    def __init__(self, targets: list[Target], ports: list[int], timing: Timing,
                 on_progress: Callable[[int], None] | None = None):
        self.targets = targets
        self.ports = ports
        self.timing = timing
        self.limit = timing.concurrency or DEFAULT_WINDOW
        self.on_progress = on_progress or (lambda n: None)
        self.rtt = [RttEstimator(timing.timeout) for _ in targets]
        self.rate = RateLimit(timing.rate)
        self.results: list[dict[int, Verdict]] = [{} for _ in targets]
        self.sent: list[dict[int, tuple[float, int]]] = [{} for _ in targets]  # port -> (at, try)
        self.by_host: list[deque[tuple[float, int, int]]] = [deque() for _ in targets]
        self.retry: deque[tuple[int, int, int]] = deque()
        self.fresh = ((h, p, 0) for h in range(len(targets)) for p in ports)
        self.fresh_left = len(targets) * len(ports)
        self.inflight = 0
        self.done = 0
        self.answers = 0
        self.seq = random.getrandbits(32)

    def run(self) -> list[dict[int, Verdict]]:
        self.sockets: dict[int, socket.socket] = {}  # family -> raw TCP socket
        self.icmp: dict[int, socket.socket] = {}
        self.holds: list[socket.socket] = []
        try:
            self._open()
            self._loop()
        finally:
            for sock in [*self.sockets.values(), *self.icmp.values(), *self.holds]:
                sock.close()
        return self.results

    # ---- set-up -------------------------------------------------------------

    def _open(self) -> None:
        self.sport: dict[int, int] = {}  # family -> our source port
        for family in {t.family for t in self.targets}:
            self.sockets[family] = raw_socket(family, socket.IPPROTO_TCP)
            self.icmp[family] = raw_socket(family, ICMP_PROTO[family])
            self.sport[family] = self._hold_port(family)
            packets.only_to_port(self.sockets[family], family, self.sport[family])
        self.templates = []
        self.index: dict[str, int] = {}  # target address -> target index
        for i, target in enumerate(self.targets):
            src = source_address(target)
            self.templates.append(packets.SynTemplate(
                target.family, src, target.addr, self.sport[target.family], self.seq))
            self.index[target.addr] = i

    def _hold_port(self, family: int) -> int:
        """A source port no local socket will be given while we use it."""
        hold = socket.socket(family, socket.SOCK_STREAM)
        self.holds.append(hold)
        wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
        try:
            hold.bind((wildcard, self.timing.source_port or 0))
        except OSError:
            if not self.timing.source_port:
                raise
            return self.timing.source_port  # in use by someone else: send from it anyway
        return hold.getsockname()[1]

    # ---- the loop -----------------------------------------------------------

    def _loop(self) -> None:
        poller = select.epoll()
        handlers = {}
        for family, sock in self.sockets.items():
            poller.register(sock.fileno(), select.EPOLLIN)
            handlers[sock.fileno()] = (self._read_tcp, sock, family)
        for family, sock in self.icmp.items():
            poller.register(sock.fileno(), select.EPOLLIN)
            handlers[sock.fileno()] = (self._read_icmp, sock, family)
        try:
            while self.fresh_left or self.retry or self.inflight:
                self._send()
                for fd, _ in poller.poll(self._poll_wait()):
                    read, sock, family = handlers[fd]
                    read(sock, family)
                self._expire(monotonic())
                if self.done:
                    self.on_progress(self.done)
                    self.done = 0
        finally:
            poller.close()

    def _poll_wait(self) -> float:
        now = monotonic()
        waits = []
        for host, queue in enumerate(self.by_host):
            self._drop_answered(host, queue)
            if queue:
                waits.append(self.rtt[host].timeout - (now - queue[0][0]))
        if (self.fresh_left or self.retry) and self.inflight < self.limit:
            waits.append(self.rate.wait(now))
        return max(0.0, min(waits)) if waits else 0.0

    def _drop_answered(self, host: int, queue) -> None:
        sent = self.sent[host]
        while queue and sent.get(queue[0][1], (0, -1))[1] != queue[0][2]:
            queue.popleft()

    def _send(self) -> None:
        burst = 0
        now = monotonic()
        while self.inflight < self.limit and burst < 256:  # read answers between bursts
            if self.rate.interval:
                now = monotonic()
                if self.rate.wait(now) > 0:
                    return
            if self.retry:
                host, port, attempt = self.retry.popleft()
            elif self.fresh_left:
                self.fresh_left -= 1
                host, port, attempt = next(self.fresh)
            else:
                return
            target = self.targets[host]
            try:
                self.sockets[target.family].sendto(self.templates[host].for_port(port),
                                                   (target.addr, 0))
            except OSError as exc:
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                    self.retry.appendleft((host, port, attempt))
                    return
                raise NetworkError(f"cannot send to {target.label}: {exc.strerror.lower()}") from None
            self.sent[host][port] = (now, attempt)
            self.by_host[host].append((now, port, attempt))
            self.inflight += 1
            self.rate.sent(now)
            burst += 1

    # ---- answers ------------------------------------------------------------

    def _read_tcp(self, sock: socket.socket, family: int) -> None:
        expect_ack = (self.seq + 1) & 0xFFFFFFFF
        v4 = family == socket.AF_INET
        unpack, index, settle = packets.TCP_HEADER.unpack_from, self.index, self._settle
        while True:
            try:
                packet, peer = sock.recvfrom(128)
            except BlockingIOError:
                return
            offset = (packet[0] & 0x0F) * 4 if v4 else 0
            if len(packet) < offset + 14:
                continue
            sport, dport, _, ack, _, flags = unpack(packet, offset)
            if ack != expect_ack:
                continue
            host = index.get(peer[0])
            if host is None:
                continue
            if flags & packets.TCP_RST:
                settle(host, sport, CLOSED, "reset")
            elif flags & packets.TCP_SYN and flags & packets.TCP_ACK:
                settle(host, sport, OPEN, "syn-ack")

    def _read_icmp(self, sock: socket.socket, family: int) -> None:
        while True:
            try:
                packet = sock.recv(1500)
            except BlockingIOError:
                return
            quoted = packets.icmp_error(packet, family)
            if quoted is None:
                continue
            dst, sport, dport, seq, code = quoted
            host = self.index.get(dst)
            if host is not None and sport == self.sport[family] and seq == self.seq:
                reason = packets.ICMP_REASONS.get((family, code), f"icmp-code-{code}")
                self._settle(host, dport, FILTERED, reason)

    def _settle(self, host: int, port: int, state: str, reason: str) -> None:
        sent = self.sent[host].pop(port, None)
        if sent is None:
            # a late answer after the port was given up on still tells the truth
            earlier = self.results[host].get(port)
            if earlier is not None and earlier.reason == "no-response":
                self.results[host][port] = Verdict(state, reason)
            return
        rtt = monotonic() - sent[0]
        self.answers += 1
        if self.answers % RTT_SAMPLING == 1:
            self.rtt[host].sample(rtt)
        self.results[host][port] = Verdict(state, reason, rtt)
        self.inflight -= 1
        self.done += 1

    def _expire(self, now: float) -> None:
        for host, queue in enumerate(self.by_host):
            timeout = self.rtt[host].timeout
            sent = self.sent[host]
            while queue and now - queue[0][0] >= timeout:
                _, port, attempt = queue.popleft()
                if sent.get(port, (0, -1))[1] != attempt:
                    continue
                del sent[port]
                self.inflight -= 1
                if attempt < self.timing.retries:
                    self.retry.append((host, port, attempt + 1))
                else:
                    self.results[host][port] = Verdict(FILTERED, "no-response")
                    self.done += 1
