"""The UDP scan: a datagram to each port (empty, or a request the service answers,
see payloads), from one socket per address family.

A reply is open; ICMP port unreachable is closed, other ICMP unreachables
filtered; silence after retries is open|filtered. The ICMP errors come back
through the socket's error queue (IP_RECVERR), which the kernel fills for
unprivileged sockets too, with the ICMP type and code and the address and port
the datagram was sent to; so no raw socket and no privilege are needed.

Hosts limit how many ICMP errors they send (Linux: a burst of 6, then one a
second per peer), so silence from a port can be rate limiting, not a firewall.
Ports are probed in rounds. Once a host has sent ICMP errors, each next round
waits until the host can send another one and is paced slower (as nmap slows
down); a round that brings answers does not use up a retry; after `retries`
rounds that bring nothing new, what is left is open|filtered."""

from __future__ import annotations

import errno
import select
import socket
from collections import deque
from collections.abc import Callable

from pysock.errors import NetworkError
from pysock.net import errqueue
from pysock.net.route import is_local
from pysock.probes.scan import packets
from pysock.probes.scan.model import CLOSED, FILTERED, OPEN, OPEN_FILTERED, Target, Timing, Verdict
from pysock.probes.scan.payloads import payload
from pysock.probes.scan.timing import PortScan, RttEstimator, monotonic

DEFAULT_WINDOW = 256
MIN_DELAY, MAX_DELAY = 0.05, 1.0  # pacing between probes to one host once ICMP is scarce
REFILL = 1.0  # Linux's net.ipv4.icmp_ratelimit: one ICMP error a second per peer after the burst
RECV_BUFFER = 4 << 20


class _Host:
    """Per-target round state."""

    def __init__(self, ports: list[int], ceiling: float | None):
        self.todo = set(ports)  # ports without a verdict
        self.pending: deque[int] = deque(ports)  # to send this round
        self.sent: dict[int, float] = {}  # in flight this round: port -> sent at
        self.expiry: deque[tuple[float, int]] = deque()
        self.rtt = RttEstimator(ceiling)
        self.delay = 0.0
        self.next_at = 0.0
        self.quiet = 0  # rounds in a row that brought no answer
        self.new = 0  # answers this round
        self.icmp_seen = False
        self.last_icmp = 0.0
        self.finished = False


