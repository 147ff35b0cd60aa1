"""A classic pcap writer, byte for byte what libpcap's pcap_dump writes (tcpdump
-w): microsecond time stamps, one link type for the whole file, no interface
names, directions or comments."""

from __future__ import annotations

import struct

from pysock.errors import ExitStatus, PysockError

HEADER = struct.Struct("=IHHiIII")  # magic, version 2.4, zone, sigfigs, snaplen, link type
RECORD = struct.Struct("=IIII")  # seconds, microseconds, captured length, wire length
MAGIC_MICROSECONDS = 0xA1B2C3D4


class PcapWriter:
    """The same calls as PcapngWriter; the header goes out with the first link
    type (at once when it is known, as for a live capture)."""

    def __init__(self, stream, snaplen: int, linktype: int | None = None):
        self.stream = stream
        self.snaplen = snaplen
        self.linktype: int | None = None
        if linktype is not None:
            self.interface("", linktype)

    def interface(self, name: str, linktype: int, description: str | None = None) -> int:
        if self.linktype is None:
            self.stream.write(HEADER.pack(MAGIC_MICROSECONDS, 2, 4, 0, 0, self.snaplen,
                                          linktype))
            self.linktype = linktype
        elif linktype != self.linktype:
            raise PysockError(f"a pcap file holds one link type, these packets have {linktype} "
                              f"after {self.linktype}: write pcapng (--format pcapng)",
                              ExitStatus.FAILURE)
        return 0

    def packet(self, iface_id: int, ts_ns: int, data: bytes, wirelen: int,
               outbound: bool | None = None, comment: str | None = None) -> None:
        seconds, nanoseconds = divmod(ts_ns, 1_000_000_000)
        self.stream.write(RECORD.pack(seconds, nanoseconds // 1000, len(data), wirelen))
        self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()
