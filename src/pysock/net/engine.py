"""The one event loop every byte stream runs in (OpenBSD nc's readwrite(), socat's
xioengine), and Feed, the one in-memory queue.

An Engine runs Links (relay.Link: two pumps and the EOF policy between two ends)
and plain fd watches (a listener, a TLS handshake). A pump that cannot move raises
pump.Blocked naming what it waits for: an fd and a poll event, or a Feed (bytes in
memory, or room in it). The Engine parks the pump there and steps it again once
that is ready. One client (connect, listen) is an Engine with one Link; a server
with -k (hub.Hub) adds a Link per client to the same Engine; forward adds a Link
per accepted client and its outbound connection.

The poll set is an epoll set kept from one wait to the next: a wait costs
O(ready fds), not O(clients) as poll() did (a hub of 2,000 mostly idle clients
spent 1.5 ms of CPU per message in poll()). A registration is left armed while
its side re-parks on the same event, so a one-client relay makes no epoll_ctl
calls in its steady state: one epoll_wait per wake-up."""

from __future__ import annotations

import select
import time
from collections import deque
from collections.abc import Callable

from pysock.net import solo

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
        self.poller = select.epoll()
        self.unpollable: set[int] = set()  # regular files, /dev/null: always ready
        self.masks: dict[int, int] = {}  # what the poller holds
        self.waiters: dict[int, list] = {}  # fd -> parked Sides
        self.watches: dict[int, tuple[int, Callable[[int], None]]] = {}
        self.dirty: set[int] = set()
        self.runnable: dict = {}  # Links with a side free to step (an ordered set)
        self.links: set = set()
        self.timers: list = []  # besides the Links: objects with .deadline and .on_timer(now)
        # Links' deadlines: a heap of (deadline, n, link), so a pass costs O(log n) for
        # timers, not a scan of every Link. scheduled[link] is its live entry; others
        # are stale and skipped when they come up.
        self.heap: list = []
        self.scheduled: dict = {}
        self.pushed = 0

    # -- what runs ---------------------------------------------------------

    def add(self, link) -> None:
        link.engine = self
        self.links.add(link)
        for feed in link.feeds():
            feed.engine = self
        self.runnable[link] = None
        for side in link.sides:  # a Link that ran elsewhere first (solo) may arrive parked
            if side.waiting is not None:
                self.park(side)
        self.schedule(link)

    def remove(self, link) -> None:
        self.links.discard(link)
        self.runnable.pop(link, None)
        self.scheduled.pop(link, None)
        for side in link.sides + link.flushers:
            self._unpark(side)

    def schedule(self, link) -> None:
        """link.deadline may have come closer (a Link says so; a later one is found
        when its old entry comes up)."""
        deadline = link.deadline
        if deadline is None or link not in self.links:
            return
        held = self.scheduled.get(link)
        if held is not None and held <= deadline:
            return
        import heapq  # only a Link with a timer (-i, -q, a slow-client rule) needs it
        self.scheduled[link] = deadline
        self.pushed += 1
        heapq.heappush(self.heap, (deadline, self.pushed, link))

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
            self._disarm(fd)

    # -- parking -----------------------------------------------------------

    def park(self, side) -> None:
        blocked = side.waiting
        fd = blocked.fd
        if fd.__class__ is not int:
            fd.park(blocked.event, side)
            return
        parked = self.waiters.get(fd)
        if parked is None:
            self.waiters[fd] = [side]
        else:
            parked.append(side)
        if self.masks.get(fd, 0) & blocked.event != blocked.event:
            self.dirty.add(fd)

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
        runnable, links = self.runnable, self.links
        while not until():
            if runnable:
                for link in list(runnable):
                    if link in links:
                        link.step()
                        if not link.free():
                            runnable.pop(link, None)
                    else:
                        runnable.pop(link, None)
                if until():
                    return
            if not runnable and len(links) == 1 and self._solo():
                continue
            self._wait(0 if runnable else self._timeout())
            if self.heap or self.timers:
                self._fire(time.monotonic())

    def _solo(self) -> bool:
        """The one Link left, parked on its sources with nothing else to watch or time
        (connect; listen once its client came): solo runs it (see solo.py) until
        something else happens, then it is back here. Once per Link: a bulk transfer
        that keeps filling its destination stays here. True if solo ran."""
        link = next(iter(self.links))
        if link.solo_tried or self.watches or self.heap or self.unpollable:
            return False
        link.solo_tried = True
        if any(t.deadline is not None for t in self.timers) or not solo.fits(link) \
                or not solo.parked(link.sides):
            return False
        waiting = [(side, side.waiting) for side in link.sides]
        self.remove(link)
        for side, blocked in waiting:
            side.waiting = blocked
        solo.Solo(link).run()
        if not link.closed:
            self.add(link)
        return True

    def _fire(self, now: float) -> None:
        heap, due = self.heap, []
        if heap and heap[0][0] <= now:
            import heapq
            while heap and heap[0][0] <= now:
                deadline, _, link = heapq.heappop(heap)
                if self.scheduled.get(link) == deadline:
                    del self.scheduled[link]
                    due.append(link)
        for link in due:
            deadline = link.deadline
            if deadline is not None and now >= deadline:
                link.on_timer(now)
            self.schedule(link)
        for timed in self.timers:
            deadline = timed.deadline
            if deadline is not None and now >= deadline:
                timed.on_timer(now)

    def _timeout(self) -> float | None:
        if not self.timers and not self.heap:
            return None
        marks = [d for d in (t.deadline for t in self.timers) if d is not None]
        if self.heap:
            marks.append(self.heap[0][0])
        if not marks:
            return None
        return max(0.0, min(marks) - time.monotonic())

    def _wait(self, timeout: float | None) -> None:
        if self.dirty:
            for fd in list(self.dirty):
                self._sync(fd)
        ready = [(fd, self.masks[fd]) for fd in self.unpollable]
        if ready:
            timeout = 0
        ready += self.poller.poll(-1 if timeout is None else timeout)
        for fd, revents in ready:
            wanted = self._ready(fd, revents)
            # A registration is left as it is when its Sides wake (they mostly park on
            # the same fd and event again); one that reports what nobody waits for
            # is brought up to date before the next wait.
            if revents & ~wanted:
                self.dirty.add(fd)

    def _ready(self, fd: int, revents: int) -> int:
        """Wake what waits on fd; the events its waiters and watch wanted."""
        wanted = 0
        parked = self.waiters.get(fd)
        if parked:
            still = []
            for side in parked:
                if side.waiting is None:
                    continue
                event = side.waiting.event
                wanted |= event
                if revents & (event | TROUBLE):
                    self.wake(side)
                else:
                    still.append(side)
            if still:
                self.waiters[fd] = still
            else:
                del self.waiters[fd]
        watch = self.watches.get(fd)
        if watch is not None:
            wanted |= watch[0]
            if revents & (watch[0] | TROUBLE):
                watch[1](revents)
        return wanted | (TROUBLE if wanted else 0)

    def _sync(self, fd: int) -> None:
        self.dirty.discard(fd)
        mask = 0
        parked = self.waiters.get(fd)
        if parked:
            for side in parked:
                mask |= side.waiting.event
        elif parked is not None:
            del self.waiters[fd]
        watch = self.watches.get(fd)
        if watch is not None:
            mask |= watch[0]
        held = self.masks.get(fd)
        if mask == (held or 0):
            return
        if mask == 0:
            del self.masks[fd]
            self._disarm(fd)
            return
        self.masks[fd] = mask
        if fd in self.unpollable:
            return
        try:
            if held is None:
                self.poller.register(fd, mask)
            else:
                self.poller.modify(fd, mask)
        except FileExistsError:  # closed and reopened under the same number
            self.poller.modify(fd, mask)
        except FileNotFoundError:  # closed elsewhere: epoll dropped it
            self.poller.register(fd, mask)
        except PermissionError:  # epoll refuses regular files; they never block
            self.unpollable.add(fd)

    def _disarm(self, fd: int) -> None:
        if fd in self.unpollable:
            self.unpollable.discard(fd)
            return
        try:
            self.poller.unregister(fd)
        except OSError:
            pass  # already closed: epoll forgot it
