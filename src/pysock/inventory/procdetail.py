"""What psutil tells cheaply about the processes a view shows: command line,
resident memory, CPU %, threads and start time. Only --by-process imports this
(and with it psutil); the socket list keeps its own /proc pass."""

from __future__ import annotations

import datetime
import time

CPU_SAMPLE = 0.2  # seconds over which CPU % is measured, as top's first screen


def details(pids) -> dict[int, dict]:
    """pid -> {cmdline, rss_bytes, cpu_pct, threads, started}; a process that is gone
    or hidden from us gets None for what could not be read."""
    import psutil
    procs = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)  # starts the sample
            procs[pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    if procs:
        time.sleep(CPU_SAMPLE)
    out = {pid: _empty() for pid in pids}
    for pid, proc in procs.items():
        out[pid] = _read(proc, psutil)
    return out


def _empty() -> dict:
    return {"cmdline": None, "rss_bytes": None, "cpu_pct": None, "threads": None,
            "started": None}


def _read(proc, psutil) -> dict:
    row = _empty()
    try:
        with proc.oneshot():
            row["cpu_pct"] = round(proc.cpu_percent(None), 1)
            row["rss_bytes"] = proc.memory_info().rss
            row["threads"] = proc.num_threads()
            row["started"] = datetime.datetime.fromtimestamp(
                proc.create_time()).astimezone().isoformat(timespec="seconds")
            row["cmdline"] = " ".join(proc.cmdline()) or None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        pass
    return row
