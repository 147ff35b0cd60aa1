"""Many clients on one listener: keep-open relay, broker, chat, echo and exec.

    relay   stdin goes to every client; every client's data goes to stdout (ncat -k)
    broker  a client's data goes to every other client (ncat --broker)
    chat    broker, with each line prefixed '<user N> '
    echo    each client gets back what it sends
    exec    each client gets its own process, its stdin/stdout tied to the socket

A dead client never stalls the others: with more than HIGH_WATER bytes queued
and nothing taken for STALL seconds (or past HARD_CAP), it is dropped and an
event says so. Without keep_open the hub serves the first accepted client and
returns when it is gone.

With TLS (policy.tls) each client's handshake runs in the same loop, step by
step, bounded by policy.handshake_timeout, so a client that stalls mid-handshake stalls
no one else; exec children then talk plaintext over a socketpair that the hub
joins to the TLS client like two clients of a broker."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pysock.errors import NetworkError, PysockError, worded
from pysock.net.access import Access
from pysock.net.address import format_sockaddr
from pysock.net.datagram import Framing
from pysock.net.endpoints import Channel, SocketChannel, StdioChannel, fd_kind, os_error, peer_name
from pysock.net.engine import Engine, Feed
from pysock.net.pump import Blocked
from pysock.net.relay import Link, Policy, SlowClient
from pysock.net.tls import HANDSHAKE_TIMEOUT

HIGH_WATER = 8 << 20  # past this, a client that takes nothing for STALL seconds is dropped
HARD_CAP = 64 << 20  # past this, a client is dropped however it is doing
STALL = 1.0
ECHO_PAUSE = 1 << 20  # echo: stop reading a client whose replies are not being taken
STDOUT_PAUSE = 4 << 20  # -k: stop reading clients while stdout takes nothing
CHUNK = 1 << 16
EMFILE_RETRY = 1.0
ACCEPT_BURST = 64  # clients accepted per wake-up of the listener
REAP_EVERY = 0.2
CHILD_GRACE = 1.0  # from TERM to KILL for --exec children when the server ends


@dataclass(frozen=True)
class HubPolicy:
    mode: str = "relay"  # relay | broker | chat | echo | exec
    keep_open: bool = False
    max_conns: int | None = None
    access: Access = Access()
    command: tuple[str, ...] = ()  # exec: argv (shell=True runs command[0] with /bin/sh)
    shell: bool = False
    accept_timeout: float | None = None
    tls: object | None = None  # a net.tls.ServerIdentity: every client speaks TLS
    handshake_timeout: float = HANDSHAKE_TIMEOUT  # one limit, one client or many
    relay: Policy = Policy()  # the stream policy every client's Link runs under
    bridge_exec: bool = False  # exec through the engine (for taps, CRLF, idle) even without TLS


@dataclass(frozen=True)
class Event:
    """Something a -v user wants to know: connect, leave, refuse, drop, busy."""

    kind: str
    peer: str = ""
    fact: str = ""
    sent: int = 0
    received: int = 0
    seconds: float = 0.0
    channel: Channel | None = None  # secured: the TLS channel, for a renderer to describe
    advice: str | None = None  # a key of errors.ADVICE: the way out, in the user's flags
    facts: tuple = ()  # (name, value) pairs the advice is worded with
    dropped: bool = False  # leave: the server dropped the client (it stopped reading)

    @property
    def detail(self) -> str:
        """The fact in words, with its advice."""
        return worded(self.fact, self.advice, **dict(self.facts))


@dataclass(eq=False)
class _Handshake:
    conn: Channel  # a net.tls.TLSChannel, handshake under way
    peer: str
    addr: tuple
    deadline: float


@dataclass(eq=False)
class _Client:
    peer: str
    number: int
    feed: Feed | None  # what goes to it (None: its local end is stdio or a child)
    quiet: bool = False
    child: int | None = None  # exec: the pid at the other end


class Hub:
    """The accept side of a server on the one Engine: access lists, --max-conns,
    EMFILE back-off, TLS handshakes in the loop, children for exec; each client
    is a relay.Link whose local end depends on the mode."""

    def __init__(self, listener: socket.socket, policy: HubPolicy,
                 on_event: Callable[[Event], None] = lambda e: None, stdin: int = 0,
                 stdout: int = 1, taps=(), wrap=SocketChannel):
        self.listener, self.policy, self.on_event = listener, policy, on_event
        self.wrap = wrap  # accepted socket -> its Channel (unix: descriptors, credentials)
        self.stdin, self.stdout, self.taps = stdin, stdout, list(taps)
        self.engine = Engine()
        self.engine.timers.append(self)
        self.clients: dict[Link, _Client] = {}
        self.handshakes: dict[int, _Handshake] = {}
        self.children: list[subprocess.Popen] = []
        self.served = self.numbers = 0
        self.accepting = True
        self.resume_accept_at: float | None = None
        self.quit_at: float | None = None
        self.stopped = False
        self.single: Link | None = None  # one client relayed with stdio (nc -l)
        self.status = 0
        self.next_reap = 0.0
        self.accept_deadline = (time.monotonic() + policy.accept_timeout
                                if policy.accept_timeout else None)
        self.stdin_link: Link | None = None
        self.stdin_ended = False
        self.stdout_feed: Feed | None = None

    # -- the loop ----------------------------------------------------------

    def serve(self) -> int:
        self.listener.setblocking(False)
        self.engine.watch(self.listener.fileno(), select.POLLIN, lambda ev: self._accept())
        if self._fans_stdio():
            self._open_stdio()
        try:
            self.engine.run(self._done)
        finally:
            for link in list(self.clients):
                link.on_close = None
                self._end_client(link)
            for shake in self.handshakes.values():
                shake.conn.close()
            self._end_children()
            for link in (self.stdin_link, self.single):
                if link is not None:
                    link.close_pumps()
        return self.status

    def _fans_stdio(self) -> bool:
        return self.policy.mode == "relay" and self.policy.keep_open

    def _done(self) -> bool:
        if self.stopped:
            return True
        if self.policy.keep_open or self.served == 0:
            return False
        return not self.clients and not self.handshakes and not any(
            c.poll() is None for c in self.children)

    @property
    def deadline(self) -> float | None:
        marks = [t for t in (self.resume_accept_at, self.accept_deadline, self.quit_at)
                 if t is not None]
        marks += [h.deadline for h in self.handshakes.values()]
        if self.children:
            marks.append(self.next_reap)
        return min(marks) if marks else None

    def on_timer(self, now: float) -> None:
        if self.resume_accept_at is not None and now >= self.resume_accept_at:
            self._resume_accept()
        if self.accept_deadline is not None and self.served == 0 and now >= self.accept_deadline:
            raise NetworkError(f"no client connected within {self.policy.accept_timeout:g} s")
        if self.quit_at is not None and now >= self.quit_at:
            self.stopped = True
        for shake in list(self.handshakes.values()):
            if now >= shake.deadline:
                self._handshake_failed(shake, f"TLS handshake with {shake.peer} not done "
                                              f"within {self.policy.handshake_timeout:g} s",
                                       dropped=True)
        if self.children and now >= self.next_reap:
            self.next_reap = now + REAP_EVERY
            self._reap()

    def _end_children(self) -> None:
        """The server is ending (a signal, an error): its --exec children end first,
        TERM, then KILL after CHILD_GRACE."""
        alive = [c for c in self.children if c.poll() is None]
        for child in alive:
            _signal(child, "terminate")
        deadline = time.monotonic() + CHILD_GRACE
        for child in alive:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(child, "kill")
                child.wait()

    def _reap(self) -> None:
        for child in list(self.children):
            code = child.poll()
            if code is not None:
                self.children.remove(child)
                if code != 0:
                    self.status = 1
                self.on_event(Event("exited", fact=f"pid {child.pid} exited with {code}"))

    # -- stdio with many clients (listen -k) --------------------------------

    def _open_stdio(self) -> None:
        """stdin goes to every client's Feed; every client's data to one stdout Feed."""
        relay = self.policy.relay
        if not relay.send_only:
            self.stdout_feed = Feed(limit=STDOUT_PAUSE)
            writer = Link(FeedChannel(self.stdout_feed, None), StdioChannel(-1, self.stdout),
                          Policy(send_only=True, shutdown_on_eof=False),
                          on_close=self._stdout_closed)
            self.engine.add(writer)
        if relay.recv_only:
            return
        kind = fd_kind(self.stdin)
        if kind == "file":  # kept for the clients that come: pipe it in instead
            self.on_event(Event("warning", fact="stdin is a regular file",
                                advice="hub_stdin_file"))
            self._stdin_done(None)
            return
        self.stdin_link = Link(StdioChannel(self.stdin, -1), _Broadcast(self),
                               Policy(send_only=True), on_close=self._stdin_done)
        self.engine.add(self.stdin_link)

    def _stdin_done(self, link: Link | None) -> None:
        self.stdin_ended = True
        if link is not None and link.error is not None:
            raise link.error
        if self.policy.relay.quit_after_eof is not None:
            self.quit_at = time.monotonic() + self.policy.relay.quit_after_eof

    def _stdout_closed(self, link: Link) -> None:
        if link.error is not None:
            raise BrokenPipeError(errno.EPIPE, "local output closed")

    # -- accepting ---------------------------------------------------------

    def _accept(self) -> None:
        """Up to ACCEPT_BURST clients per wake-up: a crowd connecting at once costs a
        few passes of the loop, not one per client (each pass polls every fd)."""
        for _ in range(ACCEPT_BURST):
            if not self.accepting or self._accept_one():
                return

    def _accept_one(self) -> bool:
        """One client accepted (or turned away); True when there is none waiting."""
        try:
            sock, addr = self.listener.accept()
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._pause_accept(str(os_error(exc, "accept")))
                return True
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                return False
            raise
        peer = peer_name(sock, addr)
        if not _permitted(self.policy.access, addr):
            sock.close()
            self.on_event(Event("refused", peer, "not allowed", advice="access_refused"))
            return False
        if self.policy.max_conns is not None and \
                len(self._people()) + len(self.handshakes) >= self.policy.max_conns:
            sock.close()
            self.on_event(Event("refused", peer, "client limit reached",
                                advice="max_conns_reached",
                                facts=(("limit", self.policy.max_conns),)))
            return False
        self.served += 1
        if not self.policy.keep_open:
            self._stop_accepting()
        if self.policy.tls is not None:
            self._start_handshake(sock, addr, peer)
        elif self.policy.mode == "exec" and not self.policy.bridge_exec:
            self._spawn(sock, addr)
        else:
            channel = self.wrap(sock)
            channel.peer = peer
            self._connected(channel, peer, addr)
        return False

    def _people(self) -> list[_Client]:
        return [c for c in self.clients.values() if not c.quiet]

    def _connected(self, conn: Channel, peer: str, addr) -> None:
        """A client ready for data (after its handshake, if any): its Link."""
        if self.policy.mode == "exec":
            self._spawn_bridged(conn, peer, addr)
        elif self.policy.mode == "relay" and not self.policy.keep_open:
            self._add(conn, peer, StdioChannel(self.stdin, self.stdout), None)
        else:
            self._add_fed(conn, peer)

    def _add_fed(self, conn: Channel, peer: str) -> None:
        mode = self.policy.mode
        slow = (HIGH_WATER, HARD_CAP, STALL)
        if mode == "echo":
            feed = Feed(limit=ECHO_PAUSE)
            local, slow = FeedChannel(feed, feed.send, feed), None
        elif mode in ("broker", "chat"):
            feed = Feed()
            local = FeedChannel(feed, None)
        elif self.stdout_feed is not None:
            feed = Feed()
            local = FeedChannel(feed, self.stdout_feed.send, self.stdout_feed)
        else:  # --send-only: what clients send goes nowhere
            feed = Feed()
            local = FeedChannel(feed, len)
        if mode == "relay" and self.stdin_ended and self.policy.relay.shutdown_on_eof:
            feed.end()  # stdin is over already: this client gets FIN at once
        client = self._add(conn, peer, local, feed, slow=slow)
        if mode in ("broker", "chat"):
            local.sink = self._sharer(client)
        if mode == "chat":
            self._broadcast(f"<announce> user {client.number} has connected\n".encode(), client)

    def _add(self, conn: Channel, peer: str, local: Channel, feed: Feed | None, *,
             slow=None, quiet: bool = False, child: int | None = None) -> _Client:
        self.numbers += 1
        client = _Client(peer, self.numbers, feed, quiet, child)
        policy = self.policy.relay
        if self.policy.mode == "exec":  # the child's output ended: so has this client
            policy = replace(policy, quit_after_eof=0.0, shutdown_on_eof=True,
                             recv_only=False, send_only=False)
        elif self.policy.mode != "relay":  # stdin plays no part: the client's data is the input
            # and on a datagram socket each queued message is already one datagram
            policy = replace(policy, recv_only=False, send_only=False, framing=Framing("raw"))
        single = self.policy.mode == "relay" and not self.policy.keep_open
        taps = [t.for_peer(peer) if hasattr(t, "for_peer") and not single else t
                for t in self.taps]
        link = Link(local, conn, policy, taps, on_close=self._left, slow_client=slow)
        self.clients[link] = client
        if self.policy.mode == "relay" and not self.policy.keep_open:
            self.single = link
        if not quiet:
            self.on_event(Event("connect", peer,
                                f"pid {child}" if child else f"client {client.number}"))
        self.engine.add(link)
        return client

    def _left(self, link: Link) -> None:
        client = self.clients.pop(link, None)
        if client is not None and link is not self.single and not client.quiet:
            # before closing, so the report comes before the client sees the end
            why = str(link.error) if link.error is not None else link.result.why
            self.on_event(Event("leave", client.peer, why, link.result.sent,
                                link.result.received, time.monotonic() - link.started,
                                dropped=isinstance(link.error, SlowClient)))
        self._close_link(link)
        if client is None:
            return
        if link is self.single and link.error is not None:
            raise link.error
        if self.policy.mode == "chat":
            self._broadcast(f"<announce> user {client.number} has left\n".encode(), client)
        if self.resume_accept_at is not None:
            self._resume_accept()

    def _end_client(self, link: Link) -> None:
        self.clients.pop(link, None)
        self.engine.remove(link)
        self._close_link(link)

    def _close_link(self, link: Link) -> None:
        link.close_pumps()
        for ch in (link.remote, link.local):
            if isinstance(ch, SocketChannel):
                self.engine.forget(ch.rfd)
                ch.close()

    # -- what clients' data does --------------------------------------------

    def _sharer(self, sender: _Client):
        prefix = f"<user {sender.number}> ".encode()
        partial = [b""]

        def share(data) -> int:
            data = bytes(data)
            if self.policy.mode == "chat":
                lines = (partial[0] + data).split(b"\n")
                partial[0] = lines.pop()
                if not lines:
                    return len(data)
                self._broadcast(b"".join(prefix + line + b"\n" for line in lines), sender)
            else:
                self._broadcast(data, sender)
            return len(data)
        return share

    def _broadcast(self, data: bytes, sender: _Client | None) -> None:
        for link, other in list(self.clients.items()):
            if other is not sender and other.feed is not None:
                other.feed.push(data)
                if other.feed.size > HARD_CAP:
                    link.on_timer(time.monotonic())  # dropped now, not at the next wake
                elif other.feed.size > HIGH_WATER:
                    self.engine.schedule(link)  # its stall deadline starts now

    # -- TLS ---------------------------------------------------------------

    def _start_handshake(self, sock: socket.socket, addr, peer: str) -> None:
        from pysock.net.tls import TLSChannel
        sock.setblocking(False)
        conn = TLSChannel(sock, self.policy.tls.context, server_side=True)
        conn.peer = peer
        shake = _Handshake(conn, peer, addr, time.monotonic() + self.policy.handshake_timeout)
        self.handshakes[conn.rfd] = shake
        self.engine.watch(conn.rfd, select.POLLIN, lambda ev: self._step_handshake(shake))
        self._step_handshake(shake)

    def _step_handshake(self, shake: _Handshake) -> None:
        try:
            shake.conn.handshake_step()
        except Blocked as blocked:
            self.engine.watch(shake.conn.rfd, blocked.event,
                              lambda ev: self._step_handshake(shake))
            return
        except PysockError as exc:
            self._handshake_failed(shake, exc.message)
            return
        del self.handshakes[shake.conn.rfd]
        self.engine.unwatch(shake.conn.rfd)
        shake.conn.finish_handshake()
        self.on_event(Event("secured", shake.peer, shake.conn.summary(), channel=shake.conn))
        self._connected(shake.conn, shake.peer, shake.addr)

    def _handshake_failed(self, shake: _Handshake, why: str, dropped: bool = False) -> None:
        """A handshake that failed ends that client; one that timed out is dropped
        with a line (the one-client relay: an error)."""
        del self.handshakes[shake.conn.rfd]
        self.engine.forget(shake.conn.rfd)
        if not (self.policy.mode == "relay" and not self.policy.keep_open):
            self.on_event(Event("dropped" if dropped else "refused", shake.peer, why))
        shake.conn.close()  # after the line, so it comes before the client sees the end
        if self.policy.mode == "relay" and not self.policy.keep_open:
            raise NetworkError(why)
        if not self.policy.keep_open:
            self.status = 1

    # -- exec ----------------------------------------------------------------

    def _spawn(self, sock: socket.socket, addr) -> None:
        peer = peer_name(sock, addr)
        try:
            child = self._start_child(sock, _exec_env(sock, addr), peer)
        finally:
            sock.close()
        if child is not None:
            self.on_event(Event("connect", peer, f"pid {child.pid}"))

    def _spawn_bridged(self, conn: Channel, peer: str, addr) -> None:
        """exec through the engine (TLS, or a stream option): the child gets one end
        of a socketpair, and a Link joins the other end to the client."""
        ours, theirs = socket.socketpair()
        try:
            child = self._start_child(theirs, _exec_env(conn.sock, addr), peer)
        finally:
            theirs.close()
        if child is None:
            ours.close()
            self.engine.forget(conn.rfd)
            conn.close()
            return
        local = SocketChannel(ours)
        local.peer = f"pid {child.pid}"
        self._add(conn, peer, local, None, child=child.pid)

    def _start_child(self, stdio: socket.socket, env: dict[str, str],
                     peer: str) -> subprocess.Popen | None:
        """The client's process; None (and a line) if it cannot be started: that
        client is closed, the server goes on."""
        env = dict(os.environ, **env)
        argv = ["/bin/sh", "-c", self.policy.command[0]] if self.policy.shell else list(
            self.policy.command)
        # a signal while Popen runs would leave a child nobody knows of: hold TERM and
        # INT until it is in self.children (the child itself starts with them open)
        signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING)
        try:
            child = subprocess.Popen(argv, stdin=stdio, stdout=stdio, env=env, close_fds=True,
                                     preexec_fn=_unblock_ending)
            self.children.append(child)
        except OSError as exc:
            self.on_event(Event("failed", peer, f"cannot run {argv[0]}: "
                                f"{exc.strerror or exc}; client closed"))
            if not self.policy.keep_open:
                self.status = 1
            return None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _ENDING)
        self.next_reap = time.monotonic() + REAP_EVERY
        return child

    # -- accept back-off -------------------------------------------------------

    def _pause_accept(self, why: str) -> None:
        if self.accepting:
            self.engine.unwatch(self.listener.fileno())
            self.accepting = False
            self.on_event(Event("busy", fact=f"{why}; not accepting new clients until one leaves"))
        self.resume_accept_at = time.monotonic() + EMFILE_RETRY

    def _resume_accept(self) -> None:
        self.resume_accept_at = None
        if not self.accepting and (self.policy.keep_open or self.served == 0):
            self.engine.watch(self.listener.fileno(), select.POLLIN, lambda ev: self._accept())
            self.accepting = True

    def _stop_accepting(self) -> None:
        if self.accepting:
            self.engine.unwatch(self.listener.fileno())
            self.accepting = False
        self.engine.forget(self.listener.fileno())
        self.listener.close()


class FeedChannel(Channel):
    """The local end of a client's Link when it lives in memory: what the Link sends
    comes from `outgoing`; what it receives goes to sink(data) -> bytes taken (a
    Feed's send, which blocks while full, or a broadcast); the client's end of data
    ends `outgoing`, so its queue drains and it gets FIN."""

    can_splice = False
    local = peer = "hub"

    def __init__(self, outgoing: Feed, sink, sink_feed: Feed | None = None):
        self.rfd, self.wfd = outgoing, sink_feed or Feed()
        self.outgoing, self.sink = outgoing, sink

    def recv(self, size: int) -> bytes:
        return self.outgoing.recv(size)

    def send(self, data) -> int:
        return self.sink(data) if self.sink is not None else len(data)

    def shutdown_write(self) -> None:
        self.outgoing.end()

    def close(self) -> None:
        pass


class _Broadcast(Channel):
    """listen -k: stdin's destination, every client's Feed."""

    can_splice = False
    peer = "clients"

    def __init__(self, hub: Hub):
        self.hub = hub
        self.rfd = self.wfd = Feed()

    def send(self, data) -> int:
        self.hub._broadcast(bytes(data), None)
        return len(data)

    def shutdown_write(self) -> None:
        if self.hub.policy.relay.shutdown_on_eof:
            for client in self.hub.clients.values():
                if client.feed is not None:
                    client.feed.end()

    def close(self) -> None:
        pass


_ENDING = {signal.SIGTERM, signal.SIGINT}


def _unblock_ending() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _ENDING)


def _signal(child: subprocess.Popen, how: str) -> None:
    try:
        getattr(child, how)()
    except ProcessLookupError:
        pass


def _permitted(access: Access, addr) -> bool:
    """--allow/--deny are about IP peers; a Unix peer has no address to match."""
    return not isinstance(addr, tuple) or access.permits(addr[0])


def _exec_env(sock: socket.socket, addr) -> dict[str, str]:
    """What --exec's program learns about its connection (ncat's names where they fit)."""
    local = sock.getsockname()
    if sock.family != socket.AF_UNIX:
        return dict(NCAT_REMOTE_ADDR=str(addr[0]), NCAT_REMOTE_PORT=str(addr[1]),
                    NCAT_LOCAL_ADDR=str(local[0]), NCAT_LOCAL_PORT=str(local[1]), NCAT_PROTO="TCP")
    from pysock.net.ancillary import peer_credentials
    path = format_sockaddr(local)
    env = dict(NCAT_LOCAL_ADDR=path, PYSOCK_UNIX_PATH=path, NCAT_PROTO="UNIX")
    creds = peer_credentials(sock)
    if creds is not None:
        env.update(PYSOCK_PEER_PID=str(creds.pid), PYSOCK_PEER_UID=str(creds.uid),
                   PYSOCK_PEER_GID=str(creds.gid))
    return env


def serve(listener: socket.socket, policy: HubPolicy, on_event=lambda e: None, taps=(),
          wrap=SocketChannel) -> int:
    return Hub(listener, policy, on_event, taps=taps, wrap=wrap).serve()


def serve_one(listener: socket.socket, policy: HubPolicy, on_event=lambda e: None, taps=(),
              wrap=SocketChannel):
    """nc -l: the first permitted client relayed with stdio, its handshake bounded
    like every other; returns (Result, the client's Channel) or raises RelayError."""
    hub = Hub(listener, policy, on_event, taps=taps, wrap=wrap)
    hub.serve()
    link = hub.single
    if link is None:  # stopped before any client (cannot happen without an error)
        raise NetworkError("no client connected")
    return link.outcome(), link.remote


def accept_one(listener: socket.socket, access: Access, timeout: float | None = None,
               on_event=lambda e: None) -> socket.socket:
    """The first client the access lists permit (nc -l), within timeout."""
    from pysock.errors import NetworkError
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise NetworkError(f"no client connected within {timeout:g} s")
        listener.settimeout(remaining)
        try:
            sock, addr = listener.accept()
        except TimeoutError:
            continue
        except OSError as exc:
            raise os_error(exc, "accept") from None
        if _permitted(access, addr):
            sock.settimeout(None)
            return sock
        sock.close()
        on_event(Event("refused", format_sockaddr(addr), "not allowed",
                       advice="access_refused"))
