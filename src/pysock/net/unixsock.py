"""Unix domain sockets: listening on a path without surprises (a stale file is
replaced, a live server's is not, anything else is left alone; permissions set at
creation; the file removed when we stop), abstract names, and channels that pass
descriptors (SCM_RIGHTS) and credentials (SCM_CREDENTIALS) along with the data."""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import stat
from dataclasses import dataclass

from pysock.errors import NetworkError, OptionError, PysockError
from pysock.net import ancillary
from pysock.net.address import UnixAddress
from pysock.net.endpoints import SocketChannel, new_socket, os_error

SOCKTYPES = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM,
             "seqpacket": socket.SOCK_SEQPACKET}
TYPE_NAMES = {v: k for k, v in SOCKTYPES.items()}


# ---- connecting, and what went wrong in words ------------------------------------

def connect_unix(addr: UnixAddress, socktype: int = socket.SOCK_STREAM,
                 timeout: float | None = None) -> socket.socket:
    sock = new_socket(socket.AF_UNIX, socktype)
    try:
        if socktype == socket.SOCK_DGRAM:
            sock.bind("")  # autobind an abstract name, so the server can reply
        sock.settimeout(timeout)
        sock.connect(addr.sockaddr)
        sock.settimeout(None)
        return sock
    except OSError as exc:
        sock.close()
        if isinstance(exc, socket.timeout):
            raise NetworkError(f"connection to {addr} timed out") from None
        other = _other_types(exc, addr, socktype)
        if other:
            raise NetworkError(f"{addr} is not a {TYPE_NAMES.get(socktype, '')} socket",
                               advice="unix_other_type", other=other) from None
        raise unix_error(exc, addr) from None


def _other_types(exc: OSError, addr: UnixAddress, socktype: int) -> str:
    """'seqpacket' when the socket there is of another type. A path says so (EPROTOTYPE);
    an abstract name of another type is just not found (ECONNREFUSED): the kernel's
    table says which types are bound to it."""
    if exc.errno == errno.EPROTOTYPE:
        types = set(TYPE_NAMES) - {socktype}
    elif exc.errno == errno.ECONNREFUSED and addr.abstract:
        from pysock.net.names import unix_types
        types = unix_types(str(addr)) & set(TYPE_NAMES) - {socktype}
    else:
        return ""
    return " or ".join(n for t, n in TYPE_NAMES.items() if t in types)


def unix_error(exc: OSError, addr: UnixAddress) -> PysockError:
    """Unix-path errors say which of the usual three it is: no file, not a socket,
    or a socket file nobody listens on (left behind by a server that died)."""
    if not addr.abstract:
        if exc.errno == errno.ENOENT:
            return NetworkError(f"no such socket file: {addr}")
        if exc.errno == errno.ECONNREFUSED:
            if os.path.exists(addr.name) and not stat.S_ISSOCK(os.stat(addr.name).st_mode):
                return NetworkError(f"{addr} is not a socket")
            return NetworkError(f"nobody is listening on {addr} (a stale socket file left by "
                                f"a server that exited?)")
        if exc.errno == errno.EACCES:
            return NetworkError(f"permission denied connecting to {addr}: {denied_where(addr.name)}")
    elif exc.errno == errno.ECONNREFUSED:
        return NetworkError(f"nobody is listening on abstract socket {addr}")
    return os_error(exc, "connect to", str(addr))


# ---- listening ---------------------------------------------------------------------


class UnixListener:
    """A bound (and for streams, listening) Unix socket; close() removes its file,
    if the file is still the one we made."""

    def __init__(self, sock: socket.socket, addr: UnixAddress, replaced_stale: bool):
        self.sock, self.addr, self.replaced_stale = sock, addr, replaced_stale
        self.identity = None if addr.abstract or sock.getsockname() == "" else _identity(addr.name)

    def close(self) -> None:
        self.sock.close()
        if self.identity is not None and _identity(self.addr.name) == self.identity:
            try:
                os.unlink(self.addr.name)
            except OSError:
                pass
        self.identity = None

    def __enter__(self) -> UnixListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _identity(path: str):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def listen_unix(addr: UnixAddress, socktype: int = socket.SOCK_STREAM, *, mode: int | None = None,
                backlog: int = 128) -> UnixListener:
    """Bind addr. mode: the socket file's permissions, in force from the moment it
    exists (the umask is set around bind, so there is no window where it is wider)."""
    if mode is not None and addr.abstract:
        raise OptionError("mode", "applies to socket files; an @abstract name has no permissions")
    replaced = False if addr.abstract else _clear_the_way(addr, socktype)
    listener = UnixListener(socket.socket(socket.AF_UNIX, socktype), addr, replaced)
    try:
        _bind(listener.sock, addr, mode)
        listener.identity = None if addr.abstract else _identity(addr.name)
        if socktype != socket.SOCK_DGRAM:
            listener.sock.listen(backlog)
    except BaseException:
        listener.close()  # removes the file bind made, if it got that far
        raise
    return listener


