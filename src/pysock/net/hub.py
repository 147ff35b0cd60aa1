"""Many clients on one listener: keep-open relay, broker, chat, echo and exec.

    relay   stdin goes to every client; every client's data goes to stdout (ncat -k)
    broker  a client's data goes to every other client (ncat --broker)
    chat    broker, with each line prefixed '<user N> '
    echo    each client gets back what it sends
    exec    each client gets its own process, its stdin/stdout tied to the socket

A slow client never stalls the others: past HIGH_WATER bytes queued for it,
it is dropped and an event says so. Without keep_open the hub serves the
first accepted client and returns when it is gone."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pysock.net.access import Access
from pysock.net.address import format_sockaddr
from pysock.net.endpoints import fd_kind, os_error, peer_name

HIGH_WATER = 8 << 20  # bytes queued for one client before it is dropped
ECHO_PAUSE = 1 << 20  # echo: stop reading a client whose replies are not being taken
CHUNK = 1 << 16
EMFILE_RETRY = 1.0


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
class _Client:
    sock: socket.socket
    peer: str
    number: int
    queue: deque = field(default_factory=deque)
    queued: int = 0
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    sent: int = 0
    received: int = 0
    input_done: bool = False  # the client sent FIN
    fin_pending: bool = False  # send FIN once the queue is empty
    partial_line: bytes = b""  # chat: an unfinished line
    registered: bool = True

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
            self.sel.close()
        return self.status

    def _done(self) -> bool:
        if self.policy.keep_open:
            return False
        if self.served == 0:
            return False
        return not self.clients and not any(c.poll() is None for c in self.children)

    def _timeout(self) -> float | None:
        now = time.monotonic()
        marks = [t for t in (self.resume_accept_at, self.deadline) if t is not None]
        if self.policy.idle_timeout is not None and self.clients:
            marks.append(min(c.last_activity for c in self.clients.values())
                         + self.policy.idle_timeout)
        if self.children:
            marks.append(now + 0.2)  # reap children promptly
        return max(0.0, min(marks) - now) if marks else None

    def _dispatch(self, key, events: int) -> None:
        if key.data == "accept":
            self._accept()
        elif key.data == "stdin":
            self._read_stdin()
        else:
            client = key.data
            if events & selectors.EVENT_READ and client.sock.fileno() in self.clients:
                self._read_client(client)
            if events & selectors.EVENT_WRITE and client.sock.fileno() in self.clients:
                self._flush(client)

    def _timers(self) -> None:
        now = time.monotonic()
        if self.resume_accept_at is not None and now >= self.resume_accept_at:
            self._resume_accept()
        if self.deadline is not None and self.served == 0 and now >= self.deadline:
            from pysock.errors import NetworkError
            raise NetworkError(f"no client connected within {self.policy.accept_timeout:g} s")
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
        if self.policy.max_conns is not None and len(self.clients) >= self.policy.max_conns:
            sock.close()
            self.on_event(Event("refused", peer, f"--max-conns {self.policy.max_conns} reached"))
            return
        self.served += 1
        if not self.policy.keep_open:
            self._stop_accepting()
        if self.policy.mode == "exec":
            self._spawn(sock, addr)
            return
        self._add(sock, peer)

    def _add(self, sock: socket.socket, peer: str) -> None:
        sock.setblocking(False)
        self.numbers += 1
        client = _Client(sock, peer, self.numbers)
        self.clients[sock.fileno()] = client
        self.sel.register(sock, selectors.EVENT_READ, client)
        self.on_event(Event("connect", peer, f"client {client.number}"))
        if self.policy.mode == "chat":
            self._broadcast(f"<announce> user {client.number} has connected\n".encode(), client)
        if self.policy.mode == "relay" and not self.stdin_open and self.policy.shutdown_on_eof \
                and not self.policy.recv_only:
            client.fin_pending = True
            self._flush(client)

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
        env = dict(os.environ, **_exec_env(sock, addr))
        argv = ["/bin/sh", "-c", self.policy.command[0]] if self.policy.shell else list(
            self.policy.command)
        try:
            child = subprocess.Popen(argv, stdin=sock, stdout=sock, env=env, close_fds=True)
        except OSError as exc:
            sock.close()
            from pysock.errors import UsageError
            raise UsageError(f"cannot run {argv[0]}: {exc.strerror}") from None
        peer = peer_name(sock, addr)
        sock.close()
        self.children.append(child)
        self.on_event(Event("connect", peer, f"pid {child.pid}"))

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
            data = client.sock.recv(CHUNK)
        except BlockingIOError:
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
        if mode == "echo":
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
        if self.policy.mode == "echo":
            client.fin_pending = True
            self._flush(client)
        elif not client.queue:
            self._close(client, "client closed")

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
        if client.queued > HIGH_WATER:
            self._close(client, f"dropped: not reading ({client.queued >> 20} MiB queued)")
            return
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        while client.queue:
            head = client.queue[0]
            try:
                n = client.sock.send(head)
            except BlockingIOError:
                break
            except OSError as exc:
                self._close(client, str(os_error(exc, "send to", client.peer)))
                return
            client.sent += n
            client.queued -= n
            client.last_activity = time.monotonic()
            if n == len(head):
                client.queue.popleft()
            else:
                client.queue[0] = head[n:]
        if not client.queue and client.fin_pending:
            try:
                client.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            client.fin_pending = False
            if client.input_done:
                self._close(client, "both sides closed")
                return
        if client.input_done and not client.queue and self.policy.mode != "echo":
            self._close(client, "client closed")
            return
        self._watch(client)

    def _watch(self, client: _Client) -> None:
        events = self._events(client)
        if events and client.registered:
            self.sel.modify(client.sock, events, client)
        elif events:
            self.sel.register(client.sock, events, client)
            client.registered = True
        elif client.registered:
            self.sel.unregister(client.sock)
            client.registered = False

    def _events(self, client: _Client) -> int:
        events = 0
        if not client.input_done and not (self.policy.mode == "echo"
                                          and client.queued > ECHO_PAUSE):
            events |= selectors.EVENT_READ
        if client.queue:
            events |= selectors.EVENT_WRITE
        return events

    def _write_stdout(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.stdout, view)
            view = view[n:]

    def _close(self, client: _Client, why: str, quiet: bool = False) -> None:
        fd = client.sock.fileno()
        if fd in self.clients:
            del self.clients[fd]
            if client.registered:
                self.sel.unregister(client.sock)
        if not quiet:  # before closing, so whoever sees the close can read the report
            self.on_event(Event("leave", client.peer, why, client.sent, client.received,
                                time.monotonic() - client.started))
        client.sock.close()
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
