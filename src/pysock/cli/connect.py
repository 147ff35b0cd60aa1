"""pysock connect: a TCP client relaying stdin/stdout (nc HOST PORT)."""

from __future__ import annotations

from dataclasses import replace

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.proxyopts import proxy_options
from pysock.cli.relayopts import relay_options, run_relay
from pysock.cli.tlsopts import describe, tls_client, tls_options
from pysock.errors import ExitStatus, UsageError


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
              help="Only check which of the ports (HOST PORTS, e.g. 20-25,80) accept: exit "
                   "status 0 if one does; -v shows a row per port.")
@opt.json_output
@tls_options("client")
@proxy_options("Connect through this proxy (port 1080 for SOCKS, 3128 for HTTP by default).",
               "socks5 (the proxy resolves names; -n sends numeric targets only), "
               "socks4 or http (CONNECT).",
               "Log in to the proxy (socks4: USER is the user id).")
@relay_options
def connect(place, family, numeric, timeout, source, source_port, sockopts, probe, json,
            tls, proxy, relay):
    """Connect to HOST PORT and relay stdin to it and it to stdout, binary-clean.

    At end of stdin pysock sends FIN and keeps reading until the peer closes
    (-q SECS bounds that wait, --no-shutdown never sends FIN). When the peer
    closes first, input from a pipe or file is still sent to the end; from a
    terminal pysock exits. With --tls, TLS close_notify goes out before the FIN.
    """
    from pysock.net.endpoints import ClientSpec

    # where is filled in below (-z: once per port)
    spec = ClientSpec("", 0, family=family, numeric=numeric, timeout=timeout, source=source,
                      source_port=source_port, sockopts=tuple(sockopts))
    diag = settings().diagnostics(relay.verbose)
    identity = tls_client(tls, diag)
    if probe:
        if identity is not None or proxy is not None:
            raise UsageError("-z only checks that ports accept TCP; drop --tls/--proxy", see_help=True)
        return _probe(place, spec, json, relay.verbose)
    from pysock.net.address import host_port
    target = host_port(place)
    return run_relay(_open(replace(spec, host=target.host, port=target.port), identity, proxy,
                           diag), relay, diag)


def _open(spec, tls, proxy_spec, diag):
    """The connected Channel: through the proxy if asked, then TLS if asked."""
    from pysock.net.address import format_sockaddr
    from pysock.net.endpoints import SocketChannel
    target = format_sockaddr((spec.host, spec.port))
    if proxy_spec is None:
        from pysock.net.endpoints import connect as open_connection
        sock = open_connection(spec)
    else:
        from pysock.net.proxy import open_tunnel
        tunnel = open_tunnel(proxy_spec, spec)
        sock = tunnel.sock
        bound = f" (its end: {tunnel.bound})" if tunnel.bound not in ("", "0.0.0.0:0") else ""
        diag.verbose(f"{proxy_spec.kind} proxy {tunnel.via} opened a tunnel to {target}{bound}")
    peer = None if proxy_spec is None else f"{target} (via the {proxy_spec.kind} proxy)"
    if tls is None:
        channel = SocketChannel(sock)
        channel.peer = peer or channel.peer
    else:
        from pysock.net.tls import start_client
        channel = start_client(sock, tls, spec.host, spec.timeout, peer=peer)
    diag.verbose(f"connected to {channel.peer} from {channel.local}")
    if tls is not None:
        describe(channel, diag)
    return channel


def _probe(place, spec, json: bool, verbose: int) -> int:
    from pysock.net.address import parse_port_list
    from pysock.net.endpoints import probe
    from pysock.render.records import Column, RecordWriter

    if len(place) != 2:
        raise UsageError("-z takes HOST PORTS, e.g. 127.0.0.1 20-25,80", see_help=True)
    host, ports = place[0], parse_port_list(place[1])
    from pysock.net.address import check_host
    check_host(host)
    if spec.timeout is None:
        spec = replace(spec, timeout=3.0)
    columns = [Column("host", "HOST"), Column("port", "PORT", "right"), Column("state", "STATE"),
               Column("service", "SERVICE"), Column("rtt_ms", "RTT_MS", "right")]
    s = settings()
    results = []
    for port in ports:
        state, took = probe(replace(spec, host=host, port=port))
        results.append({"host": host, "port": port, "proto": "tcp", "state": state,
                        "service": _service(port), "rtt_ms": round(took * 1000, 3)})
    if verbose or json:  # like nc -z: only the exit status unless asked
        with RecordWriter(columns, s.output_mode(json), color=s.color) as out:
            for record in results:
                out.write(record)
    return ExitStatus.OK if any(r["state"] == "open" for r in results) else ExitStatus.FAILURE


def _service(port: int) -> str | None:
    from pysock.probes.scan.ports import service
    return service(port, "tcp")
