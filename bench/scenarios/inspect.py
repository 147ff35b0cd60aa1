"""inspect: listing every TCP socket with its process, against ss, netstat and lsof.

A helper process (bench/socket_holder.py) holds the sockets: loopback connections
with both ends open (two ESTABLISHED sockets each) plus connections left in
TIME_WAIT. Every tool's output goes to a file; a run counts only if it listed
the established sockets and attributed them to the helper's pid."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from bench.core import BenchFailure, Contender, Scenario, timed
from bench.tools import PYSOCK, have, pysock_has, run, start, stop

HOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "socket_holder.py")


@dataclass
class Load:
    pid: int
    established: int  # sockets, both ends
    out: str  # file each run writes its listing to


@contextlib.contextmanager
def holding(pairs: int, time_wait: int):
    proc = start([sys.executable, HOLDER, str(pairs), str(time_wait)], stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        if not line.startswith("ready"):
            raise BenchFailure(f"socket holder failed: {proc.stderr.read().decode()[-300:]}")
        with tempfile.NamedTemporaryFile(prefix="pysock-bench-inspect-") as out:
            yield Load(proc.pid, 2 * pairs, out.name)
    finally:
        stop(proc)


def _listing(argv, pattern: str, what: str, counted: bool = False):
    """Run argv with stdout to a file; check it listed the holder's established sockets
    (pattern matches one per socket), or with counted, that the number pattern
    captures covers them."""
    def go(load: Load) -> float:
        with open(load.out, "wb") as out:
            secs, proc = timed(lambda: run(argv, stdout=out, timeout=120))
        if proc.returncode != 0:
            raise BenchFailure(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-200:]!r}")
        with open(load.out, errors="replace") as f:
            found = re.findall(pattern.format(pid=load.pid), f.read())
        listed = int(found[0]) if counted and found else len(found)
        if listed < load.established:
            raise BenchFailure(f"{what}: listed {listed} of {load.established} established "
                               f"sockets of pid {load.pid}")
        return secs * 1000
    return go


# established sockets of the holder, as each tool writes them
PYSOCK_ROW = r'"state":"ESTABLISHED"[^\n]*"pid":{pid},'
PYSOCK_EXTENDED_ROW = r'"state":"ESTABLISHED"[^\n]*"pid":{pid},[^\n]*"rtt_ms":'
SS_ROW = r"ESTAB[^\n]*pid={pid},"
NETSTAT_ROW = r"ESTABLISHED\s+{pid}/"
LSOF_ROW = r"\n\S+\s+{pid}\s[^\n]*\(ESTABLISHED\)"


def scenarios(quick: bool):
    if not pysock_has("inspect"):
        return
    pairs, time_wait = (150, 100) if quick else (5000, 2000)
    rounds = 3 if quick else 7
    size = (f"{2 * pairs} established sockets ({pairs} loopback connections, both ends held "
            f"by one process) and {time_wait} in TIME_WAIT")

    listing = [Contender("pysock inspect -t -a --json",
                         _listing([PYSOCK, "inspect", "-t", "-a", "--json"], PYSOCK_ROW,
                                  "pysock"), peer=False)]
    if have("ss"):
        listing.append(Contender("ss -tanp", _listing(["ss", "-tanp"], SS_ROW, "ss")))
    if have("netstat"):
        listing.append(Contender("netstat -tanp",
                                 _listing(["netstat", "-tanp"], NETSTAT_ROW, "netstat")))
    if have("lsof"):
        listing.append(Contender("lsof -nPi", _listing(["lsof", "-nPi"], LSOF_ROW, "lsof")))
    yield Scenario("inspect: every TCP socket with its process", "ms", "lower", listing,
                   setup=lambda: holding(pairs, time_wait), rounds=rounds,
                   note=f"Whole-process wall time, output to a file. {size}.")

    extended = [Contender("pysock inspect -t -a -e --json",
                          _listing([PYSOCK, "inspect", "-t", "-a", "-e", "--json"],
                                   PYSOCK_EXTENDED_ROW, "pysock -e"), peer=False)]
    if have("ss"):
        extended.append(Contender("ss -tanpi", _listing(["ss", "-tanpi"], SS_ROW, "ss -i")))
    yield Scenario("inspect: TCP internals (-e) with processes", "ms", "lower", extended,
                   setup=lambda: holding(pairs, time_wait), rounds=rounds,
                   note=f"tcp_info and socket memory for every socket. {size}.")

    summary = [Contender("pysock inspect --summary --json",
                         _listing([PYSOCK, "inspect", "--summary", "--json"],
                                  r'"type":"state","proto":"tcp","state":"ESTABLISHED",'
                                  r'"count":(\d+)', "pysock --summary", counted=True), peer=False)]
    if have("ss"):
        summary.append(Contender("ss -s", _listing(["ss", "-s"], r"estab (\d+)", "ss -s",
                                                   counted=True)))
    yield Scenario("inspect: summary (ss -s)", "ms", "lower", summary,
                   setup=lambda: holding(pairs, time_wait), rounds=rounds,
                   note="pysock counts every socket by state and ranks processes by sockets "
                        "(a dump and a /proc pass); ss -s prints kernel counters only. " + size)
