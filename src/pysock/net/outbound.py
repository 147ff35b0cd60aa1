"""forward's way from an accepted client to TO, one step at a time inside the
caller's event loop, so one slow TO never stalls the other clients:

    connect    non-blocking (TCP or Unix), the next resolved address on failure;
               through --proxy the SOCKS/HTTP handshake runs in a worker thread
               (net.proxy is blocking) and a pipe wakes the loop when it is done
    header     the PROXY protocol line or block (net.proxyproto), before anything else
    tls        with --tls, the client handshake, verified as connect --tls verifies

`fd` and `event` (select.POLLIN/POLLOUT) say what to wait for; step() returns the
ready Channel, or None while still waiting, or raises PysockError; `deadline` is
-w's bound on the whole of it."""

from __future__ import annotations

import errno
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from pysock.errors import NetworkError, PysockError
from pysock.net.address import HostPort, Resolved, UnixAddress, resolve
from pysock.net.endpoints import Channel, ClientSpec, SocketChannel, os_error
from pysock.net.pump import Blocked
from pysock.net.sockopt import SockOpt, apply_all
from pysock.net.unixsock import unix_error
from pysock.status import start_beside_main


@dataclass(frozen=True)
class Target:
    """Where each client is relayed, and how."""

    place: HostPort | UnixAddress
    family: int | None = None  # 4, 6 or None
    numeric: bool = False
    timeout: float | None = None  # -w: connect (+ proxy + TLS handshake)
    sockopts: tuple[SockOpt, ...] = field(default_factory=tuple)
    tls: object | None = None  # net.tls.ClientIdentity
    proxy: object | None = None  # net.proxy.ProxySpec
    proxy_protocol: int | None = None  # 1 or 2

    def __str__(self) -> str:
        if isinstance(self.place, UnixAddress):
            return str(self.place)
        host = self.place.host
        return f"[{host}]:{self.place.port}" if ":" in host else f"{host}:{self.place.port}"

    def addresses(self) -> list[Resolved]:
        """Resolved once, when forward starts (a name that does not resolve is exit 1
        then, not a failure per client later)."""
        if isinstance(self.place, UnixAddress) or self.proxy is not None:
            return []  # a proxy resolves the target itself
        return resolve(self.place.host, self.place.port, family=self.family,
                       numeric=self.numeric)


