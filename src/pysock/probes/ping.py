"""The ping session: one schedule for any number of hosts, iputils' rules for
when to send and when to stop, and one prober that does the packets (ICMP echo
here, TCP/UDP ports in portping.py). The session yields events; it never prints."""

from __future__ import annotations

import math
import select
import socket
import time
from collections.abc import Iterator

from pysock.errors import ExitStatus, PysockError
from pysock.probes import icmp
from pysock.probes.stats import Stats

FLOOD_GAP = 0.01  # flood: send on each reply, or at least a hundred times a second
CAP_WAIT = 1.0  # never sleep longer than this between checks


# Plain classes, not dataclasses: importing dataclasses (inspect, ast, dis) costs
# more of ping's start-up than its whole quick path (see probes/icmp.Echo).


class PingSpec:
    __slots__ = ("count", "interval", "timeout", "deadline", "size", "ttl", "pattern", "flood",
                 "source", "device", "privileged", "stagger")

    def __init__(self, count: int | None = None, interval: float = 1.0, timeout: float = 10.0,
                 deadline: float | None = None, size: int = 56, ttl: int | None = None,
                 pattern: bytes | None = None, flood: bool = False, source: str | None = None,
                 device: str | None = None, privileged: bool | None = None,
                 stagger: float = 0.01):
        self.count, self.interval = count, interval
        self.timeout = timeout  # -W: how long to wait after the last probe when nothing came back
        self.deadline = deadline  # -w
        self.size, self.ttl, self.pattern, self.flood = size, ttl, pattern, flood
        self.source, self.device = source, device
        self.privileged = privileged  # None: raw if allowed, else a ping socket
        self.stagger = stagger  # between the first probes of successive hosts

    def __repr__(self) -> str:
        return "PingSpec(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def __eq__(self, other) -> bool:
        return type(other) is PingSpec and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, k) for k in self.__slots__))


class Target:
    def __init__(self, name: str, addr: str, family: socket.AddressFamily, sockaddr: tuple):
        self.name = name  # as the user typed it
        self.addr, self.family, self.sockaddr = addr, family, sockaddr
        self.stats = Stats()
        self.sent_ns: dict[int, int] = {}  # seq -> CLOCK_REALTIME ns
        self.answered: set[int] = set()
        self.next_at = 0.0  # monotonic time of the next probe
        self.last_sent_at: float | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.last_activity: float | None = None  # the last probe sent or answer read
        self.done = False

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {self.addr!r})"

    @property
    def elapsed_us(self) -> int:
        """iputils' span: from the first probe to the last thing that happened (the
        waiting for late replies at the end is not counted)."""
        if self.started_at is None:
            return 0
        end = self.last_activity if self.last_activity is not None else time.monotonic()
        return int((end - self.started_at) * 1e6)

    @property
    def elapsed_ms(self) -> int:
        """iputils' 'time Nms'."""
        return (self.elapsed_us + 500) // 1000


class Answer:
    """What a prober read, matched to a target and a sequence number."""

    __slots__ = ("target", "seq", "recv_ns", "addr", "error", "ttl", "size", "data",
                 "checksum_ok", "state")

    def __init__(self, target: Target, seq: int, recv_ns: int, addr: str,
                 error: str | None = None, ttl: int | None = None, size: int | None = None,
                 data: bytes = b"", checksum_ok: bool = True, state: str | None = None):
        self.target, self.seq, self.recv_ns, self.addr = target, seq, recv_ns, addr
        self.error, self.ttl, self.size, self.data = error, ttl, size, data
        self.checksum_ok = checksum_ok
        self.state = state  # port pings: open / closed


class Sent:
    __slots__ = ("target", "seq")

    def __init__(self, target: Target, seq: int):
        self.target, self.seq = target, seq


