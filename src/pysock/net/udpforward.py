"""forward -u: datagrams from each client address relayed to TO and the replies
routed back, socat's UDP-LISTEN:...,fork without a process per client, on the one
engine (its fd watches and timers).

Each new client address opens a session: a UDP socket of its own, connected to TO,
so TO's replies on it belong to that client alone and TO's ICMP port unreachable
ends that session only. A session ends after idle_timeout seconds without a
datagram either way. Datagrams stay whole both ways (net.datagram's channels, with
buffers every UDP datagram fits); one that cannot be passed on (a full socket
buffer) is counted in the session's report, never dropped silently."""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pysock.net.address import format_sockaddr
from pysock.net.datagram import DatagramChannel
from pysock.net.endpoints import os_error
from pysock.net.engine import Engine
from pysock.net.forward import Finished, ForwardPolicy, Open
from pysock.net.hub import Event
from pysock.net.outbound import Target

IDLE_TIMEOUT = 60.0
BURST = 64  # datagrams taken from one socket per wake-up


@dataclass(eq=False)
class _Session:
    client: tuple  # the client's sockaddr
    channel: DatagramChannel  # connected to TO
    number: int
    taps: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    bytes_in: int = 0  # client -> TO
    bytes_out: int = 0  # TO -> client
    dropped: int = 0


class UdpForwarder:
    def __init__(self, listener: socket.socket, target: Target, policy: ForwardPolicy,
                 on_event: Callable[[object], None] = lambda e: None,
                 on_tick: Callable[[list[Open]], None] = lambda rows: None):
        self.listener = DatagramChannel(listener)
        self.target, self.policy = target, policy
        self.on_event, self.on_tick = on_event, on_tick
        self.idle = policy.idle_timeout or IDLE_TIMEOUT
        self.address = target.addresses()[0]
        self.engine = Engine()
        self.engine.timers.append(self)
        self.sessions: dict[tuple, _Session] = {}
        self.count = 0
        self.next_tick = None if policy.tick is None else time.monotonic()

    def serve(self) -> int:
        self.listener.sock.setblocking(False)
        self.engine.watch(self.listener.rfd, select.POLLIN, lambda ev: self._from_clients())
        try:
            self.engine.run(lambda: self.policy.once and self.count and not self.sessions)
        finally:
            for session in list(self.sessions.values()):
                self._end(session, "server", "server exiting")
        return 0

    # -- client -> TO --------------------------------------------------------

    def _from_clients(self) -> None:
        for _ in range(BURST):
            try:
                datagram = self.listener.recv_datagram()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED:  # a client gone; its ICMP reached us
                    continue
                raise os_error(exc, "receive on", self.listener.local) from None
            session = self.sessions.get(datagram.address) or self._open(datagram.address)
            if session is not None:
                self._to_target(session, datagram.data)

    def _open(self, client) -> _Session | None:
        peer = format_sockaddr(client)
        if not self.policy.access.permits(client[0]):
            self.on_event(Event("refused", peer, "not allowed", advice="access_refused"))
            return None
        limit = self.policy.max_conns
        if (limit is not None and len(self.sessions) >= limit) or (self.policy.once and self.count):
            self.on_event(Event("refused", peer, "one client only", advice="once_reached")
                          if self.policy.once else
                          Event("refused", peer, "client limit reached",
                                advice="max_conns_reached", facts=(("limit", limit),)))
            return None
        sock = socket.socket(self.address.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(self.address.sockaddr)
        except OSError as exc:
            sock.close()
            self.on_event(Event("refused", peer, str(os_error(exc, "connect to", str(self.target),
                                                              proto="udp"))))
            return None
        self.count += 1
        session = _Session(client, DatagramChannel(sock), self.count)
        session.taps = self.policy.taps(f"{peer} <-> {self.target} #{self.count}")
        self.sessions[client] = session
        self.engine.watch(sock.fileno(), select.POLLIN, lambda ev: self._from_target(session))
        self.on_event(Event("connect", peer, f"session {self.count}"))
        return session

    def _to_target(self, session: _Session, data: bytes) -> None:
        for tap in session.taps:
            tap(">", data)
        try:
            session.channel.send(data)
        except BlockingIOError:
            session.dropped += 1
            return
        except OSError as exc:
            self._failed(session, exc)
            return
        session.bytes_in += len(data)
        session.last_activity = time.monotonic()

    # -- TO -> client --------------------------------------------------------

    def _from_target(self, session: _Session) -> None:
        for _ in range(BURST):
            try:
                datagram = session.channel.recv_datagram()
            except BlockingIOError:
                return
            except OSError as exc:
                self._failed(session, exc)
                return
            for tap in session.taps:
                tap("<", datagram.data)
            try:
                self.listener.sock.sendto(datagram.data, session.client)
            except BlockingIOError:
                session.dropped += 1
                continue
            except OSError as exc:
                self._end(session, "error", str(os_error(exc, "send to",
                                                         format_sockaddr(session.client))))
                return
            session.bytes_out += len(datagram.data)
            session.last_activity = time.monotonic()

    def _failed(self, session: _Session, exc: OSError) -> None:
        if exc.errno == errno.ECONNREFUSED:
            self._end(session, "refused", f"no one is listening on {self.target}/udp")
        else:
            self._end(session, "error", str(os_error(exc, "send to", str(self.target))))

    # -- ending ----------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        marks = [s.last_activity + self.idle for s in self.sessions.values()]
        if self.next_tick is not None:
            marks.append(self.next_tick)
        return min(marks) if marks else None

    def on_timer(self, now: float) -> None:
        for session in list(self.sessions.values()):
            if now - session.last_activity >= self.idle:
                self._end(session, "idle", f"idle for {self.idle:g} s")
        if self.next_tick is not None and now >= self.next_tick:
            self.next_tick = now + self.policy.tick
            self.on_tick([Open(s.number, format_sockaddr(s.client), str(self.target), s.bytes_in,
                               s.bytes_out, now - s.started) for s in self.sessions.values()])

    def _end(self, session: _Session, closed_by: str, reason: str) -> None:
        if self.sessions.pop(session.client, None) is not session:
            return
        self.engine.forget(session.channel.rfd)
        session.channel.close()
        if session.dropped:
            reason += f"; {session.dropped} datagrams dropped (socket buffer full)"
        host, port = session.client[0], session.client[1]
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        self.on_event(Finished(format_sockaddr(session.client), host, port, str(self.target),
                               session.bytes_in, session.bytes_out,
                               time.monotonic() - session.started, closed_by, reason))


def serve(listener: socket.socket, target: Target, policy: ForwardPolicy,
          on_event=lambda e: None, on_tick=lambda rows: None) -> int:
    return UdpForwarder(listener, target, policy, on_event, on_tick).serve()
