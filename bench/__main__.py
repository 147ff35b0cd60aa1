"""python -m bench [--quick] [--only NAME] [--rounds N]: run scenarios, write RESULTS."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import signal
import sys
import time

from bench import scenarios as scenario_pkg
from bench.core import Outcome, failed_outcome, run_scenario
from bench.report import machine, markdown
from bench.tools import compile_pysock

HERE = os.path.dirname(os.path.abspath(__file__))


# first, while the socket table is the machine's own: the others leave tens of
# thousands of TIME_WAIT sockets behind for a minute, and inspect lists every one
FIRST = ("startup", "inspect")


def all_scenarios(quick: bool):
    modules = pkgutil.iter_modules(scenario_pkg.__path__)
    for info in sorted(modules, key=lambda m: (m.name not in FIRST, FIRST.index(m.name)
                                               if m.name in FIRST else 0, m.name)):
        module = importlib.import_module(f"bench.scenarios.{info.name}")
        for scenario in module.scenarios(quick):
            yield info.name, scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds (CI)")
    parser.add_argument("--only", action="append", default=[],
                        help="run scenarios whose name or module contains this (repeatable)")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default: its own, >= 5)")
    parser.add_argument("--out", default=None,
                        help="directory for RESULTS.md/json (default: bench/, or none with --quick)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    out_dir = args.out or (None if args.quick else HERE)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)  # before the first minute of work, not after
    compile_pysock()
    rounds = args.rounds or (2 if args.quick else None)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    status = 0
    try:
        for module, scenario in all_scenarios(args.quick):
            if args.only and not any(o in scenario.name or o == module for o in args.only):
                continue
            outcomes.append(_run_one(scenario, rounds))
            _save(out_dir, outcomes, time.monotonic() - started, args.quick)  # after each one
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        status = 130
    text = _save(out_dir, outcomes, time.monotonic() - started, args.quick)
    if status:
        return status
    print(text)
    failed = [r.tool for o in outcomes for r in o.rows if r.error and not r.peer]
    if failed:
        print(f"pysock runs failed: {failed}", file=sys.stderr)
        return 1
    return 0


def _run_one(scenario, rounds: int | None) -> Outcome:
    """One scenario's figures; a scenario whose set-up breaks is a failed row, not
    the end of the run (the scenarios after it still run)."""
    print(f"== {scenario.name}", file=sys.stderr, flush=True)
    try:
        outcome = run_scenario(scenario, rounds, log=lambda m: print(m, file=sys.stderr))
    except Exception as exc:
        outcome = failed_outcome(scenario, f"{type(exc).__name__}: {exc}"[:200])
    for row in outcome.rows:
        median = f"{row.median:.4g}" if row.median is not None else row.error
        print(f"  {row.tool:32} {median} {scenario.unit}", file=sys.stderr, flush=True)
    return outcome


def _save(out_dir: str | None, outcomes: list[Outcome], elapsed: float, quick: bool) -> str:
    """Write RESULTS.md/json with every scenario finished so far; the report text."""
    text = markdown(outcomes, machine(), elapsed, quick=quick)
    if out_dir:
        for name, body in (("RESULTS.md", text),
                           ("RESULTS.json", json.dumps(report_json(outcomes, elapsed), indent=1))):
            path = os.path.join(out_dir, name)
            with open(path + ".part", "w") as f:
                f.write(body)
            os.replace(path + ".part", path)
    return text


def report_json(outcomes: list[Outcome], elapsed: float) -> dict:
    return {
        "machine": machine(),
        "elapsed_s": round(elapsed, 1),
        "scenarios": [{
            "name": o.scenario.name, "unit": o.scenario.unit, "better": o.scenario.better,
            "rows": [{"tool": r.tool, "values": r.values, "median": r.median,
                      "ratio_to_best_peer": o.ratio(r), "error": r.error} for r in o.rows],
        } for o in outcomes],
    }


if __name__ == "__main__":
    sys.exit(main())
