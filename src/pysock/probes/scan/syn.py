"""The SYN scan: half-open probes on raw sockets, answers matched by address,
ports and sequence number.

One raw TCP socket per family sends a prebuilt SYN (packets.SynTemplate) per port
and also receives every TCP segment addressed to this host; a raw ICMP socket
catches destination-unreachable errors. A SYN-ACK is open, a RST closed, ICMP
unreachable or silence after retries filtered. Our kernel answers each SYN-ACK
with a RST because no socket of its own made the connection; that is what
nmap's SYN scan relies on too, and it only tears down the target's half-open
connection after we have read the SYN-ACK. The source port is held by a bound
TCP socket so no local program is handed it while the scan runs."""

from __future__ import annotations

import errno
import random
import select
import socket
from collections import deque
from collections.abc import Callable

from pysock.errors import NetworkError, PrivilegeError
from pysock.probes.scan import packets
from pysock.probes.scan.model import CLOSED, FILTERED, OPEN, Target, Timing, Verdict
from pysock.probes.scan.timing import PortScan, estimators, monotonic

DEFAULT_WINDOW = 2048  # SYNs in flight; answers queue in the raw socket's buffer meanwhile
BATCH = 64  # SYNs sent to one host in a row, sharing one expiry entry
SEND_BETWEEN_READS = 256
RECV_BUFFER = 8 << 20
LOCAL_REFUSALS = (errno.EPERM, errno.EACCES, errno.EHOSTUNREACH, errno.ENETUNREACH)
RTT_SAMPLING = 8  # feed the estimator one answer in 8: plenty, and cheaper per packet
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # not in the socket module: <asm-generic/socket.h>
ICMP_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
PRIVILEGE = "a SYN scan needs raw sockets: run as root or with the CAP_NET_RAW capability"


def raw_socket(family: int, proto: int) -> socket.socket:
    try:
        sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK, proto)
    except PermissionError:
        raise PrivilegeError(PRIVILEGE, advice="scan_connect_instead") from None
    for forced, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        # room for the answers, and for the SYNs the kernel holds while it asks ARP
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, RECV_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, RECV_BUFFER)
    return sock


def source_address(target: Target) -> str:
    """The address this host sends from towards target (a route look-up, no packet)."""
    from pysock.net.route import source_address
    try:
        return source_address(target.addr)
    except OSError as exc:
        raise NetworkError(f"cannot scan {target.label}: {exc.strerror.lower()}") from None


