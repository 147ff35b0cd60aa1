"""--hexdump: both directions, with direction, offset and time (like socat -x / ncat -x)."""

from __future__ import annotations

import time

_PRINTABLE = bytes(b if 32 <= b < 127 else 46 for b in range(256))


def hexdump_lines(data: bytes, offset: int = 0, width: int = 16):
    for i in range(0, len(data), width):
        row = data[i:i + width]
        hexes = " ".join(f"{b:02x}" for b in row)
        yield f"  {offset + i:08x}  {hexes:<{width * 3 - 1}}  |{row.translate(_PRINTABLE).decode()}|"


class HexdumpTap:
    """A relay tap writing each chunk to a text stream as it passes."""

    sees_bytes = True

    def __init__(self, stream, peer: str = "", start: float | None = None):
        self.stream, self.peer = stream, peer
        self.start = time.monotonic() if start is None else start
        self.offsets = {">": 0, "<": 0}

    def for_peer(self, peer: str) -> HexdumpTap:
        """A server's tap for one of its clients: own offsets, the client named."""
        return HexdumpTap(self.stream, peer, self.start)

    def __call__(self, direction: str, data: bytes) -> None:
        offset = self.offsets[direction]
        what = "sent" if direction == ">" else "received"
        who = f" {'to' if direction == '>' else 'from'} {self.peer}" if self.peer else ""
        self.stream.write(f"{direction} {time.monotonic() - self.start:.6f}s {what} {len(data)} "
                          f"bytes{who} at offset {offset}\n")
        self.stream.write("\n".join(hexdump_lines(data, offset)) + "\n")
        self.stream.flush()
        self.offsets[direction] = offset + len(data)
