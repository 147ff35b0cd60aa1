"""capture's output: tcpdump-like lines with the owning process, -A/-X payloads,
-v IP fields, JSON records, and tcpdump's closing three lines on stderr."""

from __future__ import annotations

import sys
import time

from pysock.render.hexdump import hexdump_lines
from pysock.render.records import _json

TIME_FORMATS = ("time", "epoch", "date", "delta", "relative", "none")
_PRINTABLE = bytes(b if 32 <= b < 127 or b in (10,) else 46 for b in range(256))


class Clock:
    """tcpdump's -t habits: time of day, epoch (-tt), delta (-ttt), date (-tttt),
    since the first packet (-ttttt), or none (-t)."""

    def __init__(self, style: str):
        self.style = style
        self.first = self.previous = None
        self.second, self.stamp = None, ""  # the last second formatted, and its text

    def __call__(self, ts_ns: int) -> str:
        if self.first is None:
            self.first = self.previous = ts_ns
        style, secs, us = self.style, ts_ns // 1_000_000_000, ts_ns // 1000 % 1_000_000
        if style in ("time", "date"):
            if secs != self.second:
                shape = "%H:%M:%S" if style == "time" else "%Y-%m-%d %H:%M:%S"
                self.second, self.stamp = secs, time.strftime(shape, time.localtime(secs))
            return f"{self.stamp}.{us:06d} "
        if style == "epoch":
            return f"{secs}.{us:06d} "
        if style == "none":
            return ""
        base = self.previous if style == "delta" else self.first
        self.previous = ts_ns
        gap = (ts_ns - base) // 1000
        return f"{gap // 3_600_000_000:02d}:{gap // 60_000_000 % 60:02d}:" \
            f"{gap // 1_000_000 % 60:02d}.{gap % 1_000_000:06d} "


class PortNames:
    def __init__(self, numeric: bool):
        self.numeric = numeric
        self.names: dict[tuple[str, int], str] = {}
        if not numeric:
            from pysock.net.names import services
            for proto in ("tcp", "udp"):
                for name, port in services(proto).items():
                    self.names.setdefault((proto, port), name)

    def __call__(self, proto: str, port: int) -> str:
        return str(port) if self.numeric else self.names.get((proto, port), str(port))


def body(packet, ports: PortNames) -> str:
    head = packet.head
    if head is None:
        return _scapy_summary(packet)
    ip = "IP" if head.family == 4 else "IP6"
    if head.sport is None:
        return f"{ip} {head.src} > {head.dst}: {head.proto.upper()}, length {head.payload}"
    src = f"{head.src}.{ports(head.proto, head.sport)}"
    dst = f"{head.dst}.{ports(head.proto, head.dport)}"
    if head.proto == "udp":
        return f"{ip} {src} > {dst}: UDP, length {head.payload}"
    seq = f"{head.seq}:{(head.seq + head.payload) & 0xFFFFFFFF}" if head.payload else str(head.seq)
    text = f"{ip} {src} > {dst}: Flags [{head.flags_text}], seq {seq}"
    if head.flags & 0x10:
        text += f", ack {head.ack}"
    return text + f", win {head.win}, length {head.payload}"


def _dissect(packet):
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, Ether
    if packet.linktype == 1:
        return Ether(bytes(packet.data))
    if packet.linktype == 113:
        return CookedLinux(bytes(packet.data))
    data = bytes(packet.data)
    return (IP if data[:1] and data[0] >> 4 == 4 else IPv6)(data)


def _scapy_summary(packet) -> str:
    try:
        return _dissect(packet).summary()
    except Exception as exc:  # scapy on a malformed frame: say so, keep capturing
        return f"[malformed: {type(exc).__name__}] length {packet.wirelen}"


