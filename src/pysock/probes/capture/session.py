"""One capture: the interfaces and filter become a ring and a kernel program;
frames come out as Packets with their headers and owners; or the same from a file."""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from pysock.errors import ExitStatus, PysockError
from pysock.probes.capture import filter as bpf
from pysock.probes.capture import headers
from pysock.probes.capture.owners import Attribution
from pysock.probes.capture.ring import Ring, RingSpec

PACKET_OUTGOING = 4
ETHERNET_TYPES = (bpf.ARPHRD_ETHER, bpf.ARPHRD_LOOPBACK)


@dataclass(frozen=True)
class CaptureSpec:
    ifaces: tuple[str, ...] = ()  # () or ("any",): every Ethernet-framed interface
    expression: str = ""
    snaplen: int = 262144
    promisc: bool = True
    count: int | None = None
    duration: float | None = None
    attribute: bool = True  # look up the process behind each flow
    buffer: RingSpec = RingSpec()


@dataclass(slots=True)
class Packet:
    ts_ns: int
    iface: str
    outbound: bool | None
    linktype: int
    data: bytes
    wirelen: int
    head: headers.Headers | None
    owner: tuple | None = None  # (pid, process) of the sending socket
    peer_owner: tuple | None = None  # of the receiving one, when it is local too
    comment: str | None = None  # from a file

    @property
    def process_label(self) -> str | None:
        ends = [f"{end[1]}[{end[0]}]" for end in (self.owner, self.peer_owner) if end]
        if self.comment and not ends:
            return self.comment
        return " > ".join(ends) if ends else None


def _hatype(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read())
    except (OSError, ValueError):
        raise PysockError(f"no interface named '{name}' (see 'ip link')", ExitStatus.USAGE) \
            from None


def _loopback_index() -> int | None:
    for index, name in socket.if_nameindex():
        if _hatype(name) == bpf.ARPHRD_LOOPBACK:
            return index
    return None


def plan(ifaces: tuple[str, ...]) -> tuple[int, bool, int, list[int], bool]:
    """(bind ifindex, cooked, linktype, ifindexes to guard, any) for -i values."""
    names = [n for n in ifaces if n != "any"]
    if not names or len(names) != len(ifaces):
        return 0, False, bpf.DLT_EN10MB, [], True
    types = {name: _hatype(name) for name in names}
    indexes = [socket.if_nametoindex(name) for name in names]
    if len(names) == 1:
        ethernet = types[names[0]] in ETHERNET_TYPES
        return indexes[0], not ethernet, bpf.DLT_EN10MB if ethernet else bpf.DLT_RAW, [], False
    odd = [name for name, kind in types.items() if kind not in ETHERNET_TYPES]
    if odd:
        raise PysockError(f"'{odd[0]}' has no Ethernet framing", ExitStatus.USAGE,
                          advice="capture_alone", iface=odd[0])
    return 0, False, bpf.DLT_EN10MB, indexes, False


class LiveCapture:
    def __init__(self, spec: CaptureSpec):
        self.spec = spec
        ifindex, cooked, self.linktype, guarded, any_device = plan(spec.ifaces)
        program = bpf.compile_filter(spec.expression, self.linktype, spec.snaplen)
        loopback = _loopback_index()
        self.loopback = socket.if_indextoname(loopback) if loopback is not None else None
        if loopback is not None and ifindex not in (0, loopback) and loopback not in guarded:
            loopback = None
        program = bpf.guards(guarded, loopback, any_device) + program
        self.ring = Ring(ifindex=ifindex, cooked=cooked, program=program,
                         promisc=spec.promisc, spec=spec.buffer)
        self.attribution = Attribution() if spec.attribute else None
        if self.attribution is not None:
            self.attribution.start()
        self.names: dict[int, str] = {}
        self.captured = 0

    def _name(self, ifindex: int) -> str:
        name = self.names.get(ifindex)
        if name is None:
            try:
                name = socket.if_indextoname(ifindex)
            except OSError:
                name = f"if{ifindex}"
            self.names[ifindex] = name
        return name

    def packets(self, wanted=None, until=None) -> Iterator[Packet]:
        """Packets as they come; wanted(packet) -> bool keeps some (--pid, --process,
        -- COMMAND), and only those count as captured. until() -> True ends the
        capture once the ring has handed over what it still holds (COMMAND ended)."""
        spec = self.spec
        deadline = time.monotonic() + spec.duration if spec.duration else None
        held = Held(self.attribution, self.loopback) if wanted is not None else None
        last_round = False
        while True:
            wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if wait < 0:
                return
            if not last_round and until is not None and until():
                last_round, wait = True, 2 * spec.buffer.retire_ms / 1000
            arrived = (p for block in self.ring.blocks_ready(wait) for p in self._packets(block))
            if held is not None:
                arrived = (p for p in held.release(arrived, final=last_round) if wanted(p))
            for packet in arrived:
                self.captured += 1
                yield packet
                if spec.count and self.captured >= spec.count:
                    return
            if last_round:
                return

    def write_blocks(self, writer) -> None:
        """-w without --pid/--process/--: whole ring blocks to writer.write(ring,
        offset, frames), no Packet made; the count and duration hold as in packets()."""
        spec = self.spec
        deadline = time.monotonic() + spec.duration if spec.duration else None
        while True:
            wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if wait < 0:
                return
            for ring, base, count in self.ring.raw_blocks(wait):
                if spec.count:
                    count = min(count, spec.count - self.captured)
                writer.write(ring, base, count)
                self.captured += count
                if spec.count and self.captured >= spec.count:
                    return

    def write_pcapng(self, stream) -> None:
        """The fast -w: frames from the ring into a pcapng stream, block by block."""
        from pysock.probes.capture.blockwrite import BlockWriter, Comments
        from pysock.probes.capture.pcapng import PcapngWriter
        writer = PcapngWriter(stream, self.spec.snaplen)
        comments = None if self.attribution is None else Comments(self.attribution,
                                                                   self.linktype)
        self.write_blocks(BlockWriter(
            writer, lambda ifindex: writer.interface(self._name(ifindex), self.linktype),
            comments))

    def _packets(self, block) -> Iterator[Packet]:
        linktype, attribution, name = self.linktype, self.attribution, self._name
        for frame in block:
            head = headers.parse(frame.data, linktype)
            packet = Packet(frame.ts_ns, name(frame.ifindex), frame.pkttype == PACKET_OUTGOING,
                            linktype, frame.data, frame.wirelen, head)
            if attribution is not None and head is not None and head.sport is not None:
                packet.owner, packet.peer_owner = attribution.owners(head)
            yield packet

    def statistics(self) -> tuple[int, int, int]:
        """(captured, received by filter, dropped by kernel)."""
        received, dropped = self.ring.statistics()
        return self.captured, received, dropped

    def close(self) -> None:
        if self.attribution is not None:
            self.attribution.stop()
        self.ring.close()


