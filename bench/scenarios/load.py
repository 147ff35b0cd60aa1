"""Issue 16's load test at full size: 2,000 concurrent echo clients, a 200-client
broker, 100 `--exec cat` clients; every byte checked and the server's descriptors
back to their count before the first client (bench/load.py). pysock only: the
peer comparisons at this scale are in echo.py (socat's fork) and relay.py."""

from __future__ import annotations

from bench.core import Contender, Scenario
from bench.load import broker_load, echo_load, exec_load
from bench.tools import pysock_has


def scenarios(quick: bool):
    if not pysock_has("listen"):
        return
    echo, broker, execs = (100, 20, 10) if quick else (2000, 200, 100)
    size = 16 << 10 if quick else 64 << 10
    cases = [
        (f"load: {echo} echo clients x {size >> 10} KiB, fds back to start",
         lambda _env: echo_load(echo, size)),
        (f"load: {broker}-client broker, every line to every other client, fds back to start",
         lambda _env: broker_load(broker)),
        (f"load: {execs} --exec cat clients x {size >> 10} KiB, fds back to start",
         lambda _env: exec_load(execs, size)),
    ]
    for name, run in cases:
        yield Scenario(name, "s", "lower", [Contender("pysock listen -k", run, peer=False)],
                       rounds=1 if quick else 3,
                       note="A failed check (damaged data, a leaked descriptor) fails the run.")
