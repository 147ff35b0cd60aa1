"""Every endpoint, stdio included, opens to a Channel; errno -> PysockError.

Commands never call socket() themselves: they ask for a connected client,
a listening socket or stdio here, so socket options, dual-stack binding and
the wording of errors are the same everywhere."""

from __future__ import annotations

import errno
import os
import resource  # imported up front: under EMFILE a lazy import of it fails
import socket
import stat
from dataclasses import dataclass, field

from pysock.errors import NetworkError, PysockError, UsageError
from pysock.net.address import Resolved, format_sockaddr, resolve
from pysock.net.route import is_local
from pysock.net.sockopt import SockOpt, apply_all

# ---- channels ---------------------------------------------------------------


class Channel:
    """One end of a relay: a readable fd, a writable fd, and how to end writing."""

    is_datagram = False
    can_splice = True
    copy_chunk: int | None = None  # None: the copy loop's default
    rfd: int
    wfd: int
    local = ""
    peer = ""

    def recv(self, size: int) -> bytes:
        raise NotImplementedError

    def send(self, data) -> int:
        raise NotImplementedError

    def shutdown_write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # A channel that keeps bytes in user space after send() returned (TLS records the
    # kernel has not taken yet) says how many, and pushes them on flush(), raising
    # pump.Blocked while the kernel is still full. The relay and the hub call flush()
    # whenever the fd is writable and pending_output is not 0.
    pending_output = 0

    def flush(self) -> None:
        pass

    def refused_text(self) -> str:
        return f"connection refused by {self.peer or 'the peer'}"


class SocketChannel(Channel):
    _sink: bytearray | None = None

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.rfd = self.wfd = sock.fileno()
        self.is_datagram = sock.type != socket.SOCK_STREAM
        # splice into AF_UNIX streams returns EAGAIN while poll says writable and can
        # stall; measured, a copy loop is the safe choice there
        self.can_splice = sock.family in (socket.AF_INET, socket.AF_INET6) and not self.is_datagram
        # the copy loop's buffer: Unix streams take 1 MiB sends whole (2 GiB measured at
        # 1.6-2.2 GB/s, against 0.9-1.5 with the 256 KiB that suits TCP)
        self.copy_chunk = (1 << 20) if sock.family == socket.AF_UNIX else None
        self.local = _name(sock.getsockname)
        self.peer = _name(sock.getpeername)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def recv_into(self, buffer) -> int:
        return self.sock.recv_into(buffer)

    def send(self, data) -> int:
        return self.sock.send(data)

    def discard(self, size: int) -> int:
        """Drop up to size bytes unread (TCP's MSG_TRUNC: nothing is copied)."""
        if self._sink is None:
            self._sink = bytearray(size)  # handed to the kernel, never written
        return self.sock.recv_into(self._sink, size, socket.MSG_TRUNC)

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise

    def close(self) -> None:
        self.sock.close()


class StdioChannel(Channel):
    """stdin and stdout as one endpoint; ending the write side closes stdout."""

    local = peer = "stdio"

    def __init__(self, rfd: int = 0, wfd: int = 1):
        self.rfd, self.wfd = rfd, wfd

    def recv(self, size: int) -> bytes:
        return os.read(self.rfd, size)

    def send(self, data) -> int:
        return os.write(self.wfd, data)

    def shutdown_write(self) -> None:
        if self.wfd >= 0:
            os.close(self.wfd)
            self.wfd = -1

    def close(self) -> None:
        self.shutdown_write()


def _name(getter) -> str:
    try:
        return format_sockaddr(getter())
    except OSError:
        return ""