class Held:
    """Packets kept back, in order, while the owner of a local end is unknown: the
    first packets of a new connection (its SYN) arrive before any dump of the
    socket tables has seen it. The local ends: the sender of an outgoing packet,
    the receiver of an incoming one, both on loopback. A packet waits at most
    HOLD_S, then is judged as it is."""

    HOLD_S = 0.3

    def __init__(self, attribution, loopback: str | None):
        self.attribution = attribution
        self.loopback = loopback
        self.queue: deque[tuple[Packet, float]] = deque()

    def release(self, arrived, final: bool = False) -> Iterator[Packet]:
        for packet in arrived:
            self.queue.append((packet, time.monotonic() + self.HOLD_S))
            yield from self._ready(False)
        if final:
            self.attribution.settle()
        yield from self._ready(final)

    def _ready(self, final: bool) -> Iterator[Packet]:
        queue, now = self.queue, time.monotonic()
        while queue:
            packet, give_up = queue[0]
            if not self._known(packet) and not final and now < give_up:
                return
            queue.popleft()
            yield packet

    def _known(self, packet) -> bool:
        head = packet.head
        if head is None or head.sport is None:
            return True
        if self._settled(packet):
            return True
        packet.owner, packet.peer_owner = self.attribution.owners(head)
        return self._settled(packet)

    def _settled(self, packet) -> bool:
        if packet.iface == self.loopback:
            return packet.owner is not None and packet.peer_owner is not None
        return (packet.owner if packet.outbound else packet.peer_owner) is not None


def read_file(path: str, expression: str, count: int | None = None) -> Iterator[Packet]:
    """Packets of a pcap or pcapng file that match expression (libpcap's own test)."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader
    matches = bpf.OfflineFilter(expression)
    try:
        reader = RawPcapReader(path)
    except (OSError, Scapy_Exception) as exc:
        raise PysockError(f"cannot read '{path}': {exc}", ExitStatus.FAILURE) from None
    seen = 0
    with reader:
        for data, meta in reader:
            packet = _from_file(reader, data, meta)
            if not matches(packet.linktype, data, packet.wirelen):
                continue
            yield packet
            seen += 1
            if count and seen >= count:
                return


def _from_file(reader, data: bytes, meta) -> Packet:
    if hasattr(meta, "tshigh"):  # pcapng
        ts = (meta.tshigh << 32 | meta.tslow) * 1_000_000_000 // meta.tsresol
        linktype = meta.linktype
        outbound = {1: False, 2: True}.get(meta.direction) if meta.direction else None
        comment = b" ".join(meta.comments).decode(errors="replace") if meta.comments else None
        iface = meta.ifname.decode(errors="replace") if meta.ifname else "-"
    else:
        ts = meta.sec * 1_000_000_000 + meta.usec * (1 if reader.nano else 1000)
        linktype, outbound, comment, iface = reader.linktype, None, None, "-"
    return Packet(ts, iface, outbound, linktype, data, meta.wirelen,
                  headers.parse(data, linktype), comment=comment)
