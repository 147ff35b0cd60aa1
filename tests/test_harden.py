"""Issue 16: faults found by trying to break pysock, each pinned by a test that
failed before its fix (access lists and IPv4-mapped addresses, a closed stdout,
SIGHUP and socket files, out-of-range values, bracket parsing, raw datagrams)."""

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import PYSOCK, free_port, run_pysock, wait_listening


def start_listen(procs, *args):
    port = free_port()
    proc = procs.pysock("listen", *args, str(port))
    wait_listening(port, proc=proc)
    return proc, port


def served(port: int, source: str = "127.0.0.1") -> bool:
    """Does an --echo listener answer a client from source (or close on it)?"""
    with socket.socket() as s:
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"ping")
        try:
            return s.recv(10) == b"ping"
        except ConnectionResetError:
            return False


# ---- 1: IPv4-mapped rules and peers ------------------------------------------------


@pytest.mark.parametrize("rule", ["::ffff:127.0.0.1/128", "::ffff:127.0.0.1", "::ffff:0:0/96"])
def test_a_mapped_deny_rule_blocks_the_ipv4_peer(procs, rule):
    proc, port = start_listen(procs, "-k", "--echo", "-v", "--deny", rule)
    assert not served(port)
    time.sleep(0.3)  # the refusal is said just after the close the client saw
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert b"not allowed" in err


def test_a_mapped_allow_rule_admits_only_that_ipv4_peer(procs, tmp_path):
    allowfile = tmp_path / "allow"
    allowfile.write_text("::ffff:127.0.0.2\n")
    proc, port = start_listen(procs, "-k", "--echo", "--allowfile", str(allowfile))
    assert served(port, "127.0.0.2")
    assert not served(port, "127.0.0.1")


def test_an_ipv4_rule_still_matches_and_ipv6_peers_are_untouched(procs):
    proc, port = start_listen(procs, "-k", "--echo", "--deny", "127.0.0.0/8")
    assert not served(port)
    with socket.create_connection(("::1", port), timeout=5) as s:
        s.sendall(b"six")
        assert s.recv(10) == b"six"


def test_a_dual_stack_listener_logs_ipv4_peers_as_plain_ipv4(procs):
    proc, port = start_listen(procs, "-k", "--echo", "-v")
    assert served(port)
    time.sleep(0.3)
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert b"connection from 127.0.0.1:" in err and b"::ffff:" not in err


# ---- 4: a closed stdout ------------------------------------------------------------


def run_into_closed_pipe(*args, stdin=subprocess.DEVNULL):
    """The reader of stdout is gone before pysock writes a byte: every write is EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([*PYSOCK, *args], stdout=write_end, stderr=subprocess.PIPE,
                              stdin=stdin, timeout=30)
    finally:
        os.close(write_end)


@pytest.fixture
def talker():
    """A TCP server on 127.0.0.1 that sends 1 MiB to each client, then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    import threading
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.sendall(b"x" * (1 << 20))
                except OSError:
                    pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


def test_closed_stdout_is_a_quiet_exit_0_for_connect(talker):
    result = run_into_closed_pipe("connect", "127.0.0.1", str(talker))
    assert (result.returncode, result.stderr) == (0, b"")


@pytest.mark.parametrize("args", [
    ["inspect", "-a"], ["ping", "-c", "1", "127.0.0.1"], ["scan", "-p", "1-20", "127.0.0.1"],
    ["trace", "-m", "2", "127.0.0.1"], ["connect", "-z", "--json", "127.0.0.1", "TALKER"]])
def test_closed_stdout_is_a_quiet_exit_0(args, talker):
    args = [str(talker) if a == "TALKER" else a for a in args]
    result = run_into_closed_pipe(*args)
    assert (result.returncode, result.stderr) == (0, b"")


