"""forward: pysock forward against socat's forwarder (TCP-LISTEN:...,fork,reuseaddr
TCP:...), the same client and the same TO for both in the same run:

    one 2 GiB stream           pysock connect < file -> forwarder -> pysock listen > /dev/null
    10,000 short connections   50 at a time: connect, 1 KiB each way, close (connections/s)
    500 clients x 1 MiB        all at once, echoed by TO, both client patterns (clients.py)

TO for the echo scenarios is pysock listen -k --echo (one process, so neither
forwarder is measured against a TO that forks)."""

from __future__ import annotations

import contextlib
import subprocess
import time

from bench.clients import BACKLOG, asyncio_echo, selectors_echo, short_connections
from bench.core import BenchFailure, Contender, Scenario
from bench.scenarios.relay import _payload_file as payload_file
from bench.tools import PYSOCK, free_port, have, pysock_has, running, start, stop, wait_listening

GIB = 1 << 30


def _forwarders(here: int, to: int) -> dict[str, list[str]]:
    return {
        "pysock forward": [PYSOCK, "forward", f"127.0.0.1:{here}", f"127.0.0.1:{to}"],
        "socat fork": ["socat", f"TCP-LISTEN:{here},bind=127.0.0.1,reuseaddr,fork,"
                       f"backlog={BACKLOG}", f"TCP:127.0.0.1:{to}"],
        "socat -b 262144 fork": ["socat", "-b", "262144", f"TCP-LISTEN:{here},bind=127.0.0.1,"
                                 f"reuseaddr,fork,backlog={BACKLOG}", f"TCP:127.0.0.1:{to}"],
    }


@contextlib.contextmanager
def _through(tool: str, to: int):
    """The forwarder `tool` listening, relaying to port `to`; yields its port."""
    here = free_port()
    with running(_forwarders(here, to)[tool]) as proc:
        wait_listening(here, proc=proc)
        yield here


def _tools(names):
    return [t for t in names if t.startswith("pysock") or have(t.split()[0])]


# ---- one stream ---------------------------------------------------------------------


def _stream(tool: str, size: int):
    """The ends cost as little as they can (sendfile from the page cache, splice into
    /dev/null), so the forwarder in the middle is what differs."""
    def go(path: str) -> float:
        to = free_port()
        sink = start([PYSOCK, "listen", "127.0.0.1", str(to)], stdout=subprocess.DEVNULL)
        try:
            wait_listening(to, proc=sink)
            with _through(tool, to) as here, open(path, "rb") as data:
                t0 = time.perf_counter()
                client = subprocess.run([PYSOCK, "connect", "127.0.0.1", str(here)], stdin=data,
                                        stderr=subprocess.PIPE, timeout=300)
                if client.returncode != 0:
                    raise BenchFailure(f"client exited {client.returncode}: "
                                       f"{client.stderr[-200:]!r}")
                if sink.wait(120) != 0:
                    raise BenchFailure(f"TO exited {sink.returncode}")
                return size / (time.perf_counter() - t0) / 1e9
        finally:
            stop(sink)
    return go


def _one_stream(quick: bool) -> Scenario:
    size = (64 << 20) if quick else 2 * GIB
    contenders = [Contender(t, _stream(t, size), peer=not t.startswith("pysock"))
                  for t in _tools(_forwarders(0, 0))]
    return Scenario(f"forward: one {size >> 20} MiB stream (pysock connect < file -> forwarder "
                    f"-> pysock listen > /dev/null)", "GB/s", "higher", contenders,
                    setup=lambda: payload_file(size), rounds=2 if quick else 5)


# ---- echo through the forwarder ---------------------------------------------------------


@contextlib.contextmanager
def _echo_to():
    port = free_port()
    with running([PYSOCK, "listen", "-k", "--echo", "--backlog", str(BACKLOG), "127.0.0.1",
                  str(port)]) as proc:
        wait_listening(port, proc=proc)
        yield port


def _short(tool: str, total: int, at_once: int):
    def go(to: int) -> float:
        with _through(tool, to) as here:
            return short_connections(here, total, at_once)
    return go


def _short_connections(quick: bool) -> Scenario:
    total, at_once = (500, 50) if quick else (10000, 50)
    contenders = [Contender(t, _short(t, total, at_once), peer=not t.startswith("pysock"))
                  for t in _tools(["pysock forward", "socat fork"])]
    return Scenario(f"forward: {total} short connections, {at_once} at a time (1 KiB each way)",
                    "conn/s", "higher", contenders, setup=_echo_to, rounds=2 if quick else 3,
                    note="TO: pysock listen -k --echo; the client: bench/clients.py "
                         "short_connections (asyncio).")


def _echo(tool: str, client, clients: int, size: int):
    def go(to: int) -> float:
        with _through(tool, to) as here:
            t0 = time.perf_counter()
            client(here, clients, size)
            return time.perf_counter() - t0
    return go


def _many(quick: bool, pattern: str, client) -> Scenario:
    clients, size = (50, 64 << 10) if quick else (500, 1 << 20)
    contenders = [Contender(t, _echo(t, client, clients, size), peer=not t.startswith("pysock"))
                  for t in _tools(["pysock forward", "socat fork"])]
    return Scenario(f"forward: {clients} concurrent clients x {size >> 10} KiB echoed ({pattern})",
                    "s", "lower", contenders, setup=_echo_to, rounds=2 if quick else 5,
                    note="TO: pysock listen -k --echo; every byte that comes back is checked.")


def scenarios(quick: bool):
    if not pysock_has("forward") or not have("socat"):
        return
    yield _one_stream(quick)
    yield _short_connections(quick)
    yield _many(quick, "selectors, all connected first, no FIN", selectors_echo)
    yield _many(quick, "asyncio, write all, FIN, read to EOF", asyncio_echo)
