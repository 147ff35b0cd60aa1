"""Per-host ping statistics with iputils' arithmetic: integer microseconds, the
same mdev formula and rounding, duplicates counted in the RTT sums but not in
'received', the 'pipe' figure and the ewma of flood mode."""

from __future__ import annotations

import math
import struct
from collections import deque

RECENT = 40  # RTTs kept for the sparkline


class Stats:
    """A plain class, not a dataclass: see icmp.Echo."""

    def __init__(self, transmitted: int = 0, received: int = 0, duplicates: int = 0,
                 corrupted: int = 0, errors: int = 0):
        self.transmitted, self.received = transmitted, received
        self.duplicates, self.corrupted, self.errors = duplicates, corrupted, errors
        self.tmin = 0  # µs; meaningful once anything was timed
        self.tmax = self.tsum = self.tsum2 = self.timed = 0
        self.ewma8 = 0  # iputils' rts->rtt: 8 times the moving average
        self.pipesize = 1
        self.acked = 0
        self.last_us: int | None = None
        self.recent: deque = deque(maxlen=RECENT)

    def sent(self) -> int:
        self.transmitted += 1
        return self.transmitted

    def acknowledge(self, seq: int) -> None:
        """iputils' acknowledge(): tracks how many probes were in flight at once."""
        diff = (self.transmitted - seq) & 0xFFFF
        if diff <= 0x7FFF:
            self.pipesize = max(self.pipesize, diff + 1)
            ahead = (seq - self.acked) & 0xFFFF
            if 0 < ahead < 0x8000 or ((self.transmitted - self.acked) & 0xFFFF) > 0x7FFF:
                self.acked = seq

    def reply(self, seq: int, triptime_us: int | None, *, duplicate: bool, corrupt: bool) -> None:
        if not corrupt:
            self.acknowledge(seq)
            if triptime_us is not None:
                self._time(triptime_us)
        if corrupt:
            self.corrupted += 1
        elif duplicate:
            self.duplicates += 1
        else:
            self.received += 1

    def _time(self, us: int) -> None:
        if not self.timed or us < self.tmin:
            self.tmin = us
        self.tmax = max(self.tmax, us)
        self.tsum += us
        self.tsum2 += us * us
        self.timed += 1
        self.ewma8 = us * 8 if not self.ewma8 else self.ewma8 + us - self.ewma8 // 8
        self.last_us = us
        self.recent.append(us)

    def error(self, seq: int) -> None:
        self.errors += 1
        self.acknowledge(seq)

    # ---- the closing block ---------------------------------------------------

    @property
    def loss_pct(self) -> float:
        """As iputils computes it: through a C float, printed with %g."""
        if not self.transmitted:
            return 0.0
        exact = (self.transmitted - self.received) * 100.0 / self.transmitted
        return struct.unpack("f", struct.pack("f", exact))[0]

    def rtt_us(self) -> tuple[int, int, int, int] | None:
        """(min, avg, max, mdev) in µs exactly as iputils computes them."""
        if not self.received or not self.timed:
            return None
        total = self.received + self.duplicates
        avg = self.tsum // total
        if self.tsum < 2**31 - 1:
            var = (self.tsum2 - (self.tsum * self.tsum) // total) // total
        else:
            var = self.tsum2 // total - avg * avg
        return self.tmin, avg, self.tmax, math.isqrt(var) if var > 0 else 0

    def summary(self) -> dict:
        rtt = self.rtt_us()
        ms = (lambda us: us / 1000) if rtt else (lambda us: None)
        low, avg, high, mdev = rtt or (0, 0, 0, 0)
        loss = (self.transmitted - self.received) * 100 / self.transmitted if self.transmitted else 0.0
        return {"transmitted": self.transmitted, "received": self.received,
                "duplicates": self.duplicates, "corrupted": self.corrupted, "errors": self.errors,
                "loss_pct": round(loss, 3), "min_ms": ms(low), "avg_ms": ms(avg),
                "max_ms": ms(high), "mdev_ms": ms(mdev)}
