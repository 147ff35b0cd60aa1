"""Is anyone there? The up-check before scanning the hosts of a CIDR block.

With raw sockets (root or CAP_NET_RAW): ICMP echo to every host. The echo makes
the kernel ask ARP for hosts on a directly connected IPv4 network: one that has not
answered ARP by the end of the wait is down (no other probe could reach it either),
so it costs no further round (nmap's ARP ping decides the same). Then, for the
hosts still unknown (silent to echo, but not known absent), and for everyone
without privilege: a TCP connect to ports 80 and 443, where any answer, even a
refusal, shows the host is up (nmap's unprivileged discovery)."""

from __future__ import annotations

import select
import socket

from pysock.net.route import on_link, resolved_neighbours
from pysock.probes import icmp
from pysock.probes.scan.connect import ConnectScan
from pysock.probes.scan.model import CLOSED, OPEN, Target, Timing
from pysock.probes.scan.timing import monotonic

TCP_PORTS = [80, 443]
ECHO_WAIT = 1.0
ECHO_TRIES = 2
ICMP_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
PAYLOAD = b"pysock-scan-up?"


def up_hosts(targets: list[Target], timing: Timing) -> tuple[set[int], str]:
    """Indexes of the targets that answered, and how they were asked."""
    sweep = _EchoSweep(targets)
    up = sweep.run()
    how = "ICMP echo, ARP or TCP 80/443" if up is not None else "TCP 80/443"
    up = up or set()
    rest = [i for i in range(len(targets)) if i not in up and i not in sweep.settled]
    if rest:
        probe_timing = Timing(concurrency=timing.concurrency, timeout=timing.timeout or 1.0,
                              retries=timing.retries, rate=timing.rate)
        found = ConnectScan([targets[i] for i in rest], TCP_PORTS, probe_timing).run()
        for i, verdicts in zip(rest, found):
            if any(v.state in (OPEN, CLOSED) for v in verdicts.values()):
                up.add(i)
    return up, how


class _EchoSweep:
    """run(): the targets answering ICMP echo (or ARP, on a directly connected
    network); None without the privilege to send echo. settled: the targets whose
    fate is known without TCP (up, or silent to ARP on their own link)."""

    def __init__(self, targets: list[Target]):
        self.targets = targets
        self.index = {t.addr: i for i, t in enumerate(targets)}
        self.linked = {i for i, t in enumerate(targets) if on_link(t.addr)}
        self.settled: set[int] = set()
        self.ident = 0

    def run(self) -> set[int] | None:
        sockets: dict[int, socket.socket] = {}
        try:
            for family in {t.family for t in self.targets}:
                sockets[family] = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                                ICMP_PROTO[family])
        except PermissionError:
            for sock in sockets.values():
                sock.close()
            return None
        self.ident = (id(self) >> 4) & 0xFFFF
        up: set[int] = set()
        try:
            for attempt in range(ECHO_TRIES):
                for i, target in enumerate(self.targets):
                    if i not in up and i not in self.settled:
                        _send_echo(sockets[target.family], target, self.ident, attempt)
                self._collect(sockets, up, monotonic() + ECHO_WAIT)
                self._by_arp(up)
                if len(up | self.settled) == len(self.targets):
                    break
        finally:
            for sock in sockets.values():
                sock.close()
        self.settled |= up
        return up

    def _by_arp(self, up: set[int]) -> None:
        """On-link targets silent to echo and without an ARP answer are down. (One
        with an ARP entry may drop echo, or the entry may be stale: TCP decides.)"""
        if not self.linked:
            return
        resolved = resolved_neighbours()
        for i in self.linked - up:
            if self.targets[i].addr not in resolved:
                self.settled.add(i)

    def _collect(self, sockets, up: set[int], deadline: float) -> None:
        poller = select.epoll()
        try:
            for sock in sockets.values():
                poller.register(sock.fileno(), select.EPOLLIN)
            by_fd = {sock.fileno(): (family, sock) for family, sock in sockets.items()}
            while len(up) < len(self.targets):
                wait = deadline - monotonic()
                if wait <= 0:
                    return
                for fd, _ in poller.poll(wait):
                    family, sock = by_fd[fd]
                    self._drain(sock, family, up)
        finally:
            poller.close()

    def _drain(self, sock, family: int, up: set[int]) -> None:
        while True:
            try:
                packet, peer = sock.recvfrom(1500)
            except BlockingIOError:
                return
            if family == socket.AF_INET:
                split = icmp.split_ipv4(packet)
                if split is None:
                    continue
                packet = split[1]
            reply = icmp.parse_echo_reply(family, packet, None, verify=False)
            host = self.index.get(peer[0])
            if reply is not None and reply.ident == self.ident and host is not None:
                up.add(host)


def _send_echo(sock: socket.socket, target: Target, ident: int, seq: int) -> None:
    try:
        sock.sendto(icmp.echo_request(target.family, ident, seq, PAYLOAD), (target.addr, 0))
    except OSError:
        pass  # unreachable from here: the host stays down
