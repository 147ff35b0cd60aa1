"""pysock perf: throughput between two ends over iperf3's protocol; a server
that runs many tests at once, a client that talks to iperf3 servers too."""

from __future__ import annotations

from dataclasses import dataclass

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.errors import ExitStatus, UsageError

SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _scaled(text: str, scales: dict[str, float]) -> float:
    """A number with an optional suffix from scales ('128K'), times that scale;
    ValueError when it is not one."""
    text = text.strip().lower()
    scale = scales.get(text[-1:], 1)
    return float(text[:-1] if scale > 1 else text) * scale


def size_type(low: int = 1, high: int = 1 << 62):
    """iperf3's byte counts: a number with an optional K/M/G/T suffix (1024-based)."""
    def parse(text: str) -> int:
        try:
            size = int(_scaled(text, SUFFIXES))
        except ValueError:
            raise UsageError(f"'{text}' is not a size (a number with an optional K, M, G "
                             f"suffix)") from None
        if not low <= size <= high:
            raise UsageError(f"{text} is out of range ({low} to {high} bytes)")
        return size
    return options.Parsed("bytes", parse)


def _bitrate(text: str) -> int:
    """-b: bits per second with an optional K/M/G suffix (1000-based, as iperf3)."""
    try:
        rate = _scaled(text, {"k": 1e3, "m": 1e6, "g": 1e9})
    except ValueError:
        raise UsageError(f"'{text}' is not a rate (bits/s with an optional K, M, G suffix)") from None
    if not 0 < rate < 1e13:
        raise UsageError(f"{text} is out of range")
    return int(rate)


BITRATE = options.Parsed("rate", _bitrate)

UDP_DEFAULT_RATE = 1 << 20  # iperf3's default for UDP: 1 Mbit/s (1024 * 1024)

RR_ONLY = ("request_size", "response_size", "rate")
NOT_WITH_RR = ("bitrate", "nbytes", "blocks", "parallel", "reverse", "bidir", "length",
               "interval", "omit", "window", "congestion", "zerocopy", "cport", "iperf_json")

CLIENT_ONLY = ("rr", "request_size", "response_size", "rate", "udp", "bitrate", "time", "nbytes",
               "blocks", "parallel", "reverse", "bidir",
               "length", "interval",
               "omit", "window", "congestion", "zerocopy", "cport", "iperf_json")


@dataclass(frozen=True)
class StreamOptions:
    """A throughput test's options as given (-t, -n, --blocks, -P, -R, --bidir, -u,
    -b, --length, -i, -O, --window, -C, -Z, --cport); checked by check() once the
    kind of test is known, then test_spec() and client_options()."""

    time: float | None
    nbytes: int | None
    blocks: int | None
    parallel: int
    reverse: bool
    bidir: bool
    udp: bool
    bitrate: int | None
    length: int | None
    interval: float
    omit: float
    window: int | None
    congestion: str | None
    zerocopy: bool
    cport: int | None

    def check(self, json: bool, iperf_json: bool) -> None:
        if sum(x is not None for x in (self.time, self.nbytes, self.blocks)) > 1:
            raise UsageError("-t, -n and --blocks each end the test: give one", see_help=True)
        if self.reverse and self.bidir:
            raise UsageError("-R and --bidir cannot be used together", see_help=True)
        if json and iperf_json:
            raise UsageError("--json and -J cannot be used together", see_help=True)
        if self.udp and (self.zerocopy or self.congestion):
            raise UsageError("-Z and -C are for TCP, not with -u", see_help=True)
        if self.udp and self.length is not None and self.length < 16:
            raise UsageError("--length: UDP datagrams need at least 16 bytes (the header)",
                             see_help=True)
        if not self.udp and self.length is not None and self.length > 1 << 20:
            raise UsageError("--length: at most 1M for TCP", see_help=True)

    def test_spec(self):
        from pysock.probes.perf.params import TestSpec
        ends_by_size = self.nbytes or self.blocks
        duration = 0.0 if ends_by_size else (self.time if self.time is not None else 10.0)
        bitrate = UDP_DEFAULT_RATE if self.udp and self.bitrate is None else self.bitrate
        return TestSpec(protocol="udp" if self.udp else "tcp", bandwidth=bitrate or 0,
                        duration=duration, bytes=self.nbytes or 0, blocks=self.blocks or 0,
                        parallel=self.parallel, reverse=self.reverse, bidir=self.bidir,
                        length=self.length or 0, omit=self.omit, window=self.window or 0,
                        congestion=self.congestion)

    def client_options(self, target, unix):
        from pysock.probes.perf.client import ClientOptions
        return ClientOptions(target=target, interval=self.interval, zerocopy=self.zerocopy,
                             cport=self.cport, unix=unix)


