"""pysock forward: relay each client of FROM to TO, many at once (socat's
TCP-LISTEN:...,fork TCP:...), TCP, Unix, @abstract, UDP, TLS either side."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from typing import NamedTuple

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.proxyopts import proxy_options
from pysock.cli.serveopts import access_options
from pysock.errors import ExitStatus, UsageError

WATCH_TICK = 1.0
BACKLOG = 4096  # clients that connect all at once wait in the queue, not in SYN retries


@dataclass(frozen=True)
class Output:
    """What the user wants to see of each connection."""

    verbose: int = 0
    json: bool = False
    hexdump: str | None = None
    watch: bool = False


output_options = opt.option_group([
    click.option("-v", "--verbose", count=True,
                 help="A line per connection when it ends: client, bytes each way, who closed."),
    click.option("--hexdump", metavar="FILE|-", default=None,
                 help="Hexdump both directions of every connection to FILE ('-' for stderr)."),
    click.option("--json", "json", is_flag=True,
                 help="A JSON record per connection on stdout when it ends."),
    click.option("--watch", is_flag=True, help="A live table of open connections (terminal only)."),
], Output, "output")


class ServerTLS(NamedTuple):
    """--tls-listen and its files: TLS from clients."""

    enabled: bool = False
    cert: str | None = None
    key: str | None = None
    verify_client: str | None = None

    @classmethod
    def build(cls, *, tls_listen, cert, key, verify_client) -> ServerTLS:
        given = [f for f, v in (("--cert", cert), ("--key", key),
                                ("--verify-client", verify_client)) if v]
        if not tls_listen:
            if given:
                raise UsageError(f"{given[0]} needs --tls-listen (TLS from clients)", see_help=True)
            return cls()
        if key and not cert:
            raise UsageError("--key needs --cert", see_help=True)
        return cls(True, cert, key, verify_client)


class ClientTLS(NamedTuple):
    """--tls and its options: TLS towards TO."""

    enabled: bool = False
    sni: str | None = None
    cafile: str | None = None
    capath: str | None = None
    insecure: bool = False

    @classmethod
    def build(cls, *, tls, sni, cafile, capath, insecure) -> ClientTLS:
        given = [f for f, v in (("--sni", sni), ("--cafile", cafile), ("--capath", capath),
                                ("--insecure", insecure)) if v]
        if not tls:
            if given:
                raise UsageError(f"{given[0]} needs --tls (TLS towards TO)", see_help=True)
            return cls()
        return cls(True, sni, cafile, capath, insecure)


_FILE = click.Path(exists=True, dir_okay=False)
server_tls_options = opt.option_group([
    click.option("--tls-listen", is_flag=True,
                 help="Terminate TLS from clients (a self-signed certificate unless --cert)."),
    click.option("--cert", type=_FILE, default=None, metavar="FILE",
                 help="--tls-listen: the server certificate (PEM), chain included."),
    click.option("--key", type=_FILE, default=None, metavar="FILE",
                 help="--tls-listen: the private key for --cert."),
    click.option("--verify-client", type=_FILE, default=None, metavar="CAFILE",
                 help="--tls-listen: require client certificates from this CA."),
], ServerTLS.build, "server_tls")
client_tls_options = opt.option_group([
    click.option("--tls", "--ssl", "tls", is_flag=True,
                 help="Speak TLS to TO (certificate verified against the system store)."),
    click.option("--sni", metavar="NAME", default=None,
                 help="--tls: server name to send and verify (default: TO's host)."),
    click.option("--cafile", type=_FILE, default=None, metavar="FILE",
                 help="--tls: trust the CA certificates in FILE."),
    click.option("--capath", type=click.Path(exists=True, file_okay=False), default=None,
                 metavar="DIR", help="--tls: trust the hashed CA directory DIR."),
    click.option("--insecure", is_flag=True, help="--tls: do not verify TO's certificate."),
], ClientTLS.build, "client_tls")


@click.command(short_help="Relay each client of FROM to TO (socat LISTEN,fork).")
@click.argument("source", metavar="FROM")
@click.argument("destination", metavar="TO")
@click.option("-u", "--udp", is_flag=True,
              help="UDP on both sides: a session per client address, replies routed back.")
@opt.family
@opt.numeric
@server_tls_options
@client_tls_options
@proxy_options("Reach TO through this proxy (SOCKS 1080, HTTP 3128 by default).",
               "The kind of --proxy.", "Log in to the proxy.")
@click.option("--proxy-protocol", type=click.Choice(["v1", "v2"]), default=None,
              help="Send HAProxy's PROXY header to TO first, naming the real client.")
@click.option("--max-conns", type=click.IntRange(1), default=None,
              help="Turn clients away (with a reset) beyond N at a time.")
@access_options("Only serve these peers (repeatable).", "Turn these peers away (repeatable).")
@click.option("-i", "--idle-timeout", type=opt.SECONDS, default=None,
              help="Close a connection after SECS with no data either way [-u: 60].")
@click.option("-w", "--wait", type=opt.SECONDS, default=None,
              help="Give up reaching TO after SECS (the client gets a reset).")
@click.option("--once", is_flag=True, help="Serve one client, then exit.")
@click.option("--backlog", type=opt.BACKLOG, default=None,
              help="Length of the accept queue [default: 4096].")
@output_options
def forward(source, destination, udp, family, numeric, server_tls, client_tls, proxy,
            proxy_protocol, max_conns, access, idle_timeout, wait, once, backlog, output):
    """Accept clients on FROM and relay each one to TO, both ways, many at once.

    FROM is PORT, ADDRESS:PORT, [V6]:PORT, a Unix socket path (with a '/') or
    @abstract; TO is HOST:PORT, [V6]:PORT, a path or @abstract.
    """
    from pysock.net.address import stream_place
    proto = "udp" if udp else "tcp"
    where = stream_place(source, bind=True, proto=proto)
    to = stream_place(destination, bind=False, proto=proto)
    _check(udp, where, to, server_tls.enabled, client_tls.enabled, proxy, proxy_protocol, output)
    if udp and (wait is not None or backlog is not None):
        raise UsageError(f"{'-w' if wait is not None else '--backlog'} is about "
                         f"connections; -u has none", see_help=True)
    diag = settings().diagnostics(output.verbose)
    from pysock.net.outbound import Target
    target = Target(to, family=family, numeric=numeric, timeout=wait,
                    tls=_client_tls(client_tls, to, diag),
                    proxy=proxy,
                    proxy_protocol=int(proxy_protocol[1]) if proxy_protocol else None)
    identity = _server_tls(server_tls, diag)
    with contextlib.ExitStack() as stack:
        listener = _listen(stack, where, udp, family, numeric, backlog or BACKLOG)
        _announce(listener, where, target, udp, diag, output)
        return _serve(stack, listener, target, udp, once, max_conns, access, idle_timeout,
                      identity, output, diag)


def _check(udp, where, to, tls_listen, tls, proxy, proxy_protocol, output: Output) -> None:
    from pysock.net.address import UnixAddress
    if udp:
        unix = isinstance(where, UnixAddress) or isinstance(to, UnixAddress)
        stream_only = [flag for flag, on in (("a Unix path", unix), ("--tls-listen", tls_listen),
                                             ("--tls", tls), ("--proxy", proxy),
                                             ("--proxy-protocol", proxy_protocol)) if on]
        if stream_only:
            raise UsageError(f"-u forwards UDP between IP addresses: {stream_only[0]} "
                             f"does not apply", see_help=True)
    if proxy and isinstance(to, UnixAddress):
        raise UsageError("--proxy reaches HOST:PORT targets, not a Unix socket", see_help=True)
    if output.watch and output.json:
        raise UsageError("--watch draws a table; --json writes records: choose one", see_help=True)
    if output.watch and not settings().stdout_tty:
        raise UsageError("--watch needs a terminal on stdout (use -v or --json when piped)", see_help=True)


def _client_tls(spec: ClientTLS, to, diag):
    """--tls and its options: TLS towards TO, or None."""
    if not spec.enabled:
        return None
    if not getattr(to, "host", None) and not (spec.sni or spec.insecure):
        raise UsageError("--tls to a Unix socket needs --sni NAME to verify (or --insecure)", see_help=True)
    from pysock.cli.tlsopts import worded_identity
    from pysock.net.tls import TLSOptions, client_identity
    identity = worded_identity(client_identity, TLSOptions(
        server_name=spec.sni, cafile=spec.cafile, capath=spec.capath, insecure=spec.insecure))
    if spec.insecure:
        diag.warn("--insecure: TO's certificate is not verified")
    return identity


def _server_tls(spec: ServerTLS, diag):
    """--tls-listen and its options: TLS from clients, or None."""
    if not spec.enabled:
        return None
    from pysock.cli.tlsopts import worded_identity
    from pysock.net.tls import TLSOptions, server_identity
    identity = worded_identity(server_identity, TLSOptions(cert=spec.cert, key=spec.key,
                                                           verify_client=spec.verify_client))
    if identity.generated_fingerprint:
        diag.say("generated a temporary self-signed certificate (--cert/--key to use your own)")
        diag.say(f"SHA-256 fingerprint: {identity.generated_fingerprint}")
    return identity


def _listen(stack, where, udp, family, numeric, backlog):
    import socket

    from pysock.net.address import UnixAddress
    if isinstance(where, UnixAddress):
        from pysock.net.unixsock import listen_unix
        return stack.enter_context(listen_unix(where, backlog=backlog)).sock
    from pysock.net.endpoints import listen
    sock = listen(where.host or None, where.port, family=family, numeric=numeric,
                  backlog=backlog, socktype=socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    stack.callback(sock.close)
    return sock


def _announce(listener, where, target, udp, diag, output: Output) -> None:
    from pysock.net.address import format_sockaddr
    here = format_sockaddr(listener.getsockname()) + ("/udp" if udp else "")
    text = f"forwarding {here} to {target}" + ("/udp" if udp else "")
    if getattr(where, "port", None) == 0 or settings().stderr_tty or output.verbose:
        diag.say(text)


def _serve(stack, listener, target, udp, once, max_conns, access, idle_timeout, server_tls,
           output: Output, diag) -> int:
    from pysock.net.fdlimit import raise_fd_limit
    from pysock.net.forward import ForwardPolicy
    raise_fd_limit()  # each connection holds two sockets (and two pipes when spliced)
    taps = _taps(stack, output.hexdump)
    on_tick = lambda rows: None  # noqa: E731
    if output.watch:
        from pysock.render.forward import WatchTable
        table = stack.enter_context(WatchTable(sys.stdout, settings().color,
                                               f"pysock forward to {target}"))
        on_tick = table.show
    policy = ForwardPolicy(once=once, max_conns=max_conns, access=access,
                           idle_timeout=idle_timeout, tls=server_tls, taps=taps,
                           tick=WATCH_TICK if output.watch else None)
    reporter = _Reporter(diag, output)
    if udp:
        from pysock.net.udpforward import serve
    else:
        from pysock.net.forward import serve
    status = serve(listener, target, policy, reporter, on_tick)
    return ExitStatus.FAILURE if once and reporter.failures else status


def _taps(stack, hexdump):
    if hexdump is None:
        return lambda label: []
    from pysock.render.forward import LabelledHexdump
    if hexdump == "-":
        stream = sys.stderr
    else:
        try:
            stream = stack.enter_context(open(hexdump, "w"))
        except OSError as exc:
            raise UsageError(f"cannot write {hexdump}: {exc.strerror}", see_help=True) from None
    return lambda label: [LabelledHexdump(stream, label)]


class _Reporter:
    """Events from the core: -v lines and failures on stderr, records on stdout."""

    def __init__(self, diag, output: Output):
        self.diag, self.output = diag, output
        self.failures = 0
        self.writer = None
        if output.json:
            from pysock.render.records import RecordWriter
            self.writer = RecordWriter([], "json")

    def __call__(self, event) -> None:
        from pysock.net.forward import Finished
        from pysock.render import forward as view
        if isinstance(event, Finished):
            if view.failed(event):
                self.failures += 1
                self.diag.say(f"{event.client}: {event.reason} (the client was turned away)")
            else:
                self.diag.verbose(view.line(event))
            if self.writer is not None:
                self.writer.write(view.record(event))
        elif event.kind in ("busy", "warning"):
            self.diag.say(event.detail)
        elif event.kind == "connect":
            self.diag.verbose(f"connection from {event.peer} ({event.detail})", level=2)
        elif event.kind == "secured":
            self.diag.verbose(f"{event.peer}: TLS {event.detail}", level=2)
        elif event.kind == "refused":
            self.diag.verbose(f"{event.peer}: {event.detail}")