def _bind(sock: socket.socket, addr: UnixAddress, mode: int | None) -> None:
    old_umask = os.umask(0o777 & ~mode) if mode is not None else None
    try:
        sock.bind(addr.sockaddr)
    except OSError as exc:
        raise _bind_error(exc, addr) from None
    finally:
        if old_umask is not None:
            os.umask(old_umask)


def _clear_the_way(addr: UnixAddress, socktype: int) -> bool:
    """True when a stale socket file was removed; raises when the path is taken."""
    path = addr.name
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _bind_error(exc, addr) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise NetworkError(f"{path} exists and is not a socket; leaving it alone "
                           f"(remove it yourself or choose another path)")
    if _alive(addr, socktype):
        from pysock.inventory.owners import unix_holder
        holder = unix_holder(path)
        by = f" by {holder}" if holder else ""
        raise NetworkError(f"{path} is in use{by}: a server is listening on it")
    try:
        os.unlink(path)
    except OSError as exc:
        raise _bind_error(exc, addr) from None
    return True


def _alive(addr: UnixAddress, socktype: int) -> bool:
    """Does a server hold this socket file? A socket bound to the path in
    /proc/net/unix says so without disturbing it (a probe connection would be a
    one-shot server's only client); else a probe: refused means it was left behind
    (the probe also sees servers in other network namespaces)."""
    from pysock.inventory.procnet import unix_inodes
    if unix_inodes(addr.name):
        return True
    with socket.socket(socket.AF_UNIX, socktype) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(addr.sockaddr)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EPROTOTYPE, errno.EAGAIN, errno.ETIMEDOUT) or isinstance(
                    exc, TimeoutError):
                return True  # a live socket of another type, or one with a full backlog
            raise _bind_error(exc, addr) from None
    return True


def _bind_error(exc: OSError, addr: UnixAddress) -> NetworkError:
    if addr.abstract:
        if exc.errno == errno.EADDRINUSE:
            from pysock.inventory.owners import unix_holder
            holder = unix_holder(str(addr))
            return NetworkError(f"abstract name {addr} is in use" + (f" by {holder}" if holder else ""))
        return os_error(exc, "listen on", str(addr))
    directory = os.path.dirname(os.path.abspath(addr.name))
    if exc.errno == errno.ENOENT and os.path.isdir(directory):
        kind = _fs_type(directory)
        return NetworkError(f"cannot create {addr}: {directory} is on a {kind} file system, "
                            f"which cannot hold socket files")
    if exc.errno == errno.EACCES:
        return NetworkError(f"cannot create {addr}: permission denied "
                            f"({denied_where(addr.name, write_dir=True)})")
    if exc.errno in _CANNOT_CREATE:
        why = _CANNOT_CREATE[exc.errno].format(directory=directory)
        return NetworkError(f"cannot create {addr}: {why}")
    return os_error(exc, "listen on", str(addr))


# errno -> why a socket file cannot be made in directory
_CANNOT_CREATE = {
    errno.ENOENT: "directory {directory} does not exist",
    errno.EROFS: "{directory} is on a read-only file system",
    errno.ENOTDIR: "a part of {directory} is not a directory",
}


def _fs_type(directory: str) -> str:
    """The file system type a directory is on (proc, sysfs, ...), from /proc/self/mounts."""
    best, kind = "", "special"
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            for line in f:
                cols = line.split()
                if len(cols) > 2 and (directory == cols[1] or directory.startswith(
                        cols[1].rstrip("/") + "/")) and len(cols[1]) >= len(best):
                    best, kind = cols[1], cols[2]
    except OSError:
        pass
    return kind