class SynScan(PortScan):
    """run() returns {target index: {port: Verdict}}, like ConnectScan.

    Probes go out in batches of up to BATCH ports to one host; a batch is one entry
    in that host's expiry queue, so the per-packet work is a send and a dict store."""

    # workers.run_split may share the ports among processes: each has its own source
    # port and a filter on its raw socket for it, so each reads only its own answers
    splittable = True

    window = DEFAULT_WINDOW

    def __init__(self, targets: list[Target], ports: list[int], timing: Timing,
                 on_progress: Callable[[int], None] | None = None):
        super().__init__(targets, timing, on_progress)
        self.rtt = estimators(len(targets), timing.timeout)
        self.sent: list[dict[int, float]] = [{} for _ in targets]  # in flight: port -> sent at
        self.tries: list[dict[int, int]] = [{} for _ in targets]  # port -> attempt, once retried
        self.expiry: list[deque[tuple[float, list[int], int]]] = [deque() for _ in targets]
        # work: [host, ports, next position, attempt]; fresh ports first, retries after.
        # ports: a list, or (workers.SharedPorts) (hosts, ports) chunks taken as we go
        chunks = [(range(len(targets)), ports)] if isinstance(ports, list) else ports
        self.chunks = iter(chunks)
        self.jobs: deque[list] = deque()
        self.inflight = 0
        self.done = 0
        self.answers = 0
        self.seq = random.getrandbits(32)

    def run(self) -> list[dict[int, Verdict]]:
        self.sockets: dict[int, socket.socket] = {}  # family -> raw TCP socket
        self.icmp: dict[int, socket.socket] = {}
        self.holds: list[socket.socket] = []
        try:
            self._open()
            self._loop()
        finally:
            for sock in [*self.sockets.values(), *self.icmp.values(), *self.holds]:
                sock.close()
        return self.results

    # ---- set-up -------------------------------------------------------------

    def _open(self) -> None:
        self.sport: dict[int, int] = {}  # family -> our source port
        for family in {t.family for t in self.targets}:
            self.sockets[family] = raw_socket(family, socket.IPPROTO_TCP)
            self.icmp[family] = raw_socket(family, ICMP_PROTO[family])
            self.sport[family] = self._hold_port(family)
            packets.only_to_port(self.sockets[family], family, self.sport[family])
        self.templates = []
        self.index: dict[str, int] = {}  # target address -> target index
        self.index_v4: dict[bytes, int] = {}  # the same, as the bytes in an IPv4 header
        for i, target in enumerate(self.targets):
            src = source_address(target)
            self.templates.append(packets.SynTemplate(
                target.family, src, target.addr, self.sport[target.family], self.seq))
            self.index[target.addr] = i
            if target.family == socket.AF_INET:
                self.index_v4[socket.inet_aton(target.addr)] = i

    def _hold_port(self, family: int) -> int:
        """A source port no local socket will be given while we use it."""
        hold = socket.socket(family, socket.SOCK_STREAM)
        self.holds.append(hold)
        wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
        try:
            hold.bind((wildcard, self.timing.source_port or 0))
        except OSError:
            if not self.timing.source_port:
                raise
            return self.timing.source_port  # in use by someone else: send from it anyway
        return hold.getsockname()[1]

    # ---- the loop -----------------------------------------------------------

    def _loop(self) -> None:
        poller = select.epoll()
        handlers = {}
        for family, sock in self.sockets.items():
            poller.register(sock.fileno(), select.EPOLLIN)
            handlers[sock.fileno()] = (self._read_tcp, sock, family)
        for family, sock in self.icmp.items():
            poller.register(sock.fileno(), select.EPOLLIN)
            handlers[sock.fileno()] = (self._read_icmp, sock, family)
        try:
            while self.jobs or self.inflight or self._take():
                self._send()
                for fd, _ in poller.poll(self._poll_wait()):
                    read, sock, family = handlers[fd]
                    read(sock, family)
                self._expire(monotonic())
                if self.done:
                    self.on_progress(self.done)
                    self.done = 0
        finally:
            poller.close()

    def _poll_wait(self) -> float:
        now = monotonic()
        waits = [self.rtt[host].timeout - (now - queue[0][0])
                 for host, queue in enumerate(self.expiry) if queue]
        if self.jobs and self.inflight < self.limit:
            waits.append(self.rate.wait(now))
        return max(0.0, min(waits)) if waits else 0.0

    # ---- sending ------------------------------------------------------------

    def _take(self) -> bool:
        """Queue the next chunk of fresh ports; False when there are no more."""
        chunk = next(self.chunks, None)
        if chunk is None:
            return False
        hosts, ports = chunk
        self.jobs.extend([h, ports, 0, 0] for h in hosts)
        return True

    def _send(self) -> None:
        sent_now = 0
        while (self.jobs or self._take()) and self.inflight < self.limit \
                and sent_now < SEND_BETWEEN_READS:
            room = min(self.limit - self.inflight, BATCH)
            if self.rate.interval:
                if self.rate.wait(monotonic()) > 0:
                    return
                room = 1
            job = self.jobs[0]
            host, ports, start, attempt = job
            batch = ports[start:start + room]
            job[2] = start + len(batch)
            if job[2] >= len(ports):
                self.jobs.popleft()
            count = self._send_batch(host, batch, attempt)
            sent_now += count or 1
            if count < len(batch):  # the kernel's queue is full: the rest waits a turn
                self.jobs.appendleft([host, batch[count:], 0, attempt])
                return

    def _send_batch(self, host: int, batch: list[int], attempt: int) -> int:
        """Send SYNs to the batch's ports; return how many were dealt with (the rest
        waits: the kernel's queue is full)."""
        target = self.targets[host]
        sendto = self.sockets[target.family].sendto
        template = self.templates[host]
        head, middle, tail = template.head, template.middle, template.tail
        pack, base = template.layout.pack, ~template.base_sum & 0xFFFF
        dest = (target.addr, 0)
        sent = self.sent[host]
        clock = monotonic
        first = clock()
        count, refused = 0, []
        for port in batch:
            total = base + port  # SynTemplate.for_port, inlined: this loop is the hot path
            total = (total & 0xFFFF) + (total >> 16)
            try:
                sendto(pack(head, port, middle, ~total & 0xFFFF, tail), dest)
            except OSError as exc:
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                    break
                if exc.errno not in LOCAL_REFUSALS:
                    raise NetworkError(f"cannot send to {target.label}: {exc.strerror.lower()}") from None
                refused.append((port, exc.errno))  # this host's firewall or routing said no
            else:
                sent[port] = clock()
            count += 1
        for port, code in refused:
            self.results[host][port] = Verdict(FILTERED, "local-" + errno.errorcode[code].lower())
        self.done += len(refused)
        flying = [p for p in batch[:count] if p in sent] if refused else batch[:count]
        if flying:
            self.expiry[host].append((first, flying, attempt))
            if attempt:
                self.tries[host].update(dict.fromkeys(flying, attempt))
            self.inflight += len(flying)
            if self.rate.interval:
                self.rate.sent(first)
        return count

    # ---- answers ------------------------------------------------------------

    def _read_tcp(self, sock: socket.socket, family: int) -> None:
        expect_ack = (self.seq + 1) & 0xFFFFFFFF
        unpack = packets.TCP_HEADER.unpack_from
        rst, synack = packets.TCP_RST, packets.TCP_SYN | packets.TCP_ACK
        v4 = family == socket.AF_INET
        recv, recvfrom = sock.recv, sock.recvfrom
        index, index_v4 = self.index, self.index_v4
        sent, results, estimators, clock = self.sent, self.results, self.rtt, monotonic
        answers, settled = self.answers, 0
        while True:
            try:
                if v4:  # the source address is in the IP header: no address tuple needed
                    packet = recv(128)
                    offset = (packet[0] & 0x0F) * 4
                    host = index_v4.get(packet[12:16])
                else:
                    packet, peer = recvfrom(128)
                    offset = 0
                    host = index.get(peer[0])
            except BlockingIOError:
                break
            if host is None or len(packet) < offset + 14:
                continue
            sport, _, _, ack, _, flags = unpack(packet, offset)
            if ack != expect_ack:
                continue
            if flags & rst:
                state, reason = CLOSED, "reset"
            elif flags & synack == synack:
                state, reason = OPEN, "syn-ack"
            else:
                continue
            at = sent[host].pop(sport, None)
            if at is None:
                self._late(host, sport, state, reason)
                continue
            rtt = clock() - at  # _settle, inlined for the common case
            answers += 1
            if answers % RTT_SAMPLING == 1:
                estimators[host].sample(rtt)
            results[host][sport] = Verdict(state, reason, rtt)
            settled += 1

        self.answers = answers
        self.inflight -= settled
        self.done += settled

    def _read_icmp(self, sock: socket.socket, family: int) -> None:
        while True:
            try:
                packet = sock.recv(1500)
            except BlockingIOError:
                return
            quoted = packets.icmp_error(packet, family)
            if quoted is None:
                continue
            dst, sport, dport, seq, code = quoted
            host = self.index.get(dst)
            if host is not None and sport == self.sport[family] and seq == self.seq:
                reason = packets.ICMP_REASONS.get((family, code), f"icmp-code-{code}")
                self._settle(host, dport, FILTERED, reason)

    def _late(self, host: int, port: int, state: str, reason: str) -> None:
        """An answer after the port was given up on still tells the truth."""
        earlier = self.results[host].get(port)
        if earlier is not None and earlier.reason == "no-response":
            self.results[host][port] = Verdict(state, reason)

    def _settle(self, host: int, port: int, state: str, reason: str) -> None:
        at = self.sent[host].pop(port, None)
        if at is None:
            self._late(host, port, state, reason)
            return
        rtt = monotonic() - at  # not a sample: an ICMP error may be our own, after ARP failed
        self.results[host][port] = Verdict(state, reason, rtt)
        self.inflight -= 1
        self.done += 1

    def _expire(self, now: float) -> None:
        for host, queue in enumerate(self.expiry):
            timeout = self.rtt[host].timeout
            while queue and now - queue[0][0] >= timeout:
                _, batch, attempt = queue.popleft()
                sent, tries = self.sent[host], self.tries[host]
                lost = [p for p in batch if p in sent and tries.get(p, 0) == attempt]
                if not lost:
                    continue
                for port in lost:
                    del sent[port]
                self.inflight -= len(lost)
                if attempt < self.timing.retries:
                    self.jobs.append([host, lost, 0, attempt + 1])
                else:
                    for port in lost:
                        self.results[host][port] = Verdict(FILTERED, "no-response")
                    self.done += len(lost)
