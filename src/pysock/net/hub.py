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
step, bounded by HANDSHAKE_TIMEOUT, so a client that stalls mid-handshake stalls
no one else; exec children then talk plaintext over a socketpair that the hub
joins to the TLS client like two clients of a broker."""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pysock.net.access import Access
from pysock.net.address import format_sockaddr
from pysock.net.endpoints import Channel, SocketChannel, fd_kind, os_error, peer_name
from pysock.net.pump import Blocked

HIGH_WATER = 8 << 20  # past this, a client that takes nothing for STALL seconds is dropped
HARD_CAP = 64 << 20  # past this, a client is dropped however it is doing
STALL = 1.0
ECHO_PAUSE = 1 << 20  # echo: stop reading a client whose replies are not being taken
CHUNK = 1 << 16
EMFILE_RETRY = 1.0
HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class HubPolicy:
    mode: str = "relay"  # relay | broker | chat | echo | exec
    keep_open: bool = False
    max_conns: int | None = None
    access: Access = Access()
    idle_timeout: float | None = None
    command: tuple[str, ...] = ()  # exec: argv (shell=True runs command[0] with /bin/sh)
    shell: bool = False
    shutdown_on_eof: bool = True
    recv_only: bool = False  # never read stdin
    send_only: bool = False  # never write stdout
    accept_timeout: float | None = None
    tls: object | None = None  # a net.tls.ServerIdentity: every client speaks TLS


@dataclass(frozen=True)
class Event:
    """Something a -v user wants to know: connect, leave, refuse, drop, busy."""

    kind: str
    peer: str = ""
    detail: str = ""
    sent: int = 0
    received: int = 0
    seconds: float = 0.0


@dataclass(eq=False)
class _Handshake:
    conn: Channel  # a net.tls.TLSChannel, handshake under way
    peer: str
    addr: tuple
    deadline: float


@dataclass(eq=False)
class _Client:
    conn: Channel
    peer: str
    number: int
    queue: deque = field(default_factory=deque)
    queued: int = 0
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    sent: int = 0
    received: int = 0
    last_sent: float = field(default_factory=time.monotonic)
    input_done: bool = False  # the client sent FIN
    fin_pending: bool = False  # send FIN once the queue is empty
    partial_line: bytes = b""  # chat: an unfinished line
    registered: bool = True
    output_done: bool = False  # we sent FIN (or close_notify)
    bridged: bool = False  # exec over TLS: one of the two ends the hub joins
    child_end: bool = False  # ... the one whose peer is the child process
    partner: _Client | None = None  # ... and the other end
    close_after_fin: bool = False  # close once our FIN is out, whether or not input ended

    @property
    def fd(self) -> int:
        return self.conn.rfd

    def push(self, data: bytes) -> None:
        if data:
            self.queue.append(memoryview(data))
            self.queued += len(data)


class Hub:
    def __init__(self, listener: socket.socket, policy: HubPolicy,
                 on_event: Callable[[Event], None] = lambda e: None, stdin: int = 0,
                 stdout: int = 1):
        self.listener, self.policy, self.on_event = listener, policy, on_event
        self.stdin, self.stdout = stdin, stdout
        self.sel = selectors.DefaultSelector()
        self.clients: dict[int, _Client] = {}
        self.handshakes: dict[int, _Handshake] = {}
        self.children: list[subprocess.Popen] = []
        self.served = 0
        self.numbers = 0
        self.accepting = True
        self.resume_accept_at: float | None = None
        self.stdin_open = policy.mode == "relay" and not policy.recv_only
        self.status = 0
        self.deadline = (time.monotonic() + policy.accept_timeout
                         if policy.accept_timeout else None)

    # -- the loop ----------------------------------------------------------

    def serve(self) -> int:
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        if self.stdin_open:
            kind = fd_kind(self.stdin)
            if kind in ("pipe", "tty", "socket"):
                self.sel.register(self.stdin, selectors.EVENT_READ, "stdin")
            else:  # epoll cannot watch files or /dev/null: there is no input to broadcast
                self.stdin_open = False
                if kind == "file":
                    self.on_event(Event("warning", detail="stdin is a regular file; with -k it "
                                        "is not sent to clients (pipe it in instead)"))
        try:
            while not self._done():
                for key, events in self.sel.select(self._timeout()):
                    self._dispatch(key, events)
                self._timers()
        finally:
            for client in list(self.clients.values()):
                self._close(client, "server exiting", quiet=True)
            for shake in self.handshakes.values():
                shake.conn.close()
            self.sel.close()
        return self.status

    def _done(self) -> bool:
        if self.policy.keep_open:
            return False
        if self.served == 0:
            return False
        return not self.clients and not self.handshakes and not any(
            c.poll() is None for c in self.children)

    def _timeout(self) -> float | None:
        now = time.monotonic()
        marks = [t for t in (self.resume_accept_at, self.deadline) if t is not None]
        marks += [h.deadline for h in self.handshakes.values()]
        if self.policy.idle_timeout is not None and self.clients:
            marks.append(min(c.last_activity for c in self.clients.values())
                         + self.policy.idle_timeout)
        if self.children or any(c.queued > HIGH_WATER for c in self.clients.values()):
            marks.append(now + 0.2)  # reap children, notice stalled clients
        return max(0.0, min(marks) - now) if marks else None

    def _dispatch(self, key, events: int) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "stdin":
            self._read_stdin()
        elif isinstance(key.data, _Handshake):
            self._step_handshake(key.data)
        else:
            client = key.data
            if events & selectors.EVENT_READ and self.clients.get(client.fd) is client:
                self._read_client(client)
            if events & selectors.EVENT_WRITE and self.clients.get(client.fd) is client:
                self._flush(client)

    def _timers(self) -> None:
        now = time.monotonic()
        if self.resume_accept_at is not None and now >= self.resume_accept_at:
            self._resume_accept()
        if self.deadline is not None and self.served == 0 and now >= self.deadline:
            from pysock.errors import NetworkError
            raise NetworkError(f"no client connected within {self.policy.accept_timeout:g} s")
        for client in list(self.clients.values()):
            if self._stalled(client, now):
                self._close(client, f"dropped: not reading ({client.queued >> 20} MiB queued)")
        for shake in list(self.handshakes.values()):
            if now >= shake.deadline:
                self._handshake_failed(shake, f"TLS handshake not done within "
                                              f"{HANDSHAKE_TIMEOUT:g} s")
        if self.policy.idle_timeout is not None:
            for client in list(self.clients.values()):
                if now - client.last_activity >= self.policy.idle_timeout:
                    self._close(client, f"idle for {self.policy.idle_timeout:g} s")
        for child in list(self.children):
            code = child.poll()
            if code is not None:
                self.children.remove(child)
                if code != 0:
                    self.status = 1
                self.on_event(Event("exited", detail=f"pid {child.pid} exited with {code}"))

    # -- accepting ---------------------------------------------------------

    def _accept(self) -> None:
        try:
            sock, addr = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._pause_accept(str(os_error(exc, "accept")))
                return
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                return
            raise
        peer = peer_name(sock, addr)
        if not _permitted(self.policy.access, addr):
            sock.close()
            self.on_event(Event("refused", peer, "not allowed by --allow/--deny"))
            return
        if self.policy.max_conns is not None and \
                len(self.clients) + len(self.handshakes) >= self.policy.max_conns:
            sock.close()
            self.on_event(Event("refused", peer, f"--max-conns {self.policy.max_conns} reached"))
            return
        self.served += 1
        if not self.policy.keep_open:
            self._stop_accepting()
        if self.policy.tls is not None:
            self._start_handshake(sock, addr, peer)
        elif self.policy.mode == "exec":
            self._spawn(sock, addr)
        else:
            self._add(SocketChannel(sock), peer)

    def _add(self, conn: Channel, peer: str, quiet: bool = False) -> _Client:
        conn.sock.setblocking(False)
        self.numbers += 1
        client = _Client(conn, peer, self.numbers)
        self.clients[client.fd] = client
        self.sel.register(client.fd, selectors.EVENT_READ, client)
        if quiet:
            return client
        self.on_event(Event("connect", peer, f"client {client.number}"))
        if self.policy.mode == "chat":
            self._broadcast(f"<announce> user {client.number} has connected\n".encode(), client)
        if self.policy.mode == "relay" and not self.stdin_open and self.policy.shutdown_on_eof \
                and not self.policy.recv_only:
            client.fin_pending = True
            self._flush(client)
        return client

    # -- TLS ---------------------------------------------------------------

    def _start_handshake(self, sock: socket.socket, addr, peer: str) -> None:
        from pysock.net.tls import TLSChannel
        sock.setblocking(False)
        conn = TLSChannel(sock, self.policy.tls.context, server_side=True)
        conn.peer = peer
        shake = _Handshake(conn, peer, addr, time.monotonic() + HANDSHAKE_TIMEOUT)
        self.handshakes[conn.rfd] = shake
        self.sel.register(conn.rfd, selectors.EVENT_READ, shake)

    def _step_handshake(self, shake: _Handshake) -> None:
        from pysock.errors import PysockError
        try:
            shake.conn.handshake_step()
        except Blocked as blocked:
            events = selectors.EVENT_WRITE if blocked.event & select.POLLOUT else \
                selectors.EVENT_READ
            self.sel.modify(shake.conn.rfd, events, shake)
            return
        except PysockError as exc:
            self._handshake_failed(shake, exc.message)
            return
        del self.handshakes[shake.conn.rfd]
        self.sel.unregister(shake.conn.rfd)
        self.on_event(Event("secured", shake.peer, shake.conn.summary()))
        if self.policy.mode == "exec":
            self._spawn_bridged(shake)
        else:
            client = self._add(shake.conn, shake.peer)
            if client.conn.pending_output:
                self._watch(client)
            # data sent right behind the handshake may sit in the TLS engine already,
            # where no readiness event will ever point at it
            if self.clients.get(client.fd) is client and not client.input_done:
                self._read_client(client)

    def _handshake_failed(self, shake: _Handshake, why: str) -> None:
        del self.handshakes[shake.conn.rfd]
        self.sel.unregister(shake.conn.rfd)
        shake.conn.close()
        self.on_event(Event("refused", shake.peer, why))
        if not self.policy.keep_open:
            self.status = 1

    def _spawn_bridged(self, shake: _Handshake) -> None:
        """exec over TLS: the child gets one end of a socketpair; the hub moves bytes
        between the other end and the TLS client, like any two clients."""
        ours, theirs = socket.socketpair()
        try:
            child = self._start_child(theirs, _exec_env(shake.conn.sock, shake.addr))
        except BaseException:
            ours.close()
            shake.conn.close()
            raise
        finally:
            theirs.close()
        client = self._add(shake.conn, shake.peer, quiet=True)
        pipe = self._add(SocketChannel(ours), f"pid {child.pid}", quiet=True)
        client.partner, pipe.partner = pipe, client
        client.bridged = pipe.bridged = pipe.child_end = True
        self.on_event(Event("connect", shake.peer, f"pid {child.pid}"))
        self._read_client(client)  # what came with the handshake (see _step_handshake)

    def _pause_accept(self, why: str) -> None:
        if self.accepting:
            self.sel.unregister(self.listener)
            self.accepting = False
            self.on_event(Event("busy", detail=f"{why}; not accepting new clients until one leaves"))
        self.resume_accept_at = time.monotonic() + EMFILE_RETRY

    def _resume_accept(self) -> None:
        self.resume_accept_at = None
        if not self.accepting and (self.policy.keep_open or self.served == 0):
            self.sel.register(self.listener, selectors.EVENT_READ, "accept")
            self.accepting = True

    def _stop_accepting(self) -> None:
        if self.accepting:
            self.sel.unregister(self.listener)
            self.accepting = False
        self.listener.close()

    def _spawn(self, sock: socket.socket, addr) -> None:
        try:
            child = self._start_child(sock, _exec_env(sock, addr))
            peer = peer_name(sock, addr)
        finally:
            sock.close()
        self.on_event(Event("connect", peer, f"pid {child.pid}"))

    def _start_child(self, stdio: socket.socket, env: dict[str, str]) -> subprocess.Popen:
        env = dict(os.environ, **env)
        argv = ["/bin/sh", "-c", self.policy.command[0]] if self.policy.shell else list(
            self.policy.command)
        try:
            child = subprocess.Popen(argv, stdin=stdio, stdout=stdio, env=env, close_fds=True)
        except OSError as exc:
            from pysock.errors import UsageError
            raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
        self.children.append(child)
        return child

    # -- data --------------------------------------------------------------

    def _read_stdin(self) -> None:
        data = os.read(self.stdin, CHUNK)
        if not data:
            self.stdin_open = False
            self.sel.unregister(self.stdin)
            if self.policy.shutdown_on_eof:
                for client in list(self.clients.values()):
                    client.fin_pending = True
                    self._flush(client)
            return
        for client in list(self.clients.values()):
            self._queue(client, data)

    def _read_client(self, client: _Client) -> None:
        try:
            data = client.conn.recv(CHUNK)
        except (BlockingIOError, Blocked):
            return
        except OSError as exc:
            self._close(client, str(os_error(exc, "read from", client.peer)))
            return
        if not data:
            self._client_eof(client)
            return
        client.received += len(data)
        client.last_activity = time.monotonic()
        mode = self.policy.mode
        if client.bridged:
            if client.partner is not None:  # else the other end is gone: nowhere to go
                self._queue(client.partner, data)
        elif mode == "echo":
            self._queue(client, data)
        elif mode == "broker":
            self._broadcast(data, client)
        elif mode == "chat":
            self._chat(client, data)
        elif not self.policy.send_only:
            self._write_stdout(data)

    def _client_eof(self, client: _Client) -> None:
        client.input_done = True
        self._watch(client)
        if client.bridged:
            self._bridge_eof(client)
        else:  # answer its FIN with ours (and TLS close_notify) once its queue is out
            client.fin_pending = True
            self._flush(client)

    def _bridge_eof(self, client: _Client) -> None:
        """One end of an exec-over-TLS bridge ended: pass the FIN on. The child ending
        ends the TLS client too, as the child's exit closes the socket in plain exec."""
        partner = client.partner
        if partner is not None:
            partner.fin_pending = True
            partner.close_after_fin = client.child_end
            self._flush(partner)
        if self.clients.get(client.fd) is client and client.output_done:
            self._close(client, "both sides closed")

    def _chat(self, client: _Client, data: bytes) -> None:
        lines = (client.partial_line + data).split(b"\n")
        client.partial_line = lines.pop()
        if lines:
            prefix = f"<user {client.number}> ".encode()
            self._broadcast(b"".join(prefix + line + b"\n" for line in lines), client)

    def _broadcast(self, data: bytes, sender: _Client) -> None:
        for other in list(self.clients.values()):
            if other is not sender:
                self._queue(other, data)

    def _queue(self, client: _Client, data: bytes) -> None:
        if client.fin_pending and not client.queue:
            return
        client.push(data)
        self._flush(client)
        if self.clients.get(client.fd) is client and self._stalled(client, time.monotonic()):
            self._close(client, f"dropped: not reading ({client.queued >> 20} MiB queued)")

    def _stalled(self, client: _Client, now: float) -> bool:
        return client.queued > HARD_CAP or (client.queued > HIGH_WATER
                                            and now - client.last_sent > STALL)

    def _flush(self, client: _Client) -> None:
        if not self._flush_held(client):
            return
        while client.queue:
            head = client.queue[0]
            try:
                n = client.conn.send(head)
            except (BlockingIOError, Blocked):
                break
            except OSError as exc:
                self._close(client, str(os_error(exc, "send to", client.peer)))
                return
            client.sent += n
            client.queued -= n
            client.last_sent = time.monotonic()
            client.last_activity = time.monotonic()
            if n == len(head):
                client.queue.popleft()
            else:
                client.queue[0] = head[n:]
        if not client.queue and client.fin_pending:
            try:
                client.conn.shutdown_write()
            except OSError:
                pass
            client.fin_pending = False
            client.output_done = True
        if client.output_done and not client.queue and client.conn.pending_output == 0 \
                and (client.input_done or client.close_after_fin):
            self._close(client, "both sides closed")
            return
        if client.input_done and not client.queue and self.policy.mode != "echo" \
                and not client.bridged:
            self._close(client, "client closed")
            return
        self._watch(client)

    def _flush_held(self, client: _Client) -> bool:
        """Output a channel holds in user space (TLS records) goes first; False if the
        client is gone."""
        if client.conn.pending_output:
            try:
                client.conn.flush()
            except Blocked:
                pass
            except OSError as exc:
                self._close(client, str(os_error(exc, "send to", client.peer)))
                return False
        return True

    def _watch(self, client: _Client) -> None:
        events = self._events(client)
        if events and client.registered:
            self.sel.modify(client.fd, events, client)
        elif events:
            self.sel.register(client.fd, events, client)
            client.registered = True
        elif client.registered:
            self.sel.unregister(client.fd)
            client.registered = False

    def _events(self, client: _Client) -> int:
        events = 0
        if not client.input_done and not (self.policy.mode == "echo"
                                          and client.queued > ECHO_PAUSE):
            events |= selectors.EVENT_READ
        if client.queue or client.conn.pending_output:
            events |= selectors.EVENT_WRITE
        return events

    def _write_stdout(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.stdout, view)
            view = view[n:]

    def _close(self, client: _Client, why: str, quiet: bool = False) -> None:
        fd = client.fd
        if self.clients.get(fd) is client:
            del self.clients[fd]
            if client.registered:
                self.sel.unregister(fd)
        if not quiet and not client.child_end:  # before closing, so the report comes first
            self.on_event(Event("leave", client.peer, why, client.sent, client.received,
                                time.monotonic() - client.started))
        client.conn.close()
        partner, client.partner = client.partner, None
        if partner is not None and self.clients.get(partner.fd) is partner:
            partner.partner = None  # it gets what is queued for it, then FIN, then goes
            partner.fin_pending = partner.close_after_fin = True
            self._flush(partner)
        if self.policy.mode == "chat":
            self._broadcast(f"<announce> user {client.number} has left\n".encode(), client)
        if self.resume_accept_at is not None:
            self._resume_accept()


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


def serve(listener: socket.socket, policy: HubPolicy, on_event=lambda e: None) -> int:
    return Hub(listener, policy, on_event).serve()


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
        on_event(Event("refused", format_sockaddr(addr), "not allowed by --allow/--deny"))
