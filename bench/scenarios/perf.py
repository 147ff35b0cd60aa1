"""perf: pysock perf against iperf3 on loopback, in the same run, alternating:
one TCP stream (plain and -Z), -P 4 aggregate, each figure the receiver's own
(the sum_received line of the -J document, pysock's receiver summary), and the
server's CPU seconds per GB received (iperf3 -s vs pysock perf -s)."""

from __future__ import annotations

import json
import os
import subprocess
import time

from bench.core import BenchFailure, Contender, Scenario
from bench.tools import PYSOCK, free_port, have, pysock_has, run, start, stop, wait_listening


def _server(tool: str, port: int) -> subprocess.Popen:
    if tool == "iperf3":
        return start(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL)
    return start([PYSOCK, "perf", "-s", "--one-off", "-p", str(port), "127.0.0.1"],
                 stdout=subprocess.DEVNULL)


def _received(tool: str, port: int, seconds: float, extra: list[str]) -> tuple[int, float]:
    """(bytes, bits/s) the receiver reported."""
    if tool == "iperf3":
        argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-J", "-t", str(seconds), *extra]
    else:
        argv = [PYSOCK, "perf", "-p", str(port), "--json", "-t", str(seconds), *extra,
                "127.0.0.1"]
    out = run(argv, timeout=seconds + 60, stdout=subprocess.PIPE)
    if out.returncode != 0:
        raise BenchFailure(f"{tool} client exited {out.returncode}: {out.stderr[-200:]!r}")
    if tool == "iperf3":
        total = json.loads(out.stdout)["end"]["sum_received"]
    else:
        records = [json.loads(line) for line in out.stdout.splitlines()]
        total = next(r for r in records if r.get("type") == "summary" and r["stream"] is None
                     and r["direction"] == "receiver")
    return total["bytes"], total["bits_per_second"]


