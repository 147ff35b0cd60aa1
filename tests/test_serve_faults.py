"""Faults of the serving engine found by trying to break it (issue 16, items 2, 3,
5 and 6): a handshake nobody finishes, a receive-only client that hung up,
--exec of a missing program, children left behind by SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import PYSOCK, free_port, need_tool, run_pysock, wait_listening


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _wait_for(predicate, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _wait_unix(path: str, proc) -> None:
    assert _wait_for(lambda: os.path.exists(path) or proc.poll() is not None)
    assert proc.poll() is None, proc.stderr.read()


# ---- item 2: every TLS handshake is bounded, one client or many -----------------------


@pytest.mark.parametrize("args", [["-w", "1"], ["-i", "1"], ["--handshake-timeout", "1"]])
def test_one_client_tls_listener_drops_a_silent_client(procs, args):
    port = free_port()
    server = procs.pysock("listen", "--tls", *args, "127.0.0.1", str(port))
    wait_listening(port, proc=server)
    silent = socket.create_connection(("127.0.0.1", port))  # TCP only, never says hello
    try:
        start = time.monotonic()
        _, err = server.communicate(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        silent.close()
    assert server.returncode == 1
    last = err.decode().splitlines()[-1]
    assert last.startswith("pysock: TLS handshake with 127.0.0.1:")
    assert last.endswith(" not done within 1 s")


def test_keep_open_tls_listener_drops_a_silent_client_with_one_line(procs):
    port = free_port()
    server = procs.pysock("listen", "-k", "--tls", "--echo", "--handshake-timeout", "0.5",
                          "127.0.0.1", str(port))
    wait_listening(port, proc=server)
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        silent.settimeout(5)
        assert silent.recv(10) == b""  # dropped
    finally:
        silent.close()
    server.terminate()
    _, err = server.communicate(timeout=10)
    lines = [line for line in err.decode().splitlines() if "handshake" in line]
    assert len(lines) == 1 and "not done within 0.5 s" in lines[0]


def test_handshake_timeout_must_be_positive():
    out = run_pysock("listen", "--tls", "--handshake-timeout", "0", "127.0.0.1", "0")
    assert out.returncode == 2 and out.stderr.count(b"\n") == 1


# ---- item 3: -d never sends FIN ---------------------------------------------------------


def _broker_reaches_receive_only(broker_argv, client_argv, address):
    """A -d client of a broker hears what another client says."""
    listener = subprocess.Popen(broker_argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
    try:
        if isinstance(address, int):
            wait_listening(address, proc=listener)
        else:
            _wait_unix(address, listener)
        quiet = subprocess.Popen(client_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(0.8)  # the -d client is in (and, before the fix, already gone)
        family = socket.AF_INET if isinstance(address, int) else socket.AF_UNIX
        talker = socket.socket(family)
        talker.connect(("127.0.0.1", address) if isinstance(address, int) else address)
        talker.sendall(b"hello, listener\n")
        time.sleep(0.8)
        talker.close()
        quiet.terminate()
        out, _ = quiet.communicate(timeout=10)
        return out
    finally:
        listener.terminate()
        listener.wait(10)


def test_connect_recv_only_stays_connected_to_ncat_broker():
    need_tool("ncat")
    port = free_port()
    out = _broker_reaches_receive_only(["ncat", "-l", "-k", "--broker", "127.0.0.1", str(port)],
                                       [*PYSOCK, "connect", "-d", "127.0.0.1", str(port)], port)
    assert out == b"hello, listener\n"


def test_connect_recv_only_stays_connected_to_pysock_broker():
    port = free_port()
    out = _broker_reaches_receive_only([*PYSOCK, "listen", "-k", "--broker", "127.0.0.1",
                                        str(port)],
                                       [*PYSOCK, "connect", "-d", "127.0.0.1", str(port)], port)
    assert out == b"hello, listener\n"


def test_unix_recv_only_stays_connected_to_pysock_broker(tmp_path):
    path = str(tmp_path / "broker.sock")
    out = _broker_reaches_receive_only([*PYSOCK, "unix", "-l", "-k", "--broker", path],
                                       [*PYSOCK, "unix", "-d", path], path)
    assert out == b"hello, listener\n"


def test_listen_keep_open_recv_only_sends_no_fin(procs):
    port = free_port()
    server = procs.pysock("listen", "-k", "-d", "127.0.0.1", str(port), stdin=subprocess.PIPE)
    wait_listening(port, proc=server)
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.settimeout(0.8)
        with pytest.raises(TimeoutError):
            c.recv(10)  # neither data nor FIN


# ---- item 5: --exec of a program that is not there -----------------------------------------


@pytest.mark.parametrize("command", ["listen", "unix"])
def test_exec_of_a_missing_program_is_refused_at_start(command, tmp_path):
    place = [str(tmp_path / "s.sock")] if command == "unix" else ["127.0.0.1", "0"]
    flags = ["-l"] if command == "unix" else []
    out = run_pysock(command, *flags, "-k", "--exec", "/nonexistent/prog", *place, timeout=10)
    assert out.returncode == 2
    assert out.stderr.startswith(b"pysock: cannot run /nonexistent/prog: no such file")
    assert out.stderr.count(b"\n") == 1
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program\n")
    out = run_pysock(command, *flags, "-k", "--exec", str(plain), *place, timeout=10)
    assert out.returncode == 2 and b"not an executable program" in out.stderr


def test_a_program_failing_for_one_client_fails_that_client_only(procs, tmp_path):
    prog = tmp_path / "once"
    prog.write_text("#!/bin/sh\necho hi\n")
    prog.chmod(0o755)
    port = free_port()
    server = procs.pysock("listen", "-v", "-k", "--exec", str(prog), "127.0.0.1", str(port))
    wait_listening(port, proc=server)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        assert c.recv(10) == b"hi\n"
    prog.unlink()  # gone now: the next client cannot be served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        assert c.recv(10) == b""
    prog.write_text("#!/bin/sh\necho back\n")
    prog.chmod(0o755)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        assert c.recv(10) == b"back\n"
    assert server.poll() is None
    server.terminate()
    _, err = server.communicate(timeout=10)
    assert b"cannot run" in err


# ---- item 6: signals end the children ---------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("mode", [["--exec", "sleep 60"],
                                  ["--sh-exec", "trap '' TERM; sleep 60"],
                                  ["--exec", "sleep 60", "--hexdump", "/dev/null"]])
def test_signals_end_exec_children(procs, sig, mode):
    port = free_port()
    server = procs.pysock("listen", "-k", *mode, "127.0.0.1", str(port))
    wait_listening(port, proc=server)
    with socket.create_connection(("127.0.0.1", port)):
        assert _wait_for(lambda: _children(server.pid))
        kids = _children(server.pid)
        start = time.monotonic()
        server.send_signal(sig)
        server.wait(15)
        assert time.monotonic() - start < 8
    assert _wait_for(lambda: not any(_alive(k) for k in kids), 5), kids


def test_sigterm_ends_unix_exec_children(procs, tmp_path):
    path = str(tmp_path / "s.sock")
    server = procs.pysock("unix", "-l", "-k", "--exec", "sleep 60", path)
    _wait_unix(path, server)
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(path)
        assert _wait_for(lambda: _children(server.pid))
        kids = _children(server.pid)
        server.terminate()
        server.wait(15)
    assert _wait_for(lambda: not any(_alive(k) for k in kids), 5), kids
