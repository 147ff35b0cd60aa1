"""One writer for every command that prints records, in the three renderings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from pysock.render.style import console

_JSON = None  # one encoder, built on the first JSON record

class Column:
    """One column of a record table (a plain class: no dataclasses import on the way
    to a listing's first byte)."""

    __slots__ = ("key", "title", "justify", "fmt", "style", "width")

    def __init__(self, key: str, title: str, justify: str = "left",
                 fmt: Callable[[object], str] | None = None,
                 style: Callable[[dict], str | None] | None = None, width: int | None = None):
        self.key, self.title = key, title
        self.justify = justify  # left | right
        self.fmt = fmt
        self.style = style  # rich style of a cell, tables only
        self.width = width  # streaming tables: the column's fixed width

    def text(self, record: dict) -> str:
        value = record.get(self.key)
        if self.fmt is not None:
            return self.fmt(value)
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)


def cell(value) -> str:
    """Column.text for a column without fmt."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return "-"
    if kind is float:
        return f"{value:.3f}"
    return str(value)


def _json():
    global _JSON
    if _JSON is None:
        import json
        _JSON = json.JSONEncoder(separators=(",", ":"), default=str)
    return _JSON


def json_line(record: dict) -> str:
    """One JSON Lines record, newline included: the one JSON encoding of records."""
    return _json().encode(record) + "\n"


class RecordWriter:
    """Write records as a table (terminal), tab-separated lines (pipe) or JSON Lines.

    mode: 'table' buffers and draws at close; 'plain' and 'json' stream, flushing
    each record, so `pysock ping | grep` sees lines as they happen. streaming=True
    draws a table row by row as records come (fixed column widths), for records
    that arrive over a long time (datagrams)."""

    def __init__(self, columns: Iterable[Column], mode: str, *, stream=None, color: bool = False,
                 header: bool = True, title: str | None = None, flush: bool = True,
                 streaming: bool = False):
        self.columns = list(columns)
        self.mode = mode
        self.stream = stream if stream is not None else sys.stdout
        self.color = color
        self.header = header
        self.title = title
        self.flush = flush  # False: let the stream buffer (thousands of records at once)
        self.rows: list[dict] = []
        self.streaming = streaming
        self._header_written = False
        # plain lines without a per-cell method call when no column formats its own
        self._keys = None if any(c.fmt for c in self.columns) else [c.key for c in self.columns]

    def write(self, record: dict) -> None:
        if self.mode == "json":
            self.stream.write(json_line(record))
            if self.flush:
                self.stream.flush()
        elif self.mode == "plain":
            if self.header and not self._header_written:
                self.stream.write("\t".join(c.title for c in self.columns) + "\n")
                self._header_written = True
            if self._keys is not None:
                get = record.get
                line = "\t".join([cell(get(k)) for k in self._keys])
            else:
                line = "\t".join([c.text(record) for c in self.columns])
            self.stream.write(line + "\n")
            if self.flush:
                self.stream.flush()
        elif self.streaming:
            self._stream_row(record)
        else:
            self.rows.append(record)

    def _stream_row(self, record: dict) -> None:
        from rich.table import Table
        table = Table(box=None, show_header=self.header and not self._header_written,
                      header_style="bold" if self.color else "", pad_edge=False)
        for c in self.columns:
            width = c.width or len(c.title)
            table.add_column(c.title, justify=c.justify, width=width, no_wrap=True,
                             overflow="ellipsis")
        from rich.text import Text
        table.add_row(*(Text(c.text(record)) for c in self.columns))  # text, never markup
        console(self.stream, self.color).print(table)
        self._header_written = True

    def close(self) -> None:
        if self.mode != "table" and not self.flush:
            self.stream.flush()
        if self.mode == "table" and self.rows:
            console(self.stream, self.color).print(self.table(self.rows))
            self.rows = []

    def table(self, rows: list[dict]):
        from rich import box
        from rich.table import Table
        from rich.text import Text
        table = Table(box=box.SIMPLE_HEAD, title=self.title, show_header=self.header,
                      header_style="bold" if self.color else "", pad_edge=False,
                      title_style="italic" if self.color else "")
        for c in self.columns:
            table.add_column(c.title, justify=c.justify)
        for r in rows:
            # Text, not markup: a process named "[foo]" must show as it is
            table.add_row(*(Text(c.text(r), style=(c.style and self.color and c.style(r)) or "")
                            for c in self.columns))
        return table

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
