"""connect/listen: bulk throughput, sendfile from a file, 1-byte round trips (many
clients: echo.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from bench.core import BenchFailure, Contender, Scenario
from bench.tools import PYSOCK, free_port, have, pysock_has, running, start, stop, wait_listening

GIB = 1 << 30


def _servers(port: int) -> dict[str, list[str]]:
    p = str(port)
    return {
        "pysock": [PYSOCK, "listen", "127.0.0.1", p],
        "socat": ["socat", "-u", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr", "STDOUT"],
        "socat -b 262144": ["socat", "-b", "262144", "-u",
                            f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr", "STDOUT"],
        "nc": ["nc", "-l", "127.0.0.1", p],
        "ncat": ["ncat", "--recv-only", "-l", "127.0.0.1", p],
    }


def _clients(port: int) -> dict[str, str]:
    p = str(port)
    return {
        "pysock": f"{PYSOCK} connect 127.0.0.1 {p}",
        "socat": f"socat -u STDIN TCP:127.0.0.1:{p}",
        "socat -b 262144": f"socat -b 262144 -u STDIN TCP:127.0.0.1:{p}",
        "nc": f"nc -N 127.0.0.1 {p}",
        "ncat": f"ncat --send-only 127.0.0.1 {p}",
    }


def _transfer(tool: str, size: int, source: str):
    """source: 'pipe' (head | client) or a file path (client < file)."""
    def go(_env) -> float:
        port = free_port()
        server = start(_servers(port)[tool], stdout=subprocess.DEVNULL)
        try:
            wait_listening(port, proc=server)
            client = _clients(port)[tool]
            script = (f"set -o pipefail; head -c {size} /dev/zero | {client}" if source == "pipe"
                      else f"{client} < {source}")
            t0 = time.perf_counter()
            proc = subprocess.run(["bash", "-c", script], stdin=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, timeout=300)
            if proc.returncode != 0:
                raise BenchFailure(f"client exited {proc.returncode}: {proc.stderr[-200:]!r}")
            rc = server.wait(60)
            secs = time.perf_counter() - t0
            if rc != 0:
                raise BenchFailure(f"server exited {rc}")
            return size / secs / 1e9
        finally:
            stop(server)
    return go


def _iperf3(size: int):
    def go(_env) -> float:
        port = free_port()
        with running(["iperf3", "-s", "-1", "-p", str(port), "-B", "127.0.0.1"]) as server:
            wait_listening(port, proc=server)
            out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(size),
                                  "-J"], capture_output=True, text=True, timeout=300)
            import json
            report = json.loads(out.stdout)
            return report["end"]["sum_received"]["bytes"] / report["end"]["sum_received"][
                "seconds"] / 1e9
    return go


def _peers(tools):
    return [t for t in tools if t == "pysock" or have(t.split()[0])]


def _bulk(quick: bool):
    size = (64 << 20) if quick else 2 * GIB
    contenders = [Contender(t, _transfer(t, size, "pipe"), peer=t != "pysock")
                  for t in _peers(["pysock", "socat", "socat -b 262144", "nc", "ncat"])]
    if have("iperf3"):
        contenders.append(Contender("iperf3 (no pipes)", _iperf3(size), ceiling=True))
    return Scenario(f"TCP throughput, {size >> 20} MiB: head | client -> server > /dev/null",
                    "GB/s", "higher", contenders, rounds=2 if quick else 5)


@contextlib.contextmanager
def _payload_file(size: int):
    fd, path = tempfile.mkstemp(prefix="pysock-bench-", dir="/var/tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
        yield path
    finally:
        os.unlink(path)


def _from_file(quick: bool):
    size = (64 << 20) if quick else 2 * GIB

    def contender(tool):
        return Contender(tool, lambda path: _transfer(tool, size, path)(None), peer=tool != "pysock")
    contenders = [contender(t) for t in _peers(["pysock", "nc", "socat -b 262144"])]
    return Scenario(f"TCP throughput from a regular file, {size >> 20} MiB: client < file",
                    "GB/s", "higher", contenders, setup=lambda: _payload_file(size),
                    rounds=2 if quick else 5)


# ---- 1-byte round trips -------------------------------------------------------


@contextlib.contextmanager
def _echo_server(server: socket.socket | None = None):
    """An echo server on a listening socket (a fresh TCP one on 127.0.0.1 by default),
    each client in its own thread; yields the port (TCP) or the bound name."""
    server = server or socket.create_server(("127.0.0.1", 0))
    server.settimeout(1)
    stopping = threading.Event()

    def serve():
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    name = server.getsockname()
    try:
        yield name[1] if isinstance(name, tuple) else name
    finally:
        stopping.set()
        server.close()
        thread.join(3)


def _echo(conn: socket.socket) -> None:
    if conn.family != socket.AF_UNIX:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def _pingpong(argv_for_port, count: int):
    def go(port) -> float:
        proc = subprocess.Popen(argv_for_port(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0, start_new_session=True)
        try:
            times = []
            for _ in range(count + 20):
                t0 = time.perf_counter()
                os.write(proc.stdin.fileno(), b"x")
                if os.read(proc.stdout.fileno(), 1) != b"x":
                    raise BenchFailure("echo did not come back")
                times.append(time.perf_counter() - t0)
            times = sorted(times[20:])
            return times[len(times) // 2] * 1e6
        finally:
            stop(proc)
    return go


BLOCK = 100  # round trips through one tool before the next tool's turn


class _Turns:
    """The tools' relays all running at once against one echo server. A session sends
    `count` round trips through each, in blocks of BLOCK with the tools taking turns
    (in reverse order every other block), so a change in the machine's load falls on
    all of them alike instead of on whichever ran in that second. A contender takes
    its median from the latest session and starts a new one when its figure of the
    latest was already taken: one session per round, whatever the order."""

    def __init__(self, port: int, argvs: dict, count: int):
        self.port, self.argvs, self.count = port, argvs, count
        self.fresh: dict = {}

    def median(self, tool: str) -> float:
        if tool not in self.fresh:
            self.fresh = self._session()
        value = self.fresh.pop(tool)
        if isinstance(value, Exception):
            del self.argvs[tool]  # out of the later sessions, as the runner drops it
            raise value
        return value

    def _session(self) -> dict:
        procs = {tool: subprocess.Popen(argv(self.port), stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        bufsize=0, start_new_session=True)
                 for tool, argv in self.argvs.items()}
        times: dict = {tool: [] for tool in procs}
        failed: dict = {}
        try:
            for block in range(-1, self.count // BLOCK):  # block -1: a warm-up, not kept
                order = list(procs) if block % 2 else list(reversed(procs))
                for tool in order:
                    if tool in failed:
                        continue
                    try:
                        got = _round_trips(procs[tool], 20 if block < 0 else BLOCK)
                    except (BenchFailure, OSError) as exc:
                        failed[tool] = BenchFailure(f"{tool}: {exc}")
                        continue
                    if block >= 0:
                        times[tool] += got
        finally:
            for proc in procs.values():
                stop(proc)
        return {tool: failed.get(tool) or sorted(t)[len(t) // 2] * 1e6
                for tool, t in times.items()}


def _round_trips(proc: subprocess.Popen, n: int) -> list[float]:
    w, r = proc.stdin.fileno(), proc.stdout.fileno()
    clock, out = time.perf_counter, []
    for _ in range(n):
        t0 = clock()
        os.write(w, b"x")
        if os.read(r, 1) != b"x":
            raise BenchFailure("echo did not come back")
        out.append(clock() - t0)
    return out


@contextlib.contextmanager
def pinned(cpu: int | None):
    """This thread, and the threads and processes it starts, on one CPU meanwhile."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _turns(argvs: dict, count: int, placement: tuple[int, int] | None):
    """An echo server and the tools' sessions, placed: (cpu of the client and the echo
    server, cpu of the relays)."""
    if placement:
        argvs = {tool: (lambda p, argv=argv: ["taskset", "-c", str(placement[1]), *argv(p)])
                 for tool, argv in argvs.items()}
    with pinned(placement and placement[0]), _echo_server() as port:
        yield _Turns(port, dict(argvs), count)


