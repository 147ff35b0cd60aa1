"""One test's streams running together, the same on the client and the server:
start, -O omit, sampling per interval, stop."""

from __future__ import annotations

import threading
import time

from pysock.probes.perf.params import TestSpec
from pysock.probes.perf.results import CpuClock, interval_record
from pysock.probes.perf.streams import Budget, Stream

JOIN_WAIT = 2.0


class Run:
    def __init__(self, spec: TestSpec, streams: list[Stream], *, zerocopy: bool = False,
                 limit_senders: bool = True):
        self.spec = spec
        self.streams = streams
        self.stop = threading.Event()
        self.zerocopy = zerocopy
        # only the client counts -n/--blocks; a server sends until TEST_END (as iperf3)
        self.budget = Budget(spec.bytes, spec.blocks) if limit_senders else Budget()
        self.began = 0.0
        self.omitting = spec.omit > 0
        self.cpu = CpuClock()
        self._last: dict[int, tuple[float, int, int]] = {}

    def start(self) -> None:
        self.began = time.monotonic()
        self.cpu = CpuClock()
        for stream in self.streams:
            stream.start(self.stop, self.spec.block_size, self.budget, self.zerocopy)
        self._last = {s.id: (self.began, 0, 0) for s in self.streams}

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def end_omit(self) -> list[dict]:
        """At -O seconds: the omitted intervals end and the counting starts."""
        records = self.sample()
        for stream in self.streams:
            stream.omit_done()
        now = time.monotonic()
        self._last = {s.id: (now, s.bytes, s.retr_base) for s in self.streams}
        self.omitting = False
        self.began_counting = now
        return records

    def sample(self) -> list[dict]:
        """One interval record per stream since the last sample."""
        now = time.monotonic()
        origin = self.counting_origin()
        records = []
        for stream in self.streams:
            then, nbytes, retr = self._last[stream.id]
            total_retr = stream.tcp_info().get("total_retrans") if stream.sender else None
            delta_retr = None if total_retr is None else total_retr - retr
            records.append(interval_record(stream, then - origin, now - origin,
                                           stream.bytes - nbytes, delta_retr, self.omitting))
            self._last[stream.id] = (now, stream.bytes,
                                     total_retr if total_retr is not None else retr)
        return records

    def counting_origin(self) -> float:
        return getattr(self, "began_counting", self.began) if not self.omitting else self.began

    def all_ended(self) -> bool:
        return all(s.thread is not None and not s.thread.is_alive() for s in self.streams)

    def senders_done(self) -> bool:
        senders = [s for s in self.streams if s.sender]
        return bool(senders) and all(not s.thread.is_alive() for s in senders)

    def received(self) -> int:
        return sum(s.counted for s in self.streams if not s.sender)

    def moved(self) -> int:
        return sum(s.bytes for s in self.streams)

    def finish(self) -> tuple[float, float, float]:
        """Stop every stream, wait for their threads (bounded), return the CPU use."""
        self.stop.set()
        stopped = time.monotonic()
        deadline = stopped + JOIN_WAIT
        for stream in self.streams:
            stream.join(max(deadline - time.monotonic(), 0.01))
            # a thread notices the stop within POLL; the test ended when it was told
            stream.ended = min(stream.ended or stopped, stopped)
        return self.cpu.percent()

    def close(self) -> None:
        """Stop the streams and let their threads end before the sockets close: a
        thread still reading (a dropped test's) must not meet a closed socket."""
        self.stop.set()
        for stream in self.streams:
            stream.shutdown()
        deadline = time.monotonic() + JOIN_WAIT
        for stream in self.streams:
            if stream.thread is not None:
                stream.thread.join(max(deadline - time.monotonic(), 0.01))
        for stream in self.streams:
            stream.close()
