"""Datagrams through the relay: message boundaries kept both ways.

Input bytes become datagrams by a Framer (one per line, fixed-size chunks, or one
per read); each received datagram is written out whole, and what the kernel says
about it (sender, real size, TTL, passed descriptors, credentials) goes to the
taps that ask for datagrams (sees_datagrams). A datagram larger than the receive
buffer is never cut silently: it is counted as truncated and the taps see its
real size.

Servers follow nc -u -l: wait for the first datagram, then talk to that sender
only (connect); with -k any number of senders, replies going to whoever sent
last. The relay in relay.py drives these pumps exactly like the byte pumps."""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections import deque
from dataclasses import dataclass

from pysock.errors import NetworkError, PysockError
from pysock.net import ancillary
from pysock.net.address import format_sockaddr
from pysock.net.endpoints import SocketChannel, os_error
from pysock.net.pump import Blocked, EndpointError, Pump

UDP_BUFFER = 65536  # every UDP datagram fits (IPv4 payload limit 65507, IPv6 65527)
UNIX_BUFFER = 1 << 20
READ_SIZE = 1 << 16
UDP_LIMIT = {socket.AF_INET: 65507, socket.AF_INET6: 65527}


@dataclass(frozen=True)
class Framing:
    mode: str = "line"  # line | chunk | raw
    size: int = 0  # chunk: bytes per datagram


class Framer:
    """Cuts input into datagrams. line: each line with its newline (an unterminated
    last line is sent at end of input); chunk: size-byte datagrams, the last one
    shorter; raw: whatever one read returned."""

    def __init__(self, framing: Framing = Framing()):
        self.framing = framing
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self.framing.mode == "raw":
            return [data] if data else []
        self.buffer += data
        if self.framing.mode == "chunk":
            size = self.framing.size
            whole = len(self.buffer) - len(self.buffer) % size
            out = [self.buffer[i:i + size] for i in range(0, whole, size)]
            self.buffer = self.buffer[whole:]
            return out
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line + b"\n" for line in lines]

    def end(self) -> list[bytes]:
        rest, self.buffer = self.buffer, b""
        return [rest] if rest else []


@dataclass(frozen=True)
class Datagram:
    data: bytes
    size: int  # its real size: larger than len(data) when it was truncated
    sender: str
    address: object = None  # the raw sockaddr, for replying
    ttl: int | None = None
    fds: tuple[int, ...] = ()
    creds: ancillary.Credentials | None = None
    at: float = 0.0  # time.time() on arrival

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