def _reap(server: subprocess.Popen, timeout: float = 30):
    """Wait (bounded) for a one-off server to end; its resource usage."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(server.pid, os.WNOHANG)
        if pid:
            server.returncode = os.waitstatus_to_exitcode(status)
            return usage
        time.sleep(0.05)
    raise BenchFailure("the one-off server did not end after its test")


def _test(tool: str, seconds: float, extra: list[str], measure: str):
    def go(_env) -> float:
        port = free_port()
        server = _server(tool, port)
        try:
            wait_listening(port, proc=server)
            nbytes, bps = _received(tool, port, seconds, extra)
            usage = _reap(server)
        finally:
            stop(server)
        if measure == "cpu":
            return (usage.ru_utime + usage.ru_stime) / (nbytes / 1e9)
        return bps / 8e9
    return go


BLOCKS = ("both send 128 KiB blocks (iperf3's default --length, and pysock's); iperf3 reads "
          "into a 128 KiB buffer as data comes, pysock into a 512 KiB one once that much "
          "waits (SO_RCVLOWAT); neither sets SO_SNDBUF/SO_RCVBUF")


def _scenario(title: str, seconds: float, extra: list[str], rounds: int,
              measure: str = "rate") -> Scenario:
    flags = " ".join(extra)
    contenders = [Contender(f"pysock perf {flags}".strip(), _test("pysock", seconds, extra,
                                                                    measure), peer=False),
                  Contender(f"iperf3 {flags}".strip(), _test("iperf3", seconds, extra, measure))]
    unit, better = ("s/GB", "lower") if measure == "cpu" else ("GB/s", "higher")
    return Scenario(f"perf: {title}, {seconds:g} s on loopback", unit, better, contenders,
                    rounds=rounds, note=BLOCKS, both_orders=True)


# ---- request/response latency vs sockperf ping-pong ------------------------------------------

SOCKPERF_MSG = 14  # sockperf's smallest message (its header); pysock sends the same size


def _rr_pysock(seconds: float, percentile: str, size: int = SOCKPERF_MSG, udp: bool = False):
    def go(_env) -> float:
        port = free_port()
        server = start([PYSOCK, "perf", "-s", "-p", str(port), "127.0.0.1"])
        try:
            wait_listening(port, proc=server)
            out = run([PYSOCK, "perf", "--rr", "--json", "-t", str(seconds), "--request-size",
                       str(size), "--response-size", str(size), "-p", str(port),
                       *(["-u"] if udp else []),
                       "127.0.0.1"], timeout=seconds + 60, stdout=subprocess.PIPE)
            if out.returncode != 0:
                raise BenchFailure(f"pysock --rr exited {out.returncode}: {out.stderr[-200:]!r}")
            return json.loads(out.stdout)[percentile]
        finally:
            stop(server)
    return go


def _rr_sockperf(seconds: float, percentile: str, udp: bool = False):
    wanted = {"p50_us": "50.000", "p99_us": "99.000"}[percentile]
    tcp = [] if udp else ["--tcp"]

    def go(_env) -> float:
        port = free_port()
        server = start(["sockperf", "sr", *tcp, "-i", "127.0.0.1", "-p", str(port)],
                       stdout=subprocess.DEVNULL)
        try:
            _wait_bound(port, udp, server)
            out = run(["sockperf", "pp", *tcp, "-i", "127.0.0.1", "-p", str(port), "-t",
                       str(int(max(seconds, 1))), "-m", str(SOCKPERF_MSG), "--full-rtt"],
                      timeout=seconds + 60, stdout=subprocess.PIPE)
            for line in out.stdout.decode(errors="replace").splitlines():
                if f"percentile {wanted} =" in line:
                    return float(line.rsplit("=", 1)[1])
            raise BenchFailure(f"no percentile {wanted} in sockperf's output")
        finally:
            stop(server)
    return go


def _wait_bound(port: int, udp: bool, server: subprocess.Popen, timeout: float = 10) -> None:
    if not udp:
        return wait_listening(port, proc=server)
    suffix = f":{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as table:
            if any(line.split()[1].endswith(suffix) for line in list(table)[1:]):
                return
        time.sleep(0.02)
    raise BenchFailure(f"sockperf did not bind UDP port {port}")


def _rr_scenario(seconds: float, percentile: str, rounds: int, udp: bool = False) -> Scenario:
    proto = "UDP" if udp else "TCP"
    contenders = [Contender("pysock perf --rr" + (" -u" if udp else ""),
                            _rr_pysock(seconds, percentile, udp=udp), peer=False),
                  Contender("sockperf ping-pong" + ("" if udp else " --tcp"),
                            _rr_sockperf(seconds, percentile, udp))]
    if not udp:
        contenders.append(Contender("pysock perf --rr, 1-byte messages",
                                    _rr_pysock(seconds, percentile, 1), peer=False))
    return Scenario(f"perf --rr: {proto} round trip {percentile[:-3]}, {SOCKPERF_MSG}-byte "
                    f"messages, {seconds:g} s on loopback", "µs", "lower", contenders,
                    rounds=rounds, both_orders=True,
                    note=f"both closed loop (one request outstanding) over {proto}"
                         f"{' with TCP_NODELAY' if not udp else ''}, each its own client and "
                         "server; sockperf --full-rtt reports the round trip, not its default "
                         "half, and leaves out its first 400 ms (warm-up); its smallest message "
                         "is 14 bytes" + ("" if udp else ", the 1-byte row is pysock alone"))


def scenarios(quick: bool):
    if not (pysock_has("perf") and have("iperf3")):
        return
    if quick:
        yield _scenario("one TCP stream", 1, [], 1)
        if have("sockperf"):
            yield _rr_scenario(1, "p50_us", 1)
        return
    yield _scenario("one TCP stream", 10, [], 4)
    yield _scenario("one TCP stream, zero copy", 10, ["-Z"], 4)
    yield _scenario("four TCP streams, aggregate", 5, ["-P", "4"], 3)
    yield _scenario("server CPU per GB received, one stream", 5, [], 3, measure="cpu")
    if have("sockperf"):
        yield _rr_scenario(3, "p50_us", 4)
        yield _rr_scenario(3, "p99_us", 4)
        yield _rr_scenario(3, "p50_us", 4, udp=True)
