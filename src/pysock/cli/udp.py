"""pysock udp: datagrams to and from a peer (nc -u), a receiver (nc -u -l),
multicast and broadcast, and loss/jitter measurement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import click
from click.core import ParameterSource

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.datagramopts import datagram_options, relay_datagrams, serve_datagrams
from pysock.cli.relayopts import check_stream_options, datagram_relay_options
from pysock.cli.serveopts import bind_place
from pysock.errors import ExitStatus, UsageError

QUIT_AFTER_INPUT = 1.0  # a client's wait for replies once input ended, as socat -t


class CastSpec(NamedTuple):
    """Broadcast and multicast: the groups -l joins, the interface for them and for
    sending multicast, and the socket options the flags ask for (SO_BROADCAST, TTL
    and hop limit, multicast loop and interface)."""

    join: tuple[str, ...] = ()
    iface: str | None = None
    sockopts: tuple = ()


def _cast(*, broadcast, join, iface, ttl, loop) -> CastSpec:
    from pysock.net.multicast import interface_index
    from pysock.net.sockopt import SockOpt
    out = []
    if broadcast:
        out.append(SockOpt("broadcast", None))
    if ttl is not None:
        out += [SockOpt("ttl", str(ttl)), SockOpt("multicast_ttl", str(ttl))]
    if loop is not None:
        out.append(SockOpt("multicast_loop", "1" if loop else "0"))
    if iface is not None:
        interface_index(iface)  # a usage error now, not a socket error later
        out.append(SockOpt("multicast_if", iface))
    return CastSpec(tuple(join), iface, tuple(out))


# --broadcast, --join, --iface, --ttl, --loop: the command receives cast=CastSpec
cast_options = opt.option_group([
    click.option("--broadcast", is_flag=True, help="Allow sending to a broadcast address (SO_BROADCAST)."),
    click.option("--join", multiple=True, metavar="GROUP",
                 help="With -l: join multicast GROUP (IPv4 or IPv6; repeatable)."),
    click.option("--iface", metavar="NAME", default=None,
                 help="Interface for --join and for sending multicast."),
    click.option("--ttl", "--hops", "ttl", type=click.IntRange(0, 255), default=None,
                 help="TTL (IPv4) / hop limit (IPv6) of sent datagrams, unicast and multicast."),
    click.option("--loop/--no-loop", "loop", default=None,
                 help="Whether multicast we send is also delivered on this host [kernel: loop]."),
], _cast, "cast")


class MeasureSpec(NamedTuple):
    """--measure's sending side: datagrams per second, how many or for how long, and
    their size (the receiver, -l --measure, only counts)."""

    rate: float
    count: int | None
    duration: float | None
    size: int


def _measure(*, measure, rate, count, duration, size) -> MeasureSpec | None:
    """--measure with its options -> MeasureSpec, or None without --measure; the
    sending options are refused where nothing sends them."""
    ctx = click.get_current_context()
    typed = [f"--{name}" for name in ("rate", "count", "duration", "size")
             if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if typed and (not measure or ctx.params["listen"]):
        raise UsageError(f"{', '.join(typed)} {'is' if len(typed) == 1 else 'are'} for the "
                         f"sending side of --measure", see_help=True)
    if not measure:
        return None
    if count is None and duration is None:
        duration = 10.0
    return MeasureSpec(rate, count, duration, size)


# --measure, --rate, --count, --duration, --size: the command receives measure=MeasureSpec
measure_options = opt.option_group([
    click.option("--measure", is_flag=True,
                 help="Measure loss, duplicates, reordering and jitter: the client sends stamped "
                      "datagrams, the receiver (-l --measure) counts them."),
    click.option("--rate", type=click.FloatRange(0.001, 1e6), default=100.0, show_default=True,
                 help="--measure: datagrams per second."),
    click.option("--count", type=click.IntRange(1), default=None,
                 help="--measure: datagrams to send [default: 10 s worth unless --duration]."),
    click.option("--duration", type=opt.SECONDS, default=None, help="--measure: send for SECS."),
    click.option("--size", type=click.IntRange(25, 65507), default=64, show_default=True,
                 help="--measure: bytes per datagram."),
], _measure, "measure")


@dataclass(frozen=True)
class Addressing:
    """-p, -4/-6, -n, -s: the local port (the one -l listens on, else the source
    port), the address family, no DNS, and the client's source address."""

    port: int | None
    family: int | None
    numeric: bool
    source: str | None


def _addressing(*, port_opt, family, numeric, source) -> Addressing:
    return Addressing(port_opt, family, numeric, source)


# -p, -4, -6, -n, -s: the command receives them as addressing=Addressing
addressing_options = opt.option_group([
    click.option("-p", "--port", "port_opt", type=opt.PortType(allow_zero=True), default=None,
                 help="The local port: with -l the port to listen on, else the source port."),
    opt.family,
    opt.numeric,
    click.option("-s", "--source", type=opt.HOST, default=None,
                 help="Source address (the sender's; with -l the ADDRESS argument)."),
], _addressing, "addressing")


