"""forward: every accepted client relayed to TO, many at once, a mode of the hub on
the one engine.

The hub accepts (access lists, --max-conns, TLS handshakes in the loop); then each
client's way to TO (net.outbound: connect, proxy, PROXY header, TLS) is stepped by
the same engine, and once TO is there the two are one relay.Link: the client is
its local end and TO its remote, so the Link's EOF table carries a FIN from either
side on to the other while the other direction flows, and its pumps splice both
ways between plain TCP sockets (copy for TLS, Unix streams and --hexdump). A reset
on one end is passed on as a reset (SO_LINGER 0) to the other.

When a connection is over, a Finished value says who closed first and what moved."""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from pysock.errors import PysockError
from pysock.net.access import Access
from pysock.net.address import format_sockaddr
from pysock.net.endpoints import Channel
from pysock.net.hub import Event, Hub, HubPolicy, _Client
from pysock.net.outbound import Outbound, Target
from pysock.net.pump import EndpointError
from pysock.net.relay import SENT, Link, Policy, RelayError

_RESETS = (errno.ECONNRESET, errno.EPIPE)


@dataclass(frozen=True)
class Finished:
    """One connection, when it ends (DESIGN.md's forward record, and the why)."""

    client: str  # how -v names it: address, or the process of a Unix client
    client_addr: str | None
    client_port: int | None
    target: str
    bytes_in: int  # client -> TO
    bytes_out: int  # TO -> client
    seconds: float
    closed_by: str  # client | target | idle | refused | timeout | error | server
    reason: str


@dataclass(frozen=True)
class Open:
    """A connection under way, for --watch."""

    number: int
    client: str
    target: str
    bytes_in: int
    bytes_out: int
    seconds: float


@dataclass(frozen=True)
class ForwardPolicy:
    once: bool = False
    max_conns: int | None = None
    access: Access = Access()
    idle_timeout: float | None = None
    tls: object | None = None  # net.tls.ServerIdentity: clients speak TLS (--tls-listen)
    taps: Callable[[str], list] = lambda label: []  # per connection: taps(label) -> [tap]
    tick: float | None = None  # call on_tick with the open connections this often


class _Pending:
    """A client whose TO is not there yet: not read until it is."""

    def __init__(self, conn: Channel, peer: str, addr, number: int, outbound: Outbound):
        self.conn, self.peer, self.addr, self.number = conn, peer, addr, number
        self.outbound = outbound
        self.watched: int | None = None
        self.started = time.monotonic()


class _Link(Link):
    """A forward Link: the client local, TO remote; remembers which end broke."""

    broken: tuple[str, int | None] | None = None  # ('client'|'target', errno)

    def _error(self, side, exc: EndpointError) -> PysockError:
        on_target = (exc.side == "write") == (side.name == SENT) or exc.side == "reset"
        self.broken = ("target" if on_target else "client", exc.exc.errno)
        if on_target:
            return super()._error(side, exc)
        self.result.reason = "client error"
        what = "reset by the client" if exc.exc.errno in _RESETS else (
            exc.exc.strerror or str(exc.exc))
        return RelayError(f"connection {what}", self._final("client error"))


