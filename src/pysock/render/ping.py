"""ping's output: iputils' lines and statistics block (plain), fping-like summary
rows for many hosts, JSON records, and a live table with sparklines on a terminal.
Formatting only: the session in probes/ping.py does the work."""

from __future__ import annotations

import socket
import sys
import time

from pysock.probes.ping import Failure, Finished, Reply, Sent
from pysock.render.diagnostics import say
from pysock.render.records import Column, RecordWriter, json_line

SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 20


def ms_text(us: int) -> str:
    """iputils' time= value: 3 decimals below 1 ms, fewer as the number grows."""
    if us >= 100000 - 50:
        return f"{(us + 500) // 1000}"
    if us >= 10000 - 5:
        return f"{(us + 50) // 1000}.{((us + 50) % 1000) // 100}"
    if us >= 1000:
        return f"{(us + 5) // 1000}.{((us + 5) % 1000) // 10:02d}"
    return f"{us // 1000}.{us % 1000:03d}"


def fixed_ms(us: int) -> str:
    """iputils' statistics numbers: %ld.%03ld of microseconds."""
    return f"{us // 1000}.{us % 1000:03d}"


def stamp_prefix() -> str:
    now = time.time()
    return f"[{int(now)}.{int(now % 1 * 1e6):06d}] "


def label(target, addr: str | None, numeric: bool) -> str:
    """'127.0.0.1', or 'name (addr)' when the user typed a name (no reverse DNS)."""
    addr = addr or target.addr
    if numeric or target.name == target.addr or addr != target.addr:
        return addr
    return f"{target.name} ({addr})"


def header(target, size: int, *, source: str | None = None, device: str | None = None,
           port: tuple[str, int] | None = None) -> str:
    if port is not None:
        proto, number = port
        return f"PING {target.name} ({target.addr}) {proto} port {number}"
    v4 = target.family == socket.AF_INET
    start = f"PING {target.name} ({target.addr}) " if v4 \
        else f"PING {target.name}({target.addr}) "
    if source or device:
        start += f"from {source or ''} {device or ''}: "
    if v4:
        return start + f"{size}({size + 28}) bytes of data."
    return start + f"{size} data bytes"


def reply_line(event, *, numeric: bool, port: tuple[str, int] | None = None) -> str:
    """One iputils reply line (without the newline), or the port-ping equivalent."""
    who = label(event.target, event.addr, numeric)
    if port is not None:
        return _port_line(event, who, port)
    text = f"{event.size} bytes from {who}: icmp_seq={event.seq}"
    if event.ttl is not None:
        text += f" ttl={event.ttl}"
    if event.truncated:
        return text + " (truncated)"
    text += f" time={ms_text(event.rtt_us)} ms"
    if event.duplicate:
        text += " (DUP!)"
    if event.corrupt:
        text += " (BAD CHECKSUM!)"
    if event.wrong_byte is not None:
        index, want, got = event.wrong_byte
        text += f"\nwrong data byte #{index} should be 0x{want:x} but was 0x{got:x}"
        text += _dump(event.data)
    return text


def _dump(data: bytes, skip: int = 16) -> str:
    """iputils' dump of the data that came back, 32 bytes a line from byte 16 on."""
    text = ""
    for i in range(skip, len(data)):
        if i % 32 == skip:
            text += f"\n#{i}\t"
        text += f"{data[i]:x} "
    return text


def _port_line(event, who: str, port: tuple[str, int]) -> str:
    proto, number = port
    what = {("tcp", "open"): "connected to", ("tcp", "closed"): "refused by",
            ("udp", "open"): f"{event.size} bytes from",
            ("udp", "closed"): "port unreachable from"}[(proto, event.state)]
    text = f"{what} {who} {proto}/{number}: seq={event.seq}"
    if event.ttl is not None:
        text += f" ttl={event.ttl}"
    text += f" time={ms_text(event.rtt_us)} ms"
    return text + (" (DUP!)" if event.duplicate else "")


def failure_line(event, *, numeric: bool, port: tuple[str, int] | None = None) -> str:
    """'From 10.0.0.1 icmp_seq=3 Destination Host Unreachable' (stdout, as iputils)."""
    seq = "seq" if port else "icmp_seq"
    return f"From {label(event.target, event.addr, numeric)} {seq}={event.seq} {event.text}"


