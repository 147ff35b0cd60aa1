"""pysock unix: Unix domain sockets, client and server (nc -U), stream, dgram and
seqpacket, paths and @abstract names, credentials and descriptor passing."""

from __future__ import annotations

from typing import NamedTuple

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.datagramopts import DatagramSpec, datagram_options, relay_datagrams, serve_datagrams
from pysock.cli.relayopts import RelaySpec, check_stream_options, relay_options, run_relay
from pysock.cli.serveopts import unix_serve_options
from pysock.cli.tlsopts import describe, tls_client, tls_options, tls_server
from pysock.errors import UsageError
from pysock.net.access import Access

QUIT_AFTER_INPUT = 1.0  # dgram clients: wait for replies after input ends, as udp does


class OctalMode(click.ParamType):
    name = "mode"

    def convert(self, value, param, ctx):
        try:
            mode = int(str(value), 8)
        except ValueError:
            self.fail(f"'{value}' is not an octal mode such as 0660", param, ctx)
        if not 0 <= mode <= 0o777:
            self.fail(f"{value} is not a permission mode (0000-0777)", param, ctx)
        return mode


class CredsType(click.ParamType):
    name = "PID:UID:GID"

    def convert(self, value, param, ctx):
        from pysock.net.ancillary import Credentials
        if value in (True, "self"):
            return True
        try:
            pid, uid, gid = (int(v) for v in str(value).split(":"))
        except ValueError:
            self.fail(f"'{value}' is not PID:UID:GID", param, ctx)
        return Credentials(pid, uid, gid)


class PassingSpec(NamedTuple):
    """What rides along with the data: files to pass (SCM_RIGHTS), credentials to
    send (SCM_CREDENTIALS), and what to do with the descriptors the peer passes."""

    send_fds: tuple[str, ...] = ()
    send_creds: object = None  # CredsType's value: 'self' or (pid, uid, gid)
    show_fds: bool = False
    cat_fds: bool = False

    def given(self) -> list[str]:
        """The flags given (none of them can go over TLS)."""
        return [name for name, on in (("--send-fd", self.send_fds),
                                      ("--send-creds", self.send_creds is not None),
                                      ("--show-fds", self.show_fds), ("--cat-fds", self.cat_fds))
                if on]


def _passing(*, send_fds, send_creds, show_fds, cat_fds) -> PassingSpec:
    return PassingSpec(tuple(send_fds), send_creds, show_fds, cat_fds)


# --send-fd, --send-creds, --show-fds, --cat-fds: the command receives passing=PassingSpec
passing_options = opt.option_group([
    click.option("--send-fd", "send_fds", multiple=True, metavar="FILE",
                 help="Pass FILE, opened read-only, to the peer with the first data (SCM_RIGHTS; "
                      "repeatable)."),
    click.option("--send-creds", type=CredsType(), is_flag=False, flag_value="self", default=None,
                 help="Send SCM_CREDENTIALS with every message: ours, or (root) PID:UID:GID."),
    click.option("--show-fds", is_flag=True,
                 help="Report each descriptor the peer passes (what it points to) on stderr."),
    click.option("--cat-fds", is_flag=True, help="Write the content of each passed descriptor to stdout."),
], _passing, "passing")


@click.command(short_help="Unix domain sockets (nc -U): stream, dgram, seqpacket.")
@click.argument("path", type=opt.UnixPathType(), metavar="PATH|@NAME")
@click.option("-l", "--listen", is_flag=True, help="Be the server: bind PATH and wait.")
@click.option("-t", "--type", "socktype", type=click.Choice(["stream", "dgram", "seqpacket"]),
              default="stream", show_default=True, help="Socket type.")
@click.option("-u", "--dgram", is_flag=True, help="Same as --type dgram (nc -U -u).")
@click.option("-w", "--wait", type=opt.SECONDS, default=None,
              help="Give up connecting, or with -l waiting for a client, after SECS.")
@unix_serve_options
@click.option("--mode", type=OctalMode(), default=None,
              help="With -l: permissions of the socket file, e.g. 0660 (set at creation).")
