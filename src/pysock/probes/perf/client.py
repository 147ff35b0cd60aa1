"""One test against an iperf3 (or pysock) server: the client side of iperf3's
control protocol. run() yields events for the renderer:
('connected', dict), ('interval', [records]), ('summary', [records]),
('document', dict) where the dict is iperf3's -J document."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace

from pysock.errors import NetworkError
from pysock.net import endpoints
from pysock.probes.perf import protocol as P
from pysock.probes.perf import udp
from pysock.probes.perf.params import TestSpec
from pysock.probes.perf.results import (
    congestion_of,
    local_results,
    peer_results,
    summary_records,
    summary_row,
    udp_fields,
)
from pysock.probes.perf.run import Run
from pysock.probes.perf.streams import Stream

CONTROL_WAIT = 30.0  # seconds a server may take between two state bytes


@dataclass(frozen=True)
class ClientOptions:
    target: endpoints.ClientSpec
    interval: float = 1.0  # 0: no interval reports
    zerocopy: bool = False
    cport: int | None = None
    unix: object | None = None  # a UnixAddress: the test runs over Unix stream sockets


class PerfClient:
    def __init__(self, spec: TestSpec, options: ClientOptions):
        self.spec = spec
        self.options = options
        self.cookie = P.new_cookie()
        self.ctrl: socket.socket | None = None
        self.streams: list[Stream] = []
        self.run: Run | None = None
        self.started_at = 0.0

    def events(self) -> Iterator[tuple[str, object]]:
        try:
            yield from self._session()
        finally:
            self._close()

    def _session(self) -> Iterator[tuple[str, object]]:
        self.ctrl = self._connect_stream(None)
        if self.ctrl.family != socket.AF_UNIX:
            self.ctrl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ctrl.settimeout(CONTROL_WAIT)
        P.send_all(self.ctrl, self.cookie, "cookie")
        peer = None
        while True:
            state = P.read_state(self.ctrl)
            if state == P.PARAM_EXCHANGE:
                P.send_json(self.ctrl, self.spec.to_params(), "parameter block")
            elif state == P.CREATE_STREAMS:
                self._open_streams()
                yield "connected", self._connected_info()
            elif state == P.TEST_START:
                continue
            elif state == P.TEST_RUNNING:
                yield from self._measure()
            elif state == P.EXCHANGE_RESULTS:
                cpu, congestion = self._cpu, congestion_of(self.streams)
                P.send_json(self.ctrl, local_results(self.streams, cpu, congestion), "results")
                peer = P.read_json(self.ctrl, "server's results")
            elif state == P.DISPLAY_RESULTS:
                P.send_state(self.ctrl, P.IPERF_DONE)
                yield "summary", self._summaries(peer)
                return
            else:
                raise NetworkError(_refusal(self.ctrl, state))

    def _connect_stream(self, target: endpoints.ClientSpec | None) -> socket.socket:
        if self.options.unix is not None:
            from pysock.net.unixsock import connect_unix
            return connect_unix(self.options.unix, timeout=10)
        return endpoints.connect(target or replace(self.options.target, source_port=None))

    def _open_streams(self) -> None:
        target = self.options.target
        if self.ctrl.family != socket.AF_UNIX:
            host, port = self.ctrl.getpeername()[:2]
            target = replace(target, host=host, port=port, numeric=True)
        ids = P.stream_ids(self.spec.stream_count)
        for index, sid in enumerate(ids):
            cport = self.options.cport + index if self.options.cport else None
            sends = self.spec.client_sends(index)
            if self.spec.protocol == "udp":
                sock = endpoints.connect(replace(target, source_port=cport), socket.SOCK_DGRAM)
                self._tune(sock)
                udp.hello(sock)
                self.streams.append(udp.UdpStream(sock, sid, sends, self.spec.bandwidth,
                                                  counters64=True))
                continue
            sock = self._connect_stream(replace(target, source_port=cport))
            self._tune(sock)
            P.send_all(sock, self.cookie, "stream cookie")
            self.streams.append(Stream(sock, sid, sends, self.spec.bandwidth))

    def _tune(self, sock: socket.socket) -> None:
        if self.spec.window:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.spec.window)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.spec.window)
        if self.spec.congestion and sock.family != socket.AF_UNIX \
                and sock.type == socket.SOCK_STREAM:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION,
                                self.spec.congestion.encode())
            except OSError as exc:
                raise NetworkError(f"congestion control '{self.spec.congestion}': "
                                   f"{exc.strerror}") from None

    def _connected_info(self) -> dict:
        remote = _place(self.ctrl.getpeername())
        host = str(self.options.unix) if self.options.unix else self.options.target.host
        return {"host": host, "port": remote[1], "cookie":
                self.cookie[:-1].decode(), "spec": self.spec,
                "streams": [{"stream": s.id, "local": _place(s.sock.getsockname()),
                             "remote": _place(s.sock.getpeername()), "sender": s.sender}
                            for s in self.streams],
                "sndbuf": self.streams[0].sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                "rcvbuf": self.streams[0].sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                "mss": self._mss()}

    def _mss(self) -> int | None:
        if not self.streams[0].is_tcp:
            return None
        try:
            return self.streams[0].sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
        except OSError:
            return None

    def _measure(self) -> Iterator[tuple[str, object]]:
        spec = self.spec
        self.run = run = Run(spec, self.streams, zerocopy=self.options.zerocopy)
        run.start()
        step = self.options.interval or None
        next_tick = step
        omit_end = spec.omit if spec.omit else None
        end = spec.omit + spec.duration if spec.duration and not (spec.bytes or spec.blocks) \
            else None
        while True:
            now = run.elapsed()
            if omit_end is not None and now >= omit_end:
                omit_end = None
                records = run.end_omit()
                if step:
                    yield "interval", records
                next_tick = spec.omit + step if step else None
            elif step and now >= next_tick:
                yield "interval", run.sample()
                next_tick += step
            if self._finished(run, end, now):
                break
            wake = min(t for t in (next_tick, omit_end, end, now + 0.05) if t is not None)
            self._watch_control(max(wake - run.elapsed(), 0))
        self._cpu = run.finish()
        if step and not run.omitting:
            tail = run.sample()
            if tail and tail[0]["end_s"] - tail[0]["start_s"] > step * 0.1:
                yield "interval", tail
        P.send_state(self.ctrl, P.TEST_END)

    def _finished(self, run: Run, end: float | None, now: float) -> bool:
        if run.omitting:
            return False
        if end is not None:
            return now >= end
        limit = self.spec.bytes or self.spec.blocks
        if not limit:
            return run.all_ended()
        if any(s.sender for s in self.streams):
            return run.senders_done()
        return self.spec.bytes and run.received() >= self.spec.bytes or run.all_ended()

    def _watch_control(self, wait: float) -> None:
        """Sleep until the next event, but hear a server that gives up mid-test."""
        ready, _, _ = select.select([self.ctrl], [], [], wait)
        if ready:
            state = P.read_state(self.ctrl)
            raise NetworkError(_refusal(self.ctrl, state))
        if self.run.all_ended() and any(s.error for s in self.streams):
            errors = {s.error for s in self.streams if s.error}
            raise NetworkError(f"the data streams failed: {', '.join(sorted(errors))}")

    def _summaries(self, peer: dict | None) -> dict:
        ids = {s.id for s in self.streams}
        theirs = peer_results(peer or {}, ids)
        sent, received, sent_rev, received_rev = [], [], [], []
        for stream in self.streams:
            other = theirs.get(stream.id, {"bytes": 0, "retransmits": -1, "seconds": None,
                                           "jitter": 0, "errors": 0, "packets": 0})
            mine = summary_row(stream.id, stream.seconds, stream.counted,
                               stream.final_retransmits if stream.sender and stream.is_tcp
                               else None)
            seconds = other["seconds"] or stream.seconds
            theirs_row = summary_row(stream.id, seconds, other["bytes"],
                                     None if stream.sender else other["retransmits"])
            if self.spec.protocol == "udp":
                _add_udp(stream, other, mine, theirs_row)
            if stream.sender:
                sent.append(mine)
                received.append(theirs_row)
            else:
                sent_rev.append(theirs_row)
                received_rev.append(mine)
        forward = not self.spec.reverse or self.spec.bidir
        records = []
        if forward:
            records += summary_records(sent, "sender", False)
            records += summary_records(received, "receiver", False)
        if sent_rev:
            records += summary_records(sent_rev, "sender", True)
            records += summary_records(received_rev, "receiver", True)
        return {"records": records, "cpu": self._cpu, "peer": peer or {},
                "congestion": congestion_of(self.streams)}

    def _close(self) -> None:
        if self.run is not None:
            self.run.close()
        for stream in self.streams:
            stream.close()
        if self.ctrl is not None:
            self.ctrl.close()


def _place(sockaddr) -> tuple:
    """(host, port) of an IP socket; (path, None) of a Unix one."""
    if isinstance(sockaddr, tuple):
        return sockaddr[0], sockaddr[1]
    name = sockaddr.decode(errors="replace") if isinstance(sockaddr, bytes) else sockaddr
    return name or "unix", None


def _add_udp(stream, other: dict, mine: dict, theirs: dict) -> None:
    """UDP's loss and jitter: the receiver's counts over the sender's packets."""
    if stream.sender:
        sent, lost, jitter = stream.counted_packets, other["errors"], other["jitter"]
    else:
        sent, lost, jitter = other["packets"], stream.counted_lost, stream.jitter
    fields = udp_fields(sent, lost, jitter * 1000)
    mine.update(fields)
    theirs.update(fields)


def _refusal(ctrl: socket.socket, state: int) -> str:
    if state == P.ACCESS_DENIED:
        return "the server is busy running a test (it refused this one)"
    if state == P.SERVER_ERROR:
        return P.read_server_error(ctrl)
    if state == P.SERVER_TERMINATE:
        return "the server ended the test"
    return f"the server sent an unexpected state {P.STATE_NAMES.get(state, state)}"
