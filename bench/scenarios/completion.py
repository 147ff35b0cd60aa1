"""Shell completion: what one Tab costs (pysock runs once per Tab; the goal is under
100 ms). The bash script's protocol through the environment: pysock answers one
`type<TAB>value<TAB>help` line per word (cli/completion.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.core import BenchFailure, Contender, Scenario, timed
from bench.tools import PYSOCK, run


def _tab(line: str, expect: str):
    words = line.split() + ([""] if line.endswith(" ") else [])
    env = dict(os.environ, _PYSOCK_COMPLETE="bash_complete", COMP_WORDS=line,
               COMP_CWORD=str(len(words) - 1))

    def go(_env) -> float:
        secs, proc = timed(lambda: run([PYSOCK], timeout=30, env=env, stdout=subprocess.PIPE))
        offered = [ln.split("\t")[1] for ln in proc.stdout.decode().splitlines() if "\t" in ln]
        if expect not in offered:
            raise BenchFailure(f"Tab after {line!r} did not offer {expect!r}: {proc.stdout[:200]!r}")
        return secs * 1000
    return go


def _python(_env) -> float:
    secs, _ = timed(lambda: run([sys.executable, "-c", "pass"], timeout=30))
    return secs * 1000


def scenarios(quick: bool):
    rounds = 3 if quick else 15
    yield Scenario("completion: one Tab", "ms", "lower", [
        Contender("pysock li<Tab> (command)", _tab("pysock li", "listen"), peer=False),
        Contender("pysock listen --ke<Tab> (option)", _tab("pysock listen --ke", "--keep-open"),
                  peer=False),
        Contender("pysock listen -p htt<Tab> (service)", _tab("pysock listen -p htt", "http"),
                  peer=False),
        Contender("python3 -c pass (venv)", _python, ceiling=True),
    ], rounds=rounds, note="goal: under 100 ms per Tab")
