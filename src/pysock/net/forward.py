"""forward: every accepted client relayed to TO, many at once, in the hub's loop.

Each client and its outbound connection (net.outbound, stepped in the same loop)
are two channels of the hub joined to each other: what one sends is queued to the
other, a FIN is passed on as a FIN (the other direction keeps flowing), a reset as
a reset (SO_LINGER 0), TLS close_notify as close_notify. A client is not read until
its TO is ready, and is not read while its TO has more than PAUSE bytes waiting (and
the other way round), so a slow end slows its own peer and nobody else.

When both ends are gone a Finished value says who closed first and what moved."""

from __future__ import annotations

import errno
import select
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from pysock.net.access import Access
from pysock.net.address import format_sockaddr
from pysock.net.endpoints import Channel, SocketChannel, os_error, peer_name
from pysock.net.hub import CHUNK, HANDSHAKE_TIMEOUT, Event, Hub, HubPolicy, _Client, _Handshake, _permitted
from pysock.net.outbound import Outbound, Target
from pysock.net.pump import Blocked

PAUSE = 1 << 20  # stop reading one end while this much waits for the other
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


class _Pair:
    def __init__(self, client: _Client, addr, number: int):
        self.client, self.addr, self.number = client, addr, number
        self.outbound: Outbound | None = None
        self.target: _Client | None = None
        self.taps: list = []
        self.first: str | None = None  # which end ended first
        self.closed_by: str | None = None
        self.reason = ""
        self.reported = False
        self.started = time.monotonic()


