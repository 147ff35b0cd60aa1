"""Moving bytes one way, as fast as the two file descriptors allow.

Each Pump moves from a source fd to a destination fd with the cheapest mechanism
the pair permits: splice when one side is a pipe, splice through a private pipe
between two non-pipes (socket -> file), a TCP socket into /dev/null dropped in
the kernel (MSG_TRUNC), sendfile from a regular file, and a plain read/write
copy where the bytes must be seen (a tap that looks at data, --crlf) or where
nothing else works (a terminal).

step() moves one chunk and returns its size, 0 at end of input, or raises
Blocked naming the fd and poll event to wait for."""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import select

CHUNK = 1 << 20  # splice and sendfile: no buffer of ours, so the bigger the better
# The copy loop's buffer: measured with 2 GiB through connect | listen, 64 KiB gave
# 1.2 GB/s, 1 MiB swung between 1.1 and 1.7 (cache misses on it), 256 KiB a steady 1.5
COPY_CHUNK = 256 << 10
SMALL = 16 << 10
PIPE_SIZE = 1 << 20
_SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class Blocked(Exception):
    def __init__(self, fd: int, event: int):
        self.fd, self.event = fd, event


class EndpointError(Exception):
    """An OSError on one side: `side` is 'read' or 'write'."""

    def __init__(self, side: str, exc: OSError):
        super().__init__(str(exc))
        self.side, self.exc = side, exc


