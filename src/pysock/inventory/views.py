"""The aggregate views of `pysock inspect`: --summary, --by-process and --limits.

Each returns plain records (dicts with stable snake_case keys); render/ draws them."""

from __future__ import annotations

import os
import resource
from collections import Counter

from pysock.inventory import procnet
from pysock.inventory.model import (
    CLOSE_WAIT,
    ESTABLISHED,
    FIN_WAIT2,
    LISTEN,
    SYN_RECV,
    TIME_WAIT,
    SocketRecord,
    backlog_full,
)
from pysock.inventory.processes import ProcessMap, fd_limit

TOP_PROCESSES = 10
NEAR_FD_LIMIT = 0.8  # of RLIMIT_NOFILE
CLOSE_WAIT_PILE = 10  # sockets a process left in CLOSE_WAIT
PORT_RISK = 0.5  # share of the ephemeral range used towards one destination
TOP_DESTINATIONS = 5
PROTO_ORDER = ("tcp", "udp", "raw", "unix", "netlink", "packet")

# ---- --summary --------------------------------------------------------------

SOCKSTAT_KEYS = ("inuse", "orphan", "tw", "alloc", "mem", "memory")


def sockstat_rows() -> list[dict]:
    """The kernel's own counters (like the top of `ss -s`)."""
    rows = []
    for name, values in procnet.sockstat().items():
        row = {"type": "sockstat", "name": name.lower()}
        if name == "sockets":
            row["inuse"] = values.get("used")
        for key in SOCKSTAT_KEYS:
            if key in values:
                row["mem" if key == "memory" else key] = values[key]
        rows.append(row)
    return rows


def state_counts(records: list[SocketRecord]) -> list[dict]:
    counts = Counter((r.proto, r.state_text) for r in records)
    rows = [{"type": "state", "proto": proto, "state": state, "count": n}
            for (proto, state), n in counts.items()]
    rows.sort(key=lambda row: (PROTO_ORDER.index(row["proto"]), -row["count"], row["state"]))
    return rows


def _kinds(records: list[SocketRecord]) -> dict[int, Counter]:
    """pid -> Counter of proto names and states of the sockets it holds."""
    by_pid: dict[int, Counter] = {}
    for r in records:
        for pid in r.pids:
            c = by_pid.setdefault(pid, Counter())
            c["sockets"] += 1
            c[r.proto] += 1
            c[r.state] += 1
    return by_pid


def top_processes(records: list[SocketRecord], seen: ProcessMap,
                  limit: int = TOP_PROCESSES) -> list[dict]:
    kinds = _kinds(records)
    ranked = sorted(kinds.items(), key=lambda item: (-item[1]["sockets"], item[0]))[:limit]
    return [{"type": "process", "pid": pid, "process": seen.processes[pid].process,
             "sockets": c["sockets"], **{p: c[p] for p in PROTO_ORDER}}
            for pid, c in ranked]


def summary(records: list[SocketRecord], seen: ProcessMap) -> dict[str, list[dict]]:
    return {"sockstat": sockstat_rows(), "states": state_counts(records),
            "processes": top_processes(records, seen)}


# ---- --by-process -----------------------------------------------------------


def by_process(records: list[SocketRecord], seen: ProcessMap,
               users=None) -> list[dict]:
    """Per process: sockets by kind and state, descriptors against RLIMIT_NOFILE, flags,
    and psutil's command line, memory, CPU %, threads and start time."""
    from pysock.inventory.procdetail import details
    kinds = _kinds(records)
    more = details(list(kinds))
    rows = []
    for pid, c in kinds.items():
        info = seen.processes[pid]
        limit = fd_limit(pid)
        flags = []
        if limit and info.fds >= limit * NEAR_FD_LIMIT:
            flags.append("near-fd-limit")
        if c[CLOSE_WAIT] >= CLOSE_WAIT_PILE:
            flags.append("close-wait-pile")
        rows.append({
            "pid": pid, "process": info.process, "user": users(info.uid) if users else info.uid,
            "sockets": c["sockets"], **{p: c[p] for p in PROTO_ORDER},
            "listen": c[LISTEN], "established": c[ESTABLISHED], "close_wait": c[CLOSE_WAIT],
            "fds": info.fds, "fd_limit": limit,
            "fd_pct": round(100 * info.fds / limit, 1) if limit else None,
            "flags": flags, **more[pid],
        })
    rows.sort(key=lambda row: (-bool(row["flags"]), -row["sockets"], row["pid"]))
    return rows


# ---- --limits ---------------------------------------------------------------


def _sysctl(name: str) -> str | None:
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return " ".join(f.read().split())
    except OSError:
        return None


