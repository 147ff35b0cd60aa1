"""How `pysock inspect` shows sockets and its aggregate views, in the three renderings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from pysock.render.records import Column, RecordWriter, cell

# ---- names: services and hosts -----------------------------------------------


class Names:
    """Port -> service name (from /etc/services, read once) and, with resolve,
    address -> host name (one look-up per distinct address)."""

    def __init__(self, services: bool = True, resolve: bool = False):
        self.use_services = services
        self.services: dict[tuple[int, str], str] | None = None  # read on first use
        self.resolve = resolve
        self.hosts: dict[str, str] = {}
        self.protocols: dict[int, str] | None = None

    def protocol(self, number: int | None) -> str:
        """A raw socket's IP protocol: icmp, ipv6-icmp (from /etc/protocols), as ss."""
        if not number:
            return "*"
        if self.protocols is None:
            self.protocols = _read_protocols() if self.use_services else {}
        return self.protocols.get(number, str(number))

    def port(self, port: int | None, proto: str) -> str:
        if not port:
            return "*"
        if self.services is None:
            self.services = _read_services() if self.use_services else {}
        return self.services.get((port, proto), str(port))

    def host(self, addr: str | None) -> str | None:
        if addr is None or not self.resolve or _wildcard(addr):
            return addr
        name = self.hosts.get(addr)
        if name is None:
            import socket
            try:
                name = socket.gethostbyaddr(addr)[0]
            except OSError:
                name = addr
            self.hosts[addr] = name
        return name


def _read_services() -> dict[tuple[int, str], str]:
    found: dict[tuple[int, str], str] = {}
    try:
        with open("/etc/services") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and "/" in words[1]:
                    port, _, proto = words[1].partition("/")
                    if port.isdigit():
                        found.setdefault((int(port), proto), words[0])
    except OSError:
        pass
    return found


# where /etc/protocols is missing (minimal containers), the ones raw sockets use
_PROTOCOLS = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
              58: "ipv6-icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp", 255: "raw"}


def _read_protocols() -> dict[int, str]:
    found = dict(_PROTOCOLS)
    try:
        with open("/etc/protocols") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) >= 2 and words[1].isdigit():
                    found[int(words[1])] = words[0]
    except OSError:
        pass
    return found


def _wildcard(addr: str) -> bool:
    return addr in ("0.0.0.0", "::")


# ---- one socket as a row ------------------------------------------------------


def endpoint(addr: str | None, port: int | None, proto: str, names: Names) -> str:
    if addr is None:
        return "*"
    host = "*" if _wildcard(addr) else names.host(addr)
    if ":" in host:
        host = f"[{host}]"
    if proto == "raw":  # the "port" of a raw socket is its IP protocol
        return f"{host}:{names.protocol(port)}"
    return f"{host}:{names.port(port, proto)}"


def _owner(pid: int | None, process: str | None) -> str | None:
    if pid is None:
        return None
    return f"{process}[{pid}]"


def unix_peer(r) -> str:
    parts = [r.peer_path] if r.peer_path else []
    if r.peer_pid is not None:
        parts.append(_owner(r.peer_pid, r.peer_process))
    elif r.peer_inode:
        parts.append(f"ino:{r.peer_inode}")
    return " ".join(parts) or "*"


def row(r, names: Names, extended: bool = False) -> dict:
    """The text of one socket for the table and plain renderings."""
    if r.proto == "unix":
        local, peer = r.path or "*", unix_peer(r)
    elif r.proto == "netlink":  # protocol:port id, the kernel's own as ss says it
        local, peer = f"{r.local_addr}:{r.local_port or 'kernel'}", "*"
    elif r.proto == "packet":  # ethertype:interface
        local, peer = f"{r.local_addr}:{r.path}", "*"
    else:
        local = endpoint(r.local_addr, r.local_port, r.proto, names)
        peer = endpoint(r.peer_addr, r.peer_port, r.proto, names)
    full = r.backlog_full
    out = {"proto": r.proto_text, "state": r.state_text,
           # "!": a listener whose accept queue is (nearly) at its backlog
           "recv_q": f"{r.recv_q}!" if full else r.recv_q, "send_q": r.send_q,
           "local": local, "peer": peer, "process": _owner(r.pid, r.process), "user": r.user,
           "full": full}
    if len(r.pids) > 1:
        out["process"] += f" +{len(r.pids) - 1}"
    if extended:
        out.update(_extended(r))
    return out


