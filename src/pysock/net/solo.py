"""One Link alone (connect, listen without -k): its steady state without the Engine.

In an interactive session each wake-up moves a few bytes, and the Engine's general
bookkeeping (runnable sets, parking lists, dirty registrations, the deadline heap) cost
more than the two syscalls it schedules: a 1-byte round trip through connect measured
1.1-1.3x socat's. Here a Link's two sources sit in one level-triggered epoll set, and a
wake-up steps the side whose source is readable, nothing else.

Solo stands in for the Engine as long as every side waits for its own source to become
readable, the one thing it polls for. The first time anything else happens (a side
blocked on its destination, end of input, a timer to set, an error, the Link closing)
it stops, and the Engine takes the Link over as it is; see Engine.add."""

from __future__ import annotations

import select

from pysock.net.pump import Pump


class Solo:
    """The Engine's part, as far as a Link asks for it, while nothing but reading
    happens; `over` says that something else did."""

    def __init__(self, link):
        self.link = link
        self.over = False

    # what a Link calls on its engine

    def park(self, side) -> None:
        blocked = side.waiting
        if blocked.fd != side.pump.src or blocked.event != select.POLLIN:
            self.over = True

    def schedule(self, link) -> None:
        if link.deadline is not None:
            self.over = True

    def forget(self, fd) -> None:
        self.over = True

    def _unpark(self, side) -> None:
        self.over = True

    def remove(self, link) -> None:
        self.over = True

    # the loop

    def run(self) -> None:
        """Relay until something needs the Engine (or the Link is over). The Link
        comes parked: each side waits for its own source."""
        link = self.link
        sources = {side.pump.src: side for side in link.sides}
        with select.epoll(len(sources)) as poller:
            try:
                for fd in sources:
                    poller.register(fd, select.EPOLLIN)
            except OSError:
                return  # not one epoll takes: the Engine copes with every kind
            link.engine = self
            try:
                self._loop(poller.poll, sources)
            finally:
                link.engine = None

    def _loop(self, poll, sources: dict) -> None:
        step_one = self.link.step_one
        while True:
            for fd, _ in poll():
                side = sources[fd]
                side.waiting = None
                side.pump.wake()
                step_one(side)
                while side.waiting is None:  # it moved a big chunk: more may be there
                    if side.done or self.over:
                        return
                    step_one(side)
                if self.over:
                    return


def fits(link) -> bool:
    """What solo can run: both sides of a byte stream between plain fds that epoll
    takes (pipes, sockets, terminals), no timer that runs without an event, no bytes
    held in user space (TLS), no memory queue."""
    if link.flushers or link.remote.is_datagram or link.slow_client is not None:
        return False
    if link.policy.idle_timeout is not None or not link.sides:
        return False
    for side in link.sides:
        pump = side.pump
        if not isinstance(pump, Pump) or not isinstance(pump.src, int) \
                or not isinstance(pump.dst, int):
            return False
        if not _pollable(pump.src):
            return False
    return True


def parked(sides) -> bool:
    """Every side waits for its own source to be readable, and only for that."""
    for side in sides:
        blocked = side.waiting
        if side.done or blocked is None or blocked.fd != side.pump.src \
                or blocked.event != select.POLLIN:
            return False
    return True


def _pollable(fd: int) -> bool:
    from pysock.net.endpoints import fd_kind
    return fd_kind(fd) in ("pipe", "socket", "tty")
