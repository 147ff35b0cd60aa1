"""pysock listen: a TCP server (nc -l), one client or many (-k)."""

from __future__ import annotations

import shlex

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.relayopts import check_stream_options, policy, relay_options, report_relay, taps
from pysock.cli.tlsopts import describe, tls_options, tls_server

MODES = ("broker", "chat", "echo", "exec_cmd", "sh_exec")


@click.command(short_help="TCP server (nc -l); -k keeps accepting.")
@click.argument("place", nargs=-1, metavar="[ADDRESS] PORT")
@click.option("-p", "--port", "port_opt", type=opt.PortType(allow_zero=True), default=None,
              help="The port, for netcat-traditional habits (nc -l -p PORT).")
@opt.family
@opt.numeric
@click.option("-k", "--keep-open", is_flag=True, help="Serve many clients, at once.")
@click.option("--max-conns", type=click.IntRange(1), default=None,
              help="With -k: refuse clients beyond N at a time.")
@click.option("--allow", multiple=True, metavar="CIDR", help="Only keep these peers (repeatable).")
@click.option("--deny", multiple=True, metavar="CIDR", help="Close these peers at once (repeatable).")
@click.option("--allowfile", type=click.Path(dir_okay=False), default=None,
              help="--allow for each address/CIDR line of a file.")
@click.option("--denyfile", type=click.Path(dir_okay=False), default=None,
              help="--deny for each address/CIDR line of a file.")
@click.option("--broker", is_flag=True, help="Send each client's data to every other client.")
@click.option("--chat", is_flag=True, help="--broker with a '<user N>' prefix per line.")
@click.option("--echo", is_flag=True, help="Send each client back what it sends.")
@click.option("--exec", "exec_cmd", type=opt.COMMAND, metavar="'PROG ARGS'", default=None,
              help="Run PROG for each client, stdin/stdout tied to the socket (no shell).")
@click.option("--sh-exec", metavar="CMD", default=None, help="Like --exec, through /bin/sh -c.")
@click.option("-w", "--wait", "accept_timeout", type=opt.SECONDS, default=None,
              help="Give up if no client connects within SECS.")
@click.option("--backlog", type=opt.BACKLOG, default=128, show_default=True,
              help="Length of the accept queue.")
@opt.sockopts
@tls_options("server")
@relay_options
def listen(place, port_opt, family, numeric, keep_open, max_conns, allow, deny, allowfile,
           denyfile, broker, chat, echo, exec_cmd, sh_exec, accept_timeout, backlog, sockopts,
           **kw):
    """Listen on [ADDRESS] PORT (every interface, IPv4 and IPv6, by default) and relay
    the client to stdin/stdout. Port 0 picks a free port and prints it.
    """
    from pysock.net.address import bind_place
    from pysock.net.endpoints import listen as open_listener
    from pysock.render.diagnostics import Diagnostics

    host, port = _place(place, port_opt, bind_place)
    mode = _mode(broker, chat, echo, exec_cmd, sh_exec, keep_open)
    access = _access(allow, deny, allowfile, denyfile)
    check_stream_options(_mode_flag(mode, sh_exec), keep_open, kw)
    diag = Diagnostics(kw["verbose"])
    tls = tls_server(kw, diag)
    listener = open_listener(host, port, family=family, numeric=numeric, backlog=backlog,
                             sockopts=tuple(sockopts))
    policy_ = hub_policy(mode, keep_open, max_conns, access, accept_timeout, exec_cmd, sh_exec,
                         kw, tls)
    try:
        _announce(listener, port, diag)
        if mode == "relay" and not keep_open:
            return _one_client(listener, policy_, kw, diag)
        return _many(listener, policy_, kw, diag)
    finally:
        listener.close()


def _place(place, port_opt, bind_place):
    if port_opt is not None:
        if len(place) > 1:
            raise click.UsageError("give the port either as -p PORT or as an argument, not both")
        from pysock.net.address import check_host, unbracket
        return (check_host(unbracket(place[0])) if place else None), port_opt
    if not place:
        raise click.UsageError("missing PORT (pysock listen [ADDRESS] PORT)")
    return bind_place(place)


def _mode(broker, chat, echo, exec_cmd, sh_exec, keep_open) -> str:
    chosen = [name for name, on in (("broker", broker), ("chat", chat), ("echo", echo),
                                    ("exec", exec_cmd is not None), ("exec", sh_exec is not None))
              if on]
    if len(chosen) > 1:
        raise click.UsageError("--broker, --chat, --echo, --exec and --sh-exec exclude each other")
    if chosen and chosen[0] in ("broker", "chat") and not keep_open:
        return chosen[0]  # a broker of one client is pointless, but harmless: serve it
    return chosen[0] if chosen else "relay"