def test_closed_stdout_for_listen_and_unix_servers(procs, tmp_path):
    for argv, connect in (
            (["listen", "127.0.0.1", str(port := free_port())],
             lambda: socket.create_connection(("127.0.0.1", port), timeout=5)),
            (["unix", "-l", str(path := tmp_path / "s.sock")], lambda: _unix_client(path))):
        read_end, write_end = os.pipe()
        os.close(read_end)
        proc = procs.pysock(*argv, stdout=write_end)
        os.close(write_end)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client = connect()
                break
            except OSError:
                time.sleep(0.05)
        client.sendall(b"data for nobody")
        _, err = proc.communicate(timeout=10)
        client.close()
        assert (proc.returncode, err) == (0, b""), argv


def _unix_client(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(str(path))
    return s


# ---- 7, 8: the Unix socket file ------------------------------------------------------


def test_sighup_removes_the_unix_socket_file_and_exits_129(procs, tmp_path):
    path = tmp_path / "hup.sock"
    proc = procs.pysock("unix", "-l", "-k", str(path))
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists()
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=10)
    assert proc.returncode == 129 and not path.exists()


def test_a_failed_listen_after_bind_leaves_no_socket_file(tmp_path):
    from pysock.net.address import parse_unix
    from pysock.net.unixsock import listen_unix
    path = tmp_path / "fail.sock"
    with pytest.raises(OverflowError):
        listen_unix(parse_unix(str(path)), backlog=1 << 31)
    assert not path.exists()


# ---- 9-12: out-of-range values are one usage line ------------------------------------


def usage_line(result, *needles: str) -> None:
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith("pysock: ") and "internal error" not in err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("value, shown", [
    ("rcvbuf=4294967296", "0-2147483647"), ("sndbuf=9g", "0-2147483647"),
    ("mark=4294967296", "0-4294967295"), ("maxseg=70000", "88-32767"),
    ("notsent_lowat=4294967296", "0-2147483647"), ("priority=-1", "0-2147483647"),
    ("user_timeout=4294967296", "0-2147483647"), ("linger=99999999999", "0-2147483647"),
    ("keepalive=1:1:1000", "1-127")])
def test_sockopt_values_beyond_the_kernels_field(value, shown):
    usage_line(run_pysock("connect", "--sockopt", value, "127.0.0.1", "9"), "out of range", shown)


def test_sockopt_mark_takes_the_whole_u32(port):
    with socket.create_server(("127.0.0.1", port)):
        result = run_pysock("connect", "-z", "--sockopt", "mark=4294967295", "127.0.0.1", str(port))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("cmd", [["listen", "9"], ["unix", "-l", "/tmp/pysock-harden-never.sock"],
                                 ["forward", "9", "127.0.0.1:9"]])
def test_backlog_beyond_int(cmd):
    usage_line(run_pysock(cmd[0], "--backlog", "2147483648", *cmd[1:]), "2147483647")


@pytest.mark.parametrize("command", ['"', 'a"b', "a\\"])
def test_exec_that_cannot_be_split(command):
    usage_line(run_pysock("listen", "--exec", command, "9"), "--exec")


def test_udp_buffer_beyond_range():
    usage_line(run_pysock("udp", "-l", "--buffer", "99999999999", "9"), "2147483647")


def test_udp_buffer_is_capped_at_the_largest_datagram(procs):
    from pysock.net.datagram import DatagramChannel
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert DatagramChannel(s, bufsize=(1 << 31) - 1).bufsize == 65535


# ---- 13: udp --raw over IPv4 -------------------------------------------------------------


def test_udp_raw_sends_large_input_over_ipv4():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        receiver.settimeout(2)
        data = os.urandom(200_000)
        result = run_pysock("udp", "--raw", "-q", "0", "127.0.0.1",
                            str(receiver.getsockname()[1]), input=data)
        got = b""
        try:
            while len(got) < len(data):
                got += receiver.recv(65535)
        except TimeoutError:
            pass
    assert result.returncode == 0, result.stderr
    assert got == data


# ---- 14, 16: one address parser, one answer --------------------------------------------


