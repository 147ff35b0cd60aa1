"""pysock listen end to end: one client, many (-k), broker, chat, echo, exec, access."""

import os
import resource
import socket
import subprocess
import threading
import time

import pytest

from conftest import PYSOCK, free_port, need_tool, run_pysock, wait_listening
from peers import read_all


def start_listen(procs, *args, port=None, **kw):
    port = port or free_port()
    proc = procs.pysock("listen", *args, str(port), **kw)
    wait_listening(port, proc=proc)
    return proc, port


def client(port, host="127.0.0.1", data=b"", family=socket.AF_INET):
    s = socket.socket(family)
    s.settimeout(10)
    s.connect((host, port))
    if data:
        s.sendall(data)
    return s


@pytest.mark.parametrize("peer", ["nc", "ncat", "socat"])
def test_peers_connect_and_upload(peer, procs):
    need_tool(peer)
    proc, port = start_listen(procs, "127.0.0.1")
    argv = {"nc": ["nc", "-N", "127.0.0.1", str(port)], "ncat": ["ncat", "127.0.0.1", str(port)],
            "socat": ["socat", "-", f"TCP:127.0.0.1:{port}"]}[peer]
    subprocess.run(argv, input=b"hello from " + peer.encode(), timeout=10, capture_output=True)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == b"hello from " + peer.encode()


def test_default_listens_on_ipv4_and_ipv6(procs):
    proc, port = start_listen(procs, "-k")
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        c = client(port, host, b"x", family)
        c.close()
    proc.terminate()


def test_port_zero_prints_the_port(procs):
    proc = procs.pysock("listen", "127.0.0.1", "0")
    line = proc.stderr.readline().decode()
    assert line.startswith("pysock: listening on 127.0.0.1:")
    port = int(line.split(":")[2].split()[0])
    c = client(port, data=b"zero")
    c.close()
    out, _ = proc.communicate(timeout=10)
    assert out == b"zero"


def test_port_in_use_names_the_holder(procs):
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    out = run_pysock("listen", "127.0.0.1", str(port))
    assert out.returncode == 1
    assert f"127.0.0.1:{port} is already in use by python" in out.stderr.decode()
    assert f"pid {os.getpid()}" in out.stderr.decode()
    holder.close()


def test_stdin_reaches_the_client_and_half_close(procs):
    proc, port = start_listen(procs, "127.0.0.1", stdin=subprocess.PIPE)
    c = client(port)
    proc.stdin.write(b"from server")
    proc.stdin.close()  # EOF: the client should see FIN
    proc.stdin = None
    assert read_all(c) == b"from server"
    c.sendall(b"late reply")
    c.close()
    out, _ = proc.communicate(timeout=10)
    assert out == b"late reply" and proc.returncode == 0


def test_keep_open_serves_clients_at_once_and_broadcasts_stdin(procs):
    proc, port = start_listen(procs, "-k", "127.0.0.1", stdin=subprocess.PIPE)
    a, b = client(port, data=b"A"), client(port, data=b"B")
    time.sleep(0.3)
    proc.stdin.write(b"to all\n")
    proc.stdin.flush()
    assert a.recv(100) == b"to all\n" and b.recv(100) == b"to all\n"
    a.close()
    b.close()
    time.sleep(0.2)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert sorted(out.decode()) == ["A", "B"]


def test_max_conns_refuses_the_extra_client(procs):
    proc, port = start_listen(procs, "-k", "--max-conns", "1", "-v", "127.0.0.1")
    first = client(port)
    time.sleep(0.2)
    second = client(port)
    assert second.recv(10) == b""  # closed at once
    first.close()
    time.sleep(0.2)
    third = client(port, data=b"3")  # room again
    third.close()
    time.sleep(0.2)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert b"--max-conns 1 reached" in err and out == b"3"


def test_allow_and_deny(procs, tmp_path):
    denyfile = tmp_path / "deny"
    denyfile.write_text("# local test\n127.0.0.2/32\n")
    proc, port = start_listen(procs, "-k", "--denyfile", str(denyfile), "-v")
    denied = socket.socket()
    denied.bind(("127.0.0.2", 0))
    denied.settimeout(5)
    denied.connect(("127.0.0.1", port))
    assert denied.recv(10) == b""
    ok = client(port, data=b"ok")
    ok.close()
    time.sleep(0.2)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    assert out == b"ok" and b"not allowed" in err
    proc2, port2 = start_listen(procs, "-k", "--allow", "127.0.0.5")
    outsider = client(port2)
    assert outsider.recv(10) == b""
    proc2.terminate()


def test_broker_and_chat(procs):
    proc, port = start_listen(procs, "-k", "--broker", "127.0.0.1")
    a, b, c = client(port), client(port), client(port)
    time.sleep(0.3)
    a.sendall(b"hi all")
    assert b.recv(100) == b"hi all" and c.recv(100) == b"hi all"
    proc.terminate()
    proc2, port2 = start_listen(procs, "-k", "--chat", "127.0.0.1")
    x = client(port2)
    time.sleep(0.2)
    y = client(port2)
    assert x.recv(100) == b"<announce> user 2 has connected\n"
    y.sendall(b"line one\npartial")
    assert x.recv(100) == b"<user 2> line one\n"
    proc2.terminate()