def denied_where(path: str, write_dir: bool = False) -> str:
    """Which step of the path we may not take: a directory we cannot enter, the
    directory we cannot write in, or the socket we cannot write to."""
    path = os.path.abspath(path)
    parts = path.split("/")[1:-1]
    current = "/"
    for part in parts:
        current = os.path.join(current, part)
        if os.path.isdir(current) and not os.access(current, os.X_OK):
            return f"no search permission on directory {current}"
    directory = os.path.dirname(path)
    if write_dir:
        return f"no write permission on directory {directory}"
    return f"no write permission on the socket file {path}"


# ---- clients -------------------------------------------------------------------------


# ---- passing descriptors and credentials ------------------------------------------------


class Outgoing:
    """Control messages to send: descriptors with the first message, credentials
    with every one."""

    def __init__(self, fds=(), creds: ancillary.Credentials | None | bool = None):
        self.once = [ancillary.rights(fds)] if fds else []
        self.every = [] if creds in (None, False) else [
            ancillary.credentials(None if creds is True else creds)]

    def __bool__(self) -> bool:
        return bool(self.once or self.every)

    def send(self, sock: socket.socket, data, address=None) -> int:
        cmsgs = self.once + self.every
        args = (address,) if address is not None else ()
        n = sock.sendmsg([data], cmsgs, 0, *args)
        self.once = []  # sent: the descriptors went with the first byte
        return n

    @property
    def pending_once(self) -> bool:
        return bool(self.once)


class UnixChannel(SocketChannel):
    """A Unix stream socket whose messages may carry descriptors and credentials:
    outgoing from an Outgoing, incoming handed to on_ancillary (which must dup any
    descriptor it keeps: they are closed afterwards)."""

    def __init__(self, sock: socket.socket, outgoing: Outgoing | None = None, on_ancillary=None):
        super().__init__(sock)
        self.outgoing = outgoing or Outgoing()
        self.on_ancillary = on_ancillary
        self.ancsize = ancillary.space(socket.AF_UNIX)

    def recv(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[:self.recv_into(buffer)])

    def recv_into(self, buffer) -> int:
        if self.on_ancillary is None:
            return self.sock.recv_into(buffer)
        n, cmsgs, flags, _ = self.sock.recvmsg_into([buffer], self.ancsize)
        extra = ancillary.parse(cmsgs, flags)
        if extra.fds or extra.creds or extra.cut:
            try:
                self.on_ancillary(extra)
            finally:
                extra.close_fds()
        return n

    def send(self, data) -> int:
        if self.outgoing:
            return self.outgoing.send(self.sock, data)
        return self.sock.send(data)

    def shutdown_write(self) -> None:
        if self.outgoing.pending_once:  # no data was sent: one NUL byte carries them
            self.sock.setblocking(True)
            self.outgoing.send(self.sock, b"\0")
        super().shutdown_write()


def open_for_passing(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OptionError("send_fds", f"{path}: {exc.strerror}") from None


@dataclass(frozen=True)
class FdInfo:
    fd: int
    target: str  # what /proc/self/fd/N points to
    kind: str  # regular file, directory, pipe, socket, character device, ...
    size: int | None
    access: str  # read-only, write-only, read-write

    def describe(self) -> str:
        size = f", {self.size} bytes" if self.size is not None else ""
        return f"fd {self.fd} -> {self.target} ({self.kind}{size}, {self.access})"


_KINDS = [(stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "pipe"),
          (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device")]


def describe_fd(fd: int) -> FdInfo:
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = "?"
    st = os.fstat(fd)
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "other")
    flags = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    access = {os.O_RDONLY: "read-only", os.O_WRONLY: "write-only"}.get(flags, "read-write")
    return FdInfo(fd, target, kind, st.st_size if stat.S_ISREG(st.st_mode) else None, access)


def copy_fd(fd: int, write, quiet_for: float = 5.0) -> int:
    """Write what fd holds: a regular file from its start, anything else until its
    end or until it has been silent for quiet_for seconds. Returns bytes copied."""
    total = 0
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        while chunk := os.pread(fd, 1 << 16, total):
            write(chunk)
            total += len(chunk)
        return total
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while poller.poll(int(quiet_for * 1000)):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        write(chunk)
        total += len(chunk)
    return total
