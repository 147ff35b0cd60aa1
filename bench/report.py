"""The machine description and the RESULTS.md table."""

from __future__ import annotations

import os
import platform
import time

from bench.core import Outcome


def machine() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "load": round(load, 2),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                         time.gmtime())}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def markdown(outcomes: list[Outcome], m: dict, elapsed: float, quick: bool = False) -> str:
    lines = ["# pysock benchmark results", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
             f"Python {m['python']}. Run {m['date']}, {elapsed:.0f} s in all"
             + (" (--quick: toy sizes, not figures to quote)." if quick else "."), "",
             "Each scenario alternates the tools round by round after a warm-up; values are "
             "medians of the rounds. Ratio is the tool's median over the best peer's "
             "(for seconds lower is better, for rates higher is better).", ""]
    for o in outcomes:
        s = o.scenario
        lines += [f"## {s.name}", ""]
        if s.note:
            lines += [s.note, ""]
        lines += [f"| tool | median {s.unit} | min | max | runs | ratio to best peer |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in o.rows:
            if r.error:
                lines.append(f"| {r.tool} | failed: {r.error} | | | 0 | |")
                continue
            ratio = o.ratio(r)
            role = " (ceiling)" if r.ceiling else ""
            lines.append(f"| {r.tool}{role} | {_fmt(r.median)} | {_fmt(min(r.values))} | "
                         f"{_fmt(max(r.values))} | {len(r.values)} | "
                         f"{'-' if ratio is None else f'{ratio:.2f}x'} |")
        lines += ["", f"Machine: {machine_line(m)}.", ""]
    return "\n".join(lines)


def machine_line(m: dict) -> str:
    """The machine in one line, under every table (a ratio means nothing without it)."""
    return (f"{m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
            f"{m['date']}, load average {m.get('load', '?')} at the end")