def statistics(target, *, interval: float, flood: bool) -> str:
    """iputils' closing block, to the byte."""
    s = target.stats
    line = f"{s.transmitted} packets transmitted, {s.received} received"
    if s.duplicates:
        line += f", +{s.duplicates} duplicates"
    if s.corrupted:
        line += f", +{s.corrupted} corrupted"
    if s.errors:
        line += f", +{s.errors} errors"
    if s.transmitted:
        line += f", {s.loss_pct:g}% packet loss, time {target.elapsed_ms}ms"
    out = [f"--- {target.name} ping statistics ---", line]
    parts = []
    rtt = s.rtt_us()
    if rtt:
        parts.append("rtt min/avg/max/mdev = " + "/".join(fixed_ms(v) for v in rtt) + " ms")
    if s.pipesize > 1:
        parts.append(f"pipe {s.pipesize}")
    if s.received and (interval == 0 or flood) and s.transmitted > 1:
        ipg = target.elapsed_us // (s.transmitted - 1)
        parts.append(f"ipg/ewma {fixed_ms(ipg)}/{s.ewma8 // 8000}.{(s.ewma8 // 8) % 1000:03d} ms")
    out.append(", ".join(parts))  # iputils ends the block with this line, empty or not
    return "\n".join(out)


# ---- records (JSON) and summary rows -------------------------------------------


def reply_record(event, port: tuple[str, int] | None = None) -> dict:
    record = {"type": "reply", "host": event.target.name, "addr": event.target.addr,
              "from": event.addr, "seq": event.seq, "ttl": event.ttl,
              "rtt_ms": event.rtt_ns / 1e6, "bytes": event.size,
              "duplicate": event.duplicate, "corrupt": event.corrupt,
              "truncated": event.truncated}
    if port is not None:
        record.update(proto=port[0], port=port[1], state=event.state)
    return record


def failure_record(event) -> dict:
    return {"type": "error", "host": event.target.name, "addr": event.target.addr,
            "from": event.addr, "seq": event.seq, "error": event.text}


def summary_record(target) -> dict:
    return {"type": "summary", "host": target.name, "addr": target.addr,
            **target.stats.summary(), "time_ms": target.elapsed_ms}


def _ms_or_dash(value) -> str:
    return "-" if value is None else f"{value:.3f}"


SUMMARY_COLUMNS = [
    Column("host", "HOST"),
    Column("addr", "ADDRESS"),
    Column("transmitted", "SENT", "right"),
    Column("received", "RECV", "right"),
    Column("loss_pct", "LOSS%", "right", lambda v: f"{v:g}"),
    Column("min_ms", "MIN_MS", "right", _ms_or_dash),
    Column("avg_ms", "AVG_MS", "right", _ms_or_dash),
    Column("max_ms", "MAX_MS", "right", _ms_or_dash),
    Column("mdev_ms", "MDEV_MS", "right", _ms_or_dash),
]


def summary_writer(mode: str, color: bool, stream=None) -> RecordWriter:
    return RecordWriter(SUMMARY_COLUMNS, mode, color=color, stream=stream)


def sparkline(values) -> str:
    values = list(values)
    if not values:
        return ""
    low, high = 0, max(values)  # heights from zero: noise does not look like a cliff
    span = (high - low) or 1
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) * len(SPARKS) / span))]
                   for v in values)