@dataclass(frozen=True)
class RrOptions:
    """--rr and its request and response sizes and rate."""

    on: bool
    request_size: int
    response_size: int
    rate: float | None


def _server_options(*, max_tests, one_off):
    from pysock.probes.perf.server import ServerOptions
    return ServerOptions(max_tests=max_tests or 0, one_off=one_off)


def _rr_options(*, rr, request_size, response_size, rate) -> RrOptions:
    return RrOptions(rr, request_size, response_size, rate)


# --max-tests, --one-off: the command receives them as serving=ServerOptions
server_options = options.option_group([
    click.option("--max-tests", type=click.IntRange(min=1),
                 help="Server: at most N tests at once."),
    click.option("--one-off", is_flag=True, help="Server: end after one test (iperf3 -1)."),
], _server_options, "serving")

# -t ... --cport: the command receives them as stream=StreamOptions (-4/-6 as they are)
stream_options = options.option_group([
    click.option("-t", "--time", type=options.SECONDS, help="Seconds to transmit [default: 10]."),
    click.option("-n", "--bytes", "nbytes", type=size_type(),
                 help="Bytes to transmit (K/M/G), instead of -t."),
    click.option("--blocks", type=click.IntRange(min=1), help="Blocks to transmit, instead of -t."),
    click.option("-P", "--parallel", type=click.IntRange(1, 128), default=1, show_default=True,
                 help="Parallel streams."),
    click.option("-R", "--reverse", is_flag=True, help="The server sends, the client receives."),
    click.option("--bidir", is_flag=True, help="Both ends send and receive at once."),
    click.option("-u", "--udp", is_flag=True, help="UDP datagrams instead of TCP streams."),
    click.option("-b", "--bitrate", type=BITRATE,
                 help="Bits/s per stream (K/M/G) [default: unlimited; 1M with -u]."),
    click.option("--length", type=size_type(1, 65507),
                 help="Bytes per write or datagram [default: 128K; 1460 with -u]."),
    click.option("-i", "--interval", type=options.Seconds(allow_zero=True), default=1.0,
                 show_default=True, help="Seconds between interval reports (0: none)."),
    click.option("-O", "--omit", type=options.Seconds(allow_zero=True), default=0.0,
                 help="Leave out the first SECS (TCP slow start)."),
    click.option("--window", type=size_type(1024, 1 << 30),
                 help="Socket buffer size (SO_SNDBUF/SO_RCVBUF)."),
    click.option("-C", "--congestion", metavar="ALGO",
                 help="TCP congestion control (cubic, bbr, ...)."),
    click.option("-Z", "--zerocopy", is_flag=True, help="Send with sendfile(2) (iperf3 -Z)."),
    options.family,
    click.option("--cport", type=options.PORT,
                 help="Client port of the data streams (then +1 each)."),
], StreamOptions, "stream", keep=("family",))

# --rr, --request-size, --response-size, --rate: the command receives them as rr=RrOptions
rr_options = options.option_group([
    click.option("--rr", is_flag=True,
                 help="Request/response latency (pysock servers only): transactions/s, "
                      "percentiles."),
    click.option("--request-size", type=click.IntRange(1, 1 << 20), default=1,
                 show_default=True, help="--rr: bytes per request."),
    click.option("--response-size", type=click.IntRange(1, 1 << 20), default=1,
                 show_default=True, help="--rr: bytes per response."),
    click.option("--rate", type=click.FloatRange(min=0, min_open=True),
                 help="--rr: transactions per second [default: as fast as possible]."),
], _rr_options, "rr")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("host", required=False, metavar="HOST|ADDRESS")
@click.option("-s", "-l", "--server", "--listen", "server", is_flag=True,
              help="Run a server (serves many tests at once).")
@click.option("-p", "--port", type=options.PORT, default=5201, show_default=True,
              help="The server's port.")
@server_options
@stream_options
@click.option("--unix", "unix", type=options.UNIX_PATH, metavar="PATH",
              help="Over Unix stream sockets at PATH (the server listens there).")
@rr_options
@click.option("-J", "--iperf-json", "iperf_json", is_flag=True,
              help="iperf3's JSON document (as iperf3 -J prints).")
