"""Opening endpoints and translating errno, against real sockets."""

import os
import resource
import socket

import pytest

from pysock.errors import ExitStatus, NetworkError
from pysock.net.address import parse_unix
from pysock.net.endpoints import (
    ClientSpec,
    SocketChannel,
    StdioChannel,
    connect,
    fd_kind,
    listen,
)
from pysock.net.unixsock import connect_unix

from conftest import free_port, need_root


def test_connect_and_channel_roundtrip():
    server = listen("127.0.0.1", 0)
    port = server.getsockname()[1]
    client = SocketChannel(connect(ClientSpec("127.0.0.1", port)))
    conn, _ = server.accept()
    client.send(b"ping")
    assert conn.recv(10) == b"ping"
    client.shutdown_write()
    assert conn.recv(10) == b""  # FIN seen
    conn.sendall(b"pong")
    assert client.recv(10) == b"pong"
    assert client.peer == f"127.0.0.1:{port}"
    for s in (client, conn, server):
        s.close()


def test_refused_names_the_address():
    port = free_port()
    with pytest.raises(NetworkError, match=f"connection refused by 127.0.0.1:{port}") as exc:
        connect(ClientSpec("127.0.0.1", port))
    assert exc.value.status == ExitStatus.FAILURE


def test_refused_on_every_address_lists_them():
    port = free_port()
    with pytest.raises(NetworkError, match="refused") as exc:
        connect(ClientSpec("localhost", port))
    assert "localhost" in str(exc.value) or "127.0.0.1" in str(exc.value)


def test_source_address_and_port():
    server = listen("127.0.0.1", 0)
    src_port = free_port()
    sock = connect(ClientSpec("127.0.0.1", server.getsockname()[1], source="127.0.0.2",
                              source_port=src_port))
    conn, peer = server.accept()
    assert peer == ("127.0.0.2", src_port)
    for s in (sock, conn, server):
        s.close()


def test_dual_stack_listen_by_default():
    server = listen(None, 0)
    port = server.getsockname()[1]
    assert server.family == socket.AF_INET6
    for host in ("127.0.0.1", "::1"):
        c = connect(ClientSpec(host, port))
        conn, _ = server.accept()
        c.close()
        conn.close()
    server.close()


def test_family_restricts_listen():
    server = listen(None, 0, family=4)
    assert server.family == socket.AF_INET
    port = server.getsockname()[1]
    with pytest.raises(NetworkError, match="refused"):
        connect(ClientSpec("::1", port))
    server.close()


def test_address_in_use_names_the_holder():
    holder = listen("127.0.0.1", 0, family=4)
    port = holder.getsockname()[1]
    with pytest.raises(NetworkError) as exc:
        listen("127.0.0.1", port, family=4)
    msg = str(exc.value)
    assert f"127.0.0.1:{port} is already in use" in msg
    assert f"pid {os.getpid()}" in msg
    holder.close()


def test_address_not_available():
    with pytest.raises(NetworkError, match="no interface"):
        listen("192.0.2.77", 0, numeric=True)


def test_privileged_port_says_why():
    """Without CAP_NET_BIND_SERVICE, binding port 80 says what is missing."""
    import subprocess
    import sys

    from conftest import need, need_tool
    need_root()
    need_tool("setpriv")
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        need("ports below 80 are unprivileged here", int(f.read()) > 80)
    code = ("from pysock.net.endpoints import listen\n"
            "from pysock.errors import PysockError\n"
            "try:\n    listen('127.0.0.1', 80, family=4)\n"
            "except PysockError as e:\n    print(e)\n")
    out = subprocess.run(["setpriv", "--bounding-set", "-net_bind_service", sys.executable, "-c",
                          code], capture_output=True, text=True, timeout=20)
    assert "CAP_NET_BIND_SERVICE" in out.stdout, out


def test_connect_timeout(lab):
    """A silent drop (nftables inside a namespace) makes connect time out, on time."""
    import netns
    a, b = netns.two_hosts(lab)
    b.nft("table inet t {\n chain in {\n type filter hook input priority 0;\n tcp dport 9 drop\n }\n}")
    code = (f"from pysock.net.endpoints import ClientSpec, connect\n"
            f"from pysock.errors import PysockError\n"
            f"try:\n    connect(ClientSpec('{b.addr}', 9, timeout=0.5))\n"
            f"except PysockError as e:\n    print(e)\n")
    import sys
    out = a.run(sys.executable, "-c", code, timeout=20)
    assert f"connection to {b.addr}:9 timed out after 0.5s" in out.stdout


def test_emfile_says_the_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = listen("127.0.0.1", 0)
    port = server.getsockname()[1]
    held = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        with pytest.raises(NetworkError, match="too many open files \\(limit 64"):
            for _ in range(100):
                held.append(connect(ClientSpec("127.0.0.1", port)))
    finally:
        for s in held:
            s.close()
        server.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_unix_missing_file(tmp_path):
    with pytest.raises(NetworkError, match="no such socket file"):
        connect_unix(parse_unix(str(tmp_path / "none.sock")))


def test_unix_stale_socket_file(tmp_path):
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens: what a crashed server leaves
    with pytest.raises(NetworkError, match="stale socket file"):
        connect_unix(parse_unix(path))


def test_unix_not_a_socket(tmp_path):
    path = tmp_path / "plain"
    path.write_text("x")
    with pytest.raises(NetworkError, match="not a socket"):
        connect_unix(parse_unix(str(path)))


def test_unix_abstract_roundtrip():
    name = f"@pysock-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX)
    server.bind(parse_unix(name).sockaddr)
    server.listen()
    c = connect_unix(parse_unix(name))
    conn, _ = server.accept()
    c.sendall(b"hi")
    assert conn.recv(2) == b"hi"
    for s in (c, conn, server):
        s.close()
    with pytest.raises(NetworkError, match="nobody is listening on abstract socket"):
        connect_unix(parse_unix(name))


def test_stdio_channel_and_fd_kinds(tmp_path):
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    ch = StdioChannel(r, out_w)
    os.write(w, b"abc")
    assert ch.recv(10) == b"abc"
    ch.send(b"xyz")
    assert os.read(out_r, 10) == b"xyz"
    ch.shutdown_write()
    assert os.read(out_r, 10) == b""  # the reader sees EOF
    assert fd_kind(r) == "pipe"
    f = open(tmp_path / "f", "wb")
    assert fd_kind(f.fileno()) == "file"
    with socket.socket() as s:
        assert fd_kind(s.fileno()) == "socket"
    f.close()
    for fd in (r, w, out_r):
        os.close(fd)