@passing_options
@opt.sockopts
@datagram_options
@tls_options("both")
@relay_options
def unix(path, listen, socktype, dgram, wait, serve, mode, passing, sockopts, datagrams, tls,
         relay):
    """Connect to the Unix socket PATH (or @NAME in the abstract namespace) and relay
    stdin/stdout; with -l, create it and serve. The relay, half-close, -k, -i,
    --echo and --exec work as for TCP (see pysock listen and connect).

    \b
    A server path is handled with care: a socket file nobody listens on (left
    by a server that died) is replaced, and pysock says so; one a live server
    holds is refused, naming the process; anything that is not a socket is
    left alone. --mode sets the file's permissions from the moment it exists.
    The file is removed when pysock exits, also on Ctrl-C and SIGTERM. @NAME
    never touches the file system and goes away with the last socket.

    dgram and seqpacket keep message boundaries as pysock udp does (one per
    line, --chunk, --raw, --show); a dgram client binds an automatic @name so
    the server can reply. With -v the server names each peer by its
    credentials (SO_PEERCRED: pid, uid, gid, process).

    \b
    When Unix sockets help: between two processes on one machine a Unix
    stream skips the TCP/IP stack (no headers, checksums, segmentation,
    congestion control or loopback device), so with large writes and
    nothing else in the path it moves data several times faster than TCP
    over 127.0.0.1 (bench/: about 4x with 64 KiB writes), and each message
    costs less CPU. Access is governed by file permissions, and the server
    learns who connected (SO_PEERCRED) and can receive open files.
    When they do not: through a pipeline (head | pysock unix ... > file)
    the pipes and the copies dominate and the gap mostly closes (bench/:
    within about 1.3x either way, depending on the relay); a 1-byte round
    trip is bound by system calls and wake-ups, so the protocol saves only
    a few microseconds; and nothing beyond this machine (or network
    namespace, for @abstract names) can reach them.

    \b
    --tls works as for connect and listen (stream sockets only). A Unix
    socket has no host name, so a client names the certificate it expects
    with --sni NAME (or skips the check with --insecure). TLS carries bytes
    only: --send-fd, --send-creds, --show-fds and --cat-fds do not apply,
    while -v still names the peer process (SO_PEERCRED).

    """
    from pysock.net.address import UnixAddress
    from pysock.net.unixsock import SOCKTYPES
    addr: UnixAddress = path
    if dgram:
        socktype = "dgram"
    kind = SOCKTYPES[socktype]
    diag = settings().diagnostics(relay.verbose)
    _check(listen, socktype, serve, mode, datagrams)
    if datagrams.json:  # --json alone: the one record view there is, one per datagram
        datagrams = datagrams._replace(show=True)
    check_stream_options(serve.mode_flag, serve.keep_open, relay, datagram=socktype != "stream",
                         seqpacket=socktype == "seqpacket")
    identity = _tls(listen, socktype, passing, tls, diag)
    outgoing = _outgoing(passing.send_fds, passing.send_creds)
    report = AncillaryReport(diag, passing.show_fds, passing.cat_fds)
    side = Side(addr, kind, wait, outgoing, report, tuple(sockopts), identity, relay, datagrams,
                diag)
    if not listen:
        return _client(side)
    return _server(side, serve, mode)


class Side(NamedTuple):
    """One end of a Unix socket as the options shape it, client or server."""

    addr: object  # UnixAddress
    kind: int  # SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET
    wait: float | None
    outgoing: object  # unixsock.Outgoing
    report: AncillaryReport
    sockopts: tuple
    tls: object  # ClientIdentity | ServerIdentity | None
    relay: RelaySpec
    dgram: DatagramSpec
    diag: object


def _check(listen, socktype, serve, mode, dgram) -> None:
    server_only = serve.server_only() + (["--mode"] if mode is not None else [])
    if server_only and not listen:
        raise UsageError(f"{', '.join(server_only)} only {_apply(server_only)} with -l", see_help=True)
    messages = dgram.given()
    if messages and socktype == "stream":
        raise UsageError(f"{', '.join(messages)} {_apply(messages)} to --type dgram or "
                         "seqpacket", see_help=True)
    if socktype == "dgram" and (serve.mode in ("broker", "chat", "exec") or serve.max_conns):
        raise UsageError("--broker, --chat, --exec, --sh-exec and --max-conns need "
                         "connections: use --type stream or seqpacket", see_help=True)


