"""python -m bench.pingfloor ADDR COUNT INTERVAL: the floor of a ping written in Python.

The system calls pysock ping makes for each packet and nothing else: a raw ICMP
socket stamping arrivals, sendto, poll until the next send is due, recvmsg with
ancillary data until EAGAIN. No records, no statistics, no options. Its CPU per
packet, next to pysock's and iputils' in the same run, says how much of pysock's
cost is Python's and this machine's rather than pysock's own. Prints ping's
"N packets transmitted, M received" line."""

from __future__ import annotations

import select
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = 35
HEADER = struct.Struct("!BBHHH")


def checksum(data: bytes) -> int:
    total = int.from_bytes(data + b"\0" * (len(data) % 2), "big") % 0xFFFF
    return ~(total or 0xFFFF) & 0xFFFF


def main(addr: str, count: int, interval: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    ident, payload = 0x5151, bytes(range(56))
    received, due = 0, time.monotonic()
    for seq in range(1, count + 1):
        while (wait := due - time.monotonic()) > 0:
            if poll.poll(wait * 1000):
                received += _read(sock, ident)
        packet = HEADER.pack(8, 0, 0, ident, seq) + payload
        sock.sendto(packet[:2] + checksum(packet).to_bytes(2, "big") + packet[4:], (addr, 0))
        due += interval
    end = time.monotonic() + 1.0
    while received < count and (wait := end - time.monotonic()) > 0:
        if poll.poll(wait * 1000):
            received += _read(sock, ident)
    print(f"{count} packets transmitted, {received} received")
    return 0 if received else 1


def _read(sock: socket.socket, ident: int) -> int:
    """Echo replies of ours read until EAGAIN (the IP header is 20 bytes here)."""
    got = 0
    while True:
        try:
            data, _, _, _ = sock.recvmsg(65535, 256, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return got
        if data[20] == 0 and HEADER.unpack_from(data, 20)[3] == ident:
            got += 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
