"""perf's output: iperf3-like lines when piped, a live table on a terminal,
JSON Lines with --json, iperf3's own JSON document with -J."""

from __future__ import annotations

import json
import sys
import time

from pysock.render.diagnostics import say
from pysock.render.ping import sparkline
from pysock.render.records import json_line
from pysock.render.style import console

SEPARATOR = "- " * 25


def unit_bytes(n: float) -> str:
    """iperf3's Transfer column: 1024-based, three significant digits."""
    for unit, size in (("GBytes", 1 << 30), ("MBytes", 1 << 20), ("KBytes", 1 << 10)):
        if n >= size:
            return f"{_digits(n / size)} {unit}"
    return f"{_digits(n)} Bytes"


def unit_bits(bps: float) -> str:
    """iperf3's Bitrate column: 1000-based."""
    for unit, size in (("Gbits/sec", 1e9), ("Mbits/sec", 1e6), ("Kbits/sec", 1e3)):
        if bps >= size:
            return f"{_digits(bps / size)} {unit}"
    return f"{_digits(bps)} bits/sec"


def _digits(value: float) -> str:
    if value < 9.995:
        return f"{value:4.2f}"
    if value < 99.95:
        return f"{value:4.1f}"
    return f"{value:4.0f}"


def _sid(stream) -> str:
    return "[SUM]" if stream is None else f"[{stream:3d}]"


def _span(rec: dict) -> str:
    return f"{rec['start_s']:6.2f}-{rec['end_s']:<6.2f} sec"


def interval_line(rec: dict, with_tcp: bool) -> str:
    text = f"{_sid(rec['stream'])} {_span(rec)}  {unit_bytes(rec['bytes']):>11}  " \
           f"{unit_bits(rec['bits_per_second']):>15}"
    if with_tcp and rec.get("sender"):
        retr = rec.get("retransmits")
        cwnd = rec.get("cwnd")
        text += f"  {retr if retr is not None else '-':>4}   {unit_bytes(cwnd) if cwnd else '-':>10}"
    if rec.get("omitted"):
        text += "  (omitted)"
    return text


def summary_line(rec: dict) -> str:
    text = f"{_sid(rec['stream'])} {_span(rec)}  {unit_bytes(rec['bytes']):>11}  " \
           f"{unit_bits(rec['bits_per_second']):>15}"
    retr = rec.get("retransmits")
    if "packets" in rec:  # UDP: jitter and loss, as iperf3 prints them
        text += f"  {rec['jitter_ms']:.3f} ms  {rec['lost_packets']}/{rec['packets']} " \
                f"({rec['lost_percent']:.2g}%)  {rec['direction']}"
    else:
        if rec["direction"] == "sender":
            text += f"  {retr if retr is not None else '':>4}"
        else:
            text += "      "
        text += f"             {rec['direction']}"
    if rec.get("bidir"):  # iperf3's marks: the client's sending (TX-C) or receiving side
        mark = "[RX-C]" if rec.get("reverse") else "[TX-C]"
        text = text.replace("]", "]" + mark, 1)
    return text


class ClientView:
    """The base: plain lines (iperf3's) on stdout."""

    def __init__(self, *, stream=None, color: bool = False, bidir: bool = False):
        self.out = stream or sys.stdout
        self.color = color
        self.bidir = bidir
        self.tcp = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.out.flush()

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def connected(self, info: dict) -> None:
        self.tcp = info["spec"].protocol == "tcp"
        where = f", port {info['port']}" if info["port"] is not None else ""
        self._write(f"Connecting to host {info['host']}{where}")
        if info["spec"].reverse:
            self._write(f"Reverse mode, remote host {info['host']} is sending")
        for s in info["streams"]:
            (lh, lp), (rh, rp) = s["local"], s["remote"]
            if lp is None:
                self._write(f"{_sid(s['stream'])} connected to {rh} (Unix stream)")
                continue
            self._write(f"{_sid(s['stream'])} local {lh} port {lp} connected to {rh} port {rp}")
        title = "[ ID] Interval           Transfer     Bitrate"
        self._write(title + ("         Retr  Cwnd" if self.tcp else ""))

    def interval(self, records: list[dict]) -> None:
        for rec in records:
            self._write(interval_line(rec, self.tcp))
        if len(records) > 1:
            self._write(interval_line(_sum(records), self.tcp))

    def summary(self, result: dict) -> None:
        self._write(SEPARATOR)
        self._write("[ ID] Interval           Transfer     Bitrate" + (
            "         Retr" if self.tcp else "         Jitter    Lost/Total Datagrams"))
        ids = {r["stream"] for r in result["records"] if r["stream"] is not None}
        many = len(ids) > (2 if self.bidir else 1)
        for rec in result["records"]:
            if rec["stream"] is None and not many:
                continue
            self._write(summary_line(dict(rec, bidir=self.bidir)))
        self._write("")
        self._write("iperf Done.")


