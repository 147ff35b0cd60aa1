"""pysock connect end to end: a real subprocess against real peers."""

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import PYSOCK, free_port, need_tool, run_pysock, wait_listening
from peers import Server, read_all, sha


def test_sends_stdin_and_prints_reply_after_eof():
    srv = Server(lambda c: (c.sendall(b"got " + read_all(c)), None)[1])
    out = run_pysock("connect", "127.0.0.1", str(srv.port), input=b"QUIT\r\n")
    srv.join()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"got QUIT\r\n"
    assert out.stderr == b""


def test_host_colon_port_and_ipv6_brackets():
    srv = Server(lambda c: c.sendall(b"v6"), family=socket.AF_INET6, host="::1")
    out = run_pysock("connect", f"[::1]:{srv.port}", input=b"")
    srv.join()
    assert out.stdout == b"v6" and out.returncode == 0


def test_half_close_server_answers_after_eof(procs, port):
    """A server that replies only after reading EOF (wc -c) gets its EOF from pysock."""
    need_tool("socat")
    server = procs.start(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "SYSTEM:wc -c"])
    wait_listening(port, proc=server)
    out = run_pysock("connect", "127.0.0.1", str(port), input=b"x" * 1000)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"1000"


def test_no_shutdown_means_the_server_never_sees_eof(procs, port):
    need_tool("socat")
    server = procs.start(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "SYSTEM:wc -c"])
    wait_listening(port, proc=server)
    out = run_pysock("connect", "--no-shutdown", "-q", "0.5", "127.0.0.1", str(port),
                     input=b"abc")
    assert out.returncode == 0 and out.stdout == b""


def test_quit_after_eof_bounds_the_wait():
    srv = Server(lambda c: (read_all(c), time.sleep(3))[0])  # never closes its side in time
    start = time.monotonic()
    out = run_pysock("connect", "-q", "0.3", "-v", "127.0.0.1", str(srv.port), input=b"hi\n")
    assert out.returncode == 0
    assert time.monotonic() - start < 5
    assert b"quit 0.3 s after end of input" in out.stderr