class DatagramChannel(SocketChannel):
    """A datagram socket (UDP, Unix dgram or seqpacket). Connected, it talks to its
    peer only; unconnected (a server with -k), replies go to the last sender."""

    def __init__(self, sock: socket.socket, bufsize: int | None = None):
        super().__init__(sock)
        self.is_datagram = True
        self.can_splice = False
        self.bufsize = min(bufsize or (UNIX_BUFFER if sock.family == socket.AF_UNIX else UDP_BUFFER),
                           largest_datagram(sock))
        self.buffer = bytearray(self.bufsize)
        self.ancsize = ancillary.space(sock.family)
        self.peer_addr = _peer_address(sock)
        self.connected = self.peer_addr is not None
        self.last_sender = None
        self.sent_datagrams = 0
        self.received_datagrams = 0
        self.truncated = 0
        self.seqpacket = sock.type == socket.SOCK_SEQPACKET
        self.outgoing = None  # unixsock.Outgoing: descriptors and credentials to pass

    def recv_datagram(self) -> Datagram | None:
        """The next datagram, or None at end (a seqpacket peer closed)."""
        while True:
            n, cmsgs, flags, addr = self.sock.recvmsg_into([self.buffer], self.ancsize,
                                                           socket.MSG_TRUNC)
            extra = ancillary.parse(cmsgs, flags)
            if n == 0 and self.seqpacket:
                extra.close_fds()
                return None
            if self.connected and addr and self.peer_addr and addr != self.peer_addr:
                extra.close_fds()  # queued from another sender before we connected
                continue
            break
        if addr:
            self.last_sender = addr
        self.received_datagrams += 1
        if n > self.bufsize:
            self.truncated += 1
        data = bytes(self.buffer[:min(n, self.bufsize)])
        sender = format_sockaddr(addr) if addr else (self.peer or "(unnamed)")
        return Datagram(data, n, sender, addr, extra.ttl, extra.fds, extra.creds, time.time())

    def send(self, data) -> int:
        if not self.connected and not self.last_sender:
            raise NetworkError(_no_reply_address(self.sock))
        to = None if self.connected else self.last_sender
        if self.outgoing:
            n = self.outgoing.send(self.sock, data, to)
        elif to is None:
            n = self.sock.send(data)
        else:
            n = self.sock.sendto(data, to)
        self.sent_datagrams += 1
        return n

    def shutdown_write(self) -> None:
        if self.outgoing is not None and self.outgoing.pending_once:
            self.sock.setblocking(True)  # no data was sent: an empty message carries them
            self.send(b"")
        if self.seqpacket:  # only seqpacket has an end of stream to announce
            super().shutdown_write()

    def refused_text(self) -> str:
        if self.sock.family == socket.AF_UNIX:
            return f"nobody is receiving on {self.peer} any more"
        return f"no one is listening on {self.peer}/udp"

    def too_big(self, size: int) -> PysockError:
        """EMSGSIZE, with the size and the limit that applies."""
        if self.sock.family in UDP_LIMIT:
            limit = UDP_LIMIT[self.sock.family]
            mtu = _path_mtu(self.sock)
            if mtu and size <= limit:
                return NetworkError(f"datagram of {size} bytes does not fit the path MTU of {mtu} "
                                    f"bytes (fragmentation is off)", advice="datagram_mtu")
            v = 4 if self.sock.family == socket.AF_INET else 6
            return NetworkError(f"datagram of {size} bytes is larger than UDP allows over IPv{v} "
                                f"({limit} bytes)", advice="datagram_udp_limit")
        limit = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return NetworkError(f"datagram of {size} bytes is too large for this Unix socket",
                            advice="datagram_sndbuf", limit=limit)


def _peer_address(sock: socket.socket):
    try:
        return sock.getpeername()
    except OSError:
        return None


def _path_mtu(sock: socket.socket) -> int | None:
    try:
        if sock.family == socket.AF_INET6:
            return sock.getsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_MTU", 24))
        return sock.getsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU", 14))
    except OSError:
        return None