def _sum(records: list[dict]) -> dict:
    nbytes = sum(r["bytes"] for r in records)
    first = records[0]
    seconds = first["end_s"] - first["start_s"]
    retr = [r["retransmits"] for r in records if r.get("retransmits") is not None]
    return {"stream": None, "start_s": first["start_s"], "end_s": first["end_s"],
            "bytes": nbytes, "bits_per_second": nbytes * 8 / seconds if seconds > 0 else 0,
            "retransmits": sum(retr) if retr else None, "sender": first["sender"],
            "omitted": first["omitted"]}


class JsonLinesView(ClientView):
    """--json: one record per stream per interval, then the summaries."""

    def connected(self, info: dict) -> None:
        pass

    def interval(self, records: list[dict]) -> None:
        for rec in records:
            self.out.write(json_line(rec))
        self.out.flush()

    def summary(self, result: dict) -> None:
        for rec in result["records"]:
            self.out.write(json_line(rec))
        self.out.flush()


class LiveView(ClientView):
    """On a terminal: a live table, a row per interval and stream, with a sparkline
    of each stream's rate; the closing summary printed as a table after it."""

    def __enter__(self):
        from rich.live import Live
        self.rows: list[dict] = []
        self.rates: dict[int, list[float]] = {}
        self.live = Live(console=console(self.out, self.color), auto_refresh=False,
                         vertical_overflow="visible")
        self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        self.live.stop()

    def connected(self, info: dict) -> None:
        self.tcp = info["spec"].protocol == "tcp"
        self.title = f"perf to {info['host']} port {info['port']}"

    def interval(self, records: list[dict]) -> None:
        for rec in records:
            self.rows.append(rec)
            self.rates.setdefault(rec["stream"], []).append(rec["bits_per_second"])
        self.live.update(self._table(), refresh=True)

    def _table(self):
        from rich.table import Table
        table = Table(title=getattr(self, "title", None), header_style="bold" if self.color
                      else "")
        for name, justify in (("ID", "right"), ("Interval", "left"), ("Transfer", "right"),
                              ("Bitrate", "right"), ("Retr", "right"), ("Cwnd", "right"),
                              ("Trend", "left")):
            table.add_column(name, justify=justify)
        for rec in self.rows[-40:]:
            retr = rec.get("retransmits")
            table.add_row(str(rec["stream"]), _span(rec), unit_bytes(rec["bytes"]),
                          unit_bits(rec["bits_per_second"]),
                          "" if retr is None else str(retr),
                          unit_bytes(rec["cwnd"]) if rec.get("cwnd") else "",
                          sparkline(self.rates[rec["stream"]][-20:]))
        return table

    def summary(self, result: dict) -> None:
        from rich.table import Table
        table = Table(title="summary", header_style="bold" if self.color else "")
        for name in ("ID", "Interval", "Transfer", "Bitrate", "Retr", "Side"):
            table.add_column(name)
        for rec in result["records"]:
            retr = rec.get("retransmits")
            side = rec["direction"] + (" (reverse)" if rec.get("reverse") else "")
            table.add_row("SUM" if rec["stream"] is None else str(rec["stream"]), _span(rec),
                          unit_bytes(rec["bytes"]), unit_bits(rec["bits_per_second"]),
                          "" if retr is None else str(retr), side)
        self.live.update(self._table(), refresh=True)
        self.live.stop()
        console(self.out, self.color).print(table)


