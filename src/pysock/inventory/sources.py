"""One look at every socket: netlink sock_diag (or /proc/net), filtered, with owners.

The source is netlink with a per-table fallback to /proc/net when the kernel
cannot dump a kind of socket (raw_diag is often left out); `proc` forces the
fallback everywhere, `netlink` refuses it. PYSOCK_INSPECT_SOURCE sets the default."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable

from pysock.errors import PysockError, UsageError
from pysock.inventory import procnet, sockdiag
from pysock.inventory.filter import ALL, Filter
from pysock.inventory.model import SocketRecord
from pysock.inventory.processes import ProcessMap, ScanBeside, sockets_in_use

SOURCES = ("auto", "netlink", "proc")
SOURCE_ENV = "PYSOCK_INSPECT_SOURCE"
TABLES = [("tcp", 4), ("tcp", 6), ("udp", 4), ("udp", 6), ("raw", 4), ("raw", 6), ("unix", 0),
          ("netlink", 0), ("packet", 0)]
# read from /proc/net always: every kernel lists them there, and this one may have no
# netlink_diag or packet_diag
PROC_ONLY = {"netlink": procnet.netlink_sockets, "packet": procnet.packet_sockets}


class Inventory:
    def __init__(self, records: list[SocketRecord], used: dict[str, str] | None = None,
                 processes: ProcessMap | None = None, notes: list[str] | None = None):
        self.records = records
        self.used = used if used is not None else {}  # table (tcp6, unix) -> netlink | proc
        self.processes = processes
        self.notes = notes if notes is not None else []  # for stderr


def choose_source(option: str | None) -> str:
    """option (the command's choice, checked by the command) or the environment's."""
    source = option or os.environ.get(SOURCE_ENV) or "auto"
    if source not in SOURCES:
        raise UsageError(f"unknown socket source '{source}' (from {SOURCE_ENV}); use one of "
                         f"{', '.join(SOURCES)}")
    return source


def _dump(diag, proto: str, family: int, states: int, extended: bool,
          bytecode: bytes | None) -> list[SocketRecord]:
    if proto == "unix":
        return list(sockdiag.unix_sockets(diag, ALL, extended))
    if bytecode:
        try:
            return list(sockdiag.inet_sockets(diag, proto, family, states, extended, bytecode))
        except sockdiag.Unsupported:
            pass  # a kernel that refuses the filter: dump all, filter here (we do anyway)
    return list(sockdiag.inet_sockets(diag, proto, family, states, extended))


def _read_table(diag, proto: str, family: int, flt: Filter, extended: bool, source: str,
                used: dict[str, str]) -> list[SocketRecord]:
    table = proto + ("6" if family == 6 else "")
    if proto in PROC_ONLY:
        used[table] = "proc"
        return list(PROC_ONLY[proto]())
    if diag is not None:
        try:
            found = _dump(diag, proto, family, flt.states, extended, flt.bytecode)
            used[table] = "netlink"
            return found
        except sockdiag.Unsupported as exc:
            if source == "netlink":
                raise PysockError(f"netlink sock_diag cannot list {proto} sockets here ({exc})",
                                  advice="inspect_source") from None
    used[table] = "proc"
    if proto == "unix":
        return list(procnet.unix_sockets())
    return list(procnet.inet_sockets(proto, family))


def _open_diag(source: str):
    if source == "proc":
        return None
    try:
        return sockdiag.DiagSocket()
    except sockdiag.Unsupported as exc:
        if source == "netlink":
            raise PysockError(f"{exc}; the auto and proc sources read /proc/net instead") from None
        return None


def read_sockets(flt: Filter, *, source: str = "auto", extended: bool = False
                 ) -> tuple[list[SocketRecord], dict[str, str]]:
    """Every socket the filter's tables hold, unfiltered except for the kernel-side
    state mask; Unix sockets come whole so that peers can be paired."""
    used: dict[str, str] = {}
    records: list[SocketRecord] = []
    diag = _open_diag(source)
    try:
        for proto, family in TABLES:
            if flt.wants(proto, family):
                records += _read_table(diag, proto, family, flt, extended, source, used)
    finally:
        if diag is not None:
            diag.close()
    return records, used


def pair_unix(records: list[SocketRecord]) -> None:
    """Give each connected Unix socket its peer's name (as lsof +E pairs them)."""
    by_inode = {r.inode: r for r in records if r.proto == "unix"}
    for r in by_inode.values():
        if r.peer_inode:
            peer = by_inode.get(r.peer_inode)
            if peer is not None:
                r.peer_path = peer.path


def attach_owners(records: list[SocketRecord], seen: ProcessMap) -> None:
    users = UserNames()
    for r in records:
        pids = seen.by_inode.get(r.inode)
        if pids:
            r.pids = pids
            info = seen.processes[pids[0]]
            r.process = info.process
            if r.uid is None:
                r.uid = info.uid
        if r.peer_inode:
            peer_pids = seen.by_inode.get(r.peer_inode)
            if peer_pids:
                r.peer_pid = peer_pids[0]
                r.peer_process = seen.processes[peer_pids[0]].process
        r.user = users.name(r.uid)


class UserNames:
    def __init__(self):
        self.cache: dict[int | None, str | None] = {None: None}

    def name(self, uid: int | None) -> str | None:
        if uid not in self.cache:
            try:
                self.cache[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self.cache[uid] = str(uid)
        return self.cache[uid]


def uid_of(user: str) -> int:
    """A user name or number -> uid; an unknown name is a usage error."""
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise UsageError(f"no user named '{user}' on this machine") from None


def collect(flt: Filter, *, source: str = "auto", extended: bool = False,
            all_processes: bool = False, beside: ScanBeside | None = None,
            while_waiting: Callable[[list[SocketRecord]], None] | None = None) -> Inventory:
    """The sockets the filter selects, with their owners, in one pass each.

    beside: the owner pass, when the caller started it already. while_waiting: work on
    the selected sockets (before they have owners) to do while that pass runs."""
    if beside is None:
        beside = ScanBeside(all_processes, sockets_in_use())
    with beside.start() as pass_over_proc:
        records, used = read_sockets(flt, source=source, extended=extended)
        if "unix" in flt.protos:
            pair_unix(records)
        records = [r for r in records if r.proto in flt.protos and flt.match_socket(r)]
        if while_waiting is not None:
            while_waiting(records)
        seen = pass_over_proc.result()
    attach_owners(records, seen)
    if flt.needs_owners:
        records = [r for r in records if flt.match_owner(r)]
    inventory = Inventory(records, used, seen)
    if seen.hidden:
        inventory.notes.append(
            f"{seen.hidden} processes of other users are hidden (their sockets show no "
            "process); run as root to see them")
    if extended and "proc" in (used.get("tcp"), used.get("tcp6")):
        inventory.notes.append("TCP internals and socket memory need netlink sock_diag; "
                               "sockets read from /proc/net show none")
    return inventory
