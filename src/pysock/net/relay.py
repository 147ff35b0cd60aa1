"""The byte pump between two Channels, and the EOF policy written down once.

    event                      what pysock does
    -------------------------  ------------------------------------------------------
    end of local input         send FIN (shutdown SHUT_WR) and keep reading until the
                               peer closes; -q SECS bounds that wait; --no-shutdown
                               keeps the write side open (OpenBSD nc's default)
    peer closes (FIN)          stop reading it and end local output; if local input is
                               a terminal, exit; if it is a pipe or file, keep sending
                               it to the end, so an upload is never cut short;
                               --exit-on-peer-close exits at once either way
    both ends done             exit 0
    reset, or error            exit 1 with the reason
    idle -i SECS               exit 1: no data either way for SECS

Taps are the only output hook: tap(direction, data) is called with each chunk
('>' sent, '<' received) when a tap has sees_bytes set (forcing the copy path),
else with the chunk's size; on a datagram remote, a tap with sees_datagrams set
gets tap.datagram(direction, Datagram) for each one received.

A datagram remote (UDP, Unix dgram/seqpacket) keeps message boundaries: input is
cut by policy.framing (datagram.Framer), each received datagram is written whole,
and one cut short by the receive buffer counts in Result.truncated and fails the
relay (exit 1) when it ends. UDP has no FIN: at end of input a datagram relay
waits -q SECS for replies (commands set a default) instead."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field

from pysock.errors import ExitStatus, NetworkError, PysockError, worded
from pysock.net.datagram import DatagramRecvPump, DatagramSendPump, Framer, Framing
from pysock.net.endpoints import Channel, SocketChannel, fd_kind
from pysock.net.engine import Engine, Feed
from pysock.net.pump import Blocked, CopyPump, EndpointError, LineEndings, Pump, choose, grow_pipe

SENT, RECEIVED = ">", "<"
MEMORY_CHUNK = 1 << 16  # reads that go into a Feed (a -k client's data)
DRAIN_TIMEOUT = 30.0  # at the end, for output a channel still holds in user space (TLS)


@dataclass(frozen=True)
class Policy:
    shutdown_on_eof: bool = True  # --no-shutdown: False
    quit_after_eof: float | None = None  # -q SECS
    idle_timeout: float | None = None  # -i SECS
    exit_on_peer_close: bool = False
    recv_only: bool = False  # -d: never read local input
    send_only: bool = False  # never write local output; done once input is sent
    crlf: bool = False
    framing: Framing = Framing()  # datagram remotes: how input becomes datagrams


@dataclass
class Result:
    sent: int = 0
    received: int = 0
    seconds: float = 0.0
    first_eof: str | None = None  # 'input' or 'peer'
    reason: str = ""
    advice: str | None = None  # a key of errors.ADVICE: the flag behind the reason
    status: ExitStatus = ExitStatus.OK
    datagrams_sent: int | None = None  # None: not a datagram relay
    datagrams_received: int = 0
    truncated: int = 0  # datagrams cut short by the receive buffer

    def summary(self, peer: str) -> str:
        rate = (self.sent + self.received) / self.seconds if self.seconds > 0 else 0.0
        first = {"input": "input ended first", "peer": f"{peer} closed first"}.get(
            self.first_eof or "", "neither side closed")
        counts = ""
        if self.datagrams_sent is not None:
            counts = (f" ({self.datagrams_sent} and {self.datagrams_received} datagrams"
                      + (f", {self.truncated} truncated" if self.truncated else "") + ")")
        return (f"sent {self.sent} bytes, received {self.received} bytes{counts} in "
                f"{self.seconds:.3f} s ({_human_rate(rate)}); {first}; {self.why}")

    @property
    def why(self) -> str:
        """The reason the relay ended, in words."""
        return worded(self.reason, self.advice)


class RelayError(NetworkError):
    """A relay that ended badly; carries what was moved until then."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


class SlowClient(RelayError):
    """A client dropped for not reading while its queue grew (the others go on)."""


@dataclass(eq=False)
class Side:
    name: str  # SENT or RECEIVED (FLUSH: output a channel holds in user space)
    pump: Pump
    link: Link
    done: bool = False
    waiting: Blocked | None = field(default=None)


