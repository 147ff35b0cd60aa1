"""Hold many loopback TCP sockets for the inspect benchmark.

python bench/socket_holder.py PAIRS TIME_WAIT: open PAIRS established connections
to our own listener on 127.0.0.1 (2 x PAIRS established sockets, both ends held
here), then make TIME_WAIT connections (client closes first), print
"ready PORT" and sleep until stdin closes or a signal ends us. The established ones
are reset when we end (SO_LINGER 0), so they leave no TIME_WAIT behind."""

from __future__ import annotations

import resource
import socket
import struct
import sys


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        try:  # root with CAP_SYS_RESOURCE may raise the hard limit too
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            sys.exit(f"socket_holder: needs {need} descriptors, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def main() -> None:
    pairs, time_wait = int(sys.argv[1]), int(sys.argv[2])
    raise_fd_limit(2 * pairs + 64)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    address = listener.getsockname()
    held = []
    # closed with a reset when we end, not left in TIME_WAIT: the next scenario measures
    # its own sockets, not 2 x PAIRS leftovers of this one for the next minute
    no_linger = struct.pack("ii", 1, 0)
    for _ in range(pairs):
        client = socket.create_connection(address)
        server, _ = listener.accept()
        for sock in (client, server):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, no_linger)
        held += (client, server)
    for _ in range(time_wait):
        client = socket.create_connection(address)
        server, _ = listener.accept()
        client.close()  # the side that closes first waits in TIME_WAIT
        server.close()
    print(f"ready {address[1]}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
