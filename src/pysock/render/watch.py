"""The --watch displays: a rich Live table on a terminal (q quits), or a stream of
changes (new, gone) as plain lines or JSON Lines when stdout is not a terminal."""

from __future__ import annotations

import os
import select
import sys
import time

from pysock.render.inspect import Names, row, socket_columns, socket_json
from pysock.render.records import Column, RecordWriter

NEW_STYLE, GONE_STYLE, CHANGED_STYLE = "bold green", "red strike", "bold yellow"


class Keys:
    """Single key presses from a terminal stdin (cbreak, so Ctrl-C still interrupts);
    without a terminal, only waiting."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdin
        self.fd = None
        self.saved = None
        try:
            if self.stream.isatty():
                self.fd = self.stream.fileno()
        except (AttributeError, ValueError, OSError):
            self.fd = None

    def __enter__(self) -> Keys:
        if self.fd is not None:
            import termios
            import tty
            self.saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def wait(self, seconds: float) -> bool:
        """Wait up to seconds; True when the user pressed q (or Q, or Esc)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.fd is None:
                time.sleep(left)
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                key = os.read(self.fd, 32)
                if not key or key[:1] in (b"q", b"Q", b"\x1b"):
                    return True


class LiveTable:
    """A table redrawn in place: new sockets highlighted, sockets that went away
    struck through for one refresh."""

    def __init__(self, *, color: bool, extended: bool, names: Names, interval: float,
                 stream=None, header: bool = True):
        from rich.live import Live

        from pysock.render.style import console
        self.columns = [Column("mark", " ")] + socket_columns(extended)
        self.extended = extended
        self.names = names
        self.interval = interval
        self.color = color
        self.console = console(stream if stream is not None else sys.stdout, color)
        self.live = Live(console=self.console, auto_refresh=False, transient=False,
                         vertical_overflow="crop")
        self.header = header

    def __enter__(self) -> LiveTable:
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def show(self, records, new: set, gone: list, turn: int, changed: set = frozenset()) -> None:
        from rich import box
        from rich.table import Table
        from rich.text import Text
        title = (f"{len(records)} sockets, {len(new)} new, {len(changed)} changed, "
                 f"{len(gone)} gone; every {self.interval:g}s, q quits")
        table = Table(box=box.SIMPLE_HEAD, title=title, pad_edge=False, show_header=self.header,
                      header_style="bold" if self.color else "",
                      title_style="italic" if self.color else "")
        for c in self.columns:
            table.add_column(c.title, justify=c.justify)
        lines = [(r, *_mark(r.key, new, changed)) for r in records]
        lines += [(r, "-", GONE_STYLE) for r in gone]
        for r, mark, style in lines:
            cells = row(r, self.names, self.extended)
            cells["mark"] = mark
            table.add_row(*(Text(c.text(cells)) for c in self.columns),
                          style=style if self.color else None)
        self.live.update(table, refresh=True)


def _mark(key, new: set, changed: set) -> tuple[str, str]:
    if key in new:
        return "+", NEW_STYLE
    if key in changed:
        return "~", CHANGED_STYLE
    return "", ""


class ChangeStream:
    """Plain lines or JSON Lines: everything on the first look, then what changed."""

    def __init__(self, mode: str, *, extended: bool, names: Names, stream=None,
                 header: bool = True):
        self.mode = mode
        self.extended = extended
        self.names = names
        columns = [Column("event", "Event")] + socket_columns(extended)
        self.writer = RecordWriter(columns, mode, stream=stream, header=header)

    def __enter__(self) -> ChangeStream:
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def show(self, records, new: set, gone: list, turn: int, changed: set = frozenset()) -> None:
        if turn == 0:
            changes = [("present", r) for r in records]
        else:
            changes = [("new" if r.key in new else "changed", r) for r in records
                       if r.key in new or r.key in changed]
        changes += [("gone", r) for r in gone]
        for event, r in changes:
            if self.mode == "json":
                rec = {"event": event, **socket_json(r, self.extended, self.names)}
            else:
                rec = {"event": event, **row(r, self.names, self.extended)}
            self.writer.write(rec)


class LiveRows:
    """Rows redrawn in place on a terminal at every look (counters, interfaces)."""

    def __init__(self, columns: list[Column], *, color: bool, stream=None, header: bool = True):
        from rich.live import Live

        from pysock.render.style import console
        stream = stream if stream is not None else sys.stdout
        self.writer = RecordWriter(columns, "table", stream=stream, color=color, header=header)
        self.live = Live(console=console(stream, color), auto_refresh=False, transient=False,
                         vertical_overflow="crop")

    def __enter__(self) -> LiveRows:
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def show(self, rows: list[dict], title: str) -> None:
        self.writer.title = title
        self.live.update(self.writer.table(rows), refresh=True)


class RowsStream:
    """Every look's rows one after the other: a table per look on a terminal,
    lines (one header) when piped, JSON Lines."""

    def __init__(self, columns: list[Column], mode: str, *, color: bool, stream=None,
                 header: bool = True):
        self.columns, self.mode, self.color, self.header = columns, mode, color, header
        self.stream = stream if stream is not None else sys.stdout
        self.writer = RecordWriter(columns, mode, stream=self.stream, color=color, header=header)

    def __enter__(self) -> RowsStream:
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def show(self, rows: list[dict], title: str) -> None:
        if self.mode == "table":
            with RecordWriter(self.columns, "table", stream=self.stream, color=self.color,
                              title=title, header=self.header) as table:
                for r in rows:
                    table.write(r)
            return
        for r in rows:
            self.writer.write(r)