class Outbound:
    def __init__(self, target: Target, addresses: list[Resolved], client: socket.socket):
        self.target, self.client = target, client
        self.addresses = list(addresses)
        self.deadline = None if target.timeout is None else time.monotonic() + target.timeout
        self.sock: socket.socket | None = None
        self.channel: Channel | None = None
        self.fd, self.event = -1, select.POLLOUT
        self._worker: _ProxyWorker | None = None
        self._failure: OSError | None = None
        self.refused = False  # the last failure was TO refusing (nobody listening)
        self._state = "connect"
        self._start()

    # -- the steps -----------------------------------------------------------

    def step(self) -> Channel | None:
        try:
            if self._state == "connect" and not self._connected():
                return None
            if self._state == "header":
                self._send_header()
            if self._state == "tls":
                return self._handshake()
            return self._ready()
        except PysockError:
            self.close()
            raise

    def expired(self) -> PysockError:
        self.close()
        return NetworkError(f"connection to {self.target} timed out after "
                            f"{self.target.timeout:g} s", advice="forward_wait")

    def close(self) -> None:
        if self._worker is not None:
            self._worker.abandon()
            self._worker = None
        if self.channel is not None:
            self.channel.close()
        elif self.sock is not None:
            self.sock.close()
        self.sock = self.channel = None

    # -- connect -------------------------------------------------------------

    def _start(self) -> None:
        if self.target.proxy is not None:
            self._worker = _ProxyWorker(self.target)
            self.fd, self.event = self._worker.wake_fd, select.POLLIN
        elif isinstance(self.target.place, UnixAddress):
            self._begin(socket.AF_UNIX, self.target.place.sockaddr)
        else:
            self._next_address()

    def _next_address(self) -> None:
        addr = self.addresses.pop(0)
        self._begin(addr.family, addr.sockaddr, addr)

    def _begin(self, family: int, sockaddr, addr: Resolved | None = None) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.fd, self.event = self.sock.fileno(), select.POLLOUT
        try:
            if family != socket.AF_UNIX:
                apply_all(self.sock, self.target.sockopts)
            code = self.sock.connect_ex(sockaddr)
        except PysockError:
            self.sock.close()
            raise
        if code not in (0, errno.EINPROGRESS):
            self._failure = OSError(code, os.strerror(code))

    def _connected(self) -> bool:
        if self._worker is not None:
            return self._tunnel_done()
        if self._failure is None:
            if not _writable(self.sock):
                return False
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._failure = OSError(code, os.strerror(code))
        if self._failure is not None:
            return self._failed()
        self._state = "header" if self.target.proxy_protocol else "tls"
        return True

    def _failed(self) -> bool:
        exc, self._failure = self._failure, None
        self.sock.close()
        self.sock = None
        if self.addresses:
            self._next_address()
            return False
        self.refused = exc.errno in (errno.ECONNREFUSED, errno.ENOENT)
        if isinstance(self.target.place, UnixAddress):
            raise unix_error(exc, self.target.place)
        raise os_error(exc, "connect to", str(self.target))

    def _tunnel_done(self) -> bool:
        result = self._worker.result()
        if result is None:
            return False
        self._worker = None
        if isinstance(result, PysockError):
            raise result
        self.sock = result
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self._state = "header" if self.target.proxy_protocol else "tls"
        return True

    # -- header and TLS ------------------------------------------------------

    def _send_header(self) -> None:
        from pysock.net.proxyproto import header
        data = header(self.target.proxy_protocol, self.client)
        try:
            sent = self.sock.send(data)  # a fresh socket's buffer takes it whole
        except OSError as exc:
            raise os_error(exc, "send to", str(self.target)) from None
        if sent != len(data):
            raise NetworkError(f"{self.target} took only {sent} bytes of the PROXY header")
        self._state = "tls"

    def _handshake(self) -> Channel | None:
        if self.target.tls is None:
            return self._ready()
        if self.channel is None:
            from pysock.net.tls import TLSChannel
            name = self.target.tls.options.server_name or getattr(self.target.place, "host", None)
            self.channel = TLSChannel(self.sock, self.target.tls.context, server_side=False,
                                      server_name=name)
            self.channel.peer = str(self.target)
        try:
            self.channel.handshake_step()
        except Blocked as blocked:
            self.fd, self.event = blocked.fd, blocked.event
            return None
        return self._ready()

    def _ready(self) -> Channel:
        channel = self.channel or SocketChannel(self.sock)
        channel.peer = str(self.target)
        self.sock = self.channel = None
        return channel


def _writable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


class _ProxyWorker:
    """net.proxy.open_tunnel in a thread; wake_fd turns readable when it is done.
    The pipe's write end is the thread's until it has written (or been abandoned)."""

    def __init__(self, target: Target):
        self.target = target
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.wake_fd = self._r
        self._result = None
        self._lock = threading.Lock()
        self._abandoned = False
        start_beside_main(threading.Thread(target=self._run, daemon=True).start)

    def _run(self) -> None:
        result = self._tunnel()
        with self._lock:
            if self._abandoned:
                if isinstance(result, socket.socket):
                    result.close()
                os.close(self._w)
                return
            self._result = result
            os.write(self._w, b"!")

    def _tunnel(self):
        from pysock.net.proxy import open_tunnel
        place = self.target.place
        spec = ClientSpec(place.host, place.port, family=self.target.family,
                          numeric=self.target.numeric, timeout=self.target.timeout,
                          sockopts=self.target.sockopts)
        try:
            return open_tunnel(self.target.proxy, spec).sock
        except PysockError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - the loop must hear of any failure
            return NetworkError(f"proxy: {exc}")

    def result(self):
        """The socket or the PysockError once the thread is done, else None."""
        with self._lock:
            result, self._result = self._result, None
        if result is not None:
            os.close(self._r)
            os.close(self._w)
        return result

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            done, result = self._result is not None, self._result
        os.close(self._r)
        if done:
            if isinstance(result, socket.socket):
                result.close()
            os.close(self._w)
