"""ping on a veth pair between two namespaces made here (and always removed):
RTT median against iputils ping (with the difference in µs), CPU per packet at
-i 0.01, flood rate against ping -f, and 64 hosts at once against fping."""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.core import BenchFailure, Contender, Scenario
from bench.tools import PYSOCK, have, pysock_has

TIME = re.compile(r" time=([\d.]+) ms")
FLOOR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pingfloor.py")
SENT = re.compile(r"(\d+) packets transmitted, (\d+) received")


@dataclass
class Pair:
    a: str  # namespace names
    b: str
    addr: str  # b's first address, as seen from a
    many: list[str] = field(default_factory=list)  # more addresses of b
    last: dict[str, float] = field(default_factory=dict)  # tool -> last value, for differences


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def veth_pair(extra: int = 0) -> Iterator[Pair]:
    """Two namespaces joined by a veth pair; b answers on 10.251.0.2 and `extra` more."""
    tag = f"pb{os.getpid() % 100000}"
    a, b = f"{tag}a", f"{tag}b"
    try:
        _ip("netns", "add", a)
        _ip("netns", "add", b)
        _ip("link", "add", "pbv0", "netns", a, "type", "veth", "peer", "name", "pbv1", "netns", b)
        _ip("-n", a, "addr", "add", "10.251.0.1/16", "dev", "pbv0")
        _ip("-n", b, "addr", "add", "10.251.0.2/16", "dev", "pbv1")
        many = [f"10.251.1.{i}" for i in range(1, extra + 1)]
        for addr in many:
            _ip("-n", b, "addr", "add", f"{addr}/16", "dev", "pbv1")
        for ns, dev in ((a, "pbv0"), (b, "pbv1")):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        pair = Pair(a, b, "10.251.0.2", many)
        _run(pair, ["ping", "-c", "1", "-W", "2", pair.addr])  # neighbours resolved before timing
        yield pair
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


class _Tracked(subprocess.Popen):
    """A Popen that reaps with wait4, keeping the child's own rusage."""

    def _try_wait(self, wait_flags):
        pid, sts, usage = os.wait4(self.pid, wait_flags)
        if pid == self.pid:
            self._cpu = usage.ru_utime + usage.ru_stime
        return pid, sts


