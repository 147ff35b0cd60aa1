"""Start-up: what a script pays each time it calls pysock."""

from __future__ import annotations

import sys

from bench.core import BenchFailure, Contender, Scenario, timed
from bench.tools import PYSOCK, free_port, have, pysock_has, run


def _once(argv, expect_rc: int | None = 0):
    def go(_env) -> float:
        secs, proc = timed(lambda: run(argv, timeout=30))
        if expect_rc is not None and proc.returncode != expect_rc:
            raise BenchFailure(f"{argv} exited {proc.returncode}: {proc.stderr[-200:]!r}")
        return secs * 1000
    return go


def scenarios(quick: bool):
    rounds = 3 if quick else 15
    version = [Contender("pysock --version", _once([PYSOCK, "--version"]), peer=False),
               Contender("python3 -c pass (venv)", _once([sys.executable, "-c", "pass"]),
                         ceiling=True)]
    if have("nc"):
        version.append(Contender("nc -h", _once(["nc", "-h"], expect_rc=None)))
    yield Scenario("start-up: --version", "ms", "lower", version, rounds=rounds)

    if pysock_has("connect"):
        port = free_port()  # nobody listens: a refused connect, exit 1
        refused = [Contender("pysock connect (refused)",
                             _once([PYSOCK, "connect", "127.0.0.1", str(port)], 1), peer=False)]
        if have("nc"):
            refused.append(Contender("nc (refused)", _once(["nc", "127.0.0.1", str(port)], 1)))
        yield Scenario("start-up: refused connect", "ms", "lower", refused, rounds=rounds)
