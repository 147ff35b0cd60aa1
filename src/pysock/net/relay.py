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
import select
import time
from dataclasses import dataclass, field

from pysock.errors import ExitStatus, NetworkError, PysockError
from pysock.net.datagram import DatagramRecvPump, DatagramSendPump, Framer, Framing
from pysock.net.endpoints import Channel, fd_kind
from pysock.net.pump import Blocked, CopyPump, EndpointError, LineEndings, Pump, choose, grow_pipe

SENT, RECEIVED = ">", "<"
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
                f"{self.seconds:.3f} s ({_human_rate(rate)}); {first}; {self.reason}")


class RelayError(NetworkError):
    """A relay that ended badly; carries what was moved until then."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


@dataclass
class _Side:
    name: str  # SENT or RECEIVED
    pump: Pump
    done: bool = False
    waiting: Blocked | None = field(default=None)


def relay(local: Channel, remote: Channel, policy: Policy = Policy(), taps=()) -> Result:
    """Move bytes both ways between local (usually stdio) and remote until the policy
    says stop. Returns a Result, or raises RelayError / BrokenPipeError (local output
    closed, e.g. `| head`)."""
    return _Relay(local, remote, policy, taps).run()


class _Relay:
    def __init__(self, local: Channel, remote: Channel, policy: Policy, taps):
        self.local, self.remote, self.policy = local, remote, policy
        self.taps = list(taps)
        self.counting_taps = [t for t in self.taps if not getattr(t, "sees_bytes", False)
                              and not getattr(t, "sees_datagrams", False)]
        self.result = Result()
        self.started = time.monotonic()
        self.last_activity = self.started
        self.quit_at: float | None = None
        self.local_is_tty = fd_kind(local.rfd) == "tty"
        self.sides = [s for s in (self._send_side(), self._recv_side()) if s is not None]
        self.finished = False

    # -- set-up ------------------------------------------------------------

    def _send_side(self) -> _Side | None:
        kind = fd_kind(self.local.rfd)
        if self.policy.recv_only or kind == "closed":  # nothing to send: as if input ended
            self.result.first_eof = "input"
            if self.policy.shutdown_on_eof:
                self._shutdown_remote()
            return None
        transform = LineEndings() if self.policy.crlf else None
        return _Side(SENT, self._pump(self.local, kind, self.remote, "socket", transform, SENT))

    def _recv_side(self) -> _Side | None:
        if self.policy.send_only:
            return None
        kind = fd_kind(self.local.wfd)
        return _Side(RECEIVED, self._pump(self.remote, "socket", self.local, kind, None, RECEIVED))

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
        recv = src.recv if src_kind == "socket" else None
        recv_into = getattr(src, "recv_into", None) if src_kind == "socket" else None
        send = dst.send if dst_kind == "socket" else None
        pump = choose(src.rfd, src_kind, dst.wfd, dst_kind, must_copy=must_copy, recv=recv,
                      recv_into=recv_into, send=send, transform=transform, taps=byte_taps,
                      direction=direction, chunk=self.remote.copy_chunk)
        if isinstance(pump, CopyPump) and src_kind != "socket":
            pump.poll_before_read = True  # a blocking fd we must not read unasked
        return pump

    def _datagram_pump(self, src: Channel, src_kind: str, dst: Channel, transform,
                       direction: str) -> Pump:
        if direction == SENT:
            taps = [t for t in self.taps if getattr(t, "sees_bytes", False)]
            return DatagramSendPump(src.rfd, dst, Framer(self.policy.framing), transform=transform,
                                    taps=taps, direction=SENT,
                                    poll_before_read=src_kind != "socket")
        taps = [t for t in self.taps if getattr(t, "sees_bytes", False)
                or getattr(t, "sees_datagrams", False)]
        return DatagramRecvPump(src, dst.send, dst.wfd, taps=taps, direction=RECEIVED)

    # -- the loop ----------------------------------------------------------

    def run(self) -> Result:
        if hasattr(self.remote, "sock"):
            self.remote.sock.setblocking(False)
        try:
            while not self.finished and any(not s.done for s in self.sides):
                progressed = self._step_all()
                if not self.finished:
                    # block only when no side can move without an event; after progress
                    # with a side still free, just look (poll 0) so neither direction starves
                    stuck = all(s.waiting is not None for s in self.sides if not s.done)
                    self._wait(self._timeout() if stuck or not progressed else 0)
                    self._check_timers()
            if not self.finished:
                self._finish("both sides closed")
            self._drain_remote()
        finally:
            for side in self.sides:
                side.pump.close()
            self.result.seconds = time.monotonic() - self.started
            self._count()
        if self.result.truncated:
            self.result.status = ExitStatus.FAILURE
        return self.result

    def _step_all(self) -> bool:
        progressed = False
        for side in self.sides:
            if side.done or side.waiting is not None or self.finished:
                continue
            try:
                n = side.pump.step()
            except Blocked as blocked:
                side.waiting = blocked
                continue
            except EndpointError as exc:
                self._count()
                raise self._error(side, exc) from None
            if n == 0:
                self._eof(side)
            else:
                progressed = True
                self.last_activity = time.monotonic()
                for tap in self.counting_taps:
                    tap(side.name, n)
                if side.pump.hint is not None:
                    side.waiting, side.pump.hint = side.pump.hint, None
        return progressed

    def _wait(self, timeout: float | None) -> None:
        waiting = [s for s in self.sides if s.waiting is not None and not s.done]
        flushing = self.remote.pending_output > 0
        if not waiting and not flushing:
            return
        wanted: dict[int, int] = {}  # both sides may wait on the one socket
        for s in waiting:
            wanted[s.waiting.fd] = wanted.get(s.waiting.fd, 0) | s.waiting.event
        if flushing:  # user-space output (TLS) goes out whenever the kernel takes it
            wanted[self.remote.wfd] = wanted.get(self.remote.wfd, 0) | select.POLLOUT
        poller = select.poll()
        for fd, events in wanted.items():
            poller.register(fd, events)
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        fired = dict(poller.poll(ms))
        trouble = select.POLLERR | select.POLLHUP | select.POLLNVAL
        if flushing and fired.get(self.remote.wfd, 0) & (select.POLLOUT | trouble):
            self._flush_remote()
        for s in waiting:
            if fired.get(s.waiting.fd, 0) & (s.waiting.event | trouble):
                s.waiting = None
                s.pump.wake()

    def _timeout(self) -> float | None:
        now = time.monotonic()
        deadlines = [d for d in (self.quit_at, self._idle_deadline()) if d is not None]
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _idle_deadline(self) -> float | None:
        if self.policy.idle_timeout is None:
            return None
        return self.last_activity + self.policy.idle_timeout

    def _check_timers(self) -> None:
        now = time.monotonic()
        if self.quit_at is not None and now >= self.quit_at:
            self._finish(f"quit {self.policy.quit_after_eof:g} s after end of input (-q)")
        elif (deadline := self._idle_deadline()) is not None and now >= deadline:
            self._count()
            self.result.status = ExitStatus.FAILURE
            raise RelayError(f"idle for {self.policy.idle_timeout:g} s, closing the connection "
                             f"to {self.remote.peer}", self._final("idle timeout"))

    # -- the EOF policy ----------------------------------------------------

    def _eof(self, side: _Side) -> None:
        side.done = True
        if side.name == SENT:
            self.result.first_eof = self.result.first_eof or "input"
            if self.policy.send_only:
                self._shutdown_remote()
                self._finish("input sent (--send-only)")
                return
            if self.policy.shutdown_on_eof:
                self._shutdown_remote()
            if self.policy.quit_after_eof is not None:
                self.quit_at = time.monotonic() + self.policy.quit_after_eof
            return
        self.result.first_eof = self.result.first_eof or "peer"
        self.local.shutdown_write()
        sending = any(s.name == SENT and not s.done for s in self.sides)
        if not sending:
            return
        if self.policy.exit_on_peer_close:
            self._finish("peer closed (--exit-on-peer-close)")
        elif self.local_is_tty:
            self._finish("peer closed")

    def _flush_remote(self) -> bool:
        """True once the remote holds no output in user space."""
        try:
            self.remote.flush()
        except Blocked:
            return False
        except OSError as exc:
            self._count()
            sender = next((s for s in self.sides if s.name == SENT), None)
            if sender is None:  # nothing was being sent: still, the peer is gone
                self.result.status = ExitStatus.FAILURE
                raise RelayError(f"connection to {self.remote.peer}: {exc.strerror or exc}",
                                 self._final("socket error")) from None
            raise self._error(sender, EndpointError("write", exc)) from None
        return True

    def _drain_remote(self) -> None:
        """At the end: what the remote still holds must reach the peer, within bounds."""
        if self.remote.pending_output == 0:
            return
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while not self._flush_remote():
            remaining = deadline - time.monotonic()
            poller = select.poll()
            poller.register(self.remote.wfd, select.POLLOUT)
            if remaining <= 0 or not poller.poll(int(remaining * 1000) + 1):
                self._count()
                self.result.status = ExitStatus.FAILURE
                raise RelayError(f"{self.remote.peer} took no data for {DRAIN_TIMEOUT:g} s; "
                                 f"{self.remote.pending_output} bytes not delivered",
                                 self._final("peer stopped reading"))

    def _shutdown_remote(self) -> None:
        try:
            self.remote.shutdown_write()
        except OSError:
            pass

    def _finish(self, reason: str) -> None:
        self.finished = True
        self.result.reason = reason

    def _final(self, reason: str) -> Result:
        self.result.reason = reason
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

    def _error(self, side: _Side, exc: EndpointError) -> PysockError:
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


def _human_rate(bps: float) -> str:
    for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
        if bps < 1000 or unit == "GB/s":
            return f"{bps:.1f} {unit}"
        bps /= 1000
    return f"{bps:.1f} GB/s"