def fd_kind(fd: int) -> str:
    """'tty', 'pipe', 'file', 'socket', 'null' (/dev/null) or 'other': decides whether
    splice/sendfile apply."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "closed"
    if os.isatty(fd):
        return "tty"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) and os.fstat(fd).st_rdev == os.makedev(1, 3):
        return "null"
    return "other"


# ---- opening ----------------------------------------------------------------


@dataclass(frozen=True)
class ClientSpec:
    """Where and how to connect: the same spec for TCP and UDP clients."""

    host: str
    port: int
    family: int | None = None  # None, 4 or 6
    numeric: bool = False
    timeout: float | None = None  # per attempt
    source: str | None = None
    source_port: int | None = None
    sockopts: tuple[SockOpt, ...] = field(default_factory=tuple)


_FILTERED = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM, errno.ETIMEDOUT)


def probe(spec: ClientSpec) -> tuple[str, float]:
    """-z: does the port accept? ('open'|'closed'|'filtered', seconds taken)."""
    import time
    addr = resolve(spec.host, spec.port, family=spec.family, numeric=spec.numeric)[0]
    sock = new_socket(addr.family, socket.SOCK_STREAM)
    try:
        apply_all(sock, spec.sockopts)
        _bind_source(sock, addr.family, spec)
        sock.settimeout(spec.timeout)
        start = time.monotonic()
        try:
            sock.connect(addr.sockaddr)
        except TimeoutError:
            return "filtered", time.monotonic() - start
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                return "closed", time.monotonic() - start
            if exc.errno in _FILTERED:
                return "filtered", time.monotonic() - start
            raise os_error(exc, "connect to", str(addr)) from None
        took = time.monotonic() - start
        # a connect to a local ephemeral port can meet itself (simultaneous open)
        return ("closed" if sock.getsockname() == sock.getpeername() else "open"), took
    finally:
        sock.close()


def connect(spec: ClientSpec, socktype: int = socket.SOCK_STREAM) -> socket.socket:
    """Try each resolved address in turn; return the first connected socket."""
    failures: list[tuple[Resolved, OSError]] = []
    for addr in resolve(spec.host, spec.port, family=spec.family, numeric=spec.numeric,
                        socktype=socktype):
        sock = new_socket(addr.family, socktype)
        try:
            apply_all(sock, spec.sockopts)
            _bind_source(sock, addr.family, spec)
            sock.settimeout(spec.timeout)
            sock.connect(addr.sockaddr)
            sock.settimeout(None)
            return sock
        except OSError as exc:
            sock.close()
            failures.append((addr, exc))
        except BaseException:
            sock.close()
            raise
    raise _connect_failure(spec, failures, socktype)


def new_socket(family: int, socktype: int, proto: int = 0) -> socket.socket:
    """socket(), its failure (EMFILE, EAFNOSUPPORT) as one readable line."""
    try:
        return socket.socket(family, socktype, proto)
    except OSError as exc:
        raise os_error(exc, "open a socket") from None


def _bind_source(sock: socket.socket, family: int, spec: ClientSpec) -> None:
    if spec.source is None and spec.source_port is None:
        return
    source = spec.source or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    matches = [r for r in resolve(source, spec.source_port or 0, numeric=spec.numeric,
                                  socktype=sock.type, passive=True) if r.family == family]
    if not matches:
        raise UsageError(f"source address '{source}' is not of the same family as the target")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(matches[0].sockaddr)
    except OSError as exc:
        raise os_error(exc, "bind", format_sockaddr(matches[0].sockaddr),
                       port=spec.source_port) from None


def _connect_failure(spec: ClientSpec, failures: list[tuple[Resolved, OSError]],
                     socktype: int) -> PysockError:
    first_addr, first = failures[0]
    if isinstance(first, PysockError):
        return first
    same = all(exc.errno == first.errno and type(exc) is type(first) for _, exc in failures)
    where = (str(first_addr) if len(failures) == 1 or not same
             else f"{spec.host} port {spec.port} ({', '.join(str(a) for a, _ in failures)})")
    if isinstance(first, socket.timeout) or first.errno == errno.ETIMEDOUT:
        waited = f" after {spec.timeout:g}s" if spec.timeout else ""
        return NetworkError(f"connection to {where} timed out{waited}")
    proto = "udp" if socktype == socket.SOCK_DGRAM else "tcp"
    error = os_error(first, "connect to", where, proto=proto)
    if first.errno == errno.EACCES and proto == "udp":
        error.advice = "broadcast_needs_flag"
    if first.errno == errno.ECONNREFUSED and proto == "tcp":
        hint = _refused_hint([a for a, _ in failures], spec.port)
        if hint:
            error.message += f" ({hint})"
    return error


def _refused_hint(tried: list[Resolved], port: int) -> str | None:
    """On a refused local connect, say where something does listen on that port:
    the `nc -l` binds-IPv4-only trap, or a server bound to 127.0.0.1 only."""
    tried = [a for a in tried if is_local(a.host)]
    if not tried:
        return None
    from pysock.inventory.procnet import listener_addresses
    where = sorted(set(listener_addresses(port)))
    if not where:
        return None
    shown = ", ".join(f"[{a}]" if ":" in a else a for a in where)
    families = {6 if ":" in a else 4 for a in where}
    wanted = {6 if a.family == socket.AF_INET6 else 4 for a in tried}
    if families.isdisjoint(wanted):
        only = families.pop() if len(families) == 1 else None
        if only:
            return (f"something listens on port {port} over IPv{only} only, at {shown}: "
                    f"connect with -{only} or to an IPv{only} address")
    return f"something listens on port {port}, but only at {shown}"


def listen(host: str | None, port: int, *, family: int | None = None, numeric: bool = False,
           backlog: int = 128, sockopts: tuple[SockOpt, ...] = (),
           socktype: int = socket.SOCK_STREAM) -> socket.socket:
    """A bound (and for streams, listening) socket. With no address and no -4/-6:
    dual-stack on '::' with IPV6_V6ONLY off, falling back to 0.0.0.0."""
    if host is None and family is None and socket.has_ipv6:
        try:
            return _bind(Resolved(socket.AF_INET6, ("::", port, 0, 0)), backlog, sockopts,
                         socktype, dual_stack=True)
        except PysockError as exc:
            if not isinstance(exc.__cause__, OSError) or exc.__cause__.errno not in (
                    errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                raise
    if host is None:
        host = "::" if family == 6 else "0.0.0.0"
    addrs = resolve(host, port, family=family, numeric=numeric, socktype=socktype, passive=True)
    return _bind(addrs[0], backlog, sockopts, socktype)


def _bind(addr: Resolved, backlog: int, sockopts, socktype: int,
          dual_stack: bool = False) -> socket.socket:
    sock = new_socket(addr.family, socktype)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if addr.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
        apply_all(sock, sockopts)
        sock.bind(addr.sockaddr)
        if socktype == socket.SOCK_STREAM:
            sock.listen(backlog)
        return sock
    except OSError as exc:
        sock.close()
        proto = "tcp" if socktype == socket.SOCK_STREAM else "udp"
        raise os_error(exc, "listen on", str(addr), port=addr.port, proto=proto) from exc
    except BaseException:
        sock.close()
        raise


def peer_name(sock: socket.socket, addr) -> str:
    """How reports name a peer: its address; for a Unix client, whose address is
    usually empty, the process on the other end (SO_PEERCRED)."""
    if sock.family == socket.AF_UNIX:
        from pysock.net.ancillary import peer_credentials
        creds = peer_credentials(sock)
        if creds is not None:
            return creds.describe()
    return format_sockaddr(addr)


# ---- errno translation ------------------------------------------------------


def os_error(exc: OSError, action: str, target: str = "", *, port: int | None = None,
             proto: str = "tcp") -> PysockError:
    """One readable line for an OSError raised while doing `action` to `target`."""
    code = exc.errno
    where = f" {target}" if target else ""
    if code == errno.ECONNREFUSED:
        if proto == "udp":
            return NetworkError(f"no one is listening on {target}/udp")
        return NetworkError(f"connection refused by {target}")
    if code in _PLAIN:
        return NetworkError(_PLAIN[code].format(target=target, where=where))
    if code == errno.EADDRINUSE:
        return NetworkError(_in_use(target, port, proto))
    if code == errno.EACCES and port is not None and 0 < port < 1024 and action != "connect to":
        return NetworkError(
            f"permission denied to {action}{where}: ports below 1024 need root or "
            f"CAP_NET_BIND_SERVICE (or lower net.ipv4.ip_unprivileged_port_start)")
    if code == errno.EADDRNOTAVAIL:
        return NetworkError(f"cannot {action}{where}: no interface on this machine has that address")
    if code in (errno.EMFILE, errno.ENFILE):
        return NetworkError(_too_many_files(code))
    reason = exc.strerror or str(exc)
    return NetworkError(f"cannot {action}{where}: {reason[0].lower() + reason[1:]}")


# errno -> its line, the same whatever was being done
_PLAIN = {
    errno.ECONNRESET: "connection reset by {target}",
    errno.EPIPE: "connection closed by {target} while sending",
    errno.ETIMEDOUT: "connection to {target} timed out",
    errno.EHOSTUNREACH: "no route to host{where}",
    errno.ENETUNREACH: "network is unreachable for{where}",
}


def _in_use(target: str, port: int | None, proto: str) -> str:
    text = f"address {target} is already in use"
    if port:
        from pysock.inventory.owners import port_holder
        holder = port_holder(port, proto)
        if holder:
            text += f" by {holder}"
    return text


def _too_many_files(code: int) -> str:
    if code == errno.ENFILE:
        return "the system-wide limit of open files is reached (fs.file-max)"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"too many open files (limit {soft}; raise it with 'ulimit -n', at most {hard})"