def test_recv_only_never_reads_stdin():
    def quiet_client(c):
        c.sendall(b"hello")
        c.settimeout(1)
        try:
            return c.recv(10)  # -d sends neither data nor FIN (nc -d; issue 16)
        except TimeoutError:
            return "nothing"
    srv = Server(quiet_client)
    proc = subprocess.Popen([*PYSOCK, "connect", "-d", "127.0.0.1", str(srv.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"should not be sent")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=10)  # the server closes: pysock ends
    assert out == b"hello" and srv.join() == "nothing"


def test_send_only_exits_when_input_is_sent():
    srv = Server(lambda c: (read_all(c), time.sleep(3))[0])  # holds the connection open
    start = time.monotonic()
    out = run_pysock("connect", "--send-only", "127.0.0.1", str(srv.port), input=b"data")
    assert out.returncode == 0 and time.monotonic() - start < 2.5
    assert srv.join() == b"data"


def test_upload_continues_after_the_peer_closes_its_side():
    data = os.urandom(8 << 20)

    def handler(conn):
        conn.sendall(b"ready\n")
        conn.shutdown(socket.SHUT_WR)
        return read_all(conn)
    srv = Server(handler)
    out = run_pysock("connect", "127.0.0.1", str(srv.port), input=data)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"ready\n"
    assert sha(srv.join()) == sha(data)


def test_exit_on_peer_close_does_not_wait_for_input():
    srv = Server(lambda c: c.sendall(b"bye"))
    proc = subprocess.Popen([*PYSOCK, "connect", "--exit-on-peer-close", "127.0.0.1",
                             str(srv.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, _ = proc.communicate(timeout=10)  # stdin stays open: only the flag ends it
    assert proc.returncode == 0 and out == b"bye"


def test_reset_mid_transfer_is_reported():
    def handler(conn):
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    srv = Server(handler)
    proc = subprocess.Popen([*PYSOCK, "connect", "127.0.0.1", str(srv.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"x" * 100)
    proc.stdin.flush()
    _, err = proc.communicate(timeout=10)
    srv.join()
    assert proc.returncode == 1
    assert err.decode().startswith(f"pysock: connection reset by 127.0.0.1:{srv.port}")
    assert len(err.splitlines()) == 1


def test_stdout_closed_early_is_quiet():
    srv = Server(lambda c: c.sendall(b"y" * (4 << 20)))
    proc = subprocess.run(f"{' '.join(PYSOCK)} connect 127.0.0.1 {srv.port} < /dev/null "
                          f"| head -c 10", shell=True, capture_output=True, timeout=20)
    srv.join()
    assert proc.stdout == b"y" * 10
    assert proc.stderr == b""


def test_ctrl_c_exits_130_without_traceback(procs, port):
    need_tool("nc")
    server = procs.start(["nc", "-l", "127.0.0.1", str(port)])
    wait_listening(port, proc=server)
    proc = procs.start([*PYSOCK, "connect", "127.0.0.1", str(port)], stdin=subprocess.PIPE)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode in (130, -signal.SIGINT)  # the shell sees 130 either way
    assert b"Traceback" not in err


def test_refused_is_one_line_exit_1():
    out = run_pysock("connect", "127.0.0.1", str(free_port()))
    assert out.returncode == 1
    assert out.stderr.decode().count("\n") == 1
    assert "connection refused by 127.0.0.1" in out.stderr.decode()


def test_refused_says_where_something_listens(procs, port):
    """The nc -l trap: the server bound IPv4 only, the client tried IPv6."""
    need_tool("nc")
    server = procs.start(["nc", "-l", "127.0.0.1", str(port)])
    wait_listening(port, proc=server)
    out = run_pysock("connect", "::1", str(port))
    assert out.returncode == 1
    assert "over IPv4 only, at 127.0.0.1" in out.stderr.decode()


def test_connect_timeout_in_a_namespace(lab):
    import netns
    a, b = netns.two_hosts(lab)
    b.nft("table inet t {\n chain in {\n type filter hook input priority 0;\n"
          " tcp dport 9 drop\n }\n}")
    start = time.monotonic()
    out = a.run(*PYSOCK, "connect", "-w", "0.5", b.addr, "9", check=False, timeout=20)
    assert out.returncode == 1
    assert time.monotonic() - start < 5
    assert "timed out after 0.5s" in out.stderr


def test_idle_timeout(procs):
    srv = Server(lambda c: time.sleep(3))
    proc = procs.start([*PYSOCK, "connect", "-i", "0.4", "127.0.0.1", str(srv.port)],
                       stdin=subprocess.PIPE)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1 and b"idle for 0.4 s" in err


def test_source_address_and_port():
    srv = Server(lambda c: c.getpeername())
    sport = free_port()
    out = run_pysock("connect", "-s", "127.0.0.3", "-p", str(sport), "127.0.0.1", str(srv.port),
                     input=b"")
    assert out.returncode == 0, out.stderr
    assert srv.join() == ("127.0.0.3", sport)


def test_crlf():
    srv = Server(read_all)
    run_pysock("connect", "--crlf", "127.0.0.1", str(srv.port), input=b"HELO x\nQUIT\n")
    assert srv.join() == b"HELO x\r\nQUIT\r\n"


def test_sockopt_reaches_the_socket():
    srv = Server(lambda c: c.getsockopt(socket.IPPROTO_IP, socket.IP_TTL))
    out = run_pysock("connect", "--sockopt", "ttl=17", "--sockopt", "nodelay", "127.0.0.1",
                     str(srv.port), input=b"")
    assert out.returncode == 0
    srv.join()


def test_ipv4_only_flag_refuses_v6_literal():
    out = run_pysock("connect", "-4", "::1", "80")
    assert out.returncode == 2 and b"not an IPv4 address" in out.stderr


def test_verbose_reports_address_and_totals():
    srv = Server(lambda c: (read_all(c), c.sendall(b"12345"))[0])
    out = run_pysock("connect", "-v", "localhost", str(srv.port), input=b"abc")
    err = out.stderr.decode()
    assert f"connected to 127.0.0.1:{srv.port}" in err
    assert "sent 3 bytes, received 5 bytes" in err and "input ended first" in err


def test_hexdump_to_stderr_and_file(tmp_path):
    srv = Server(lambda c: (read_all(c), c.sendall(b"pong"))[0])
    out = run_pysock("connect", "--hexdump", "-", "127.0.0.1", str(srv.port), input=b"ping")
    err = out.stderr.decode()
    assert "> " in err and "sent 4 bytes at offset 0" in err and "|ping|" in err
    assert "received 4 bytes" in err and "70 6f 6e 67" in err
    srv2 = Server(lambda c: read_all(c))
    dump = tmp_path / "dump.txt"
    run_pysock("connect", "--hexdump", str(dump), "127.0.0.1", str(srv2.port), input=b"A")
    assert "|A|" in dump.read_text()


def test_probe_mode(procs):
    open_srv = socket.create_server(("127.0.0.1", 0))
    open_port = open_srv.getsockname()[1]
    closed_port = free_port()
    out = run_pysock("connect", "-z", "127.0.0.1", f"{open_port},{closed_port}")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")  # nc -z: the status only
    assert run_pysock("connect", "-z", "127.0.0.1", str(closed_port)).returncode == 1
    out = run_pysock("connect", "-z", "-v", "127.0.0.1", f"{open_port},{closed_port}")
    header, *rows = out.stdout.decode().splitlines()
    assert header.split("\t") == ["HOST", "PORT", "STATE", "SERVICE", "RTT_MS"]
    assert sorted(r.split("\t")[:3] for r in rows) == sorted(
        [["127.0.0.1", str(open_port), "open"], ["127.0.0.1", str(closed_port), "closed"]])
    out = run_pysock("connect", "-z", "-v", "--json", "127.0.0.1", f"{closed_port}")
    import json
    assert out.returncode == 1
    assert json.loads(out.stdout)["state"] == "closed"
    open_srv.close()


@pytest.mark.parametrize("args,words", [
    (["127.0.0.1", "0"], "out of range"), (["127.0.0.1", "70000"], "out of range"),
    (["127.0.0.1", "abc"], "service name"), (["256.1.1.1", "80"], "not a valid IPv4"),
    (["[::1", "80"], "missing ']'"), (["--sockopt", "nosuch", "127.0.0.1", "80"], "unknown socket"),
    (["--sockopt", "rcvbuf=x", "127.0.0.1", "80"], "not a number"),
    (["--bogus", "127.0.0.1", "80"], "no such option"),
    (["-d", "--send-only", "127.0.0.1", "80"], "exclude each other"),
])
def test_bad_input_is_one_line_exit_2(args, words):
    out = run_pysock("connect", *args)
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("pysock: ") and words in err, err


def test_progress_draws_on_a_terminal_stderr():
    """--progress shows sent/received with rates when stderr is a terminal, and
    nothing when it is not."""
    import pty
    srv = Server(lambda c: (read_all(c), c.sendall(b"r" * 100000))[0])
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*PYSOCK, "connect", "--progress", "127.0.0.1", str(srv.port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=follower,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(follower)
    out, _ = proc.communicate(b"s" * 300000, timeout=20)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    assert proc.returncode == 0 and len(out) == 100000
    assert b"sent" in drawn and b"received" in drawn
    piped = run_pysock("connect", "--progress", "127.0.0.1", str(Server(read_all).port),
                       input=b"x")
    assert piped.stderr == b""
