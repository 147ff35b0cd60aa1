"""Many-client drivers shared by the echo and forward scenarios.

Two client patterns, because a server can look fast to one and slow to another:
    selectors   all clients connected first, then 256 KiB sends, no FIN; a client is
                done when its bytes came back (the bench's original client)
    asyncio     each client connects, writes everything, sends FIN, reads to EOF
and short connections (connect, a little data each way, close), N at a time.

Every client checks its bytes came back intact: a fast wrong run raises BenchFailure.
The server's accept queue must hold every client of the selectors pattern at once
(they connect back to back): a queue shorter than the client count drops SYNs and
adds the kernel's 1 s retransmission to the figure, so servers are given BACKLOG."""

from __future__ import annotations

import asyncio
import os
import resource
import selectors
import socket
import time

from bench.core import BenchFailure

BACKLOG = 4096  # net.core.somaxconn's default since Linux 5.4
SEND = 262144


def enough_fds(wanted: int) -> None:
    """The client process holds one fd per client: lift the soft limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted + 64:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, max(wanted + 64, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def selectors_echo(port: int, clients: int, size: int, timeout: float = 120,
                   host: str = "127.0.0.1") -> None:
    """All connected first, 256 KiB sends, no FIN; each must get its bytes back."""
    enough_fds(clients)
    payload = os.urandom(size)
    sel = selectors.DefaultSelector()
    state = {}
    try:
        for _ in range(clients):
            s = socket.create_connection((host, port), timeout=10)
            s.setblocking(False)
            state[s] = [0, bytearray()]
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        _selectors_loop(sel, state, payload, time.monotonic() + timeout)
    finally:
        for s in state:
            s.close()
        sel.close()


def _selectors_loop(sel, state, payload: bytes, deadline: float) -> None:
    size, done = len(payload), 0
    view = memoryview(payload)
    while done < len(state):
        if time.monotonic() > deadline:
            raise BenchFailure(f"only {done} of {len(state)} clients finished")
        for key, events in sel.select(1):
            s, st = key.fileobj, state[key.fileobj]
            if events & selectors.EVENT_WRITE and st[0] < size:
                st[0] += s.send(view[st[0]:st[0] + SEND])
                if st[0] == size:
                    sel.modify(s, selectors.EVENT_READ)
            if events & selectors.EVENT_READ:
                chunk = s.recv(SEND)
                if not chunk:
                    raise BenchFailure("server closed a client early")
                st[1] += chunk
                if len(st[1]) == size:
                    if st[1] != payload:
                        raise BenchFailure("echo came back damaged")
                    sel.unregister(s)
                    done += 1


def asyncio_echo(port: int, clients: int, size: int, timeout: float = 120,
                 host: str = "127.0.0.1") -> None:
    """Each client writes its payload, sends FIN, reads to EOF; all at once."""
    enough_fds(clients)
    payload = os.urandom(size)

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
            got = await reader.read()
            if got != payload:
                raise BenchFailure(f"echo came back damaged ({len(got)} of {size} bytes)")
        finally:
            writer.close()

    async def all_of_them() -> None:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(clients))), timeout)
    _run(all_of_them())


def short_connections(port: int, total: int, at_once: int, size: int = 1024,
                      timeout: float = 120, host: str = "127.0.0.1") -> float:
    """total connections, at_once at a time: connect, size bytes each way, close.
    Returns connections per second."""
    payload = os.urandom(size)
    started = time.perf_counter()

    async def worker(count: int) -> None:
        for _ in range(count):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(payload)
                writer.write_eof()
                got = await reader.read()
                if got != payload:
                    raise BenchFailure(f"short connection got {len(got)} of {size} bytes back")
            finally:
                writer.close()

    async def all_of_them() -> None:
        shares = [total // at_once + (i < total % at_once) for i in range(at_once)]
        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in shares)), timeout)
    _run(all_of_them())
    return total / (time.perf_counter() - started)


def _run(coro) -> None:
    try:
        asyncio.run(coro)
    except TimeoutError:
        raise BenchFailure("clients did not finish in time") from None
    except ConnectionError as exc:
        raise BenchFailure(f"a client failed: {exc}") from None
