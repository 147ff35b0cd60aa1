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
        out.update(zip(EXTENDED_KEYS, extended_cells(r)))
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


def tcp_info_text(shown: tuple) -> str:
    """The rest of tcp_info in ss -i's words: mss:1448 rto:204 ato:40 wscale:7,7 ...
    shown: the record's tcp_shown() (inventory.tcpinfo.SHOWN)."""
    return " ".join(filter(None, (setting_words(shown), flow_words(shown))))


def setting_words(shown: tuple) -> str:
    """What tcp_info says about the path and the connection's settings: mss ... wscale
    (the same for many sockets, so FastPlain keeps them)."""
    mss, rcv_mss, advmss, pmtu, rto, ato, snd_wscale, rcv_wscale = shown[8:16]
    words = _set_words(("mss:", mss, ""), ("rcvmss:", rcv_mss, ""), ("advmss:", advmss, ""),
                       ("pmtu:", pmtu, ""), ("rto:", rto, "g"), ("ato:", ato, "g"))
    if snd_wscale is not None:
        words.append(f"wscale:{snd_wscale},{rcv_wscale}")
    return " ".join(words)


def flow_words(shown: tuple) -> str:
    """What tcp_info says about the data flow: rates, busy and limited times, notsent."""
    delivery = shown[7]
    pacing, busy, rwnd_limited, sndbuf_limited, notsent = shown[16:]
    words = _set_words(("pacing_rate ", pacing, "", "bps"), ("delivery_rate ", delivery, "", "bps"),
                       ("busy:", busy, "g", "ms"))
    if busy:
        words += _set_words(*((label, value, "g", f"ms({100 * value / busy:.1f}%)")
                              for label, value in (("rwnd_limited:", rwnd_limited),
                                                   ("sndbuf_limited:", sndbuf_limited))
                              if value))
    words += _set_words(("notsent:", notsent, ""))
    return " ".join(words)


def _set_words(*fields: tuple) -> list[str]:
    """(label, value, format[, unit]) -> 'label<value><unit>' for each value that is set
    (not 0 or None), in ss -i's words."""
    return [f"{label}{value:{spec}}{unit[0] if unit else ''}"
            for label, value, spec, *unit in fields if value]


def _skmem_text(m: tuple) -> str:
    """The skmem array (rmem_alloc, rcvbuf, wmem_alloc, sndbuf, ..., drops) as r,rb,t,tb,d."""
    text = f"r{m[0]},rb{m[1]},t{m[2]},tb{m[3]}" if len(m) >= 4 else "-"
    return text + f",d{m[8]}" if len(m) > 8 and m[8] else text


def extended_cells(r) -> list[str]:
    """The text of EXTENDED_COLUMNS for one socket, in their order."""
    timer = f"{r.timer},{_ms(r.timer_ms)}" if r.timer else "-"
    skmem = _skmem_text(r.skmem_raw) if r.skmem_raw else "-"
    if not r.tcp_raw:
        return [str(r.inode), "-", "-", "-", "-", "-", "-", timer, skmem, "-"]
    shown = r.tcp_shown()
    rtt, rttvar, cwnd, retransmits, retrans, acked, received, delivery = shown[:8]
    return [str(r.inode), f"{rtt:.3f}/{rttvar:.3f}", cell(cwnd), f"{retransmits}/{retrans}",
            f"{acked or 0}/{received or 0}", cell(_rate(delivery)), cell(r.congestion),
            timer, skmem, tcp_info_text(shown)]


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


