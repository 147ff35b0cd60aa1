"""--flows: packets folded into one record per connection (TCP) or address/port
pair (UDP), from the header fields alone: packets and payload bytes each way,
handshake RTT, retransmissions, out-of-order segments, zero windows, resets and
the owning process."""

from __future__ import annotations

from dataclasses import dataclass, field

SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
SEQ_MOD = 1 << 32
OOO_WINDOW_NS = 3_000_000  # without a handshake seen, a hole filled this soon is reordering


@dataclass(slots=True)
class Side:
    """One direction of a flow, from the sender's point of view."""
    packets: int = 0
    bytes: int = 0  # payload bytes: UDP summed; TCP the sequence span the sender covered,
    #                 so a segment the capture missed (a hole a later segment proves was
    #                 sent) still counts and a retransmission does not count twice
    base: int | None = None  # sequence number before the first payload byte
    high: int = 0  # highest payload end so far, relative to base
    high_ns: int = 0  # when high last moved
    holes: list = field(default_factory=list)  # [start, end) gaps below high
    fin: bool = False


@dataclass(slots=True)
class Flow:
    proto: str
    src: str  # the side that opened the connection (sent the SYN), else the first seen
    sport: int
    dst: str
    dport: int
    first_ns: int
    last_ns: int = 0
    out: Side = field(default_factory=Side)  # src -> dst
    back: Side = field(default_factory=Side)  # dst -> src
    syn_ns: int | None = None
    rtt_ns: int | None = None
    retransmits: int = 0
    out_of_order: int = 0
    zero_windows: int = 0
    resets: int = 0
    owner: tuple | None = None
    peer_owner: tuple | None = None
    closed: bool = False

    @property
    def state(self) -> str:
        if self.resets:
            return "reset"
        return "closed" if self.closed else "open"


class FlowTable:
    def __init__(self):
        self.flows: dict[tuple, Flow] = {}

    def add(self, packet) -> Flow | None:
        """Fold one packet in; the flow it belongs to (None when it has no ports)."""
        head = packet.head
        if head is None or head.sport is None:
            return None
        forward = (head.proto, head.src, head.sport, head.dst, head.dport)
        flow, side = self._find(forward, head)
        flow.first_ns = flow.first_ns or packet.ts_ns
        flow.last_ns = packet.ts_ns
        side.packets += 1
        sender, receiver = packet.owner, packet.peer_owner
        if side is flow.back:
            sender, receiver = receiver, sender
        flow.owner = flow.owner or sender
        flow.peer_owner = flow.peer_owner or receiver
        if head.proto == "tcp":
            _tcp(flow, side, head, packet.ts_ns)
        else:
            side.bytes += head.payload
        return flow

    def _find(self, forward: tuple, head) -> tuple[Flow, Side]:
        """The flow and the side a packet travels; a SYN on a closed flow starts anew."""
        proto, src, sport, dst, dport = forward
        fresh = head.flags == SYN
        flow = self.flows.get(forward)
        if flow is not None and not (flow.closed and fresh):
            return flow, flow.out
        backward = (proto, dst, dport, src, sport)
        flow = self.flows.get(backward)
        if flow is not None and not (flow.closed and fresh):
            return flow, flow.back
        self.flows.pop(backward, None)
        flow = self.flows[forward] = Flow(proto, src, sport, dst, dport, 0)
        return flow, flow.out

    def all(self) -> list[Flow]:
        return list(self.flows.values())

    def ended(self, now_ns: int, linger_ns: int) -> list[Flow]:
        """Closed flows quiet for linger_ns (the last ACK of a close has come),
        taken out of the table."""
        gone = [f for f in self.flows.values() if f.closed and now_ns - f.last_ns >= linger_ns]
        for flow in gone:
            del self.flows[(flow.proto, flow.src, flow.sport, flow.dst, flow.dport)]
        return gone


def _tcp(flow: Flow, side: Side, head, ts_ns: int) -> None:
    flags = head.flags
    if flags & RST:
        flow.resets += 1
        flow.closed = True
        return
    if flags & SYN:
        if not flags & ACK:
            flow.syn_ns = flow.syn_ns or ts_ns
        elif flow.syn_ns is not None and flow.rtt_ns is None and side is flow.back:
            flow.rtt_ns = ts_ns - flow.syn_ns
        side.base, side.high, side.holes = (head.seq + 1) % SEQ_MOD, 0, []
    if head.win == 0:
        flow.zero_windows += 1
    if head.payload:
        _payload(flow, side, head, ts_ns)
    if flags & FIN:
        side.fin = True
        flow.closed = flow.out.fin and flow.back.fin
        _reach(side, head.seq + head.payload)


def _reach(side: Side, seq: int) -> None:
    """A FIN's sequence number proves every byte before it was sent."""
    if side.base is None:
        return
    end = (seq - side.base) % SEQ_MOD
    if side.high < end < SEQ_MOD // 2:
        side.holes.append([side.high, end])
        side.high = side.bytes = end


def _payload(flow: Flow, side: Side, head, ts_ns: int) -> None:
    if side.base is None:  # the capture began mid-connection
        side.base = head.seq
    start = (head.seq - side.base) % SEQ_MOD
    if start >= SEQ_MOD // 2:  # before the base: data from before the capture
        return
    end = start + head.payload
    if start >= side.high:
        if start > side.high:
            side.holes.append([side.high, start])
        side.high = side.bytes = end
        side.high_ns = ts_ns
        return
    filled = _fill(side.holes, start, end)
    if end > side.high:
        side.high = side.bytes = end
        side.high_ns = ts_ns
    window = flow.rtt_ns or OOO_WINDOW_NS  # Wireshark's test: within the handshake RTT
    if filled and ts_ns - side.high_ns < window:
        flow.out_of_order += 1
    else:
        flow.retransmits += 1


def _fill(holes: list, start: int, end: int) -> int:
    """Take [start, end) out of the holes; the bytes that were missing."""
    filled, kept = 0, []
    for low, high in holes:
        a, b = max(low, start), min(high, end)
        if a >= b:
            kept.append([low, high])
            continue
        filled += b - a
        if low < a:
            kept.append([low, a])
        if b < high:
            kept.append([b, high])
    holes[:] = kept[-64:]  # a capture that misses much keeps only the latest holes
    return filled
