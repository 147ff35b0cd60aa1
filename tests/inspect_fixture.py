"""Known sockets for the inspect tests, held by a process named 'sockfixture'.

Run as a script (usually inside a test namespace): it makes every kind of socket
pysock inspect must find, prints one JSON line describing them, then holds them
until stdin closes. Ports are fixed: the test namespace is empty."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import socket
import sys
import time

NAME = b"sockfixture"
TCP_PORT, TCP6_PORT, FULL_PORT, UDP_PORT, SSH_PORT = 4100, 4101, 4102, 4200, 22
CLOSE_WAIT_PILE = 10


def set_name() -> None:
    ctypes.CDLL(None).prctl(15, NAME, 0, 0, 0)  # PR_SET_NAME: what /proc/PID/comm shows


def ino(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def wait_state(port: int, state: str, count: int, timeout: float = 5) -> None:
    """Until /proc/net/tcp shows count sockets on local port in state (hex)."""
    deadline = time.monotonic() + timeout
    suffix = f":{port:04X}"
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
        if sum(1 for r in rows if suffix in (r[1][-5:], r[2][-5:]) and r[3] == state) >= count:
            return
        time.sleep(0.01)
    raise SystemExit(f"fixture: no {count} sockets in state {state} towards {port}")


def time_wait(listener: socket.socket) -> int:
    """A connection left in TIME_WAIT (the side that closes first waits); its port."""
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    port = c.getsockname()[1]
    c.close()
    deadline = time.monotonic() + 5
    while s.recv(1) and time.monotonic() < deadline:  # until our side sees the FIN
        pass
    s.close()
    wait_state(port, "06", 1)
    return port


def main(tmp: str) -> None:
    set_name()
    held: list[socket.socket] = []
    info: dict = {"pid": os.getpid()}

    listener = socket.create_server(("127.0.0.1", TCP_PORT), backlog=64)
    held.append(listener)
    info["listener"] = ino(listener)
    client = socket.create_connection(("127.0.0.1", TCP_PORT))
    server, _ = listener.accept()
    client.sendall(b"x" * 100)  # sits unread in the server's receive queue
    held += (client, server)
    info.update(est_client=ino(client), est_server=ino(server),
                est_client_port=client.getsockname()[1])

    # CLOSE_WAIT: the peer closed, we never do (a pile of them, as leaking apps have)
    info["close_wait"] = []
    for _ in range(CLOSE_WAIT_PILE):
        c = socket.create_connection(("127.0.0.1", TCP_PORT))
        s, _ = listener.accept()
        c.close()
        held.append(s)
        info["close_wait"].append(ino(s))
    wait_state(TCP_PORT, "08", CLOSE_WAIT_PILE)
    info["time_wait_port"] = time_wait(listener)

    # a listener with a full accept queue (backlog 2, three waiting)
    full = socket.create_server(("127.0.0.1", FULL_PORT), backlog=2)
    held.append(full)
    info["full"] = ino(full)
    for _ in range(3):
        held.append(socket.create_connection(("127.0.0.1", FULL_PORT)))

    six = socket.create_server(("::1", TCP6_PORT), family=socket.AF_INET6)
    ssh = socket.create_server(("127.0.0.1", SSH_PORT))
    held += (six, ssh)
    info.update(tcp6=ino(six), ssh=ino(ssh))

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", UDP_PORT))
    udp_conn = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_conn.connect(("127.0.0.1", UDP_PORT))
    udp_conn.send(b"hello")  # 5 bytes wait in udp's receive queue
    held += (udp, udp_conn)
    info.update(udp=ino(udp), udp_conn=ino(udp_conn))

    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    held += (raw, raw6)
    info.update(raw=ino(raw), raw6=ino(raw6))

    path = os.path.join(tmp, "stream.sock")
    ustream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ustream.bind(path)
    ustream.listen(8)
    uclient = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    uclient.connect(path)
    userver, _ = ustream.accept()
    dgram_path = os.path.join(tmp, "dgram.sock")
    udgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    udgram.bind(dgram_path)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_name = f"pysock-test-{os.getpid()}"
    abstract.bind("\0" + abstract_name)
    abstract.listen(1)
    held += (ustream, uclient, userver, udgram, abstract)
    info.update(unix_listener=ino(ustream), unix_client=ino(uclient), unix_server=ino(userver),
                unix_path=path, unix_dgram=ino(udgram), dgram_path=dgram_path,
                abstract=ino(abstract), abstract_name="@" + abstract_name)

    # close to the descriptor limit: what --by-process flags as a leak
    open_fds = len(os.listdir("/proc/self/fd"))
    limit = open_fds + 4
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    info.update(fd_limit=limit)

    print(json.dumps(info), flush=True)
    for line in sys.stdin:  # "tw": a fresh TIME_WAIT (they last only 60 s)
        if line.strip() == "tw":
            print(time_wait(listener), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
