"""pysock ping: ICMP/ICMPv6 echo (or TCP/UDP port probes) to one or many hosts,
with iputils' options, lines, statistics and exit status."""

from __future__ import annotations

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.errors import UsageError

MAX_PAYLOAD = 65507  # 65535 minus the IPv4 and ICMP headers


def _interval(text: str) -> float:
    try:
        secs = float(text)
    except ValueError:
        raise UsageError(f"'{text}' is not a number of seconds") from None
    if not 0 <= secs < 1e7:
        raise UsageError(f"bad timing interval: {text}")
    return secs


def _pattern(text: str) -> bytes:
    """-p: up to 16 bytes of hex, read two digits at a time as iputils does."""
    digits = text[2:] if text.lower().startswith("0x") else text
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise UsageError(f"'{text}': patterns must be 1 to 32 hex digits")
    return bytes(int(digits[i:i + 2], 16) for i in range(0, len(digits), 2))


def _spec(*, count, interval, timeout, deadline, size, ttl, flood, interface, pattern):
    """The probe options -> probes.ping.PingSpec (-I split into a source address or
    an interface; -i's default 1 s, 0 with -f)."""
    from pysock.pingmain import split_interface
    from pysock.probes.ping import PingSpec
    source, device = split_interface(interface)
    if interval is None:
        interval = 0.0 if flood else 1.0
    return PingSpec(count=count, interval=interval, timeout=timeout, deadline=deadline, size=size,
                    ttl=ttl, pattern=pattern, flood=flood, source=source, device=device)


# -c ... -p: the command receives them as spec=PingSpec (-q and -4/-6 as they are)
spec_options = options.option_group([
    click.option("-c", "--count", type=click.IntRange(min=1),
                 help="Stop after COUNT probes per host."),
    click.option("-i", "--interval", type=options.Parsed("secs", _interval), default=None,
                 help="Seconds between probes [default: 1; 0 with -f]."),
    click.option("-W", "--timeout", type=options.SECONDS, default=10.0, show_default=True,
                 help="Seconds to wait after the last probe when nothing came back."),
    click.option("-w", "--deadline", type=options.SECONDS, help="Stop after this many seconds."),
    click.option("-s", "--size", type=click.IntRange(0, MAX_PAYLOAD), default=56,
                 show_default=True, help="Data bytes per probe."),
    click.option("-t", "--ttl", type=click.IntRange(1, 255), help="IP time to live / hop limit."),
    click.option("-q", "--quiet", is_flag=True, help="Only the header and the statistics."),
    click.option("-f", "--flood", is_flag=True,
                 help="Flood: a probe per reply or 100 a second, '.' per probe (needs "
                      "privilege)."),
    click.option("-I", "--interface", "interface", metavar="IFACE|ADDR",
                 type=options.InterfaceType(addresses=True),
                 help="Send from this interface or source address."),
    options.family,
    click.option("-p", "--pattern", type=options.Parsed("hex", _pattern),
                 help="Fill the data with this hex pattern."),
], _spec, "spec", keep=("quiet", "family"))


def _port(*, tcp_port, udp_port) -> tuple[str, int] | None:
    """--tcp PORT or --udp PORT: ("tcp"|"udp", PORT); None for ICMP echo."""
    if tcp_port and udp_port:
        raise UsageError("--tcp and --udp cannot be used together", see_help=True)
    return ("tcp", tcp_port) if tcp_port else ("udp", udp_port) if udp_port else None


# --tcp, --udp: the command receives them as port=(proto, PORT) or None
port_options = options.option_group([
    click.option("--tcp", "tcp_port", type=options.PORT, metavar="PORT",
                 help="Probe with TCP connects to PORT (no privilege, for hosts that drop "
                      "ICMP)."),
    click.option("--udp", "udp_port", type=options.PORT, metavar="PORT",
                 help="Probe with UDP datagrams to PORT (answer or port unreachable)."),
], _port, "port")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("hosts", nargs=-1, required=True, metavar="HOST...")
@spec_options
@click.option("-D", "--timestamps", is_flag=True, help="Prefix lines with a Unix time stamp.")
@options.numeric
@port_options
@options.json_output
def ping(hosts, spec, quiet, family, timestamps, numeric, port, json) -> int:
    """Send echo requests to HOST... (addresses, names, CIDR blocks), like ping and
    fping: one host gives iputils' lines and statistics; many are probed at once,
    with a live table on a terminal and one summary row per host."""
    from pysock.pingmain import run
    return run(list(hosts), spec, quiet=quiet, family=family, timestamps=timestamps,
               numeric=numeric, port=port, json=json, mode=settings().output_mode(json),
               color=settings().color)
