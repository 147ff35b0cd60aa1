"""A whole scan: targets resolved, hosts of CIDR blocks checked for life, each
protocol's engine run over every live host at once, then banners and the local
process labels added. Returns one HostResult per target; never prints."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from pysock.errors import NetworkError, PysockError, UsageError
from pysock.net import address
from pysock.net.route import is_local
from pysock.probes.scan import banner as banners
from pysock.probes.scan import labels
from pysock.probes.scan.model import OPEN, HostResult, Target, Timing

CONNECT, SYN = "connect", "syn"


@dataclass(frozen=True)
class ScanSpec:
    ports: dict[str, list[int]]  # proto -> ports
    tcp_method: str = CONNECT
    timing: Timing = field(default_factory=Timing)
    banner: bool = False
    up_check: bool = True  # for hosts from CIDR blocks; -Pn turns it off


def plan_targets(texts: list[str], *, family: int | None = None,
                 numeric: bool = False) -> tuple[list[Target], list[str]]:
    """Targets to scan, and one message per target that cannot be scanned at all.
    A malformed target raises UsageError."""
    targets: list[Target] = []
    failures: list[str] = []
    seen: set[str] = set()
    for text in texts:
        from_cidr = "/" in text
        for host in address.parse_targets(text):
            try:
                target = _resolve(host, family, numeric, from_cidr)
                _check_route(target)
            except NetworkError as exc:
                failures.append(exc.message)
                continue
            if target.addr not in seen:
                seen.add(target.addr)
                targets.append(target)
    return targets, failures


def _resolve(host: str, family: int | None, numeric: bool, from_cidr: bool) -> Target:
    if family and address.is_numeric_host(host):
        version = ipaddress.ip_address(host.split("%", 1)[0]).version
        if version != family:
            raise UsageError(f"'{host}' is an IPv{version} address, but -{family} asks for IPv{family}")
    found = address.resolve(host, 0, family=family, numeric=numeric)
    # like nmap: one address per name, IPv4 first unless -6 asked for IPv6
    found.sort(key=lambda r: r.family != socket.AF_INET)
    first = found[0]
    return Target(host, first.family, first.host, from_cidr)


def _check_route(target: Target) -> None:
    """Fail early (and alone) for a target this host has no route to."""
    from pysock.probes.scan.syn import source_address
    source_address(target)


def check_privilege(spec: ScanSpec) -> None:
    """Raise the one-line privilege error before any work, not halfway through."""
    if spec.tcp_method == SYN and "tcp" in spec.ports:
        from pysock.probes.scan.syn import raw_socket
        raw_socket(socket.AF_INET, socket.IPPROTO_TCP).close()


def total_probes(spec: ScanSpec, targets: list[Target]) -> int:
    return len(targets) * sum(len(p) for p in spec.ports.values())


def run(spec: ScanSpec, targets: list[Target],
        on_progress: Callable[[int], None] | None = None) -> list[HostResult]:
    from pysock.probes.scan.timing import monotonic

    results = [HostResult(t) for t in targets]
    live = _live(spec, targets, results)
    started = monotonic()
    for proto, ports in spec.ports.items():
        if not live:
            break
        for target, verdicts in zip(live, _scan(spec, proto, live, ports, on_progress)):
            result = results[targets.index(target)]
            result.verdicts[proto] = verdicts
    elapsed = monotonic() - started
    scanned = [r for r in results if r.up]
    if spec.banner:
        _add_banners(scanned)
    for result in scanned:
        result.seconds = elapsed
        _add_labels(result)
    return results


def _live(spec: ScanSpec, targets: list[Target], results: list[HostResult]) -> list[Target]:
    swept = [i for i, t in enumerate(targets) if t.from_cidr]
    if not spec.up_check or not swept:
        return list(targets)
    from pysock.probes.scan.hostup import up_hosts

    up, how = up_hosts([targets[i] for i in swept], spec.timing)
    for n, i in enumerate(swept):
        if n not in up:
            results[i].up = False
            results[i].note = f"no answer to {how}"
    return [t for t, r in zip(targets, results) if r.up]


def _scan(spec: ScanSpec, proto: str, live: list[Target], ports: list[int], on_progress):
    """One protocol's verdicts for every live target; a big TCP scan on every core."""
    from pysock.probes.scan.workers import run_split, worker_count

    engine = _engine(spec, proto)
    if engine.splittable:
        workers = worker_count(live, ports, spec.timing)
        if workers > 1:
            return run_split(engine, live, ports, spec.timing, on_progress, workers)
    return engine(live, ports, spec.timing, on_progress).run()


def _engine(spec: ScanSpec, proto: str):
    if proto == "udp":
        from pysock.probes.scan.udp import UdpScan
        return UdpScan
    if spec.tcp_method == SYN:
        from pysock.probes.scan.syn import SynScan
        return SynScan
    from pysock.probes.scan.connect import ConnectScan
    return ConnectScan


def _add_banners(results: list[HostResult]) -> None:
    jobs = [(r.target, port) for r in results for port, v in r.verdicts.get("tcp", {}).items()
            if v.state == OPEN]
    if not jobs:
        return
    found = banners.grab(jobs)
    for r in results:
        for port, v in r.verdicts.get("tcp", {}).items():
            v.banner = found.get((r.target.addr, port))


def _add_labels(result: HostResult) -> None:
    if not is_local(result.target.addr):
        return
    result.local = True
    open_ports = [key for key, v in result.items() if v.state == OPEN]
    try:
        result.labels = labels.owners(result.target, open_ports)
    except (OSError, PysockError):
        result.labels = {}
