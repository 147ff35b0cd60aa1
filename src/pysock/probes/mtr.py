"""mtr's mode of trace: the whole path probed again and again, every hop at once in
each round (one probe per hop), and per hop mtr's statistics: loss, sent, last,
average, best, worst and standard deviation of the round trip.

It drives the same Tracer methods (ICMP echo, UDP, TCP SYN) as the hop-by-hop
trace; only the schedule differs."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pysock.probes.trace import Probe, ProbeResult, Tracer


@dataclass
class HopStats:
    """One hop's figures over the rounds so far (mtr's report columns)."""

    hop: int
    addr: str | None = None  # the address that answered last
    addrs: list[str] = field(default_factory=list)  # every address seen, first first
    sent: int = 0
    received: int = 0
    last_ns: int | None = None
    best_ns: int | None = None
    worst_ns: int | None = None
    _mean: float = 0.0  # Welford's running mean and sum of squared deviations (ns)
    _m2: float = 0.0

    def add(self, result: ProbeResult) -> None:
        self.sent += 1
        if result.rtt_ns is None:
            return
        rtt = result.rtt_ns
        self.received += 1
        self.last_ns = rtt
        self.best_ns = rtt if self.best_ns is None else min(self.best_ns, rtt)
        self.worst_ns = rtt if self.worst_ns is None else max(self.worst_ns, rtt)
        delta = rtt - self._mean
        self._mean += delta / self.received
        self._m2 += delta * (rtt - self._mean)
        if result.addr is not None:
            self.addr = result.addr
            if result.addr not in self.addrs:
                self.addrs.append(result.addr)

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def avg_ns(self) -> float | None:
        return self._mean if self.received else None

    @property
    def stdev_ns(self) -> float | None:
        """The sample standard deviation, as mtr computes it (0 for one reply)."""
        if not self.received:
            return None
        return math.sqrt(self._m2 / (self.received - 1)) if self.received > 1 else 0.0


@dataclass
class Round:
    number: int  # 1, 2, ...
    results: list[ProbeResult]  # one per hop, first hop first, up to the last hop known


class Repeater:
    """rounds() yields a Round each `interval` seconds, `count` times (None: until
    the caller stops); stats holds the per-hop figures, up to the last hop."""

    def __init__(self, tracer: Tracer, count: int | None, interval: float):
        self.tracer, self.count, self.interval = tracer, count, interval
        self.last_hop = tracer.spec.max_hops
        self.stats: dict[int, HopStats] = {}

    def rounds(self) -> Iterator[Round]:
        number = 0
        while self.count is None or number < self.count:
            number += 1
            started = time.monotonic()
            results = self._round(number)
            for result in results:
                if result.reached or result.note:
                    self.last_hop = min(self.last_hop, result.hop)
            kept = [r for r in results if r.hop <= self.last_hop]
            for result in kept:
                self.stats.setdefault(result.hop, HopStats(result.hop)).add(result)
            for hop in [h for h in self.stats if h > self.last_hop]:
                del self.stats[hop]  # beyond the destination, found in a later round
            yield Round(number, kept)
            if self.count is None or number < self.count:
                time.sleep(max(0.0, started + self.interval - time.monotonic()))

    def hops(self) -> list[HopStats]:
        return [self.stats[h] for h in sorted(self.stats)]

    def _round(self, number: int) -> list[ProbeResult]:
        """One probe to every hop at once; each answered or given up after the wait."""
        tracer, spec = self.tracer, self.tracer.spec
        probes = [Probe(hop, number - 1) for hop in range(spec.first_hop, self.last_hop + 1)]
        for probe in probes:
            tracer.send(probe)
        pending = {p for p in probes if p.result is None}
        deadline = time.monotonic() + min(spec.wait, max(self.interval, 0.05))
        while pending:
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            for fd, mask in tracer.poller.poll(wait * 1000):
                for probe, result in tracer.method.ready(fd, mask):
                    if probe in pending:
                        probe.result = result
                        pending.discard(probe)
        for probe in probes:
            if probe.result is None:
                probe.result = ProbeResult(probe.hop, probe.index)
            tracer.method.forget(probe)
        return [p.result for p in probes]
