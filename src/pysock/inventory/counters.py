"""The kernel's SNMP and extended counters, named as nstat names them.

/proc/net/snmp and /proc/net/netstat hold pairs of lines ("Tcp: names" then
"Tcp: values"); /proc/net/snmp6 holds "Name value" lines. nstat joins the
prefix and the field (TcpExtListenOverflows) and leaves out the settings and
gauges below; pysock reads the same files the same way, so its deltas over an
interval are nstat's. The few counters that explain why connections fail carry a
sentence and are flagged when non-zero (or, over an interval, rising)."""

from __future__ import annotations

import time
from dataclasses import dataclass

PAIRED_FILES = ("/proc/net/snmp", "/proc/net/netstat")
NAMED_FILES = ("/proc/net/snmp6", "/proc/net/sctp/snmp")
# settings and gauges, not counters: nstat leaves them out too
NOT_COUNTERS = frozenset(("IpForwarding", "IpDefaultTTL", "TcpRtoAlgorithm", "TcpRtoMin",
                          "TcpRtoMax", "TcpMaxConn", "TcpCurrEstab"))

# The counters that explain trouble, in the order they are shown, and what each means.
TROUBLE = {
    "TcpExtListenOverflows": "accept queue full: a listener's backlog too short or its "
                             "accept loop too slow",
    "TcpExtListenDrops": "connection requests dropped at a listener",
    "TcpExtTCPReqQFullDrop": "SYNs dropped: SYN queue full and no SYN cookies",
    "TcpExtSyncookiesSent": "SYN cookies sent: the SYN queue overflowed",
    "TcpExtSyncookiesFailed": "SYN cookies that did not check out",
    "TcpExtTCPSynRetrans": "SYNs and SYN-ACKs retransmitted (peer slow, dead or filtered)",
    "TcpAttemptFails": "connection attempts that failed (reset or timed out)",
    "TcpExtTCPTimeouts": "retransmission timeouts",
    "TcpRetransSegs": "segments retransmitted",
    "TcpEstabResets": "established connections reset",
    "TcpOutRsts": "resets sent",
    "TcpExtTCPAbortOnData": "connections reset because data arrived after close",
    "TcpExtTCPAbortOnClose": "connections reset: closed with unread data",
    "TcpExtTCPAbortOnMemory": "connections aborted: TCP out of memory",
    "TcpExtTCPAbortOnTimeout": "connections aborted after too many retransmissions",
    "TcpExtTCPAbortOnLinger": "connections aborted by a linger timeout",
    "TcpExtTCPAbortFailed": "resets that could not be sent",
    "TcpExtTCPMemoryPressures": "times TCP entered memory pressure",
    "TcpExtPruneCalled": "receive queues pruned for lack of memory",
    "TcpExtTCPBacklogDrop": "segments dropped: socket backlog full",
    "TcpExtTCPRcvQDrop": "segments dropped: receive queue over its buffer",
    "TcpExtTCPZeroWindowDrop": "segments dropped on a zero window",
    "TcpInErrs": "TCP segments received with errors",
    "TcpInCsumErrors": "TCP segments with bad checksums",
    "UdpRcvbufErrors": "UDP datagrams dropped: receive buffer full (reader too slow)",
    "UdpSndbufErrors": "UDP datagrams dropped: send buffer full",
    "UdpNoPorts": "UDP datagrams to a port nobody listens on",
    "UdpInErrors": "UDP datagrams that could not be delivered",
    "UdpInCsumErrors": "UDP datagrams with bad checksums",
    "Udp6RcvbufErrors": "UDP/IPv6 datagrams dropped: receive buffer full",
    "Udp6SndbufErrors": "UDP/IPv6 datagrams dropped: send buffer full",
    "Udp6NoPorts": "UDP/IPv6 datagrams to a port nobody listens on",
    "Udp6InErrors": "UDP/IPv6 datagrams that could not be delivered",
    "IpInHdrErrors": "IP packets with bad headers",
    "IpInAddrErrors": "IP packets to an address not ours",
    "IpInDiscards": "IP packets discarded on input (no buffer)",
    "IpOutDiscards": "IP packets discarded on output",
    "IpOutNoRoutes": "IP packets with no route out",
    "IpReasmFails": "IP reassemblies that failed",
    "IpFragFails": "IP packets that needed fragmenting but could not be",
    "Ip6InDiscards": "IPv6 packets discarded on input",
    "Ip6OutDiscards": "IPv6 packets discarded on output",
    "Ip6OutNoRoutes": "IPv6 packets with no route out",
    "IcmpInErrors": "ICMP messages received with errors",
    "IcmpOutErrors": "ICMP messages that could not be sent",
    "IcmpInDestUnreachs": "ICMP destination unreachable received",
    "IcmpOutDestUnreachs": "ICMP destination unreachable sent (ports closed, no route)",
    "Icmp6InErrors": "ICMPv6 messages received with errors",
    "Icmp6InDestUnreachs": "ICMPv6 destination unreachable received",
    "Icmp6OutDestUnreachs": "ICMPv6 destination unreachable sent",
}
# Traffic shown beside the trouble for scale (not flagged).
CONTEXT = {
    "TcpActiveOpens": "connections opened from here",
    "TcpPassiveOpens": "connections accepted",
    "TcpInSegs": "TCP segments received",
    "TcpOutSegs": "TCP segments sent",
    "UdpInDatagrams": "UDP datagrams received",
    "UdpOutDatagrams": "UDP datagrams sent",
    "IpInReceives": "IP packets received",
    "IpOutRequests": "IP packets sent",
}


def _paired(path: str, into: dict[str, int]) -> None:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for head, values in zip(lines[::2], lines[1::2]):
        prefix, _, names = head.partition(":")
        for name, value in zip(names.split(), values.partition(":")[2].split()):
            into[prefix + name] = int(value)


def _named(path: str, into: dict[str, int]) -> None:
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) == 2:
                    into[words[0]] = int(words[1])
    except OSError:
        return


def read() -> dict[str, int]:
    """Every counter of this network namespace, in file order, by nstat's name."""
    found: dict[str, int] = {}
    for path in PAIRED_FILES:
        _paired(path, found)
    for path in NAMED_FILES:
        _named(path, found)
    for name in NOT_COUNTERS:
        found.pop(name, None)
    return found


@dataclass
class Snapshot:
    values: dict[str, int]
    taken: float  # time.monotonic()

    @classmethod
    def now(cls) -> Snapshot:
        return cls(read(), time.monotonic())


def _names(values: dict[str, int], every: bool) -> list[str]:
    if every:
        return list(values)
    return [n for n in (*TROUBLE, *CONTEXT) if n in values]


def records(now: Snapshot, before: Snapshot | None = None, *, every: bool = False,
            changed_only: bool = False) -> list[dict]:
    """One record per counter: name, value, and with a before, delta and per_s;
    flag is true for a trouble counter that is non-zero (rising, with a before)."""
    out = []
    elapsed = (now.taken - before.taken) if before is not None else None
    for name in _names(now.values, every):
        value = now.values[name]
        rec: dict = {"name": name, "value": value}
        change = value
        if before is not None:
            # a counter that appeared (module loaded) counts from zero, as nstat does
            change = (value - before.values.get(name, 0)) & 0xFFFFFFFFFFFFFFFF
            rec["delta"] = change
            rec["per_s"] = round(change / elapsed, 1) if elapsed else None
            if changed_only and not change:
                continue
        rec["flag"] = name in TROUBLE and change > 0
        rec["about"] = TROUBLE.get(name) or CONTEXT.get(name)
        out.append(rec)
    return out