def _run(pair: Pair, argv: list[str], timeout: float = 120) -> tuple[str, float]:
    """Run argv inside namespace a: (stdout, user+sys CPU seconds of that child)."""
    proc = _Tracked(["ip", "netns", "exec", pair.a, *argv], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchFailure(f"{argv[0]} did not finish within {timeout}s") from None
    if proc.returncode not in (0, 1):
        raise BenchFailure(f"{argv[:3]} exited {proc.returncode}: {err[-200:]!r}")
    return out.decode(errors="replace"), getattr(proc, "_cpu", 0.0)


def _received(out: str, want: int, what: str) -> None:
    found = SENT.search(out)
    if not found or int(found.group(2)) < want:
        raise BenchFailure(f"{what}: expected {want} replies, got {out[-300:]!r}")


# ---- RTT median -----------------------------------------------------------------------


def _rtt(tool: str, argv: list[str], count: int):
    def go(pair: Pair) -> float:
        out, _ = _run(pair, [*argv, "-c", str(count), "-i", "0.05", pair.addr])
        times = [float(t) for t in TIME.findall(out)]
        if len(times) < count * 0.9:
            raise BenchFailure(f"{tool}: {len(times)} of {count} replies")
        pair.last[tool] = statistics.median(times) * 1000
        return pair.last[tool]
    return go


def _difference(pair: Pair) -> float:
    if "pysock" not in pair.last or "iputils" not in pair.last:
        raise BenchFailure("no RTT pair measured in this round")
    return pair.last["pysock"] - pair.last["iputils"]


# ---- CPU per packet -------------------------------------------------------------------


def _cpu(tool: str, argv: list[str], count: int):
    def go(pair: Pair) -> float:
        out, cpu = _run(pair, [*argv, "-q", "-c", str(count), "-i", "0.01", pair.addr])
        _received(out, int(count * 0.95), tool)
        return cpu / count * 1e6
    return go


def _cpu_marginal(argv: list[str], count: int):
    """The same run less a one-probe run: what each further packet costs, start-up aside."""
    def go(pair: Pair) -> float:
        out, cpu = _run(pair, [*argv, "-q", "-c", str(count), "-i", "0.01", pair.addr])
        _received(out, int(count * 0.95), "pysock")
        _, once = _run(pair, [*argv, "-q", "-c", "1", pair.addr])
        return max(0.0, cpu - once) / (count - 1) * 1e6
    return go


def _cpu_floor(count: int):
    """bench/pingfloor.py: pysock's system calls per packet in a bare Python loop."""
    def go(pair: Pair) -> float:
        argv = [sys.executable, FLOOR, pair.addr, str(count), "0.01"]
        out, cpu = _run(pair, argv)
        _received(out, int(count * 0.95), "the bare loop")
        _, once = _run(pair, [sys.executable, FLOOR, pair.addr, "1", "0.01"])
        return max(0.0, cpu - once) / (count - 1) * 1e6
    return go


# ---- flood ------------------------------------------------------------------------------


def _flood(tool: str, argv: list[str], seconds: int):
    def go(pair: Pair) -> float:
        started = time.monotonic()
        out, _ = _run(pair, [*argv, "-f", "-q", "-w", str(seconds), pair.addr],
                              timeout=seconds + 30)
        took = time.monotonic() - started
        found = SENT.search(out)
        if not found or int(found.group(2)) < 100:
            raise BenchFailure(f"{tool}: flood got {out[-200:]!r}")
        return int(found.group(2)) / min(took, seconds)
    return go


# ---- many hosts ---------------------------------------------------------------------------


def _many(tool: str, count: int):
    def go(pair: Pair) -> float:
        if tool == "fping":
            argv = ["fping", "-q", "-c", str(count), "-p", "100", *pair.many]
        else:
            argv = [PYSOCK, "ping", "-q", "-c", str(count), "-i", "0.1", *pair.many]
        started = time.monotonic()
        proc = subprocess.run(["ip", "netns", "exec", pair.a, *argv], capture_output=True,
                              text=True, timeout=120)
        took = time.monotonic() - started
        if proc.returncode != 0:
            raise BenchFailure(f"{tool} exited {proc.returncode}: {proc.stderr[-300:]!r}")
        return took
    return go


def scenarios(quick: bool):
    if os.geteuid() != 0 or not have("ip", "ping") or not pysock_has("ping"):
        return
    rounds = 2 if quick else 5
    pysock = [PYSOCK, "ping"]
    count = 10 if quick else 100
    yield Scenario(
        "ping: RTT median on a veth pair", "µs", "lower",
        [Contender("pysock", _rtt("pysock", pysock, count), peer=False),
         Contender("iputils", _rtt("iputils", ["ping"], count)),
         Contender("pysock − iputils (µs)", _difference, ceiling=True)],
        setup=veth_pair, rounds=rounds,
        note=f"{count} probes at -i 0.05 each; median of the per-reply times each tool prints")
    packets = 100 if quick else 1000
    yield Scenario(
        f"ping: CPU per packet, -i 0.01 x {packets}", "µs", "lower",
        [Contender("pysock", _cpu("pysock", pysock, packets), peer=False),
         Contender("pysock, start-up excluded", _cpu_marginal(pysock, packets), peer=False),
         Contender("iputils", _cpu("iputils", ["ping"], packets)),
         Contender("bare Python loop, same system calls, start-up excluded",
                   _cpu_floor(packets), ceiling=True)],
        setup=veth_pair, rounds=rounds,
        note="user+sys of the child (wait4 rusage) / packets; start-up included except in "
             "the rows that subtract a one-probe run. The bare loop (bench/pingfloor.py) "
             "makes pysock's system calls per packet and nothing else: Python's floor here")
    seconds = 1 if quick else 5
    yield Scenario(
        f"ping: flood rate, -f for {seconds} s", "pkt/s", "higher",
        [Contender("pysock", _flood("pysock", pysock, seconds), peer=False),
         Contender("iputils ping -f", _flood("iputils", ["ping"], seconds))],
        setup=veth_pair, rounds=rounds, note="replies received per second")
    hosts, per_host = (8, 3) if quick else (64, 10)
    contenders = [Contender("pysock", _many("pysock", per_host), peer=False)]
    if have("fping"):
        contenders.append(Contender("fping", _many("fping", per_host)))
    yield Scenario(
        f"ping: {hosts} hosts x {per_host} at once", "s", "lower", contenders,
        setup=lambda: veth_pair(hosts), rounds=rounds,
        note="wall time; pysock -i 0.1 vs fping -p 100, every host must answer")
