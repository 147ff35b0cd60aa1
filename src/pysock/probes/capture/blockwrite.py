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
TAILS_MAX = 4096  # frame lengths x flows' comments; most traffic has few of each
PADS = (b"", b"\0\0\0", b"\0\0", b"\0")  # by caplen & 3


def _options(outbound: bool, comment: str | None) -> bytes:
    out = _option(EPB_FLAGS, LENGTH.pack(OUTBOUND if outbound else INBOUND))
    if comment:
        out += _option(OPT_COMMENT, comment.encode())
    return out + _option(0, b"")


PLAIN = (_options(False, None), _options(True, None))


class Comments:
    """The option bytes of a flow, by the raw address/port bytes of its frames
    (key()): looked up through the attribution once (entry()), again only when
    the attribution has learnt more and an end is still unknown."""

    def __init__(self, attribution, linktype: int):
        self.attribution = attribution
        self.ethernet = linktype == headers.DLT_EN10MB
        self.linktype = linktype
        # key -> (generation, (inbound options, outbound options), both ends known)
        self.known: dict[bytes, tuple] = {}

    def key(self, view, at: int) -> bytes | None:
        if view[at + 12] == 0x08 and view[at + 13] == 0x00:
            return view[at + 26:at + 38]  # addresses, and the ports when the header is 20 bytes
        if view[at + 12] == 0x86 and view[at + 13] == 0xDD:
            return view[at + 22:at + 58]
        return None

    def entry(self, key: bytes, frame: bytes) -> tuple:
        entry = self.known.get(key)
        if entry is None or (not entry[2] and entry[0] != self.attribution.generation):
            entry = self.known[key] = self._look_up(frame)
        return entry

    def _look_up(self, frame: bytes) -> tuple:
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


class BlockWriter:
    def __init__(self, writer, interface_id, comments: Comments | None):
        self.stream = writer.stream
        self.interface_id = interface_id  # ifindex -> the pcapng interface number
        self.comments = comments if comments is not None and comments.ethernet else None
        self.ids: dict[int, int] = {}
        self.tails: dict[tuple, tuple[int, bytes]] = {}  # (caplen, options) -> length, tail

    def write(self, view, base: int, count: int) -> None:
        """count frames of the block at base, from its first. The loop is the cost
        of every packet: one unpack, one pack, one slice, a dict read for the
        flow's comment (see bench/scenarios/capture.py)."""
        parts: list = []
        append = parts.append
        ids, comments, tails = self.ids, self.comments, self.tails
        known = comments.known if comments is not None else None
        generation = comments.attribution.generation if comments is not None else 0
        at = base + LENGTH.unpack_from(view, base + 16)[0]
        unpack, head = FRAME.unpack_from, EPB_HEAD.pack
        for _ in range(count):
            nxt, sec, nsec, caplen, wirelen, mac, ifindex, pkttype = unpack(view, at)
            iface = ids.get(ifindex)
            if iface is None:
                iface = ids[ifindex] = self.interface_id(ifindex)
            start = at + mac
            options = PLAIN
            if known is not None:
                key = comments.key(view, start)
                if key is not None:
                    entry = known.get(key)
                    if entry is None or (not entry[2] and entry[0] != generation):
                        entry = comments.entry(key, view[start:start + caplen])
                    options = entry[1]
            options = options[pkttype == PACKET_OUTGOING]
            tail = tails.get((caplen, options))
            if tail is None:
                if len(tails) > TAILS_MAX:
                    tails.clear()
                tail = tails[caplen, options] = _tail(caplen, options)
            ts = sec * 1_000_000_000 + nsec
            append(head(EPB, tail[0], iface, ts >> 32, ts & 0xFFFFFFFF, caplen, wirelen))
            append(view[start:start + caplen])
            append(tail[1])
            at += nxt
        self.stream.write(b"".join(parts))
