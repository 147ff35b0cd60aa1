"""inspect --watch: a stream of changes when piped, a live table on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time

from conftest import free_port


def lines_until(proc, want, timeout=10.0) -> list[str]:
    """Read proc's stdout lines until want(line) is true; all lines read so far."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            continue
        line = proc.stdout.readline().decode()
        if not line:
            break
        seen.append(line)
        if want(line):
            return seen
    raise AssertionError(f"never saw the line wanted; saw {seen!r}")


def test_watch_json_reports_new_and_gone(procs):
    p1, p2 = free_port(), free_port()
    with socket.create_server(("127.0.0.1", p1)):
        proc = procs.pysock("inspect", "--watch", "0.1", "--count", "200", "--json", "-t", "-l",
                            "--sport", f"{p1},{p2}")
        first = json.loads(lines_until(proc, lambda line: True)[0])
        assert (first["event"], first["local_port"], first["state"]) == ("present", p1, "LISTEN")
        second = socket.create_server(("127.0.0.1", p2))
        new = json.loads(lines_until(proc, lambda line: f'"local_port":{p2}' in line)[-1])
        assert new["event"] == "new" and new["pid"] == os.getpid()
        second.close()
        gone = json.loads(lines_until(proc, lambda line: '"gone"' in line)[-1])
        assert gone["local_port"] == p2
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(10) in (130, -signal.SIGINT)  # Ctrl-C: quiet; the shell sees 130
        assert proc.stderr.read().strip() == b""  # (click ends the ^C line)


def test_watch_count_bounds_it_and_plain_has_an_event_column(procs):
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        proc = procs.pysock("inspect", "--watch", "0.05", "--count", "3", "-t", "-l",
                            "--sport", str(port))
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = out.decode().splitlines()
    assert lines[0].startswith("Event\tProto\tState")
    assert lines[1].startswith("present\ttcp\tLISTEN") and len(lines) == 2


def test_live_table_on_a_terminal_quits_on_q(procs):
    port = free_port()
    master, slave = pty.openpty()
    with socket.create_server(("127.0.0.1", port)):
        proc = procs.pysock("inspect", "--watch", "0.2", "-t", "-l", "--sport", str(port),
                            stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "160"})
        os.close(slave)
        screen = b""
        deadline = time.monotonic() + 15
        row = f"127.0.0.1:{port}".encode()
        while (b"q quits" not in screen or row not in screen) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                screen += os.read(master, 65536)
        assert b"q quits" in screen and row in screen
        os.write(master, b"q")
        assert proc.wait(10) == 0
    os.close(master)


def test_a_socket_whose_process_exits_is_one_changed_row(procs):
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as listener:
        owner = procs.start([sys.executable, "-c", "import socket, sys; "
                             f"s = socket.create_connection(('127.0.0.1', {port})); "
                             "print(s.getsockname()[1], flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE)
        client_port = int(owner.stdout.readline())
        server, _ = listener.accept()
        with server:
            # both ends: an older TIME_WAIT may hold the same ephemeral port elsewhere
            proc = procs.pysock("inspect", "--watch", "0.1", "--count", "300", "--json", "-t",
                                "-a", "--sport", str(client_port), "--dport", str(port))
            first = json.loads(lines_until(proc, lambda line: True)[0])
            assert (first["event"], first["pid"]) == ("present", owner.pid)
            owner.kill()  # the kernel closes its socket: FIN_WAIT, no owner
            seen = lines_until(proc, lambda line: '"changed"' in line or '"gone"' in line
                               or '"new"' in line)
            last = json.loads(seen[-1])
            assert last["event"] == "changed" and last["pid"] is None
            assert last["state"] in ("FIN_WAIT1", "FIN_WAIT2")
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(10)