@dataclass(frozen=True)
class ReceiveSpec:
    """-l's ways with senders: -k hears every one, --echo sends each datagram back,
    -w gives up when none arrives in time."""

    keep_open: bool
    echo: bool
    wait: float | None


def _receive(*, keep_open, echo, wait) -> ReceiveSpec:
    return ReceiveSpec(keep_open, echo, wait)


# -k, --echo, -w: the command receives them as receive=ReceiveSpec
receive_options = opt.option_group([
    click.option("-k", "--keep-open", is_flag=True,
                 help="With -l: hear every sender (replies go to the last one), not just the "
                      "first."),
    click.option("--echo", is_flag=True, help="With -l: send each datagram back to its sender."),
    click.option("-w", "--wait", type=opt.SECONDS, default=None,
                 help="With -l: give up if no datagram arrives within SECS."),
], _receive, "receive")


@dataclass(frozen=True)
class Receiver:
    """udp -l: the socket to bind ([ADDRESS] PORT, family, options) and what it does
    with what arrives."""

    host: str | None
    port: int
    family: int | None
    numeric: bool
    sockopts: tuple
    receive: ReceiveSpec
    cast: CastSpec
    measure: MeasureSpec | None


@click.command(short_help="UDP datagrams to/from a peer (nc -u); -l receives.")
@click.argument("place", nargs=-1, metavar="HOST PORT | -l [ADDRESS] PORT")
@click.option("-l", "--listen", is_flag=True, help="Receive: wait for datagrams on [ADDRESS] PORT.")
@addressing_options
@receive_options
@cast_options
@measure_options
@opt.sockopts
@datagram_options
@datagram_relay_options
def udp(place, listen, addressing, receive, cast, measure, sockopts, datagrams, relay):
    """Send stdin to HOST PORT as datagrams and write the datagrams that come back
    to stdout; with -l, receive on [ADDRESS] PORT.

    Datagram boundaries are kept: each line of stdin is one datagram (with its
    newline); --chunk N sends N-byte datagrams and --raw one per read. Received
    datagrams are written as they came, or with --show as one record each.

    The client's socket is connected, so an ICMP port unreachable is reported
    ("no one is listening"). At end of input it waits -q SECS (default 1) for
    replies, then exits.

    With -l, like nc -u -l: pysock waits for the first datagram and then talks
    to that sender only (stdin goes to it); -k hears every sender, stdin going
    to whoever sent last; --echo returns each datagram to its sender.

    A datagram larger than --buffer is reported truncated on stderr and makes
    the exit status 1; one too large to send names the limit.

    """
    diag = settings().diagnostics(relay.verbose)
    _check(listen, addressing, receive, cast.join, measure, datagrams)
    if datagrams.json and not measure:  # --json alone: the one record view that fits
        datagrams = datagrams._replace(show=True)
    check_stream_options("echo" if receive.echo else "relay", receive.keep_open, relay,
                         datagram=True)
    socket_opts = tuple(sockopts) + cast.sockopts
    if listen:
        host, port = bind_place(place, addressing.port, "pysock udp -l [ADDRESS] PORT",
                                proto="udp")
        return _listen(Receiver(host, port, addressing.family, addressing.numeric, socket_opts,
                                receive, cast, measure), relay, datagrams, diag)
    from pysock.net.address import host_port
    from pysock.net.endpoints import ClientSpec
    target = host_port(place, proto="udp")
    spec = ClientSpec(target.host, target.port, family=addressing.family,
                      numeric=addressing.numeric, source=addressing.source,
                      source_port=addressing.port, sockopts=socket_opts)
    if measure:
        return _measure_send(spec, measure, datagrams, diag)
    return _client(spec, relay, datagrams, diag)


def _check(listen, addressing: Addressing, receive: ReceiveSpec, join, measure,
           datagrams) -> None:
    server_only = [name for name, on in (("-k", receive.keep_open), ("--echo", receive.echo),
                                          ("-w", receive.wait), ("--join", join)) if on]
    if server_only and not listen:
        raise UsageError(f"{', '.join(server_only)} only apply with -l", see_help=True)
    if listen and addressing.source is not None:
        raise UsageError("-s is the sender's source address: with -l give the ADDRESS to "
                         "listen on", see_help=True)
    if measure and (receive.echo or datagrams.show):
        raise UsageError("--measure cannot be combined with --echo or --show", see_help=True)


# ---- client ------------------------------------------------------------------------


