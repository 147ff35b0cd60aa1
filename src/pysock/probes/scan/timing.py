"""How long to wait for an answer and how fast to send: an RTT estimator per
host (RFC 6298, as TCP and nmap do), a send-rate ceiling, and a default for
the number of probes in flight derived from the open-file limit."""

from __future__ import annotations

import resource
import time

INITIAL_TIMEOUT = 1.0  # before any answer is measured (nmap: 1 s)
MIN_TIMEOUT = 0.1  # never give up sooner than this, however fast the host answers (nmap -T4)
MAX_TIMEOUT = 2.0
RESERVED_FDS = 64  # left for stdio, the epoll fd, /proc reads, rich
MAX_CONNECT_CONCURRENCY = 4096  # beyond this the loop, not the network, is the limit


class RttEstimator:
    """Smoothed round trip and its variance; the timeout is srtt + 4 * rttvar,
    kept between a floor and the user's ceiling."""

    def __init__(self, ceiling: float | None = None):
        self.fixed = ceiling
        self.ceiling = ceiling or MAX_TIMEOUT
        self.floor = min(MIN_TIMEOUT, self.ceiling)
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.timeout = min(INITIAL_TIMEOUT, self.ceiling)

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.timeout = min(self.ceiling, max(self.floor, self.srtt + 4 * self.rttvar))


class RateLimit:
    """At most `rate` sends per second (None: no ceiling)."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0

    def wait(self, now: float) -> float:
        """Seconds until the next send is allowed (0: now)."""
        return max(0.0, self.next_at - now) if self.interval else 0.0

    def sent(self, now: float) -> None:
        if self.interval:
            self.next_at = max(self.next_at, now - self.interval) + self.interval


def raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def default_connect_concurrency() -> int:
    """Sockets in flight for a connect scan: what the descriptor limit allows."""
    soft = raise_fd_limit()
    return max(8, min(MAX_CONNECT_CONCURRENCY, soft - RESERVED_FDS))


def monotonic() -> float:
    return time.monotonic()
