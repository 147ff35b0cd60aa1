"""A server that runs many tests at once behind one port (iperf3 -s runs one).

Every accepted connection first sends its 37-byte cookie. A cookie that belongs to
a test waiting for its data streams joins that test; any other opens a new test
whose control connection it is. Each test runs in its own thread; a test that
breaks the protocol or loses its client is dropped with one log line, and the
others go on. events() yields ('log', text) and ('test', report) for the renderer."""

from __future__ import annotations

import queue
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pysock.probes.perf import protocol as P
from pysock.probes.perf import rr, udp
from pysock.probes.perf.params import TestSpec, from_params
from pysock.probes.perf.results import congestion_of, local_results, peer_results, summary_row, udp_fields
from pysock.probes.perf.run import Run
from pysock.probes.perf.streams import Stream
from pysock.status import start_beside_main

HANDSHAKE_WAIT = 10.0  # seconds for a cookie, a parameter block, the data streams
IDLE_LIMIT = 60.0  # a running test whose streams move nothing for this long is dropped


@dataclass(frozen=True)
class ServerOptions:
    max_tests: int = 0  # 0: no cap
    one_off: bool = False


class PerfServer:
    def __init__(self, listener: socket.socket, options: ServerOptions):
        self.listener = listener
        self.options = options
        self.events_queue: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.waiting: dict[bytes, ServerTest] = {}  # cookie -> test awaiting streams
        self.running = 0
        self.started = 0
        self.closing = threading.Event()
        self.udp_setup = threading.Lock()

    def events(self) -> Iterator[tuple[str, object]]:
        acceptor = threading.Thread(target=self._accept_loop, daemon=True, name="perf-accept")
        start_beside_main(acceptor.start)  # its greeters inherit the mask
        try:
            while True:
                try:
                    event = self.events_queue.get(timeout=0.2)
                except queue.Empty:
                    if not acceptor.is_alive():
                        return
                    continue
                if event is None:
                    return
                yield event
        finally:
            self.closing.set()

    def log(self, text: str) -> None:
        self.events_queue.put(("log", text))

    def _accept_loop(self) -> None:
        while not self.closing.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            try:
                sock, addr = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._greet, args=(sock, addr), daemon=True,
                             name="perf-greet").start()

    def _greet(self, sock: socket.socket, addr) -> None:
        where = _where(addr)
        sock.settimeout(HANDSHAKE_WAIT)
        try:
            cookie = P.read_exact(sock, P.COOKIE_SIZE, "cookie")
        except P.ProtocolError as exc:
            self.log(f"connection from {where} dropped: {exc}")
            sock.close()
            return
        if cookie == rr.MARKER:
            self._request_response(sock, where)
            return
        if not P.valid_cookie(cookie):
            self.log(f"connection from {where} dropped: malformed cookie")
            sock.close()
            return
        with self.lock:
            test = self.waiting.get(cookie)
            if test is None:
                admitted = not self.options.max_tests or self.running < self.options.max_tests
                admitted = admitted and not (self.options.one_off and self.started)
                if admitted:
                    self.running += 1
                    self.started += 1
        if test is not None:
            test.add_stream(sock)
        elif not admitted:
            _deny(sock)
            self.log(f"test from {where} refused: {self.running} tests running (--max-tests)")
        else:
            ServerTest(self, sock, addr, cookie).run()

    def _request_response(self, sock: socket.socket, where: str) -> None:
        """--rr from a pysock client: answer until it leaves (counts as a test)."""
        with self.lock:
            admitted = not self.options.max_tests or self.running < self.options.max_tests
            admitted = admitted and not (self.options.one_off and self.started)
            if admitted:
                self.running += 1
                self.started += 1
        if not admitted:
            _deny(sock)
            self.log(f"request/response test from {where} refused: --max-tests or --one-off")
            return
        try:
            protocol = rr.serve(sock, None)
            self.log(f"request/response test ({protocol}) from {where} ended")
        except (P.ProtocolError, OSError) as exc:
            self.log(f"request/response test from {where} dropped: {_text(exc)}")
        finally:
            sock.close()
            with self.lock:
                self.running -= 1
            if self.options.one_off:
                self.closing.set()
                self.events_queue.put(None)

    def stop_waiting(self, test: ServerTest) -> None:
        """test takes no more streams. Only its own entry goes: another client may
        have sent the same cookie since (a new test then waits under it). Holds lock."""
        if self.waiting.get(test.cookie) is test:
            del self.waiting[test.cookie]

    def test_over(self, test: ServerTest) -> None:
        with self.lock:
            self.running -= 1
            self.stop_waiting(test)
            last = self.options.one_off
        if last:
            self.closing.set()
            self.events_queue.put(None)


