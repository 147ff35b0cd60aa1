"""What udp and unix --type dgram share: framing options, --show records, the
notices every datagram relay gives (truncation), and serving senders (nc -u -l)."""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import NamedTuple

import click

from pysock.cli import options as opt
from pysock.cli.context import settings
from pysock.cli.relayopts import RelaySpec, taps
from pysock.errors import UsageError

DATAGRAM_OPTIONS = [
    click.option("--chunk", type=click.IntRange(1), default=None, metavar="N",
                 help="Send input as N-byte datagrams (the last one may be shorter)."),
    click.option("--raw", is_flag=True,
                 help="One datagram per read of stdin, however it is cut (nc -u)."),
    click.option("--buffer", "bufsize", type=click.IntRange(1, (1 << 31) - 1), default=None, metavar="BYTES",
                 help="Receive buffer per datagram; larger datagrams are reported truncated "
                      "[default: 65536 udp, 1 MiB unix]."),
    click.option("--show", is_flag=True,
                 help="Print a record per received datagram (time, sender, length, first bytes) "
                      "instead of its data."),
    click.option("--json", "json", is_flag=True,
                 help="Records as JSON Lines: --show's (implied) or --measure's."),
]


class DatagramSpec(NamedTuple):
    """How datagrams are cut from input and shown: the options as given."""

    chunk: int | None = None
    raw: bool = False
    bufsize: int | None = None
    show: bool = False
    json: bool = False

    def framing(self):
        from pysock.net.datagram import Framing
        if self.chunk is not None and self.raw:
            raise UsageError("--chunk and --raw exclude each other", see_help=True)
        if self.chunk is not None:
            return Framing("chunk", self.chunk)
        return Framing("raw") if self.raw else Framing("line")

    def given(self) -> list[str]:
        """The flags given, for a mode that has no datagrams to apply them to."""
        return [name for name, on in (("--chunk", self.chunk is not None), ("--raw", self.raw),
                                      ("--buffer", self.bufsize is not None),
                                      ("--show", self.show), ("--json", self.json)) if on]


# the command receives the group as datagrams=DatagramSpec
datagram_options = opt.option_group(DATAGRAM_OPTIONS, DatagramSpec, "datagrams")


def datagram_policy(relay: RelaySpec, dgram: DatagramSpec, default_quit: float | None):
    """At end of input a datagram client waits for replies -q SECS (default_quit)."""
    if relay.quit_after is None and default_quit is not None:
        relay = relay._replace(quit_after=default_quit)
    return relay.policy(framing=dgram.framing())


# ---- taps ------------------------------------------------------------------------


def _hex_head(data: bytes, width: int = 16) -> str:
    return data[:width].hex(" ")


def _text_head(data: bytes, width: int = 16) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data[:width])


class ShowTap:
    """--show: one record per received datagram."""

    sees_datagrams = True

    def __init__(self, writer):
        self.writer = writer
        self.start = None

    def datagram(self, direction: str, d) -> None:
        self.start = self.start or d.at
        record = {
            "time": datetime.datetime.fromtimestamp(d.at).isoformat(timespec="microseconds"),
            "elapsed_ms": round((d.at - self.start) * 1000, 3),
            "sender": d.sender, "bytes": d.size, "truncated": d.truncated, "ttl": d.ttl,
            "head_hex": _hex_head(d.data), "head_text": _text_head(d.data),
        }
        if d.creds is not None:
            record.update(pid=d.creds.pid, uid=d.creds.uid, gid=d.creds.gid)
        if d.fds:
            record["fds"] = len(d.fds)
        self.writer.write(record)


def show_columns():
    from pysock.render.records import Column
    return [Column("time", "TIME", fmt=lambda t: t[11:], width=15),
            Column("sender", "SENDER", width=22), Column("bytes", "BYTES", "right", width=6),
            Column("ttl", "TTL", "right", width=3),
            Column("truncated", "CUT", fmt=lambda t: "yes" if t else "-", width=3),
            Column("head_hex", "FIRST BYTES", width=47), Column("head_text", "TEXT", width=16)]


