"""--measure: datagrams stamped with a sequence number and a send time, sent at a
steady rate; the receiver counts received, lost, duplicated and reordered ones and
the interarrival jitter of RFC 3550 (section 6.4.1 and A.8).

Wire format (big-endian): magic 'PSKM', kind (1 data, 2 end), run id (u32),
sequence (u64), send time (u64 ns, CLOCK_REALTIME), zero padding to --size. The
end datagram carries the number sent in its sequence field and is sent a few
times, so the receiver can count losses at the tail, which a highest-sequence
count cannot see."""

from __future__ import annotations

import errno
import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pysock.errors import NetworkError
from pysock.net.datagram import DatagramChannel

HEADER = struct.Struct("!4sBIQQ")
MAGIC = b"PSKM"
DATA, END = 1, 2
MIN_SIZE = HEADER.size
END_COPIES = 5
END_SPACING = 0.02
SETTLE = 0.2  # after an end datagram, wait this long for late (reordered) ones


def stamp(kind: int, run: int, seq: int, size: int) -> bytes:
    head = HEADER.pack(MAGIC, kind, run, seq, time.time_ns())
    return head + bytes(max(0, size - len(head)))


def unstamp(data: bytes) -> tuple[int, int, int, int] | None:
    """(kind, run, seq, sent_ns), or None for a datagram that is not ours."""
    if len(data) < HEADER.size:
        return None
    magic, kind, run, seq, sent_ns = HEADER.unpack_from(data)
    if magic != MAGIC or kind not in (DATA, END):
        return None
    return kind, run, seq, sent_ns


# ---- sending -----------------------------------------------------------------------


@dataclass
class SendReport:
    sent: int = 0
    seconds: float = 0.0
    late: int = 0  # datagrams sent more than one interval behind schedule

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def send(channel: DatagramChannel, *, rate: float, count: int | None, duration: float | None,
         size: int, on_progress: Callable[[SendReport], None] = lambda r: None) -> SendReport:
    """Send stamped datagrams at rate per second until count or duration, then the end
    marker. Paced on an absolute schedule, so a slow step does not lower the rate."""
    sock = channel.sock
    sock.setblocking(True)
    run = int.from_bytes(os.urandom(4), "big")
    report = SendReport()
    interval = 1.0 / rate
    start = time.monotonic()
    last_progress = start
    try:
        while (count is None or report.sent < count) and (
                duration is None or time.monotonic() - start < duration):
            due = start + report.sent * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > interval:
                report.late += 1
            sock.send(stamp(DATA, run, report.sent, size))
            report.sent += 1
            if now - last_progress >= 0.25:
                report.seconds = now - start
                on_progress(report)
                last_progress = now
        report.seconds = time.monotonic() - start
        for _ in range(END_COPIES):
            sock.send(stamp(END, run, report.sent, MIN_SIZE))
            time.sleep(END_SPACING)
    except OSError as exc:
        report.seconds = time.monotonic() - start
        raise _send_error(channel, exc, size) from None
    return report


def _send_error(channel: DatagramChannel, exc: OSError, size: int):
    import errno
    if exc.errno == errno.ECONNREFUSED:
        return NetworkError(channel.refused_text())
    if exc.errno == errno.EMSGSIZE:
        return channel.too_big(size)
    from pysock.net.endpoints import os_error
    return os_error(exc, "send to", channel.peer, proto="udp")


# ---- receiving ---------------------------------------------------------------------


