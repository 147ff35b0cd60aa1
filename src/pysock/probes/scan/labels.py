"""When the target is this machine, who owns each open port: pid, process, user,
from /proc (inventory/). No other scanner can say this; it needs no privilege for
your own processes, and root sees them all."""

from __future__ import annotations

import ipaddress
import pwd
from dataclasses import dataclass

from pysock.inventory import procnet
from pysock.inventory.processes import socket_owners
from pysock.probes.scan.model import Target


@dataclass(frozen=True)
class Label:
    pid: int
    process: str
    user: str | None


def _serves(hex_addr: str, target: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    bound = ipaddress.ip_address(procnet.decode_address(hex_addr))
    if bound.version == 6 and target.version == 4:  # a dual-stack socket on :: serves v4 too
        return bound.is_unspecified or bound.ipv4_mapped == target
    return bound.version == target.version and (bound.is_unspecified or bound == target)


def owners(target: Target, ports: list[tuple[str, int]]) -> dict[tuple[str, int], Label]:
    """(proto, port) -> the process listening there for target's address."""
    addr = ipaddress.ip_address(target.addr.split("%", 1)[0])
    inodes: dict[tuple[str, int], list[int]] = {}
    for proto in {proto for proto, _ in ports}:
        wanted = {port for p, port in ports if p == proto}
        for port, hex_addr, inode in procnet.listening(proto):
            if port in wanted and _serves(hex_addr, addr):
                inodes.setdefault((proto, port), []).append(inode)
    if not inodes:
        return {}
    holders = socket_owners({i for found in inodes.values() for i in found})
    labels = {}
    for key, found in inodes.items():
        for inode in found:
            for owner in holders.get(inode, []):
                labels[key] = Label(owner.pid, owner.process, _user(owner.uid))
                break
            if key in labels:
                break
    return labels


def _user(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
