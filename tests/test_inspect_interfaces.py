"""inspect --interfaces against /sys/class/net and `ip -s link`, after known traffic
through a veth pair between two namespaces."""

from __future__ import annotations

import json

import netns as _netns
from conftest import PYSOCK, run_pysock

DATAGRAMS, SIZE = 200, 1000
SEND = (f"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range({DATAGRAMS}): s.sendto(b'x' * {SIZE}, ('{{peer}}', 9))")


def interfaces(host, *args: str) -> list[dict]:
    out = host.run(*PYSOCK, "inspect", "--interfaces", "--json", *args)
    return [json.loads(line) for line in out.stdout.splitlines()]


def sys_stats(host, iface: str) -> dict[str, int]:
    names = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors",
             "rx_dropped", "tx_dropped")
    out = host.run("sh", "-c", " ".join(f"cat /sys/class/net/{iface}/statistics/{n};"
                                        for n in names)).stdout.split()
    return dict(zip(names, map(int, out)))


def quiet_look(host, iface: str, tries: int = 20):
    """pysock's interfaces, /sys and ip -s link read in an instant when nothing moved:
    the two oracles read before and after pysock agree (a late ICMP error or an IPv6
    router solicitation can arrive at any time on a new link)."""
    for _ in range(tries):
        sys_before = sys_stats(host, iface)
        link = json.loads(host.run("ip", "-s", "-j", "link", "show", "dev", iface).stdout)[0]
        mine = {r["iface"]: r for r in interfaces(host)}
        if sys_stats(host, iface) == sys_before and _link_counts(host, iface) == \
                _link_counts(None, iface, link):
            return mine, sys_before, link
        host.run("sleep", "0.2")
    raise AssertionError("the link never held still")


def _link_counts(host, iface: str, link: dict | None = None) -> tuple:
    if link is None:
        link = json.loads(host.run("ip", "-s", "-j", "link", "show", "dev", iface).stdout)[0]
    stats = link["stats64"]
    return stats["rx"]["bytes"], stats["rx"]["packets"], stats["tx"]["bytes"], stats["tx"]["packets"]


def test_counters_equal_sys_and_ip_after_known_traffic(lab):
    a, b = _netns.two_hosts(lab)
    iface = next(iter(a.addrs))
    a.run("ip", "link", "set", iface, "mtu", "1400")
    a.run("ip", "link", "add", "pysockdown", "type", "veth", "peer", "name", "pysockdown2")
    before = {r["iface"]: r for r in interfaces(a)}
    a.run("python3", "-c", SEND.format(peer=b.addr))
    after, sys, link = quiet_look(a, iface)
    mine = after[iface]
    assert mine["tx_packets"] - before[iface]["tx_packets"] >= DATAGRAMS
    assert mine["tx_bytes"] - before[iface]["tx_bytes"] >= DATAGRAMS * (SIZE + 8 + 20 + 14)
    for ours, theirs in (("rx_bytes", "rx_bytes"), ("tx_bytes", "tx_bytes"),
                         ("rx_packets", "rx_packets"), ("tx_packets", "tx_packets"),
                         ("rx_errors", "rx_errors"), ("tx_errors", "tx_errors"),
                         ("rx_drops", "rx_dropped"), ("tx_drops", "tx_dropped")):
        assert mine[ours] == sys[theirs], ours
    stats = link["stats64"]
    assert (mine["rx_bytes"], mine["rx_packets"]) == (stats["rx"]["bytes"], stats["rx"]["packets"])
    assert (mine["tx_bytes"], mine["tx_packets"]) == (stats["tx"]["bytes"], stats["tx"]["packets"])
    assert (mine["state"], mine["mtu"], mine["mac"]) == ("up", 1400, link["address"])
    assert f"{a.addrs[iface]}/24" in mine["addrs"] and f"{a.addrs6[iface]}/64" in mine["addrs"]
    assert after["pysockdown"]["state"] == "down" and after["lo"]["addrs"][0] == "127.0.0.1/8"


def test_interval_adds_rates_per_second(lab):
    a, b = _netns.two_hosts(lab)
    iface = next(iter(a.addrs))
    proc = a.popen(*PYSOCK, "inspect", "--interfaces", "--interval", "1.5", "--count", "2",
                   "--json")
    first = proc.stdout.readline()  # the first look is taken: now the traffic
    a.run("python3", "-c", SEND.format(peer=b.addr))
    out = proc.stdout.read()  # the same buffered reader: the first look's other lines
    assert proc.wait(30) == 0, proc.stderr.read()
    looks = [json.loads(line) for line in [first, *out.splitlines()]]
    one = [r for r in looks if r["iface"] == iface]
    assert len(one) == 2 and "tx_bytes_per_s" not in one[0]
    sent = one[1]["tx_bytes"] - one[0]["tx_bytes"]
    assert sent >= DATAGRAMS * SIZE
    # the rate is the change over the time between the looks (1.5 s and a little)
    assert sent / 1.5 * 0.7 <= one[1]["tx_bytes_per_s"] <= sent / 1.5


def test_interfaces_refuse_socket_selections():
    for args, words in ((["--interfaces", "-t"], "does not go with --interfaces"),
                        (["--interfaces", "-a"], "not --interfaces"),
                        (["--interfaces", "--count", "2"], "--count goes with")):
        out = run_pysock("inspect", *args)
        assert out.returncode == 2 and words in out.stderr.decode(), (args, out.stderr)
        assert len(out.stderr.splitlines()) == 1
