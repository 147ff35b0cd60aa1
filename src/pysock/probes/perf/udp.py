"""UDP data streams as iperf3 runs them (iperf_udp.c): a 4-byte hello from the
client and its reply set a stream up; every datagram opens with the send time
and a sequence number, from which the receiver counts loss, reordering and
jitter (RFC 1889's running estimate)."""

from __future__ import annotations

import socket
import struct
import threading
import time

from pysock.probes.perf import protocol as P
from pysock.probes.perf.streams import Budget, Stream, _given_up, _pattern

HELLO_WAIT = 10.0
HEADER32 = struct.Struct("!III")  # seconds, microseconds, packet count
HEADER64 = struct.Struct("!IIQ")  # with udp_counters_64bit
MIN_LENGTH = HEADER64.size


def hello(sock: socket.socket) -> None:
    """The client's side of the UDP connect handshake."""
    sock.settimeout(HELLO_WAIT)
    try:
        sock.send(struct.pack("=I", P.UDP_CONNECT_MSG))
        reply = sock.recv(4)
    except TimeoutError:
        raise P.ProtocolError("no reply to the UDP stream's hello") from None
    except OSError as exc:
        raise P.ProtocolError(f"UDP stream set-up failed: {exc.strerror or exc}") from None
    if len(reply) != 4 or struct.unpack("=I", reply)[0] not in (
            P.UDP_CONNECT_REPLY, P.LEGACY_UDP_CONNECT_REPLY,
            struct.unpack("<I", struct.pack(">I", P.UDP_CONNECT_REPLY))[0]):
        raise P.ProtocolError("the UDP stream's hello got a wrong reply")


def bound_like(listener: socket.socket) -> socket.socket:
    """A UDP socket on the TCP listener's address and port (iperf3 serves both on one)."""
    sock = socket.socket(listener.family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if listener.family == socket.AF_INET6:
        v6only = listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    sock.bind(listener.getsockname())
    return sock


def accept(waiting: socket.socket, listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """The server's side: the first hello on the bound socket makes it that client's
    stream (connected to it); a fresh bound socket waits for the next one.
    Returns (stream socket, next waiting socket)."""
    waiting.settimeout(HELLO_WAIT)
    try:
        data, peer = waiting.recvfrom(64)
    except TimeoutError:
        raise P.ProtocolError("no UDP stream hello came") from None
    if len(data) != 4:
        raise P.ProtocolError(f"a UDP stream hello of {len(data)} bytes")
    waiting.connect(peer)
    fresh = bound_like(listener)
    waiting.send(struct.pack("=I", P.UDP_CONNECT_REPLY))
    return waiting, fresh


class UdpStream(Stream):
    """A UDP stream: paced datagrams with iperf3's header; the receiver's counters."""

    def __init__(self, sock: socket.socket, sid: int, sender: bool, rate: int,
                 counters64: bool = False):
        super().__init__(sock, sid, sender, rate)
        self.header = HEADER64 if counters64 else HEADER32
        self.packets = 0  # sent, or the highest sequence number seen
        self.lost = 0
        self.out_of_order = 0
        self.jitter = 0.0  # seconds
        self._transit: float | None = None
        self.base_packets = 0
        self.base_lost = 0

    def omit_done(self) -> None:
        super().omit_done()
        self.base_packets, self.base_lost = self.packets, self.lost

    @property
    def counted_packets(self) -> int:
        return self.packets - self.base_packets

    @property
    def counted_lost(self) -> int:
        return self.lost - self.base_lost

    def _send_loop(self, stop: threading.Event, block: int, budget: Budget,
                   zerocopy: bool) -> None:
        buffer = _pattern(max(block, MIN_LENGTH))
        view = memoryview(buffer)
        for size in self._paced_blocks(stop, block, budget):
            now = time.time()
            self.header.pack_into(buffer, 0, int(now), int(now % 1 * 1e6), self.packets + 1)
            while True:
                try:
                    self.sock.send(view[:max(size, MIN_LENGTH)])
                    break
                except (BlockingIOError, ConnectionRefusedError):
                    if _given_up(stop, self.sock):
                        return
            self.packets += 1
            self.bytes += size

    def arrived(self, buffer: bytearray, size: int) -> None:
        if size < self.header.size:
            return
        sec, usec, count = self.header.unpack_from(buffer)
        if count >= self.packets + 1:
            if count > self.packets + 1:
                self.lost += count - 1 - self.packets
            self.packets = count
        else:
            self.out_of_order += 1
            if self.lost > 0:
                self.lost -= 1
        transit = time.time() - (sec + usec / 1e6)
        if self._transit is not None:
            self.jitter += (abs(transit - self._transit) - self.jitter) / 16
        self._transit = transit

    def _recv_loop(self, stop: threading.Event, block: int) -> None:
        try:
            super()._recv_loop(stop, block)
        except ConnectionRefusedError:
            return
