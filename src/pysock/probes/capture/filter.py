"""pcap-filter expressions compiled to classic BPF by libpcap (through scapy's
bindings), guards the kernel runs before them, and the same programs applied to
packets read from files."""

from __future__ import annotations

import ctypes
import socket
import struct

from pysock.errors import ExitStatus, PysockError

DLT_EN10MB, DLT_RAW, DLT_LINUX_SLL = 1, 101, 113
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
# classic BPF opcodes and the kernel's ancillary loads (linux/filter.h)
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE, SKF_AD_IFINDEX, SKF_AD_HATYPE = 4, 8, 28
NETMASK_UNKNOWN = 0xFFFFFFFF

Insn = tuple[int, int, int, int]  # code, jt, jf, k


def _ancillary(what: int) -> Insn:
    return (LD_W_ABS, 0, 0, (SKF_AD_OFF + what) & 0xFFFFFFFF)


def _compile_raw(expression: str, linktype: int, snaplen: int):
    from scapy.libs.structures import bpf_program
    from scapy.libs.winpcapy import pcap_close, pcap_compile, pcap_geterr, pcap_open_dead
    program = bpf_program()
    handle = pcap_open_dead(linktype, snaplen)
    try:
        if pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                        NETMASK_UNKNOWN) == -1:
            reason = ctypes.string_at(pcap_geterr(handle)).decode(errors="replace")
            raise PysockError(f"bad filter '{expression}': {reason}", ExitStatus.USAGE)
    finally:
        pcap_close(handle)
    return program


def compile_filter(expression: str, linktype: int, snaplen: int) -> list[Insn]:
    """The BPF instructions libpcap makes of expression ('' matches everything);
    a match returns snaplen, so the kernel cuts frames to it."""
    from scapy.libs.winpcapy import pcap_freecode
    program = _compile_raw(expression, linktype, snaplen)
    insns = [(i.code, i.jt, i.jf, i.k & 0xFFFFFFFF)
             for i in program.bf_insns[:program.bf_len]]
    pcap_freecode(ctypes.byref(program))
    return insns


def guards(ifindexes: list[int], loopback: int | None, any_device: bool) -> list[Insn]:
    """What runs before the user's filter: only Ethernet-framed devices when
    capturing on several (one link type), only the chosen devices, and on loopback
    only the incoming copy (the kernel shows each loopback packet twice)."""
    out: list[Insn] = []
    if any_device:
        out += [_ancillary(SKF_AD_HATYPE), (JEQ_K, 2, 0, ARPHRD_ETHER),
                (JEQ_K, 1, 0, ARPHRD_LOOPBACK), (RET_K, 0, 0, 0)]
    if len(ifindexes) > 1:
        n = len(ifindexes)
        out.append(_ancillary(SKF_AD_IFINDEX))
        out += [(JEQ_K, n - k, 0, index) for k, index in enumerate(ifindexes)]
        out.append((RET_K, 0, 0, 0))
    if loopback is not None:
        out += [_ancillary(SKF_AD_PKTTYPE), (JEQ_K, 0, 3, PACKET_OUTGOING),
                _ancillary(SKF_AD_IFINDEX), (JEQ_K, 0, 1, loopback), (RET_K, 0, 0, 0)]
    return out


def attach(sock: socket.socket, insns: list[Insn]) -> None:
    code = b"".join(struct.pack("=HBBI", *insn) for insn in insns)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxQ", len(insns), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class OfflineFilter:
    """One expression applied to packets from a file, compiled once per link type."""

    def __init__(self, expression: str):
        self.expression = expression
        self.programs: dict[int, object] = {}

    def check(self, linktype: int) -> None:
        if linktype not in self.programs:
            self.programs[linktype] = _compile_raw(self.expression, linktype, 262144)

    def __call__(self, linktype: int, data: bytes, wirelen: int) -> bool:
        if not self.expression:
            return True
        from scapy.libs.winpcapy import pcap_pkthdr
        self.check(linktype)
        header = pcap_pkthdr()
        header.caplen, header.len = len(data), wirelen
        buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
        return bool(_offline_filter()(ctypes.byref(self.programs[linktype]),
                                      ctypes.byref(header), buffer))


def _offline_filter():
    """libpcap's pcap_offline_filter (scapy binds it on Windows only)."""
    from scapy.libs import winpcapy
    function = winpcapy._lib.pcap_offline_filter
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return function
