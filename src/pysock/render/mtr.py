"""trace --repeat's output: mtr's report (plain), JSON records per hop per round and
a summary per hop, a table on a terminal, and with --watch a live table redrawn each
round."""

from __future__ import annotations

import socket
import sys

from pysock.render.records import json_line

COLUMNS = ("Loss%", "Snt", "Last", "Avg", "Best", "Wrst", "StDev")


def _ms(ns: float | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def round_records(round_):
    """One record per hop of a round: trace's fields plus the round number."""
    for r in round_.results:
        yield {"hop": r.hop, "round": round_.number, "addr": r.addr, "rtt_ms": _ms(r.rtt_ns),
               "note": r.note, "reached": r.reached}


def summary_record(stats) -> dict:
    return {"type": "summary", "hop": stats.hop, "addr": stats.addr,
            "loss_pct": round(stats.loss_pct, 1), "sent": stats.sent,
            "last_ms": _ms(stats.last_ns), "avg_ms": _ms(stats.avg_ns),
            "best_ms": _ms(stats.best_ns), "worst_ms": _ms(stats.worst_ns),
            "stdev_ms": _ms(stats.stdev_ns)}


def _cells(stats) -> list[str]:
    def ms(ns):
        return "" if ns is None else f"{ns / 1e6:.1f}"
    return [f"{stats.loss_pct:.1f}%", str(stats.sent), ms(stats.last_ns), ms(stats.avg_ns),
            ms(stats.best_ns), ms(stats.worst_ns), ms(stats.stdev_ns)]


def _host(stats, names, numeric: bool) -> str:
    if stats.addr is None:
        return "???"
    if numeric:
        return stats.addr
    return names(stats.addr) or stats.addr


def report(hops, names, numeric: bool) -> str:
    """mtr --report's table: a HOST line with the column names, then a line per hop."""
    width = max([len(_host(h, names, numeric)) for h in hops] + [24])
    head = f"HOST: {socket.gethostname():<{width}}" + "".join(f"{c:>7}" for c in COLUMNS)
    lines = [head.rstrip()]
    for h in hops:
        row = f"{h.hop:3d}.|-- {_host(h, names, numeric):<{width}}"
        lines.append(row + "".join(f"{c:>7}" for c in _cells(h)))
    return "\n".join(lines)


class MtrView:
    """mode: json, plain or table; watch: redraw the table live after every round."""

    def __init__(self, mode: str, *, numeric: bool, names, color: bool = False,
                 watch: bool = False, stream=None):
        self.mode, self.numeric, self.names, self.color = mode, numeric, names, color
        self.watch = watch
        self.out = stream or sys.stdout
        self._live = None
        self.title = ""

    def start(self, title: str, hops) -> None:
        self.title = title
        if self.watch:
            from rich.live import Live

            from pysock.render.style import console
            self._live = Live(self._table(hops), console=console(self.out, self.color),
                              auto_refresh=False)
            self._live.__enter__()

    def round(self, round_, hops) -> None:
        if self.mode == "json":
            for record in round_records(round_):
                self.out.write(json_line(record))
            self.out.flush()
        elif self._live is not None:
            self._live.update(self._table(hops), refresh=True)

    def finish(self, hops) -> None:
        if self._live is not None:
            self._live.update(self._table(hops), refresh=True)
            self._live.__exit__(None, None, None)
            self._live = None
        elif self.mode == "json":
            for stats in hops:
                self.out.write(json_line(summary_record(stats)))
        elif self.mode == "plain":
            self.out.write(report(hops, self.names, self.numeric) + "\n")
        else:
            from pysock.render.style import console
            console(self.out, self.color).print(self._table(hops))
        self.out.flush()

    def _table(self, hops):
        from rich import box
        from rich.table import Table
        table = Table(box=box.SIMPLE_HEAD, title=self.title, pad_edge=False,
                      header_style="bold" if self.color else "")
        table.add_column("HOP", justify="right")
        table.add_column("HOST")
        for name in COLUMNS:
            table.add_column(name, justify="right")
        for h in hops:
            table.add_row(str(h.hop), _host(h, self.names, self.numeric), *_cells(h))
        return table