def _value(text: str | None):
    if text is not None and text.isdigit():
        return int(text)
    return text


def _row(setting: str, value, in_use: int | None = None, note: str = "") -> dict:
    return {"setting": setting, "value": value, "in_use": in_use, "note": note}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def ephemeral_use(records: list[SocketRecord], low: int, high: int) -> Counter:
    """(peer address, peer port) -> TCP sockets using a local port in the ephemeral range."""
    return Counter((r.peer_addr, r.peer_port) for r in records
                   if r.proto == "tcp" and r.state != LISTEN and r.peer_port
                   and low <= (r.local_port or 0) <= high)


def limits(records: list[SocketRecord]) -> list[dict]:
    tcp = [r for r in records if r.proto == "tcp"]
    states = Counter(r.state for r in tcp)
    listeners = [r for r in tcp if r.state == LISTEN]
    sockstat = procnet.sockstat()
    rows = [
        _row("net.core.somaxconn", _value(_sysctl("net.core.somaxconn")),
             max((r.send_q or 0 for r in listeners), default=0),
             f"largest listener backlog; {len(listeners)} listeners, "
             f"{sum(backlog_full(r) for r in listeners)} with a nearly full accept queue"),
        _row("net.ipv4.tcp_max_syn_backlog", _value(_sysctl("net.ipv4.tcp_max_syn_backlog")),
             states[SYN_RECV], "connections in SYN_RECV"),
    ]
    rows += _port_rows(records)
    rows += [
        _row("net.ipv4.tcp_tw_reuse", _value(_sysctl("net.ipv4.tcp_tw_reuse")),
             states[TIME_WAIT], "sockets in TIME_WAIT"),
        _row("net.ipv4.tcp_max_tw_buckets", _value(_sysctl("net.ipv4.tcp_max_tw_buckets")),
             sockstat.get("TCP", {}).get("tw"), "TIME_WAIT sockets (kernel count)"),
        _row("net.ipv4.tcp_fin_timeout", _value(_sysctl("net.ipv4.tcp_fin_timeout")),
             states[FIN_WAIT2], "sockets in FIN_WAIT2"),
        _row("net.ipv4.tcp_mem", _sysctl("net.ipv4.tcp_mem"),
             sockstat.get("TCP", {}).get("mem"), "pages: min pressure max; in use from sockstat"),
        _row("net.ipv4.udp_mem", _sysctl("net.ipv4.udp_mem"),
             sockstat.get("UDP", {}).get("mem"), "pages: min pressure max; in use from sockstat"),
    ]
    for name in ("net.core.rmem_default", "net.core.rmem_max", "net.core.wmem_default",
                 "net.core.wmem_max", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"):
        rows.append(_row(name, _value(_sysctl(name)), None, "bytes"))
    rows += _file_rows()
    return rows


def _port_rows(records: list[SocketRecord]) -> list[dict]:
    text = _sysctl("net.ipv4.ip_local_port_range")
    if text is None:
        return []
    low, high = (int(x) for x in text.split())
    size = high - low + 1
    use = ephemeral_use(records, low, high)
    ports = len({r.local_port for r in records if r.proto == "tcp" and r.state != LISTEN
                 and low <= (r.local_port or 0) <= high})
    rows = [_row("net.ipv4.ip_local_port_range", text, ports,
                 f"ephemeral ports in use, {_pct(ports, size)} of {size}")]
    for (addr, port), n in use.most_common(TOP_DESTINATIONS):
        risk = "; exhaustion risk" if n >= size * PORT_RISK else ""
        host = f"[{addr}]" if ":" in (addr or "") else addr
        rows.append(_row(f"ephemeral ports to {host}:{port}", size, n,
                         f"{_pct(n, size)} of the range{risk}"))
    return rows


def _file_rows() -> list[dict]:
    rows = []
    file_nr = _sysctl("fs.file-nr")
    file_max = _value(_sysctl("fs.file-max"))
    if file_nr:
        allocated = int(file_nr.split()[0])
        note = f"open files system-wide, {_pct(allocated, file_max)} of fs.file-max" \
            if isinstance(file_max, int) else "open files system-wide"
        rows.append(_row("fs.file-max", file_max, allocated, note))
    rows.append(_row("fs.nr_open", _value(_sysctl("fs.nr_open")), None,
                     "largest RLIMIT_NOFILE a process may be given"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    own = len(os.listdir("/proc/self/fd"))
    rows.append(_row("RLIMIT_NOFILE", soft, own,
                     f"this shell's soft limit (hard {hard}); descriptors pysock holds"))
    return rows
