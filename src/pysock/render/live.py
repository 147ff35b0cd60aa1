"""A record that changes while work goes on (loss and jitter while datagrams
arrive), redrawn in place on a terminal with rich Live."""

from __future__ import annotations

from pysock.render.records import Column, RecordWriter
from pysock.render.style import console


class LiveRecord:
    """update(record) redraws one table row in place; close() leaves nothing behind
    (the caller writes the final record through a RecordWriter)."""

    def __init__(self, columns: list[Column], stream, color: bool, title: str | None = None):
        from rich.live import Live
        self._writer = RecordWriter(columns, "table", stream=stream, color=color, title=title)
        self._live = Live(console=console(stream, color), transient=True, auto_refresh=False)

    def update(self, record: dict) -> None:
        self._live.update(self._writer.table([record]), refresh=True)

    def __enter__(self) -> LiveRecord:
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self._live.stop()
