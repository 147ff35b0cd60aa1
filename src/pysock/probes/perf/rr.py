"""--rr: request/response latency between two pysocks (netperf TCP_RR, sockperf
ping-pong). It rides on the perf server's port: the client's first 37 bytes are
a fixed marker instead of an iperf3 cookie, which a pysock server answers with
RR_READY and an iperf3 server with PARAM_EXCHANGE, so the client can say that the
peer is iperf3, which has no such mode. Then a JSON block gives the sizes; TCP and
Unix streams then ping-pong on that same connection, UDP on a datagram socket
whose port the server sends back."""

from __future__ import annotations

import socket
import struct
import time
from array import array
from dataclasses import dataclass

from pysock.errors import NetworkError
from pysock.probes.perf import protocol as P

MARKER = b"pysock-request-response-mode-v1-rr!!\0"
RR_READY = 100
MAX_MESSAGE = 1 << 20
UDP_WAIT = 1.0  # a UDP request or reply lost: count it and go on after this long
STALL_LIMIT = 10.0  # the client gives up on a TCP/Unix server that answers nothing this long
TIMED_OUT = -1


@dataclass(frozen=True)
class RrSpec:
    protocol: str = "tcp"  # tcp | udp | unix
    request: int = 1
    response: int = 1
    duration: float = 10.0
    rate: float = 0.0  # transactions/s, 0: as fast as possible


# ---- client -----------------------------------------------------------------------------------


def run_client(ctrl: socket.socket, spec: RrSpec, host: str | None) -> dict:
    """Measure over ctrl (a connected TCP or Unix socket); returns the summary record."""
    ctrl.settimeout(10)
    P.send_all(ctrl, MARKER, "request/response marker")
    state = P.read_state(ctrl)
    if state == P.PARAM_EXCHANGE:
        raise NetworkError("the server speaks only iperf3's protocol (iperf3 -s?)",
                           advice="perf_rr_server")
    if state != RR_READY:
        raise NetworkError(f"the server answered the request/response test with state {state}")
    P.send_json(ctrl, {"protocol": spec.protocol, "request": spec.request,
                       "response": spec.response}, "request/response parameters")
    if spec.protocol == "udp":
        port = P.read_json(ctrl, "UDP port")["port"]
        family = ctrl.family
        with socket.socket(family, socket.SOCK_DGRAM) as data:
            data.connect((host or ctrl.getpeername()[0], port))
            return _measure(data, spec, datagrams=True)
    ctrl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if ctrl.family != socket.AF_UNIX \
        else None
    return _measure(ctrl, spec, datagrams=False)


def _measure(sock: socket.socket, spec: RrSpec, datagrams: bool) -> dict:
    _kernel_timeout(sock, UDP_WAIT if datagrams else STALL_LIMIT)
    exchange = _Exchange(sock, spec, datagrams)
    latencies = array("q")  # nanoseconds, 8 bytes each: a million transactions are 8 MB
    clock = time.perf_counter_ns
    began = clock()
    end = began + int(spec.duration * 1e9)
    if spec.rate:
        lost = _paced(exchange, latencies, began, end, int(1e9 / spec.rate))
    else:
        lost = _closed_loop(exchange, latencies, end)
    seconds = (clock() - began) / 1e9
    return summary(latencies, seconds, spec, lost)


class _Exchange:
    """One request out and its reply in, on a blocking socket (SO_RCVTIMEO bounds
    the wait): one send and one receive system call unless a transfer is partial."""

    def __init__(self, sock: socket.socket, spec: RrSpec, datagrams: bool):
        self.sock = sock
        self.request = b"r" * spec.request
        # a datagram reply: one byte of room more than asked, so a long one shows
        room = memoryview(bytearray(spec.response + (1 if datagrams else 0)))
        self.reply = room if datagrams else room[:spec.response]
        self.size = spec.response
        self.datagrams = datagrams

    def once(self) -> bool:
        """False when a UDP request or its reply was lost."""
        sent = self.sock.send(self.request)
        if sent != len(self.request):
            self.sock.sendall(self.request[sent:])
        return self.finish()

    def finish(self, got: int | None = None) -> bool:
        """The reply's arrival; got: what a first receive already brought
        (TIMED_OUT: SO_RCVTIMEO ran out)."""
        if got is None:
            try:
                got = self.sock.recv_into(self.reply)
            except BlockingIOError:
                got = TIMED_OUT
        if got == TIMED_OUT:
            if self.datagrams:
                return False
            raise NetworkError(f"the server stopped answering ({STALL_LIMIT:g} s)")
        if not self.datagrams and got != self.size:
            _read_exact(self.sock, self.reply, self.size, got)
        return True


def _closed_loop(exchange: _Exchange, latencies: array, end: int) -> int:
    """As fast as possible, one transaction outstanding, the clock read twice a
    transaction; the common case stays inline, anything else goes to _Exchange."""
    clock = time.perf_counter_ns
    send, recv_into = exchange.sock.send, exchange.sock.recv_into
    request, reply, size = exchange.request, exchange.reply, exchange.size
    whole = len(request)
    record = latencies.append
    lost = 0
    t0 = clock()
    while t0 < end:
        sent = send(request)
        if sent != whole:
            exchange.sock.sendall(request[sent:])
        try:
            got = recv_into(reply)
        except BlockingIOError:
            got = TIMED_OUT
        if got != size and not exchange.finish(got):
            lost += 1
        else:
            record(clock() - t0)
        t0 = clock()
    return lost