def _no_reply_address(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return "cannot reply: the sender's socket has no name (it must bind a path or @name)"
    return "cannot reply: no datagram has arrived yet"


def largest_datagram(sock: socket.socket) -> int:
    """No datagram this socket receives can be longer: UDP's 16-bit length; for Unix
    sockets the largest send buffer a sender may have (twice wmem_max, at least 1 MiB)."""
    if sock.family != socket.AF_UNIX:
        return 65535
    try:
        with open("/proc/sys/net/core/wmem_max") as f:
            return max(UNIX_BUFFER, 2 * int(f.read()))
    except (OSError, ValueError):
        return UNIX_BUFFER


def payload_limit(sock: socket.socket) -> int:
    """The most one send on sock can carry: a read of input for --raw is no larger."""
    return UDP_LIMIT.get(sock.family, READ_SIZE) if sock.type == socket.SOCK_DGRAM else READ_SIZE


# ---- pumps ---------------------------------------------------------------------


class DatagramSendPump(Pump):
    """Input bytes (stdin), cut into datagrams by a Framer, each sent whole."""

    def __init__(self, src: int, channel: DatagramChannel, framer: Framer, *, transform=None,
                 taps=(), direction: str = ">", poll_before_read: bool = True, read=None):
        super().__init__(src, channel.wfd)
        self.read = read  # the source's own read (a memory Feed), else os.read on src
        self.channel, self.framer, self.transform = channel, framer, transform
        self.taps, self.direction = taps, direction
        self.queue: deque[bytes] = deque()
        self.poll_before_read = poll_before_read
        self.read_size = payload_limit(channel.sock)
        self._eof = False

    def step(self) -> int:
        if not self.queue:
            if self._eof:
                return 0
            self._fill()
            if not self.queue:
                if self._eof:
                    return 0
                raise Blocked(self.src, select.POLLIN)  # half a line so far
        head = self.queue[0]
        try:
            self.channel.send(head)
        except BlockingIOError:
            raise Blocked(self.dst, select.POLLOUT) from None
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                raise self.channel.too_big(len(head)) from None
            raise EndpointError("write", exc) from None
        self.queue.popleft()
        for tap in self.taps:
            tap(self.direction, head)
        self.moved += len(head)
        return max(len(head), 1)

    def _fill(self) -> None:
        self._may_read()
        if self.read:
            data = self._read_src(self.read, self.read_size)
        else:
            data = self._read_src(os.read, self.src, self.read_size)
        if not data:
            self._eof = True
            self.queue.extend(self.framer.end())
            return
        if self.transform is not None:
            data = self.transform(data)
        self.queue.extend(self.framer.feed(data))


class DatagramRecvPump(Pump):
    """Datagrams to a byte sink (stdout), each written whole as it came; datagram
    taps see each one with its sender and real size, byte taps its data."""

    def __init__(self, channel: DatagramChannel, write, dst: int = -1, *, taps=(),
                 direction: str = "<"):
        super().__init__(channel.rfd, dst)
        self.channel, self.write, self.direction = channel, write, direction
        self.taps = taps
        self.pending = memoryview(b"")

    def step(self) -> int:
        if not self.pending:
            datagram = self._next()
            if datagram is None:
                return 0
            self.pending = memoryview(datagram.data)
            if not self.pending:
                return 1  # an empty datagram: nothing to write, but not the end
        n = self._write_dst(self.write, self.pending)
        self.pending = self.pending[n:]
        self.moved += n
        return n

    def _next(self) -> Datagram | None:
        datagram = self._read_src(self.channel.recv_datagram)
        if datagram is None:
            return None
        try:
            for tap in self.taps:
                if getattr(tap, "sees_datagrams", False):
                    tap.datagram(self.direction, datagram)
                else:
                    tap(self.direction, datagram.data)
        finally:
            for fd in datagram.fds:  # a tap that keeps one dup()s it
                _close(fd)
        return datagram


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


# ---- servers ---------------------------------------------------------------------


def first_sender(sock: socket.socket, timeout: float | None = None):
    """Wait for the first datagram without taking it (nc -u -l); its sender's address."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise NetworkError(f"no datagram arrived within {timeout:g} s")
    try:
        _, addr = sock.recvfrom(1, socket.MSG_PEEK)
    except OSError as exc:
        raise os_error(exc, "receive on", format_sockaddr(sock.getsockname())) from None
    return addr


def talk_to(sock: socket.socket, addr) -> bool:
    """Connect a server socket to its first sender, so only that sender is heard.
    False when the sender cannot be addressed: an unnamed Unix socket, or one
    already closed (its datagrams are still queued here and will be read)."""
    if not addr:
        return False
    try:
        sock.connect(addr)
    except OSError as exc:
        if sock.family == socket.AF_UNIX and exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise os_error(exc, "connect to", format_sockaddr(addr)) from None
    return True


def echo(channel: DatagramChannel, *, idle_timeout: float | None = None, taps=()) -> int:
    """Send every datagram back to its sender until idle_timeout (or forever)."""
    channel.sock.setblocking(True)
    while True:
        ready, _, _ = select.select([channel.sock], [], [], idle_timeout)
        if not ready:
            raise NetworkError(f"idle for {idle_timeout:g} s, stopping")
        try:
            datagram = channel.recv_datagram()
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:  # a sender gone away; its ICMP reached us
                continue
            raise os_error(exc, "receive on", channel.local) from None
        if datagram is None:
            return 0
        for fd in datagram.fds:
            _close(fd)
        _tap_all(taps, "<", datagram)
        if datagram.address or channel.connected:
            try:
                channel.send(datagram.data)
            except OSError as exc:
                if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN):
                    raise os_error(exc, "send to", datagram.sender) from None
            else:
                _tap_all([t for t in taps if not getattr(t, "sees_datagrams", False)], ">",
                         datagram)


def _tap_all(taps, direction: str, datagram: Datagram) -> None:
    """Each tap as it asks: the datagram, its bytes, or its size (relay.py's taps)."""
    for tap in taps:
        if getattr(tap, "sees_datagrams", False):
            tap.datagram(direction, datagram)
        elif getattr(tap, "sees_bytes", False):
            tap(direction, datagram.data)
        else:
            tap(direction, len(datagram.data))
