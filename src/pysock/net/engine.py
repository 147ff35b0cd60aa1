"""The one event loop every byte stream runs in (OpenBSD nc's readwrite(), socat's
xioengine), and Feed, the one in-memory queue.

An Engine runs Links (relay.Link: two pumps and the EOF policy between two ends)
and plain fd watches (a listener, a TLS handshake). A pump that cannot move raises
pump.Blocked naming what it waits for: an fd and a poll event, or a Feed (bytes in
memory, or room in it). The Engine parks the pump there and steps it again once
that is ready. One client (connect, listen) is an Engine with one Link; a server
with -k (hub.Hub) adds a Link per client to the same Engine; forward adds a Link
per accepted client and its outbound connection.

The poll set is kept from one wait to the next (register/modify are user-space
calls for select.poll), so a one-client relay pays one poll() per wake-up, as the
loop it replaces did."""

from __future__ import annotations

import select
import time
from collections import deque
from collections.abc import Callable

TROUBLE = select.POLLERR | select.POLLHUP | select.POLLNVAL


class Feed:
    """Bytes waiting in memory for one pump: a -k client's outgoing queue (stdin,
    other clients, its own echo) or stdout shared by many clients. Past `limit`
    queued bytes a writer is Blocked on the Feed until the reader takes some
    (backpressure); without a limit, the Link's slow-client rule decides."""

    def __init__(self, limit: int | None = None):
        self.chunks: deque = deque()
        self.size = 0
        self.ended = False
        self.limit = limit
        self.last_taken = time.monotonic()
        self.engine: Engine | None = None
        self.reader = None  # a parked Side waiting for data
        self.writers: list = []  # parked Sides waiting for room

    def push(self, data) -> None:
        if self.ended or not data:
            return
        self.chunks.append(data)
        self.size += len(data)
        self._wake_reader()

    def end(self) -> None:
        """No more data: the reader sees end of input once the queue is empty."""
        if not self.ended:
            self.ended = True
            self._wake_reader()

    def full(self) -> bool:
        return self.limit is not None and self.size >= self.limit

    # as a pump's source (recv) and destination (send)

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            if self.ended:
                return b""
            raise BlockingIOError
        data = self.chunks.popleft()
        if len(data) > size:
            self.chunks.appendleft(data[size:])
            data = data[:size]
        self.size -= len(data)
        self.last_taken = time.monotonic()
        if self.writers and not self.full():
            writers, self.writers = self.writers, []
            for side in writers:
                self.engine.wake(side)
        return data

    def send(self, data) -> int:
        if self.full():
            raise BlockingIOError
        self.push(bytes(data))
        return len(data)

    def park(self, event: int, side) -> None:
        if event & select.POLLIN:
            self.reader = side
            if self.chunks or self.ended:
                self._wake_reader()
        elif self.full():
            self.writers.append(side)
        else:
            self.engine.wake(side)

    def _wake_reader(self) -> None:
        side, self.reader = self.reader, None
        if side is not None and self.engine is not None:
            self.engine.wake(side)


