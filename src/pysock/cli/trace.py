"""pysock trace: the hops to a host (traceroute), by ICMP echo, UDP or TCP SYN."""

from __future__ import annotations

from dataclasses import dataclass

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.errors import ExitStatus, PysockError, UsageError


def _trace_spec(*, udp, tcp_port, icmp, port, queries, max_hops, first_hop, wait,
                sim_queries, source, interface):
    """The probe options -> probes.trace.TraceSpec, checked here once."""
    from pysock.probes.trace import TraceSpec
    if sum(map(bool, (udp, tcp_port, icmp))) > 1:
        raise UsageError("choose one of --icmp, --udp and --tcp", see_help=True)
    if first_hop > max_hops:
        raise UsageError(f"first hop {first_hop} is beyond max hops {max_hops}", see_help=True)
    method = "udp" if udp else "tcp" if tcp_port else "icmp"
    if port and method == "icmp":
        raise UsageError("-p/--port is for --udp and --tcp", see_help=True)
    if port and tcp_port and _typed("tcp_port"):
        raise UsageError("give the TCP port once: --tcp PORT, or -T -p PORT", see_help=True)
    return TraceSpec(method=method, port=port or tcp_port, queries=queries, max_hops=max_hops,
                     first_hop=first_hop, wait=wait, window=sim_queries, source=source,
                     device=interface)


# --udp ... -i: the command receives them as spec=TraceSpec
probe_options = options.option_group([
    click.option("--udp", "udp", is_flag=True, help="Probe with UDP datagrams to high ports."),
    click.option("--tcp", "tcp_port", type=options.PORT, metavar="PORT",
                 help="Probe with TCP SYNs (connects) to PORT."),
    click.option("--icmp", "icmp", is_flag=True, help="Probe with ICMP echo requests (the default)."),
    click.option("-p", "--port", type=options.PORT,
                 help="The destination port: UDP (default: 33434 and up, one per probe), or TCP."),
    click.option("-q", "--queries", type=click.IntRange(1, 10), default=3, show_default=True,
                 help="Probes per hop."),
    click.option("-m", "--max-hops", type=click.IntRange(1, 255), default=30, show_default=True,
                 help="The largest TTL tried."),
    click.option("-f", "--first-hop", type=click.IntRange(1, 255), default=1, show_default=True,
                 help="The TTL to start at."),
    click.option("-w", "--wait", type=options.SECONDS, default=5.0, show_default=True,
                 help="Seconds to wait for each probe's answer."),
    click.option("-N", "--sim-queries", type=click.IntRange(1, 64), default=16, show_default=True,
                 help="Probes in flight at once."),
    click.option("-s", "--source", help="Send from this address."),
    click.option("-i", "--interface", type=options.IFACE, help="Send through this interface."),
], _trace_spec, "spec")


@dataclass(frozen=True)
class RepeatSpec:
    """mtr's mode: -c N rounds (None: until Ctrl-C), --watch's live table, the
    seconds between rounds; on is False for the hop-by-hop trace."""

    count: int | None
    watch: bool
    interval: float

    @property
    def on(self) -> bool:
        return bool(self.count or self.watch)


def _repeat_spec(*, repeat, watch, interval) -> RepeatSpec:
    """--repeat, --watch, --interval -> RepeatSpec; what means nothing in the mode
    chosen is refused."""
    spec = RepeatSpec(repeat, watch, interval)
    if not spec.on:
        if _typed("interval"):
            raise UsageError("--interval is for --repeat and --watch", see_help=True)
        return spec
    for name, flag in (("queries", "-q/--queries"), ("sim_queries", "-N/--sim-queries")):
        if _typed(name):
            raise UsageError(f"{flag} is for the hop-by-hop trace: --repeat sends one "
                             f"probe to every hop each round", see_help=True)
    json = click.get_current_context().params["json"]
    if watch and (json or not settings().stdout_tty):
        raise UsageError("--watch draws on a terminal; use --repeat N for a report", see_help=True)
    return spec


# -c, --watch, --interval: the command receives them as repeat=RepeatSpec
repeat_options = options.option_group([
    click.option("-c", "--repeat", type=click.IntRange(1, 100000), metavar="N",
                 help="mtr's mode: probe every hop at once, N rounds, then per hop loss %, "
                      "sent, last, avg, best, worst and stdev."),
    click.option("--watch", is_flag=True,
                 help="mtr's live view: the per-hop table redrawn each round (a terminal only; "
                      "until Ctrl-C unless --repeat)."),
    click.option("--interval", type=options.SECONDS, default=1.0, show_default=True,
                 help="With --repeat/--watch: seconds between rounds."),
], _repeat_spec, "repeat")


@dataclass(frozen=True)
class Destination:
    """HOST as typed, and the address and family it resolved to."""

    host: str
    addr: str
    family: int


class Output:
    """How hops are shown: the output mode, -n, and the names of hop addresses
    (looked up once per address)."""

    def __init__(self, json: bool, numeric: bool):
        from pysock.probes.trace import name_of
        self.mode, self.numeric = settings().output_mode(json), numeric
        cache: dict = {}
        self.names = lambda addr: name_of(addr, cache)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("host", type=options.HOST)
@probe_options
@repeat_options
@click.option("--pmtu", is_flag=True,
              help="tracepath: find the path MTU with DF probes (UDP) and the routers' "
                   "fragmentation-needed / packet-too-big answers.")
