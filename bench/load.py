"""The load test of issue 16, at any size: many echo clients, a broker with many
clients, many `--exec cat` clients; every byte checked, and the server's open
descriptors back to their count before the first client (nothing leaked).
tests/test_load.py runs it small; bench/scenarios/load.py at full size."""

from __future__ import annotations

import os
import selectors
import socket
import time
from collections.abc import Callable

from bench.clients import BACKLOG, asyncio_echo, enough_fds, selectors_echo
from bench.core import BenchFailure
from bench.tools import PYSOCK, free_port, running, wait_listening


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(pid: int, wanted: Callable[[int], bool], timeout: float, what: str) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = fd_count(pid)
        if wanted(count):
            return count
        if time.monotonic() > deadline:
            raise BenchFailure(f"server holds {count} descriptors, {what}")
        time.sleep(0.05)


def settled_fd_count(pid: int, timeout: float = 5) -> int:
    """The server's descriptors once it is idle: just after it listens it may still be
    importing (a module file open for a moment), which would raise the base."""
    deadline = time.monotonic() + timeout
    last = fd_count(pid)
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = fd_count(pid)
        if now == last:
            return now
        last = now
    return last


def broker_round(port: int, pid: int, clients: int, base_fds: int, timeout: float = 120) -> None:
    """Every client says one line once all are in; each must get every other's line."""
    enough_fds(clients)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(clients)]
    try:
        wait_fds(pid, lambda n: n >= base_fds + clients, 30, f"not all {clients} clients in")
        lines = [f"client {i:05d} {os.urandom(8).hex()}\n".encode() for i in range(clients)]
        for s, line in zip(socks, lines):
            s.sendall(line)
        _read_others(socks, lines, time.monotonic() + timeout)
    finally:
        for s in socks:
            s.close()


def _read_others(socks, lines, deadline: float) -> None:
    want = sum(map(len, lines))
    sel = selectors.DefaultSelector()
    got = {}
    for s, line in zip(socks, lines):
        s.setblocking(False)
        got[s] = [bytearray(), want - len(line), line]
        sel.register(s, selectors.EVENT_READ)
    pending = len(socks)
    while pending:
        if time.monotonic() > deadline:
            raise BenchFailure(f"{pending} broker clients still waiting for lines")
        for key, _ in sel.select(1):
            s = key.fileobj
            buf, expected, own = got[s]
            chunk = s.recv(1 << 16)
            if not chunk:
                raise BenchFailure("the broker closed a client early")
            buf += chunk
            if len(buf) >= expected:
                others = sorted(line for line in lines if line != own)
                if sorted(bytes(buf).splitlines(keepends=True)) != others:
                    raise BenchFailure("a broker client got lines damaged, lost or doubled")
                sel.unregister(s)
                pending -= 1
    sel.close()


def served(argv_tail: list[str], drive: Callable[[int, int, int], None],
           timeout: float = 120) -> float:
    """Start pysock listen -k with argv_tail, drive clients at it, check every fd
    it opened for them is closed again; returns the seconds the clients took."""
    port = free_port()
    argv = [PYSOCK, "listen", "-k", "--backlog", str(BACKLOG), *argv_tail, "127.0.0.1", str(port)]
    with running(argv) as server:
        wait_listening(port, proc=server)
        base = settled_fd_count(server.pid)
        t0 = time.perf_counter()
        drive(port, server.pid, base)
        took = time.perf_counter() - t0
        wait_fds(server.pid, lambda n: n <= base, timeout,
                 f"{base} before the clients: descriptors leaked")
        if server.poll() is not None:
            raise BenchFailure(f"server exited ({server.returncode}) under load")
    return took


def echo_load(clients: int, size: int) -> float:
    return served(["--echo"], lambda port, pid, base: selectors_echo(port, clients, size))


def broker_load(clients: int) -> float:
    return served(["--broker"], lambda port, pid, base: broker_round(port, pid, clients, base))


def exec_load(clients: int, size: int) -> float:
    return served(["--exec", "cat"], lambda port, pid, base: asyncio_echo(port, clients, size))
