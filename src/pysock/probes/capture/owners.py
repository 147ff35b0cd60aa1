"""Which process owns the socket behind a packet: sock_diag by the exact tuple
(then the bound or listening socket on the port), then the inventory's
inode -> process pass over /proc. Looked up once per flow and cached; what cannot
be seen stays unknown."""

from __future__ import annotations

import threading
import time

from pysock.inventory import sockdiag
from pysock.inventory.processes import scan
from pysock.status import start_beside_main

ANY = {4: "0.0.0.0", 6: "::"}
WATCH_S = 0.05  # the watcher's dump period while new flows come: sockets living longer get seen
IDLE_S = 0.5  # its period when no new flow has come for HOT_S (each dump walks the
HOT_S = 2.0  # kernel's whole socket hash table of its protocol, shared by every
# namespace: TCP's 262,144 buckets here cost 0.6 ms a dump, even when empty)
PROTOS = ("tcp", "udp")
FLOWS_MAX = 65536  # flows remembered; past it the cache starts again
FORGET_S = 120.0  # a tuple not seen in a dump for this long is forgotten


class Attribution:
    def __init__(self):
        self.by_tuple: dict[tuple, int] = {}  # (proto, laddr, lport, raddr, rport) -> inode
        self.bound: dict[tuple, int] = {}  # (proto, laddr, lport) -> inode
        self.owner_of: dict[int, tuple[int, str]] = {}  # inode -> (pid, process)
        self.flows: dict[tuple, tuple] = {}  # key -> (owners, generation, both known)
        self.seen: dict[tuple, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watcher: threading.Thread | None = None
        self.on_owner = None  # called with a pid as its socket is first seen, while it lives
        self.generation = 0  # bumped by every dump that learnt a new socket owner
        self.hot_until = 0.0  # dump every WATCH_S until then, every IDLE_S after
        self.wake = threading.Event()  # a new flow: dump now
        self.loaded = False  # the first dump walks every table, later ones only
        self.seen_protos: set[str] = set()  # those of the flows seen since

    def start(self) -> None:
        """Dump the socket tables beside the capture, every WATCH_S while new flows
        come (the ring hands packets over in blocks, and a short connection may be
        gone by then), at once when a new flow shows, every IDLE_S when none has
        for HOT_S."""
        self.watcher = threading.Thread(target=self._watch, name="owners", daemon=True)
        start_beside_main(self.watcher.start)

    def _watch(self) -> None:
        while not self.stopping.is_set():
            self._load(time.monotonic())
            if self.stopping.wait(WATCH_S):  # at most one dump per WATCH_S, woken or not
                return
            if time.monotonic() >= self.hot_until:
                self.wake.wait(IDLE_S - WATCH_S)
            self.wake.clear()

    def _notice(self) -> None:
        self.hot_until = time.monotonic() + HOT_S
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.watcher is not None:
            self.watcher.join(timeout=2)

    def settle(self) -> None:
        """Wait for the watcher's dump under way (its owners are wanted now)."""
        with self.lock:
            pass

    def owners(self, head) -> tuple[tuple | None, tuple | None]:
        """((pid, process) of the sender, of the receiver), each None when unknown.
        A flow with both ends known is never looked up again; one with an end
        unknown (a remote peer, or a socket no dump has seen yet) only after the
        watcher has learnt a new owner. A flow never seen before wakes the watcher;
        the capture never dumps the tables itself (on a machine with thousands of
        sockets a dump and /proc pass take a quarter of a second)."""
        key = (head.proto, head.src, head.sport, head.dst, head.dport)
        known = self.flows.get(key)
        if known is not None and (known[2] or known[1] == self.generation):
            return known[0]
        if known is None:
            self.seen_protos.add(head.proto)
            self._notice()
        found = self._both(head)
        if len(self.flows) > FLOWS_MAX:
            self.flows.clear()
        self.flows[key] = (found, self.generation, None not in found)
        return found

    def _both(self, head) -> tuple[tuple | None, tuple | None]:
        return (self._end(head, head.src, head.sport, head.dst, head.dport),
                self._end(head, head.dst, head.dport, head.src, head.sport))

    def _end(self, head, laddr, lport, raddr, rport) -> tuple | None:
        inode = (self.by_tuple.get((head.proto, laddr, lport, raddr, rport))
                 or self.bound.get((head.proto, laddr, lport))
                 or self.bound.get((head.proto, ANY[head.family], lport)))
        return self.owner_of.get(inode) if inode else None

    def _load(self, now: float) -> None:
        with self.lock:
            self._load_locked(now)
            self.loaded = True

    def _load_locked(self, now: float) -> None:
        by_tuple, bound = dict(self.by_tuple), dict(self.bound)
        protos = [p for p in PROTOS if p in self.seen_protos or not self.loaded]
        try:
            with sockdiag.DiagSocket() as diag:
                for proto in protos:
                    for family in (4, 6):  # an IPv4 flow's socket may be an IPv6 one
                        for rec in sockdiag.inet_sockets(diag, proto, family):
                            if not rec.inode:
                                continue
                            if rec.peer_port:
                                key = (proto, rec.local_addr, rec.local_port,
                                       rec.peer_addr, rec.peer_port)
                                by_tuple[key] = rec.inode
                            else:
                                key = (proto, rec.local_addr, rec.local_port)
                                bound[key] = rec.inode
                            self.seen[key] = now
        except (sockdiag.Unsupported, OSError):
            return
        for key in [k for k, t in self.seen.items() if now - t > FORGET_S]:
            del self.seen[key]
            by_tuple.pop(key, None)
            bound.pop(key, None)
        self.by_tuple, self.bound = by_tuple, bound
        missing = {i for i in (*by_tuple.values(), *bound.values()) if i not in self.owner_of}
        if missing:
            seen = scan(missing)
            for inode in seen.by_inode:
                owners = seen.owners(inode)
                if owners:
                    self.owner_of[inode] = (owners[0].pid, owners[0].process)
                    if self.on_owner is not None:
                        self.on_owner(owners[0].pid)
            self.generation += 1
