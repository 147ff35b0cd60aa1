"""Socket inode -> owning processes, from one pass over /proc/*/fd."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Owner:
    pid: int
    process: str
    uid: int | None = None


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip().decode(errors="replace")
    except OSError:
        return "?"


def socket_owners(inodes: set[int] | None = None) -> dict[int, list[Owner]]:
    """Map socket inodes to the processes holding them (all sockets when inodes is None).

    Processes we may not look into are skipped; the caller decides whether to say so."""
    found: dict[int, list[Owner]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        owner = None
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if not target.startswith("socket:["):
                continue
            inode = int(target[8:-1])
            if inodes is not None and inode not in inodes:
                continue
            if owner is None:
                owner = Owner(int(pid), _comm(pid), _uid(pid))
            holders = found.setdefault(inode, [])
            if owner not in holders:
                holders.append(owner)
    return found


def _uid(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
