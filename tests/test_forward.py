"""pysock forward end to end: socat, openssl s_server/s_client and small servers of
our own as TO and as clients, every byte checked by sha256."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from test_unix import wait_unix

from conftest import free_port, need_tool, run_pysock, wait_listening
from peers import read_all, sha

BIG = 64 << 20


# ---- helpers ------------------------------------------------------------------------


def forward(procs, *args, stdout=subprocess.DEVNULL):
    """pysock forward ARGS..., once it listens on FROM (the second to last argument)."""
    proc = procs.pysock("forward", *args, stdout=stdout)
    where = args[-2]
    if "/" in where or where.startswith("@"):
        wait_unix(where, proc)
    elif "-u" not in args:
        wait_listening(int(where.rsplit(":", 1)[-1]), proc=proc)
    else:
        time.sleep(0.5)
    return proc


def socat_echo(procs, listen: str):
    """socat as TO, one child per client (fork), echoing through cat (socat's own PIPE
    can stall itself: a full pipe that only it would drain, seen with 64 MiB)."""
    need_tool("socat")
    proc = procs.start(["socat", f"{listen},fork", "EXEC:cat"])
    if listen.startswith("UNIX"):
        wait_unix(listen.split(":", 1)[1].split(",")[0], proc)
    else:
        wait_listening(int(listen.split(":")[1].split(",")[0]), proc=proc)
    return proc


def tcp(port: int, host: str = "127.0.0.1"):
    return lambda: socket.create_connection((host, port), timeout=30)


def unix(path: str):
    def connect():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(b"\0" + path[1:].encode() if path.startswith("@") else path)
        return s
    return connect


def echo_through(connect, size: int = BIG) -> None:
    """size random bytes out while the echo comes back; FIN after the last one."""
    data = os.urandom(size)
    with connect() as s:
        def send():
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        got = read_all(s)
        writer.join(30)
    assert len(got) == size
    assert sha(got) == sha(data)


def echo_without_fin(connect, size: int) -> None:
    """As echo_through, reading exactly size bytes back before closing (for peers that
    end both directions at the first FIN, as microsocks does)."""
    data = os.urandom(size)
    with connect() as s:
        writer = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        writer.start()
        got = bytearray()
        while len(got) < size:
            chunk = s.recv(1 << 16)
            assert chunk, f"closed after {len(got)} of {size} bytes"
            got += chunk
        writer.join(30)
    assert sha(bytes(got)) == sha(data)


def assert_reset(connect) -> None:
    """The client gets a reset: at once (it may come before connect() has returned)
    or at its first read; never a hang."""
    try:
        s = connect()
    except ConnectionResetError:
        return
    with s:
        s.settimeout(10)
        with pytest.raises(ConnectionResetError):
            s.recv(1)


def assert_turned_away(connect) -> None:
    """Closed by the server's policy: a reset or an immediate end, never data."""
    try:
        s = connect()
    except ConnectionResetError:
        return
    with s:
        s.settimeout(10)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass


def stop(proc) -> tuple[bytes, bytes]:
    proc.terminate()
    return proc.communicate(timeout=10)