def _rate(bps: int | None) -> str | None:
    if not bps:
        return None
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.1f}{unit}bps"
    return f"{bps}bps"


def _ms(value) -> str:
    return "-" if value is None else f"{value:g}ms"


def tcp_info_text(info: dict) -> str:
    """The rest of tcp_info in ss -i's words: mss:1448 rto:204 ato:40 wscale:7,7 ..."""
    words = []
    for key, label in (("mss", "mss"), ("rcv_mss", "rcvmss"), ("advmss", "advmss"),
                       ("pmtu", "pmtu")):
        if info.get(key):
            words.append(f"{label}:{info[key]}")
    for key, label in (("rto_ms", "rto"), ("ato_ms", "ato")):
        if info.get(key):
            words.append(f"{label}:{info[key]:g}")
    if info.get("snd_wscale") is not None:
        words.append(f"wscale:{info['snd_wscale']},{info['rcv_wscale']}")
    for key, label in (("pacing_rate_bps", "pacing_rate"), ("delivery_rate_bps",
                                                            "delivery_rate")):
        if info.get(key):
            words.append(f"{label} {info[key]}bps")
    busy = info.get("busy_ms")
    if busy:
        words.append(f"busy:{busy:g}ms")
        for key, label in (("rwnd_limited_ms", "rwnd_limited"),
                           ("sndbuf_limited_ms", "sndbuf_limited")):
            if info.get(key):
                words.append(f"{label}:{info[key]:g}ms({100 * info[key] / busy:.1f}%)")
    if info.get("notsent_bytes"):
        words.append(f"notsent:{info['notsent_bytes']}")
    return " ".join(words)


def _extended(r) -> dict:
    info = r.tcp_info or {}
    out = {"inode": r.inode}
    if info:
        out.update(rtt=f"{info['rtt_ms']:.3f}/{info['rttvar_ms']:.3f}", cwnd=info["cwnd"],
                   retrans=f"{info['retransmits']}/{info['retrans']}",
                   bytes=f"{info['bytes_acked'] or 0}/{info['bytes_received'] or 0}",
                   rate=_rate(info["delivery_rate_bps"]), cong=r.congestion)
        out["info"] = tcp_info_text(info)
    if r.timer:
        out["timer"] = f"{r.timer},{_ms(r.timer_ms)}"
    if r.skmem:
        m = r.skmem
        out["skmem"] = f"r{m['rmem_alloc']},rb{m['rcvbuf']},t{m['wmem_alloc']},tb{m['sndbuf']}" \
            + (f",d{m['drops']}" if m.get("drops") else "")
    return out


def _full_style(record: dict) -> str | None:
    return "bold red" if record.get("full") else None


def _state_style(record: dict) -> str | None:
    return {"CLOSE_WAIT": "yellow", "LISTEN": "green", "TIME_WAIT": "dim"}.get(record["state"])


SOCKET_COLUMNS = [
    Column("proto", "Proto"), Column("state", "State", style=_state_style),
    Column("recv_q", "Recv-Q", "right", style=_full_style),
    Column("send_q", "Send-Q", "right"),
    Column("local", "Local"), Column("peer", "Peer"), Column("process", "Process"),
    Column("user", "User"),
]
EXTENDED_COLUMNS = [
    Column("inode", "Inode", "right"), Column("rtt", "RTT ms"), Column("cwnd", "Cwnd", "right"),
    Column("retrans", "Retrans"), Column("bytes", "Acked/Rcvd"), Column("rate", "Delivery"),
    Column("cong", "CC"), Column("timer", "Timer"), Column("skmem", "Skmem"),
    Column("info", "TCP info"),
]


def socket_columns(extended: bool) -> list[Column]:
    return SOCKET_COLUMNS + (EXTENDED_COLUMNS if extended else [])


def socket_json(r, extended: bool, names: Names | None = None) -> dict:
    out = r.to_json()
    if names is not None and names.resolve:
        out["local_name"] = names.host(r.local_addr)
        out["peer_name"] = names.host(r.peer_addr)
    if extended:
        if r.tcp_info:
            out.update(r.tcp_info)
        out.update(congestion=r.congestion, skmem=r.skmem, timer=r.timer, timer_ms=r.timer_ms)
    return out