class Forwarder(Hub):
    def __init__(self, listener: socket.socket, target: Target, policy: ForwardPolicy,
                 on_event: Callable[[object], None] = lambda e: None,
                 on_tick: Callable[[list[Open]], None] = lambda rows: None):
        hub_policy = HubPolicy(mode="forward", keep_open=not policy.once,
                               max_conns=policy.max_conns, access=policy.access, tls=policy.tls,
                               relay=Policy(idle_timeout=policy.idle_timeout))
        super().__init__(listener, hub_policy, on_event)
        self.target, self.fpolicy, self.on_tick = target, policy, on_tick
        self.addresses = target.addresses()
        self.pending: dict[int, _Pending] = {}  # by number
        self.meta: dict[Link, _Pending] = {}
        self.next_tick = None if policy.tick is None else time.monotonic()

    # -- a client is ready: its way to TO -------------------------------------------

    def _connected(self, conn: Channel, peer: str, addr) -> None:
        self.numbers += 1
        try:
            outbound = Outbound(self.target, self.addresses, conn.sock)
        except OSError as exc:  # no socket to be had (EMFILE): this client is turned away
            from pysock.net.endpoints import os_error
            pending = _Pending(conn, peer, addr, self.numbers, None)
            self._turn_away(pending, "error", os_error(exc, "open a socket").message)
            return
        pending = _Pending(conn, peer, addr, self.numbers, outbound)
        self.pending[pending.number] = pending
        self.on_event(Event("connect", peer, f"connection {pending.number}"))
        self._step(pending)

    def _step(self, pending: _Pending) -> None:
        try:
            channel = pending.outbound.step()
        except PysockError as exc:
            refused = pending.outbound.refused
            self._unwatch(pending)
            self._turn_away(pending, "refused" if refused else "error", exc.message)
            return
        if channel is None:
            self._watch(pending)
            return
        self._unwatch(pending)
        self._join(pending, channel)

    def _watch(self, pending: _Pending) -> None:
        out = pending.outbound
        if pending.watched is not None and pending.watched != out.fd:
            self.engine.unwatch(pending.watched)
        pending.watched = out.fd
        self.engine.watch(out.fd, out.event, lambda revents: self._step(pending))

    def _unwatch(self, pending: _Pending) -> None:
        self.pending.pop(pending.number, None)
        if pending.watched is not None:
            self.engine.unwatch(pending.watched)
            pending.watched = None

    def _join(self, pending: _Pending, channel: Channel) -> None:
        label = f"{pending.peer} <-> {self.target} #{pending.number}"
        link = _Link(pending.conn, channel, self.policy.relay, self.fpolicy.taps(label),
                     on_close=self._left)
        self.clients[link] = _Client(pending.peer, pending.number, None, quiet=True)
        self.meta[link] = pending
        self.engine.add(link)

    def _turn_away(self, pending: _Pending, closed_by: str, reason: str) -> None:
        """TO could not be reached: say so, then reset the client."""
        if pending.outbound is not None:
            pending.outbound.close()
        self._report(pending, closed_by, reason, 0, 0)
        _linger_zero(getattr(pending.conn, "sock", None))
        self.engine.forget(pending.conn.rfd)
        pending.conn.close()

    # -- a connection is over ---------------------------------------------------------

    def _left(self, link: Link) -> None:
        pending = self.meta.pop(link, None)
        broken = getattr(link, "broken", None)
        if pending is not None:
            closed_by, reason = _why(link)
            self._report(pending, closed_by, reason, link.result.sent, link.result.received)
        if broken is not None and broken[1] in _RESETS:
            other = link.remote if broken[0] == "client" else link.local
            _linger_zero(getattr(other, "sock", None))
        super()._left(link)

    def _report(self, pending: _Pending, closed_by: str, reason: str, bytes_in: int,
                bytes_out: int) -> None:
        host, port = _split(pending.addr)
        self.on_event(Finished(pending.peer, host, port, str(self.target), bytes_in, bytes_out,
                               time.monotonic() - pending.started, closed_by, reason))

    # -- the hub's bookkeeping, counting clients whose TO is on its way ---------------

    def _people(self) -> list:
        return [*self.clients.values(), *self.pending.values()]

    def _done(self) -> bool:
        return super()._done() and not self.pending

    @property
    def deadline(self) -> float | None:
        marks = [m for m in (Hub.deadline.fget(self), self.next_tick) if m is not None]
        marks += [p.outbound.deadline for p in self.pending.values()
                  if p.outbound.deadline is not None]
        return min(marks) if marks else None

    def on_timer(self, now: float) -> None:
        super().on_timer(now)
        for pending in list(self.pending.values()):
            deadline = pending.outbound.deadline
            if deadline is not None and now >= deadline:
                self._unwatch(pending)
                self._turn_away(pending, "timeout", pending.outbound.expired().message)
        if self.next_tick is not None and now >= self.next_tick:
            self.next_tick = now + self.fpolicy.tick
            self.on_tick(self.snapshot())

    def snapshot(self) -> list[Open]:
        now = time.monotonic()
        rows = []
        for link, pending in sorted(self.meta.items(), key=lambda item: item[1].number):
            link._count()
            rows.append(Open(pending.number, pending.peer, str(self.target), link.result.sent,
                             link.result.received, now - pending.started))
        return rows

    def serve(self) -> int:
        try:
            return super().serve()
        finally:
            for link, pending in list(self.meta.items()):  # still open: ended by us
                link._count()
                self._report(pending, "server", "server exiting", link.result.sent,
                             link.result.received)
            for pending in list(self.pending.values()):
                pending.outbound.close()
                pending.conn.close()


def _why(link: Link) -> tuple[str, str]:
    """(closed_by, reason) of an ended Link."""
    if link.error is not None:
        if link.result.reason == "idle timeout":
            return "idle", str(link.error)
        broken = getattr(link, "broken", None)
        if broken is not None and broken[1] in _RESETS:
            return broken[0], str(link.error)
        return "error", str(link.error)
    first = {"input": "client", "peer": "target"}.get(link.result.first_eof or "", "server")
    return first, link.result.why or "both sides closed"


def _split(addr) -> tuple[str | None, int | None]:
    if isinstance(addr, tuple):
        host = addr[0]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        return host, addr[1]
    return (format_sockaddr(addr) if addr else None), None


def _linger_zero(sock: socket.socket | None) -> None:
    """Make the coming close() a reset (a Unix peer just sees the close)."""
    if sock is not None and sock.family != socket.AF_UNIX and sock.fileno() >= 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


def serve(listener: socket.socket, target: Target, policy: ForwardPolicy,
          on_event=lambda e: None, on_tick=lambda rows: None) -> int:
    return Forwarder(listener, target, policy, on_event, on_tick).serve()