class LiveTable:
    """A table of all hosts, redrawn as replies come in (terminal only)."""

    def __init__(self, targets, color: bool, stream=None, title: str | None = None):
        self.targets = targets
        self.color = color
        self.stream = stream or sys.stdout
        self.title = title
        self._live = None
        self._drawn = 0.0

    def __enter__(self) -> LiveTable:
        from rich.live import Live

        from pysock.render.style import console
        self._live = Live(self.table(), console=console(self.stream, self.color),
                          auto_refresh=False, transient=False)
        self._live.__enter__()
        return self

    def update(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._drawn >= 0.1:
            self._drawn = now
            self._live.update(self.table(), refresh=True)

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self.table(), refresh=True)
            self._live.__exit__(None, None, None)

    def table(self):
        from rich import box
        from rich.table import Table
        table = Table(box=box.SIMPLE_HEAD, title=self.title, pad_edge=False,
                      header_style="bold" if self.color else "")
        both = any(t.name != t.addr for t in self.targets)  # an ADDRESS column only for names
        table.add_column("HOST", no_wrap=True, min_width=max(len(t.name) for t in self.targets))
        if both:
            table.add_column("ADDRESS", no_wrap=True,
                             min_width=max(len(t.addr) for t in self.targets))
        for title in ("SENT", "RECV", "LOSS%", "LAST", "MIN", "AVG", "MAX"):
            table.add_column(title, justify="right", no_wrap=True)
        table.add_column("RECENT", no_wrap=True, max_width=SPARK_WIDTH)
        for target in self.targets:
            s = target.stats
            rtt = s.rtt_us()
            low, avg, high = (fixed_ms(v) for v in rtt[:3]) if rtt else ("-", "-", "-")
            loss = f"{s.loss_pct:g}" if s.transmitted else "-"
            style = "red" if self.color and s.transmitted and not s.received else None
            row = [target.name] + ([target.addr] if both else [])
            row += [str(s.transmitted), str(s.received), loss,
                    ms_text(s.last_us) if s.last_us is not None else "-", low, avg, high,
                    sparkline(list(s.recent)[-SPARK_WIDTH:])]
            table.add_row(*row, style=style)
        return table


# ---- views: which event goes where ----------------------------------------------


class View:
    """The output of one ping run, given the events of the session as they come."""

    def __init__(self, targets, *, numeric: bool = False, quiet: bool = False,
                 flood: bool = False, timestamps: bool = False, interval: float = 1.0,
                 port: tuple[str, int] | None = None, color: bool = False, stream=None):
        self.targets = targets
        self.numeric, self.quiet, self.flood = numeric, quiet, flood
        self.timestamps, self.interval, self.port = timestamps, interval, port
        self.color = color
        self.out = stream or sys.stdout

    def start(self, header_line: str | None) -> None:
        pass

    def event(self, event) -> None:
        pass

    def finish(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


FLOOD_MARKS = {Sent: ".", Reply: "\b \b", Failure: "\bE"}  # ping -f's dots


class JsonView(View):
    def event(self, event) -> None:
        if isinstance(event, Reply):
            record = reply_record(event, self.port)
        elif isinstance(event, Failure):
            record = failure_record(event)
        elif isinstance(event, Finished):
            record = summary_record(event.target)
        else:
            return
        self.out.write(json_line(record))
        self.out.flush()


class LinesView(View):
    """iputils' output: the header, a line per reply or error (or flood dots), and
    the statistics block; with many hosts, a summary row per host at the end."""

    def start(self, header_line: str | None) -> None:
        if header_line:
            self.out.write(header_line + "\n")
            self.out.flush()

    def event(self, event) -> None:
        kind = type(event)
        if kind is Sent and not self.flood:
            return  # the common case, once a probe: nothing to write
        if self.flood and len(self.targets) == 1:
            self._flood(event)
        elif kind is Reply and not self.quiet:
            self._line(reply_line(event, numeric=self.numeric, port=self.port))
        elif isinstance(event, Failure) and event.addr is None:
            say(f"cannot send to {event.target.addr} (seq {event.seq}): {event.text}")
        elif isinstance(event, Failure) and not self.quiet:
            self._line(failure_line(event, numeric=self.numeric, port=self.port))

    def _flood(self, event) -> None:
        if self.quiet:
            return
        mark = FLOOD_MARKS.get(type(event))
        if isinstance(event, Reply) and event.corrupt:
            mark = "\bC"
        if mark:
            self.out.write(mark)
            self.out.flush()

    def _line(self, text: str) -> None:
        self.out.write((stamp_prefix() if self.timestamps else "") + text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.flood and len(self.targets) == 1 and not self.quiet:
            self.out.write("\n")
        if len(self.targets) == 1:
            self.out.write("\n" + statistics(self.targets[0], interval=self.interval,
                                             flood=self.flood) + "\n")
        else:
            if not self.quiet:
                self.out.write("\n")
            with summary_writer("plain", False, self.out) as writer:
                for target in self.targets:
                    writer.write(summary_record(target))
        self.out.flush()


class LiveView(View):
    """Many hosts on a terminal: one table, updated as replies come in."""

    def __enter__(self):
        self.live = LiveTable(self.targets, self.color, self.out).__enter__()
        return self

    def event(self, event) -> None:
        if not isinstance(event, Sent):
            self.live.update()

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)
