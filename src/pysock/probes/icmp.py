"""ICMP and ICMPv6 echo packets, built and read with struct (the hot path), and
the words iputils uses for ICMP errors."""

from __future__ import annotations

import struct
from socket import AF_INET, AF_INET6

ECHO_REQUEST = {AF_INET: 8, AF_INET6: 128}
ECHO_REPLY = {AF_INET: 0, AF_INET6: 129}
HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
STAMP = struct.Struct("=qq")  # a struct timeval, as iputils puts it in the payload
IPV4_MIN_HEADER = 20


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data. The ones'-complement sum of 16-bit
    words is the number the bytes spell, modulo 0xFFFF (2**16 = 1 there): one C-level
    operation instead of a loop over words."""
    if len(data) % 2:
        data += b"\0"
    number = int.from_bytes(data, "big")
    total = number % 0xFFFF
    if total == 0 and number:
        total = 0xFFFF  # a ones'-complement sum is never zero unless every word is
    return ~total & 0xFFFF


def fill_payload(size: int, pattern: bytes | None) -> bytes:
    """iputils' default data (byte i is i) or the -p pattern repeated."""
    if pattern:
        return (pattern * (size // len(pattern) + 1))[:size]
    return bytes(i & 0xFF for i in range(size))


def echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An echo request; for ICMPv6 the kernel fills in the checksum."""
    kind = ECHO_REQUEST[family]
    head = HEADER.pack(kind, 0, 0, ident, seq & 0xFFFF)
    if family == AF_INET6:
        return head + payload
    return HEADER.pack(kind, 0, checksum(head + payload), ident, seq & 0xFFFF) + payload


def stamped(payload: bytes, sent_ns: int) -> bytes:
    """The payload with the send time in its first 16 bytes, as iputils sends it."""
    if len(payload) < STAMP.size:
        return payload
    sec, nsec = divmod(sent_ns, 1_000_000_000)
    return STAMP.pack(sec, nsec // 1000) + payload[STAMP.size:]


class EchoTemplate:
    """Echo requests from one socket: everything but the sequence number and the
    time stamp is fixed, and so is its share of the checksum. The Internet checksum
    of bytes is the number they spell modulo 0xFFFF, and the sequence number and
    the stamp start at even offsets, so each probe adds just those two numbers to
    the fixed share (RFC 1624's incremental update) instead of summing the packet."""

    def __init__(self, family: int, ident: int, payload: bytes):
        self.kind, self.ident = ECHO_REQUEST[family], ident
        self.stamped = len(payload) >= STAMP.size
        self.tail = payload[STAMP.size:] if self.stamped else payload
        self.fixed = None  # ICMPv6: the kernel fills in the checksum
        if family == AF_INET:
            fixed = HEADER.pack(self.kind, 0, 0, ident, 0) + \
                (bytes(STAMP.size) if self.stamped else b"") + self.tail
            self.fixed = int.from_bytes(fixed + b"\0" * (len(fixed) % 2), "big") % 0xFFFF

    def packet(self, seq: int, sent_ns: int) -> bytes:
        """The request with sequence number seq, stamped with sent_ns as iputils does."""
        seq &= 0xFFFF
        stamp = b""
        if self.stamped:
            sec, nsec = divmod(sent_ns, 1_000_000_000)
            stamp = STAMP.pack(sec, nsec // 1000)
        check = 0
        if self.fixed is not None:
            total = (self.fixed + seq + int.from_bytes(stamp, "big")) % 0xFFFF or 0xFFFF
            check = ~total & 0xFFFF
        return HEADER.pack(self.kind, 0, check, self.ident, seq) + stamp + self.tail


class Echo:
    """An echo reply as read from the socket. (Plain classes on ping's path, not
    dataclasses: importing dataclasses, with inspect, ast and dis, costs more of
    ping's start-up than its whole quick path.)"""

    __slots__ = ("ident", "seq", "size", "ttl", "data", "checksum_ok")

    def __init__(self, ident: int, seq: int, size: int, ttl: int | None, data: bytes,
                 checksum_ok: bool):
        self.ident, self.seq = ident, seq
        self.size = size  # ICMP bytes (header + data), what iputils prints as "N bytes"
        self.ttl, self.data, self.checksum_ok = ttl, data, checksum_ok


def split_ipv4(packet: bytes) -> tuple[int, bytes] | None:
    """(ttl, the IP payload) of a raw IPv4 packet, or None when it is too short."""
    if len(packet) < IPV4_MIN_HEADER:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if ihl < IPV4_MIN_HEADER or len(packet) < ihl:
        return None
    return packet[8], packet[ihl:]


def parse_echo_reply(family: int, icmp: bytes, ttl: int | None, verify: bool) -> Echo | None:
    """An echo reply, or None for anything else. verify: check the checksum (raw
    IPv4 only; the kernel checks ICMPv6 and datagram-socket replies itself)."""
    if len(icmp) < HEADER.size:
        return None
    kind, code, _, ident, seq = HEADER.unpack_from(icmp)
    if kind != ECHO_REPLY[family]:
        return None
    ok = not verify or checksum(icmp) == 0
    return Echo(ident, seq, len(icmp), ttl, icmp[HEADER.size:], ok)


def first_wrong_byte(data: bytes, expected: bytes, skip: int) -> int | None:
    """The index of the first data byte (from skip on) that differs from what we sent."""
    if data[skip:len(expected)] == expected[skip:len(data)]:
        return None
    for i in range(skip, min(len(data), len(expected))):
        if data[i] != expected[i]:
            return i
    return None


# ---- ICMP errors in iputils' words ---------------------------------------------

_UNREACH4 = {
    0: "Destination Net Unreachable", 1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable", 3: "Destination Port Unreachable",
    5: "Source Route Failed", 6: "Destination Net Unknown", 7: "Destination Host Unknown",
    8: "Source Host Isolated", 9: "Destination Net Prohibited",
    10: "Destination Host Prohibited", 11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service", 13: "Packet filtered",
    14: "Precedence Violation", 15: "Precedence Cutoff",
}
_UNREACH6 = {
    0: "No route", 1: "Administratively prohibited", 2: "Beyond scope of source address",
    3: "Address unreachable", 4: "Port unreachable",
    5: "Source address failed ingress/egress policy", 6: "Reject route to destination",
}


def describe(family: int, kind: int, code: int, info: int = 0) -> str:
    """What iputils ping prints after 'From ADDR icmp_seq=N ' for an ICMP error."""
    return _describe6(kind, code, info) if family == AF_INET6 else _describe4(kind, code, info)


def _describe4(kind: int, code: int, info: int) -> str:
    if kind == 3:
        if code == 4:
            return f"Frag needed and DF set (mtu = {info})"
        return _UNREACH4.get(code, f"Dest Unreachable, Bad Code: {code}")
    if kind == 11:
        return {0: "Time to live exceeded", 1: "Frag reassembly time exceeded"}.get(
            code, f"Time exceeded, Bad Code: {code}")
    if kind == 4:
        return "Source Quench"
    if kind == 5:
        return "Redirect"
    if kind == 12:
        return f"Parameter problem: pointer = {info}"
    return f"Bad ICMP type: {kind}"


def _describe6(kind: int, code: int, info: int) -> str:
    if kind == 1:
        return "Destination unreachable: " + _UNREACH6.get(code, f"Unknown code {code}")
    if kind == 2:
        return f"Packet too big: mtu={info}"
    if kind == 3:
        return "Time exceeded: " + {0: "Hop limit", 1: "Defragmentation failure"}.get(
            code, f"code {code}")
    if kind == 4:
        what = {0: "Wrong header field ", 1: "Unknown header ", 2: "Unknown option "}.get(
            code, f"code {code} ")
        return f"Parameter problem: {what}at {info}"
    return f"Echo reply type {kind}"


def short_code(family: int, kind: int, code: int) -> str | None:
    """traceroute's annotation for an error from the hop: !H !N !P !X ..., or None
    for time exceeded (the normal answer) and port unreachable at the destination."""
    if family == AF_INET and kind == 3:
        return {0: "!N", 1: "!H", 2: "!P", 3: None, 4: "!F", 5: "!S", 9: "!X", 10: "!X",
                13: "!X", 14: "!V", 15: "!C"}.get(code, f"!<{code}>")
    if family == AF_INET6 and kind == 1:
        return {0: "!N", 1: "!X", 3: "!H", 4: None}.get(code, f"!<{code}>")
    return None


def is_time_exceeded(family: int, kind: int) -> bool:
    return kind == (3 if family == AF_INET6 else 11)
