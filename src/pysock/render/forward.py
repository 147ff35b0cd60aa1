"""forward's output: the -v line and the JSON record of each connection when it
ends, hexdumps labelled per connection, and --watch's live table of open ones."""

from __future__ import annotations

import time

from pysock.render.hexdump import HexdumpTap
from pysock.render.records import Column


def record(done) -> dict:
    """DESIGN.md's forward record (and the reason in words)."""
    return {"client_addr": done.client_addr, "client_port": done.client_port,
            "target": done.target, "bytes_in": done.bytes_in, "bytes_out": done.bytes_out,
            "duration_ms": round(done.seconds * 1000, 3), "closed_by": done.closed_by,
            "reason": done.reason}


def line(done) -> str:
    """-v: one line per connection when it ends."""
    first = {"client": "the client closed first", "target": "the target closed first",
             "server": "ended by the server"}.get(done.closed_by, done.reason)
    text = (f"{done.client} -> {done.target}: {done.bytes_in} bytes in, {done.bytes_out} bytes "
            f"out, {done.seconds:.3f} s; {first}")
    if done.closed_by in ("client", "target") and done.reason not in ("both sides closed", ""):
        text += f" ({done.reason})"
    return text


def failed(done) -> bool:
    """A connection that never reached TO, or broke: said even without -v."""
    return done.closed_by in ("refused", "timeout", "error")


class LabelledHexdump(HexdumpTap):
    """One connection's hexdump: every block names the connection it belongs to."""

    def __init__(self, stream, label: str):
        super().__init__(stream)
        self.label = label

    def __call__(self, direction: str, data: bytes) -> None:
        self.stream.write(f"[{self.label}] ")
        super().__call__(direction, data)


_COLUMNS = [Column("number", "#", "right"), Column("client", "CLIENT"), Column("target", "TARGET"),
            Column("bytes_in", "IN", "right"), Column("bytes_out", "OUT", "right"),
            Column("rate_in", "IN/S", "right"), Column("rate_out", "OUT/S", "right"),
            Column("seconds", "AGE S", "right")]


class WatchTable:
    """--watch: the open connections with their rates, redrawn in place."""

    def __init__(self, stream, color: bool, title: str):
        from rich.live import Live

        from pysock.render.records import RecordWriter
        from pysock.render.style import console
        self._writer = RecordWriter(_COLUMNS, "table", stream=stream, color=color, title=title)
        self._live = Live(console=console(stream, color), auto_refresh=False)
        self._last: dict[int, tuple[float, int, int]] = {}

    def show(self, rows) -> None:
        now = time.monotonic()
        records, seen = [], {}
        for row in rows:
            then, was_in, was_out = self._last.get(row.number, (now - row.seconds, 0, 0))
            span = max(now - then, 1e-6)
            records.append({"number": row.number, "client": row.client, "target": row.target,
                            "bytes_in": row.bytes_in, "bytes_out": row.bytes_out,
                            "rate_in": _rate((row.bytes_in - was_in) / span),
                            "rate_out": _rate((row.bytes_out - was_out) / span),
                            "seconds": f"{row.seconds:.1f}"})
            seen[row.number] = (now, row.bytes_in, row.bytes_out)
        self._last = seen
        self._live.update(self._writer.table(records), refresh=True)

    def __enter__(self) -> WatchTable:
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self._live.stop()


def _rate(bps: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if bps < 1000 or unit == "GB":
            return f"{bps:.0f} {unit}" if unit == "B" else f"{bps:.1f} {unit}"
        bps /= 1000
    return f"{bps:.1f} GB"