class Reply:
    __slots__ = ("target", "seq", "addr", "ttl", "size", "rtt_us", "rtt_ns", "duplicate",
                 "corrupt", "truncated", "wrong_byte", "state", "data")

    def __init__(self, target: Target, seq: int, addr: str, ttl: int | None, size: int | None,
                 rtt_us: int, rtt_ns: int, duplicate: bool = False, corrupt: bool = False,
                 truncated: bool = False, wrong_byte: tuple[int, int, int] | None = None,
                 state: str | None = None, data: bytes = b""):
        self.target, self.seq, self.addr, self.ttl, self.size = target, seq, addr, ttl, size
        self.rtt_us, self.rtt_ns = rtt_us, rtt_ns
        self.duplicate, self.corrupt, self.truncated = duplicate, corrupt, truncated
        self.wrong_byte = wrong_byte  # (index, expected, got)
        self.state = state
        self.data = data  # the echoed data, kept only when it came back wrong


class Failure:
    """An ICMP error about one of our probes, or a probe that could not be sent."""

    __slots__ = ("target", "seq", "addr", "text")

    def __init__(self, target: Target, seq: int, addr: str | None, text: str):
        self.target, self.seq = target, seq
        self.addr = addr  # who reported it (a router, this host); None: sending failed here
        self.text = text


class Finished:
    __slots__ = ("target",)

    def __init__(self, target: Target):
        self.target = target


Event = Sent | Reply | Failure | Finished