FLUSH = "flush"


def relay(local: Channel, remote: Channel, policy: Policy = Policy(), taps=()) -> Result:
    """Move bytes both ways between local (usually stdio) and remote until the policy
    says stop: one Link in its own Engine. Returns a Result, or raises RelayError /
    BrokenPipeError (local output closed, e.g. `| head`)."""
    link = Link(local, remote, policy, taps)
    return run_alone(link)


def run_alone(link: Link) -> Result:
    engine = Engine()
    engine.add(link)
    try:
        engine.run(lambda: link.closed)
    finally:
        link.close_pumps()
    return link.outcome()


class Link:
    """Two ends and the pumps between them: SENT moves local input to the remote,
    RECEIVED the remote's data to local output, under the EOF table above. The
    local end is stdio for connect and listen, a Feed for a -k client (engine.Feed:
    its queue in, the hub's sink out), a child's socketpair for exec, the outbound
    connection for forward. on_close(link) is called once it is over; link.error
    is then the PysockError that ended it, if any."""

    engine = None
    solo_tried = False  # the Engine offers a Link to solo once (engine._solo)

    def __init__(self, local: Channel, remote: Channel, policy: Policy = Policy(), taps=(), *,
                 on_close=None, slow_client: tuple[int, int, float] | None = None):
        self.local, self.remote, self.policy = local, remote, policy
        for channel in (local, remote):
            if getattr(channel, "sock", None) is not None:
                channel.sock.setblocking(False)
        self.on_close = on_close
        self.slow_client = slow_client  # (high water, hard cap, stall s) for a Feed source
        self.taps = list(taps)
        self.counting_taps = [t for t in self.taps if not getattr(t, "sees_bytes", False)
                              and not getattr(t, "sees_datagrams", False)]
        self.result = Result()
        self.started = time.monotonic()
        self.last_activity = self.last_sent = self.started
        self.quit_at: float | None = None
        self.drain_until: float | None = None
        self.local_is_tty = _kind(local, local.rfd) == "tty"
        self.finished = self.closed = False
        self.error: BaseException | None = None
        self.sides: list[Side] = []
        self.sides_open = True
        for side in (self._send_side(), self._recv_side()):
            if side is not None:
                self.sides.append(side)
        self.flushers = [Side(FLUSH, _Flush(ch), self) for ch in (remote, local)
                         if _holds_output(ch)]
        self.timed = (policy.idle_timeout is not None or policy.quit_after_eof is not None
                      or slow_client is not None)

    def feeds(self):
        return [fd for side in self.sides for fd in (side.pump.src, side.pump.dst)
                if not isinstance(fd, int)]

    # -- set-up ------------------------------------------------------------

    def _send_side(self) -> Side | None:
        kind = _kind(self.local, self.local.rfd)
        if self.policy.recv_only:  # -d: never read input, and never end the peer's (nc -d)
            return None
        if kind == "closed":  # nothing to send: as if input ended
            self.result.first_eof = "input"
            if self.policy.shutdown_on_eof:
                self._shutdown_remote()
            return None
        transform = LineEndings() if self.policy.crlf else None
        return Side(SENT, self._pump(self.local, kind, self.remote, "socket", transform, SENT),
                    self)

    def _recv_side(self) -> Side | None:
        if self.policy.send_only:
            return None
        kind = _kind(self.local, self.local.wfd)
        return Side(RECEIVED, self._pump(self.remote, "socket", self.local, kind, None, RECEIVED),
                    self)

    def _pump(self, src: Channel, src_kind: str, dst: Channel, dst_kind: str, transform,
              direction: str) -> Pump:
        byte_taps = [t for t in self.taps if getattr(t, "sees_bytes", False)]
        if self.remote.is_datagram:
            return self._datagram_pump(src, src_kind, dst, transform, direction)
        must_copy = (bool(byte_taps) or transform is not None or not src.can_splice
                     or not dst.can_splice)
        for fd, kind in ((src.rfd, src_kind), (dst.wfd, dst_kind)):
            if kind == "pipe":
                grow_pipe(fd)
        recv = _plain(src, "recv") if src_kind in ("socket", "memory") else None
        recv_into = _plain(src, "recv_into") if src_kind == "socket" else None
        send = _plain(dst, "send") if dst_kind in ("socket", "memory") else None
        chunk = self.remote.copy_chunk
        if dst_kind == "memory":  # what is read is kept (queued): no shared buffer
            recv_into, chunk = None, MEMORY_CHUNK
        discard = getattr(src, "discard", None) if src_kind == "socket" else None
        pump = choose(src.rfd, src_kind, dst.wfd, dst_kind, must_copy=must_copy,
                      discard=discard, recv=recv, recv_into=recv_into, send=send,
                      transform=transform, taps=byte_taps, direction=direction, chunk=chunk)
        if isinstance(pump, CopyPump) and src_kind not in ("socket", "memory"):
            pump.poll_before_read = True  # a blocking fd we must not read unasked
        return pump

    def _datagram_pump(self, src: Channel, src_kind: str, dst: Channel, transform,
                       direction: str) -> Pump:
        if direction == SENT:
            taps = [t for t in self.taps if getattr(t, "sees_bytes", False)]
            return DatagramSendPump(src.rfd, dst, Framer(self.policy.framing), transform=transform,
                                    taps=taps, direction=SENT,
                                    poll_before_read=src_kind not in ("socket", "memory"),
                                    read=src.recv if src_kind == "memory" else None)
        taps = [t for t in self.taps if getattr(t, "sees_bytes", False)
                or getattr(t, "sees_datagrams", False)]
        return DatagramRecvPump(src, dst.send, dst.wfd, taps=taps, direction=RECEIVED)

    # -- stepping (called by the Engine) ------------------------------------

    def free(self) -> bool:
        """A side could move now without waiting for an event."""
        if self.closed:
            return False
        for side in self._active():
            if not side.done and side.waiting is None:
                return True
        return False

    def _active(self) -> list[Side]:
        if not self.flushers:
            return [] if self.drain_until is not None else self.sides
        if self.drain_until is not None:
            return [f for f in self.flushers if f.pump.channel.pending_output]
        return self.sides + [f for f in self.flushers if f.pump.channel.pending_output]

    def step(self) -> None:
        try:
            self._step_all()
            if not self.finished and self._all_done():
                self._finish("both sides closed")
            if self.finished and not self.closed:
                self._drain_or_close()
        except (PysockError, BrokenPipeError) as exc:
            self._fail(exc)

    def _all_done(self) -> bool:
        for side in self.sides:
            if not side.done:
                return False
        return True

    def _step_all(self) -> None:
        progressed = False
        for side in self._active():
            if side.done or side.waiting is not None or self.finished and side.name != FLUSH:
                continue
            progressed = self._step_side(side) or progressed
        if progressed and self.policy.idle_timeout is not None:
            self.last_activity = time.monotonic()

    def step_one(self, side: Side) -> None:
        """Step one side that was woken (solo's loop, which knows which); an error ends
        the Link as step() would. The checks step() makes after its pass (both sides
        done, draining) are the Engine's to make: solo hands over before they matter."""
        try:
            if self._step_side(side) and self.policy.idle_timeout is not None:
                self.last_activity = time.monotonic()
        except (PysockError, BrokenPipeError) as exc:
            self._fail(exc)

    def _step_side(self, side: Side) -> bool:
        """One step of one side and what follows from it; True if bytes moved."""
        try:
            n = side.pump.step()
        except Blocked as blocked:
            side.waiting = blocked
            self.engine.park(side)
            return False
        except EndpointError as exc:
            self._count()
            if side.name == FLUSH:
                raise self._flush_error(exc.exc) from None
            raise self._error(side, exc) from None
        if side.name == FLUSH:
            return False
        if n == 0:
            self._eof(side)
            return False
        for tap in self.counting_taps:
            tap(side.name, n)
        if side.name == SENT and self.slow_client is not None:
            self.last_sent = time.monotonic()
        if side.pump.hint is not None:
            side.waiting, side.pump.hint = side.pump.hint, None
            self.engine.park(side)
        return True

    # -- timers --------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        if not self.timed or self.closed:
            return None
        marks = [m for m in (self.quit_at, self.drain_until, self._idle_deadline(),
                             self._stall_check()) if m is not None]
        return min(marks) if marks else None

    def _idle_deadline(self) -> float | None:
        if self.policy.idle_timeout is None:
            return None
        return self.last_activity + self.policy.idle_timeout

    def _stall_check(self) -> float | None:
        if self.slow_client is None or self.drain_until is not None:
            return None
        high, cap, stall = self.slow_client
        queued = self._queued()
        if queued > cap:
            return 0.0
        return self.last_sent + stall if queued > high else None

    def _queued(self) -> int:
        src = self.sides[0].pump.src if self.sides and self.sides[0].name == SENT else None
        return src.size if isinstance(src, Feed) else 0

    def on_timer(self, now: float) -> None:
        try:
            self._check_timers(now)
            if self.finished and not self.closed:
                self._drain_or_close()
        except PysockError as exc:
            self._fail(exc)

    def _check_timers(self, now: float) -> None:
        if self.drain_until is not None:
            if now >= self.drain_until:
                self.result.status = ExitStatus.FAILURE
                raise RelayError(f"{self.remote.peer} took no data for {DRAIN_TIMEOUT:g} s; "
                                 f"{self.remote.pending_output} bytes not delivered",
                                 self._final("peer stopped reading"))
            return
        if self.quit_at is not None and now >= self.quit_at:
            self._finish(f"quit {self.policy.quit_after_eof:g} s after end of input",
                         "relay_quit")
        elif (deadline := self._idle_deadline()) is not None and now >= deadline:
            self._count()
            self.result.status = ExitStatus.FAILURE
            raise RelayError(f"idle for {self.policy.idle_timeout:g} s, closing the connection "
                             f"to {self.remote.peer}", self._final("idle timeout"))
        else:
            self.check_slow(now)

    def check_slow(self, now: float) -> None:
        """A client that takes nothing while its queue grows is dropped, so it
        stalls no one else (only a Link fed from memory has such a queue)."""
        if self.slow_client is None:
            return
        high, cap, stall = self.slow_client
        queued = self._queued()
        if queued > cap or (queued > high and now - self.last_sent > stall):
            self._count()
            self.result.status = ExitStatus.FAILURE
            raise SlowClient(f"dropped: not reading ({queued >> 20} MiB queued)",
                             self._final("slow client"))

    # -- the EOF policy ----------------------------------------------------

    def _eof(self, side: Side) -> None:
        side.done = True
        if side.name == SENT:
            self.result.first_eof = self.result.first_eof or "input"
            if self.policy.send_only:
                self._shutdown_remote()
                self._finish("input sent", "relay_send_only")
                return
            if self.policy.shutdown_on_eof:
                self._shutdown_remote()
            if self.policy.quit_after_eof is not None:
                self.quit_at = time.monotonic() + self.policy.quit_after_eof
                self.engine.schedule(self)
                if self.policy.quit_after_eof == 0:
                    self._finish("input ended")
            return
        self.result.first_eof = self.result.first_eof or "peer"
        self._end_local_output()
        sending = any(s.name == SENT and not s.done for s in self.sides)
        if not sending:
            return
        if self.policy.exit_on_peer_close:
            self._finish("peer closed", "relay_peer_closed")
        elif self.local_is_tty:
            self._finish("peer closed")

    def _end_local_output(self) -> None:
        if isinstance(self.local.wfd, int) and self.local.wfd != self.local.rfd:
            self.engine.forget(self.local.wfd)  # stdout is closed here
        self.local.shutdown_write()

    def _shutdown_remote(self) -> None:
        try:
            self.remote.shutdown_write()
        except OSError:
            pass

    # -- the end -------------------------------------------------------------

    def _drain_or_close(self) -> None:
        """What a channel still holds in user space (TLS) must reach its peer, within
        DRAIN_TIMEOUT; then the Link is over."""
        if any(f.pump.channel.pending_output for f in self.flushers):
            if self.drain_until is None:
                self.drain_until = time.monotonic() + DRAIN_TIMEOUT
                self.timed = True
                self.engine.schedule(self)
                for side in self.sides:
                    self.engine._unpark(side)
            self._step_all()
            if any(f.pump.channel.pending_output for f in self.flushers):
                return
        self._close()

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.result.seconds = time.monotonic() - self.started
        self._count()
        if self.result.truncated:
            self.result.status = ExitStatus.FAILURE
        if self.engine is not None:
            self.engine.remove(self)
        if self.on_close is not None:
            self.on_close(self)

    def close_pumps(self) -> None:
        sides, self.sides_open = (self.sides if self.sides_open else []), False
        for side in sides:
            side.pump.close()

    def outcome(self) -> Result:
        """The Result, or the error that ended the Link raised again."""
        if self.error is not None:
            raise self.error
        return self.result

    def _finish(self, reason: str, advice: str | None = None) -> None:
        self.finished = True
        self.result.reason, self.result.advice = reason, advice

    def _final(self, reason: str) -> Result:
        self.result.reason, self.result.advice = reason, None
        self.result.seconds = time.monotonic() - self.started
        return self.result

    def _count(self) -> None:
        for side in self.sides:
            if side.name == SENT:
                self.result.sent = side.pump.moved
            else:
                self.result.received = side.pump.moved
        if self.remote.is_datagram and hasattr(self.remote, "truncated"):
            self.result.datagrams_sent = self.remote.sent_datagrams
            self.result.datagrams_received = self.remote.received_datagrams
            self.result.truncated = self.remote.truncated

    def _flush_error(self, exc: OSError) -> PysockError:
        sender = next((s for s in self.sides if s.name == SENT), None)
        if sender is None:  # nothing was being sent: still, the peer is gone
            self.result.status = ExitStatus.FAILURE
            return RelayError(f"connection to {self.remote.peer}: {exc.strerror or exc}",
                              self._final("socket error"))
        return self._error(sender, EndpointError("write", exc))

    def _error(self, side: Side, exc: EndpointError) -> PysockError:
        code = exc.exc.errno
        peer = self.remote.peer or "the peer"
        on_socket = (exc.side == "write") == (side.name == SENT) or exc.side == "reset"
        if not on_socket:
            if side.name == RECEIVED and code == errno.EPIPE:
                raise BrokenPipeError(code, "local output closed")
            what = "reading input" if side.name == SENT else "writing output"
            return RelayError(f"{what}: {exc.exc.strerror or exc.exc}", self._final("local error"))
        self.result.status = ExitStatus.FAILURE
        if code == errno.ECONNRESET:
            return RelayError(f"connection reset by {peer}", self._final("reset by peer"))
        if code == errno.ECONNREFUSED:
            return RelayError(self.remote.refused_text(), self._final("refused"))
        if code == errno.EPIPE:
            return RelayError(f"{peer} closed the connection before all input was sent",
                              self._final("peer stopped reading"))
        if code == errno.ETIMEDOUT:
            return RelayError(f"connection to {peer} timed out", self._final("timed out"))
        return RelayError(f"connection to {peer}: {exc.exc.strerror or exc.exc}",
                          self._final("socket error"))


class _Flush(Pump):
    """Pushes out what a channel holds in user space (TLS records) when its fd is
    writable: a third side, active only while there is something to push."""

    def __init__(self, channel: Channel):
        super().__init__(channel.wfd, channel.wfd)
        self.channel = channel

    def step(self) -> int:
        try:
            self.channel.flush()
        except Blocked:
            raise
        except OSError as exc:
            raise EndpointError("write", exc) from None
        return 1


def _plain(channel: Channel, name: str):
    """channel.<name>, or its socket's own method where the channel's is SocketChannel's
    plain pass-through: a C call with no Python frame around it, once per chunk."""
    method = getattr(channel, name, None)
    if method is not None and getattr(type(channel), name) is getattr(SocketChannel, name):
        return getattr(channel.sock, name)
    return method


def _holds_output(channel: Channel) -> bool:
    return type(channel).pending_output is not Channel.pending_output


def _kind(channel: Channel, fd) -> str:
    return "memory" if not isinstance(fd, int) else fd_kind(fd)


def _human_rate(bps: float) -> str:
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if bps < 1000 or unit == "GB/s":
            return f"{bps:.1f} {unit}"
        bps /= 1000
    return f"{bps:.1f} GB/s"
