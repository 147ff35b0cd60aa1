"""inspect --kill: SOCK_DESTROY as ss -K, in a namespace of our own."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
import time

import pytest

from conftest import PYSOCK, need_tool, run_pysock

PORT = 7000
# One connection on loopback; when told, each end reads and says how it ended.
HOLDER = textwrap.dedent(f"""
    import os, socket, sys
    listener = socket.create_server(("127.0.0.1", {PORT}))
    client = socket.create_connection(("127.0.0.1", {PORT}))
    server, _ = listener.accept()
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()
    for name, end in (("client", client), ("server", server)):
        end.settimeout(5)
        try:
            print(name, "read", end.recv(10), flush=True)
        except OSError as exc:
            print(name, exc.errno, flush=True)
""")


@pytest.fixture
def held(lab):
    host = lab.host("k")
    proc = host.popen(sys.executable, "-c", HOLDER, stdin=subprocess.PIPE, text=True)
    word, pid = proc.stdout.readline().split()
    assert word == "ready", proc.stderr.read()
    proc.holder_pid = int(pid)
    yield host, proc
    proc.kill()
    proc.wait(10)


def endings(proc) -> dict[str, str]:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = dict(proc.stdout.readline().split(None, 1) for _ in range(2))
    return {name: how.strip() for name, how in out.items()}


def test_kill_resets_both_ends_and_the_owner_sees_econnaborted(held):
    host, proc = held
    out = host.run(*PYSOCK, "inspect", "-K", "--yes", "--json", "dport", "=", f":{PORT}",
                   check=False)
    assert out.returncode == 0, out.stderr
    (record,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert (record["peer_port"], record["state"], record["destroyed"], record["pid"]) == \
        (PORT, "ESTABLISHED", True, proc.holder_pid)
    assert record["reason"] is None
    assert endings(proc) == {"client": str(errno.ECONNABORTED),  # the owner of the killed one
                             "server": str(errno.ECONNRESET)}  # its peer got the reset
    left = host.run("ss", "-H", "-tn", "state", "established").stdout
    assert left.strip() == ""


def test_without_cap_net_admin_one_line_says_so(held):
    need_tool("setpriv")
    host, proc = held
    out = host.run("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", *PYSOCK,
                   "inspect", "-K", "dport", "=", f":{PORT}", check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == ["pysock: killing sockets needs CAP_NET_ADMIN in the "
                                       "socket's network namespace (run as root, as ss -K must)"]
    listed = host.run("ss", "-H", "-tn", "state", "established").stdout.splitlines()
    assert len(listed) == 2  # both ends still there


def test_on_a_terminal_it_asks_first(held):
    host, proc = held
    for answer, status in ((b"n\n", 1), (b"y\n", 0)):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        kid = subprocess.Popen(host.argv(*PYSOCK, "inspect", "-K", "-n", "sport", "=", f":{PORT}"),
                               stdin=slave, stdout=subprocess.PIPE, stderr=slave,
                               env={**os.environ, "TERM": "xterm", "COLUMNS": "200"})
        os.close(slave)
        screen = b""
        deadline = time.monotonic() + 20
        while b"Kill these 1 sockets?" not in screen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                screen += os.read(master, 65536)
        assert b"Kill these 1 sockets?" in screen and f":{PORT}".encode() in screen
        os.write(master, answer)
        out, _ = kid.communicate(timeout=20)
        os.close(master)
        assert kid.returncode == status
        killed = b"\tyes\t" in out
        assert killed is (answer == b"y\n")
        listed = host.run("ss", "-H", "-tn", "state", "established", "sport", "=",
                          f":{PORT}").stdout
        assert (listed.strip() == "") is killed


def test_kill_refuses_what_it_cannot_do():
    for args, words in ((["-K", "-x"], "cannot destroy Unix sockets"),
                        (["--yes"], "--yes goes with --kill"),
                        (["-K", "--summary"], "does not go with --summary"),
                        (["-K", "--watch", "1"], "does not go with --watch")):
        out = run_pysock("inspect", *args)
        assert out.returncode == 2, args
        assert words in out.stderr.decode() and len(out.stderr.splitlines()) == 1
