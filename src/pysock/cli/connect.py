"""pysock connect: a TCP client relaying stdin/stdout (nc HOST PORT)."""

from __future__ import annotations

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.relayopts import policy, relay_options, run_relay


@click.command(short_help="TCP client (nc HOST PORT).")
@click.argument("place", nargs=-1, required=True, metavar="HOST PORT")
@opt.family
@opt.numeric
@click.option("-w", "--wait", "timeout", type=opt.SECONDS, default=None,
              help="Give up connecting after SECS (per address tried).")
@click.option("-s", "--source", type=opt.HOST, default=None, help="Source address.")
@click.option("-p", "--source-port", type=opt.PORT, default=None, help="Source port.")
@opt.sockopts
@click.option("-z", "--zero-io", "probe", is_flag=True,
              help="Only report which of the ports (HOST PORTS, e.g. 20-25,80) accept.")
@opt.json_output
@relay_options
def connect(place, family, numeric, timeout, source, source_port, sockopts, probe, json, **kw):
    """Connect to HOST PORT and relay stdin to it and it to stdout, binary-clean.

    At end of stdin pysock sends FIN and keeps reading until the peer closes
    (-q SECS bounds that wait, --no-shutdown never sends FIN). When the peer
    closes first, input from a pipe or file is still sent to the end; from a
    terminal pysock exits.
    """
    from pysock.net.endpoints import ClientSpec

    spec = dict(family=family, numeric=numeric, timeout=timeout, source=source,
                source_port=source_port, sockopts=tuple(sockopts))
    if probe:
        return _probe(place, spec, json, kw["verbose"])
    from pysock.net.address import host_port
    target = host_port(place)
    return _relay(ClientSpec(target.host, target.port, **spec), kw)


def _relay(spec, kw) -> int:
    from pysock.net.endpoints import SocketChannel
    from pysock.net.endpoints import connect as open_connection
    from pysock.render.diagnostics import Diagnostics

    policy(kw)  # option conflicts are usage errors before any connection is made
    channel = SocketChannel(open_connection(spec))
    Diagnostics(kw["verbose"]).verbose(f"connected to {channel.peer} from {channel.local}")
    return run_relay(channel, kw)


def _probe(place, spec, json: bool, verbose: int) -> int:
    from pysock.net.address import parse_port_list
    from pysock.net.endpoints import ClientSpec, probe
    from pysock.render.records import Column, RecordWriter

    if len(place) != 2:
        raise click.UsageError("-z takes HOST PORTS, e.g. 127.0.0.1 20-25,80")
    host, ports = place[0], parse_port_list(place[1])
    from pysock.net.address import check_host
    check_host(host)
    if spec["timeout"] is None:
        spec["timeout"] = 3.0
    columns = [Column("host", "HOST"), Column("port", "PORT", "right"), Column("state", "STATE"),
               Column("service", "SERVICE"), Column("rtt_ms", "RTT_MS", "right")]
    s = settings()
    any_open = False
    with RecordWriter(columns, s.output_mode(json), color=s.color) as out:
        for port in ports:
            state, took = probe(ClientSpec(host, port, **spec))
            any_open |= state == "open"
            if state == "open" or verbose or json:
                out.write({"host": host, "port": port, "proto": "tcp", "state": state,
                           "service": _service(port), "rtt_ms": round(took * 1000, 3)})
    return 0 if any_open else 1


def _service(port: int) -> str | None:
    import socket
    try:
        return socket.getservbyport(port, "tcp")
    except OSError:
        return None