def records(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


# ---- streams, every kind of place -------------------------------------------------------


def test_tcp_to_tcp_64_mib_each_way_and_a_json_record(procs):
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    fwd = forward(procs, "--json", f"127.0.0.1:{here}", f"127.0.0.1:{to}",
                  stdout=subprocess.PIPE)
    echo_through(tcp(here))
    out, _ = stop(fwd)
    [rec] = records(out)
    assert {"client_addr", "client_port", "target", "bytes_in", "bytes_out", "duration_ms",
            "closed_by"} <= set(rec)
    assert rec["client_addr"] == "127.0.0.1" and isinstance(rec["client_port"], int)
    assert rec["target"] == f"127.0.0.1:{to}"
    assert rec["bytes_in"] == rec["bytes_out"] == BIG
    assert rec["closed_by"] == "client" and rec["duration_ms"] > 0


def test_tcp_to_unix(procs, tmp_path):
    path, here = str(tmp_path / "to.sock"), free_port()
    socat_echo(procs, f"UNIX-LISTEN:{path}")
    forward(procs, str(here), path)
    echo_through(tcp(here))


def test_unix_to_tcp_and_the_socket_file_is_removed(procs, tmp_path):
    to, path = free_port(), str(tmp_path / "from.sock")
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    fwd = forward(procs, path, f"127.0.0.1:{to}")
    echo_through(unix(path))
    stop(fwd)
    assert not os.path.exists(path)


def test_abstract_to_tcp(procs):
    to, name = free_port(), f"@pysock-fwd-{os.getpid()}-{free_port()}"
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    forward(procs, name, f"127.0.0.1:{to}")
    echo_through(unix(name), 16 << 20)


def test_ipv6_place(procs):
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP6-LISTEN:{to},bind=[::1],reuseaddr")
    forward(procs, f"[::1]:{here}", f"[::1]:{to}")
    echo_through(tcp(here, "::1"), 1 << 20)


def test_outbound_tries_the_next_address_when_one_refuses():
    """A name with two addresses (::1 first, refused; then 127.0.0.1): the connector
    steps on to the second without blocking."""
    import select

    from pysock.net.address import HostPort, Resolved
    from pysock.net.outbound import Outbound, Target
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    addresses = [Resolved(socket.AF_INET6, ("::1", port, 0, 0)),
                 Resolved(socket.AF_INET, ("127.0.0.1", port))]
    out = Outbound(Target(HostPort("twofold.test", port)), addresses, server)
    deadline = time.monotonic() + 5
    channel = None
    while channel is None and time.monotonic() < deadline:
        channel = out.step()
        if channel is None:
            poller = select.poll()
            poller.register(out.fd, out.event)
            poller.poll(500)
    assert channel is not None and channel.sock.getpeername() == ("127.0.0.1", port)
    channel.close()
    server.close()


# ---- half-close, resets, refusals, silence ------------------------------------------


def test_half_close_a_to_that_answers_only_after_eof(procs):
    need_tool("socat")
    to, here = free_port(), free_port()
    server = procs.start(["socat", f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr,fork",
                          "EXEC:sha256sum"])
    wait_listening(to, proc=server)
    forward(procs, f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    data = os.urandom(8 << 20)
    with tcp(here)() as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = read_all(s)
    assert answer.split()[0].decode() == sha(data)


def _resetting_server():
    """Reads a little, then closes with SO_LINGER 0: a reset."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve():
        conn, _ = listener.accept()
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        listener.close()
    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def test_a_reset_from_to_reaches_the_client_as_a_reset(procs):
    to, here = _resetting_server(), free_port()
    fwd = forward(procs, "--json", f"127.0.0.1:{here}", f"127.0.0.1:{to}",
                  stdout=subprocess.PIPE)
    with tcp(here)() as s:
        s.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            while s.recv(100):
                pass
    time.sleep(0.3)
    out, _ = stop(fwd)
    assert records(out)[0]["closed_by"] == "target"


def test_a_reset_from_the_client_reaches_to_as_a_reset(procs):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    here = free_port()
    forward(procs, f"127.0.0.1:{here}", f"127.0.0.1:{listener.getsockname()[1]}")
    client = tcp(here)()
    client.sendall(b"x")
    conn, _ = listener.accept()
    conn.settimeout(10)
    assert conn.recv(1) == b"x"
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    with pytest.raises(ConnectionResetError):
        conn.recv(1)
    conn.close()
    listener.close()


def test_a_refusing_to_gives_each_client_a_reset_and_a_line(procs):
    to, here = free_port(), free_port()  # nothing listens on `to`
    fwd = forward(procs, f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    for _ in range(2):
        assert_reset(tcp(here))
    time.sleep(0.2)
    assert fwd.poll() is None  # still serving
    _, err = stop(fwd)
    lines = [line for line in err.decode().splitlines() if "refused" in line]
    assert len(lines) == 2, err
    assert lines[0].startswith("pysock: 127.0.0.1:") and f"127.0.0.1:{to}" in lines[0]


def _silent_listener():
    """A listener whose accept queue is full: further SYNs are dropped, unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(listener.getsockname())
        fillers.append(s)
    time.sleep(0.2)
    return listener, fillers


def test_wait_bounds_a_to_that_never_answers(procs):
    listener, fillers = _silent_listener()
    here = free_port()
    try:
        fwd = forward(procs, "-w", "1", "--json", f"127.0.0.1:{here}",
                      f"127.0.0.1:{listener.getsockname()[1]}", stdout=subprocess.PIPE)
        started = time.monotonic()
        assert_reset(tcp(here))
        assert 0.8 < time.monotonic() - started < 5
        out, err = stop(fwd)
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert b"timed out after 1 s (-w)" in err, (out, err)
    assert records(out)[0]["closed_by"] == "timeout"


def test_idle_timeout_closes_a_quiet_connection(procs):
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    fwd = forward(procs, "-i", "0.5", "--json", f"127.0.0.1:{here}", f"127.0.0.1:{to}",
                  stdout=subprocess.PIPE)
    with tcp(here)() as s:
        s.sendall(b"ping\n")
        assert s.recv(10) == b"ping\n"
        started = time.monotonic()
        assert read_all(s) == b""  # closed by the forwarder, not by us
        assert time.monotonic() - started < 5
    time.sleep(0.2)
    out, _ = stop(fwd)
    assert records(out)[0]["closed_by"] == "idle"


# ---- many clients --------------------------------------------------------------------


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_many_concurrent_clients_data_intact_and_fds_back(procs):
    clients, size = 200, 64 << 10
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr,backlog=1024")
    fwd = forward(procs, f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    with tcp(here)() as s:  # one client first: the engine's epoll fd exists from then on
        s.sendall(b"warm")
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"warm"
    before = _fds(fwd.pid)
    payloads = [os.urandom(size) for _ in range(clients)]
    results: list = [None] * clients

    def one(i):
        with tcp(here)() as s:
            threading.Thread(target=lambda: (s.sendall(payloads[i]), s.shutdown(socket.SHUT_WR)),
                             daemon=True).start()
            results[i] = read_all(s)
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r == p for r, p in zip(results, payloads))
    deadline = time.monotonic() + 10
    while _fds(fwd.pid) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _fds(fwd.pid) <= before


def test_max_conns_turns_the_extra_client_away(procs):
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    forward(procs, "--max-conns", "1", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    with tcp(here)() as first:
        first.sendall(b"a")
        assert first.recv(1) == b"a"
        assert_turned_away(tcp(here))
    time.sleep(0.5)  # the first one's pair ends when TO has closed too
    echo_through(tcp(here), 1024)  # room again


def test_deny_turns_a_peer_away_and_allow_lets_it_in(procs):
    to, here, other = free_port(), free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    forward(procs, "--deny", "127.0.0.0/8", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    assert_turned_away(tcp(here))
    forward(procs, "--allow", "127.0.0.1", f"127.0.0.1:{other}", f"127.0.0.1:{to}")
    echo_through(tcp(other), 1024)


def test_once_serves_one_client_and_exits(procs):
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    fwd = forward(procs, "--once", "-v", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    echo_through(tcp(here), 1 << 20)
    _, err = fwd.communicate(timeout=10)
    assert fwd.returncode == 0
    assert b"1048576 bytes in, 1048576 bytes out" in err and b"the client closed first" in err


def test_once_exits_1_when_its_client_could_not_reach_to(procs):
    to, here = free_port(), free_port()  # nothing listens on `to`
    fwd = forward(procs, "--once", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    assert_reset(tcp(here))
    _, err = fwd.communicate(timeout=10)
    assert fwd.returncode == 1
    assert err.count(b"\n") == 1 and b"connection refused" in err


# ---- TLS either side --------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path):
    from test_tls import PKI
    return PKI(tmp_path)


def test_tls_listen_upload_from_s_client_with_close_notify(procs, pki, tmp_path):
    need_tool("openssl", "socat")
    to, here = free_port(), free_port()
    received = tmp_path / "received"
    sink = procs.start(["socat", "-u", f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr",
                        f"CREATE:{received}"])
    wait_listening(to, proc=sink)
    forward(procs, "--tls-listen", "--cert", pki.server[0], "--key", pki.server[1],
            f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    data = tmp_path / "data"
    data.write_bytes(os.urandom(BIG))
    with open(data, "rb") as f:
        client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{here}",
                                 "-CAfile", pki.cafile, "-servername", "localhost",
                                 "-verify_return_error", "-quiet", "-no_ign_eof", "-nocommands"],
                                stdin=f, capture_output=True, timeout=60)
    assert client.returncode == 0, client.stderr
    sink.communicate(timeout=20)  # ends at the FIN the client's close_notify became
    assert sha(received.read_bytes()) == sha(data.read_bytes())


def test_tls_listen_download_to_s_client(procs, pki, tmp_path):
    need_tool("openssl", "socat")
    to, here = free_port(), free_port()
    data = tmp_path / "data"
    data.write_bytes(os.urandom(BIG))
    source = procs.start(["socat", "-u", f"OPEN:{data}",
                          f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr"])
    wait_listening(to, proc=source)
    forward(procs, "--tls-listen", "--cert", pki.server[0], "--key", pki.server[1],
            f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{here}", "-CAfile",
                             pki.cafile, "-servername", "localhost", "-verify_return_error",
                             "-quiet"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert sha(client.stdout) == sha(data.read_bytes()), client.stderr[-300:]


def test_tls_to_socat_openssl_echo_64_mib_each_way(procs, pki):
    need_tool("socat")
    to, here = free_port(), free_port()
    # EXEC:cat, not socat's PIPE, which blocks writing to its own full pipe (see socat_echo)
    server = procs.start(["socat", f"OPENSSL-LISTEN:{to},bind=127.0.0.1,reuseaddr,fork,"
                          f"cert={pki.server[0]},key={pki.server[1]},verify=0", "EXEC:cat"])
    wait_listening(to, proc=server)
    forward(procs, "--tls", "--cafile", pki.cafile, "--sni", "localhost", f"127.0.0.1:{here}",
            f"127.0.0.1:{to}")
    echo_through(tcp(here))


def test_tls_to_openssl_s_server_verified_against_its_ca(procs, pki):
    need_tool("openssl")
    to, here = free_port(), free_port()
    server = procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{to}", "-cert",
                          pki.server[0], "-key", pki.server[1], "-quiet", "-naccept", "1"],
                         stdin=subprocess.PIPE)
    wait_listening(to, proc=server)
    forward(procs, "--tls", "--cafile", pki.cafile, f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    with tcp(here)() as s:
        s.sendall(b"through the forwarder\n")
        assert server.stdout.readline() == b"through the forwarder\n"
        server.stdin.write(b"from s_server\n")
        server.stdin.flush()
        s.settimeout(10)
        assert s.recv(100) == b"from s_server\n"


def test_tls_to_an_unknown_ca_is_refused_and_the_client_reset(procs, pki):
    need_tool("openssl")
    to, here = free_port(), free_port()
    server = procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{to}", "-cert",
                          pki.server[0], "-key", pki.server[1], "-quiet", "-naccept", "1"])
    wait_listening(to, proc=server)
    fwd = forward(procs, "--tls", "--cafile", pki.stranger_cafile, f"127.0.0.1:{here}",
                  f"127.0.0.1:{to}")
    assert_reset(tcp(here))
    _, err = stop(fwd)
    assert b"TLS verification of 127.0.0.1:" in err and b"unknown issuer" in err


# ---- UDP ---------------------------------------------------------------------------------


def test_udp_sessions_per_client_replies_routed_back_and_idle_end(procs):
    need_tool("socat")
    to, here = free_port(), free_port()
    server = procs.start(["socat", f"UDP4-RECVFROM:{to},bind=127.0.0.1,fork", "PIPE"])
    time.sleep(0.3)
    assert server.poll() is None
    fwd = forward(procs, "-u", "-i", "1", "--json", f"127.0.0.1:{here}", f"127.0.0.1:{to}",
                  stdout=subprocess.PIPE)
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    sent = {}
    for i, c in enumerate(clients):
        c.settimeout(5)
        c.bind(("127.0.0.1", 0))
        sent[i] = [os.urandom(100 + 500 * n + i) for n in range(5)]
    for n in range(5):
        for i, c in enumerate(clients):
            c.sendto(sent[i][n], ("127.0.0.1", here))
            assert c.recvfrom(65536) == (sent[i][n], ("127.0.0.1", here))
    time.sleep(2)  # every session idle for -i 1
    out, _ = stop(fwd)
    got = {(r["client_port"]): r for r in records(out)}
    for i, c in enumerate(clients):
        rec = got[c.getsockname()[1]]
        total = sum(len(d) for d in sent[i])
        assert rec["bytes_in"] == rec["bytes_out"] == total
        assert rec["closed_by"] == "idle"
        c.close()


def test_udp_refusing_to_ends_the_session_with_a_line(procs):
    to, here = free_port(), free_port()  # nothing listens on `to`
    fwd = forward(procs, "-u", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"anyone?", ("127.0.0.1", here))
        time.sleep(0.3)
        c.sendto(b"anyone?", ("127.0.0.1", here))
        time.sleep(0.3)
    _, err = stop(fwd)
    assert f"no one is listening on 127.0.0.1:{to}/udp".encode() in err


def test_udp_max_conns_deny_hexdump_and_once(procs, tmp_path):
    need_tool("socat")
    to, here = free_port(), free_port()
    procs.start(["socat", f"UDP4-RECVFROM:{to},bind=127.0.0.1,fork", "PIPE"])
    time.sleep(0.3)
    dump = tmp_path / "dump"
    fwd = forward(procs, "-u", "--once", "--max-conns", "1", "-i", "0.5", "-v", "--hexdump",
                  str(dump), f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.settimeout(5)
    second.settimeout(0.5)
    first.sendto(b"first one", ("127.0.0.1", here))
    assert first.recv(100) == b"first one"
    second.sendto(b"second one", ("127.0.0.1", here))
    with pytest.raises(TimeoutError):
        second.recv(100)  # turned away: one session at a time, and --once
    _, err = fwd.communicate(timeout=10)  # the session idles out, --once ends it
    assert fwd.returncode == 0
    assert b"9 bytes in, 9 bytes out" in err and b"--once" in err
    assert "|first one|" in dump.read_text() and "second" not in dump.read_text()
    first.close()
    second.close()
    fwd = forward(procs, "-u", "--deny", "127.0.0.1", "-v", f"127.0.0.1:{here}",
                  f"127.0.0.1:{to}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(0.5)
        c.sendto(b"denied", ("127.0.0.1", here))
        with pytest.raises(TimeoutError):
            c.recv(100)
    _, err = stop(fwd)
    assert b"not allowed by --allow/--deny" in err


# ---- PROXY protocol ------------------------------------------------------------------


def parse_proxy_header(conn: socket.socket) -> dict:
    """A small PROXY protocol reader of our own: v1 line or v2 block."""
    head = _exactly(conn, 12)
    if head == b"\r\n\r\n\x00\r\nQUIT\n":
        ver_cmd, fam, length = struct.unpack("!BBH", _exactly(conn, 4))
        body = _exactly(conn, length)
        assert ver_cmd == 0x21
        if fam == 0x11:
            src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
            return {"version": 2, "src": str(ipaddress.ip_address(src)), "sport": sport,
                    "dst": str(ipaddress.ip_address(dst)), "dport": dport}
        if fam == 0x21:
            src, dst, sport, dport = struct.unpack("!16s16sHH", body[:36])
            return {"version": 2, "src": str(ipaddress.ip_address(src)), "sport": sport,
                    "dst": str(ipaddress.ip_address(dst)), "dport": dport}
        return {"version": 2, "family": fam, "body": body}
    line = head
    while not line.endswith(b"\r\n"):
        line += _exactly(conn, 1)
    words = line.decode().split()
    assert words[0] == "PROXY"
    if words[1] == "UNKNOWN":
        return {"version": 1, "proto": "UNKNOWN"}
    return {"version": 1, "proto": words[1], "src": words[2], "dst": words[3],
            "sport": int(words[4]), "dport": int(words[5])}


def _exactly(conn, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        assert chunk, "connection closed inside the PROXY header"
        data += chunk
    return data


def _proxy_reader(family=socket.AF_INET, host="127.0.0.1"):
    listener = socket.create_server((host, 0), family=family)
    listener.settimeout(20)
    seen = {}

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            seen["header"] = parse_proxy_header(conn)
            seen["data"] = read_all(conn)
            conn.sendall(b"ok")
        listener.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], seen, thread


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_names_the_real_client(procs, version):
    to, seen, thread = _proxy_reader()
    here = free_port()
    forward(procs, "--proxy-protocol", version, f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    with tcp(here)() as s:
        s.sendall(b"after the header")
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"ok"
        me = s.getsockname()
    thread.join(10)
    header = seen["header"]
    assert header["version"] == int(version[1])
    assert (header["src"], header["sport"]) == me
    assert (header["dst"], header["dport"]) == ("127.0.0.1", here)
    assert seen["data"] == b"after the header"


def test_proxy_protocol_v1_over_ipv6(procs):
    to, seen, thread = _proxy_reader(socket.AF_INET6, "::1")
    here = free_port()
    forward(procs, "--proxy-protocol", "v1", f"[::1]:{here}", f"[::1]:{to}")
    with tcp(here, "::1")() as s:
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"ok"
        me = s.getsockname()
    thread.join(10)
    assert seen["header"]["proto"] == "TCP6"
    assert (seen["header"]["src"], seen["header"]["sport"]) == me[:2]


def test_proxy_protocol_v2_from_a_unix_client_carries_the_paths(procs, tmp_path):
    to, seen, thread = _proxy_reader()
    path = str(tmp_path / "front.sock")
    forward(procs, "--proxy-protocol", "v2", path, f"127.0.0.1:{to}")
    with unix(path)() as s:
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"ok"
    thread.join(10)
    header = seen["header"]
    assert header["family"] == 0x31  # AF_UNIX, stream
    assert header["body"][108:].rstrip(b"\0") == path.encode()  # the destination: FROM


# ---- --proxy -----------------------------------------------------------------------------


def _microsocks(procs):
    need_tool("microsocks")
    port = free_port()
    proc = procs.start(["microsocks", "-i", "127.0.0.1", "-p", str(port)])
    wait_listening(port, proc=proc)
    return port


def test_proxy_reaches_to_through_socks5(procs):
    proxy, to, here = _microsocks(procs), free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    forward(procs, "--proxy", f"127.0.0.1:{proxy}", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    # microsocks ends both ways at a FIN, and its blocking copy loop can stall against
    # an echo holding megabytes in flight: modest sizes, no FIN
    for size in (60000, 1024, 60000):
        echo_without_fin(tcp(here), size)


def test_proxy_that_cannot_reach_to_resets_the_client_with_a_line(procs):
    proxy, to, here = _microsocks(procs), free_port(), free_port()  # nothing on `to`
    fwd = forward(procs, "--proxy", f"127.0.0.1:{proxy}", f"127.0.0.1:{here}",
                  f"127.0.0.1:{to}")
    assert_reset(tcp(here))
    _, err = stop(fwd)
    assert b"proxy" in err and f"127.0.0.1:{to}".encode() in err


# ---- output --------------------------------------------------------------------------


def test_hexdump_labels_each_connection(procs, tmp_path):
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    dump = tmp_path / "dump"
    fwd = forward(procs, "--hexdump", str(dump), f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    for word in (b"first", b"second"):
        with tcp(here)() as s:
            s.sendall(word)
            s.shutdown(socket.SHUT_WR)
            assert read_all(s) == word
    stop(fwd)
    text = dump.read_text()
    assert "#1] > " in text and "#1] < " in text and "#2] > " in text
    assert "|first|" in text and "|second|" in text
    assert text.count(f"<-> 127.0.0.1:{to} #2]") == 2


def test_verbose_line_names_client_bytes_and_who_closed(procs):
    to, seen, thread = _proxy_reader()
    here = free_port()
    fwd = forward(procs, "-v", "--proxy-protocol", "v1", f"127.0.0.1:{here}", f"127.0.0.1:{to}")
    with tcp(here)() as s:
        s.sendall(b"12345")
        s.shutdown(socket.SHUT_WR)
        assert read_all(s) == b"ok"
        me = s.getsockname()
    time.sleep(0.3)
    _, err = stop(fwd)
    assert (f"pysock: 127.0.0.1:{me[1]} -> 127.0.0.1:{to}: 5 bytes in, 2 bytes out"
            in err.decode()), err
    assert b"the client closed first" in err


def test_watch_draws_a_live_table_on_a_terminal(procs):
    import pty
    to, here = free_port(), free_port()
    socat_echo(procs, f"TCP-LISTEN:{to},bind=127.0.0.1,reuseaddr")
    leader, follower = pty.openpty()
    fwd = procs.pysock("forward", "--watch", f"127.0.0.1:{here}", f"127.0.0.1:{to}",
                       stdout=follower, env=dict(os.environ, COLUMNS="120", TERM="xterm"))
    os.close(follower)
    wait_listening(here, proc=fwd)
    screen = b""
    with tcp(here)() as s:
        s.sendall(b"x" * 5000)
        deadline = time.monotonic() + 10
        while b"5000" not in screen and time.monotonic() < deadline:
            import select
            if select.select([leader], [], [], 0.5)[0]:
                screen += os.read(leader, 65536)
    stop(fwd)
    os.close(leader)
    assert b"CLIENT" in screen and b"5000" in screen and f":{to}".encode() in screen


# ---- usage and start-up errors --------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["8080"], "missing argument"),
    (["8080", "nohost"], "expected HOST:PORT"),
    (["-u", "/tmp/x.sock", "127.0.0.1:53"], "-u forwards UDP"),
    (["-u", "--tls", "53", "127.0.0.1:53"], "--tls does not apply"),
    (["--watch", "--json", "8080", "127.0.0.1:80"], "choose one"),
    (["--cafile", "/etc/hostname", "8080", "127.0.0.1:80"], "--cafile needs --tls"),
    (["--cert", "/etc/hostname", "8080", "127.0.0.1:80"], "needs --tls-listen"),
    (["--proxy", "127.0.0.1", "8080", "/tmp/x.sock"], "not a Unix socket"),
    (["--tls", "8080", "/tmp/x.sock"], "needs --sni"),
    (["--proxy-protocol", "v3", "8080", "127.0.0.1:80"], "v3"),
    (["--watch", "8080", "127.0.0.1:80"], "needs a terminal"),
    (["-u", "-w", "1", "53", "127.0.0.1:53"], "-u has none"),
    (["-u", "--backlog", "5", "53", "127.0.0.1:53"], "-u has none"),
])
def test_usage_errors(args, words):
    out = run_pysock("forward", *args)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr.decode()
    assert out.stderr.decode().startswith("pysock: ") and out.stderr.count(b"\n") == 1


def test_from_that_cannot_be_bound_exits_1():
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        out = run_pysock("forward", f"127.0.0.1:{taken.getsockname()[1]}", "127.0.0.1:9")
    finally:
        taken.close()
    assert out.returncode == 1
    assert b"already in use" in out.stderr and out.stderr.count(b"\n") == 1


# ---- the parts on their own --------------------------------------------------------


@pytest.mark.parametrize("text, bind, want", [
    ("8080", True, ("", 8080)),
    ("127.0.0.1:0", True, ("127.0.0.1", 0)),
    ("[::1]:443", False, ("::1", 443)),
    ("db.example:5432", False, ("db.example", 5432)),
])
def test_stream_place_ip(text, bind, want):
    from pysock.net.address import stream_place
    place = stream_place(text, bind=bind)
    assert (place.host, place.port) == want


@pytest.mark.parametrize("text, abstract", [("/run/x.sock", False), ("./x.sock", False),
                                            ("@name", True)])
def test_stream_place_unix(text, abstract):
    from pysock.net.address import UnixAddress, stream_place
    place = stream_place(text, bind=False)
    assert isinstance(place, UnixAddress) and place.abstract == abstract


@pytest.mark.parametrize("text", ["8080", "host", "0", "[::1]"])
def test_stream_place_to_needs_a_host_and_port(text):
    from pysock.errors import UsageError
    from pysock.net.address import stream_place
    with pytest.raises(UsageError):
        stream_place(text, bind=False)


def test_proxy_headers_byte_for_byte():
    from pysock.net.proxyproto import header
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    src, dst = client.getsockname(), listener.getsockname()
    try:
        assert header(1, accepted) == (f"PROXY TCP4 127.0.0.1 127.0.0.1 {src[1]} {dst[1]}\r\n"
                                       .encode())
        v2 = header(2, accepted)
        assert v2[:16] == b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
        assert v2[16:] == bytes([127, 0, 0, 1, 127, 0, 0, 1]) + struct.pack("!HH", src[1],
                                                                            dst[1])
    finally:
        for s in (client, accepted, listener):
            s.close()