class IperfJsonView(ClientView):
    """-J: iperf3's JSON document, printed once at the end."""

    def __enter__(self):
        self.doc = {"start": {}, "intervals": [], "end": {}}
        return self

    def __exit__(self, *exc) -> None:
        if exc and exc[0] is not None:
            self.doc["error"] = str(exc[1])
        self._write(json.dumps(self.doc, indent=1))

    def connected(self, info: dict) -> None:
        from pysock import __version__
        spec = info["spec"]
        self.doc["start"] = {
            "connected": [{"socket": s["stream"], "local_host": s["local"][0],
                           "local_port": s["local"][1], "remote_host": s["remote"][0],
                           "remote_port": s["remote"][1]} for s in info["streams"]],
            "version": f"pysock {__version__}", "system_info": _uname(),
            "timestamp": {"time": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                          "timesecs": int(time.time())},
            "connecting_to": {"host": info["host"], "port": info["port"]},
            "cookie": info["cookie"], "tcp_mss_default": info["mss"],
            "sock_bufsize": spec.window, "sndbuf_actual": info["sndbuf"],
            "rcvbuf_actual": info["rcvbuf"],
            "test_start": {"protocol": spec.protocol.upper(), "num_streams": spec.parallel,
                           "blksize": spec.block_size, "omit": spec.omit,
                           "duration": spec.duration, "bytes": spec.bytes,
                           "blocks": spec.blocks, "reverse": int(spec.reverse), "tos": 0,
                           "target_bitrate": spec.bandwidth, "bidir": int(spec.bidir),
                           "fqrate": 0}}

    def interval(self, records: list[dict]) -> None:
        streams = [_j_interval(r) for r in records]
        entry = {"streams": streams, "sum": _j_interval(_sum(records))}
        self.doc["intervals"].append(entry)

    def summary(self, result: dict) -> None:
        end: dict = {"streams": []}
        by_stream: dict = {}
        sums: dict = {}
        for rec in result["records"]:
            key = ("sum_sent" if rec["direction"] == "sender" else "sum_received")
            if rec.get("reverse") and self.bidir:
                key += "_bidir_reverse"
            if rec["stream"] is None:
                sums[key] = _j_total(rec)
            else:
                by_stream.setdefault(rec["stream"], {})[rec["direction"]] = _j_total(rec)
        end["streams"] = [by_stream[k] for k in sorted(by_stream)]
        end.update(sums)
        peer = result["peer"]
        cpu = result["cpu"]
        end["cpu_utilization_percent"] = {
            "host_total": cpu[0], "host_user": cpu[1], "host_system": cpu[2],
            "remote_total": peer.get("cpu_util_total", 0),
            "remote_user": peer.get("cpu_util_user", 0),
            "remote_system": peer.get("cpu_util_system", 0)}
        if result.get("congestion"):
            end["sender_tcp_congestion"] = result["congestion"]
            end["receiver_tcp_congestion"] = peer.get("congestion_used", result["congestion"])
        self.doc["end"] = end


def _j_interval(rec: dict) -> dict:
    out = {"socket": rec["stream"], "start": rec["start_s"], "end": rec["end_s"],
           "seconds": rec["end_s"] - rec["start_s"], "bytes": rec["bytes"],
           "bits_per_second": rec["bits_per_second"], "omitted": rec["omitted"],
           "sender": rec["sender"]}
    if rec["stream"] is None:
        del out["socket"]
    if rec.get("retransmits") is not None:
        out["retransmits"] = rec["retransmits"]
    if rec.get("cwnd"):
        out["snd_cwnd"] = rec["cwnd"]
    if rec.get("rtt_us") is not None:
        out["rtt"] = rec["rtt_us"]
    return out


def _j_total(rec: dict) -> dict:
    out = {"start": rec["start_s"], "end": rec["end_s"], "seconds": rec["end_s"] - rec["start_s"],
           "bytes": rec["bytes"], "bits_per_second": rec["bits_per_second"],
           "sender": rec["direction"] == "sender"}
    if rec["stream"] is not None:
        out = {"socket": rec["stream"], **out}
    if rec["direction"] == "sender" and rec.get("retransmits") is not None:
        out["retransmits"] = rec["retransmits"]
    return out


def _uname() -> str:
    import os
    u = os.uname()
    return f"{u.sysname} {u.nodename} {u.release} {u.version} {u.machine}"


class ServerView:
    """The server: a line on stderr per event, a summary per test on stdout (plain
    lines, or JSON Lines with --json)."""

    def __init__(self, *, json_lines: bool, stream=None, err=None):
        self.json_lines = json_lines
        self.out = stream or sys.stdout
        self.err = err or sys.stderr

    def listening(self, where: str) -> None:
        say(f"perf server listening on {where}", self.err)

    def log(self, text: str) -> None:
        say(text, self.err)

    def test(self, report: dict) -> None:
        for row in report["streams"]:
            record = {"type": "summary", "client_addr": report["client_addr"],
                      "client_port": report["client_port"], **row}
            if self.json_lines:
                self.out.write(json_line(record))
            else:
                self.out.write(f"{report['client']} {summary_line(record)}\n")
        self.out.flush()


def rr_output(record: dict, *, json: bool, stream=None) -> None:
    """--rr: one JSON record, or a netperf-like paragraph."""
    out = stream or sys.stdout
    if json:
        out.write(json_line(record))
    else:
        r = record
        out.write(f"request/response over {r['protocol']}: {r['request']}-byte requests, "
                  f"{r['response']}-byte responses, {r['seconds']:.2f} s\n"
                  f"{r['transactions']} transactions, {r['transactions_per_s']:.1f}/s"
                  + (f", {r['lost']} lost" if r["lost"] else "") + "\n"
                  f"latency us: p50 {r['p50_us']:.1f}  p90 {r['p90_us']:.1f}  "
                  f"p99 {r['p99_us']:.1f}  p99.9 {r['p999_us']:.1f}  max {r['max_us']:.1f}  "
                  f"mean {r['mean_us']:.1f}\n")
    out.flush()