def test_echo_many_clients(procs):
    proc, port = start_listen(procs, "-k", "--echo", "127.0.0.1")
    payload = os.urandom(1 << 20)
    results = []

    def one():
        c = client(port)
        t = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)))
        t.start()
        results.append(read_all(c) == payload)
        t.join()
        c.close()
    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [True] * 40
    proc.terminate()


def test_echo_single_client_then_exit(procs):
    proc, port = start_listen(procs, "--echo", "127.0.0.1")
    c = client(port, data=b"once")
    c.shutdown(socket.SHUT_WR)
    assert read_all(c) == b"once"
    assert proc.wait(10) == 0


def test_exec_gets_socket_and_environment(procs):
    proc, port = start_listen(procs, "-k", "--sh-exec",
                              'echo "$NCAT_REMOTE_ADDR $NCAT_LOCAL_PORT"; tr a-z A-Z', "127.0.0.1")
    c = client(port, data=b"shout")
    c.shutdown(socket.SHUT_WR)
    assert read_all(c) == f"127.0.0.1 {port}\nSHOUT".encode()
    proc.terminate()


def test_exec_never_uses_a_shell(procs, tmp_path):
    proc, port = start_listen(procs, "--exec", "echo $HOME;", "127.0.0.1")
    c = client(port)
    assert read_all(c) == b"$HOME;\n"  # echo got the literal argument
    assert proc.wait(10) == 0


def test_idle_clients_are_closed(procs):
    proc, port = start_listen(procs, "-k", "-i", "0.3", "-v", "127.0.0.1", stdin=subprocess.PIPE)
    c = client(port)
    start = time.monotonic()
    assert c.recv(10) == b""
    assert time.monotonic() - start < 3
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert b"idle for 0.3 s" in err


def test_slow_client_does_not_stall_others(procs):
    """A client that never reads is dropped; the others keep getting stdin."""
    proc, port = start_listen(procs, "-k", "127.0.0.1", stdin=subprocess.PIPE)
    lazy = client(port)
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader = client(port)
    got = []
    t = threading.Thread(target=lambda: got.append(len(read_all(reader))), daemon=True)
    t.start()
    time.sleep(0.2)
    chunk = b"z" * (1 << 20)
    for _ in range(32):
        proc.stdin.write(chunk)
    proc.stdin.close()
    proc.stdin = None
    t.join(30)
    assert got == [32 << 20]
    time.sleep(1.5)  # the lazy one has taken nothing for over a second: it is dropped
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert b"dropped: not reading" in err
    lazy.close()


def test_emfile_keeps_serving_and_says_why(procs):
    port = free_port()

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))
    proc = subprocess.Popen([*PYSOCK, "listen", "-k", "--echo", "127.0.0.1", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=low_limit, start_new_session=True)
    procs.started.append(proc)
    wait_listening(port, proc=proc)
    clients = [client(port) for _ in range(30)]
    time.sleep(1.5)
    clients[0].sendall(b"still here")
    assert clients[0].recv(100) == b"still here"
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert b"too many open files (limit 24" in err
    assert b"Traceback" not in err
    for c in clients:
        c.close()


def test_accept_timeout():
    out = run_pysock("listen", "-w", "0.3", "127.0.0.1", str(free_port()))
    assert out.returncode == 1 and b"no client connected within 0.3 s" in out.stderr


def test_traditional_dash_p(procs):
    port = free_port()
    proc = procs.pysock("listen", "-p", str(port))
    wait_listening(port, proc=proc)
    client(port, data=b"p").close()
    out, _ = proc.communicate(timeout=10)
    assert out == b"p"


@pytest.mark.parametrize("args,words", [
    (["70000"], "out of range"), (["abc"], "service name"), ([], "missing PORT"),
    (["--echo", "--broker", "9"], "exclude each other"), (["--allow", "10.0.0.0/33", "9"], "CIDR"),
    (["--exec", "", "9"], "needs a program"), (["256.0.0.1", "9"], "not a valid IPv4"),
])
def test_bad_input(args, words):
    out = run_pysock("listen", *args)
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert err.count("\n") == 1 and words in err, err


def test_into_dev_null_the_kernel_drops_the_bytes_and_every_one_is_counted(procs):
    """listen > /dev/null reads with MSG_TRUNC (nothing copied out of the kernel), and
    -v still counts every byte the client sent."""
    need_tool("strace")
    size = (8 << 20) + 4321
    port = free_port()
    with open(os.devnull, "wb") as null:
        proc = procs.start(["strace", "-f", "-e", "trace=recvfrom", "-o", "/dev/stderr",
                            *PYSOCK, "listen", "-v", "127.0.0.1", str(port)], stdout=null)
        wait_listening(port, proc=proc)
        with client(port) as c:
            c.sendall(os.urandom(size))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert b"MSG_TRUNC" in err
    assert f"received {size} bytes".encode() in err
