"""The connect scan: many non-blocking connects in flight on one epoll loop.

A plain loop rather than asyncio: a coroutine per port costs 7 to 14 s for all
65535 ports of loopback. Each probe connects a non-blocking socket and at once asks
again (a second connect(): EALREADY while the handshake is on its way, the refusal
or success once it is over). On loopback, and on any fast path, the answer is
already there: a refused socket is unconnected again and probes the next port, so
the common case costs two system calls and no socket, epoll or close per port.
Probes still in flight wait in epoll and their fate is read from SO_ERROR. SO_LINGER
0 makes close() send RST, so open ports leave no TIME_WAIT behind and services see a
reset, not a half-finished conversation.

To this machine's own addresses the answer comes within the connect() itself once
the socket lock is let go, so there the probe socket is a blocking one whose send
timeout (which bounds connect) is one clock tick: one system call per port instead
of two, and at worst a tick lost before a silent port is left to epoll (after which
that host is probed the ordinary way). That socket is also bound to a port of its
own, which the kernel keeps across refused connects, so it skips the search for a
free ephemeral port each time (together about 1 µs of the 11 µs a port costs)."""

from __future__ import annotations

import _socket  # the C socket type: no Python-level __init__ per probe (~1.5 µs each)
import errno
import gc
import select
import socket
import struct
from collections import deque
from collections.abc import Callable

from pysock.errors import NetworkError
from pysock.net.route import is_local
from pysock.probes.scan.model import CLOSED, FILTERED, OPEN, Target, Timing, Verdict
from pysock.probes.scan.timing import PortScan, default_connect_concurrency, estimators, monotonic

LINGER_RESET = struct.pack("ii", 1, 0)
ONE_TICK = struct.pack("ll", 0, 1)  # a struct timeval of 1 µs: the kernel rounds up to a tick
MIN_CONCURRENCY = 8
BURST = 32
RTT_SAMPLING = 8  # feed the estimator one answer in 8: plenty, and cheaper per probe

# errno after a failed connect -> (state, reason); reasons are nmap's --reason words
OUTCOMES = {
    0: (OPEN, "syn-ack"),
    errno.ECONNREFUSED: (CLOSED, "conn-refused"),
    errno.EHOSTUNREACH: (FILTERED, "host-unreach"),
    errno.ENETUNREACH: (FILTERED, "net-unreach"),
    errno.EACCES: (FILTERED, "admin-prohibited"),
    errno.EPERM: (FILTERED, "admin-prohibited"),
    errno.ETIMEDOUT: (FILTERED, "no-response"),
    errno.EHOSTDOWN: (FILTERED, "host-down"),
}
# answers from the target itself: only these time the round trip (an EHOSTUNREACH
# after a failed ARP comes seconds late and says nothing about the path)
TIMED = (0, -1, errno.ECONNREFUSED)
# no socket or no local port to spare right now: wait for some in flight to finish
SHORTAGES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL,
             errno.EAGAIN)


class _Probe:
    __slots__ = ("sock", "fd", "host", "port", "attempt", "sent_at", "live")

    def __init__(self, sock, host, port, attempt, sent_at):
        self.sock, self.fd, self.host, self.port = sock, sock.fileno(), host, port
        self.attempt, self.sent_at, self.live = attempt, sent_at, True