_INET_JSON = ('{"proto":"%s","family":%d,"state":"%s","local_addr":"%s","local_port":%d,'
              '"peer_addr":"%s","peer_port":%d,"recv_q":%d,"send_q":%d,"inode":%d,%s%s}\n')


class FastJson:
    """JSON Lines for internet sockets without the per-record dict: the same text
    RecordWriter would write for socket_json(r), at a quarter of the cost, which
    matters with tens of thousands of sockets. Anything unusual goes the slow way."""

    def __init__(self):
        import json
        self.encode = json.JSONEncoder(separators=(",", ":")).encode
        self.owners: dict[tuple, str] = {}

    def line(self, r) -> str | None:
        if r.proto not in ("tcp", "udp", "raw") or r.recv_q is None or r.send_q is None:
            return None
        key = (tuple(r.pids), r.user, r.uid)
        owner = self.owners.get(key)
        if owner is None:
            owner = self.owners[key] = self._owner(r)
        state = r.state_text
        listen = "" if state != "LISTEN" else \
            (',"backlog_full":true' if r.backlog_full else ',"backlog_full":false')
        return _INET_JSON % (r.proto, r.family, state, r.local_addr, r.local_port,
                             r.peer_addr, r.peer_port, r.recv_q, r.send_q, r.inode, owner, listen)

    def _owner(self, r) -> str:
        e = self.encode
        return (f'"pid":{e(r.pid)},"process":{e(r.process)},"user":{e(r.user)},'
                f'"uid":{e(r.uid)},"pids":{e(list(r.pids))}')


def _write_json(records: Iterable, stream, extended: bool, names: Names) -> None:
    import json
    encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
    fast = None if extended or names.resolve else FastJson()
    lines = []
    for r in records:
        text = fast.line(r) if fast is not None else None
        lines.append(text if text is not None else encode(socket_json(r, extended, names)) + "\n")
        if len(lines) >= 4096:
            stream.write("".join(lines))
            lines = []
    stream.write("".join(lines))
    stream.flush()


class FastPlain:
    """Tab-separated lines for the plain socket list without the per-record dict: the
    same text RecordWriter writes for row(r), a third of the cost, which is most of
    a listing of thousands of sockets. Endpoints and owners repeat, so they are
    cached."""

    def __init__(self, names: Names):
        self.names = names
        self.ends: dict[tuple, str] = {}
        self.owners: dict[tuple, str] = {}

    def end(self, addr, port, proto: str) -> str:
        key = (addr, port, proto)
        text = self.ends.get(key)
        if text is None:
            text = self.ends[key] = endpoint(addr, port, proto, self.names)
        return text

    def line(self, r) -> str:
        if r.proto not in ("tcp", "udp", "raw"):
            cells = row(r, self.names)
            return "\t".join([cell(cells[c.key]) for c in SOCKET_COLUMNS]) + "\n"
        key = (tuple(r.pids), r.process)
        owner = self.owners.get(key)
        if owner is None:
            owner = _owner(r.pid, r.process) or "-"
            if len(r.pids) > 1:
                owner += f" +{len(r.pids) - 1}"
            self.owners[key] = owner
        recv_q = "-" if r.recv_q is None else str(r.recv_q)
        if r.backlog_full:
            recv_q += "!"
        return (f"{r.proto_text}\t{r.state_text}\t{recv_q}\t"
                f"{'-' if r.send_q is None else r.send_q}\t"
                f"{self.end(r.local_addr, r.local_port, r.proto)}\t"
                f"{self.end(r.peer_addr, r.peer_port, r.proto)}\t{owner}\t{r.user or '-'}\n")


def _write_plain(records: Iterable, stream, names: Names, header: bool) -> None:
    fast = FastPlain(names)
    lines = ["\t".join(c.title for c in SOCKET_COLUMNS) + "\n"] if header else []
    for r in records:
        lines.append(fast.line(r))
        if len(lines) >= 4096:
            stream.write("".join(lines))
            lines = []
    stream.write("".join(lines))
    stream.flush()