class Forwarder(Hub):
    def __init__(self, listener: socket.socket, target: Target, policy: ForwardPolicy,
                 on_event: Callable[[object], None] = lambda e: None,
                 on_tick: Callable[[list[Open]], None] = lambda rows: None):
        super().__init__(listener, HubPolicy(mode="forward", keep_open=not policy.once,
                                             idle_timeout=policy.idle_timeout), on_event)
        self.target, self.fpolicy, self.on_tick = target, policy, on_tick
        self.addresses = target.addresses()
        self.pairs: dict[int, _Pair] = {}  # by the fd of either end
        self.pending: dict[int, _Pair] = {}  # by the outbound's current fd
        self.next_tick = None if policy.tick is None else time.monotonic()
        self.count = 0

    # -- accepting (the hub's, counting pairs and pending outbounds) ----------

    def _accept(self) -> None:
        try:
            sock, addr = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._pause_accept(str(os_error(exc, "accept")))
            elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                raise
            return
        peer = peer_name(sock, addr)
        if not _permitted(self.fpolicy.access, addr):
            _reset(sock)
            self.on_event(Event("refused", peer, "not allowed by --allow/--deny"))
            return
        limit = self.fpolicy.max_conns
        if limit is not None and len({id(p) for p in self.pairs.values()}) + len(
                self.handshakes) >= limit:
            _reset(sock)
            self.on_event(Event("refused", peer, f"--max-conns {limit} reached"))
            return
        self.served += 1
        if self.fpolicy.once:
            self._stop_accepting()
        if self.fpolicy.tls is not None:
            self._start_handshake(sock, addr, peer)
        else:
            self._client_ready(SocketChannel(sock), peer, addr)

    def _start_handshake(self, sock, addr, peer) -> None:
        from pysock.net.tls import TLSChannel
        sock.setblocking(False)
        conn = TLSChannel(sock, self.fpolicy.tls.context, server_side=True)
        conn.peer = peer
        shake = _Handshake(conn, peer, addr, time.monotonic() + HANDSHAKE_TIMEOUT)
        self.handshakes[conn.rfd] = shake
        self.sel.register(conn.rfd, selectors.EVENT_READ, shake)

    def _add(self, conn: Channel, peer: str, quiet: bool = False) -> _Client:
        """The hub calls this when a client's TLS handshake is done."""
        try:
            addr = conn.sock.getpeername()
        except OSError:
            addr = None
        return self._client_ready(conn, peer, addr)

    def _client_ready(self, conn: Channel, peer: str, addr) -> _Client:
        client = Hub._add(self, conn, peer, quiet=True)
        self.count += 1
        pair = _Pair(client, addr, self.count)
        self.pairs[client.fd] = pair
        self.on_event(Event("connect", peer, f"connection {pair.number}"))
        self._watch(client)  # not read until TO is ready
        try:
            pair.outbound = Outbound(self.target, self.addresses, conn.sock)
        except OSError as exc:  # no socket to be had (EMFILE): this client is turned away
            self._end_pair(pair, "error", str(os_error(exc, "open a socket")), reset=True)
            return client
        self._step_outbound(pair)
        return client

    # -- the outbound side ------------------------------------------------------

    def _watch_outbound(self, pair: _Pair) -> None:
        out = pair.outbound
        events = selectors.EVENT_WRITE if out.event & select.POLLOUT else selectors.EVENT_READ
        self._drop_pending(pair)  # its fd may be closed and the number reused: start anew
        self.pending[out.fd] = pair
        self.sel.register(out.fd, events, pair)

    def _step_outbound(self, pair: _Pair) -> None:
        from pysock.errors import PysockError
        try:
            channel = pair.outbound.step()
        except PysockError as exc:
            self._drop_pending(pair)
            refused, pair.outbound = pair.outbound.refused, None
            self._end_pair(pair, "refused" if refused else "error", exc.message, reset=True)
            return
        if channel is None:
            self._watch_outbound(pair)
            return
        self._drop_pending(pair)
        pair.outbound = None
        self._joined(pair, channel)

    def _drop_pending(self, pair: _Pair) -> None:
        for f, p in list(self.pending.items()):
            if p is pair:
                del self.pending[f]
                try:
                    self.sel.unregister(f)
                except (KeyError, ValueError):
                    pass

    def _joined(self, pair: _Pair, channel: Channel) -> None:
        target = Hub._add(self, channel, str(self.target), quiet=True)
        pair.target = target
        self.pairs[target.fd] = pair
        client = pair.client
        client.partner, target.partner = target, client
        client.bridged = target.bridged = True
        pair.taps = self.fpolicy.taps(f"{client.peer} <-> {self.target} #{pair.number}")
        self._watch(client)
        self._watch(target)
        if target.conn.pending_output:
            self._flush(target)
        self._read_client(client)  # what came with the client's TLS handshake

    # -- data ----------------------------------------------------------------------

    def _read_client(self, client: _Client) -> None:
        pair = self.pairs.get(client.fd)
        if pair is None or client.partner is None or self.clients.get(client.fd) is not client:
            return
        try:
            data = client.conn.recv(CHUNK)
        except (BlockingIOError, Blocked):
            return
        except OSError as exc:
            self._broken(pair, client, exc)
            return
        if not data:
            pair.first = pair.first or self._end_name(pair, client)
            self._client_eof(client)
            return
        client.received += len(data)
        client.last_activity = time.monotonic()
        direction = ">" if client is pair.client else "<"
        for tap in pair.taps:
            tap(direction, data)
        self._queue(client.partner, data)
        if client.partner is not None and client.partner.queued > PAUSE:
            self._watch(client)

    def _bridge_eof(self, client: _Client) -> None:
        partner = client.partner
        if partner is not None:
            partner.fin_pending = True
            partner.close_after_fin = False
            self._flush(partner)
        if self.clients.get(client.fd) is client and client.output_done:
            self._close(client, "both sides closed")

    def _flush(self, client: _Client) -> None:
        super()._flush(client)
        partner = client.partner
        if partner is not None and self.clients.get(partner.fd) is partner \
                and client.queued <= PAUSE:
            self._watch(partner)

    def _events(self, client: _Client) -> int:
        events = super()._events(client)
        if client.partner is None or client.partner.queued > PAUSE:
            events &= ~selectors.EVENT_READ
        return events

    def _broken(self, pair: _Pair, end: _Client, exc: OSError) -> None:
        who = self._end_name(pair, end)
        if exc.errno in _RESETS:
            self._end_pair(pair, who, f"connection reset by the {who}", reset=True)
        else:
            self._end_pair(pair, "error", str(os_error(exc, "read from", end.peer)), reset=True)

    def _close(self, client: _Client, why: str, quiet: bool = False) -> None:
        pair = self.pairs.pop(client.fd, None)
        error = sys.exc_info()[1]  # the hub closes an end from inside its except OSError
        if pair is not None and isinstance(error, OSError) and error.errno in _RESETS:
            self.pairs[client.fd] = pair
            self._broken(pair, client, error)
            return
        if pair is not None and why.startswith("idle"):
            pair.closed_by = pair.closed_by or "idle"
            pair.reason = pair.reason or why
        super()._close(client, why, quiet=True)
        if pair is not None:
            self._maybe_finished(pair)

    def _maybe_finished(self, pair: _Pair) -> None:
        ends = [e for e in (pair.client, pair.target) if e is not None]
        if pair.outbound is None and not any(self.clients.get(e.fd) is e for e in ends):
            self._report(pair)

    def _report(self, pair: _Pair) -> None:
        if pair.reported:
            return
        pair.reported = True
        closed_by = pair.closed_by or pair.first or "server"
        reason = pair.reason or ("both sides closed" if pair.first else "server exiting")
        client = pair.client
        host, port = _split(pair.addr)
        self.on_event(Finished(client.peer, host, port, str(self.target), client.received,
                               client.sent, time.monotonic() - pair.started, closed_by, reason))

    def _end_pair(self, pair: _Pair, closed_by: str, reason: str, reset: bool) -> None:
        pair.closed_by = pair.closed_by or closed_by
        pair.reason = pair.reason or reason
        self._report(pair)  # before the ends close: the line comes before the client knows
        if pair.outbound is not None:
            self._drop_pending(pair)
            pair.outbound.close()
            pair.outbound = None
        for end in (pair.client, pair.target):
            if end is None or self.clients.get(end.fd) is not end:
                continue
            if reset:
                _linger_zero(getattr(end.conn, "sock", None))
            end.partner = None
            self.pairs.pop(end.fd, None)
            Hub._close(self, end, reason, quiet=True)

    def _end_name(self, pair: _Pair, end: _Client) -> str:
        return "client" if end is pair.client else "target"

    # -- the loop's extras ---------------------------------------------------------

    def _dispatch(self, key, events: int) -> None:
        if isinstance(key.data, _Pair):
            if key.data.outbound is not None:
                self._step_outbound(key.data)
            return
        super()._dispatch(key, events)

    def _timeout(self) -> float | None:
        timeout = super()._timeout()
        now = time.monotonic()
        marks = [p.outbound.deadline for p in self.pending.values()
                 if p.outbound is not None and p.outbound.deadline is not None]
        if self.next_tick is not None:
            marks.append(self.next_tick)
        if not marks:
            return timeout
        soonest = max(0.0, min(marks) - now)
        return soonest if timeout is None else min(timeout, soonest)

    def _timers(self) -> None:
        super()._timers()
        now = time.monotonic()
        for pair in {id(p): p for p in self.pending.values()}.values():
            out = pair.outbound
            if out is not None and out.deadline is not None and now >= out.deadline:
                self._drop_pending(pair)
                exc = out.expired()
                pair.outbound = None
                self._end_pair(pair, "timeout", exc.message, reset=True)
        if self.next_tick is not None and now >= self.next_tick:
            self.next_tick = now + self.fpolicy.tick
            self.on_tick(self.snapshot())

    def _done(self) -> bool:
        if not self.fpolicy.once or self.served == 0:
            return False
        return not self.clients and not self.handshakes and not self.pending

    def snapshot(self) -> list[Open]:
        now = time.monotonic()
        pairs = {id(p): p for p in self.pairs.values()}.values()
        return [Open(p.number, p.client.peer, str(self.target), p.client.received,
                     p.client.sent, now - p.started) for p in sorted(pairs, key=lambda p: p.number)]

    def serve(self) -> int:
        try:
            return super().serve()
        finally:
            for pair in {id(p): p for p in list(self.pairs.values())
                         + list(self.pending.values())}.values():
                if pair.outbound is not None:
                    pair.outbound.close()
                    pair.outbound = None


def _split(addr) -> tuple[str | None, int | None]:
    if isinstance(addr, tuple):
        host = addr[0]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        return host, addr[1]
    return (format_sockaddr(addr) if addr else None), None


def _linger_zero(sock: socket.socket | None) -> None:
    if sock is not None and sock.family != socket.AF_UNIX:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


def _reset(sock: socket.socket) -> None:
    """Turn a client away with a reset (a Unix client just sees the close)."""
    _linger_zero(sock)
    sock.close()


def serve(listener: socket.socket, target: Target, policy: ForwardPolicy,
          on_event=lambda e: None, on_tick=lambda rows: None) -> int:
    return Forwarder(listener, target, policy, on_event, on_tick).serve()
