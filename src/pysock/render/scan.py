"""scan's output: records per port (a table per host, plain or JSON Lines), the
one-line summary per host, and the line about hosts found down."""

from __future__ import annotations

import sys

from pysock.render.records import Column, RecordWriter, json_line

HIDE_OVER = 25  # like nmap: a state holding more ports than this is summarised, not listed


class ScanView:
    """Records per port, a table per host, and the one-line summary per host."""

    def __init__(self, mode, color, only_open, show_all, reason, banner, local, service):
        self.service = service  # (port, proto) -> the service name, or None
        self.mode, self.color = mode, color
        self.only_open, self.show_all = only_open, show_all
        self.reason, self.banner, self.local = reason, banner, local
        self.plain_writer = None

    def show(self, results) -> None:
        for result in results:
            if not result.up:
                self._summary(result, {}, None)
                continue
            records, counts, hidden = self._records(result)
            self._write(result, records)
            self._summary(result, counts, hidden)
        if self.plain_writer is not None:
            self.plain_writer.close()

    def _records(self, result):
        counts = result.counts()
        hidden = None
        if not self.show_all and not self.only_open:
            state, n = max(counts.items(), key=lambda kv: kv[1])
            hidden = state if n > HIDE_OVER else None
        shown = [(port, proto, v) for proto, verdicts in result.verdicts.items()
                 for port, v in verdicts.items()
                 if v.state != hidden and (v.state == "open" or not self.only_open)]
        shown.sort(key=lambda row: row[:2])
        return [self._record(result, proto, port, v) for port, proto, v in shown], counts, hidden

    def _record(self, result, proto, port, v) -> dict:
        record = {"host": result.target.addr, "port": port, "proto": proto, "state": v.state,
                  "service": self.service(port, proto),
                  "rtt_ms": round(v.rtt * 1000, 3) if v.rtt is not None else None,
                  "reason": v.reason}
        if self.banner:
            record["banner"] = v.banner
        if result.local:
            label = result.labels.get((proto, port))
            record["pid"] = label.pid if label else None
            record["process"] = label.process if label else None
            record["user"] = label.user if label else None
        return record

    def _columns(self, table: bool):
        """Table: one per host (the host is its title), owner in one cell.
        Plain: one tab-separated stream, every host's rows, a column per field."""
        cols = [] if table else [Column("host", "HOST")]
        cols += [Column("port", "PORT", "right"), Column("proto", "PROTO"), Column("state", "STATE"),
                 Column("service", "SERVICE"),
                 Column("rtt_ms", "RTT ms" if table else "RTT_MS", "right", _ms)]
        if self.reason:
            cols.append(Column("reason", "REASON"))
        if self.local and table:
            cols.append(Column("owner", "PROCESS"))
        elif self.local:
            cols += [Column("pid", "PID", "right"), Column("process", "PROCESS"), Column("user", "USER")]
        if self.banner:
            cols.append(Column("banner", "BANNER"))
        return cols

    def _write(self, result, records) -> None:
        if self.mode != "table":
            if self.plain_writer is None:
                self.plain_writer = RecordWriter(self._columns(table=False), self.mode)
            for r in records:
                self.plain_writer.write(r)
            return
        if not records:
            return
        with RecordWriter(self._columns(table=True), "table", color=self.color,
                          title=result.target.label) as writer:
            for r in records:
                writer.write({**r, "owner": _owner(r)})  # drawn as text, never as markup

    def _summary(self, result, counts, hidden) -> None:
        label = result.target.label
        if self.mode == "json":
            record = {"type": "summary", "host": result.target.addr, "up": result.up,
                      "open": counts.get("open", 0), "closed": counts.get("closed", 0),
                      "filtered": counts.get("filtered", 0),
                      "open_filtered": counts.get("open|filtered", 0),
                      "elapsed_ms": round(result.seconds * 1000, 1)}
            if not result.up:
                record["note"] = result.note
            sys.stdout.write(json_line(record))
            sys.stdout.flush()
            return
        if not result.up:
            return  # counted by _hosts_down
        parts = [f"{counts['open']} open", f"{counts['closed']} closed", f"{counts['filtered']} filtered"]
        if counts["open|filtered"]:
            parts.append(f"{counts['open|filtered']} open|filtered")
        line = f"{label}: {', '.join(parts)} in {result.seconds:.2f} s"
        if hidden:
            line += f" (not shown: {counts[hidden]} {hidden}; --all lists them)"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def hosts_down(results, verbose: int) -> None:
    """One line for the hosts found down (as nmap's 'N hosts up'); -v lists them."""
    down = [r for r in results if not r.up]
    if not down:
        return
    if verbose:
        for result in down:
            _note(f"{result.target.label}: down ({result.note})")
    up = len(results) - len(down)
    what = "host" if len(results) == 1 else "hosts"
    line = f"{up} of {len(results)} {what} up; {len(down)} down not scanned (-Pn scans them anyway"
    _note(line + ("" if verbose else "; -v lists them") + ")")


def _note(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _owner(record) -> str | None:
    if record.get("pid") is None:
        return None
    return f"{record['process']} (pid {record['pid']}, {record['user']})"
