"""--banner: what an open TCP port says first, read within a short wait.

All grabs run at once on one epoll loop: connect, then wait for the first bytes.
Services that wait for the client to speak (HTTP) give no banner."""

from __future__ import annotations

import errno
import select
import socket

from pysock.probes.scan.model import Target
from pysock.probes.scan.timing import monotonic

WAIT = 2.0  # seconds from connect to the first bytes
READ = 1024
SHOWN = 120  # characters kept after making it printable


def grab(jobs: list[tuple[Target, int]], wait: float = WAIT, limit: int = 512) -> dict[tuple[str, int], str]:
    """{(address, port): printable banner} for the ports that said something."""
    found: dict[tuple[str, int], str] = {}
    queue = list(jobs)
    poller = select.epoll()
    live: dict[int, tuple[socket.socket, Target, int, float]] = {}
    try:
        while queue or live:
            while queue and len(live) < limit:
                target, port = queue.pop()
                sock = socket.socket(target.family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                if sock.connect_ex((target.addr, port)) not in (0, errno.EINPROGRESS):
                    sock.close()
                    continue
                live[sock.fileno()] = (sock, target, port, monotonic() + wait)
                poller.register(sock.fileno(), select.EPOLLIN)
            now = monotonic()
            soonest = min(deadline for *_, deadline in live.values())
            for fd, _ in poller.poll(max(0.0, soonest - now)):
                sock, target, port, _ = live.pop(fd)
                try:
                    data = sock.recv(READ)
                except OSError:
                    data = b""
                if data:
                    found[(target.addr, port)] = printable(data)
                sock.close()
            now = monotonic()
            for fd in [fd for fd, (*_, deadline) in live.items() if deadline <= now]:
                live.pop(fd)[0].close()
    finally:
        for sock, *_ in live.values():
            sock.close()
        poller.close()
    return found


def printable(data: bytes, width: int = SHOWN) -> str:
    """Bytes as one line of text: line ends become ' | ', other control bytes '.'."""
    text = data.decode("utf-8", errors="replace").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = " | ".join(lines)
    text = "".join(c if c.isprintable() else "." for c in text)
    return text if len(text) <= width else text[:width - 1] + "…"