@dataclass
class Stats:
    """What a receiver saw of one sender's run."""

    received: int = 0  # distinct sequence numbers
    duplicated: int = 0
    reordered: int = 0  # arrived after a higher sequence number
    foreign: int = 0  # datagrams that were not measurement datagrams
    expected: int | None = None  # from the end datagram: how many were sent
    highest: int = -1
    jitter_ns: float = 0.0
    first_at: float | None = None
    last_at: float | None = None
    sender: str = ""
    run: int | None = None
    min_transit_ns: int | None = None
    _seen: set = field(default_factory=set, repr=False)
    _last_transit: int | None = field(default=None, repr=False)

    def add(self, data: bytes, arrival_ns: int, sender: str = "") -> int | None:
        """Account for one datagram; returns its kind (DATA, END) or None if foreign."""
        parsed = unstamp(data)
        if parsed is None:
            self.foreign += 1
            return None
        kind, run, seq, sent_ns = parsed
        if self.run is None:
            self.run, self.sender = run, sender
        elif run != self.run:
            self.foreign += 1  # another sender's run
            return None
        if kind == END:
            self.expected = seq
            return END
        self._data(seq, sent_ns, arrival_ns)
        return DATA

    def _data(self, seq: int, sent_ns: int, arrival_ns: int) -> None:
        now = time.monotonic()
        self.first_at = self.first_at if self.first_at is not None else now
        self.last_at = now
        if seq in self._seen:
            self.duplicated += 1
            return
        self._seen.add(seq)
        self.received += 1
        if seq < self.highest:
            self.reordered += 1
        self.highest = max(self.highest, seq)
        transit = arrival_ns - sent_ns  # clock offset cancels in the differences below
        if self.min_transit_ns is None or transit < self.min_transit_ns:
            self.min_transit_ns = transit
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self.jitter_ns += (d - self.jitter_ns) / 16  # RFC 3550 A.8
        self._last_transit = transit

    @property
    def sent(self) -> int:
        """Sent by the sender: its own count once the end datagram came, else the
        highest sequence number seen + 1 (which cannot see losses at the tail)."""
        return self.expected if self.expected is not None else self.highest + 1

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.received)

    def record(self, final: bool = False) -> dict:
        seconds = (self.last_at - self.first_at) if self.first_at and self.last_at else 0.0
        sent = self.sent
        return {
            "type": "summary" if final else "progress",
            "sender": self.sender or None,
            "sent": sent,
            "received": self.received,
            "lost": self.lost,
            "loss_pct": round(100.0 * self.lost / sent, 3) if sent > 0 else 0.0,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "jitter_ms": round(self.jitter_ns / 1e6, 4),
            "seconds": round(seconds, 3),
            "rate_pps": round(self.received / seconds, 1) if seconds > 0 else None,
            "complete": self.expected is not None,
        }


def receive(channel: DatagramChannel, *, idle_timeout: float, first_timeout: float | None = None,
            on_update: Callable[[Stats], None] = lambda s: None,
            update_every: float = 0.25) -> Stats:
    """Count one run: until its end datagram (plus a short settle for stragglers), or
    idle_timeout without any datagram once the run has started."""
    sock = channel.sock
    sock.setblocking(False)
    stats = Stats()
    ended_at: float | None = None
    last_update = 0.0
    started = time.monotonic()
    while True:
        now = time.monotonic()
        if ended_at is not None and now - ended_at >= SETTLE:
            break
        wait = _wait_time(stats, now, started, ended_at, idle_timeout, first_timeout)
        if wait is not None and wait <= 0:
            if stats.first_at is None and stats.expected is None:
                raise NetworkError(f"no measurement datagram arrived within {first_timeout:g} s")
            break
        ready, _, _ = select.select([sock], [], [], min(wait, update_every) if wait else update_every)
        for datagram in _drain(channel) if ready else ():
            kind = stats.add(datagram.data, int(datagram.at * 1e9), datagram.sender)
            if kind == END and ended_at is None:
                ended_at = time.monotonic()
        if time.monotonic() - last_update >= update_every:
            on_update(stats)
            last_update = time.monotonic()
    return stats


def _wait_time(stats: Stats, now: float, started: float, ended_at, idle_timeout: float,
               first_timeout: float | None) -> float | None:
    if ended_at is not None:
        return ended_at + SETTLE - now
    if stats.last_at is not None:
        return stats.last_at + idle_timeout - now
    if first_timeout is not None:
        return started + first_timeout - now
    return None


def _drain(channel: DatagramChannel, limit: int = 1000):
    for _ in range(limit):
        try:
            datagram = channel.recv_datagram()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:  # a sender's earlier ICMP; not ours to fail on
                continue
            raise
        if datagram is None:
            return
        yield datagram