def _placements() -> list[tuple[str, tuple[int, int] | None]]:
    """Where a round trip's three parties run decides its time more than any tool does:
    a wake-up on another, idle CPU of a VM costs tens of µs, one on the same CPU none.
    Left to the scheduler, whether a relay shares the client's CPU varies from session
    to session (29 µs or 55-75 µs for the same tool), so each placement is measured
    pinned, alike for every tool."""
    cpus = sorted(os.sched_getaffinity(0))
    if not shutil.which("taskset"):
        return [("unpinned", None)]
    if len(cpus) < 2:
        return [("one CPU", (cpus[0], cpus[0]))]
    return [("one CPU", (cpus[0], cpus[0])), ("relay on another CPU", (cpus[0], cpus[1]))]


_PLACED = {"one CPU": "client, echo server and relays pinned to one CPU",
           "relay on another CPU": "client and echo server pinned to one CPU, the relays to "
                                   "the other"}


def _latency(quick: bool):
    count = 200 if quick else 5000
    argvs = {
        "pysock": lambda p: [PYSOCK, "connect", "--sockopt", "nodelay", "127.0.0.1", str(p)],
        "socat": lambda p: ["socat", "-", f"TCP:127.0.0.1:{p},nodelay"],
        "nc": lambda p: ["nc", "127.0.0.1", str(p)],
    }
    argvs = {t: a for t, a in argvs.items() if t == "pysock" or have(t)}
    contenders = [Contender(t, lambda turns, t=t: turns.median(t), peer=t != "pysock")
                  for t in argvs]
    for where, placement in _placements():
        yield Scenario(f"1-byte round trip through the relay, {where} (median of {count})",
                       "µs", "lower", contenders,
                       setup=lambda placement=placement: _turns(argvs, count, placement),
                       rounds=2 if quick else 7,
                       note=f"all tools running at once against one echo server, taking turns "
                            f"in blocks of {BLOCK} round trips; each round is one such session; "
                            + _PLACED.get(where, "placed by the scheduler"))


def scenarios(quick: bool):
    if not pysock_has("connect"):
        return
    yield _bulk(quick)
    yield _from_file(quick)
    yield from _latency(quick)