def _client(spec, relay, datagrams, diag) -> int:
    channel = _open_client(spec, datagrams)
    diag.verbose(f"sending to {channel.peer} from {channel.local}")
    try:
        return relay_datagrams(channel, relay, datagrams, diag, QUIT_AFTER_INPUT)
    finally:
        channel.close()


def _open_client(spec, datagrams):
    import socket

    from pysock.net import ancillary
    from pysock.net.datagram import DatagramChannel
    from pysock.net.endpoints import connect
    sock = connect(spec, socket.SOCK_DGRAM)
    if datagrams.show:
        ancillary.want_ttl(sock)
    return DatagramChannel(sock, datagrams.bufsize)


# ---- server ------------------------------------------------------------------------


def _listen(server: Receiver, relay, datagrams, diag) -> int:
    import socket

    from pysock.net import ancillary, multicast
    from pysock.net.endpoints import listen as open_listener
    join, iface = server.cast.join, server.cast.iface
    family = server.family
    groups = [multicast.group_address(g) for g in join]
    if groups and family is None and server.host is None:
        family = groups[0].version  # a v4 group on a v4 socket, a v6 group on a v6 one
    sock = open_listener(server.host, server.port, family=family, numeric=server.numeric,
                         sockopts=server.sockopts, socktype=socket.SOCK_DGRAM)
    try:
        for group in join:
            multicast.join(sock, group, iface)
            diag.verbose(f"joined {group}" + (f" on {iface}" if iface else ""))
        if datagrams.show:
            ancillary.want_ttl(sock)
        _announce(sock, server.port, diag)
        receive = server.receive
        if server.measure:
            return _measure_receive(sock, receive.wait, relay, datagrams)
        return serve_datagrams(sock, relay, datagrams, diag, keep_open=receive.keep_open,
                               echo=receive.echo, wait=receive.wait)
    finally:
        sock.close()


def _announce(sock, port: int, diag) -> None:
    from pysock.net.address import format_sockaddr
    text = f"listening on {format_sockaddr(sock.getsockname())}/udp"
    if port == 0 or settings().stderr_tty or diag.verbosity:
        diag.say(text)


# ---- measurement -----------------------------------------------------------------------


def _measure_columns():
    from pysock.render.records import Column
    return [Column("sender", "SENDER"), Column("sent", "SENT", "right"),
            Column("received", "RECEIVED", "right"), Column("lost", "LOST", "right"),
            Column("loss_pct", "LOSS%", "right"), Column("duplicated", "DUP", "right"),
            Column("reordered", "REORDERED", "right"), Column("jitter_ms", "JITTER_MS", "right"),
            Column("rate_pps", "RATE/S", "right")]


def _measure_receive(sock, wait, relay, datagrams) -> int:
    import contextlib
    import sys

    from pysock.net import measure
    from pysock.net.datagram import DatagramChannel
    from pysock.render.records import RecordWriter
    s = settings()
    mode = s.output_mode(datagrams.json)
    channel = DatagramChannel(sock, datagrams.bufsize)
    idle = relay.idle_timeout or 3.0
    with contextlib.ExitStack() as stack:
        on_update = lambda stats: None  # noqa: E731
        if mode == "table":
            from pysock.render.live import LiveRecord
            live = stack.enter_context(LiveRecord(_measure_columns(), sys.stdout, s.color))
            on_update = lambda stats: live.update(stats.record())  # noqa: E731
        stats = measure.receive(channel, idle_timeout=idle, first_timeout=wait,
                                on_update=on_update)
    with RecordWriter(_measure_columns(), mode, color=s.color) as out:
        out.write(stats.record(final=True))
    return ExitStatus.OK if stats.received else ExitStatus.FAILURE


def _measure_send(spec, sending: MeasureSpec, datagrams, diag) -> int:
    from pysock.net import measure
    from pysock.render.progress import progress
    from pysock.render.records import Column, RecordWriter
    rate, count, duration, size = sending
    channel = _open_client(spec, datagrams._replace(show=False))
    s = settings()
    diag.verbose(f"measuring to {channel.peer}: {rate:g} datagrams/s of {size} bytes")
    total = count if count is not None else int(rate * duration)
    try:
        with progress("sending", total, enabled=True, color=s.stderr_color) as bar:
            report = measure.send(channel, rate=rate, count=count, duration=duration, size=size,
                                  on_progress=lambda r: bar.update(r.sent))
    finally:
        channel.close()
    columns = [Column("peer", "PEER"), Column("sent", "SENT", "right"),
               Column("seconds", "SECONDS", "right"), Column("rate_pps", "RATE/S", "right"),
               Column("late", "LATE", "right")]
    with RecordWriter(columns, s.output_mode(datagrams.json), color=s.color) as out:
        out.write({"type": "sent", "peer": channel.peer, "sent": report.sent,
                   "seconds": round(report.seconds, 3), "rate_pps": round(report.rate, 1),
                   "late": report.late})
    return ExitStatus.OK
