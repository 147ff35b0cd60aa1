"""The data streams: each runs in its own thread, moving bytes as fast as the
socket takes them (blocking calls release the GIL), and counts them. The control
side samples the counters; a shared Event stops every stream of a test."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

from pysock.status import start_beside_main

POLL = 0.2  # seconds a blocked send/recv waits before looking at the stop flag
FINISH_WAIT = 1.0
DRAIN_QUIET = 0.05
DRAIN_LIMIT = 1.0
RECV_BUFFER = 512 * 1024  # a read takes up to this much; see _wake_for_full_reads


class Budget:
    """-n / --blocks: a test-wide allowance the senders draw from."""

    def __init__(self, total_bytes: int = 0, total_blocks: int = 0):
        self.bytes_left = total_bytes or None
        self.blocks_left = total_blocks or None
        self._lock = threading.Lock()

    @property
    def limited(self) -> bool:
        return self.bytes_left is not None or self.blocks_left is not None

    def take(self, size: int) -> int:
        """How many bytes the next block may carry (0: the budget is spent)."""
        if not self.limited:
            return size
        with self._lock:
            if self.blocks_left is not None:
                if self.blocks_left <= 0:
                    return 0
                self.blocks_left -= 1
            if self.bytes_left is not None:
                size = min(size, self.bytes_left)
                self.bytes_left -= size
            return size


class Pacer:
    """-b: hold a sender to a rate (iperf3 paces per stream)."""

    def __init__(self, rate: int):
        self.rate = rate
        self.began = time.monotonic()

    def wait(self, sent_bytes: int) -> bool:
        """True when the sender is ahead and has slept a little (look again)."""
        if not self.rate:
            return False
        ahead = sent_bytes * 8 / self.rate - (time.monotonic() - self.began)
        if ahead <= 0:
            return False
        time.sleep(min(ahead, 0.02))
        return True


class Stream:
    """One data connection of a test: its id (iperf3's numbering), direction and
    counters. bytes only grows; the sampler reads it without a lock."""

    def __init__(self, sock: socket.socket, sid: int, sender: bool, rate: int = 0):
        self.sock = sock
        self.id = sid
        self.sender = sender
        self.rate = rate  # bits/s, 0: as fast as the socket takes it
        self.bytes = 0
        self.baseline = 0  # bytes moved during -O, left out of the results
        self.started = 0.0
        self.ended = 0.0
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        self.retr_base = 0
        self.final_retransmits = 0
        self.is_tcp = sock.family in (socket.AF_INET, socket.AF_INET6) \
            and sock.type == socket.SOCK_STREAM
        _set_poll_timeouts(sock)

    @property
    def counted(self) -> int:
        return self.bytes - self.baseline

    def start(self, stop: threading.Event, block: int, budget: Budget, zerocopy: bool) -> None:
        self.started = time.monotonic()
        target = self._send_loop if self.sender else self._recv_loop
        args = (stop, block, budget, zerocopy) if self.sender else (stop, block)
        self.thread = threading.Thread(target=self._guarded, args=(target, *args), daemon=True,
                                       name=f"perf-stream-{self.id}")
        start_beside_main(self.thread.start)

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
        self.finish()

    def omit_done(self) -> None:
        self.baseline = self.bytes
        self.started = time.monotonic()
        self.retr_base = self.tcp_info().get("total_retrans") or 0

    @property
    def seconds(self) -> float:
        return max((self.ended or time.monotonic()) - self.started, 0.0)

    def finish(self) -> None:
        """After the thread ended: fix the end time and the retransmit count."""
        if not self.ended:
            self.ended = time.monotonic()
        if self.sender:
            self.final_retransmits = (self.tcp_info().get("total_retrans") or 0) - self.retr_base

    def tcp_info(self) -> dict:
        if not self.is_tcp:
            return {}
        from pysock.inventory.tcpinfo import SIZE, raw_fields
        try:
            return raw_fields(self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, SIZE))
        except OSError:
            return {}

    def shutdown(self) -> None:
        """Wake the stream's thread: a blocked read ends, a blocked send fails."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _guarded(self, loop, *args) -> None:
        try:
            loop(*args)
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        finally:
            self.ended = time.monotonic()

    def _send_loop(self, stop: threading.Event, block: int, budget: Budget,
                   zerocopy: bool) -> None:
        if zerocopy and self.is_tcp:
            return self._sendfile_loop(stop, block, budget)
        view = memoryview(bytes(_pattern(block)))
        if not self.rate and not budget.limited:
            return self._send_flat_out(stop, view)
        for size in self._paced_blocks(stop, block, budget):
            self.bytes += self._rest_of_block(stop, view[:size], 0)

    def _paced_blocks(self, stop: threading.Event, block: int, budget: Budget) -> Iterator[int]:
        """The size of each next block: held to -b's rate and drawn from -n/--blocks'
        budget; the end when stopped or the budget is spent."""
        pace = Pacer(self.rate)
        while not stop.is_set():
            if pace.wait(self.bytes):
                continue
            size = budget.take(block)
            if not size:
                return
            yield size

    def _send_flat_out(self, stop: threading.Event, view: memoryview) -> None:
        """No rate and no -n/--blocks (the usual test): one send per block and no
        other work, a block cut short by SO_SNDTIMEO is finished in _rest_of_block."""
        send = self.sock.send
        stopped = stop.is_set
        block = len(view)
        while not stopped():
            try:
                sent = send(view)
            except BlockingIOError:
                continue
            if sent != block:
                sent = self._rest_of_block(stop, view, sent)
            self.bytes += sent

    def _rest_of_block(self, stop: threading.Event, view: memoryview, sent: int) -> int:
        """Send view from sent on; what went out in all (less only if given up)."""
        while sent < len(view):
            try:
                sent += self.sock.send(view[sent:])
            except BlockingIOError:
                if _given_up(stop, self.sock):
                    break
        return sent

    def _sendfile_loop(self, stop: threading.Event, block: int, budget: Budget) -> None:
        """-Z: the kernel copies from a page-cache file into the socket (sendfile)."""
        fd = os.memfd_create("pysock-perf")
        try:
            os.write(fd, bytes(_pattern(block)))
            out = self.sock.fileno()
            for size in self._paced_blocks(stop, block, budget):
                sent = 0
                while sent < size:
                    try:
                        sent += os.sendfile(out, fd, sent, size - sent)
                    except BlockingIOError:
                        if _given_up(stop, self.sock):
                            break
                self.bytes += sent
        finally:
            os.close(fd)

    def _recv_loop(self, stop: threading.Event, block: int) -> None:
        # a byte stream counts only: the hook is looked up once, not called per read
        hook = None if type(self).arrived is Stream.arrived else self.arrived
        buffer = bytearray(max(block, RECV_BUFFER))
        self._wake_for_full_reads(len(buffer))
        recv_into, stopped = self.sock.recv_into, stop.is_set
        while not stopped():
            try:
                n = recv_into(buffer)
            except BlockingIOError:
                continue
            if not n:
                return
            self.bytes += n
            if hook:
                hook(buffer, n)
        self._wake_for_full_reads(1)  # the drain's select must see any byte
        self._drain(buffer)

    def _wake_for_full_reads(self, size: int) -> None:
        """An unpaced TCP reader sleeps until size bytes wait (SO_RCVLOWAT), not until
        the next segments do. On loopback the sender's CPU runs the receive path and
        so pays for each wake-up of the reader: one a full buffer, against one about
        every 68 KiB, measured (pinned) 1.26x the throughput and 0.55-0.65x the
        reader's CPU per GB. A read still returns what came within POLL (SO_RCVTIMEO), so a paced
        stream, whose intervals must not lag, keeps the kernel's default."""
        if self.is_tcp and not self.rate:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, size)
            except OSError:
                pass

    def arrived(self, buffer: bytearray, size: int) -> None:
        """A hook for streams that read more than a count (UDP's sequence numbers)."""

    def _drain(self, buffer: bytearray) -> None:
        """After the stop: what the sender sent before TEST_END is still arriving;
        count it until the stream has been quiet for DRAIN_QUIET (iperf3's single
        loop reads it before it sees TEST_END on the control connection)."""
        import select
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock], [], [], DRAIN_QUIET)
            if not ready:
                return
            try:
                n = self.sock.recv_into(buffer, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            if not n:
                return
            self.bytes += n
            self.arrived(buffer, n)


def _given_up(stop: threading.Event, sock: socket.socket) -> bool:
    """A block once begun is finished (iperf3 reads whole blocks and would wait
    for the rest). A peer that has not taken it FINISH_WAIT after the stop gets
    the connection shut instead, so it reads an end, never waits forever."""
    if not stop.is_set():
        return False
    if not hasattr(stop, "cut_at"):
        stop.cut_at = time.monotonic() + FINISH_WAIT
    if time.monotonic() <= stop.cut_at:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return True


def _set_poll_timeouts(sock: socket.socket) -> None:
    """Kernel-side timeouts keep the socket blocking (no poll per call) yet let a
    loop see the stop flag every POLL seconds."""
    sock.settimeout(None)
    value = struct.pack("ll", 0, int(POLL * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)


def _pattern(size: int) -> bytearray:
    """iperf3 fills its buffer with a repeating ASCII pattern."""
    unit = b"0123456789"
    return bytearray((unit * (size // len(unit) + 1))[:size])
