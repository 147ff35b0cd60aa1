"""tracepath: the path MTU, hop by hop. UDP probes as big as the MTU believed so far
go out with DF set (IP_PMTUDISC_PROBE: the kernel neither fragments them nor
shrinks them to its own idea of the path); a router that cannot forward one says
so with ICMP fragmentation needed (IPv4) or packet too big (IPv6), naming its
next-hop MTU, and the probe is sent again that size. Time exceeded names each
hop; port unreachable (or a reply) from the destination ends the walk. All of it
is read from the socket's error queue, so no privilege is needed."""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pysock.net import errqueue
from pysock.net.sockopt import bind_device, set_ttl
from pysock.probes import icmp

IP_MTU, IPV6_MTU = 14, 24  # <linux/in.h>, <linux/in6.h>: the route's MTU of a connected socket
TRACEPATH_PORT = 44444
UDP_HEADER = 8
FRAG_NEEDED = {socket.AF_INET: (3, 4), socket.AF_INET6: (2, 0)}  # (type, code)
MAX_RESENDS = 10  # MTU cuts at one hop before giving up on it


@dataclass(frozen=True)
class PmtuSpec:
    max_hops: int = 30
    first_hop: int = 1
    wait: float = 2.0
    port: int = TRACEPATH_PORT
    source: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class PmtuHop:
    hop: int
    addr: str | None  # None: no answer in time
    rtt_ns: int | None = None
    pmtu: int | None = None  # the MTU this answer reported (frag needed / too big)
    reached: bool = False
    note: str | None = None  # an unreachable other than the destination's port


@dataclass(frozen=True)
class PmtuStart:
    pmtu: int  # the MTU of this host's route to the destination


class PathMtu:
    """walk() yields PmtuStart, then a PmtuHop per answer; pmtu is the result so far."""

    def __init__(self, addr: str, family: int, spec: PmtuSpec):
        self.addr, self.family, self.spec = addr, family, spec
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._configure()
        except BaseException:
            self.sock.close()
            raise
        self.pmtu = self._route_mtu()
        self.hops = 0
        self.reached = False

    def _configure(self) -> None:
        sock, spec = self.sock, self.spec
        sock.setblocking(False)
        errqueue.want_errors(sock)
        errqueue.want_stamps(sock)
        errqueue.set_dont_fragment(sock)
        if spec.device:
            bind_device(sock, spec.device)
        if spec.source:
            sock.bind((spec.source, 0))
        sock.connect((self.addr, spec.port))

    def _route_mtu(self) -> int:
        v6 = self.family == socket.AF_INET6
        return self.sock.getsockopt(errqueue.level(self.family), IPV6_MTU if v6 else IP_MTU)

    def close(self) -> None:
        self.sock.close()

    def walk(self) -> Iterator[PmtuStart | PmtuHop]:
        yield PmtuStart(self.pmtu)
        for ttl in range(self.spec.first_hop, self.spec.max_hops + 1):
            set_ttl(self.sock, ttl)
            for _ in range(MAX_RESENDS):
                hop = self._probe(ttl)
                if hop is None:
                    continue  # this host's own limit: resent smaller, nothing to show
                self.hops = ttl
                yield hop
                if hop.pmtu is None:
                    break
            else:
                continue
            if hop.reached or hop.note:
                self.reached = hop.reached
                return

    def _probe(self, ttl: int) -> PmtuHop | None:
        header = 40 if self.family == socket.AF_INET6 else 20
        payload = bytes(max(0, self.pmtu - header - UDP_HEADER))
        sent = time.time_ns()
        try:
            self.sock.send(payload)
        except OSError as exc:
            if exc.errno != errno.EMSGSIZE:
                raise
            self.pmtu = min(self.pmtu - 1, self._route_mtu())
            self._drain_local()
            return None
        return self._answer(ttl, sent)

    def _drain_local(self) -> None:
        while errqueue.read_error(self.sock) is not None:
            pass

    def _answer(self, ttl: int, sent: int) -> PmtuHop | None:
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLERR)
        deadline = time.monotonic() + self.spec.wait
        while (left := deadline - time.monotonic()) > 0:
            if not poller.poll(left * 1000):
                continue
            err = errqueue.read_error(self.sock)
            if err is None:
                return self._reply(ttl, sent)
            hop = self._from_error(ttl, sent, err)
            if hop is not None or err.origin == errqueue.Origin.LOCAL:
                return hop
        return PmtuHop(ttl, None)

    def _reply(self, ttl: int, sent: int) -> PmtuHop:
        """A datagram back: something listens on the port; the destination all the same."""
        try:
            _, anc, _, _ = self.sock.recvmsg(65535, errqueue.ANCILLARY)
        except OSError:
            return PmtuHop(ttl, self.addr, time.time_ns() - sent, reached=True)
        return PmtuHop(ttl, self.addr, errqueue.stamp_and_ttl(anc)[0] - sent, reached=True)

    def _from_error(self, ttl: int, sent: int, err: errqueue.QueuedError) -> PmtuHop | None:
        if err.origin == errqueue.Origin.LOCAL:
            if err.errno == errno.EMSGSIZE and err.info:
                self.pmtu = min(self.pmtu - 1, err.info)
            return None
        if not err.is_icmp:
            return None
        rtt = max(0, err.recv_ns - sent)
        who = err.offender or self.addr
        if (err.icmp_type, err.icmp_code) == FRAG_NEEDED[self.family] and err.info:
            self.pmtu = min(self.pmtu - 1, err.info)
            return PmtuHop(ttl, who, rtt, pmtu=self.pmtu)
        if err.is_time_exceeded(self.family):
            return PmtuHop(ttl, who, rtt)
        if err.is_port_unreachable(self.family):
            return PmtuHop(ttl, who, rtt, reached=True)
        return PmtuHop(ttl, who, rtt, note=icmp.short_code(self.family, err.icmp_type,
                                                           err.icmp_code))
