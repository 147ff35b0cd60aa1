"""python -m bench.compare A.json B.json: every pysock ratio of two full runs side by side,
with the spread, so a headline claim shows whether it reproduced."""

from __future__ import annotations

import json
import sys


def ratios(path: str) -> tuple[dict, dict]:
    with open(path) as f:
        run = json.load(f)
    found = {}
    for scenario in run["scenarios"]:
        for row in scenario["rows"]:
            if row.get("ratio_to_best_peer") is not None and row["tool"].startswith("pysock"):
                found[(scenario["name"], row["tool"])] = row["ratio_to_best_peer"]
    return run["machine"], found


def table(first: str, second: str) -> str:
    (m1, a), (m2, b) = ratios(first), ratios(second)
    lines = ["## Two runs: every pysock ratio in both", "",
             f"Run A {m1['date']} (load {m1.get('load', '?')} at the end), run B {m2['date']} "
             f"(load {m2.get('load', '?')}); {m1['cpu']}, {m1['cores']} cores, Linux "
             f"{m1['kernel']}. Spread is the larger ratio over the smaller.", "",
             "| scenario | tool | run A | run B | spread |", "|---|---|---:|---:|---:|"]
    for key in a:
        if key in b:
            low, high = sorted((a[key], b[key]))
            spread = f"{(high / low - 1) * 100:.0f}%" if low > 0 else "-"
            name, tool = (text.replace("|", "\\|") for text in key)  # a shell pipe in a cell
            lines.append(f"| {name} | {tool} | {a[key]:.2f}x | {b[key]:.2f}x | {spread} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.compare A/RESULTS.json B/RESULTS.json")
    print(table(sys.argv[1], sys.argv[2]))
