"""Close sockets from outside their process, as `ss -K` does: SOCK_DESTROY through
netlink sock_diag. TCP sockets are reset (the peer gets an RST, the owner's next
call fails with ECONNABORTED); UDP and raw sockets are closed the same way.

The kernel finds the socket by the inet_diag_sockid of a fresh dump (ports,
addresses, interface and cookie), so a socket that went away and was replaced is
never hit by mistake."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from pysock.errors import PysockError
from pysock.inventory import sockdiag
from pysock.inventory.model import SocketRecord

NO_PRIVILEGE = ("killing sockets needs CAP_NET_ADMIN in the socket's network namespace "
                "(run as root, as ss -K must)")
NO_KERNEL_SUPPORT = ("this kernel cannot destroy sockets (it was built without "
                     "CONFIG_INET_DIAG_DESTROY, which ss -K needs too)")


@dataclass
class Outcome:
    record: SocketRecord
    destroyed: bool
    reason: str | None = None  # why not


def destroy(records: list[SocketRecord]) -> Iterator[Outcome]:
    """Destroy each socket; raise PysockError when the kernel refuses every one for the
    same cause (no privilege, no support) rather than repeating it per socket."""
    try:
        diag = sockdiag.DiagSocket()
    except sockdiag.Unsupported as exc:
        raise PysockError(f"cannot kill sockets: {exc}") from None
    with diag:
        ids: dict[tuple[str, int], dict[int, bytes]] = {}
        for r in records:
            yield _destroy_one(diag, r, ids)


def _destroy_one(diag, r: SocketRecord, ids: dict) -> Outcome:
    if r.proto not in sockdiag.PROTOCOLS:
        return Outcome(r, False, "the kernel cannot destroy Unix sockets")
    if not r.inode:
        return Outcome(r, False, "a TIME_WAIT socket has no owner to reset")
    table = ids.get((r.proto, r.family))
    if table is None:
        try:
            table = ids[(r.proto, r.family)] = sockdiag.socket_ids(diag, r.proto, r.family)
        except sockdiag.Unsupported as exc:
            return Outcome(r, False, str(exc))
    sockid = table.get(r.inode)
    if sockid is None:
        return Outcome(r, False, "gone before it could be killed")
    code = sockdiag.destroy(diag, r.proto, r.family, sockid,
                            r.local_port if r.proto == "raw" else None)
    if code == 0:
        return Outcome(r, True)
    if code == errno.EPERM:
        raise PysockError(NO_PRIVILEGE)
    if code == errno.EOPNOTSUPP:
        raise PysockError(NO_KERNEL_SUPPORT)
    if code == errno.ENOENT:
        return Outcome(r, False, "gone before it could be killed")
    return Outcome(r, False, os.strerror(code))
