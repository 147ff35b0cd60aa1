"""Bytes on the wire for the SYN scan: one TCP SYN template per target, patched per
port (destination port and checksum), and the parsers that match answers to it.

The template is packed with struct rather than built by scapy: importing scapy
costs about 0.4 s, longer than the rest of a loopback SYN scan of all ports. The
tests check these bytes against scapy's."""

from __future__ import annotations

import socket
import struct

TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10
MSS_OPTION = b"\x02\x04\x05\xb4"  # MSS 1460, as a real stack would offer
WINDOW = 1024

ICMP_UNREACH = 3
ICMP6_UNREACH = 1
# (family, ICMP code) -> nmap's --reason word
ICMP_REASONS = {
    (socket.AF_INET, 0): "net-unreach", (socket.AF_INET, 1): "host-unreach",
    (socket.AF_INET, 2): "proto-unreach", (socket.AF_INET, 3): "port-unreach",
    (socket.AF_INET, 9): "net-prohibited", (socket.AF_INET, 10): "host-prohibited",
    (socket.AF_INET, 13): "admin-prohibited",
    (socket.AF_INET6, 0): "no-route", (socket.AF_INET6, 1): "admin-prohibited",
    (socket.AF_INET6, 3): "addr-unreach", (socket.AF_INET6, 4): "port-unreach",
}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(family: int, src: str, dst: str, length: int) -> bytes:
    s, d = socket.inet_pton(family, src), socket.inet_pton(family, dst)
    if family == socket.AF_INET:
        return s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, length)
    return s + d + struct.pack("!IxxxB", length, socket.IPPROTO_TCP)


class SynTemplate:
    """A SYN from src:sport to dst with the destination port left at 0; for_port()
    fills it in and updates the checksum incrementally (RFC 1624)."""

    def __init__(self, family: int, src: str, dst: str, sport: int, seq: int):
        self.seq = seq
        header = struct.pack("!HHIIBBHHH", sport, 0, seq, 0, (6 << 4), TCP_SYN, WINDOW, 0, 0)
        segment = header + MSS_OPTION
        self.base_sum = checksum(pseudo_header(family, src, dst, len(segment)) + segment)
        self.head = segment[:2]
        self.middle = segment[4:16]
        self.tail = segment[18:]
        self.layout = struct.Struct(f"!2sH12sH{len(self.tail)}s")  # head, dport, middle, csum, tail

    def for_port(self, port: int) -> bytes:
        total = (~self.base_sum & 0xFFFF) + port
        total = (total & 0xFFFF) + (total >> 16)
        return self.layout.pack(self.head, port, self.middle, ~total & 0xFFFF, self.tail)


TCP_HEADER = struct.Struct("!HHIIBB")  # sport dport seq ack data-offset flags
SO_ATTACH_FILTER = 26


def only_to_port(sock: socket.socket, family: int, port: int) -> None:
    """A classic BPF filter on a raw TCP socket: pass only segments to `port`.

    A SYN scan's raw socket otherwise also wakes for every other TCP segment this
    host receives, on loopback our own SYNs included. IPv4 raw sockets see the IP
    header first (its length is in the low nibble of byte 0); IPv6 ones start at TCP."""
    import ctypes

    if family == socket.AF_INET:
        program = [(0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): X = IP header length
                   (0x48, 0, 0, 2)]  # ldh [x+2]: the destination port
    else:
        program = [(0x28, 0, 0, 2)]  # ldh [2]
    program += [(0x15, 0, 1, port),  # jeq #port, pass, drop
                (0x06, 0, 0, 0xFFFF),  # ret: pass (up to 64 KiB)
                (0x06, 0, 0, 0)]  # ret: drop
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HL", len(program), ctypes.addressof(buf)))


def icmp_error(packet: bytes, family: int) -> tuple[str, int, int, int, int] | None:
    """An ICMP destination-unreachable that quotes a TCP or UDP packet we sent:
    (quoted destination address, quoted sport, quoted dport, quoted seq, code).

    IPv4 raw sockets deliver the IP header, IPv6 ones only the ICMPv6 message."""
    if family == socket.AF_INET:
        if len(packet) < 20:
            return None
        icmp = (packet[0] & 0x0F) * 4
        if len(packet) < icmp + 8 + 20 or packet[icmp] != ICMP_UNREACH:
            return None
        inner = icmp + 8
        quoted_ihl = (packet[inner] & 0x0F) * 4
        dst = socket.inet_ntop(socket.AF_INET, packet[inner + 16:inner + 20])
        transport = inner + quoted_ihl
    else:
        if len(packet) < 8 + 40 or packet[0] != ICMP6_UNREACH:
            return None
        icmp, inner = 0, 8
        dst = socket.inet_ntop(socket.AF_INET6, packet[inner + 24:inner + 40])
        transport = inner + 40
    if len(packet) < transport + 8:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", packet, transport)
    return dst, sport, dport, seq, packet[icmp + 1]