def _apply(flags: list[str]) -> str:
    return "applies" if len(flags) == 1 else "apply"


def _tls(listen, socktype, passing, tls, diag):
    """The TLS identity for this side (None without --tls), after the checks that
    are particular to Unix sockets."""
    if tls.enabled:
        if socktype != "stream":
            raise UsageError("--tls needs --type stream (TLS runs over a byte stream)", see_help=True)
        used = passing.given()
        if used:
            raise UsageError(f"{', '.join(used)} cannot go over --tls: TLS carries "
                             f"bytes, not descriptors or credentials", see_help=True)
    if listen:
        return tls_server(tls, diag)
    if tls.enabled and not tls.sni and not tls.insecure:
        raise UsageError("a Unix socket has no host name to verify: give --sni NAME "
                         "(a name in the server's certificate) or --insecure", see_help=True)
    return tls_client(tls, diag)


def _outgoing(send_fds, send_creds):
    from pysock.net.unixsock import Outgoing, open_for_passing
    fds = [open_for_passing(f) for f in send_fds]
    return Outgoing(fds, send_creds)


class AncillaryReport:
    """What came with the data: descriptors (--show-fds, --cat-fds) and credentials
    (-v). Called by a UnixChannel, or as a datagram tap."""

    sees_datagrams = True

    def __init__(self, diag, show_fds: bool, cat_fds: bool):
        self.diag, self.show_fds, self.cat_fds = diag, show_fds, cat_fds
        self.last_creds = None

    def __call__(self, extra) -> None:
        self._handle(extra.fds, extra.creds, extra.cut, "the peer")

    def datagram(self, direction: str, d) -> None:
        self._handle(d.fds, None, False, d.sender)  # a datagram's credentials: NoticeTap

    def _handle(self, fds, creds, cut: bool, sender: str) -> None:
        from pysock.net.unixsock import copy_fd, describe_fd
        if cut:
            self.diag.say(f"{sender} passed more descriptors than pysock takes; the kernel "
                          f"closed the rest")
        for fd in fds:
            if self.show_fds:
                self.diag.say(f"received {describe_fd(fd).describe()}")
            if self.cat_fds:
                copy_fd(fd, _write_stdout)
        if fds and not (self.show_fds or self.cat_fds):
            self.diag.verbose(f"{sender} passed {len(fds)} descriptor(s); closed them "
                              f"(--show-fds, --cat-fds to look)")
        if creds is not None and creds.pid and creds != self.last_creds:
            self.last_creds = creds
            self.diag.verbose(f"credentials from {sender}: {creds.describe()}")


def _write_stdout(data: bytes) -> None:
    import os
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


# ---- client ------------------------------------------------------------------------


def _client(side: Side) -> int:
    import socket

    from pysock.net.ancillary import peer_credentials
    from pysock.net.sockopt import apply_all
    from pysock.net.unixsock import connect_unix
    sock = connect_unix(side.addr, side.kind, side.wait)
    try:
        apply_all(sock, side.sockopts)
    except BaseException:
        sock.close()
        raise
    creds = side.report.last_creds = peer_credentials(sock)
    side.diag.verbose(f"connected to {side.addr}"
                      + (f" (server: {creds.describe()})" if creds else ""))
    try:
        if side.kind == socket.SOCK_STREAM:
            return _relay_stream(sock, side)
        quit_after = QUIT_AFTER_INPUT if side.kind == socket.SOCK_DGRAM else None
        return _relay_datagrams(sock, side, quit_after)
    finally:
        sock.close()


def _relay_datagrams(sock, side: Side, quit_after: float | None) -> int:
    from pysock.net.datagram import DatagramChannel
    channel = DatagramChannel(sock, side.dgram.bufsize)
    channel.outgoing = side.outgoing
    return relay_datagrams(channel, side.relay, side.dgram, side.diag, quit_after,
                           extra_taps=[side.report])


