"""Socket inode -> owning processes, from one pass over /proc/*/fd.

Measured with 12,000 sockets held by one process: this pass takes about 40 ms,
psutil.net_connections('all') about 90 ms for the same map (it also parses
/proc/net itself), so pysock reads /proc directly and never imports psutil here."""

from __future__ import annotations

import functools
import marshal
import os
from collections import namedtuple

# (plain classes and a namedtuple: no dataclasses import on the listing path)
Owner = namedtuple("Owner", "pid process uid", defaults=(None,))


class ProcessInfo:
    __slots__ = ("pid", "process", "uid", "fds", "sockets")

    def __init__(self, pid: int, process: str, uid: int | None, fds: int,
                 sockets: list[int] | None = None):
        self.pid, self.process, self.uid = pid, process, uid
        self.fds = fds  # open descriptors when we looked
        self.sockets = sockets if sockets is not None else []  # inodes


class ProcessMap:
    """What one pass over /proc/*/fd saw."""

    def __init__(self, by_inode: dict[int, list[int]], processes: dict[int, ProcessInfo],
                 hidden: int):
        self.by_inode = by_inode  # socket inode -> pids, in /proc order
        self.processes = processes
        self.hidden = hidden  # processes whose descriptors we may not read (not root)

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


def scan(inodes: set[int] | None = None, *, all_processes: bool = False,
         skip: int | None = None) -> ProcessMap:
    """One pass over every process's descriptors.

    inodes: only remember these sockets (None: every socket). all_processes: keep
    processes without sockets too (for descriptor counts). skip: a pid to leave out."""
    skip_name = str(skip)
    by_inode: dict[int, list[int]] = {}
    processes: dict[int, ProcessInfo] = {}
    hidden = 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == skip_name:
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


def sockets_in_use() -> int | None:
    """The kernel's count of sockets in use (/proc/net/sockstat), None when unreadable."""
    try:
        with open("/proc/net/sockstat") as f:
            words = f.readline().split()
    except OSError:
        return None
    return int(words[2]) if len(words) > 2 and words[2].isdigit() else None


def missing(pids) -> list[int]:
    """The pids with no process (in this PID namespace)."""
    return [pid for pid in pids if not os.path.isdir(f"/proc/{pid}")]


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


class ScanBeside:
    """The /proc/*/fd pass in a forked child, while this process reads the sockets.

    The pass is mostly readlink() calls and the socket read is mostly Python; in a
    thread they take turns on the GIL, in a child they run on two cores (measured
    with 36,000 sockets: 106 ms one after the other, 103 ms with a thread, 74 ms
    forked). Where fork is not possible the pass runs here, after the read.

    On a machine with few sockets the fork costs more than it saves (measured with
    1,300 sockets: 21 ms forked, 11 ms one after the other), so below FORK_FROM
    sockets in use (/proc/net/sockstat) the pass runs here too.

    start() may come early, before the caller imports what it reads the sockets with
    (the child then has those milliseconds of head start); leaving the with-block
    reaps the child whatever happened."""

    FORK_FROM = 5000

    def __init__(self, all_processes: bool = False, in_use: int | None = None):
        self.all_processes = all_processes
        self.pid: int | None = None
        self.fd: int | None = None
        self.fork = in_use is None or in_use >= self.FORK_FROM
        self.started = False

    def __enter__(self) -> ScanBeside:
        return self.start()

    def start(self) -> ScanBeside:
        """Fork the pass (once; below FORK_FROM sockets, nothing to do until result())."""
        if self.started or not self.fork:
            return self
        self.started = True
        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return self
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            return self
        if pid == 0:
            os.close(read_fd)
            self._child(write_fd)
        os.close(write_fd)
        self.pid, self.fd = pid, read_fd
        return self

    def _child(self, write_fd: int) -> None:
        status = 1
        try:
            # not ourselves: a fork holds copies of every descriptor of its parent
            seen = scan(None, all_processes=self.all_processes, skip=os.getpid())
            wire = (seen.by_inode, [(p.pid, p.process, p.uid, p.fds, p.sockets)
                                    for p in seen.processes.values()], seen.hidden)
            with os.fdopen(write_fd, "wb") as out:
                out.write(marshal.dumps(wire))
            status = 0
        finally:
            os._exit(status)  # never back into the parent's code, no atexit, no flushing

    def result(self) -> ProcessMap:
        if self.pid is None:
            return scan(None, all_processes=self.all_processes)
        with os.fdopen(self.fd, "rb") as wire:
            data = wire.read()
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if status != 0 or not data:
            return scan(None, all_processes=self.all_processes)
        by_inode, processes, hidden = marshal.loads(data)
        return ProcessMap(by_inode, {p[0]: ProcessInfo(*p) for p in processes}, hidden)

    def __exit__(self, *exc) -> None:
        if self.pid is not None:  # the caller failed before asking for the result
            os.close(self.fd)
            os.waitpid(self.pid, 0)
