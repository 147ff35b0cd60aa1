"""Options every byte-relaying command shares (connect, listen, unix), turned into
a relay Policy and taps in one place."""

from __future__ import annotations

import contextlib
import sys
from typing import NamedTuple

import click

from pysock.cli import options as opt
from pysock.errors import UsageError

RELAY_OPTIONS = [
    click.option("-q", "--quit-after", "quit_after", type=opt.Seconds(allow_zero=True), default=None,
                 help="After end of input, quit SECS later even if the peer has not closed."),
    click.option("--no-shutdown", is_flag=True,
                 help="Do not send FIN at end of input (OpenBSD nc without -N)."),
    click.option("-d", "--recv-only", is_flag=True, help="Never read stdin."),
    click.option("--send-only", is_flag=True,
                 help="Never write stdout; exit once stdin is sent."),
    click.option("--exit-on-peer-close", is_flag=True,
                 help="Exit as soon as the peer closes, even if input remains."),
    click.option("-i", "--idle-timeout", type=opt.SECONDS, default=None,
                 help="Close after SECS with no data either way."),
    click.option("--crlf", is_flag=True, help="Send LF line endings as CRLF."),
    click.option("--hexdump", "hexdump", metavar="FILE|-", default=None,
                 help="Hexdump both directions to FILE ('-' for stderr)."),
    click.option("--progress", is_flag=True, help="Show bytes and rate on stderr (terminal only)."),
    click.option("-v", "--verbose", count=True, help="Report connections and totals on stderr."),
]


class RelaySpec(NamedTuple):
    """The relay options as given: how a byte stream is shaped and reported.
    (A NamedTuple: immutable like a frozen dataclass, at a sixth of the class's
    creation cost, which every connect and listen pays at start.)"""

    quit_after: float | None = None
    no_shutdown: bool = False
    recv_only: bool = False
    send_only: bool = False
    exit_on_peer_close: bool = False
    idle_timeout: float | None = None
    crlf: bool = False
    hexdump: str | None = None
    progress: bool = False
    verbose: int = 0

    @classmethod
    def build(cls, **values) -> RelaySpec:
        if values.get("recv_only") and values.get("send_only"):
            raise UsageError("--recv-only and --send-only exclude each other", see_help=True)
        return cls(**values)

    @property
    def shapes(self) -> bool:
        """Whether the bytes are looked at on their way (taps, CRLF, an idle timer)."""
        return bool(self.hexdump or self.progress or self.crlf or self.idle_timeout is not None)

    def policy(self, **more):
        """The relay Policy; more= sets fields commands add (framing)."""
        from pysock.net.relay import Policy
        return Policy(shutdown_on_eof=not self.no_shutdown, quit_after_eof=self.quit_after,
                      idle_timeout=self.idle_timeout, exit_on_peer_close=self.exit_on_peer_close,
                      recv_only=self.recv_only, send_only=self.send_only, crlf=self.crlf,
                      **more)


# the command receives the group as relay=RelaySpec
relay_options = opt.option_group(RELAY_OPTIONS, RelaySpec.build, "relay")

# datagrams have no FIN and no peer close: those two options mean nothing there
_STREAM_ONLY = ("no_shutdown", "exit_on_peer_close")
_DATAGRAM_RELAY_OPTIONS = [o for o in RELAY_OPTIONS
                           if not set(opt._param_names([o])) & set(_STREAM_ONLY)]
datagram_relay_options = opt.option_group(_DATAGRAM_RELAY_OPTIONS, RelaySpec.build, "relay")


@contextlib.contextmanager
def taps(spec: RelaySpec, color: bool):
    """The taps the options ask for, opened and closed around the relay."""
    with contextlib.ExitStack() as stack:
        found = []
        if spec.hexdump:
            from pysock.render.hexdump import HexdumpTap
            if spec.hexdump == "-":
                stream = sys.stderr
            else:
                try:
                    stream = stack.enter_context(open(spec.hexdump, "w"))
                except OSError as exc:
                    raise UsageError(f"cannot write {spec.hexdump}: {exc.strerror}", see_help=True) from None
            found.append(HexdumpTap(stream))
        if spec.progress and sys.stderr.isatty():
            from pysock.render.progress import TransferProgress
            found.append(stack.enter_context(TransferProgress(color)))
        yield found


def run_relay(channel, spec: RelaySpec, diag) -> int:
    """Relay stdio with a connected channel as the options say; -v reports the totals."""
    from pysock.cli.context import settings
    from pysock.net.endpoints import StdioChannel
    from pysock.net.relay import RelayError, relay

    relay_policy = spec.policy()
    try:
        with taps(spec, settings().stderr_color) as found:
            result = relay(StdioChannel(), channel, relay_policy, found)
    except RelayError as exc:
        diag.verbose(exc.result.summary(channel.peer))
        raise
    finally:
        channel.close()
    return report_relay(result, channel, diag)


def report_relay(result, channel, diag) -> int:
    """-v: how a relay ended; its exit status."""
    if not getattr(channel, "clean_close", True):
        diag.verbose(f"{channel.peer} ended without TLS close_notify (common with ncat; "
                     f"a cut-short stream would look the same)")
    diag.verbose(result.summary(channel.peer))
    return result.status


# What each serve mode does with stdin and stdout decides which stream options mean
# something there; the rest are refused, never accepted and ignored.
_STDIO_ONLY = (("quit_after", "-q"), ("recv_only", "--recv-only"), ("send_only", "--send-only"),
               ("no_shutdown", "--no-shutdown"), ("exit_on_peer_close", "--exit-on-peer-close"))
_REPLIES = (("crlf", "--crlf"),)  # converts what stdin sends


def check_stream_options(mode: str, keep_open: bool, spec: RelaySpec, *, datagram: bool = False,
                         seqpacket: bool = False) -> None:
    """Refuse the stream options a serve mode cannot honour, with one usage line.
    mode: relay (stdin/stdout), echo, broker, chat, exec or sh-exec."""
    if mode != "relay":
        refused = _STDIO_ONLY + (_REPLIES if datagram else ())
        used = [name for key, name in refused if getattr(spec, key) not in (None, False)]
        if used:
            raise UsageError(f"{used[0]} is about stdin/stdout, which --{mode} does not "
                             f"use", see_help=True)
    if keep_open and spec.exit_on_peer_close:
        raise UsageError("--exit-on-peer-close ends at the first client's close: "
                         "it cannot go with -k", see_help=True)
    if datagram and not seqpacket:
        used = [name for key, name in (("no_shutdown", "--no-shutdown"),
                                       ("exit_on_peer_close", "--exit-on-peer-close"))
                if getattr(spec, key)]
        if used:
            raise UsageError(f"{used[0]} is about the end of a stream; datagrams have "
                             f"none (use --type seqpacket)", see_help=True)