def _relay_stream(sock, side: Side) -> int:
    """Relay stdio with a connected stream: over TLS (handshake first), or plain with
    descriptors and credentials passed as asked."""
    if side.tls is None:
        from pysock.net.unixsock import UnixChannel
        channel = UnixChannel(sock, side.outgoing, side.report)
        channel.peer = str(side.addr)
    else:
        channel = _secure(sock, side.tls, str(side.addr), side.wait, side.diag)
    return run_relay(channel, side.relay, side.diag)


def _secure(sock, tls, peer, wait, diag):
    from pysock.net.tls import ClientIdentity, start_client, start_server
    if isinstance(tls, ClientIdentity):
        channel = start_client(sock, tls, None, wait, peer=peer)
    else:
        channel = start_server(sock, tls, peer=peer)
    describe(channel, diag)
    return channel


# ---- server ------------------------------------------------------------------------


def _server(side: Side, serve, mode) -> int:
    import socket

    from pysock.net import ancillary
    from pysock.net.sockopt import apply_all
    from pysock.net.unixsock import TYPE_NAMES, listen_unix
    diag = side.diag
    listener = listen_unix(side.addr, side.kind, mode=mode, backlog=serve.backlog)
    try:
        apply_all(listener.sock, side.sockopts)
        if listener.replaced_stale:
            diag.say(f"replaced {side.addr}: a stale socket file nobody was listening on")
        if diag.verbosity:
            ancillary.want_credentials(listener.sock)
        if settings().stderr_tty or diag.verbosity:
            diag.say(f"listening on {side.addr} ({TYPE_NAMES[side.kind]})")
        if side.kind == socket.SOCK_DGRAM:
            return serve_datagrams(listener.sock, side.relay, side.dgram, diag,
                                   keep_open=serve.keep_open, echo=serve.mode == "echo",
                                   wait=side.wait, extra_taps=[side.report])
        from pysock.cli.listen import _many, hub_policy
        serving = hub_policy(serve, Access(), side.wait, side.relay, side.tls)
        wrap = _wrapper(side.outgoing, side.report, serving.tls)
        if serve.one_client:
            return _one_client(listener, serving, wrap, side)
        return _many(listener.sock, serving, side.relay, diag, wrap)
    finally:
        listener.close()


def _wrapper(outgoing, report, tls):
    """An accepted Unix stream as a Channel: descriptors and credentials ride along
    (not over TLS, which carries bytes only)."""
    import socket

    from pysock.net.ancillary import peer_credentials
    from pysock.net.datagram import DatagramChannel
    from pysock.net.endpoints import SocketChannel
    from pysock.net.unixsock import UnixChannel

    def wrap(sock):
        report.last_creds = peer_credentials(sock)
        if tls is not None:
            return SocketChannel(sock)
        if sock.type == socket.SOCK_SEQPACKET:
            channel = DatagramChannel(sock)
            channel.outgoing = outgoing
            return channel
        return UnixChannel(sock, outgoing, report)
    return wrap


def _one_client(listener, serving, wrap, side: Side) -> int:
    """One client (nc -U -l): a stream through the hub as with listen; a seqpacket
    one relayed as datagrams."""
    import socket

    from pysock.cli.listen import _reporter
    from pysock.net.ancillary import peer_credentials
    from pysock.net.endpoints import peer_name
    from pysock.net.hub import accept_one
    if side.kind == socket.SOCK_STREAM:
        from pysock.cli.listen import _one_client as one_stream
        return one_stream(listener.sock, serving, side.relay, side.diag, wrap)
    sock = accept_one(listener.sock, Access(), serving.accept_timeout, _reporter(side.diag))
    listener.sock.close()  # one client: later ones are refused, as with listen
    side.report.last_creds = peer_credentials(sock)
    side.diag.verbose(f"connection from {peer_name(sock, sock.getpeername())}")
    try:
        return _relay_datagrams(sock, side, None)
    finally:
        sock.close()
