"""A pcapng writer: one interface description block per interface as it first
appears (name, description, nanosecond time stamps), one enhanced packet block
per frame with its direction and, when known, the owning process as a comment
(as ptcpdump does; Wireshark shows it)."""

from __future__ import annotations

import struct

from pysock import __version__

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
OPT_END, OPT_COMMENT = 0, 1
SHB_USERAPPL, IF_NAME, IF_DESCRIPTION, IF_TSRESOL = 4, 2, 3, 9
EPB_FLAGS = 2
INBOUND, OUTBOUND = 1, 2


def _option(code: int, value: bytes) -> bytes:
    pad = -len(value) % 4
    return struct.pack("=HH", code, len(value)) + value + b"\0" * pad


def _block(kind: int, body: bytes) -> bytes:
    size = 12 + len(body)
    return struct.pack("=II", kind, size) + body + struct.pack("=I", size)


class PcapngWriter:
    def __init__(self, stream, snaplen: int):
        self.stream = stream
        self.snaplen = snaplen
        self.interfaces: dict[tuple[str, int], int] = {}
        options = _option(SHB_USERAPPL, f"pysock {__version__}".encode()) + _option(OPT_END, b"")
        stream.write(_block(SHB, struct.pack("=IHHq", 0x1A2B3C4D, 1, 0, -1) + options))

    def interface(self, name: str, linktype: int, description: str | None = None) -> int:
        key = (name, linktype)
        if key not in self.interfaces:
            options = _option(IF_NAME, name.encode()) + _option(IF_TSRESOL, b"\x09")
            if description:
                options += _option(IF_DESCRIPTION, description.encode())
            body = struct.pack("=HHI", linktype, 0, self.snaplen) + options + _option(OPT_END, b"")
            self.stream.write(_block(IDB, body))
            self.interfaces[key] = len(self.interfaces)
        return self.interfaces[key]

    def packet(self, iface_id: int, ts_ns: int, data: bytes, wirelen: int,
               outbound: bool | None = None, comment: str | None = None) -> None:
        options = b""
        if outbound is not None:
            options += _option(EPB_FLAGS, struct.pack("=I", OUTBOUND if outbound else INBOUND))
        if comment:
            options += _option(OPT_COMMENT, comment.encode())
        if options:
            options += _option(OPT_END, b"")
        body = (struct.pack("=IIIII", iface_id, ts_ns >> 32, ts_ns & 0xFFFFFFFF, len(data),
                            wirelen) + bytes(data) + b"\0" * (-len(data) % 4) + options)
        self.stream.write(_block(EPB, body))

    def flush(self) -> None:
        self.stream.flush()
