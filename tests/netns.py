"""Throwaway network namespaces joined by veth pairs, for multi-host tests.

Addresses live only inside the namespaces this module makes; everything is
torn down by Lab.close(), which the fixtures call even when a test fails."""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass, field

_serial = itertools.count(1)


def sh(*argv: str, check: bool = True, input: str | None = None, timeout: float = 20):
    return subprocess.run(argv, check=check, capture_output=True, text=True, input=input,
                          timeout=timeout)


@dataclass
class Host:
    name: str  # the namespace name
    addrs: dict[str, str] = field(default_factory=dict)  # interface -> address (no prefix)
    addrs6: dict[str, str] = field(default_factory=dict)

    @property
    def addr(self) -> str:
        return next(iter(self.addrs.values()))

    @property
    def addr6(self) -> str:
        return next(iter(self.addrs6.values()))

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 30, input: str | None = None):
        return sh(*self.argv(*argv), check=check, timeout=timeout, input=input)

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.argv(*argv), start_new_session=True, **kw)

    def nft(self, rules: str) -> None:
        """Load an nftables ruleset (nft -f syntax) inside this host."""
        self.run("nft", "-f", "-", input=rules)

    def nft_counter(self, table: str, name: str, family: str = "inet") -> int:
        """Packets counted by the named counter object."""
        out = self.run("nft", "list", "counter", family, table, name).stdout
        for word, value in zip(out.split(), out.split()[1:]):
            if word == "packets":
                return int(value)
        raise AssertionError(f"no counter {name} in {out!r}")


class Lab:
    """A set of namespaces; subnet numbers are unique per process and lab."""

    def __init__(self):
        self.hosts: list[Host] = []
        self.tag = f"{os.getpid() % 10000}x{next(_serial)}"
        self._subnet = (os.getpid() + next(_serial) * 7) % 200

    def host(self, role: str) -> Host:
        name = f"ps{self.tag}{role}"
        sh("ip", "netns", "add", name)
        host = Host(name)
        self.hosts.append(host)
        host.run("ip", "link", "set", "lo", "up")
        return host

    def link(self, a: Host, b: Host) -> tuple[str, str]:
        """A veth pair between a and b with a /24 (10.231.N.0) and a /64 each."""
        self._subnet = (self._subnet + 1) % 250
        net = self._subnet
        ia, ib = f"v{net}a", f"v{net}b"
        sh("ip", "link", "add", ia, "netns", a.name, "type", "veth", "peer", "name", ib,
           "netns", b.name)
        for host, iface, last in ((a, ia, 1), (b, ib, 2)):
            host.run("ip", "addr", "add", f"10.231.{net}.{last}/24", "dev", iface)
            host.run("ip", "-6", "addr", "add", f"fd00:231:{net}::{last}/64", "dev", iface,
                     "nodad")
            host.run("ip", "link", "set", iface, "up")
            host.addrs[iface] = f"10.231.{net}.{last}"
            host.addrs6[iface] = f"fd00:231:{net}::{last}"
        return ia, ib

    def close(self) -> None:
        for host in reversed(self.hosts):
            for pid in sh("ip", "netns", "pids", host.name, check=False).stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", host.name, check=False)
        self.hosts.clear()


def two_hosts(lab: Lab) -> tuple[Host, Host]:
    a, b = lab.host("a"), lab.host("b")
    lab.link(a, b)
    return a, b


def chain(lab: Lab) -> tuple[Host, Host, Host]:
    """client -- router -- server, the router forwarding; routes both ways."""
    client, router, server = lab.host("c"), lab.host("r"), lab.host("s")
    ca, rc = lab.link(client, router)
    rs, sr = lab.link(router, server)
    router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    router.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    client.run("ip", "route", "add", "default", "via", router.addrs[rc])
    server.run("ip", "route", "add", "default", "via", router.addrs[rs])
    client.run("ip", "-6", "route", "add", "default", "via", router.addrs6[rc])
    server.run("ip", "-6", "route", "add", "default", "via", router.addrs6[rs])
    return client, router, server