class ConnectScan(PortScan):
    """Scan ports on targets; run() returns {target index: {port: Verdict}}."""

    splittable = True  # workers.run_split may share the ports among processes

    def __init__(self, targets: list[Target], ports: list[int], timing: Timing,
                 on_progress: Callable[[int], None] | None = None):
        super().__init__(targets, timing, on_progress)
        self.rtt = estimators(len(targets), timing.timeout)
        self.inflight: dict[int, _Probe] = {}
        self.by_host: list[deque[_Probe]] = [deque() for _ in targets]
        self.retry: deque[tuple[int, int, int]] = deque()
        # ports: a list, or (workers.SharedPorts) (hosts, ports) chunks taken as we go
        chunks = [(range(len(targets)), ports)] if isinstance(ports, list) else ports
        self.fresh = ((h, p, 0) for hosts, chunk in chunks for h in hosts for p in chunk)
        self.fresh_left = True
        self.done = 0
        self.answers = 0
        # (family, quick) -> an unconnected socket to reuse; quick: the blocking kind
        self.spare: dict[tuple[int, bool], _socket.socket] = {}
        self.quick: list[bool | None] = [None] * len(targets)  # per host, found on first use
        self.held: dict[int, int] = {}  # family -> the port the quick socket is bound to

    def default_window(self) -> int:
        return default_connect_concurrency()  # raises the descriptor limit: only if asked

    # ---- the loop -----------------------------------------------------------

    def run(self) -> list[dict[int, Verdict]]:
        self.epoll = select.epoll()
        collecting = gc.isenabled()
        gc.disable()  # a verdict per port and no cycles: collections would only walk them
        try:
            while self.fresh_left or self.retry or self.inflight:
                self._send()
                wait = self._poll_wait()
                most = max(64, len(self.inflight))
                events = self.epoll.poll(wait, most)
                for fd, _ in events:
                    self._answered(self.inflight.pop(fd))
                if len(events) < most:  # every answer that arrived is read: now expire
                    self._expire(monotonic())
                self._report()
        finally:
            for probe in self.inflight.values():
                probe.sock.close()
            for sock in self.spare.values():
                sock.close()
            self.inflight.clear()
            self.spare.clear()
            self.epoll.close()
            if collecting:
                gc.enable()
        return self.results

    def _poll_wait(self) -> float:
        now = monotonic()
        waits = []
        for host, queue in enumerate(self.by_host):
            while queue and not queue[0].live:
                queue.popleft()
            if queue:
                waits.append(self.rtt[host].timeout - (now - queue[0].sent_at))
        if (self.fresh_left or self.retry) and len(self.inflight) < self.limit:
            waits.append(self.rate.wait(now))
        return max(0.0, min(waits)) if waits else 0.0

    def _report(self) -> None:
        if self.done:
            self.on_progress(self.done)
            self.done = 0

    # ---- sending ------------------------------------------------------------

    def _next(self) -> tuple[int, int, int] | None:
        if self.retry:
            return self.retry.popleft()
        if self.fresh_left:
            job = next(self.fresh, None)
            if job is None:
                self.fresh_left = False
            return job
        return None

    def _send(self) -> None:
        # Small bursts between polls: answers are read while they are fresh (on loopback
        # they are there at once), and thousands of half-open sockets never pile up
        # unless the network is slow enough to need them.
        now = monotonic()
        for _ in range(BURST):
            if len(self.inflight) >= self.limit:
                return
            if self.rate.interval:
                now = monotonic()
                if self.rate.wait(now) > 0:
                    return
            job = self._next()
            if job is None:
                return
            if not self._start(*job, now):
                self.retry.appendleft(job)
                return
            self.rate.sent(now)

    def _start(self, host: int, port: int, attempt: int, now: float) -> bool:
        """Connect one probe; False when out of descriptors or ports."""
        target = self.targets[host]
        quick = self.quick[host]
        if quick is None:
            quick = self.quick[host] = not self.timing.source_port and is_local(target.addr)
        quick = quick and port != self.held.get(target.family)  # the bound port would meet itself
        sock = self.spare.pop((target.family, quick), None)
        if sock is None:
            try:
                sock = self._socket(target, quick)
            except OSError as exc:
                return self._shortage(exc)
        dest = (target.addr, port)
        code = sock.connect_ex(dest)
        if code == errno.EINPROGRESS:
            if quick:  # no answer within a tick: this host is not that quick after all
                self.quick[host] = False
            code = sock.connect_ex(dest)  # over already? (loopback: nearly always)
            if code == errno.EALREADY:
                probe = _Probe(sock, host, port, attempt, now)
                self.inflight[probe.fd] = probe
                self.by_host[host].append(probe)
                self.epoll.register(probe.fd, select.EPOLLOUT)
                return True
        if code == errno.ECONNREFUSED:  # unconnected again: the next probe can use it
            self.spare[target.family, quick] = sock
            self._settle(host, port, code, monotonic() - now)
            return True
        if code in (0, errno.EISCONN):
            self._settle(host, port, self._connected(sock), monotonic() - now)
            sock.close()
            return True
        sock.close()
        if code in SHORTAGES:
            return self._shortage(OSError(code, ""))
        if code == errno.ENETUNREACH:
            raise NetworkError(f"network is unreachable for {target.label}: no route to it")
        self._settle(host, port, code, None)
        return True

    def _socket(self, target: Target, quick: bool) -> _socket.socket:
        if not quick:
            sock = _socket.socket(target.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            if self.timing.source_port:
                self._bind_source(sock, target)
            return sock
        sock = _socket.socket(target.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, ONE_TICK)
            self.held[target.family] = _hold_port(sock, target.family)
        except OSError:
            sock.close()
            raise
        return sock

    def _bind_source(self, sock: socket.socket, target: Target) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        wildcard = "::" if target.family == socket.AF_INET6 else "0.0.0.0"
        try:
            sock.bind((wildcard, self.timing.source_port))
        except OSError as exc:
            sock.close()
            raise NetworkError(f"cannot send from source port {self.timing.source_port}: "
                               f"{exc.strerror.lower()}") from None

    def _shortage(self, exc: OSError) -> bool:
        """Out of descriptors (EMFILE) or local ports: shrink the window and wait."""
        if exc.errno not in SHORTAGES:
            raise exc
        if not self.inflight:
            raise NetworkError(f"cannot open a socket to scan with: {exc.strerror or exc}")
        self.limit = max(MIN_CONCURRENCY, len(self.inflight) - MIN_CONCURRENCY)
        return False

    # ---- answers ------------------------------------------------------------

    def _answered(self, probe: _Probe) -> None:
        sock = probe.sock
        probe.live = False
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        rtt = monotonic() - probe.sent_at
        if code == 0:
            code = self._connected(sock)
        self._settle(probe.host, probe.port, code, rtt)
        sock.close()

    @staticmethod
    def _connected(sock) -> int:
        """A connected probe: reset on close; -1 when it met itself (nobody listens)."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        return -1 if _self_connected(sock) else 0

    def _settle(self, host: int, port: int, code: int, rtt: float | None) -> None:
        outcome = OUTCOMES.get(code)
        if outcome is None:
            outcome = (CLOSED, "self-connect") if code == -1 else \
                (FILTERED, errno.errorcode.get(code, str(code)).lower())
        state, reason = outcome
        if rtt is not None and code in TIMED:
            self.answers += 1
            if self.answers % RTT_SAMPLING == 1:
                self.rtt[host].sample(rtt)
        self.results[host][port] = Verdict(state, reason, rtt)
        self.done += 1

    def _expire(self, now: float) -> None:
        for host, queue in enumerate(self.by_host):
            timeout = self.rtt[host].timeout
            while queue and now - queue[0].sent_at >= timeout:
                probe = queue.popleft()
                if not probe.live:
                    continue  # answered already
                probe.live = False
                del self.inflight[probe.fd]
                probe.sock.close()
                if probe.attempt < self.timing.retries:
                    self.retry.append((host, probe.port, probe.attempt + 1))
                else:
                    self.results[host][probe.port] = Verdict(FILTERED, "no-response")
                    self.done += 1


def _hold_port(sock: _socket.socket, family: int) -> int | None:
    """Bind sock to a free port by number (the kernel keeps a port asked for by
    number when a connect fails; one it picked itself goes back each time). The
    number comes from a bind to port 0 of a throwaway socket; if another socket
    takes it meanwhile, sock stays unbound and connect picks as usual."""
    wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
    with socket.socket(family, socket.SOCK_STREAM) as finder:
        finder.bind((wildcard, 0))
        port = finder.getsockname()[1]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((wildcard, port))
    except OSError:
        return None
    return port


def _self_connected(sock: socket.socket) -> bool:
    """A connect to a loopback port in the ephemeral range can meet itself (TCP
    simultaneous open): local == peer means nobody was listening."""
    try:
        return sock.getsockname()[:2] == sock.getpeername()[:2]
    except OSError:
        return False
