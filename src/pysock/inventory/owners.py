"""Who holds a port or a Unix path: a few words for error messages."""

from __future__ import annotations

from pysock.inventory import procnet
from pysock.inventory.processes import socket_owners


def _describe(inodes: list[int]) -> str | None:
    owners = socket_owners(set(inodes))
    names = []
    for inode in inodes:
        for owner in owners.get(inode, []):
            label = f"{owner.process} (pid {owner.pid})"
            if label not in names:
                names.append(label)
    return ", ".join(names) if names else None


def port_holder(port: int, proto: str = "tcp") -> str | None:
    """'nginx (pid 812)' for the process listening on port, when it can be seen."""
    return _describe([inode for _, inode in procnet.listening_inodes(port, proto)])


def unix_holder(path: str) -> str | None:
    return _describe(procnet.unix_inodes(path))
