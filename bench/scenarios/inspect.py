"""inspect: listing every TCP socket with its process, against ss, netstat and lsof.

A helper process (bench/socket_holder.py) holds the sockets: loopback connections
with both ends open (two ESTABLISHED sockets each) plus connections left in
TIME_WAIT. Every tool's output goes to a file; a run counts only if it listed
the established sockets and attributed them to the helpers' pids.

The scaling scenarios run the same listing at 200, 2,000, 10,000 and 48,000
sockets (several holders: the hard descriptor limit here is 20,000 per process);
the start-up scenario compares a listing of the machine's own few hundred
sockets with `python -c pass` from the same interpreter."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
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
    pids: list[int]
    established: int  # sockets, both ends
    out: str  # file each run writes its listing to

    @property
    def pid(self) -> str:
        """A regex matching any holder's pid."""
        return "(?:" + "|".join(map(str, self.pids)) + ")"


# the hard descriptor limit here is 20,000 per process: big loads take several holders
PAIRS_PER_HOLDER = 8000


@contextlib.contextmanager
def holding(pairs: int, time_wait: int):
    procs = []
    try:
        left = pairs
        while left > 0 or not procs:
            share = min(left, PAIRS_PER_HOLDER)
            procs.append(start([sys.executable, HOLDER, str(share),
                                str(time_wait if not procs else 0)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE))
            left -= share
        for proc in procs:
            line = proc.stdout.readline().decode()
            if not line.startswith("ready"):
                raise BenchFailure(f"socket holder failed: {proc.stderr.read().decode()[-300:]}")
        with tempfile.NamedTemporaryFile(prefix="pysock-bench-inspect-") as out:
            yield Load([p.pid for p in procs], 2 * pairs, out.name)
    finally:
        for proc in procs:
            stop(proc)


def _listing(argv, pattern: str, what: str, counted: bool = False):
    """Run argv with stdout to a file; check it listed the holders' established sockets
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
                               f"sockets of pids {load.pids}")
        return secs * 1000
    return go


def _startup(argv, pattern: str | None = None):
    """Whole-process wall time of argv, output to /dev/null; pattern, when given, must
    appear in a first run (the listing is real)."""
    def go(_env) -> float:
        secs, proc = timed(lambda: run(argv, stdout=subprocess.PIPE, timeout=60))
        if proc.returncode != 0:
            raise BenchFailure(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-200:]!r}")
        if pattern and not re.search(pattern, proc.stdout.decode(errors="replace")):
            raise BenchFailure(f"{' '.join(argv)} did not list {pattern!r}")
        return secs * 1000
    return go


@contextlib.contextmanager
def _a_listener():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


# established sockets of the holder, as each tool writes them
PYSOCK_ROW = r'"state":"ESTABLISHED"[^\n]*"pid":{pid},'
PYSOCK_PLAIN_ROW = r"\tESTABLISHED\t[^\n]*\[{pid}\]"
PYSOCK_EXTENDED_ROW = r"\tESTABLISHED\t[^\n]*\[{pid}\][^\n]*rto:"
SS_ROW = r"ESTAB[^\n]*pid={pid},"
NETSTAT_ROW = r"ESTABLISHED\s+{pid}/"
LSOF_ROW = r"\n\S+\s+{pid}\s[^\n]*\(ESTABLISHED\)"


def _scaling(quick: bool):
    """The same listing at growing sizes: pysock and ss side by side at each."""
    sizes = (100,) if quick else (100, 1000, 5000, 24000)  # pairs: 200 ... 48,000 sockets
    for pairs in sizes:
        rounds = 2 if quick else (3 if pairs > 10000 else 5)
        size = f"{2 * pairs:,} established sockets"
        setup = functools.partial(holding, pairs, 0)
        listing = [Contender("pysock inspect -t -a",
                             _listing([PYSOCK, "inspect", "-t", "-a"], PYSOCK_PLAIN_ROW,
                                      "pysock"), peer=False)]
        if have("ss"):
            listing.append(Contender("ss -tanp", _listing(["ss", "-tanp"], SS_ROW, "ss")))
        yield Scenario(f"inspect scaling: {size}, every TCP socket with its process", "ms",
                       "lower", listing, setup=setup, rounds=rounds, both_orders=True,
                       note=f"{size} (loopback pairs, both ends held by holder processes of "
                            f"at most {2 * PAIRS_PER_HOLDER:,} descriptors), plain output to "
                            "a file; the rest of the machine's sockets too.")
        extended = [Contender("pysock inspect -t -a -e",
                              _listing([PYSOCK, "inspect", "-t", "-a", "-e"],
                                       PYSOCK_EXTENDED_ROW, "pysock -e"), peer=False)]
        if have("ss"):
            extended.append(Contender("ss -tanpi", _listing(["ss", "-tanpi"], SS_ROW, "ss -i")))
        yield Scenario(f"inspect scaling: {size}, TCP internals (-e)", "ms", "lower", extended,
                       setup=setup, rounds=rounds, both_orders=True,
                       note=f"tcp_info and socket memory for every socket. {size}.")


def _start_up(quick: bool):
    """A small machine: the fixed cost of a listing, next to the interpreter's own."""
    rounds = 3 if quick else 11
    contenders = [
        Contender("pysock inspect -tln", _startup([PYSOCK, "inspect", "-tln"], r"LISTEN"),
                  peer=False),
        Contender("pysock inspect -t -a", _startup([PYSOCK, "inspect", "-t", "-a"], r"LISTEN"),
                  peer=False),
        Contender("python -c pass (same interpreter)", _startup([sys.executable, "-c", "pass"])),
    ]
    if have("ss"):
        contenders.append(Contender("ss -tanp", _startup(["ss", "-tanp"]), ceiling=True))
    yield Scenario("inspect: start-up, a few hundred sockets", "ms", "lower", contenders,
                   setup=_a_listener, rounds=rounds, both_orders=True,
                   note="Whole-process wall time on this machine's own sockets "
                        f"({_tcp_sockets():,} TCP sockets, TIME_WAIT included, when the "
                        "scenario began). The ratio is to `python -c pass`: the goal is 3x "
                        "with fewer than 500; thousands (a test suite's TIME_WAIT) cost "
                        "pysock more per socket than ss.")


def _tcp_sockets() -> int:
    """TCP sockets the kernel holds, TIME_WAIT included (/proc/net/sockstat, sockstat6)."""
    count = 0
    for path in ("/proc/net/sockstat", "/proc/net/sockstat6"):
        try:
            with open(path) as f:
                for line in f:
                    words = line.split()
                    if words and words[0] in ("TCP:", "TCP6:"):
                        fields = dict(zip(words[1::2], words[2::2]))
                        count += int(fields.get("inuse", 0)) + int(fields.get("tw", 0))
        except (OSError, ValueError):
            continue
    return count


def scenarios(quick: bool):
    if not pysock_has("inspect"):
        return
    yield from _start_up(quick)
    yield from _scaling(quick)
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
