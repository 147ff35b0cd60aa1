"""AF_PACKET receive through a TPACKET_V3 memory-mapped ring: the kernel fills
blocks of frames, we walk a whole block and hand it back, no recv per packet."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pysock.errors import ExitStatus, PysockError
from pysock.probes.capture import filter as bpf

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_RX_RING, PACKET_STATISTICS = 1, 5, 6
PACKET_VERSION, TPACKET_V3 = 10, 2
PACKET_MR_PROMISC = 1
ETH_P_ALL = 0x0003
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
BLOCK_HDR = struct.Struct("=8xIII")  # version, priv offset | status, num_pkts, first
FRAME_HDR = struct.Struct("=IIIIIIHH")  # next, sec, nsec, snaplen, len, status, mac, net
SLL = struct.Struct("=HHiHBB")  # family, protocol, ifindex, hatype, pkttype, halen
SLL_AT = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
NO_PRIVILEGE = ("capturing needs root or CAP_NET_RAW: run as root (sudo pysock capture ...), "
                "or 'setcap cap_net_raw,cap_net_admin+eip' on the python binary")


@dataclass(frozen=True)
class RingSpec:
    block_size: int = 1 << 20
    blocks: int = 4  # 4 MiB: what tcpdump asks for by default (-B 4096)
    retire_ms: int = 60  # hand over a part-filled block after this long


@dataclass(slots=True)
class Frame:
    ts_ns: int
    ifindex: int
    pkttype: int
    data: bytes
    wirelen: int


def _bind_every_interface(sock: socket.socket) -> None:
    """bind to ifindex 0 (every interface), which Python's AF_PACKET address (a
    name) cannot spell: there is no device called 'any'."""
    address = struct.pack("=HHi12x", socket.AF_PACKET, socket.htons(ETH_P_ALL), 0)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.bind(sock.fileno(), ctypes.c_char_p(address), len(address)) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


class Ring:
    """One packet socket with its ring; attach the filter before bind (libpcap's
    order), so nothing unfiltered is ever queued."""

    def __init__(self, *, ifindex: int, cooked: bool, program: list, promisc: bool,
                 spec: RingSpec = RingSpec()):
        kind = socket.SOCK_DGRAM if cooked else socket.SOCK_RAW
        try:
            self.sock = socket.socket(socket.AF_PACKET, kind, 0)
        except PermissionError:
            raise PysockError(NO_PRIVILEGE, advice="capture_saved") from None
        try:
            self._setup(ifindex, program, promisc, spec)
        except OSError as exc:
            self.sock.close()
            raise PysockError(f"cannot start the capture: {os.strerror(exc.errno or 0)}",
                              ExitStatus.FAILURE) from None
        self.received = self.dropped = 0

    def _setup(self, ifindex, program, promisc, spec) -> None:
        sock = self.sock
        bpf.attach(sock, program)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        req = struct.pack("=7I", spec.block_size, spec.blocks, 1 << 11,
                          spec.block_size * spec.blocks >> 11, spec.retire_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.block_size, self.blocks = spec.block_size, spec.blocks
        self.map = mmap.mmap(sock.fileno(), spec.block_size * spec.blocks,
                             mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        if ifindex == 0:
            _bind_every_interface(sock)
        else:
            sock.bind((socket.if_indextoname(ifindex), ETH_P_ALL))
        if promisc and ifindex:
            mreq = struct.pack("=iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        self.next_block = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def blocks_ready(self, timeout: float) -> Iterator[list[Frame]]:
        """Every block the kernel has handed over, as a list of frames; waits up
        to timeout for the first."""
        if not self._wait(timeout):
            return
        while self._ready():
            yield self._take()

    def raw_blocks(self, timeout: float) -> Iterator[tuple[mmap.mmap, int, int]]:
        """Every block handed over, as (the ring, the block's offset, frames in it),
        given back to the kernel when the consumer asks for the next."""
        if not self._wait(timeout):
            return
        while self._ready():
            base = self.next_block * self.block_size
            yield self.map, base, BLOCK_HDR.unpack_from(self.map, base)[1]
            self._release(base)

    def _wait(self, timeout: float) -> bool:
        """Wait up to timeout for the kernel to hand over a block, unless one is
        there; False when a signal cut the wait short."""
        if not self._ready():
            try:
                select.select([self.sock], [], [], max(timeout, 0))
            except InterruptedError:
                return False
        return True

    def _release(self, base: int) -> None:
        struct.pack_into("=I", self.map, base + 8, TP_STATUS_KERNEL)
        self.next_block = (self.next_block + 1) % self.blocks

    def _ready(self) -> bool:
        status = BLOCK_HDR.unpack_from(self.map, self.next_block * self.block_size)[0]
        return bool(status & TP_STATUS_USER)

    def _take(self) -> list[Frame]:
        base = self.next_block * self.block_size
        view = self.map
        _, count, offset = BLOCK_HDR.unpack_from(view, base)
        frames = []
        at = base + offset
        unpack, sll = FRAME_HDR.unpack_from, SLL.unpack_from
        for _ in range(count):
            nxt, sec, nsec, snaplen, wirelen, _, mac, _ = unpack(view, at)
            _, _, ifindex, _, pkttype, _ = sll(view, at + SLL_AT)
            frames.append(Frame(sec * 1_000_000_000 + nsec, ifindex, pkttype,
                                view[at + mac:at + mac + snaplen], wirelen))
            at += nxt
        self._release(base)
        return frames

    def statistics(self) -> tuple[int, int]:
        """(received by filter, dropped by kernel) so far (the kernel resets on read)."""
        try:
            packets, drops, _ = struct.unpack(
                "=III", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            packets = drops = 0
        self.received += packets
        self.dropped += drops
        return self.received, self.dropped

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.statistics()
        try:
            self.map.close()
        except (AttributeError, BufferError):
            pass
        self.sock.close()
