"""pysock capture: packets on the wire, tcpdump's filters and lines, the process
behind each flow, pcapng out (-w) and pcap/pcapng in (-r)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.cli.helpview import TeachingCommand
from pysock.errors import ExitStatus, PysockError, UsageError

KEYWORDS = ("host", "net", "port", "portrange", "src", "dst", "tcp", "udp", "icmp", "icmp6",
            "ip", "ip6", "arp", "ether", "vlan", "and", "or", "not", "less", "greater",
            "broadcast", "multicast", "proto", "tcp[tcpflags]", "tcp-syn", "tcp-ack",
            "tcp-fin", "tcp-rst", "tcp-push")
TIME_FORMATS = ("time", "epoch", "date", "delta", "relative", "none")
FILE_FORMATS = ("pcap", "pcapng")


class FilterWord(click.ParamType):
    name = "filter"

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem
        return [CompletionItem(w) for w in KEYWORDS if w.startswith(incomplete)]


class CaptureIface(options.InterfaceType):
    def parse(self, text):
        return text if text == "any" else super().parse(text)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem
        return [CompletionItem(w) for w in ["any", *options.names.interfaces()]
                if w.startswith(incomplete)]


class CaptureCommand(TeachingCommand):
    """Everything after '--' is COMMAND ARGS..., never filter words or options."""

    def parse_args(self, ctx, args):
        if "--" in args:
            at = args.index("--")
            ctx.meta["capture.command"] = args[at + 1:]
            args = args[:at]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx):
        return [*super().collect_usage_pieces(ctx), "[-- COMMAND [ARGS]...]"]


@dataclass(frozen=True)
class Limits:
    """-i, -c, --duration, -s: where to capture and how much."""

    ifaces: tuple[str, ...]
    count: int | None
    duration: float | None
    snaplen: int


@dataclass(frozen=True)
class Selection:
    """--port, --host (ANDed with FILTER into the kernel's filter), --pid and --process
    (matched against the owner of each packet's socket)."""

    ports: tuple[int, ...]
    hosts: tuple[str, ...]
    pids: tuple[int, ...]
    names: tuple[str, ...]

    @property
    def by_owner(self) -> bool:
        return bool(self.pids or self.names)

    def expression(self, words) -> str:
        parts = [" ".join(words)] if words else []
        if self.ports:
            parts.append(" or ".join(f"port {p}" for p in self.ports))
        if self.hosts:
            parts.append(" or ".join(f"host {h}" for h in self.hosts))
        return " and ".join(f"({p})" for p in parts) if len(parts) > 1 else "".join(parts)

    def owner_test(self):
        """A test of a packet's owners, or None when every packet is wanted."""
        if not self.by_owner:
            return None
        pids, names = set(self.pids), set(self.names)

        def wanted(packet) -> bool:
            return any(owner and (owner[0] in pids or owner[1] in names)
                       for owner in (packet.owner, packet.peer_owner))
        return wanted


@dataclass(frozen=True)
class Printing:
    """-A, -X, -v, --time-format, --flows: how packets (or flows) are printed."""

    ascii: bool
    hexdump: bool
    verbose: bool
    time_format: str
    flows: bool
    time_format_given: bool

    @property
    def packet_details(self) -> bool:
        return self.ascii or self.hexdump or self.verbose


@dataclass(frozen=True)
class Files:
    """-w FILE in --format, -r FILE."""

    write: str | None
    format: str | None  # as given; None: from the name of -w's FILE
    read: str | None

    @property
    def write_format(self) -> str:
        """pcap for a FILE named *.pcap (tcpdump's habit), pcapng otherwise."""
        if self.format:
            return self.format
        return "pcap" if self.write and self.write.lower().endswith(".pcap") else "pcapng"


def _limits(*, ifaces, count, duration, snaplen) -> Limits:
    return Limits(tuple(ifaces), count, duration, snaplen)


def _selection(*, ports, hosts, pids, process_names) -> Selection:
    return Selection(tuple(ports), tuple(hosts), tuple(pids), tuple(process_names))


def _printing(*, ascii, hexdump, verbose, time_format, flows) -> Printing:
    return Printing(ascii, hexdump, verbose, time_format, flows, _given("time_format"))


def _files(*, write, file_format, read) -> Files:
    return Files(write, file_format, read)


# -i, -c, --duration, -s: the command receives them as limits=Limits
limit_options = options.option_group([
    click.option("-i", "--iface", "ifaces", multiple=True, type=CaptureIface(),
                 help="Capture on this interface (repeatable) [default: any]."),
    click.option("-c", "--count", type=click.IntRange(min=1), help="Stop after COUNT packets."),
    click.option("--duration", type=options.SECONDS, help="Stop after this many seconds."),
    click.option("-s", "--snaplen", type=click.IntRange(1, 262144), default=262144,
                 show_default=True, help="Keep at most this many bytes of each packet."),
], _limits, "limits")

# --port, --host, --pid, --process: the command receives them as selection=Selection
selection_options = options.option_group([
    click.option("--port", "ports", type=options.PORT, multiple=True,
                 help="Only TCP or UDP port PORT, either direction (repeatable; ANDed with "
                      "FILTER)."),
    click.option("--host", "hosts", multiple=True, metavar="ADDR",
                 help="Only packets to or from ADDR (repeatable; ANDed with FILTER)."),
    click.option("--pid", "pids", type=click.IntRange(min=1), multiple=True,
                 help="Only the traffic of sockets this process owns (repeatable)."),
    click.option("--process", "process_names", multiple=True, metavar="NAME",
                 help="Only the traffic of processes with this name (repeatable)."),
], _selection, "selection")

# -A, -X, -v, --time-format, --flows: the command receives them as printing=Printing
printing_options = options.option_group([
    click.option("-A", "ascii", is_flag=True, help="Print each packet's bytes as text."),
    click.option("-X", "hexdump", is_flag=True, help="Print each packet in hex and text."),
    click.option("-v", "--verbose", is_flag=True,
                 help="More IP header fields (ttl, id, flags...)."),
    click.option("--time-format", type=click.Choice(TIME_FORMATS), default="time",
                 show_default=True, help="Time stamps as tcpdump's -t habits: time of day, "
                 "epoch (-tt), date (-tttt), delta (-ttt), relative (-ttttt), none (-t)."),
    click.option("--flows", is_flag=True, help="One row per connection instead of packets: "
                 "packets and bytes each way, RTT, retransmissions, resets, process."),
], _printing, "printing")

# -w, --format, -r: the command receives them as files=Files
file_options = options.option_group([
    click.option("-w", "--write", "write", metavar="FILE",
                 help="Write packets to FILE ('-' for stdout) instead of printing them."),
    click.option("--format", "file_format", type=click.Choice(FILE_FORMATS),
                 help="The file format of -w: pcap (classic, what tcpdump writes; the fastest) "
                 "or pcapng (interface names, direction, the process as a comment) "
                 "[default: pcap when FILE ends in .pcap, else pcapng]."),
    click.option("-r", "--read", "read", metavar="FILE", type=click.Path(dir_okay=False),
                 help="Read packets from a pcap or pcapng FILE instead of the network."),
], _files, "files")


@click.command(cls=CaptureCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("words", nargs=-1, metavar="[FILTER...]", type=FilterWord())
@limit_options
@options.numeric
@click.option("--no-promisc", is_flag=True, help="Leave the interface out of promiscuous mode.")
@selection_options
@printing_options
@file_options
@options.json_output
def capture(words, limits, numeric, no_promisc, selection, printing, files, json) -> int:
    """Capture packets, as tcpdump does, and name the process behind each one.
    FILTER is pcap-filter syntax ('tcp port 80 and host 10.0.0.5'), compiled by
    libpcap and run in the kernel."""
    from pysock.probes.capture.session import CaptureSpec
    command = click.get_current_context().meta.get("capture.command")
    live_only = bool(limits.ifaces or no_promisc or limits.duration)
    _check(command, selection, printing, files, json, live_only)
    write = files.write
    spec = CaptureSpec(ifaces=limits.ifaces, expression=selection.expression(words),
                       snaplen=limits.snaplen, promisc=not no_promisc, count=limits.count,
                       duration=limits.duration,
                       attribute=not (write and files.write_format == "pcap"
                                      and not selection.by_owner and command is None))
    if printing.flows:
        view = _flows_view(json, numeric)
    else:
        view = None if write else _view(json, numeric, printing)
    wanted = selection.owner_test()
    if files.read:
        return _read(files.read, spec, view, files, wanted)
    return _live(spec, view, files, wanted, command)


def _check(command, selection, printing, files, json, live_only: bool) -> None:
    """The combinations capture refuses, each with one usage line."""
    if command is not None and (not command or files.read or selection.by_owner):
        raise UsageError("-- COMMAND runs a command and captures its traffic: it needs "
                         "a COMMAND and goes with neither -r, --pid nor --process", see_help=True)
    if files.write and (json or printing.packet_details):
        raise UsageError("-w writes packets to a file: --json, -A, -X and -v print them", see_help=True)
    if printing.flows and (files.write or printing.packet_details or printing.time_format_given):
        raise UsageError("--flows shows connections: -w, -A, -X, -v and --time-format "
                         "are about packets", see_help=True)
    if files.read and live_only:
        raise UsageError("-r reads a file: -i, --no-promisc and --duration are for live capture",
                         see_help=True)
    if files.read and selection.by_owner:
        raise UsageError("--pid and --process need a live capture (files hold no sockets)", see_help=True)
    if files.format and not files.write:
        raise UsageError("--format is the format of the file -w writes: give -w FILE", see_help=True)


def _view(json, numeric, printing: Printing):
    from pysock.render import capture as render
    if settings().output_mode(json) == "json":
        return render.JsonView()
    return render.LinesView(numeric=numeric, time_format=printing.time_format,
                            ascii=printing.ascii, hexdump=printing.hexdump,
                            verbose=printing.verbose)


def _given(name: str) -> bool:
    from click.core import ParameterSource
    source = click.get_current_context().get_parameter_source(name)
    return source not in (None, ParameterSource.DEFAULT)


class FlowSink:
    """--flows: packets folded into the flow table; the view draws it (a terminal)
    or writes each flow once it has closed and gone quiet (a pipe, --json)."""

    LINGER_NS = 1_000_000_000  # the last ACK of a close comes after both FINs

    def __init__(self, view):
        from pysock.probes.capture.flows import FlowTable
        self.table, self.view = FlowTable(), view
        self.now_ns = 0

    def packet(self, packet) -> None:
        self.table.add(packet)
        self.now_ns = packet.ts_ns

    def flush(self) -> None:
        if not self.view.live:
            for flow in self.table.ended(self.now_ns, self.LINGER_NS):
                self.view.closed(flow)
        self.view.update(self.table)

    def summary(self, stats) -> None:
        self.view.finish(self.table, stats)


def _flows_view(json, numeric):
    from pysock.render import flows as render
    from pysock.render.capture import PortNames
    mode = settings().output_mode(json)
    ports = PortNames(numeric)
    if mode == "table":
        return FlowSink(render.FlowTableView(settings().color, ports))
    return FlowSink(render.FlowRecords(mode, ports))


def _open_output(path: str):
    if path == "-":
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise PysockError(f"cannot write '{path}': {exc.strerror}", ExitStatus.FAILURE) from None


def _close_output(stream) -> None:
    stream.flush()
    if stream is not sys.stdout.buffer:
        stream.close()


class Sink:
    """Where packets go: the view (printed), or a pcap/pcapng writer on the file
    -w names; close() flushes it and closes that file."""

    def __init__(self, view, files: Files, snaplen: int, linktype=None):
        self.stream = None
        if view is not None:
            self.put, self.flush = view.packet, view.flush
            return
        from pysock.probes.capture.pcapfile import PcapWriter
        from pysock.probes.capture.pcapng import PcapngWriter
        self.stream = stream = _open_output(files.write)
        if files.write_format == "pcap":
            writer = PcapWriter(stream, snaplen, linktype)
        else:
            writer = PcapngWriter(stream, snaplen)

        def put(packet) -> None:
            iface = writer.interface(packet.iface, packet.linktype)
            writer.packet(iface, packet.ts_ns, packet.data, packet.wirelen, packet.outbound,
                          packet.process_label)
        self.put, self.flush = put, writer.flush

    def close(self) -> None:
        self.flush()
        if self.stream is not None:
            _close_output(self.stream)


def _live(spec, view, files: Files, wanted, command=None) -> int:
    from pysock.probes.capture.session import LiveCapture
    from pysock.render.capture import closing_lines, listening_line
    alone = view is None and wanted is None and command is None
    if alone and files.write_format == "pcap":
        stats = _write_libpcap(spec, files.write)
        if stats is not None:
            closing_lines(stats)
            return ExitStatus.OK
    session = LiveCapture(spec)
    listening_line(spec.ifaces, "EN10MB (Ethernet)" if session.linktype == 1 else "RAW (Raw IP)",
                   spec.snaplen)
    status = 0
    if alone and files.write_format == "pcapng":
        stats = _write_fast(session, files.write)
    else:
        stats, status = _live_packets(session, view, files, wanted, command)
    if view is not None:
        view.summary(stats)
    closing_lines(stats)
    if status:
        _command_failed(command, status)
    return ExitStatus.OK


def _write_fast(session, write):
    """-w alone: blocks of frames straight into the file, never a Packet."""
    stream = _open_output(write)
    try:
        session.write_pcapng(stream)
    except KeyboardInterrupt:
        pass
    finally:
        _close_output(stream)
        stats = session.statistics()
        session.close()
    return stats


def _write_libpcap(spec, write):
    """-w FILE as pcap on one interface: libpcap's own loop writes it; None when
    it cannot (several interfaces, no libpcap), and pysock's ring does."""
    from pysock.probes.capture import libpcap
    from pysock.render.capture import listening_line
    if not libpcap.eligible(spec.ifaces):
        return None
    dump = libpcap.open_dump(spec.ifaces[0], spec.expression, spec.snaplen, spec.promisc, write,
                             spec.buffer)
    if dump is None:
        return None
    listening_line(spec.ifaces, "EN10MB (Ethernet)", spec.snaplen)
    try:
        dump.run(spec.count, spec.duration)
    except KeyboardInterrupt:
        pass
    finally:
        stats = dump.statistics()
        dump.close()
    return stats


def _live_packets(session, view, files: Files, wanted, command):
    sink = Sink(view, files, session.spec.snaplen, session.linktype)
    tree = until = None
    try:
        if command is not None:
            tree = _run(command, session, files.write)
            wanted, until = tree.owns, tree.done
        _pump(session.packets(wanted, until), sink)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
        stats = session.statistics()
        session.close()
        status = tree.stop() if tree is not None else 0
    return stats, status


def _run(command, session, write):
    """Start COMMAND with the capture already on; its stdout goes to pysock's stderr
    unless pysock's own stdout is free (-w FILE)."""
    from pysock.probes.capture.command import CommandTree
    if session.attribution is None:
        raise PysockError("-- COMMAND needs the process attribution", ExitStatus.USAGE)
    stdout = None if write and write != "-" else sys.stderr.fileno()
    tree = CommandTree(command, stdout=stdout)
    session.attribution.on_owner = tree.judge
    return tree


def _command_failed(command, status: int) -> None:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
    settings().diagnostics().say(f"{' '.join(command)} {how}")


def _pump(packets, sink: Sink) -> None:
    import time
    put, flush = sink.put, sink.flush
    last = time.monotonic()
    for packet in packets:
        put(packet)
        now = time.monotonic()
        if now - last > 0.2:
            flush()
            last = now


def _read(path, spec, view, files: Files, wanted) -> int:
    from pysock.probes.capture.session import read_file
    sink = Sink(view, files, spec.snaplen)
    try:
        _pump(read_file(path, spec.expression, spec.count), sink)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()
    if view is not None:
        view.summary(None)
    return ExitStatus.OK
