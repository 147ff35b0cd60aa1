"""pysock unix end to end: socat/nc/ncat as peers (stream and dgram, both roles),
seqpacket, abstract names, the socket file's life (stale, live, not a socket, mode,
removal on exit and signals), credentials, descriptor passing and the errors."""

import os
import signal
import socket
import stat
import subprocess
import time

import pytest

from conftest import PYSOCK, need_tool, run_pysock
from peers import read_all


def ready(path: str) -> bool:
    """Bound to path and, for a stream or seqpacket socket, listening (bound is not
    enough: a connect between bind and listen is refused)."""
    with open("/proc/net/unix") as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 8 and cols[-1] == path:
                if cols[4] == "0002" or int(cols[3], 16) & 0x10000:
                    return True
    return False


def wait_unix(path: str, proc=None, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read()!r}")
        if ready(path):
            return
        time.sleep(0.02)
    raise AssertionError(f"nobody bound {path}")


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "test.sock")


def unix_client(path, data=b"", kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    s.settimeout(10)
    s.connect(path if not path.startswith("@") else "\0" + path[1:])
    if data:
        s.sendall(data)
    return s


# ---- peers: stream -----------------------------------------------------------------------

STREAM_SERVERS = {
    "socat": lambda p: ["socat", "-u", f"UNIX-LISTEN:{p}", "-"],
    "nc": lambda p: ["nc", "-lU", p],
    "ncat": lambda p: ["ncat", "--recv-only", "-lU", p],
}
STREAM_CLIENTS = {
    "socat": lambda p: ["socat", "-u", "-", f"UNIX-CONNECT:{p}"],
    "nc": lambda p: ["nc", "-N", "-U", p],
    "ncat": lambda p: ["ncat", "--send-only", "-U", p],
}


@pytest.mark.parametrize("peer", sorted(STREAM_SERVERS))
def test_stream_client_to_peer_server(peer, procs, sock_path, tmp_path):
    need_tool(peer)
    received = tmp_path / "received"
    with open(received, "wb") as sink:
        server = procs.start(STREAM_SERVERS[peer](sock_path), stdout=sink)
    wait_unix(sock_path, server)
    payload = os.urandom(1 << 20)
    out = run_pysock("unix", sock_path, input=payload)
    assert out.returncode == 0, out.stderr
    server.communicate(timeout=20)
    assert received.read_bytes() == payload


@pytest.mark.parametrize("peer", sorted(STREAM_CLIENTS))
def test_peer_client_to_stream_server(peer, procs, sock_path):
    need_tool(peer)
    server = procs.pysock("unix", "-l", sock_path)
    wait_unix(sock_path, server)
    payload = os.urandom(1 << 20)
    subprocess.run(STREAM_CLIENTS[peer](sock_path), input=payload, timeout=20, capture_output=True)
    got, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert got == payload
    assert not os.path.exists(sock_path)


def test_half_close_then_the_reply(procs, sock_path):
    need_tool("socat")
    # the server answers only after it has seen the end of our input
    server = procs.start(["socat", f"UNIX-LISTEN:{sock_path}", "SYSTEM:'wc -c'"])
    wait_unix(sock_path, server)
    out = run_pysock("unix", sock_path, input=b"x" * 1000)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"1000"


# ---- peers: dgram ------------------------------------------------------------------------

DGRAM_SERVERS = {
    "socat": lambda p: ["socat", "-u", f"UNIX-RECV:{p}", "-"],
    "nc": lambda p: ["nc", "-lUu", p],
    "ncat": lambda p: ["ncat", "-lU", "--udp", p],
}
DGRAM_CLIENTS = {
    "socat": lambda p: ["socat", "-u", "-", f"UNIX-SENDTO:{p}"],
    "nc": lambda p: ["nc", "-Uu", "-w1", p],
    "ncat": lambda p: ["ncat", "-U", "--udp", "--send-only", p],
}


@pytest.mark.parametrize("peer", sorted(DGRAM_SERVERS))
def test_dgram_client_to_peer_server(peer, procs, sock_path):
    need_tool(peer)
    server = procs.start(DGRAM_SERVERS[peer](sock_path))
    wait_unix(sock_path, server)
    # -q 1: stay a moment, as ncat connects back to its first sender before reading it
    out = run_pysock("unix", "-u", "-q", "1", sock_path, input=b"one\ntwo\n")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    got = b""
    os.set_blocking(server.stdout.fileno(), False)
    while got != b"one\ntwo\n" and time.monotonic() < deadline:
        try:
            got += os.read(server.stdout.fileno(), 100) or b""
        except BlockingIOError:
            time.sleep(0.05)
    assert got == b"one\ntwo\n"


@pytest.mark.parametrize("peer", sorted(DGRAM_CLIENTS))
def test_peer_dgram_client_to_pysock_server(peer, procs, sock_path):
    need_tool(peer)
    server = procs.pysock("unix", "-l", "-k", "--type", "dgram", "--json", sock_path)  # --show implied
    wait_unix(sock_path, server)
    subprocess.run(DGRAM_CLIENTS[peer](sock_path), input=b"datagram\n", timeout=20,
                   capture_output=True)
    line = server.stdout.readline()
    import json
    record = json.loads(line)
    assert record["bytes"] == 9 and record["head_text"] == "datagram."


def test_dgram_server_replies_to_its_sender(procs, sock_path):
    server = procs.pysock("unix", "-l", "-u", "--echo", sock_path)
    wait_unix(sock_path, server)
    out = run_pysock("unix", "-u", "-q", "1", sock_path, input=b"ping\npong\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"ping\npong\n"


def test_seqpacket_keeps_boundaries_and_ends(procs, sock_path):
    server = procs.pysock("unix", "-l", "--type", "seqpacket", "--show", "--json", sock_path)
    wait_unix(sock_path, server)
    c = unix_client(sock_path, kind=socket.SOCK_SEQPACKET)
    c.send(b"first")
    c.send(b"second message")
    c.close()
    out, err = server.communicate(timeout=10)
    import json
    assert [json.loads(x)["bytes"] for x in out.splitlines()] == [5, 14]
    assert server.returncode == 0, err


@pytest.mark.parametrize("mode", ["--echo", "--broker"])
def test_seqpacket_server_keeps_many_clients(mode, procs, sock_path):
    """-k with a seqpacket socket: each client's messages are relayed whole (echo back
    to the sender, broker to the others), and the server outlives its clients."""
    server = procs.pysock("unix", "-l", "-k", "--type", "seqpacket", mode, sock_path)
    wait_unix(sock_path, server)
    for round_ in range(2):
        a = unix_client(sock_path, kind=socket.SOCK_SEQPACKET)
        b = unix_client(sock_path, kind=socket.SOCK_SEQPACKET) if mode == "--broker" else a
        time.sleep(0.2)  # both accepted before the first message
        a.send(b"hello %d" % round_)
        assert b.recv(100) == b"hello %d" % round_
        for s in {a, b}:
            s.close()
    assert server.poll() is None


# ---- abstract names ------------------------------------------------------------------------


def test_abstract_names_both_ways(procs, tmp_path):
    need_tool("socat")
    name = f"pysock-test-{os.getpid()}"
    server = procs.start(["socat", "-u", f"ABSTRACT-LISTEN:{name}", "-"])
    wait_unix("@" + name, server)
    assert run_pysock("unix", "@" + name, input=b"to socat").returncode == 0
    assert server.communicate(timeout=10)[0] == b"to socat"
    server = procs.pysock("unix", "-l", "@" + name, cwd=tmp_path)
    wait_unix("@" + name, server)
    subprocess.run(["socat", "-u", "-", f"ABSTRACT-CONNECT:{name}"], input=b"to pysock",
                   timeout=10)
    assert server.communicate(timeout=10)[0] == b"to pysock"
    assert os.listdir(tmp_path) == []


# ---- the socket file -----------------------------------------------------------------------


def test_stale_file_is_replaced_and_said(procs, sock_path):
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(sock_path)
    dead.close()
    server = procs.pysock("unix", "-l", sock_path)
    wait_unix(sock_path, server)
    unix_client(sock_path, b"after").close()
    out, err = server.communicate(timeout=10)
    assert out == b"after"
    assert f"replaced {sock_path}: a stale socket file nobody was listening on" in err.decode()


def test_live_server_is_refused_and_named(procs, sock_path):
    need_tool("socat")
    holder = procs.start(["socat", f"UNIX-LISTEN:{sock_path}", "-"])
    wait_unix(sock_path, holder)
    out = run_pysock("unix", "-l", sock_path)
    assert out.returncode == 1
    assert out.stderr.decode() == (f"pysock: {sock_path} is in use by socat (pid {holder.pid}): "
                                   f"a server is listening on it\n")
    assert holder.poll() is None  # undisturbed: its one client is still to come
    c = unix_client(sock_path, b"still there")
    c.close()


def test_non_socket_is_left_alone(tmp_path):
    path = tmp_path / "precious"
    path.write_bytes(b"do not delete")
    out = run_pysock("unix", "-l", str(path))
    assert out.returncode == 1
    assert "exists and is not a socket; leaving it alone" in out.stderr.decode()
    assert path.read_bytes() == b"do not delete"


def test_mode_is_never_wider(sock_path):
    """With umask 0 the file would appear as 0777 before a chmod; watch for it."""
    proc = subprocess.Popen([*PYSOCK, "unix", "-l", "--mode", "0660", sock_path],
                            preexec_fn=lambda: os.umask(0), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    modes = set()
    try:
        deadline = time.monotonic() + 10
        while not _listed(sock_path):  # from before the file exists until it serves
            try:
                modes.add(stat.S_IMODE(os.lstat(sock_path).st_mode))
            except FileNotFoundError:
                pass
            assert time.monotonic() < deadline
        for _ in range(100):
            modes.add(stat.S_IMODE(os.lstat(sock_path).st_mode))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert modes == {0o660}


def _listed(path: str) -> bool:
    with open("/proc/net/unix") as f:
        return any(line.split()[-1] == path for line in f if len(line.split()) >= 8)


@pytest.mark.parametrize("how,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_file_removed_on_signals(how, status, procs, sock_path):
    server = procs.pysock("unix", "-l", "-k", sock_path)
    wait_unix(sock_path, server)
    server.send_signal(how)
    _, err = server.communicate(timeout=10)
    # A shell sees 128+N either way: exit(128+N), or Python re-raising the signal on
    # its way out (seen here about once in twelve runs, with clean-up done).
    assert server.returncode in (status, -how), err
    assert b"Traceback" not in err
    assert not os.path.exists(sock_path)


def test_file_removed_after_one_client_and_not_if_replaced(procs, sock_path, tmp_path):
    server = procs.pysock("unix", "-l", "-k", sock_path)
    wait_unix(sock_path, server)
    os.unlink(sock_path)
    other = socket.socket(socket.AF_UNIX)
    other.bind(sock_path)  # someone else's now
    server.terminate()
    server.communicate(timeout=10)
    assert os.path.exists(sock_path)
    other.close()


# ---- credentials and descriptors --------------------------------------------------------------


def test_verbose_names_the_peer_process(procs, sock_path):
    need_tool("socat")
    server = procs.pysock("unix", "-l", "-v", sock_path)
    wait_unix(sock_path, server)
    # socat stays until the report is out: a process name is read while it lives
    client = procs.start(["socat", "-u", "-", f"UNIX-CONNECT:{sock_path}"], stdin=subprocess.PIPE)
    line = server.stderr.readline().decode()
    while "connection from" not in line and line:
        line = server.stderr.readline().decode()
    client.stdin.close()
    client.stdin = None
    assert line.strip() == (f"pysock: connection from pid {client.pid} (socat), "
                            f"uid {os.getuid()}, gid {os.getgid()}")
    server.communicate(timeout=10)


def test_client_verbose_names_the_server(procs, sock_path):
    server = procs.pysock("unix", "-l", sock_path)
    wait_unix(sock_path, server)
    out = run_pysock("unix", "-v", sock_path, input=b"x")
    assert f"(server: pid {server.pid} (python" in out.stderr.decode()


@pytest.mark.parametrize("kind", ["stream", "dgram"])
def test_send_fd_show_and_cat(kind, procs, sock_path, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"the file's content\n")
    server = procs.pysock("unix", "-l", "--type", kind, "--show-fds", "--cat-fds", sock_path)
    wait_unix(sock_path, server)
    out = run_pysock("unix", "--type", kind, "-q", "0.5", "--send-fd", str(secret), sock_path,
                     input=b"")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 10
    got = b""
    os.set_blocking(server.stdout.fileno(), False)
    while b"content\n" not in got and time.monotonic() < deadline:
        try:
            got += os.read(server.stdout.fileno(), 4096)
        except BlockingIOError:
            time.sleep(0.05)
    assert b"the file's content\n" in got
    server.terminate()
    _, err = server.communicate(timeout=10)
    assert f"-> {secret} (regular file, 19 bytes, read-only)" in err.decode()


def test_send_creds_as_root_claims_other_ids(procs, sock_path):
    if os.geteuid() != 0:
        pytest.skip("only root may send other credentials")
    server = procs.pysock("unix", "-l", "-u", "-v", sock_path)
    wait_unix(sock_path, server)
    run_pysock("unix", "-u", "-q", "0", "--send-creds", f"{os.getpid()}:4242:4343", sock_path,
               input=b"x\n")
    deadline = time.monotonic() + 10
    err = b""
    os.set_blocking(server.stderr.fileno(), False)
    while b"uid 4242" not in err and time.monotonic() < deadline:
        try:
            err += os.read(server.stderr.fileno(), 4096)
        except BlockingIOError:
            time.sleep(0.05)
    assert b"uid 4242, gid 4343" in err


# ---- many clients, echo, exec, idle ----------------------------------------------------------


def test_keep_open_echo_and_max_conns(procs, sock_path):
    server = procs.pysock("unix", "-l", "-k", "--echo", "--max-conns", "1", "-v", sock_path)
    wait_unix(sock_path, server)
    first = unix_client(sock_path, b"echo me")
    assert first.recv(100) == b"echo me"
    second = unix_client(sock_path)
    assert second.recv(100) == b""  # turned away
    first.close()
    time.sleep(0.2)
    third = unix_client(sock_path, b"again")
    third.shutdown(socket.SHUT_WR)
    assert read_all(third) == b"again"


def test_exec_gets_the_path_and_the_peer(procs, sock_path):
    server = procs.pysock("unix", "-l", "-k", "--sh-exec",
                          'echo "$PYSOCK_UNIX_PATH $PYSOCK_PEER_PID $NCAT_PROTO"', sock_path)
    wait_unix(sock_path, server)
    c = unix_client(sock_path)
    assert read_all(c).decode().split() == [sock_path, str(os.getpid()), "UNIX"]


def test_idle_timeout(procs, sock_path):
    server = procs.pysock("unix", "-l", "-i", "0.5", sock_path)
    wait_unix(sock_path, server)
    c = unix_client(sock_path)
    _, err = server.communicate(timeout=10)
    assert server.returncode == 1
    assert "idle for 0.5 s" in err.decode()
    c.close()


# ---- errors -------------------------------------------------------------------------------------


def test_path_too_long_names_the_limit(tmp_path):
    out = run_pysock("unix", "/tmp/" + "x" * 120)
    assert out.returncode == 2
    assert "longer than the kernel's limit of 107" in out.stderr.decode()


def test_missing_file_and_stale_file(tmp_path):
    missing = run_pysock("unix", str(tmp_path / "none.sock"))
    assert missing.returncode == 1
    assert "no such socket file" in missing.stderr.decode()
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()
    out = run_pysock("unix", str(stale))
    assert out.returncode == 1
    assert "nobody is listening on" in out.stderr.decode() and "stale" in out.stderr.decode()


def test_wrong_type_says_so(procs, sock_path):
    server = procs.pysock("unix", "-l", "-u", sock_path)
    wait_unix(sock_path, server)
    out = run_pysock("unix", sock_path)
    assert out.returncode == 1
    assert "is not a stream socket (try --type dgram or seqpacket)" in out.stderr.decode()


def test_wrong_type_on_an_abstract_name_says_so_too(procs):
    """The kernel answers ECONNREFUSED there, not EPROTOTYPE: its table tells the type."""
    name = f"@pysock-seqpacket-{os.getpid()}"
    server = procs.pysock("unix", "-l", "-t", "seqpacket", name)  # one client
    deadline = time.monotonic() + 10
    while name not in open("/proc/net/unix").read() and time.monotonic() < deadline:
        assert server.poll() is None
        time.sleep(0.05)
    out = run_pysock("unix", name, input=b"")
    assert (out.returncode, out.stderr.decode()) == (
        1, f"pysock: {name} is not a stream socket (try --type seqpacket)\n")
    out = run_pysock("unix", "-t", "seqpacket", name, input=b"hi\n")  # the server is still there
    assert out.returncode == 0, out.stderr
    assert server.stdout.read() == b"hi\n" and server.wait(10) == 0
    out = run_pysock("unix", name + "-nobody", input=b"")
    assert out.stderr.decode() == f"pysock: nobody is listening on abstract socket {name}-nobody\n"


def test_listening_where_no_socket_file_can_be_says_why():
    out = run_pysock("unix", "-l", "/proc/pysock-test.sock")
    assert (out.returncode, out.stderr.decode()) == (
        1, "pysock: cannot create /proc/pysock-test.sock: /proc is on a proc file system, "
           "which cannot hold socket files\n")
    out = run_pysock("unix", "-l", "/nonexistent-dir/a.sock")
    assert out.stderr.decode() == ("pysock: cannot create /nonexistent-dir/a.sock: directory "
                                   "/nonexistent-dir does not exist\n")


@pytest.fixture
def open_dir():
    """A directory everyone may enter (pytest's own tmp_path is private to root)."""
    import pathlib
    import shutil
    import tempfile
    path = pathlib.Path(tempfile.mkdtemp(prefix="pysock-test-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_permission_denied_names_the_directory(open_dir):
    need_tool("setpriv")
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    tmp_path = open_dir
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    out = subprocess.run([*as_nobody, *PYSOCK, "unix", "-l", str(locked / "s.sock")],
                         capture_output=True, timeout=20)
    assert out.returncode == 1
    assert f"no search permission on directory {locked}" in out.stderr.decode()
    writable_not = tmp_path / "ro"
    writable_not.mkdir(mode=0o755)
    out = subprocess.run([*as_nobody, *PYSOCK, "unix", "-l", str(writable_not / "s.sock")],
                         capture_output=True, timeout=20)
    assert f"no write permission on directory {writable_not}" in out.stderr.decode()
    private = socket.socket(socket.AF_UNIX)
    umask = os.umask(0o077)
    try:
        private.bind(str(tmp_path / "private.sock"))
    finally:
        os.umask(umask)
    private.listen()
    out = subprocess.run([*as_nobody, *PYSOCK, "unix", str(tmp_path / "private.sock")],
                         capture_output=True, timeout=20)
    assert out.returncode == 1
    assert "no write permission on the socket file" in out.stderr.decode()
    private.close()


def test_usage_errors():
    out = run_pysock("unix", "--echo", "/tmp/x.sock")
    assert out.returncode == 2 and "--echo only applies with -l" in out.stderr.decode()
    out = run_pysock("unix", "--chunk", "4", "/tmp/x.sock")
    assert out.returncode == 2 and "applies to --type dgram or seqpacket" in out.stderr.decode()
    out = run_pysock("unix", "-l", "--mode", "999", "/tmp/x.sock")
    assert out.returncode == 2


# ---- the remaining options ------------------------------------------------------------------


def test_broker_between_unix_clients(procs, sock_path):
    server = procs.pysock("unix", "-l", "-k", "--broker", sock_path)
    wait_unix(sock_path, server)
    a, b = unix_client(sock_path), unix_client(sock_path)
    time.sleep(0.2)
    a.sendall(b"to everyone else")
    assert b.recv(100) == b"to everyone else"


def test_wait_bounds_both_sides(sock_path):
    out = run_pysock("unix", "-l", "-w", "0.3", sock_path)
    assert out.returncode == 1 and "no client connected within 0.3 s" in out.stderr.decode()
    assert not os.path.exists(sock_path)


def test_dgram_chunks_and_truncation(procs, sock_path):
    server = procs.pysock("unix", "-l", "-u", "--buffer", "4", "-i", "1", sock_path)
    wait_unix(sock_path, server)
    out = run_pysock("unix", "-u", "-q", "0", "--chunk", "6", sock_path, input=b"abcdefgh")
    assert out.returncode == 0, out.stderr
    got, err = server.communicate(timeout=10)
    assert got == b"abcdefgh"[:4] + b"gh"  # 6 bytes cut to 4, then the last 2
    assert "was 6 bytes; only the first 4 were kept" in err.decode()
    assert server.returncode == 1


def test_dgram_too_big_names_the_send_buffer(procs, sock_path):
    server = procs.pysock("unix", "-l", "-u", sock_path)
    wait_unix(sock_path, server)
    out = run_pysock("unix", "-u", "--sockopt", "sndbuf=64K", "--chunk", "300000", sock_path,
                     input=b"z" * 300000)
    assert out.returncode == 1
    text = out.stderr.decode()
    assert "datagram of 300000 bytes is too large for this Unix socket (its send buffer is" in text
