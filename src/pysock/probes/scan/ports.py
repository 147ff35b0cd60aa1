"""Which ports a scan probes: -p lists, --top N from the ranked lists shipped as
package data (nmap's open-frequency ranking, see scripts/gen_top_ports.py), and
service names as nmap gives them."""

from __future__ import annotations

import functools
import socket

from pysock.errors import UsageError
from pysock.net import address

DEFAULT_TOP = 1000


NMAP_SERVICES = ("/usr/share/nmap/nmap-services", "/usr/local/share/nmap/nmap-services")


@functools.cache
def _shipped(proto: str) -> tuple[tuple[int, str], ...]:
    """(port, nmap's service name or '') in nmap's rank order, from the package data."""
    from importlib import resources  # 7 ms of imports, only when a ranked list is used

    text = resources.files("pysock.probes.scan").joinpath("data", f"top-{proto}.txt").read_text()
    rows = (line.split(maxsplit=1) for line in text.splitlines() if line and not line.startswith("#"))
    return tuple((int(row[0]), row[1] if len(row) > 1 else "") for row in rows)


def ranked(proto: str) -> tuple[int, ...]:
    return tuple(port for port, _ in _shipped(proto))


def top(proto: str, count: int) -> list[int]:
    """The `count` most often open ports for proto, most frequent first."""
    if count < 1:
        raise UsageError(f"the top ports need a positive count, not {count}")
    ports = list(ranked(proto)[:count])
    if count > len(ports):  # past the ranked list: the remaining ports in numeric order
        seen = set(ports)
        ports += [p for p in range(1, address.MAX_PORT + 1) if p not in seen][:count - len(ports)]
    return ports


def select(protos: list[str], spec: str | None, top_n: int | None) -> dict[str, list[int]]:
    """proto -> sorted ports. `spec` is -p's text: '22,80', '-', or 'U:53,T:80' (an item
    with a T:/U: prefix adds its protocol to the scan; unprefixed items go to every
    protocol asked for)."""
    if spec is not None and top_n is not None:
        raise UsageError("a port list and a top-N count both choose ports: give one")
    if spec is None:
        return {proto: sorted(top(proto, top_n or DEFAULT_TOP)) for proto in protos}
    if not _has_prefix(spec):
        return {proto: address.parse_port_list(spec, proto=proto) for proto in protos}
    chosen = address.parse_port_spec(spec, default_proto=protos[0])
    return {proto: chosen[proto] for proto in ("tcp", "udp") if proto in chosen}


def _has_prefix(spec: str) -> bool:
    return any(len(part.strip()) > 1 and part.strip()[1] == ":" for part in spec.split(","))


@functools.cache
def service(port: int, proto: str) -> str | None:
    """nmap's name for the service: shipped for the ranked ports (the same on every
    machine), else from nmap-services where nmap is installed, else /etc/services."""
    name = _shipped_names(proto).get(port) or _nmap_names(proto).get(port)
    if name:
        return name
    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError):
        return None


@functools.cache
def _shipped_names(proto: str) -> dict[int, str]:
    return {port: name for port, name in _shipped(proto) if name}


@functools.cache
def _nmap_names(proto: str) -> dict[int, str]:
    """port -> name from nmap's services table, if nmap is installed."""
    suffix = f"/{proto}"
    for path in NMAP_SERVICES:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                rows = [line.split(None, 2) for line in f if not line.startswith("#")]
        except OSError:
            continue
        return {int(row[1][:-len(suffix)]): row[0] for row in rows
                if len(row) > 1 and row[1].endswith(suffix) and row[0] != "unknown"
                and row[1][:-len(suffix)].isdigit()}
    return {}
