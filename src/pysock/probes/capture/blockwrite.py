"""-w without a display: the frames of a TPACKET_V3 block go to the pcapng file
as they lie in the ring, no dissection, one write per block. Each enhanced packet
block is a packed header, the frame, and a precomputed tail (direction flag, the
owning process as a comment once its flow's owner is known, the length again)."""

from __future__ import annotations

import struct

from pysock.probes.capture import headers
from pysock.probes.capture.pcapng import EPB, EPB_FLAGS, INBOUND, OPT_COMMENT, OUTBOUND, _option

# tpacket3_hdr and the sockaddr_ll after it, in one read: next offset, seconds,
# nanoseconds, captured length, wire length, mac offset, ifindex, packet type
FRAME = struct.Struct("=IIIII4xH26xi2xB")
EPB_HEAD = struct.Struct("=IIIIIII")  # type, length, interface, ts high, ts low, caplen, len
LENGTH = struct.Struct("=I")
PACKET_OUTGOING = 4
TAILS_MAX = 4096  # frame lengths, flows' comments: most traffic has few of each
PADS = (b"", b"\0\0\0", b"\0\0", b"\0")  # by caplen & 3
IPV4, IPV6 = b"\x08\x00", b"\x86\xdd"  # ethertypes


def _options(outbound: bool, comment: str | None) -> bytes:
    out = _option(EPB_FLAGS, LENGTH.pack(OUTBOUND if outbound else INBOUND))
    if comment:
        out += _option(OPT_COMMENT, comment.encode())
    return out + _option(0, b"")


PLAIN = (_options(False, None), _options(True, None))


class Comments:
    """The option bytes of a flow, looked up through the attribution: the writer
    asks once per flow (by the raw address/port bytes of its frames), again only
    when the attribution has learnt more and an end is still unknown."""

    def __init__(self, attribution, linktype: int):
        self.attribution = attribution
        self.ethernet = linktype == headers.DLT_EN10MB
        self.linktype = linktype

    def entry(self, frame: bytes) -> tuple:
        """(generation, (inbound options, outbound options), both ends known)."""
        generation = self.attribution.generation
        head = headers.parse(frame, self.linktype)
        if head is None or head.sport is None:
            return generation, PLAIN, True
        owners = self.attribution.owners(head)
        label = " > ".join(f"{end[1]}[{end[0]}]" for end in owners if end)
        if not label:
            return generation, PLAIN, False
        return generation, (_options(False, label), _options(True, label)), None not in owners


def _tail(caplen: int, options: bytes) -> tuple[int, bytes]:
    """A block's total length and what follows its frame: padding, options, length."""
    total = 28 + caplen + (-caplen & 3) + len(options) + 4
    return total, PADS[caplen & 3] + options + LENGTH.pack(total)


class Tails(dict):
    """One direction of a flow: its tails by frame length, and the options they carry."""
    __slots__ = ("options",)

    def __init__(self, options: bytes):
        super().__init__()
        self.options = options

    def made(self, caplen: int) -> tuple[int, bytes]:
        if len(self) > TAILS_MAX:
            self.clear()
        tail = self[caplen] = _tail(caplen, self.options)
        return tail


class BlockWriter:
    def __init__(self, writer, interface_id, comments: Comments | None):
        self.stream = writer.stream
        self.interface_id = interface_id  # ifindex -> the pcapng interface number
        self.comments = comments if comments is not None and comments.ethernet else None
        self.ids: dict[int, int] = {}
        self.plain = (Tails(PLAIN[0]), Tails(PLAIN[1]))
        self.tails: dict[tuple, tuple[Tails, Tails]] = {}  # a flow's options -> its tails
        self.flows: dict[bytes, tuple] = {}  # a flow's key bytes -> its entry (see _flow)

    def write(self, view, base: int, count: int) -> None:
        """count frames of the block at base, from its first. The loop is the cost
        of every packet: one unpack, one pack, one slice, a dict read for the
        flow's comment (see bench/scenarios/capture.py); no call per packet, a call
        costs more than most of what it would do."""
        parts: list = []
        append = parts.append
        ids, comments, plain, flows = self.ids, self.comments, self.plain, self.flows
        commented = comments is not None
        generation = comments.attribution.generation if commented else 0
        at = base + LENGTH.unpack_from(view, base + 16)[0]
        unpack, head = FRAME.unpack_from, EPB_HEAD.pack
        for _ in range(count):
            nxt, sec, nsec, caplen, wirelen, mac, ifindex, pkttype = unpack(view, at)
            iface = ids.get(ifindex)
            if iface is None:
                iface = ids[ifindex] = self.interface_id(ifindex)
            start = at + mac
            flow = plain
            if commented:
                kind = view[start + 12:start + 14]
                # addresses, and the ports when the IPv4 header is 20 bytes
                key = (view[start + 26:start + 38] if kind == IPV4 else
                       view[start + 22:start + 58] if kind == IPV6 else None)
                if key is not None:
                    entry = flows.get(key)  # (generation, both ends known, tails)
                    if entry is None or (not entry[1] and entry[0] != generation):
                        entry = self._flow(key, view[start:start + caplen])
                    flow = entry[2]
            side = flow[pkttype == PACKET_OUTGOING]
            tail = side.get(caplen) or side.made(caplen)
            ts = sec * 1_000_000_000 + nsec
            append(head(EPB, tail[0], iface, ts >> 32, ts & 0xFFFFFFFF, caplen, wirelen))
            append(view[start:start + caplen])
            append(tail[1])
            at += nxt
        self.stream.write(b"".join(parts))

    def _flow(self, key: bytes, frame: bytes) -> tuple:
        """A flow's entry, looked up through the comments: (generation, both ends
        known, its tails each way), the tails shared by flows with the same options."""
        generation, options, both = self.comments.entry(frame)
        if len(self.tails) > TAILS_MAX:
            self.tails.clear()
        tails = self.tails.get(options)
        if tails is None:
            tails = self.tails[options] = (Tails(options[0]), Tails(options[1]))
        if len(self.flows) > TAILS_MAX:
            self.flows.clear()
        entry = self.flows[key] = (generation, both, tails)
        return entry
