"""Small UDP datagrams at a fixed rate, sent with sendmmsg (through ctypes) in
batches every millisecond: the capture bench's offered load, at C speed.

python -m bench.udpblast ADDR PORT RATE SECONDS -> prints the packets sent."""

from __future__ import annotations

import ctypes
import socket
import sys
import time

PAYLOAD = b"x" * 22  # 14 + 20 + 8 + 22: 64-byte frames
TICK_S = 0.001
BATCH_MAX = 1024


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(IOVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


def blast(addr: str, port: int, rate: int, seconds: float) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((addr, port))
    data = ctypes.create_string_buffer(PAYLOAD, len(PAYLOAD))
    iov = IOVec(ctypes.addressof(data), len(PAYLOAD))
    vec = (MMsgHdr * BATCH_MAX)()
    for m in vec:
        m.hdr.iov, m.hdr.iovlen = ctypes.pointer(iov), 1
    sent, started = 0, time.monotonic()
    end = started + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = min(int((now - started) * rate), int(seconds * rate)) - sent
        while due > 0:
            n = libc.sendmmsg(sock.fileno(), vec, min(due, BATCH_MAX), 0)
            if n <= 0:
                break
            sent, due = sent + n, due - n
        time.sleep(TICK_S)
    return sent


if __name__ == "__main__":
    print(blast(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
