"""capture against tcpdump on a veth pair between two namespaces made here (and
always removed): small UDP datagrams at fixed rates (bench/udpblast.py, sendmmsg
in batches every millisecond) into a port the receiver drops with nftables.

- -w FILE (pcap: written by libpcap's loop; pcapng: pysock's ring walk): CPU per
  packet (the capture process's run time from schedstat, all
  threads, over the load only: start-up excluded) and kernel drops, with the same
  4 MiB ring / -B 4096 buffer;
- lines to a file (-n > FILE): packets written per second of load;
- start: from the command to its first packet (-c 1, a stream at 1000 pkt/s)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.core import BenchFailure, Contender, Scenario
from bench.tools import PYSOCK, have, pysock_has

PORT = 9999
DROPPED = re.compile(rb"(\d+) packets? dropped by kernel")
RECEIVED = re.compile(rb"(\d+) packets? received by filter")
DUMPCAP = re.compile(rb"received/dropped on interface '[^']*': (\d+)/(\d+)")
STARTED = (b"listening on", b"Capturing on")  # tcpdump's and pysock's, dumpcap's
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Pair:
    sender: str
    receiver: str
    iface: str  # the receiver's end
    addr: str
    files: str  # a directory for the captures
    drops: dict[str, float] = field(default_factory=dict)  # tool -> % dropped, last run


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def veth_pair() -> Iterator[Pair]:
    tag = f"cb{os.getpid() % 100000}"
    a, b = f"{tag}a", f"{tag}b"
    try:
        with tempfile.TemporaryDirectory(prefix="capbench") as files:
            _ip("netns", "add", a)
            _ip("netns", "add", b)
            _ip("link", "add", "cbv0", "netns", a, "type", "veth", "peer", "name", "cbv1",
                "netns", b)
            _ip("-n", a, "addr", "add", "10.252.9.1/24", "dev", "cbv0")
            _ip("-n", b, "addr", "add", "10.252.9.2/24", "dev", "cbv1")
            for ns, dev in ((a, "cbv0"), (b, "cbv1")):
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "link", "set", dev, "up")
            rules = ("table inet sink {\n chain input {\n type filter hook input priority 0;\n"
                     f" udp dport {PORT} drop\n }}\n}}\n")
            subprocess.run(["ip", "netns", "exec", b, "nft", "-f", "-"], input=rules.encode(),
                           check=True, capture_output=True, timeout=20)
            subprocess.run(["ip", "netns", "exec", a, "ping", "-c", "1", "-W", "2",
                            "10.252.9.2"], check=True, capture_output=True, timeout=20)
            yield Pair(a, b, "cbv1", "10.252.9.2", files)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


def _cpu_s(pid: int) -> float:
    """Run time of every thread of pid, from schedstat (nanoseconds, not ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            continue
    return total / 1e9


def _blast(pair: Pair, rate: int, seconds: float) -> int:
    out = subprocess.run(["ip", "netns", "exec", pair.sender, sys.executable, "-m",
                          "bench.udpblast", pair.addr, str(PORT), str(rate), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 30, cwd=REPO)
    if out.returncode != 0:
        raise BenchFailure(f"udpblast: {out.stderr[-200:]!r}")
    return int(out.stdout)


class Capture:
    """A capture started in the receiver namespace and waited for ('listening on')."""

    def __init__(self, pair: Pair, argv: list[str], stdout=subprocess.DEVNULL):
        self.proc = subprocess.Popen(["ip", "netns", "exec", pair.receiver, *argv],
                                     stdout=stdout, stderr=subprocess.PIPE,
                                     start_new_session=True)
        seen, deadline = b"", time.monotonic() + 30
        while not any(mark in seen for mark in STARTED):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise BenchFailure(f"{argv[0]} did not start: {seen[-200:]!r}")
            seen += os.read(self.proc.stderr.fileno(), 4096)
        time.sleep(0.3)  # the rest of its start-up is not the load's

    def stop(self) -> tuple[int, int]:
        """(received by filter, dropped by kernel) from the closing lines."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
        err = err or b""
        if both := DUMPCAP.search(err):
            return int(both.group(1)), int(both.group(2))
        got, lost = RECEIVED.search(err), DROPPED.search(err)
        if not got or not lost:
            raise BenchFailure(f"no closing lines: {err[-200:]!r}")
        return int(got.group(1)), int(lost.group(1))


def _write_argv(tool: str, pair: Pair) -> list[str]:
    if tool == "tcpdump":
        return ["tcpdump", "-i", pair.iface, "-B", "4096", "-w", f"{pair.files}/t.pcap", "udp"]
    if tool == "dumpcap":  # Wireshark's capture engine, the usual pcapng writer
        return ["dumpcap", "-q", "-i", pair.iface, "-B", "4", "-w", f"{pair.files}/d.pcapng",
                "-f", "udp"]
    if tool == "pysock-pcap":  # libpcap's own loop writes it (probes/capture/libpcap.py)
        return [PYSOCK, "capture", "-i", pair.iface, "-w", f"{pair.files}/p.pcap", "udp"]
    return [PYSOCK, "capture", "-i", pair.iface, "-w", f"{pair.files}/p.pcapng", "udp"]


def _cpu_per_packet(tool: str, rate: int, seconds: float):
    def go(pair: Pair) -> float:
        cap = Capture(pair, _write_argv(tool, pair))
        try:
            before = _cpu_s(cap.proc.pid)
            sent = _blast(pair, rate, seconds)
            time.sleep(0.3)  # the last ring block handed over
            used = _cpu_s(cap.proc.pid) - before
        finally:
            received, dropped = cap.stop()
        if received < sent * 0.9:
            raise BenchFailure(f"{tool}: {received} received of {sent} sent")
        pair.drops[tool] = 100.0 * dropped / max(received, 1)
        return used / sent * 1e6
    return go


def _drops(tool: str):
    def go(pair: Pair) -> float:
        if tool not in pair.drops:
            raise BenchFailure("no run of this tool in this round")
        return pair.drops.pop(tool)
    return go


def _lines_per_second(tool: str, rate: int, seconds: float):
    def go(pair: Pair) -> float:
        argv = (["tcpdump", "-n", "-i", pair.iface, "-B", "4096", "udp"] if tool == "tcpdump"
                else [PYSOCK, "capture", "-n", "-i", pair.iface, "udp"])
        with open(f"{pair.files}/lines", "wb") as out:
            cap = Capture(pair, argv, stdout=out)
            try:
                _blast(pair, rate, seconds)
                time.sleep(0.3)
            finally:
                cap.stop()
        with open(f"{pair.files}/lines", "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return lines / seconds
    return go


def _first_packet(argv_of):
    """Seconds from spawning the capture to its exit after -c 1, with a stream on."""
    def go(pair: Pair) -> float:
        stream = subprocess.Popen(["ip", "netns", "exec", pair.sender, sys.executable, "-m",
                                   "bench.udpblast", pair.addr, str(PORT), "1000", "30"],
                                  stdout=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
        try:
            time.sleep(0.3)
            started = time.monotonic()
            subprocess.run(["ip", "netns", "exec", pair.receiver, *argv_of(pair)],
                           capture_output=True, timeout=30, check=True)
            return (time.monotonic() - started) * 1000
        finally:
            os.killpg(stream.pid, signal.SIGKILL)
            stream.wait()
    return go


def _dumpcap(rate: int, seconds: float) -> list[Contender]:
    """The pcapng peer (tcpdump writes pcap only): its figure is the one to hold
    pysock's pcapng row against."""
    if not have("dumpcap"):
        return []
    return [Contender("dumpcap -B 4 -w FILE.pcapng", _cpu_per_packet("dumpcap", rate, seconds)),
            Contender("dumpcap: % dropped by kernel", _drops("dumpcap"), ceiling=True)]


def scenarios(quick: bool):
    if os.geteuid() != 0 or not have("ip", "nft", "tcpdump") or not pysock_has("capture"):
        return
    rounds, seconds = (1, 1.0) if quick else (3, 3.0)
    for rate in (50_000,) if quick else (50_000, 150_000, 300_000):
        yield Scenario(
            f"capture -w: CPU per packet at {rate // 1000}k pkt/s", "µs", "lower",
            [Contender("pysock capture -w FILE.pcap", _cpu_per_packet("pysock-pcap", rate,
                                                                        seconds), peer=False),
             Contender("pysock pcap: % dropped by kernel", _drops("pysock-pcap"), peer=False,
                       ceiling=True),
             Contender("pysock capture -w FILE.pcapng", _cpu_per_packet("pysock", rate,
                                                                        seconds), peer=False),
             Contender("pysock pcapng: % dropped by kernel", _drops("pysock"), peer=False,
                       ceiling=True),
             Contender("tcpdump -B 4096 -w", _cpu_per_packet("tcpdump", rate, seconds)),
             Contender("tcpdump: % dropped by kernel", _drops("tcpdump"), ceiling=True),
             *_dumpcap(rate, seconds)],
            setup=veth_pair, rounds=rounds,
            note=f"64-byte UDP frames for {seconds:g} s; run time of the capture process "
                 "(schedstat, all threads) over the load / packets sent; drops from the "
                 "closing lines")
    rate = 150_000 if quick else 300_000
    yield Scenario(
        f"capture: lines to a file at {rate // 1000}k pkt/s offered", "pkt/s", "higher",
        [Contender("pysock capture -n > file", _lines_per_second("pysock", rate, seconds),
                   peer=False),
         Contender("tcpdump -n > file", _lines_per_second("tcpdump", rate, seconds))],
        setup=veth_pair, rounds=rounds,
        note="lines written / seconds of load: what each decodes and prints")
    yield Scenario(
        "capture: command start to first packet", "ms", "lower",
        [Contender("pysock capture -c 1", _first_packet(
            lambda p: [PYSOCK, "capture", "-n", "-c", "1", "-i", p.iface, "udp"]), peer=False),
         Contender("tcpdump -c 1", _first_packet(
             lambda p: ["tcpdump", "-n", "-c", "1", "-i", p.iface, "udp"])),
         Contender("tcpdump --immediate-mode -c 1", _first_packet(
             lambda p: ["tcpdump", "-n", "--immediate-mode", "-c", "1", "-i", p.iface,
                        "udp"]))],
        setup=veth_pair, rounds=rounds,
        note="wall time of the whole run under a 1000 pkt/s stream: start-up, the filter, "
             "the first ring block handed over")
