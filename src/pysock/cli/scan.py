"""pysock scan: options -> a ScanSpec -> probes.scan -> records."""

from __future__ import annotations

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.errors import ExitStatus, UsageError
from pysock.render.scan import HIDE_OVER


def _timing(*, concurrency, timeout, retries, rate, source_port):
    from pysock.probes.scan.model import Timing
    return Timing(concurrency=concurrency, timeout=timeout, retries=retries, rate=rate,
                  source_port=source_port)


# -c, -w, --retries, --rate, -g: the command receives them as timing=Timing
timing_options = options.option_group([
    click.option("-c", "--concurrency", type=click.IntRange(min=1), metavar="N",
                 help="Probes in flight (default: from the open-file limit for connect scans)."),
    click.option("-w", "--timeout", type=options.SECONDS,
                 help="Most to wait for one probe's answer (default: adapted to the measured "
                      "round trip, at most 2 s)."),
    click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
                 help="Probes resent to a silent port before calling it filtered."),
    click.option("--rate", type=click.FloatRange(min=0, min_open=True), metavar="PPS",
                 help="At most this many probes per second."),
    click.option("-g", "--source-port", type=options.PORT, help="Send probes from this port."),
], _timing, "timing")


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
@timing_options
@options.family
@options.numeric
@click.option("-v", "--verbose", count=True, help="List the hosts found down, each with why.")
@options.json_output
def scan(targets, port_spec, top, syn, udp, tcp, only_open, show_all, banner, reason, skip_up,
         timing, family, numeric, verbose, json) -> int:
    """Scan TCP (connect, or --syn) and UDP ports of TARGETs: names, addresses,
    CIDR blocks. open = answered, closed = refused, filtered = no answer or an
    ICMP prohibition; on this machine, open ports show their owning process."""
    from pysock.probes.scan import ports as portlists
    from pysock.probes.scan import scanner

    if port_spec is not None and top is not None:
        raise UsageError("-p and --top both choose ports: use one of them")
    protos = (["tcp"] if (syn or tcp or not udp) else []) + (["udp"] if udp else [])
    spec = scanner.ScanSpec(
        ports=portlists.select(protos, port_spec, top),
        tcp_method=scanner.SYN if syn else scanner.CONNECT,
        timing=timing,
        banner=banner, up_check=not skip_up)
    if syn and "tcp" not in spec.ports:
        raise UsageError("--syn scans TCP, but the port list names only UDP ports")
    scanner.check_privilege(spec)
    hosts, failures = scanner.plan_targets(list(targets), family=family, numeric=numeric)
    from pysock.render.diagnostics import say
    for message in failures:
        say(message)

    env = settings()
    mode = env.output_mode(json)
    from pysock.render.progress import progress
    from pysock.render.scan import ScanView, hosts_down
    with progress("scanning", scanner.total_probes(spec, hosts), enabled=True,
                  color=env.stderr_color, unit="probes") as bar:
        results = scanner.run(spec, hosts, on_progress=bar.advance) if hosts else []

    view = ScanView(mode, env.color, only_open, show_all, reason, banner,
                    any(r.local for r in results), portlists.service)
    view.show(results)
    hosts_down(results, verbose)
    scanned = [r for r in results if r.up]
    return ExitStatus.FAILURE if failures or not scanned else ExitStatus.OK


