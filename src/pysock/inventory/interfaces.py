"""Network interfaces with their addresses, state and traffic counters (psutil).

psutil's net_if_addrs, net_if_stats and net_io_counters read getifaddrs, ioctls
and /proc/net/dev for the network namespace pysock runs in; this module turns
them into records and, between two looks, rates."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

COUNTERS = (("rx_bytes", "bytes_recv"), ("tx_bytes", "bytes_sent"),
            ("rx_packets", "packets_recv"), ("tx_packets", "packets_sent"),
            ("rx_errors", "errin"), ("tx_errors", "errout"),
            ("rx_drops", "dropin"), ("tx_drops", "dropout"))
RATES = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
DUPLEX = {0: None, 1: "half", 2: "full"}


@dataclass
class Snapshot:
    rows: list[dict]
    taken: float  # time.monotonic()

    @classmethod
    def now(cls) -> Snapshot:
        return cls(read(), time.monotonic())


def _address(entry) -> str | None:
    if entry.family == socket.AF_INET:
        bits = ipaddress.IPv4Network(f"0.0.0.0/{entry.netmask}").prefixlen if entry.netmask \
            else 32
        return f"{entry.address}/{bits}"
    if entry.family == socket.AF_INET6:
        bits = bin(int(ipaddress.IPv6Address(entry.netmask))).count("1") if entry.netmask \
            else 128
        return f"{entry.address}/{bits}"
    return None


def read() -> list[dict]:
    """One record per interface: name, state, mtu, speed, duplex, MAC, addresses and
    the eight traffic counters, in interface order."""
    import psutil
    addrs = psutil.net_if_addrs()
    stats = psutil.net_if_stats()
    io = psutil.net_io_counters(pernic=True, nowrap=False)
    rows = []
    for name in sorted(set(stats) | set(io), key=_index):
        st, counters = stats.get(name), io.get(name)
        entries = addrs.get(name, [])
        row = {"iface": name, "state": None if st is None else ("up" if st.isup else "down"),
               "mtu": st.mtu if st else None,
               "speed_mbps": (st.speed or None) if st else None,
               "duplex": DUPLEX.get(int(st.duplex)) if st else None,
               "mac": next((e.address for e in entries if e.family == psutil.AF_LINK), None),
               "addrs": [a for a in map(_address, entries) if a]}
        for ours, theirs in COUNTERS:
            row[ours] = getattr(counters, theirs) if counters else None
        rows.append(row)
    return rows


def _index(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 1 << 30


def with_rates(now: Snapshot, before: Snapshot | None) -> list[dict]:
    """The rows of now; with a before, each counter's rate per second beside it."""
    if before is None:
        return now.rows
    elapsed = now.taken - before.taken
    earlier = {r["iface"]: r for r in before.rows}
    out = []
    for row in now.rows:
        old = earlier.get(row["iface"], {})
        row = dict(row)
        for key in RATES:
            if row[key] is None or old.get(key) is None or elapsed <= 0:
                row[f"{key}_per_s"] = None
            else:
                row[f"{key}_per_s"] = round((row[key] - old[key]) / elapsed, 1)
        out.append(row)
    return out