class NoticeTap:
    """Truncation (always) and, with -v, each new sender and its credentials."""

    sees_datagrams = True

    def __init__(self, diag, bufsize: int):
        self.diag, self.bufsize = diag, bufsize
        self.senders: dict[str, object] = {}

    def datagram(self, direction: str, d) -> None:
        if d.truncated:
            self.diag.say(f"datagram from {d.sender} was {d.size} bytes; only the first "
                          f"{len(d.data)} were kept (raise --buffer)")
        if d.sender not in self.senders or (d.creds and self.senders[d.sender] != d.creds):
            self.senders[d.sender] = d.creds
            who = f" ({d.creds.describe()})" if d.creds else ""
            self.diag.verbose(f"datagram from {d.sender}{who}")


@contextlib.contextmanager
def datagram_taps(relay: RelaySpec, dgram: DatagramSpec, diag, bufsize: int, extra=()):
    """The relay's taps, the notices, and --show's record writer; with --show the
    datagrams' data goes nowhere (the records are the output)."""
    s = settings()
    with contextlib.ExitStack() as stack:
        found = list(stack.enter_context(taps(relay, s.stderr_color)))
        found.append(NoticeTap(diag, bufsize))
        found.extend(extra)
        if dgram.show:
            from pysock.render.records import RecordWriter
            writer = stack.enter_context(RecordWriter(show_columns(), s.output_mode(dgram.json),
                                                      color=s.color, streaming=True))
            found.append(ShowTap(writer))
        yield found


def local_channel(dgram: DatagramSpec):
    """stdin/stdout, or stdin and nowhere when --show prints records instead."""
    from pysock.net.endpoints import StdioChannel
    if dgram.show:
        return StdioChannel(0, os.open(os.devnull, os.O_WRONLY))
    return StdioChannel()


# ---- relaying -----------------------------------------------------------------------


def relay_datagrams(channel, spec: RelaySpec, dgram: DatagramSpec, diag,
                    default_quit: float | None, extra_taps=()) -> int:
    from pysock.net.relay import RelayError, relay
    relay_policy = datagram_policy(spec, dgram, default_quit)
    try:
        with datagram_taps(spec, dgram, diag, channel.bufsize, extra_taps) as found:
            result = relay(local_channel(dgram), channel, relay_policy, found)
    except RelayError as exc:
        diag.verbose(exc.result.summary(channel.peer or "senders"))
        raise
    diag.verbose(result.summary(channel.peer or "senders"))
    if result.truncated:
        diag.say(f"{result.truncated} datagram(s) were truncated")
    return result.status


def serve_datagrams(sock, spec: RelaySpec, dgram: DatagramSpec, diag, *, keep_open: bool,
                    echo: bool, wait: float | None, extra_taps=()) -> int:
    """nc -u -l: the first sender, then only it (connected), or with -k anyone; data
    to stdout and stdin to the last sender, or --echo each datagram back."""
    from pysock.net import datagram
    from pysock.net.address import format_sockaddr
    dgram.framing()  # usage errors before waiting
    first = datagram.first_sender(sock, wait)
    connected = not keep_open and datagram.talk_to(sock, first)
    if not keep_open and not connected:
        diag.verbose("the first sender cannot be answered (its socket has no name or is "
                     "closed): hearing every sender")
    if connected:
        diag.verbose(f"talking to {format_sockaddr(first)} (-k to hear every sender)")
    channel = datagram.DatagramChannel(sock, dgram.bufsize)
    if echo:
        with datagram_taps(spec, dgram, diag, channel.bufsize, extra_taps) as found:
            return datagram.echo(channel, idle_timeout=spec.idle_timeout, taps=found)
    return relay_datagrams(channel, spec, dgram, diag, None, extra_taps)