class Session:
    def __init__(self, targets: list[Target], spec: PingSpec, prober):
        self.targets = targets
        self.spec = spec
        self.prober = prober
        self.payload = icmp.fill_payload(spec.size, spec.pattern)
        self.rapid = spec.interval == 0  # -f without -i, or -i 0: paced by the replies
        self.skip = icmp.STAMP.size if spec.size >= icmp.STAMP.size else 0  # the time stamp

    def events(self) -> Iterator[Event]:
        poller = select.poll()
        self.prober.open(self.targets, poller, self.spec, self.payload)
        try:
            yield from self._loop(poller)
        finally:
            self.prober.close()

    # ---- the loop ------------------------------------------------------------

    def _loop(self, poller) -> Iterator[Event]:
        start = time.monotonic()
        deadline_at = start + self.spec.deadline if self.spec.deadline else None
        for i, target in enumerate(self.targets):
            target.next_at = start + i * self.spec.stagger
        active = list(self.targets)
        clock, poll, ready = time.monotonic, poller.poll, self.prober.ready
        expire = self.prober.expire if self.prober.expires else None
        while active:
            now = clock()
            for target in active:
                if target.next_at <= now and self._may_send(target, now, deadline_at):
                    sent = self._sent(target, now)
                    yield sent
                    failure = self._transmit(target, sent.seq)
                    if failure is not None:
                        yield failure
            now = clock()
            over = [t for t in active if self._over(t, now, deadline_at)]
            if over:  # answers queued while this process waited for a CPU still count
                yield from self._drain(poll, ready)
            for target in over:
                active.remove(target)
                target.done, target.ended_at = True, clock()
                yield Finished(target)
            if not active:
                return
            for fd, mask in poll(self._next_wake(active, now, deadline_at) * 1000):
                for answer in ready(fd, mask):
                    event = self._account(answer)
                    if event is not None:
                        yield event
            if expire is not None:
                expire(clock())

    def _drain(self, poll, ready) -> Iterator[Event]:
        for fd, mask in poll(0):
            for answer in ready(fd, mask):
                event = self._account(answer)
                if event is not None:
                    yield event

    def _may_send(self, target: Target, now: float, deadline_at: float | None) -> bool:
        spec = self.spec
        if spec.count and target.stats.transmitted >= spec.count and not spec.deadline:
            return False
        return deadline_at is None or now < deadline_at

    def _sent(self, target: Target, now: float) -> Sent:
        """The bookkeeping of a probe about to go (its Sent event comes first: -f's dot)."""
        stats = target.stats
        seq = (stats.transmitted + 1) & 0xFFFF
        target.answered.discard(seq)
        stats.sent()
        if target.started_at is None:
            target.started_at = now
        target.last_sent_at = target.last_activity = now
        if self.rapid:
            target.next_at = now + FLOOD_GAP
        else:
            target.next_at = max(target.next_at + self.spec.interval, now)
        return Sent(target, seq)

    def _transmit(self, target: Target, seq: int) -> Failure | None:
        try:
            target.sent_ns[seq] = self.prober.send(target, seq)
        except OSError as exc:
            target.stats.error(seq)
            return Failure(target, seq, None, exc.strerror or str(exc))
        return None

    def _over(self, target: Target, now: float, deadline_at: float | None) -> bool:
        spec, stats = self.spec, target.stats
        if deadline_at is not None and now >= deadline_at:
            return True
        if spec.count and stats.received + stats.errors >= spec.count:
            return True
        if spec.deadline and stats.errors:
            return True
        if spec.count and stats.transmitted >= spec.count and not spec.deadline:
            return now >= target.last_sent_at + self._linger(stats)
        return False

    def _linger(self, stats: Stats) -> float:
        """iputils' schedule_exit(): twice the longest RTT (at least one interval) once
        something came back, else -W."""
        if stats.received:
            return max(2 * stats.tmax / 1e6, self.spec.interval)
        return self.spec.timeout

    def _next_wake(self, active: list[Target], now: float, deadline_at: float | None) -> float:
        wake = now + CAP_WAIT
        for target in active:
            if self._may_send(target, now, deadline_at):
                wake = min(wake, target.next_at)
            elif target.last_sent_at is not None:
                wake = min(wake, target.last_sent_at + self._linger(target.stats))
        if deadline_at is not None:
            wake = min(wake, deadline_at)
        if self.prober.expires:
            wake = min(wake, self.prober.next_expiry())
        return max(0.0, wake - now)

    # ---- answers -------------------------------------------------------------

    def _account(self, answer: Answer) -> Event | None:
        target, seq = answer.target, answer.seq
        sent_ns = target.sent_ns.get(seq)
        if sent_ns is None or target.done:
            return None  # not a probe of ours that is still wanted
        stats = target.stats
        target.last_activity = time.monotonic()
        if answer.error is not None:
            stats.error(seq)
            return Failure(target, seq, answer.addr, answer.error)
        rtt_ns = answer.recv_ns - sent_ns
        rtt_us = max(0, rtt_ns // 1000)
        duplicate = seq in target.answered
        corrupt = not answer.checksum_ok
        stats.reply(seq, rtt_us, duplicate=duplicate, corrupt=corrupt)
        if not corrupt:
            target.answered.add(seq)
        if self.rapid and stats.acked == stats.transmitted & 0xFFFF:
            target.next_at = time.monotonic()
        wrong = self._wrong_byte(answer)
        return Reply(target, seq, answer.addr, answer.ttl, answer.size, rtt_us, rtt_ns, duplicate,
                     corrupt, self._truncated(answer), wrong, answer.state,
                     answer.data if wrong else b"")

    def _truncated(self, answer: Answer) -> bool:
        return answer.size is not None and answer.state is None and \
            answer.size < self.spec.size + icmp.HEADER.size

    def _wrong_byte(self, answer: Answer) -> tuple[int, int, int] | None:
        data, payload = answer.data, self.payload
        if answer.state is not None or data[self.skip:len(payload)] == payload[self.skip:len(data)]:
            return None  # (the common case, without a call)
        where = icmp.first_wrong_byte(data, payload, self.skip)
        if where is None:
            return None
        return where, payload[where], data[where]


# ---- ICMP echo ----------------------------------------------------------------


class EchoProber:
    """Echo requests on one EchoSocket per address family in use."""

    expires = False  # no probe of its times out by itself: -W and the schedule decide

    def __init__(self, min_interval: float = 0.0):
        self.min_interval = min_interval  # for unprivileged (datagram) sockets
        self.sockets: dict[int, object] = {}  # family -> EchoSocket
        self.by_fd: dict[int, object] = {}
        self.by_addr: dict[tuple[int, str], Target] = {}
        self.only: dict[int, Target] = {}  # the one target of a family, if there is one

    def open(self, targets: list[Target], poller, spec: PingSpec, payload: bytes) -> None:
        from pysock.probes.icmpsock import EchoSocket
        self.payload = payload
        self.templates: dict[int, icmp.EchoTemplate] = {}
        for family in sorted({t.family for t in targets}):
            sock = EchoSocket(family, privileged=spec.privileged, source=spec.source,
                              device=spec.device, ttl=spec.ttl)
            self.sockets[family] = sock
            self.templates[family] = icmp.EchoTemplate(family, sock.ident, payload)
            self.by_fd[sock.fileno] = sock
            if not sock.raw and spec.interval < self.min_interval:
                self.close()
                raise PysockError(f"cannot flood; minimal interval allowed for user is "
                                  f"{self.min_interval * 1000:g}ms", ExitStatus.USAGE)
            poller.register(sock.fileno, select.POLLIN | select.POLLERR)
        for target in targets:
            self.by_addr[(target.family, bare(target.addr))] = target
        for family in self.sockets:
            mine = [t for t in targets if t.family == family]
            if len(mine) == 1:
                self.only[family] = mine[0]

    def kind(self) -> str:
        return next(iter(self.sockets.values())).kind if self.sockets else "raw"

    def send(self, target: Target, seq: int) -> int:
        packet = self.templates[target.family].packet(seq, time.time_ns())
        sendto, sockaddr, clock = self.sockets[target.family].sendto, target.sockaddr, time.time_ns
        sent = clock()  # the last thing before the system call
        sendto(packet, sockaddr)
        return sent

    def ready(self, fd: int, mask: int) -> list[Answer]:
        sock = self.by_fd[fd]
        answers = []
        for item in sock.read(bool(mask & select.POLLERR)):
            target = self._target(sock.family, item.dest if item.error else item.addr)
            if target is None:
                continue
            if item.error is not None:
                answers.append(Answer(target, item.seq, item.recv_ns, item.addr, item.error))
            else:
                echo = item.echo
                answers.append(Answer(target, item.seq, item.recv_ns, item.addr, None, echo.ttl,
                                      echo.size, echo.data, echo.checksum_ok))
        return answers

    def _target(self, family: int, addr: str | None) -> Target | None:
        if addr is not None:
            found = self.by_addr.get((family, addr if "%" not in addr else bare(addr)))
            if found is not None:
                return found
        return self.only.get(family)  # one host pinged: answers from elsewhere are its too

    def expire(self, now: float) -> None:
        pass

    def next_expiry(self) -> float:
        return math.inf

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def bare(addr: str) -> str:
    """An address without its %scope, for matching."""
    return addr.split("%", 1)[0]


# ---- targets --------------------------------------------------------------------


def make_targets(hosts: list[str], *, family: int | None, numeric: bool) -> list[Target]:
    """Hosts as typed (addresses, names, CIDR blocks) -> one Target per distinct address."""
    targets: list[Target] = []
    seen: set[str] = set()
    for text in hosts:
        for host, af, sockaddr in _addresses(text, family, numeric):
            addr = bare(sockaddr[0])
            if addr not in seen:
                seen.add(addr)
                targets.append(Target(host, addr, af, (sockaddr[0], 0, *sockaddr[2:])))
    return targets


def _addresses(text: str, family: int | None, numeric: bool):
    """(host, family, sockaddr) for each host text stands for. A plain dotted quad is
    its own answer: no look-up, and no import of the resolver (start-up)."""
    if family in (None, 4) and _plain_ipv4(text):
        yield text, socket.AF_INET, (text, 0)
        return
    from pysock.net.address import parse_targets, resolve
    for host in parse_targets(text):
        try:
            addr = resolve(host, 0, family=family, numeric=numeric, socktype=socket.SOCK_DGRAM)[0]
        except PysockError as exc:  # ping's errors all end with status 2, as iputils'
            raise PysockError(exc.message, ExitStatus.USAGE) from None
        yield host, addr.family, addr.sockaddr


def _plain_ipv4(text: str) -> bool:
    """An IPv4 address written as getaddrinfo writes it back (a.b.c.d, no zeros in front)."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        p.isascii() and p.isdigit() and str(int(p)) == p and int(p) < 256 for p in parts)


def route_source(name: str, sockaddr: tuple, device: str | None = None,
                 action: str = "ping") -> str:
    """The address this machine would send from; a target with no route at all is an
    error before anything is sent, as in iputils."""
    from pysock.net.route import source_address

    try:
        return source_address(sockaddr[0], scope_id=sockaddr[3] if len(sockaddr) > 3 else 0,
                              device=device)
    except OSError as exc:
        raise PysockError(f"cannot {action} {name}: {(exc.strerror or str(exc)).lower()}",
                          ExitStatus.USAGE) from None
