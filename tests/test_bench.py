"""The bench harness itself: its output directory, and figures that survive a
later scenario's failure."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.__main__ import _run_one, _save  # noqa: E402
from bench.core import Contender, Scenario  # noqa: E402


def test_out_dir_is_created_and_each_table_names_the_machine(tmp_path):
    out = tmp_path / "not" / "there"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "start-up: --version",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = (out / "RESULTS.md").read_text()
    table_end = text.index("## start-up: --version")
    assert "Machine: " in text[table_end:]
    assert json.loads((out / "RESULTS.json").read_text())["scenarios"]


def test_a_broken_scenario_loses_no_earlier_figures(tmp_path):
    @contextlib.contextmanager
    def broken_setup():
        raise OSError("no namespace today")
        yield

    good = Scenario("good", "s", "lower", [Contender("pysock", lambda env: 1.0, peer=False)],
                    rounds=1)
    bad = Scenario("bad", "s", "lower", [Contender("pysock", lambda env: 1.0, peer=False)],
                   setup=broken_setup, rounds=1)
    outcomes = [_run_one(good, 1)]
    _save(str(tmp_path), outcomes, 1.0, False)
    outcomes.append(_run_one(bad, 1))
    _save(str(tmp_path), outcomes, 2.0, False)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## good" in text and "| pysock | 1 |" in text
    assert "## bad" in text and "no namespace today" in text


def test_compare_puts_two_runs_ratios_side_by_side(tmp_path):
    machine = {"cpu": "AMD EPYC", "cores": 2, "kernel": "6.18", "date": "today", "load": 0.5}
    paths = []
    for name, ratio in (("a", 0.8), ("b", 1.0)):
        rows = [{"tool": "pysock scan", "ratio_to_best_peer": ratio},
                {"tool": "nmap -sT", "ratio_to_best_peer": 1.0}]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"machine": machine, "scenarios": [{"name": "scan", "rows": rows}]}))
        paths.append(str(path))
    proc = subprocess.run([sys.executable, "-m", "bench.compare", *paths], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "| scan | pysock scan | 0.80x | 1.00x | 25% |" in proc.stdout
    assert "nmap" not in proc.stdout