EXTENDED_KEYS = [c.key for c in EXTENDED_COLUMNS]


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
    cached.

    An internet socket's line is its kernel part (everything but the owner) and its
    owner; prepare() makes the kernel parts while the /proc owner pass still runs
    (inventory.sources.collect's while_waiting), write() adds the owners."""

    def __init__(self, names: Names, extended: bool = False):
        self.names = names
        self.extended = extended
        self.columns = socket_columns(extended)
        self.ends: dict[tuple, str] = {}
        self.hosts: dict[str, str] = {}  # address -> "host:" as endpoint() writes it
        self.owners: dict[tuple, str] = {}
        self.prepared: dict[int, tuple] = {}  # id(record) -> (record, head, tail)
        self.skmems: dict[tuple, str] = {}
        self.fronts: dict[tuple, str] = {}  # (proto, family, state) -> "tcp\tLISTEN\t"
        self.settings: dict[tuple, str] = {}  # setting_words by their values

    def end(self, addr, port, proto: str) -> str:
        """endpoint(), kept: whole, and by host (most ports come once, most hosts often)."""
        key = (addr, port, proto)
        text = self.ends.get(key)
        if text is None:
            if addr is None or proto == "raw":
                text = endpoint(addr, port, proto, self.names)
            else:
                host = self.hosts.get(addr)
                if host is None:
                    host = self.hosts[addr] = endpoint(addr, None, proto, self.names)[:-1]
                text = host + self.names.port(port, proto)
            self.ends[key] = text
        return text

    def prepare(self, records: Iterable) -> None:
        prepared = self.prepared
        for r in records:
            if r.proto in _INET:
                prepared[id(r)] = (r, self.head(r), self.tail(r))

    def head(self, r) -> str:
        """Proto to Peer, and the tab before the owner."""
        key = (r.proto, r.family, r.state)
        front = self.fronts.get(key)
        if front is None:
            front = self.fronts[key] = f"{r.proto_text}\t{r.state_text}\t"
        recv_q = "-" if r.recv_q is None else str(r.recv_q)
        if r.backlog_full:
            recv_q += "!"
        return (f"{front}{recv_q}\t{'-' if r.send_q is None else r.send_q}\t"
                f"{self.end(r.local_addr, r.local_port, r.proto)}\t"
                f"{self.end(r.peer_addr, r.peer_port, r.proto)}\t")

    def tail(self, r) -> str:
        """The extended columns (with their leading tab) and the newline: the text of
        extended_cells(r), in one format and with what repeats kept."""
        if not self.extended:
            return "\n"
        m = r.skmem_raw
        skmem = "-" if not m else self.skmems.get(m) or self.skmems.setdefault(m, _skmem_text(m))
        timer = f"{r.timer},{_ms(r.timer_ms)}" if r.timer else "-"
        if not r.tcp_raw:
            return f"\t{r.inode}\t-\t-\t-\t-\t-\t-\t{timer}\t{skmem}\t-\n"
        shown = r.tcp_shown()
        key = shown[8:16]
        settings = self.settings.get(key)
        if settings is None:
            settings = self.settings[key] = setting_words(shown)
        flow = flow_words(shown)
        rtt, rttvar, cwnd, retransmits, retrans, acked, received, delivery = shown[:8]
        return _EXTENDED_TAIL % (
            r.inode, rtt, rttvar, "-" if cwnd is None else cwnd, retransmits, retrans,
            acked or 0, received or 0, _rate(delivery) or "-", cell(r.congestion), timer, skmem,
            f"{settings} {flow}" if settings and flow else settings or flow)

    def owner(self, r) -> str:
        key = (tuple(r.pids), r.process, r.user)
        text = self.owners.get(key)
        if text is None:
            owner = _owner(r.pid, r.process) or "-"
            if len(r.pids) > 1:
                owner += f" +{len(r.pids) - 1}"
            text = self.owners[key] = f"{owner}\t{r.user or '-'}"
        return text

    def line(self, r) -> str:
        if r.proto not in _INET:
            cells = row(r, self.names, self.extended)
            return "\t".join([cell(cells[c.key]) for c in self.columns]) + "\n"
        ready = self.prepared.get(id(r))
        if ready is not None and ready[0] is r:
            return ready[1] + self.owner(r) + ready[2]
        return self.head(r) + self.owner(r) + self.tail(r)

    def write(self, records: Iterable, stream, header: bool) -> None:
        # (the extended list, drawn by RecordWriter before, has no header when empty)
        lines = ["\t".join(c.title for c in self.columns) + "\n"] if header else []
        line = self.line
        empty = True
        for r in records:
            empty = False
            lines.append(line(r))
            if len(lines) >= 4096:
                stream.write("".join(lines))
                lines = []
        if not (empty and self.extended):
            stream.write("".join(lines))
        stream.flush()
        self.prepared.clear()


_INET = ("tcp", "udp", "raw")
# inode, rtt/rttvar, cwnd, retrans, acked/received, rate, cong, timer, skmem, info
_EXTENDED_TAIL = "\t%d\t%.3f/%.3f\t%s\t%s/%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n"


def _write_plain(records: Iterable, stream, names: Names, header: bool,
                 extended: bool = False) -> None:
    FastPlain(names, extended).write(records, stream, header)


def write_sockets(records: Iterable, mode: str, *, color: bool, extended: bool,
                  names: Names, stream=None, title: str | None = None,
                  extra: Callable[[object], dict] | None = None,
                  columns: list[Column] | None = None, header: bool = True) -> None:
    """Every socket in one of the three renderings."""
    if mode == "json" and extra is None:
        _write_json(records, stream if stream is not None else sys.stdout, extended, names)
        return
    if mode == "plain" and extra is None and columns is None:
        _write_plain(records, stream if stream is not None else sys.stdout, names, header,
                     extended)
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
