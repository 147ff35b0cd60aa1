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
from bench.core import Outcome, run_scenario
from bench.report import machine, markdown
from bench.tools import compile_pysock

HERE = os.path.dirname(os.path.abspath(__file__))


def all_scenarios(quick: bool):
    for info in sorted(pkgutil.iter_modules(scenario_pkg.__path__), key=lambda m: m.name):
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

    compile_pysock()
    rounds = args.rounds or (2 if args.quick else None)
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        for module, scenario in all_scenarios(args.quick):
            if args.only and not any(o in scenario.name or o == module for o in args.only):
                continue
            print(f"== {scenario.name}", file=sys.stderr, flush=True)
            outcome = run_scenario(scenario, rounds, log=lambda m: print(m, file=sys.stderr))
            outcomes.append(outcome)
            for row in outcome.rows:
                median = f"{row.median:.4g}" if row.median is not None else row.error
                print(f"  {row.tool:32} {median} {scenario.unit}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started
    text = markdown(outcomes, machine(), elapsed, quick=args.quick)
    out_dir = args.out or (None if args.quick else HERE)
    if out_dir:
        with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
            f.write(text)
        with open(os.path.join(out_dir, "RESULTS.json"), "w") as f:
            json.dump(report_json(outcomes, elapsed), f, indent=1)
    print(text)
    failed = [r.tool for o in outcomes for r in o.rows if r.error and not r.peer]
    if failed:
        print(f"pysock runs failed: {failed}", file=sys.stderr)
        return 1
    return 0


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
