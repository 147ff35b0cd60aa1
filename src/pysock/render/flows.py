"""capture --flows: one row per connection, redrawn in place on a terminal
(rich Live); on a pipe or with --json one record per flow as it closes, and the
rest at the end."""

from __future__ import annotations

import time

from pysock.render.records import Column, RecordWriter


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"


COLUMNS = [
    Column("proto", "PROTO"), Column("src", "SOURCE"), Column("dst", "DESTINATION"),
    Column("state", "STATE"),
    Column("packets_out", "PKTS>", "right"), Column("bytes_out", "BYTES>", "right"),
    Column("packets_in", "<PKTS", "right"), Column("bytes_in", "<BYTES", "right"),
    Column("rtt_ms", "RTT ms", "right", fmt=_ms), Column("retransmits", "RETRANS", "right"),
    Column("out_of_order", "OOO", "right"), Column("zero_windows", "ZEROWIN", "right"),
    Column("resets", "RST", "right"), Column("process", "PROCESS"),
]


def _label(owner) -> str | None:
    return f"{owner[1]}[{owner[0]}]" if owner else None


def flow_record(flow) -> dict:
    """The JSON fields of one flow (the table shows them with src and dst joined)."""
    owner, peer = flow.owner, flow.peer_owner
    return {"type": "flow", "proto": flow.proto, "src_addr": flow.src, "src_port": flow.sport,
            "dst_addr": flow.dst, "dst_port": flow.dport, "state": flow.state,
            "first": flow.first_ns / 1e9, "last": flow.last_ns / 1e9,
            "packets": flow.out.packets + flow.back.packets,
            "bytes": flow.out.bytes + flow.back.bytes,
            "packets_out": flow.out.packets, "bytes_out": flow.out.bytes,
            "packets_in": flow.back.packets, "bytes_in": flow.back.bytes,
            "rtt_ms": flow.rtt_ns / 1e6 if flow.rtt_ns is not None else None,
            "retransmits": flow.retransmits, "out_of_order": flow.out_of_order,
            "zero_windows": flow.zero_windows, "resets": flow.resets,
            "pid": owner[0] if owner else None, "process": owner[1] if owner else None,
            "peer_pid": peer[0] if peer else None, "peer_process": peer[1] if peer else None}


def _row(flow, ports) -> dict:
    rec = flow_record(flow)
    host = "[{}]:{}" if ":" in flow.src else "{}:{}"
    rec["src"] = host.format(flow.src, ports(flow.proto, flow.sport))
    rec["dst"] = host.format(flow.dst, ports(flow.proto, flow.dport))
    ends = [_label(end) for end in (flow.owner, flow.peer_owner) if end]
    rec["process"] = " > ".join(ends) if ends else None
    return rec


class FlowRecords:
    """A pipe or --json: one record per flow when it closes, the open ones at the end."""

    live = False

    def __init__(self, mode: str, ports, stream=None):
        self.writer = RecordWriter(COLUMNS, mode, stream=stream)
        self.json, self.ports = mode == "json", ports

    def closed(self, flow) -> None:
        self.writer.write(flow_record(flow) if self.json else _row(flow, self.ports))

    def update(self, table) -> None:
        pass

    def finish(self, table, stats) -> None:
        for flow in table.all():
            self.closed(flow)
        if self.json and stats is not None:
            captured, received, dropped = stats
            self.writer.write({"type": "summary", "captured": captured, "received": received,
                               "dropped": dropped})
        self.writer.close()


class FlowTableView:
    """A terminal: every flow in one table redrawn at most every REDRAW_S, kept on
    screen when the capture ends."""

    REDRAW_S = 0.25
    live = True

    def __init__(self, color: bool, ports, stream=None):
        from pysock.render.watch import LiveRows
        self.rows = LiveRows(COLUMNS, color=color, stream=stream)
        self.ports = ports
        self.drawn = 0.0
        self.rows.__enter__()

    def closed(self, flow) -> None:
        pass

    def update(self, table, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.drawn >= self.REDRAW_S:
            self.drawn = now
            flows = table.all()
            self.rows.show([_row(f, self.ports) for f in flows[-200:]], f"{len(flows)} flows")

    def finish(self, table, stats) -> None:
        self.update(table, force=True)
        self.rows.__exit__(None, None, None)