class UdpScan(PortScan):
    """run() returns {target index: {port: Verdict}}, like the TCP scans."""

    splittable = False  # ICMP rate limits are per host: more processes would not be faster

    window = DEFAULT_WINDOW

    def __init__(self, targets: list[Target], ports: list[int], timing: Timing,
                 on_progress: Callable[[int], None] | None = None):
        super().__init__(targets, timing, on_progress)
        self.hosts = [_Host(ports, timing.timeout) for _ in targets]
        self.index = {t.addr: i for i, t in enumerate(targets)}
        self.inflight = 0
        self.done = 0

    def run(self) -> list[dict[int, Verdict]]:
        self.sockets = {family: self._socket(family) for family in {t.family for t in self.targets}}
        self.own_port = {family: sock.getsockname()[1] for family, sock in self.sockets.items()}
        poller = select.epoll()
        try:
            for sock in self.sockets.values():
                poller.register(sock.fileno(), select.EPOLLIN)
            while not all(h.finished for h in self.hosts):
                self._send()
                for fd, _ in poller.poll(self._poll_wait()):
                    self._read(self._by_fd(fd))
                now = monotonic()
                for i, host in enumerate(self.hosts):
                    self._expire(host, now)
                    if not host.finished and not host.pending and not host.sent:
                        self._end_round(i, host)
                if self.done:
                    self.on_progress(self.done)
                    self.done = 0
        finally:
            poller.close()
            for sock in self.sockets.values():
                sock.close()
        return self.results

    def _socket(self, family: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        errqueue.want_errors(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
        port = self.timing.source_port or 0
        if port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((wildcard, port))
        except OSError as exc:
            sock.close()
            raise NetworkError(f"cannot send from UDP source port {port}: {exc.strerror.lower()}") from None
        return sock

    def _by_fd(self, fd: int) -> tuple[int, socket.socket]:
        return next((f, s) for f, s in self.sockets.items() if s.fileno() == fd)

    # ---- sending ------------------------------------------------------------

    def _poll_wait(self) -> float:
        now = monotonic()
        waits = []
        for host in self.hosts:
            if host.expiry:
                waits.append(host.rtt.timeout - (now - host.expiry[0][0]))
            if host.pending and self.inflight < self.limit:
                waits.append(max(host.next_at - now, self.rate.wait(now)))
        return max(0.0, min(waits)) if waits else 0.0

    def _send(self) -> None:
        for i, host in enumerate(self.hosts):
            target = self.targets[i]
            while host.pending and self.inflight < self.limit:
                now = monotonic()
                if now < host.next_at or self.rate.wait(now) > 0:
                    break
                port = host.pending.popleft()
                failure = self._send_one(self.sockets[target.family], target, port)
                if failure == errno.EAGAIN:
                    host.pending.appendleft(port)
                    return
                if failure:  # this host refuses to let it out: say so for the port
                    reason = "local-" + errno.errorcode.get(failure, str(failure)).lower()
                    self._settle(i, port, FILTERED, reason)
                    continue
                host.sent[port] = now
                host.expiry.append((now, port))
                self.inflight += 1
                self.rate.sent(now)
                if host.delay:
                    host.next_at = now + host.delay
                    break

    @staticmethod
    def _send_one(sock: socket.socket, target: Target, port: int) -> int:
        """Send one probe; 0, EAGAIN (try later) or the errno of a local refusal.

        A socket with IP_RECVERR keeps the last ICMP error pending, and the next send
        fails with it without sending anything. So on failure the pending error is
        cleared (SO_ERROR) and the send tried once more; failing again, the error is
        this host's own (a firewall's output chain, no route)."""
        for attempt in (1, 2):
            try:
                sock.sendto(payload(port), (target.addr, port))
                return 0
            except BlockingIOError:
                return errno.EAGAIN
            except OSError as exc:
                if attempt == 2:
                    if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES,
                                     errno.EPERM, errno.ECONNREFUSED):
                        return exc.errno
                    raise NetworkError(f"cannot send to {target.label}: {exc.strerror.lower()}") from None
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return 0

    # ---- answers ------------------------------------------------------------

    def _read(self, family_sock: tuple[int, socket.socket]) -> None:
        family, sock = family_sock
        while True:
            try:
                _, peer = sock.recvfrom(2048)
            except BlockingIOError:
                break
            except OSError:
                continue  # the pending ICMP error, reported once here; read from the queue below
            host = self.index.get(peer[0])
            if host is None:
                continue
            if peer[1] == self.own_port[family] and is_local(self.targets[host].addr):
                # our own probe, sent to our own port on this machine: nobody else is there
                self._settle(host, peer[1], CLOSED, "self")
            else:
                self._settle(host, peer[1], OPEN, "udp-response")
        for err in errqueue.drain_errors(sock, 512):
            self._icmp(family, err)

    def _icmp(self, family: int, err: errqueue.QueuedError) -> None:
        host = self.index.get(err.dest[0]) if err.dest else None
        if host is None or not err.is_unreachable(family):
            return
        self.hosts[host].icmp_seen = True
        self.hosts[host].last_icmp = monotonic()
        port = err.dest[1]
        if err.is_port_unreachable(family):
            self._settle(host, port, CLOSED, "port-unreach")
        else:
            reason = packets.ICMP_REASONS.get((family, err.icmp_code), "unreach")
            self._settle(host, port, FILTERED, reason)

    def _settle(self, index: int, port: int, state: str, reason: str) -> None:
        host = self.hosts[index]
        if port not in host.todo:
            return
        host.todo.discard(port)
        sent = host.sent.pop(port, None)
        rtt = None
        if sent is not None:
            rtt = monotonic() - sent
            host.rtt.sample(rtt)
            self.inflight -= 1
        self.results[index][port] = Verdict(state, reason, rtt)
        host.new += 1
        self.done += 1

    # ---- rounds -------------------------------------------------------------

    def _expire(self, host: _Host, now: float) -> None:
        while host.expiry and now - host.expiry[0][0] >= host.rtt.timeout:
            at, port = host.expiry.popleft()
            if host.sent.get(port) == at:
                del host.sent[port]
                self.inflight -= 1

    def _end_round(self, index: int, host: _Host) -> None:
        if not host.todo:
            host.finished = True
            return
        host.quiet = 0 if host.new else host.quiet + 1
        host.new = 0
        if host.quiet > self.timing.retries:
            for port in host.todo:
                self.results[index][port] = Verdict(OPEN_FILTERED, "no-response")
            self.done += len(host.todo)
            host.todo.clear()
            host.finished = True
            return
        if host.icmp_seen:
            # The host does send ICMP errors, so silence may be its rate limit (Linux: a
            # burst of 6, then one a second). Start the next round once it has earned a
            # token again, and space the probes out more each round.
            host.delay = min(MAX_DELAY, max(MIN_DELAY, host.delay * 2))
            host.next_at = max(host.next_at, host.last_icmp + REFILL)
        host.pending.extend(sorted(host.todo))