@options.family
@options.numeric
@options.json_output
def trace(host, spec, repeat, pmtu, family, numeric, json) -> int:
    """Show the path to HOST hop by hop, like traceroute: per hop the address (and
    name), the time of each probe, '*' for silence. UDP and TCP need no privilege;
    ICMP needs root, CAP_NET_RAW or a wide enough net.ipv4.ping_group_range."""
    dest = _resolve(host, family, numeric)
    out = Output(json, numeric)
    if pmtu:
        _pmtu_mode(repeat.on, spec)
        return _path_mtu(dest, spec, out)
    if repeat.on:
        return _repeat(dest, spec, repeat, out)
    return _hops(dest, spec, out)


def _hops(dest: Destination, spec, out: Output) -> int:
    """traceroute: each hop in turn, its probes' answers."""
    from pysock.probes.ping import route_source
    from pysock.probes.trace import Tracer
    from pysock.render.trace import TraceView, header

    view = TraceView(out.mode, numeric=out.numeric, names=out.names, color=settings().color,
                     queries=spec.queries)
    reached = False
    tracer = Tracer(dest.addr, dest.family, spec)
    route_source(dest.host, tracer.sockaddr, spec.device, action="trace")  # no route: say so now
    try:
        with tracer:
            view.start(header(dest.host, dest.addr, dest.family, spec.max_hops, spec.packet_size))
            for hop in tracer.hops():
                view.hop(hop)
                reached = reached or any(r.reached for r in hop.results)
    except OSError as exc:
        raise _failure(dest, exc) from None
    finally:
        view.finish()
    return ExitStatus.OK if reached else ExitStatus.FAILURE


def _failure(dest: Destination, exc: OSError) -> PysockError:
    return PysockError(f"cannot trace {dest.host}: {exc.strerror or exc}", ExitStatus.FAILURE)


def _pmtu_mode(repeating: bool, spec) -> None:
    """--pmtu walks once with UDP probes; what it cannot honour is refused."""
    if repeating:
        raise UsageError("--pmtu walks the path once: not with --repeat or --watch", see_help=True)
    if spec.method == "tcp" or click.get_current_context().params["icmp"]:
        raise UsageError("--pmtu probes with UDP, as tracepath: not with --tcp or --icmp", see_help=True)
    for name, flag in (("queries", "-q/--queries"), ("sim_queries", "-N/--sim-queries")):
        if _typed(name):
            raise UsageError(f"--pmtu sends one probe at a time: not with {flag}", see_help=True)


def _path_mtu(dest: Destination, spec, out: Output) -> int:
    """tracepath: the path MTU hop by hop."""
    from pysock.probes.ping import route_source
    from pysock.probes.pmtu import TRACEPATH_PORT, PathMtu, PmtuSpec
    from pysock.render.pmtu import PmtuView

    walk_spec = PmtuSpec(max_hops=spec.max_hops, first_hop=spec.first_hop,
                         wait=spec.wait if _typed("wait") else 2.0,
                         port=spec.port or TRACEPATH_PORT, source=spec.source, device=spec.device)
    view = PmtuView(out.mode, numeric=out.numeric, names=out.names)
    try:
        route_source(dest.host, (dest.addr, 0), spec.device, action="trace")
        walker = PathMtu(dest.addr, dest.family, walk_spec)
        try:
            for event in walker.walk():
                view.event(event)
        finally:
            walker.close()
    except OSError as exc:
        raise _failure(dest, exc) from None
    view.finish(walker.pmtu, walker.hops, walker.reached)
    return ExitStatus.OK if walker.reached else ExitStatus.FAILURE


def _repeat(dest: Destination, spec, repeat: RepeatSpec, out: Output) -> int:
    """mtr's mode: rounds of probes to every hop, then the per-hop report."""
    from pysock.probes.mtr import Repeater
    from pysock.probes.ping import route_source
    from pysock.probes.trace import Tracer
    from pysock.render.mtr import MtrView

    tracer = Tracer(dest.addr, dest.family, spec)
    route_source(dest.host, tracer.sockaddr, spec.device, action="trace")
    view = MtrView(out.mode, numeric=out.numeric, watch=repeat.watch, names=out.names,
                   color=settings().color)
    repeater = Repeater(tracer, repeat.count, repeat.interval)
    try:
        with tracer:
            view.start(f"mtr to {dest.host} ({dest.addr})", [])
            try:
                for round_ in repeater.rounds():
                    view.round(round_, repeater.hops())
            except KeyboardInterrupt:
                if not repeat.watch:
                    raise
    except OSError as exc:
        raise _failure(dest, exc) from None
    finally:
        view.finish(repeater.hops())
    reached = any(h.addr == dest.addr for h in repeater.hops())
    return ExitStatus.OK if reached else ExitStatus.FAILURE


def _typed(name: str) -> bool:
    """The option was on the command line (not set by a peer flag such as -T)."""
    from click.core import ParameterSource
    return click.get_current_context().get_parameter_source(name) == ParameterSource.COMMANDLINE


def _resolve(host: str, family: int | None, numeric: bool) -> Destination:
    """HOST and the address (AF_INET or AF_INET6) it resolves to."""
    import socket

    from pysock.net.address import resolve
    try:
        found = resolve(host, 0, family=family, numeric=numeric, socktype=socket.SOCK_DGRAM)[0]
    except PysockError as exc:  # traceroute: a host it cannot handle is exit 2
        raise UsageError(exc.message) from None
    return Destination(host, found.host, found.family)
