"""trace's output: traceroute's lines (plain), JSON records per probe, and a live
table of hops on a terminal."""

from __future__ import annotations

import socket
import sys

from pysock.render.records import json_line


def header(name: str, addr: str, family: int, max_hops: int, packet_size: int) -> str:
    ip_header = 40 if family == socket.AF_INET6 else 20
    return f"traceroute to {name} ({addr}), {max_hops} hops max, {ip_header + packet_size} byte packets"


def hop_line(hop, names, numeric: bool) -> str:
    """traceroute's print_probe(), probe by probe: the address when it differs from
    the previous answering probe's, the time, and the !-mark."""
    text = f"{hop.number:2d} "
    previous = None
    for result in hop.results:
        if result.addr is None and result.rtt_ns is None:
            text += " *"
            if result.note:
                text += f" {result.note}"
            continue
        if result.addr != previous:
            text += _addr(result.addr, names, numeric)
            previous = result.addr
        if result.rtt_ns is not None:
            text += f"  {result.rtt_ns / 1e6:.3f} ms"
        if result.note:
            text += f" {result.note}"
    return text


def _addr(addr: str, names, numeric: bool) -> str:
    if numeric:
        return f" {addr}"
    return f" {names(addr) or addr} ({addr})"


def records(hop, names, numeric: bool):
    for result in hop.results:
        yield {"hop": hop.number, "probe": result.index + 1, "addr": result.addr,
               "name": None if numeric or result.addr is None else names(result.addr),
               "rtt_ms": None if result.rtt_ns is None else result.rtt_ns / 1e6,
               "note": result.note, "reached": result.reached}


class TraceView:
    def __init__(self, mode: str, *, numeric: bool, names, color: bool = False, stream=None,
                 queries: int = 3):
        self.mode, self.numeric, self.names, self.color = mode, numeric, names, color
        self.out = stream or sys.stdout
        self.queries = queries
        self.hops = []
        self._live = None

    def start(self, header_line: str) -> None:
        if self.mode == "plain":
            self.out.write(header_line + "\n")
            self.out.flush()
        elif self.mode == "table":
            from rich.live import Live

            from pysock.render.style import console
            self.title = header_line
            self._live = Live(self._table(), console=console(self.out, self.color),
                              auto_refresh=False)
            self._live.__enter__()

    def hop(self, hop) -> None:
        if self.mode == "json":
            for record in records(hop, self.names, self.numeric):
                self.out.write(json_line(record))
        elif self.mode == "plain":
            self.out.write(hop_line(hop, self.names, self.numeric) + "\n")
        else:
            self.hops.append(hop)
            self._live.update(self._table(), refresh=True)
        self.out.flush()

    def finish(self) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.__exit__(None, None, None)
            self._live = None

    def _table(self):
        from rich import box
        from rich.table import Table
        table = Table(box=box.SIMPLE_HEAD, title=getattr(self, "title", None), pad_edge=False,
                      header_style="bold" if self.color else "")
        table.add_column("HOP", justify="right")
        table.add_column("ADDRESS")
        if not self.numeric:
            table.add_column("NAME")
        for i in range(self.queries):
            table.add_column(f"RTT{i + 1}", justify="right")
        for hop in self.hops:
            addrs = []
            for r in hop.results:
                if r.addr and r.addr not in addrs:
                    addrs.append(r.addr)
            row = [str(hop.number), " ".join(addrs) or "*"]
            if not self.numeric:
                row.append(" ".join(self.names(a) or "" for a in addrs))
            for r in hop.results:
                cell = "*" if r.rtt_ns is None else f"{r.rtt_ns / 1e6:.3f} ms"
                row.append(cell + (f" {r.note}" if r.note else ""))
            table.add_row(*row, style="green" if self.color and any(r.reached for r in hop.results)
                          else None)
        return table