@options.json_output
def perf(host, server, port, serving, stream, family, unix, rr, iperf_json, json) -> int:
    """Measure throughput to HOST running `iperf3 -s` or `pysock perf -s`, or serve
    (-s [ADDRESS]): iperf3's protocol, so either end may be iperf3. The server runs
    many tests at once."""
    if server:
        _refuse_given(CLIENT_ONLY, "a server (-s)")
        if unix and host:
            raise UsageError("give either an ADDRESS or --unix PATH to serve on", see_help=True)
        return _serve(host, port, family, serving, json, unix)
    if serving.max_tests or serving.one_off:
        raise UsageError("--max-tests and --one-off are for the server (-s)", see_help=True)
    if unix and host:
        raise UsageError("give either a HOST or --unix PATH", see_help=True)
    if not host and not unix:
        raise UsageError("give the HOST to test against (or --unix PATH), or -s to serve", see_help=True)
    if unix and stream.udp:
        raise UsageError("-u and --unix cannot be used together", see_help=True)
    if rr.on:
        _refuse_given(NOT_WITH_RR, "--rr")
        return _request_response(host, port, family, json, unix, rr, stream)
    _refuse_given(RR_ONLY, "throughput tests (they need --rr)")
    stream.check(json, iperf_json)
    return _client(host, port, family, unix, stream, json, iperf_json)


def _refuse_given(names, what: str) -> None:
    ctx = click.get_current_context()
    default = click.core.ParameterSource.DEFAULT
    given = [n for n in names if ctx.get_parameter_source(n) not in (default, None)]
    if given:
        flags = ", ".join("--" + n.replace("_", "-").replace("nbytes", "bytes") for n in given)
        raise UsageError(f"{flags}: client options, not for {what}", see_help=True)


def _serve(address, port, family, serving, json, unix) -> int:
    from pysock.net import endpoints
    from pysock.probes.perf.server import PerfServer
    from pysock.render.perf import ServerView
    view = ServerView(json_lines=json)
    if unix is not None:
        from pysock.net.unixsock import listen_unix
        holder = listen_unix(unix)
        listener = holder.sock
        view.listening(str(unix))
    else:
        listener = holder = endpoints.listen(address, port, family=family)
        where = listener.getsockname()
        view.listening(f"{where[0]} port {where[1]}")
    server = PerfServer(listener, serving)
    try:
        for kind, payload in server.events():
            if kind == "log":
                view.log(payload)
            else:
                view.test(payload)
    finally:
        holder.close()
    return ExitStatus.OK


def _request_response(host, port, family, json, unix, rr: RrOptions, stream: StreamOptions) -> int:
    from pysock.net import endpoints
    from pysock.probes.perf import rr as rr_test
    from pysock.render.perf import rr_output
    protocol = "unix" if unix else "udp" if stream.udp else "tcp"
    spec = rr_test.RrSpec(protocol=protocol, request=rr.request_size, response=rr.response_size,
                          duration=stream.time if stream.time is not None else 10.0,
                          rate=rr.rate or 0.0)
    if unix:
        from pysock.net.unixsock import connect_unix
        ctrl = connect_unix(unix, timeout=10)
    else:
        ctrl = endpoints.connect(endpoints.ClientSpec(host=host, port=port, family=family,
                                                      timeout=10.0))
    with ctrl:
        record = rr_test.run_client(ctrl, spec, None)
    rr_output(record, json=json)
    return ExitStatus.OK


def _client(host, port, family, unix, stream: StreamOptions, json, iperf_json) -> int:
    from pysock.net.endpoints import ClientSpec
    from pysock.probes.perf.client import PerfClient
    target = ClientSpec(host=host or "", port=port, family=family, timeout=10.0)
    client = PerfClient(stream.test_spec(), stream.client_options(target, unix))
    with _view(json, iperf_json, stream.bidir) as view:
        for kind, payload in client.events():
            getattr(view, kind)(payload)
    return ExitStatus.OK


def _view(json: bool, iperf_json: bool, bidir: bool):
    from pysock.render import perf as render
    if iperf_json:
        return render.IperfJsonView(bidir=bidir)
    mode = settings().output_mode(json)
    if mode == "json":
        return render.JsonLinesView(bidir=bidir)
    if mode == "table":
        return render.LiveView(bidir=bidir, color=settings().color)
    return render.ClientView(bidir=bidir)


