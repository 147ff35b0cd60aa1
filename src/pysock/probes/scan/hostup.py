"""Is anyone there? The up-check before scanning the hosts of a CIDR block.

With raw sockets (root or CAP_NET_RAW): ICMP echo to every host. Then, for the
hosts still silent, and for everyone without privilege: a TCP connect to ports 80
and 443, where any answer, even a refusal, shows the host is up (nmap's
unprivileged discovery)."""

from __future__ import annotations

import os
import select
import socket
import struct

from pysock.probes.scan.connect import ConnectScan
from pysock.probes.scan.model import CLOSED, OPEN, Target, Timing
from pysock.probes.scan.packets import checksum
from pysock.probes.scan.timing import monotonic

TCP_PORTS = [80, 443]
ECHO_WAIT = 1.0
ECHO_TRIES = 2
ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
ICMP_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}


def up_hosts(targets: list[Target], timing: Timing) -> tuple[set[int], str]:
    """Indexes of the targets that answered, and how they were asked."""
    up = _echo(targets)
    how = "ICMP echo or TCP 80/443" if up is not None else "TCP 80/443"
    up = up or set()
    rest = [i for i in range(len(targets)) if i not in up]
    if rest:
        probe_timing = Timing(concurrency=timing.concurrency, timeout=timing.timeout or 1.0,
                              retries=timing.retries, rate=timing.rate)
        found = ConnectScan([targets[i] for i in rest], TCP_PORTS, probe_timing).run()
        for i, verdicts in zip(rest, found):
            if any(v.state in (OPEN, CLOSED) for v in verdicts.values()):
                up.add(i)
    return up, how


def _echo(targets: list[Target]) -> set[int] | None:
    """Targets answering ICMP echo; None without the privilege to send it."""
    sockets: dict[int, socket.socket] = {}
    try:
        for family in {t.family for t in targets}:
            sockets[family] = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                            ICMP_PROTO[family])
    except PermissionError:
        for sock in sockets.values():
            sock.close()
        return None
    ident = os.getpid() & 0xFFFF
    index = {t.addr: i for i, t in enumerate(targets)}
    up: set[int] = set()
    try:
        for attempt in range(ECHO_TRIES):
            for i, target in enumerate(targets):
                if i not in up:
                    _send_echo(sockets[target.family], target, ident, attempt)
            _collect(sockets, index, ident, up, monotonic() + ECHO_WAIT)
            if len(up) == len(targets):
                break
    finally:
        for sock in sockets.values():
            sock.close()
    return up


def _send_echo(sock: socket.socket, target: Target, ident: int, seq: int) -> None:
    header = struct.pack("!BBHHH", ECHO_REQUEST[target.family], 0, 0, ident, seq)
    body = b"pysock-scan-up?"
    if target.family == socket.AF_INET:  # the kernel fills in the ICMPv6 checksum itself
        header = header[:2] + struct.pack("!H", checksum(header + body)) + header[4:]
    try:
        sock.sendto(header + body, (target.addr, 0))
    except OSError:
        pass  # unreachable from here: the host stays down


def _collect(sockets, index, ident: int, up: set[int], deadline: float) -> None:
    poller = select.epoll()
    try:
        for sock in sockets.values():
            poller.register(sock.fileno(), select.EPOLLIN)
        by_fd = {sock.fileno(): (family, sock) for family, sock in sockets.items()}
        while len(up) < len(index):
            wait = deadline - monotonic()
            if wait <= 0:
                return
            for fd, _ in poller.poll(wait):
                family, sock = by_fd[fd]
                _drain(sock, family, index, ident, up)
    finally:
        poller.close()


def _drain(sock, family: int, index, ident: int, up: set[int]) -> None:
    while True:
        try:
            packet, peer = sock.recvfrom(1500)
        except BlockingIOError:
            return
        offset = (packet[0] & 0x0F) * 4 if family == socket.AF_INET else 0
        if len(packet) < offset + 8:
            continue
        kind, _, _, their_ident, _ = struct.unpack_from("!BBHHH", packet, offset)
        host = index.get(peer[0])
        if kind == ECHO_REPLY[family] and their_ident == ident and host is not None:
            up.add(host)
