"""pysock listen: a TCP server (nc -l), one client or many (-k)."""

from __future__ import annotations

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.relayopts import check_stream_options, relay_options, report_relay, taps
from pysock.cli.serveopts import access_options, bind_place, serve_options
from pysock.cli.tlsopts import describe, tls_options, tls_server


@click.command(short_help="TCP server (nc -l); -k keeps accepting.")
@click.argument("place", nargs=-1, metavar="[ADDRESS] PORT")
@click.option("-p", "--port", "port_opt", type=opt.PortType(allow_zero=True), default=None,
              help="The port, for netcat-traditional habits (nc -l -p PORT).")
@opt.family
@opt.numeric
@click.option("-w", "--wait", "accept_timeout", type=opt.SECONDS, default=None,
              help="Give up if no client connects within SECS.")
@serve_options
@access_options("Only keep these peers (repeatable).", "Close these peers at once (repeatable).")
@opt.sockopts
@tls_options("server")
@relay_options
def listen(place, port_opt, family, numeric, accept_timeout, serve, access, sockopts, tls,
           relay):
    """Listen on [ADDRESS] PORT (every interface, IPv4 and IPv6, by default) and relay
    the client to stdin/stdout. Port 0 picks a free port and prints it.
    """
    from pysock.net.endpoints import listen as open_listener

    host, port = bind_place(place, port_opt, "pysock listen [ADDRESS] PORT")
    check_stream_options(serve.mode_flag, serve.keep_open, relay)
    diag = settings().diagnostics(relay.verbose)
    identity = tls_server(tls, diag)
    listener = open_listener(host, port, family=family, numeric=numeric, backlog=serve.backlog,
                             sockopts=tuple(sockopts))
    policy_ = hub_policy(serve, access, accept_timeout, relay, identity)
    try:
        _announce(listener, port, diag)
        if serve.one_client:
            return _one_client(listener, policy_, relay, diag)
        return _many(listener, policy_, relay, diag)
    finally:
        listener.close()


def _announce(listener, port: int, diag) -> None:
    import socket

    from pysock.net.address import format_sockaddr
    where = format_sockaddr(listener.getsockname())
    dual = (listener.family == socket.AF_INET6 and
            not listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    text = f"listening on {where}" + (" (IPv4 and IPv6)" if dual else "")
    if port == 0 or settings().stderr_tty or diag.verbosity:
        diag.say(text)


def _one_client(listener, hub_policy, relay, diag, wrap=None) -> int:
    """nc -l: the first permitted client relayed with stdio."""
    from pysock.net.hub import serve_one
    from pysock.net.relay import RelayError

    peer = ["the peer"]
    try:
        with taps(relay, settings().stderr_color) as found:
            result, channel = serve_one(listener, hub_policy, _one_reporter(diag, peer), found,
                                        **({"wrap": wrap} if wrap else {}))
    except RelayError as exc:
        diag.verbose(exc.result.summary(peer[0]))
        raise
    return report_relay(result, channel, diag)


def _one_reporter(diag, peer: list):
    """One client: 'connection from' and the TLS session, as a client relay says them."""
    def report(event) -> None:
        if event.kind == "connect":
            peer[0] = event.peer
            diag.verbose(f"connection from {event.peer}")
        elif event.kind == "secured":
            describe(event.channel, diag)
        elif event.kind != "leave":
            _reporter(diag)(event)
    return report


def _many(listener, hub_policy, relay, diag, wrap=None) -> int:
    from pysock.net.hub import serve
    with taps(relay, settings().stderr_color) as found:
        return serve(listener, hub_policy, _reporter(diag), found,
                     **({"wrap": wrap} if wrap else {}))


def hub_policy(serve, access, accept_timeout, relay, tls):
    """The HubPolicy for listen and unix -l (serve modes, the relay policy, TLS)."""
    from pysock.net.hub import HubPolicy
    from pysock.net.tls import HANDSHAKE_TIMEOUT
    relay_policy = relay.policy()
    limit = ((tls.options.handshake_timeout if tls is not None else None)
             or relay_policy.idle_timeout or accept_timeout or HANDSHAKE_TIMEOUT)
    return HubPolicy(mode=serve.mode, keep_open=serve.keep_open, max_conns=serve.max_conns,
                     access=access, command=serve.command(), shell=serve.sh_exec is not None,
                     accept_timeout=accept_timeout, tls=tls, relay=relay_policy,
                     bridge_exec=relay.shapes, handshake_timeout=limit)


def _reporter(diag):
    def report(event) -> None:
        if event.kind == "connect":
            diag.verbose(f"connection from {event.peer} ({event.detail})")
        elif event.kind == "leave":
            line = (f"{event.peer} left after {event.seconds:.3f} s: sent {event.sent} "
                    f"bytes, received {event.received}; {event.detail}")
            # a dropped client is said always, and once (-v used to say it twice)
            (diag.say if event.dropped else diag.verbose)(line)
        elif event.kind == "secured":
            diag.verbose(f"{event.peer}: TLS {event.detail}")
        elif event.kind in ("busy", "warning"):
            diag.say(event.detail)  # always: clients are being turned away
        elif event.kind in ("dropped", "failed"):
            # always: a client lost (a handshake timeout's line names the peer itself)
            diag.say(event.detail if event.kind == "dropped" else f"{event.peer}: {event.detail}")
        elif event.kind in ("refused", "exited"):
            diag.verbose(f"{event.peer + ': ' if event.peer else ''}{event.detail}")
    return report