@pytest.mark.parametrize("cmd", [["listen"], ["connect"], ["udp", "-l"]])
@pytest.mark.parametrize("host", ["[::1", "::1]"])
def test_half_bracketed_addresses_are_refused(cmd, host):
    usage_line(run_pysock(*cmd, host, "9"), "missing")


def test_listen_p_form_refuses_a_half_bracket():
    usage_line(run_pysock("listen", "-p", "9", "[::1"), "missing")


@pytest.mark.parametrize("cmd", [["connect"], ["listen"], ["udp"]])
def test_an_unknown_zone_is_no_such_interface(cmd):
    usage_line(run_pysock(*cmd, "fe80::1%nosuchif", "9"), "no such interface 'nosuchif'")


def test_a_known_zone_is_accepted():
    from pysock.net.address import check_host
    assert check_host("fe80::1%lo") == "fe80::1%lo"
    assert check_host("fe80::1%1") == "fe80::1%1"


# ---- 15: contradictory options -------------------------------------------------------


@pytest.mark.parametrize("args, needle", [
    (["connect", "-4", "-6", "127.0.0.1", "9"], "-4 and -6 exclude each other"),
    (["listen", "-6", "-4", "9"], "-6 and -4 exclude each other"),
    (["scan", "-4", "-6", "127.0.0.1"], "exclude each other"),
    (["ping", "-4", "-6", "127.0.0.1"], "exclude each other"),
    (["trace", "-6", "-4", "127.0.0.1"], "exclude each other"),
    (["udp", "-4", "-6", "127.0.0.1", "9"], "exclude each other"),
    (["connect", "--json", "127.0.0.1", "9"], "--json needs -z"),
    (["connect", "--tls", "--insecure", "--cafile", "/etc/hosts", "127.0.0.1", "9"],
     "--insecure and --cafile exclude each other"),
    (["connect", "--tls", "--insecure", "--ssl-trustfile", "/etc/hosts", "127.0.0.1", "9"],
     "--insecure and --cafile exclude each other"),
    (["unix", "--tls", "--insecure", "--cafile", "/etc/hosts", "/tmp/pysock-harden-never.sock"],
     "--insecure and --cafile exclude each other"),
    (["inspect", "--summary", "--by-process", "--limits"],
     "--summary, --by-process and --limits exclude each other"),
    (["inspect", "-s", "--counters"], "-s and --counters exclude each other"),
    (["inspect", "-ta", "-6", "-4"], "-6 and -4 exclude each other"),  # the quick path too
    (["inspect", "-t4a6", "--json"], "-4 and -6 exclude each other")])
def test_contradictory_options_are_one_usage_line(args, needle):
    usage_line(run_pysock(*args), needle)


def test_a_switch_repeated_is_no_conflict():
    result = run_pysock("inspect", "-4", "-4", "--summary", "--summary")
    assert result.returncode == 0, result.stderr


# ---- 16: messages ------------------------------------------------------------------------


def test_json_applies_grammar():
    usage_line(run_pysock("unix", "--json", "/tmp/pysock-harden-never.sock"),
               "--json applies to --type dgram")
    usage_line(run_pysock("unix", "--json", "--show", "/tmp/pysock-harden-never.sock"),
               "--show, --json apply to")


def test_a_dropped_slow_client_is_reported_once_under_v(procs):
    port = free_port()
    proc = procs.pysock("listen", "-k", "-v", "127.0.0.1", str(port), stdin=subprocess.PIPE)
    wait_listening(port, proc=proc)
    lazy = socket.socket()
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.connect(("127.0.0.1", port))
    time.sleep(0.2)
    try:
        for _ in range(32):
            proc.stdin.write(b"z" * (1 << 20))
        proc.stdin.flush()
    except BrokenPipeError:
        pass
    time.sleep(2.5)  # the lazy one has taken nothing for over a second: it is dropped
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    lazy.close()
    assert err.count(b"dropped") == 1, err
