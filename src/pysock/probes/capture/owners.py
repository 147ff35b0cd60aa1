"""Which process owns the socket behind a packet: sock_diag by the exact tuple
(then the bound or listening socket on the port), then the inventory's
inode -> process pass over /proc. Looked up once per flow and cached; what cannot
be seen stays unknown."""

from __future__ import annotations

import time

from pysock.inventory import sockdiag
from pysock.inventory.processes import scan

ANY = {4: "0.0.0.0", 6: "::"}
REFRESH_S = 0.2  # at most this often a new dump when flows are unknown
RETRY_S = 1.0  # an unknown flow is looked up again after this long


class Attribution:
    def __init__(self):
        self.by_tuple: dict[tuple, int] = {}  # (proto, laddr, lport, raddr, rport) -> inode
        self.bound: dict[tuple, int] = {}  # (proto, laddr, lport) -> inode
        self.owner_of: dict[int, tuple[int, str]] = {}  # inode -> (pid, process)
        self.flows: dict[tuple, tuple[tuple | None, tuple | None, float]] = {}
        self.loaded = 0.0

    def owners(self, head) -> tuple[tuple | None, tuple | None]:
        """((pid, process) of the sender, of the receiver), each None when unknown."""
        key = (head.proto, head.src, head.sport, head.dst, head.dport)
        known = self.flows.get(key)
        now = time.monotonic()
        if known is not None and (known[0] or known[1] or now - known[2] < RETRY_S):
            return known[0], known[1]
        if now - self.loaded >= REFRESH_S:
            self._load(now)
        found = (self._end(head, head.src, head.sport, head.dst, head.dport),
                 self._end(head, head.dst, head.dport, head.src, head.sport))
        self.flows[key] = (*found, now)
        return found

    def _end(self, head, laddr, lport, raddr, rport) -> tuple | None:
        inode = (self.by_tuple.get((head.proto, laddr, lport, raddr, rport))
                 or self.bound.get((head.proto, laddr, lport))
                 or self.bound.get((head.proto, ANY[head.family], lport)))
        return self.owner_of.get(inode) if inode else None

    def _load(self, now: float) -> None:
        self.loaded = now
        by_tuple, bound = {}, {}
        try:
            with sockdiag.DiagSocket() as diag:
                for proto in ("tcp", "udp"):
                    for family in (4, 6):
                        for rec in sockdiag.inet_sockets(diag, proto, family):
                            if not rec.inode:
                                continue
                            if rec.peer_port:
                                by_tuple[(proto, rec.local_addr, rec.local_port,
                                          rec.peer_addr, rec.peer_port)] = rec.inode
                            else:
                                bound[(proto, rec.local_addr, rec.local_port)] = rec.inode
        except (sockdiag.Unsupported, OSError):
            return
        self.by_tuple, self.bound = by_tuple, bound
        missing = {i for i in (*by_tuple.values(), *bound.values()) if i not in self.owner_of}
        if missing:
            seen = scan(missing)
            for inode in seen.by_inode:
                owners = seen.owners(inode)
                if owners:
                    self.owner_of[inode] = (owners[0].pid, owners[0].process)