class ServerTest:
    def __init__(self, server: PerfServer, ctrl: socket.socket, addr, cookie: bytes):
        self.server = server
        self.ctrl = ctrl
        self.where = _where(addr)
        self.addr = addr
        self.cookie = cookie
        self.spec: TestSpec | None = None
        self.pending: list[socket.socket] = []
        self.arrived = threading.Condition()
        self.streams: list[Stream] = []
        self.run_: Run | None = None

    def run(self) -> None:
        self.server.log(f"accepted a test from {self.where}")
        try:
            report = self._session()
            self.server.events_queue.put(("test", report))
        except (P.ProtocolError, OSError) as exc:
            self.server.log(f"test from {self.where} dropped: {_text(exc)}")
        finally:
            self._close()
            self.server.test_over(self)

    def add_stream(self, sock: socket.socket) -> None:
        with self.arrived:
            self.pending.append(sock)
            self.arrived.notify_all()

    def _session(self) -> dict:
        ctrl = self.ctrl
        unix = ctrl.family == socket.AF_UNIX
        if not unix:
            ctrl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        P.send_state(ctrl, P.PARAM_EXCHANGE)
        self.spec = spec = from_params(P.read_json(ctrl, "parameter block"))
        if spec.protocol == "udp" and unix:
            raise P.ProtocolError("a UDP test asked of a Unix socket server")
        if spec.protocol == "udp":
            self._collect_udp(spec)
        else:
            with self.server.lock:
                self.server.waiting[self.cookie] = self
            P.send_state(ctrl, P.CREATE_STREAMS)
            self._collect_streams(spec)
        P.send_state(ctrl, P.TEST_START)
        self.run_ = run = Run(spec, self.streams, limit_senders=False)
        P.send_state(ctrl, P.TEST_RUNNING)
        run.start()
        self._await_end(run)
        cpu = run.finish()
        _end_streams(self.streams)
        P.send_state(ctrl, P.EXCHANGE_RESULTS)
        theirs = peer_results(P.read_json(ctrl, "client's results"),
                              {s.id for s in self.streams})
        P.send_json(ctrl, local_results(self.streams, cpu, congestion_of(self.streams)),
                    "results")
        P.send_state(ctrl, P.DISPLAY_RESULTS)
        self._await_done()
        return self._report(theirs)

    def _collect_streams(self, spec: TestSpec) -> None:
        wanted = spec.stream_count
        deadline = time.monotonic() + HANDSHAKE_WAIT
        with self.arrived:
            while len(self.pending) < wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise P.ProtocolError(f"{len(self.pending)} of {wanted} data streams came")
                self.arrived.wait(left)
        with self.server.lock:
            self.server.stop_waiting(self)
        for index, (sid, sock) in enumerate(zip(P.stream_ids(wanted), self.pending)):
            if spec.window:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, spec.window)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, spec.window)
            if spec.congestion and sock.family != socket.AF_UNIX:
                _congestion(sock, spec.congestion)
            self.streams.append(Stream(sock, sid, not spec.client_sends(index), spec.bandwidth))

    def _collect_udp(self, spec: TestSpec) -> None:
        """UDP hellos carry no cookie: one test at a time sets its UDP streams up,
        so a hello on the shared port is that test's."""
        with self.server.udp_setup:
            waiting = udp.bound_like(self.server.listener)
            try:
                P.send_state(self.ctrl, P.CREATE_STREAMS)
                for index, sid in enumerate(P.stream_ids(spec.stream_count)):
                    sock, waiting = udp.accept(waiting, self.server.listener)
                    if spec.window:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, spec.window)
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, spec.window)
                    self.streams.append(udp.UdpStream(sock, sid, not spec.client_sends(index),
                                                      spec.bandwidth, spec.counters64))
            finally:
                waiting.close()

    def _await_end(self, run: Run) -> None:
        """Serve until the client's TEST_END; -O ends the omitted part here too."""
        omit_end = self.spec.omit or None
        last_moved, last_change = -1, time.monotonic()
        self.ctrl.settimeout(None)
        while True:
            ready, _, _ = select.select([self.ctrl], [], [], 0.5)
            if omit_end is not None and run.elapsed() >= omit_end:
                run.end_omit()
                omit_end = None
            if ready:
                state = P.read_state(self.ctrl)
                if state == P.TEST_END:
                    return
                raise P.ProtocolError(f"the client sent {P.STATE_NAMES.get(state, state)}")
            moved = run.moved()
            if moved != last_moved:
                last_moved, last_change = moved, time.monotonic()
            elif time.monotonic() - last_change > IDLE_LIMIT:
                raise P.ProtocolError(f"nothing moved for {IDLE_LIMIT:g}s")

    def _await_done(self) -> None:
        self.ctrl.settimeout(HANDSHAKE_WAIT)
        try:
            state = P.read_state(self.ctrl)
        except P.ProtocolError:
            return  # an old client may just close
        if state not in (P.IPERF_DONE, P.CLIENT_TERMINATE):
            raise P.ProtocolError(f"the client ended with {P.STATE_NAMES.get(state, state)}")

    def _report(self, theirs: dict[int, dict]) -> dict:
        rows = []
        for stream in self.streams:
            other = theirs.get(stream.id, {})
            retr = stream.final_retransmits if stream.sender else other.get("retransmits")
            if not stream.is_tcp:
                retr = None
            row = summary_row(stream.id, stream.seconds, stream.counted, retr)
            row["direction"] = "sender" if stream.sender else "receiver"
            row["peer_bytes"] = other.get("bytes")
            if spec_udp := self.spec.protocol == "udp":
                row.update(_udp_row(stream, other))
            row["protocol"] = "udp" if spec_udp else "tcp"
            rows.append(row)
        tcp = isinstance(self.addr, tuple)
        return {"client": self.where,
                "client_addr": self.addr[0].removeprefix("::ffff:") if tcp else "unix",
                "client_port": self.addr[1] if tcp else None, "spec": self.spec,
                "streams": rows}

    def _close(self) -> None:
        if self.run_ is not None:
            self.run_.close()
        for sock in self.pending:
            sock.close()
        self.ctrl.close()


def _udp_row(stream, other: dict) -> dict:
    if stream.sender:
        return udp_fields(stream.counted_packets, other.get("errors", 0),
                          other.get("jitter", 0) * 1000)
    return udp_fields(other.get("packets") or stream.counted_packets, stream.counted_lost,
                      stream.jitter * 1000)


def _deny(sock: socket.socket) -> None:
    try:
        P.send_state(sock, P.ACCESS_DENIED)
    except P.ProtocolError:
        pass
    sock.close()


def _congestion(sock: socket.socket, name: str) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
    except OSError as exc:
        raise P.ProtocolError(f"congestion control '{name}': {exc.strerror}") from None


def _where(addr) -> str:
    if not isinstance(addr, tuple):
        return "a Unix socket peer"
    host, port = addr[:2]
    host = host.removeprefix("::ffff:")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _text(exc: Exception) -> str:
    return getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)


def _end_streams(streams) -> None:
    """At TEST_END iperf3's server closes the data streams; an iperf3 client that
    receives (-R) sits in a blocking read of a whole block until it sees that end."""
    for stream in streams:
        if stream.sock.type != socket.SOCK_STREAM:
            continue
        try:
            stream.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
