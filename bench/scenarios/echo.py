"""Many echo clients at once: pysock listen -k --echo against socat's fork, with
both client patterns of bench/clients.py, 500 x 1 MiB and 2000 x 64 KiB.

Every server gets the same accept queue (clients.BACKLOG): bench/RESULTS.md once
showed pysock at 3.8x socat here because socat was given backlog=1024 and pysock
its default 128, so 500 back-to-back connects overflowed pysock's queue and paid
the kernel's 1 s SYN retransmission; with equal queues the hub was the faster one."""

from __future__ import annotations

import time

from bench.clients import BACKLOG, asyncio_echo, selectors_echo
from bench.core import Contender, Scenario
from bench.tools import PYSOCK, free_port, have, pysock_has, running, wait_listening

SERVERS = {
    "pysock listen -k --echo": lambda p, n: [PYSOCK, "listen", "-k", "--echo", "--backlog",
                                             str(BACKLOG), "127.0.0.1", str(p)],
    "socat fork PIPE": lambda p, n: ["socat", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr,fork,"
                                     f"backlog={BACKLOG}", "PIPE"],
}
CLIENTS = {"selectors, all connected first, no FIN": selectors_echo,
           "asyncio, write all, FIN, read to EOF": asyncio_echo}


def _timed(server_argv, client, clients: int, size: int):
    def go(_env) -> float:
        port = free_port()
        with running(server_argv(port, clients)) as server:
            wait_listening(port, proc=server)
            t0 = time.perf_counter()
            client(port, clients, size)
            return time.perf_counter() - t0
    return go


def _scenario(clients: int, size: int, pattern: str, quick: bool) -> Scenario:
    tools = [t for t in SERVERS if t.startswith("pysock") or have(t.split()[0])]
    contenders = [Contender(t, _timed(SERVERS[t], CLIENTS[pattern], clients, size),
                            peer=not t.startswith("pysock")) for t in tools]
    # ncat -lk --exec cat is left out: it closes a client at its FIN before cat's
    # reply is out (the asyncio pattern fails) and took 7 s for 100 x 16 KiB otherwise
    return Scenario(f"{clients} concurrent echo clients x {size >> 10} KiB ({pattern})", "s",
                    "lower", contenders, rounds=2 if quick else 5,
                    note=f"Every server's accept queue is {BACKLOG}; the client checks each "
                         f"byte that comes back.")


def scenarios(quick: bool):
    if not pysock_has("listen"):
        return
    sizes = [(50, 64 << 10), (100, 16 << 10)] if quick else [(500, 1 << 20), (2000, 64 << 10)]
    for clients, size in sizes:
        for pattern in CLIENTS:
            yield _scenario(clients, size, pattern, quick)
