"""Scenarios, contenders and the alternating runner.

A scenario measures one thing (seconds, GB/s, µs) for several tools in the same
run: after a warm-up each contender runs once per round, A B C A B C ... (or with
both_orders A B C C B A ...), and the report gives median, min and max per tool and
the ratio to the best peer. A contender's run() does the work once, checks the work
was done (raising BenchFailure otherwise, so a fast wrong run cannot win) and
returns the value."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class BenchFailure(AssertionError):
    """A run that did not do the work it was timed for."""


@dataclass
class Contender:
    tool: str
    run: Callable[[Any], float]  # env from the scenario's setup -> the measured value
    peer: bool = True  # False for pysock itself; ratios compare pysock to the best peer
    ceiling: bool = False  # a reference such as iperf3, shown but not a peer to beat


@dataclass
class Scenario:
    name: str
    unit: str  # "s", "ms", "µs", "GB/s", "pkt/s", ...
    better: str  # "lower" or "higher"
    contenders: list[Contender]
    setup: Callable[[], contextlib.AbstractContextManager] | None = None
    rounds: int = 5
    note: str = ""
    both_orders: bool = False  # every other round runs the contenders in reverse order


@dataclass
class Row:
    tool: str
    values: list[float]
    peer: bool
    ceiling: bool
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None


@dataclass
class Outcome:
    scenario: Scenario
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0

    def best_peer(self) -> Row | None:
        peers = [r for r in self.rows if r.peer and not r.ceiling and r.median is not None]
        if not peers:
            return None
        pick = min if self.scenario.better == "lower" else max
        return pick(peers, key=lambda r: r.median)

    def ratio(self, row: Row) -> float | None:
        """row / best peer, oriented so that > 1.0 means slower (lower-is-better)
        or faster (higher-is-better) exactly as the raw numbers read."""
        best = self.best_peer()
        if best is None or row.median is None or not best.median:
            return None
        return row.median / best.median


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


def run_scenario(scenario: Scenario, rounds: int | None = None, log=print) -> Outcome:
    rounds = rounds or scenario.rounds
    outcome = Outcome(scenario)
    rows = {c.tool: Row(c.tool, [], c.peer, c.ceiling) for c in scenario.contenders}
    outcome.rows = list(rows.values())
    start = time.monotonic()
    with (scenario.setup or _nothing)() as env:
        live = list(scenario.contenders)
        for round_no in range(rounds + 1):  # round 0 is the warm-up, not recorded
            order = list(live)
            if scenario.both_orders and round_no % 2:
                order.reverse()  # A B, B A: neither runs always right after the other
            for c in order:
                try:
                    value = c.run(env)
                except Exception as exc:  # a tool that fails is reported, not fatal
                    rows[c.tool].error = f"{type(exc).__name__}: {exc}"[:200]
                    live.remove(c)
                    log(f"  {scenario.name}: {c.tool} failed: {rows[c.tool].error}")
                    continue
                if round_no:
                    rows[c.tool].values.append(value)
    outcome.seconds = time.monotonic() - start
    return outcome


def failed_outcome(scenario: Scenario, error: str) -> Outcome:
    """A scenario that could not run at all (its set-up failed): every tool failed."""
    rows = [Row(c.tool, [], c.peer, c.ceiling, error) for c in scenario.contenders]
    return Outcome(scenario, rows)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result
