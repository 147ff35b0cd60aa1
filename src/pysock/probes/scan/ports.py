"""Which ports a scan probes: -p lists, --top N from the ranked lists shipped as
package data (nmap's open-frequency ranking, see scripts/gen_top_ports.py), and
service names from the system services database."""

from __future__ import annotations

import functools
import socket

from pysock.errors import UsageError
from pysock.net import address

DEFAULT_TOP = 1000


@functools.cache
def ranked(proto: str) -> tuple[int, ...]:
    from importlib import resources  # 7 ms of imports, only when a ranked list is used

    text = resources.files("pysock.probes.scan").joinpath("data", f"top-{proto}.txt").read_text()
    return tuple(int(line) for line in text.splitlines() if line and not line.startswith("#"))


def top(proto: str, count: int) -> list[int]:
    """The `count` most often open ports for proto, most frequent first."""
    if count < 1:
        raise UsageError(f"--top needs a positive number of ports, not {count}")
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
        raise UsageError("-p and --top both choose ports: use one of them")
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
    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError):
        return None