def verbose_fields(packet) -> str:
    """-v: the IP header fields tcpdump -v shows, from scapy's dissection."""
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    frame = _dissect(packet)
    if IP in frame:
        ip = frame[IP]
        return (f"(tos 0x{ip.tos:x}, ttl {ip.ttl}, id {ip.id}, offset {ip.frag}, "
                f"flags [{ip.flags or 'none'}], proto {ip.proto}, length {ip.len}) ")
    if IPv6 in frame:
        ip = frame[IPv6]
        return f"(flowlabel 0x{ip.fl:05x}, hlim {ip.hlim}, next-header {ip.nh}, " \
               f"payload length {ip.plen}) "
    return ""


class LinesView:
    def __init__(self, stream=None, *, numeric: bool = False, time_format: str = "time",
                 ascii: bool = False, hexdump: bool = False, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.clock = Clock(time_format)
        self.ports = PortNames(numeric)
        self.ascii, self.hexdump, self.verbose = ascii, hexdump, verbose

    def packet(self, packet) -> None:
        where = {True: "Out", False: "In", None: "-"}[packet.outbound]
        who = packet.process_label
        extra = verbose_fields(packet) if self.verbose else ""
        text = (f"{self.clock(packet.ts_ns)}{packet.iface} {where} "
                f"{who + ' ' if who else ''}{extra}{body(packet, self.ports)}\n")
        if self.hexdump or self.ascii:
            text += self._payload(packet)
        self.stream.write(text)

    def _payload(self, packet) -> str:
        from pysock.probes.capture.headers import network_offset
        data = bytes(packet.data[network_offset(packet.data, packet.linktype)[1]:])
        if self.hexdump:
            return "".join(line + "\n" for line in hexdump_lines(data))
        return data.translate(_PRINTABLE).decode() + "\n"

    def flush(self) -> None:
        self.stream.flush()

    def summary(self, stats) -> None:
        pass


def record(packet) -> dict:
    head = packet.head
    owner = packet.owner or packet.peer_owner
    out = {"type": "packet", "time": packet.ts_ns / 1e9, "iface": packet.iface,
           "direction": {True: "out", False: "in", None: None}[packet.outbound],
           "proto": head.proto if head else None,
           "src_addr": head.src if head else None, "src_port": head.sport if head else None,
           "dst_addr": head.dst if head else None, "dst_port": head.dport if head else None,
           "flags": head.flags_text if head else None, "seq": head.seq if head else None,
           "ack": head.ack if head else None, "win": head.win if head else None,
           "len": packet.wirelen, "payload_len": head.payload if head else None,
           "pid": owner[0] if owner else None, "process": owner[1] if owner else None}
    if packet.owner and packet.peer_owner:
        out["peer_pid"], out["peer_process"] = packet.peer_owner
    if packet.comment and not owner:
        out["comment"] = packet.comment
    return out


class JsonView:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def packet(self, packet) -> None:
        self.stream.write(_json().encode(record(packet)) + "\n")

    def flush(self) -> None:
        self.stream.flush()

    def summary(self, stats) -> None:
        if stats is not None:
            captured, received, dropped = stats
            self.stream.write(_json().encode({"type": "summary", "captured": captured,
                                            "received": received, "dropped": dropped}) + "\n")
            self.stream.flush()


def listening_line(ifaces, linktype_name: str, snaplen: int, stream=None) -> None:
    """tcpdump's first line on stderr: the capture is on from here."""
    stream = stream or sys.stderr
    stream.write(f"listening on {','.join(ifaces) or 'any'}, link-type {linktype_name}, "
                 f"snapshot length {snaplen} bytes\n")
    stream.flush()


def closing_lines(stats, stream=None) -> None:
    """tcpdump's three lines, on stderr."""
    stream = stream or sys.stderr
    captured, received, dropped = stats
    stream.write(f"{captured} packet{'s' if captured != 1 else ''} captured\n"
                 f"{received} packet{'s' if received != 1 else ''} received by filter\n"
                 f"{dropped} packet{'s' if dropped != 1 else ''} dropped by kernel\n")
    stream.flush()
