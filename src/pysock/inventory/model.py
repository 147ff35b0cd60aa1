"""SocketRecord: one socket as every source reports it, and its JSON form."""

from __future__ import annotations

# Kernel socket states (include/net/tcp_states.h); UDP, raw and Unix sockets use
# ESTABLISHED, CLOSE and LISTEN from the same numbering.
ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT = 1, 2, 3, 4, 5, 6
CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV = 7, 8, 9, 10, 11, 12

STATE_NAMES = {
    ESTABLISHED: "ESTABLISHED", SYN_SENT: "SYN_SENT", SYN_RECV: "SYN_RECV",
    FIN_WAIT1: "FIN_WAIT1", FIN_WAIT2: "FIN_WAIT2", TIME_WAIT: "TIME_WAIT",
    CLOSE: "CLOSE", CLOSE_WAIT: "CLOSE_WAIT", LAST_ACK: "LAST_ACK", LISTEN: "LISTEN",
    CLOSING: "CLOSING", NEW_SYN_RECV: "SYN_RECV",
}
# ss calls a closed datagram or Unix socket "unconnected"; so do we.
UNCONN = "UNCONN"

UNIX_TYPES = {1: "stream", 2: "dgram", 5: "seqpacket"}


def state_name(proto: str, state: int) -> str:
    if state == CLOSE and proto != "tcp":
        return UNCONN
    return STATE_NAMES.get(state, f"STATE{state}")


class SocketRecord:
    """A plain slotted class, not a dataclass: `inspect -tln` must not pay for importing
    dataclasses (and inspect, ast, dis behind it) before its first byte of output."""

    __slots__ = ("proto", "family", "state", "recv_q", "send_q", "local_addr", "local_port",
                 "peer_addr", "peer_port", "inode", "uid", "path", "unix_type", "peer_inode",
                 "pids", "process", "user", "tcp_raw", "_tcp_info", "skmem_raw", "congestion",
                 "timer",
                 "timer_ms", "peer_path", "peer_pid", "peer_process")

    def __init__(self, proto: str, family: int, state: int, recv_q: int | None,
                 send_q: int | None, local_addr: str | None, local_port: int | None,
                 peer_addr: str | None, peer_port: int | None, inode: int,
                 uid: int | None = None, path: str | None = None, unix_type: str | None = None,
                 peer_inode: int | None = None, pids=(), process: str | None = None,
                 user: str | None = None):
        self.proto = proto  # tcp | udp | raw | unix
        self.family = family  # 4, 6, or 0 for unix
        self.state = state  # kernel state number (see above)
        self.recv_q, self.send_q = recv_q, send_q
        self.local_addr, self.local_port = local_addr, local_port
        self.peer_addr, self.peer_port = peer_addr, peer_port
        self.inode, self.uid = inode, uid
        self.path = path  # unix: own name (path, @abstract) or None when unnamed
        self.unix_type = unix_type  # stream | dgram | seqpacket
        self.peer_inode = peer_inode  # unix: the inode of the other end
        self.pids = pids  # owners, lowest first as /proc lists them
        self.process, self.user = process, user
        # filled for the extended view when the source has it (netlink): kept as the
        # kernel sent them and decoded when asked (the plain -e table reads a few fields)
        self.tcp_raw: bytes | None = None  # struct tcp_info
        self._tcp_info: dict | None = None
        self.skmem_raw: tuple[int, ...] | None = None  # the skmem array
        self.congestion: str | None = None
        self.timer: str | None = None
        self.timer_ms: int | None = None
        # unix peer pairing (filled by pair_unix)
        self.peer_path: str | None = None
        self.peer_pid: int | None = None
        self.peer_process: str | None = None

    def __repr__(self) -> str:
        return (f"SocketRecord({self.proto_text} {self.state_text} {self.local_addr}:"
                f"{self.local_port} {self.peer_addr}:{self.peer_port} inode={self.inode})")

    @property
    def tcp_info(self) -> dict | None:
        """tcp_info by pysock's stable names (inventory.tcpinfo.decode), None without it."""
        if self._tcp_info is None and self.tcp_raw is not None:
            self._tcp_info = _tcpinfo().decode(self.tcp_raw)
        return self._tcp_info

    def tcp_shown(self) -> tuple | None:
        """The tcp_info fields the extended table shows, without decoding the rest
        (inventory.tcpinfo.SHOWN: their names and order)."""
        if self.tcp_raw is None:
            return None
        return _tcpinfo().shown(self.tcp_raw)

    @property
    def skmem(self) -> dict | None:
        if self.skmem_raw is None:
            return None
        from pysock.inventory.tcpinfo import SKMEM_NAMES
        return dict(zip(SKMEM_NAMES, self.skmem_raw))

    @property
    def pid(self) -> int | None:
        return self.pids[0] if self.pids else None

    @property
    def state_text(self) -> str:
        return state_name(self.proto, self.state)

    @property
    def proto_text(self) -> str:
        """tcp, tcp6, udp, udp6, raw, raw6, u_str, u_dgr, u_seq (as ss's Netid)."""
        if self.proto == "unix":
            return "u_" + (self.unix_type or "stream")[:3]
        if self.proto == "netlink":
            return "nl"
        if self.proto == "packet":
            return "p_" + (self.unix_type or "raw")[:3]
        return self.proto + ("6" if self.family == 6 else "")

    @property
    def key(self) -> tuple:
        """What identifies a socket across two looks (for --watch). A connected internet
        socket is its two ends: when its process exits it loses its inode (an orphan
        closing down) but is the same socket, changed."""
        if self.proto != "unix" and self.peer_port and self.state not in (LISTEN, CLOSE):
            return (self.proto, self.family, self.local_addr, self.local_port,
                    self.peer_addr, self.peer_port)
        return (self.proto, self.family, self.inode, self.local_addr, self.local_port,
                self.peer_addr, self.peer_port, self.path)

    @property
    def look(self) -> tuple:
        """What --watch reports as a change of the same socket: its state and owner."""
        return (self.state, self.pid)

    def to_json(self) -> dict:
        out = {
            "proto": self.proto, "family": self.family or None, "state": self.state_text,
            "local_addr": self.local_addr, "local_port": self.local_port,
            "peer_addr": self.peer_addr, "peer_port": self.peer_port,
            "recv_q": self.recv_q, "send_q": self.send_q, "inode": self.inode,
            "pid": self.pid, "process": self.process, "user": self.user, "uid": self.uid,
            "pids": list(self.pids),
        }
        if self.proto == "packet":
            out.update(iface=self.path, type=self.unix_type)
        if self.proto == "unix":
            out.update(path=self.path, type=self.unix_type, peer_inode=self.peer_inode,
                       peer_path=self.peer_path, peer_pid=self.peer_pid,
                       peer_process=self.peer_process)
        if self.state == LISTEN:
            out["backlog_full"] = self.backlog_full
        return out

    @property
    def backlog_full(self) -> bool:
        return backlog_full(self)


_TCPINFO = []  # pysock.inventory.tcpinfo, once a record is asked for its tcp_info


def _tcpinfo():
    if not _TCPINFO:
        from pysock.inventory import tcpinfo
        _TCPINFO.append(tcpinfo)
    return _TCPINFO[0]


def backlog_full(record: SocketRecord) -> bool:
    """A listener whose accept queue is at 90% of its backlog or more."""
    if record.state != LISTEN or not record.send_q or record.recv_q is None:
        return False
    return record.recv_q * 10 >= record.send_q * 9
