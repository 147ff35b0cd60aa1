"""pysock scan: options -> a ScanSpec -> probes.scan -> records."""

from __future__ import annotations

import json
import sys

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.errors import ExitStatus, UsageError

HIDE_OVER = 25  # like nmap: a state holding more ports than this is summarised, not listed


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option("-p", "--ports", "port_spec", metavar="PORTS",
              help="Ports: 22,80,8000-8100; - for all; U:53,T:80 per protocol. "
                   "Default: the 1000 most common.")
@click.option("--top", "top", type=click.IntRange(min=1), metavar="N",
              help="The N most commonly open ports (nmap's ranking).")
@click.option("--syn", "-S", "syn", is_flag=True,
              help="SYN (half-open) scan on raw sockets; needs root or CAP_NET_RAW.")
@click.option("-u", "--udp", is_flag=True,
              help="UDP scan (alone, or with --tcp/--syn for both); needs no privilege.")
@click.option("-t", "--tcp", is_flag=True, help="Also scan TCP when --udp is given (connect scan).")
@click.option("--open", "only_open", is_flag=True, help="Show only open ports.")
@click.option("-a", "--all", "show_all", is_flag=True,
              help=f"List every port (by default a state holding more than {HIDE_OVER} ports "
                   "is only counted).")
@click.option("-b", "--banner", is_flag=True, help="Read and show what open TCP ports say first.")
@click.option("--reason", is_flag=True, help="Show why each state was chosen (syn-ack, reset, ...).")
@click.option("-Pn", "--skip-up-check", "skip_up", is_flag=True,
              help="Scan hosts of CIDR blocks without checking first that they are up.")
@click.option("-c", "--concurrency", type=click.IntRange(min=1), metavar="N",
              help="Probes in flight (default: from the open-file limit for connect scans).")
@click.option("-w", "--timeout", type=options.SECONDS,
              help="Most to wait for one probe's answer (default: adapted to the measured "
                   "round trip, at most 2 s).")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
              help="Probes resent to a silent port before calling it filtered.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), metavar="PPS",
              help="At most this many probes per second.")
@click.option("-g", "--source-port", type=options.PORT, help="Send probes from this port.")
@options.family
@options.numeric
@click.option("-v", "--verbose", count=True, help="List the hosts found down, each with why.")
@options.json_output
def scan(targets, port_spec, top, syn, udp, tcp, only_open, show_all, banner, reason, skip_up,
         concurrency, timeout, retries, rate, source_port, family, numeric, verbose, json) -> int:
    """Scan TCP (connect, or --syn) and UDP ports of TARGETs: names, addresses,
    CIDR blocks. open = answered, closed = refused, filtered = no answer or an
    ICMP prohibition; on this machine, open ports show their owning process."""
    from pysock.probes.scan import ports as portlists
    from pysock.probes.scan import scanner
    from pysock.probes.scan.model import Timing

    protos = (["tcp"] if (syn or tcp or not udp) else []) + (["udp"] if udp else [])
    spec = scanner.ScanSpec(
        ports=portlists.select(protos, port_spec, top),
        tcp_method=scanner.SYN if syn else scanner.CONNECT,
        timing=Timing(concurrency=concurrency, timeout=timeout, retries=retries, rate=rate,
                      source_port=source_port),
        banner=banner, up_check=not skip_up)
    if syn and "tcp" not in spec.ports:
        raise UsageError("--syn scans TCP, but the port list names only UDP ports")
    scanner.check_privilege(spec)
    hosts, failures = scanner.plan_targets(list(targets), family=family, numeric=numeric)
    for message in failures:
        _say(message)

    env = settings()
    mode = env.output_mode(json)
    from pysock.render.progress import progress
    with progress("scanning", scanner.total_probes(spec, hosts), enabled=True,
                  color=env.stderr_color, unit="probes") as bar:
        results = scanner.run(spec, hosts, on_progress=bar.advance) if hosts else []

    view = _View(mode, env.color, only_open, show_all, reason, banner,
                 any(r.local for r in results))
    view.show(results)
    _hosts_down(results, verbose)
    scanned = [r for r in results if r.up]
    return ExitStatus.FAILURE if failures or not scanned else ExitStatus.OK


def _say(message: str) -> None:
    sys.stderr.write(f"pysock: {message}\n")
    sys.stderr.flush()


class _View:
    """Records per port, a table per host, and the one-line summary per host."""

    def __init__(self, mode, color, only_open, show_all, reason, banner, local):
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
        from pysock.probes.scan.ports import service

        record = {"host": result.target.addr, "port": port, "proto": proto, "state": v.state,
                  "service": service(port, proto),
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
        from pysock.render.records import Column

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
        from pysock.render.records import RecordWriter

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
            sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
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


def _hosts_down(results, verbose: int) -> None:
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