def grow_pipe(fd: int) -> None:
    """Bigger pipes mean fewer wake-ups; harmless if not allowed."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


class Pump:
    moved = 0
    # After a small read the source is most likely empty: the pump leaves a hint so the
    # relay polls at once instead of trying again for an EAGAIN (a syscall per event).
    # Only below SMALL: for bulk data the retry measured faster (3.8 against 2.4 GB/s
    # from a file through listen > /dev/null).
    hint: Blocked | None = None
    # A blocking source (stdin) must be read only after poll said so: set this, and
    # call _may_read() before each read.
    poll_before_read = False
    _ready = False

    def __init__(self, src: int, dst: int):
        self.src, self.dst = src, dst
        self.drained = Blocked(src, select.POLLIN)  # the hint, made once

    def step(self) -> int:
        raise NotImplementedError

    def wake(self) -> None:
        """The fd this pump was Blocked on is ready."""
        self._ready = True

    def _may_read(self) -> None:
        """Raise Blocked on the source unless a read now cannot block."""
        if self.poll_before_read and not self._ready:
            raise Blocked(self.src, select.POLLIN)
        self._ready = False

    def _read_src(self, read, *args):
        """read(*args) from the source: Blocked while it has nothing, EndpointError
        when it failed."""
        try:
            return read(*args)
        except BlockingIOError:
            raise Blocked(self.src, select.POLLIN) from None
        except OSError as exc:
            raise EndpointError("read", exc) from None

    def _write_dst(self, write, *args):
        """write(*args) to the destination: Blocked while it is full, EndpointError
        when it failed."""
        try:
            return write(*args)
        except BlockingIOError:
            raise Blocked(self.dst, select.POLLOUT) from None
        except OSError as exc:
            raise EndpointError("write", exc) from None

    def close(self) -> None:
        pass


class SplicePump(Pump):
    """One side is a pipe: a single splice per chunk, no copy through user space."""

    def __init__(self, src: int, dst: int):
        super().__init__(src, dst)
        self._dst_full = False

    def step(self) -> int:
        try:
            n = os.splice(self.src, self.dst, CHUNK, flags=_SPLICE)
        except BlockingIOError:
            # Did the source run dry or the destination fill up? poll the source
            # first; if it is readable and we still get EAGAIN, the destination is full.
            if self._dst_full or not _readable(self.src):
                raise Blocked(self.src, select.POLLIN) from None
            self._dst_full = True
            raise Blocked(self.dst, select.POLLOUT) from None
        except OSError as exc:
            raise _side_error(exc, self.src, self.dst) from None
        self._dst_full = False
        self.moved += n
        if n < SMALL:
            self.hint = self.drained
        return n


class PipedSplicePump(Pump):
    """Neither side is a pipe: splice into a private pipe, then out of it."""

    def __init__(self, src: int, dst: int):
        super().__init__(src, dst)
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        grow_pipe(self._w)
        self._buffered = 0
        self._eof = False
        self._short = False

    def step(self) -> int:
        if self._buffered == 0 and not self._eof:
            n = self._read_src(os.splice, self.src, self._w, CHUNK, None, None, _SPLICE)
            if n == 0:
                self._eof = True
            self._buffered = n
            self._short = n < SMALL
        if self._buffered == 0:
            return 0
        n = self._write_dst(os.splice, self._r, self.dst, self._buffered, None, None, _SPLICE)
        self._buffered -= n
        self.moved += n
        if self._buffered == 0 and self._short:
            self.hint = self.drained
        return n

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class DiscardPump(Pump):
    """A TCP socket into /dev/null: recv with MSG_TRUNC, so the kernel drops the
    bytes instead of copying them out (counted all the same); read and write
    cost a copy and a syscall each, a splice through a pipe two syscalls."""

    def __init__(self, src: int, dst: int, discard):
        super().__init__(src, dst)
        self._discard = discard

    def step(self) -> int:
        n = self._read_src(self._discard, CHUNK)
        self.moved += n
        if 0 < n < SMALL:
            self.hint = self.drained
        return n


class SendfilePump(Pump):
    """A regular file into a socket: the kernel reads the page cache directly."""

    def step(self) -> int:
        try:
            n = os.sendfile(self.dst, self.src, None, CHUNK)
        except BlockingIOError:
            raise Blocked(self.dst, select.POLLOUT) from None
        except OSError as exc:
            raise EndpointError("write" if exc.errno in (errno.EPIPE, errno.ECONNRESET)
                                else "read", exc) from None
        self.moved += n
        return n


class CopyPump(Pump):
    """read/write through a buffer, with an optional transform (CRLF) and taps.

    Without a transform it reads into one reusable buffer (recv_into, or readv for
    plain fds): allocating a fresh 1 MiB object per read costs 3x the throughput."""

    def __init__(self, src: int, dst: int, *, recv=None, send=None, recv_into=None,
                 transform=None, taps=(), direction: str = "", chunk: int | None = None):
        super().__init__(src, dst)
        self._chunk = chunk or COPY_CHUNK
        self._recv = recv or (lambda n: os.read(src, n))
        self._buffer = None
        if transform is None and (recv_into is not None or recv is None):
            self._buffer = bytearray(self._chunk)
            self._view = memoryview(self._buffer)
            # what the read is given: the buffer, or readv's list of it (partial, so
            # each read is one C call)
            self._into = self._buffer if recv_into is not None else [self._buffer]
            self._recv_into = recv_into or functools.partial(os.readv, src)
        self._send = send or functools.partial(os.write, dst)
        self._transform = transform
        self._taps = taps
        self._direction = direction
        self._pending = memoryview(b"")
        self._eof = False
        self._short = False

    def step(self) -> int:
        if not self._pending:
            if self._eof:
                return 0
            if self.poll_before_read and not self._ready:
                raise Blocked(self.src, select.POLLIN)
            self._ready = False
            try:
                if self._buffer is not None:
                    data = self._view[:self._recv_into(self._into)]
                else:
                    data = self._recv(self._chunk if self._transform is None else 65536)
            except BlockingIOError:
                raise Blocked(self.src, select.POLLIN) from None
            except OSError as exc:
                raise EndpointError("read", exc) from None
            if not data:
                self._eof = True
                return 0
            self._short = len(data) < SMALL
            if self._buffer is None:
                if self._transform is not None:
                    data = self._transform(data)
                data = memoryview(data)
            if self._taps:
                seen = bytes(data)
                for tap in self._taps:
                    tap(self._direction, seen)
            self._pending = data
        try:
            n = self._send(self._pending)
        except BlockingIOError:
            raise Blocked(self.dst, select.POLLOUT) from None
        except OSError as exc:
            raise EndpointError("write", exc) from None
        self._pending = self._pending[n:]
        self.moved += n
        if not self._pending and (self._short or self.poll_before_read):
            self.hint = self.drained  # a source read only after poll: poll it now
        return n


def _readable(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


def _side_error(exc: OSError, src: int, dst: int) -> EndpointError:
    """splice fails for either side; EPIPE/ECONNRESET on writing are the usual ones."""
    if exc.errno in (errno.EPIPE,):
        return EndpointError("write", exc)
    if exc.errno == errno.ECONNRESET:
        # a reset socket can be either end; the caller knows which end is the socket
        return EndpointError("reset", exc)
    return EndpointError("read", exc)


class LineEndings:
    """LF -> CRLF for --crlf, leaving existing CRLF alone, across chunk boundaries."""

    def __init__(self):
        self._last_cr = False

    def __call__(self, data: bytes) -> bytes:
        out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._last_cr and data[:1] == b"\n":
            out = out[1:]
        self._last_cr = data[-1:] == b"\r"
        return out


_SPLICE_PEERS = {"socket", "file", "pipe", "null"}


def choose(src_fd: int, src_kind: str, dst_fd: int, dst_kind: str, *, must_copy: bool,
           discard=None, **copy_kw) -> Pump:
    """The fastest pump these two fds allow (kinds from endpoints.fd_kind); discard
    drops n bytes from the source unread (a TCP socket's MSG_TRUNC)."""
    if not must_copy:
        if discard is not None and dst_kind == "null":
            return DiscardPump(src_fd, dst_fd, discard)
        # pipe -> TCP socket is left to the copy loop: measured here with 2 GiB from
        # `head -c`, splice moved 1.2-1.3 GB/s and a read/send loop 1.6-1.9 GB/s
        if (src_kind == "pipe" and dst_kind in _SPLICE_PEERS - {"socket"}) or (
                dst_kind == "pipe" and src_kind in ("socket", "file")):
            return SplicePump(src_fd, dst_fd)
        if src_kind == "file" and dst_kind == "socket":
            return SendfilePump(src_fd, dst_fd)
        if src_kind in ("socket", "file") and dst_kind in ("socket", "file", "null"):
            return PipedSplicePump(src_fd, dst_fd)
    return CopyPump(src_fd, dst_fd, **copy_kw)
