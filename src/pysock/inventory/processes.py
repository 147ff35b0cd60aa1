"""Socket inode -> owning processes, from one pass over /proc/*/fd.

Measured with 12,000 sockets held by one process: this pass takes about 40 ms,
psutil.net_connections('all') about 90 ms for the same map (it also parses
/proc/net itself), so pysock reads /proc directly and never imports psutil here."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Owner:
    pid: int
    process: str
    uid: int | None = None


@dataclass
class ProcessInfo:
    pid: int
    process: str
    uid: int | None
    fds: int  # open descriptors when we looked
    sockets: list[int] = field(default_factory=list)  # inodes


@dataclass
class ProcessMap:
    """What one pass over /proc/*/fd saw."""

    by_inode: dict[int, list[int]]  # socket inode -> pids, in /proc order
    processes: dict[int, ProcessInfo]
    hidden: int  # processes whose descriptors we may not read (not root)

    def owners(self, inode: int) -> list[Owner]:
        return [Owner(pid, self.processes[pid].process, self.processes[pid].uid)
                for pid in self.by_inode.get(inode, ())]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip().decode(errors="replace")
    except OSError:
        return "?"


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _socket_inodes(dir_fd: int) -> tuple[int, list[int]]:
    """(descriptor count, socket inodes) of one /proc/PID/fd directory."""
    fds = os.listdir(dir_fd)
    try:  # map() keeps the per-descriptor cost near the readlink() itself
        targets = list(map(functools.partial(os.readlink, dir_fd=dir_fd), fds))
    except OSError:  # a descriptor closed while we looked: go one by one
        targets = []
        for fd in fds:
            try:
                targets.append(os.readlink(fd, dir_fd=dir_fd))
            except OSError:
                continue
    return len(fds), [int(t[8:-1]) for t in targets if t[:8] == "socket:["]


def scan(inodes: set[int] | None = None, *, all_processes: bool = False) -> ProcessMap:
    """One pass over every process's descriptors.

    inodes: only remember these sockets (None: every socket). all_processes: keep
    processes without sockets too (for descriptor counts)."""
    by_inode: dict[int, list[int]] = {}
    processes: dict[int, ProcessInfo] = {}
    hidden = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            dir_fd = os.open(f"/proc/{name}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError:
            hidden += 1
            continue
        except OSError:  # gone, or a kernel thread without descriptors
            continue
        try:
            count, found = _socket_inodes(dir_fd)
        except OSError:
            continue
        finally:
            os.close(dir_fd)
        if inodes is not None:
            found = [i for i in found if i in inodes]
        if not found and not all_processes:
            continue
        pid = int(name)
        processes[pid] = ProcessInfo(pid, _comm(pid), _uid(pid), count, found)
        for inode in found:
            holders = by_inode.get(inode)
            if holders is None:
                by_inode[inode] = [pid]
            elif holders[-1] != pid:
                holders.append(pid)
    return ProcessMap(by_inode, processes, hidden)


def socket_owners(inodes: set[int] | None = None) -> dict[int, list[Owner]]:
    """Map socket inodes to the processes holding them (all sockets when inodes is None).

    Processes we may not look into are skipped; the caller decides whether to say so."""
    seen = scan(inodes)
    return {inode: seen.owners(inode) for inode in seen.by_inode}


def fd_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of a process, from /proc/PID/limits (None: unlimited/unknown)."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files"):].split()[0]
                    return int(soft) if soft.isdigit() else None
    except OSError:
        return None
    return None
