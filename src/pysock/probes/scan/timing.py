"""How long to wait for an answer and how fast to send: an RTT estimator per
host (RFC 6298, as TCP and nmap do), a send-rate ceiling, and a default for
the number of probes in flight derived from the open-file limit."""

from __future__ import annotations

import time

from pysock.net.fdlimit import raise_fd_limit

INITIAL_TIMEOUT = 1.0  # before any answer is measured (nmap: 1 s)
MIN_TIMEOUT = 0.1  # never give up sooner than this, however fast the host answers (nmap -T4)
GROUP_FLOOR = 0.25  # a silent host's wait when only its neighbours have answered
MAX_TIMEOUT = 2.0
RESERVED_FDS = 64  # left for stdio, the epoll fd, /proc reads, rich
MAX_CONNECT_CONCURRENCY = 4096
BURST_SECONDS = 0.01  # beyond this the loop, not the network, is the limit


class RttEstimator:
    """Smoothed round trip and its variance; the timeout is srtt + 4 * rttvar,
    kept between a floor and the user's ceiling.

    Estimators of the hosts of one scan share a group (nmap's group timing): a host
    that has not answered yet waits as long as the group's answers suggest (at least
    GROUP_FLOOR), not the 1 s start, so 250 absent hosts of a /24 do not cost a
    second each round while their neighbours answer in microseconds."""

    def __init__(self, ceiling: float | None = None, group: RttEstimator | None = None):
        self.fixed = ceiling
        self.ceiling = ceiling or MAX_TIMEOUT
        self.floor = min(MIN_TIMEOUT, self.ceiling)
        self.group = group
        self.srtt: float | None = None
        self.rttvar = 0.0
        self._own = min(INITIAL_TIMEOUT, self.ceiling)

    @property
    def timeout(self) -> float:
        group = self.group
        if self.srtt is None and group is not None and group.srtt is not None:
            return min(self._own, max(group.timeout, GROUP_FLOOR))
        return self._own

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self._own = min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar))
        if self.group is not None:
            self.group.sample(rtt)


def estimators(count: int, ceiling: float | None) -> list[RttEstimator]:
    """One estimator per host, all in one group."""
    group = RttEstimator(ceiling)
    return [RttEstimator(ceiling, group) for _ in range(count)]


class RateLimit:
    """A token bucket: on average at most `rate` sends a second (None: no ceiling).

    The bucket holds up to BURST_SECONDS' worth, because the loop sleeps in epoll,
    whose timer ticks in milliseconds: a sender allowed one probe at a time would
    never go faster than about a thousand a second."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self.capacity = max(1.0, rate * BURST_SECONDS) if rate else 0.0
        self.tokens = 1.0
        self.stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) / self.interval)
        self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until the next send is allowed (0: now)."""
        if not self.interval:
            return 0.0
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.interval

    def sent(self, now: float) -> None:
        if self.interval:
            self._refill(now)
            self.tokens -= 1


def default_connect_concurrency() -> int:
    """Sockets in flight for a connect scan: what the descriptor limit allows."""
    soft = raise_fd_limit()
    return max(8, min(MAX_CONNECT_CONCURRENCY, soft - RESERVED_FDS))


monotonic = time.monotonic


class PortScan:
    """What the connect, SYN and UDP scans share: their targets and timing, the
    window of probes in flight, progress, the rate limit, and a verdict per port of
    each target; run() returns those verdicts, {target index: {port: Verdict}}."""

    window = 256  # probes in flight unless the timing says

    def __init__(self, targets: list, timing, on_progress):
        self.targets = targets
        self.timing = timing
        self.limit = timing.concurrency or self.default_window()
        self.on_progress = on_progress or (lambda n: None)
        self.rate = RateLimit(timing.rate)
        self.results: list[dict] = [{} for _ in targets]

    def default_window(self) -> int:
        return self.window