class Engine:
    def __init__(self):
        self.poller = select.poll()
        self.masks: dict[int, int] = {}  # what the poller holds
        self.waiters: dict[int, list] = {}  # fd -> parked Sides
        self.watches: dict[int, tuple[int, Callable[[int], None]]] = {}
        self.dirty: set[int] = set()
        self.runnable: dict = {}  # Links with a side free to step (an ordered set)
        self.links: set = set()
        self.timers: list = []  # besides the Links: objects with .deadline and .on_timer(now)

    # -- what runs ---------------------------------------------------------

    def add(self, link) -> None:
        link.engine = self
        self.links.add(link)
        for feed in link.feeds():
            feed.engine = self
        self.runnable[link] = None

    def remove(self, link) -> None:
        self.links.discard(link)
        self.runnable.pop(link, None)
        for side in link.sides + link.flushers:
            self._unpark(side)

    def watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """Call callback(revents) whenever fd is ready for events (a listener)."""
        self.watches[fd] = (events, callback)
        self.dirty.add(fd)

    def unwatch(self, fd: int) -> None:
        if self.watches.pop(fd, None) is not None:
            self.dirty.add(fd)
            self._sync(fd)

    def forget(self, fd) -> None:
        """fd is about to be closed: drop every trace of it from the poll set."""
        if not isinstance(fd, int) or fd < 0:
            return
        self.watches.pop(fd, None)
        for side in self.waiters.pop(fd, []):
            side.waiting = None
        self.dirty.discard(fd)
        if self.masks.pop(fd, None) is not None:
            self.poller.unregister(fd)

    # -- parking -----------------------------------------------------------

    def park(self, side) -> None:
        blocked = side.waiting
        if isinstance(blocked.fd, int):
            self.waiters.setdefault(blocked.fd, []).append(side)
            self.dirty.add(blocked.fd)
        else:
            blocked.fd.park(blocked.event, side)

    def wake(self, side) -> None:
        """What side waited for is ready: step its pump again."""
        if side.waiting is None:
            return
        side.waiting = None
        side.pump.wake()
        if side.link in self.links:
            self.runnable[side.link] = None

    def _unpark(self, side) -> None:
        blocked, side.waiting = side.waiting, None
        if blocked is None:
            return
        if isinstance(blocked.fd, int):
            parked = self.waiters.get(blocked.fd, [])
            if side in parked:
                parked.remove(side)
                self.dirty.add(blocked.fd)
        else:
            if blocked.fd.reader is side:
                blocked.fd.reader = None
            if side in blocked.fd.writers:
                blocked.fd.writers.remove(side)

    # -- the loop ----------------------------------------------------------

    def run(self, until: Callable[[], bool]) -> None:
        """Step and wait until until() says stop. A Link's error ends its Link (its
        owner decides what that means); anything else propagates."""
        while not until():
            for link in list(self.runnable):
                if link in self.links:
                    link.step()
                    if not link.free():
                        self.runnable.pop(link, None)
                else:
                    self.runnable.pop(link, None)
            if until():
                return
            self._wait(0 if self.runnable else self._timeout())
            now = time.monotonic()
            for timed in [*self.links, *self.timers]:
                deadline = timed.deadline
                if deadline is not None and now >= deadline:
                    timed.on_timer(now)

    def _timeout(self) -> float | None:
        marks = [d for d in (t.deadline for t in [*self.links, *self.timers]) if d is not None]
        if not marks:
            return None
        return max(0.0, min(marks) - time.monotonic())

    def _wait(self, timeout: float | None) -> None:
        for fd in list(self.dirty):
            self._sync(fd)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        for fd, revents in self.poller.poll(ms):
            watch = self.watches.get(fd)
            parked = self.waiters.get(fd)
            if parked:
                still = []
                for side in parked:
                    if side.waiting is None:
                        continue
                    if revents & (side.waiting.event | TROUBLE):
                        self.wake(side)
                    else:
                        still.append(side)
                self.waiters[fd] = still
                self.dirty.add(fd)
            if watch is not None and revents & (watch[0] | TROUBLE):
                watch[1](revents)
            if not parked and watch is None:
                self.dirty.add(fd)

    def _sync(self, fd: int) -> None:
        self.dirty.discard(fd)
        mask = 0
        for side in self.waiters.get(fd, ()):
            mask |= side.waiting.event
        if not self.waiters.get(fd):
            self.waiters.pop(fd, None)
        if fd in self.watches:
            mask |= self.watches[fd][0]
        held = self.masks.get(fd)
        if mask == (held or 0):
            return
        if mask == 0:
            del self.masks[fd]
            self.poller.unregister(fd)
        elif held is None:
            self.masks[fd] = mask
            self.poller.register(fd, mask)
        else:
            self.masks[fd] = mask
            self.poller.modify(fd, mask)