def write_sockets(records: Iterable, mode: str, *, color: bool, extended: bool,
                  names: Names, stream=None, title: str | None = None,
                  extra: Callable[[object], dict] | None = None,
                  columns: list[Column] | None = None, header: bool = True) -> None:
    """Every socket in one of the three renderings."""
    if mode == "json" and extra is None:
        _write_json(records, stream if stream is not None else sys.stdout, extended, names)
        return
    if mode == "plain" and extra is None and columns is None and not extended:
        _write_plain(records, stream if stream is not None else sys.stdout, names, header)
        return
    columns = columns or socket_columns(extended)
    with RecordWriter(columns, mode, stream=stream, color=color, title=title,
                      flush=False, header=header) as writer:
        for r in records:
            rec = socket_json(r, extended, names) if mode == "json" else row(r, names, extended)
            if extra is not None:
                rec.update(extra(r))
            writer.write(rec)


KILL_COLUMNS = [Column("killed", "Killed"), Column("reason", "Why not")]


def write_kills(outcomes: list, mode: str, *, color: bool, names: Names,
                header: bool = True) -> None:
    """Each socket --kill acted on, with whether the kernel destroyed it."""
    by_record = {id(o.record): o for o in outcomes}

    def extra(r) -> dict:
        o = by_record[id(r)]
        if mode == "json":
            return {"destroyed": o.destroyed, "reason": o.reason}
        return {"killed": "yes" if o.destroyed else "no", "reason": o.reason}
    write_sockets([o.record for o in outcomes], mode, color=color, extended=False, names=names,
                  extra=extra, columns=SOCKET_COLUMNS + KILL_COLUMNS, title="Killed",
                  header=header)


# ---- aggregate views ------------------------------------------------------------

SOCKSTAT_COLUMNS = [Column("name", "Kind"), Column("inuse", "In use", "right"),
                    Column("orphan", "Orphan", "right"), Column("tw", "TimeWait", "right"),
                    Column("alloc", "Alloc", "right"), Column("mem", "Mem (pages)", "right")]
STATE_COLUMNS = [Column("proto", "Proto"), Column("state", "State"),
                 Column("count", "Count", "right")]
TOP_COLUMNS = [Column("process", "Process"), Column("pid", "PID", "right"),
               Column("sockets", "Sockets", "right"), Column("tcp", "TCP", "right"),
               Column("udp", "UDP", "right"), Column("raw", "Raw", "right"),
               Column("unix", "Unix", "right")]


def _flags(value) -> str:
    return ",".join(value) if value else "-"


def _bytes(value) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return str(value)


def _flag_style(record: dict) -> str | None:
    return "bold red" if record.get("flags") else None


BY_PROCESS_COLUMNS = [
    Column("process", "Process", style=_flag_style), Column("pid", "PID", "right"),
    Column("user", "User"), Column("sockets", "Sockets", "right"),
    Column("tcp", "TCP", "right"), Column("udp", "UDP", "right"), Column("raw", "Raw", "right"),
    Column("unix", "Unix", "right"), Column("listen", "Listen", "right"),
    Column("established", "Estab", "right"), Column("close_wait", "CloseWait", "right"),
    Column("fds", "FDs", "right"), Column("fd_limit", "Limit", "right"),
    Column("fd_pct", "FD%", "right", fmt=lambda v: "-" if v is None else f"{v:.1f}"),
    Column("flags", "Flags", fmt=_flags, style=_flag_style),
    Column("threads", "Thr", "right"), Column("rss_bytes", "RSS", "right", fmt=_bytes),
    Column("cpu_pct", "CPU%", "right", fmt=lambda v: "-" if v is None else f"{v:.1f}"),
    Column("started", "Started"), Column("cmdline", "Command"),
]
LIMIT_COLUMNS = [Column("setting", "Setting"), Column("value", "Value"),
                 Column("in_use", "In use", "right"), Column("note", "Note")]


def write_rows(rows: list[dict], columns: list[Column], mode: str, *, color: bool,
               title: str | None = None, stream=None, header: bool = True) -> None:
    with RecordWriter(columns, mode, stream=stream, color=color, title=title,
                      header=header) as writer:
        for r in rows:
            writer.write(r)


def write_summary(sections: dict[str, list[dict]], mode: str, *, color: bool,
                  header: bool = True) -> None:
    """Three tables (kernel counters, states, top processes); JSON rows carry a type."""
    for key, columns, title in (("sockstat", SOCKSTAT_COLUMNS, "Kernel socket counters"),
                                ("states", STATE_COLUMNS, "Sockets by protocol and state"),
                                ("processes", TOP_COLUMNS, "Top processes by sockets")):
        write_rows(sections[key], columns, mode, color=color, title=title, header=header)