def _paced(exchange: _Exchange, latencies: array, began: int, end: int, gap: int) -> int:
    """--rate: one transaction every gap nanoseconds."""
    clock = time.perf_counter_ns
    lost = 0
    next_at = began
    now = clock()
    while now < end:
        if now < next_at:
            time.sleep((next_at - now) / 1e9)
            now = clock()
            continue
        next_at += gap
        t0 = clock()
        if exchange.once():
            latencies.append(clock() - t0)
        else:
            lost += 1
        now = clock()
    return lost


def _kernel_timeout(sock: socket.socket, seconds: float) -> None:
    """A blocking socket with SO_RCVTIMEO: each receive is one system call (Python's
    own timeouts poll before every call, a second call per transaction)."""
    sock.settimeout(None)
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def _read_exact(sock: socket.socket, view: memoryview, size: int, got: int = 0) -> None:
    if not got:
        raise NetworkError("the server closed the request/response connection")
    while got < size:
        try:
            n = sock.recv_into(view[got:size])
        except BlockingIOError:
            raise NetworkError("the server stopped answering") from None
        if not n:
            raise NetworkError("the server closed the request/response connection")
        got += n


def summary(latencies, seconds: float, spec: RrSpec, lost: int) -> dict:
    if not latencies:
        raise NetworkError("no transaction completed")
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(int(len(ordered) * p), len(ordered) - 1)] / 1000

    return {"type": "summary", "protocol": spec.protocol, "request": spec.request,
            "response": spec.response, "transactions": len(ordered), "lost": lost,
            "seconds": round(seconds, 6), "transactions_per_s": len(ordered) / seconds,
            "p50_us": pct(0.50), "p90_us": pct(0.90), "p99_us": pct(0.99),
            "p999_us": pct(0.999), "max_us": ordered[-1] / 1000,
            "mean_us": sum(ordered) / len(ordered) / 1000}


# ---- server -----------------------------------------------------------------------------------


def serve(ctrl: socket.socket, bind_host: str | None) -> str:
    """The server's side, after the marker: answer requests until the client leaves.
    Returns the protocol served (for the log line)."""
    P.send_state(ctrl, RR_READY)
    params = P.read_json(ctrl, "request/response parameters")
    protocol = params.get("protocol")
    request, response = params.get("request"), params.get("response")
    if protocol not in ("tcp", "udp", "unix") or not all(
            isinstance(v, int) and 1 <= v <= MAX_MESSAGE for v in (request, response)):
        raise P.ProtocolError("bad request/response parameters")
    if protocol == "udp":
        _serve_udp(ctrl, response)
    else:
        _serve_stream(ctrl, request, response)
    return protocol


def _serve_stream(sock: socket.socket, request: int, response: int) -> None:
    if sock.family != socket.AF_UNIX:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _kernel_timeout(sock, 60)
    view = memoryview(bytearray(request))
    reply = b"a" * response
    recv_into, send = sock.recv_into, sock.send
    try:
        while True:
            got = recv_into(view)
            if got != request and not _rest_of_request(recv_into, view, got):
                return
            sent = send(reply)
            if sent != response:
                sock.sendall(reply[sent:])
    except BlockingIOError:
        raise P.ProtocolError("the client sent nothing for 60 s") from None


def _rest_of_request(recv_into, view: memoryview, got: int) -> bool:
    """A request that came in pieces; False when the client left instead."""
    while got:
        if got == len(view):
            return True
        n = recv_into(view[got:])
        got = got + n if n else 0
    return False


def _serve_udp(ctrl: socket.socket, response: int) -> None:
    family = ctrl.family
    with socket.socket(family, socket.SOCK_DGRAM) as data:
        data.bind((ctrl.getsockname()[0], 0))
        P.send_json(ctrl, {"port": data.getsockname()[1]}, "UDP port")
        reply = b"a" * response
        buffer = bytearray(MAX_MESSAGE)
        ctrl.setblocking(False)
        _kernel_timeout(data, 0.5)
        client = _first_request(data, ctrl, buffer)
        if client is None:
            return
        # connected to the client: recv/send without turning an address into a tuple
        # and back for every datagram
        data.connect(client)
        receive, answer = data.recv_into, data.send
        answer(reply)
        while True:
            try:
                receive(buffer)
                answer(reply)
            except (BlockingIOError, ConnectionRefusedError):  # quiet, or a reply too late
                if _closed(ctrl):
                    return


def _first_request(data: socket.socket, ctrl: socket.socket, buffer: bytearray):
    """The client's address, from its first datagram (None: it left first)."""
    while True:
        try:
            return data.recvfrom_into(buffer)[1]
        except BlockingIOError:
            if _closed(ctrl):
                return None


def _closed(ctrl: socket.socket) -> bool:
    try:
        return ctrl.recv(1) == b""
    except BlockingIOError:
        return False