def _mode_flag(mode: str, sh_exec) -> str:
    return "sh-exec" if sh_exec is not None else mode


def _access(allow, deny, allowfile, denyfile):
    from pysock.net.access import Access, parse_network, read_networks
    allows = [parse_network(a) for a in allow] + (read_networks(allowfile) if allowfile else [])
    denies = [parse_network(d) for d in deny] + (read_networks(denyfile) if denyfile else [])
    return Access(tuple(allows), tuple(denies))


def _announce(listener, port: int, diag) -> None:
    import socket

    from pysock.net.address import format_sockaddr
    where = format_sockaddr(listener.getsockname())
    dual = (listener.family == socket.AF_INET6 and
            not listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    text = f"listening on {where}" + (" (IPv4 and IPv6)" if dual else "")
    if port == 0 or settings().stderr_tty or diag.verbosity:
        diag.say(text)


def _one_client(listener, hub_policy, kw, diag, wrap=None) -> int:
    """nc -l: the first permitted client relayed with stdio."""
    from pysock.net.hub import serve_one
    from pysock.net.relay import RelayError

    peer = ["the peer"]
    try:
        with taps(kw, settings().stderr_color) as found:
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


def _many(listener, hub_policy, kw, diag, wrap=None) -> int:
    from pysock.net.hub import serve
    with taps(kw, settings().stderr_color) as found:
        return serve(listener, hub_policy, _reporter(diag), found,
                     **({"wrap": wrap} if wrap else {}))


def hub_policy(mode, keep_open, max_conns, access, accept_timeout, exec_cmd, sh_exec, kw, tls,
               **more):
    """The HubPolicy for listen and unix -l (serve modes, the relay policy, TLS)."""
    from pysock.net.hub import HubPolicy
    command: tuple[str, ...] = ()
    if exec_cmd is not None:
        command = tuple(shlex.split(exec_cmd))
        if not command:
            raise click.UsageError("--exec needs a program")
    elif sh_exec is not None:
        command = (sh_exec,)
    if command and sh_exec is None:
        check_program(command[0])
    relay_policy = policy(kw)
    shaped = bool(kw["hexdump"] or kw["progress"] or kw["crlf"]
                  or relay_policy.idle_timeout is not None)
    from pysock.net.tls import HANDSHAKE_TIMEOUT
    limit = ((tls.options.handshake_timeout if tls is not None else None)
             or relay_policy.idle_timeout or accept_timeout or HANDSHAKE_TIMEOUT)
    return HubPolicy(mode=mode, keep_open=keep_open, max_conns=max_conns, access=access,
                     command=command, shell=sh_exec is not None, accept_timeout=accept_timeout,
                     tls=tls, relay=relay_policy, bridge_exec=shaped, handshake_timeout=limit,
                     **more)


def check_program(name: str) -> None:
    """--exec PROG: there and runnable, checked once at start (a usage error), not
    found missing by the first client."""
    import os
    import shutil
    if "/" in name:
        if not os.path.exists(name):
            raise click.UsageError(f"cannot run {name}: no such file")
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise click.UsageError(f"cannot run {name}: not an executable program")
    elif shutil.which(name) is None:
        raise click.UsageError(f"cannot run {name}: not found in PATH")


def _reporter(diag):
    def report(event) -> None:
        if event.kind == "connect":
            diag.verbose(f"connection from {event.peer} ({event.detail})")
        elif event.kind == "leave":
            line = (f"{event.peer} left after {event.seconds:.3f} s: sent {event.sent} "
                    f"bytes, received {event.received}; {event.detail}")
            # a dropped client is said always, and once (-v used to say it twice)
            (diag.say if event.detail.startswith("dropped") else diag.verbose)(line)
        elif event.kind == "secured":
            diag.verbose(f"{event.peer}: TLS {event.detail}")
        elif event.kind in ("busy", "warning"):
            diag.say(event.detail)  # always: clients are being turned away
        elif event.kind in ("dropped", "failed"):
            diag.say(event.detail if event.detail.startswith("TLS handshake with")
                     else f"{event.peer}: {event.detail}")  # always: a client lost
        elif event.kind in ("refused", "exited"):
            diag.verbose(f"{event.peer + ': ' if event.peer else ''}{event.detail}")
    return report
