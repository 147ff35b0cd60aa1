"""Each command's man page EXIT STATUS table is what the command does: for every
status the page lists there is a case here that ends with it, and none other."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from pysock.cli import COMMANDS, cli, prose
from pysock.cli.manpage import command_page

from conftest import PYSOCK, free_port, need_root, wait_listening

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def page_statuses(name: str) -> set[int]:
    """The statuses the generated man page lists (the .TP tags of EXIT STATUS)."""
    page = command_page(cli, name, COMMANDS[name][1], prose.load("pysock").meta["date"])
    section = page.split(".SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    return {int(m) for m in re.findall(r"^\.TP\n(\d+)$", section, re.M)}


def status(*args: str, input: bytes | None = b"", argv_prefix=(), **kw) -> int:
    return subprocess.run([*argv_prefix, *PYSOCK, *args], input=input, capture_output=True,
                          timeout=60, **kw).returncode


def interrupted(*args: str, ready, argv_prefix=()) -> int:
    """Start the command, wait until ready() says it is at work, then Ctrl-C (SIGINT)."""
    proc = subprocess.Popen([*argv_prefix, *PYSOCK, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready()
        proc.send_signal(signal.SIGINT)
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def settle(seconds: float = 1.5):
    return lambda: time.sleep(seconds)


class Box:
    """What the cases need around them: ports, paths, a namespace with a silent host."""

    def __init__(self, lab, tmp_path):
        self.lab, self.tmp = lab, tmp_path
        self.held: list[socket.socket] = []
        self._host = None

    def listener(self, reply: bytes = b"") -> int:
        """A TCP server that reads one client to its end, answers, and closes."""
        import threading
        srv = socket.create_server(("127.0.0.1", 0))
        self.held.append(srv)

        def serve():
            conn, _ = srv.accept()
            with conn:
                while conn.recv(65536):
                    pass
                conn.sendall(reply)
        threading.Thread(target=serve, daemon=True).start()
        return srv.getsockname()[1]

    def holder(self) -> int:
        """A TCP server that accepts and never closes."""
        srv = socket.create_server(("127.0.0.1", 0))
        self.held.append(srv)
        return srv.getsockname()[1]

    def udp_port(self) -> int:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self.held.append(s)
        return s.getsockname()[1]

    def silent(self):
        """A namespace whose 10.9.9.2 never answers (a veth link with nobody on the other
        end: ARP goes unanswered), with an empty resolv.conf so no name server is asked."""
        if self._host is None:
            need_root()
            host = self.lab.host("quiet")
            host.run("ip", "link", "add", "q0", "type", "veth", "peer", "name", "q1")
            host.run("ip", "addr", "add", "10.9.9.1/24", "dev", "q0")
            for link in ("q0", "q1"):
                host.run("ip", "link", "set", link, "up")
            os.makedirs(f"/etc/netns/{host.name}", exist_ok=True)
            open(f"/etc/netns/{host.name}/resolv.conf", "w").close()
            self._host = host
        return self._host

    def close(self):
        for s in self.held:
            s.close()
        if self._host is not None:
            shutil.rmtree(f"/etc/netns/{self._host.name}", ignore_errors=True)


def _listen_ok(box):
    port = free_port()
    proc = subprocess.Popen([*PYSOCK, "listen", "127.0.0.1", str(port)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"hi")
        c.shutdown(socket.SHUT_WR)
        c.recv(10)
    return proc.wait(30)


def _forward_once(box):
    port, target = free_port(), box.listener(b"bye")
    proc = subprocess.Popen([*PYSOCK, "forward", "--once", f"127.0.0.1:{port}",
                             f"127.0.0.1:{target}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    with socket.create_connection(("127.0.0.1", port)) as c:
        c.sendall(b"hi")
        c.shutdown(socket.SHUT_WR)
        c.recv(10)
    return proc.wait(30)


def _unix_server(box) -> str:
    import threading
    path = str(box.tmp / "ok.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    box.held.append(srv)

    def serve():
        conn, _ = srv.accept()
        with conn:
            while conn.recv(65536):
                pass
    threading.Thread(target=serve, daemon=True).start()
    return path


def _stale_path(box) -> str:
    path = str(box.tmp / "stale.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)  # bound, never listening, closed: nobody is there
    return path


def _until_file(path: str):
    def ready():
        deadline = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
    return ready


CASES = {
    "listen": {
        0: _listen_ok,
        1: lambda box: status("listen", "127.0.0.1", str(box.holder())),
        2: lambda box: status("listen", "70000"),
        130: lambda box: (lambda p: interrupted("listen", "127.0.0.1", str(p),
                                                ready=lambda: wait_listening(p)))(free_port()),
    },
    "connect": {
        0: lambda box: status("connect", "127.0.0.1", str(box.listener(b"bye")), input=b"hello"),
        1: lambda box: status("connect", "127.0.0.1", str(free_port())),
        2: lambda box: status("connect", "127.0.0.1", "0"),
        130: lambda box: interrupted("connect", "127.0.0.1", str(box.holder()), ready=settle()),
    },
    "udp": {
        0: lambda box: status("udp", "-q", "0.2", "127.0.0.1", str(box.udp_port()), input=b"x\n"),
        1: lambda box: status("udp", "-q", "1", "127.0.0.1", str(free_port()), input=b"x\n"),
        2: lambda box: status("udp", "127.0.0.1", "70000"),
        130: lambda box: interrupted("udp", "-l", "127.0.0.1", str(free_port()), ready=settle()),
    },
    "unix": {
        0: lambda box: status("unix", _unix_server(box), input=b"hello"),
        1: lambda box: status("unix", _stale_path(box)),
        2: lambda box: status("unix", "/tmp/" + "x" * 200),
        130: lambda box: (lambda p: interrupted("unix", "-l", p, ready=_until_file(p)))(
            str(box.tmp / "int.sock")),
    },
    "scan": {
        0: lambda box: status("scan", "-p", str(free_port()), "127.0.0.1"),
        1: lambda box: status("scan", "-p", "80", "nosuchhost.invalid",
                              argv_prefix=box.silent().argv()),
        2: lambda box: status("scan", "-p", "0", "127.0.0.1"),
        130: lambda box: interrupted("scan", "--rate", "2", "-p", "1-100", "127.0.0.1",
                                     ready=settle()),
    },
    "ping": {
        0: lambda box: status("ping", "-c", "1", "127.0.0.1"),
        1: lambda box: status("ping", "-c", "1", "-W", "0.5", "10.9.9.2",
                              argv_prefix=box.silent().argv()),
        2: lambda box: status("ping", "-c", "0", "127.0.0.1"),
    },
    "trace": {
        0: lambda box: status("trace", "-n", "-q", "1", "-w", "1", "127.0.0.1"),
        1: lambda box: status("trace", "-n", "-q", "1", "-w", "0.3", "-m", "2", "10.9.9.2",
                              argv_prefix=box.silent().argv()),
        2: lambda box: status("trace", "nosuchhost.invalid", argv_prefix=box.silent().argv()),
        130: lambda box: interrupted("trace", "-n", "-w", "5", "-N", "1", "10.9.9.2",
                                     argv_prefix=box.silent().argv(), ready=settle()),
    },
    "inspect": {
        0: lambda box: status("inspect", "-t"),
        1: lambda box: status("inspect", "-t", "-l", "-K", "--yes", "--sport", str(box.holder()),
                              argv_prefix=NOBODY),  # no CAP_NET_ADMIN
        2: lambda box: status("inspect", "--state", "bogus"),
        130: lambda box: interrupted("inspect", "--watch", "0.5", ready=settle()),
    },
    "perf": {
        0: lambda box: _perf_test(),
        1: lambda box: status("perf", "-t", "1", "-p", str(free_port()), "127.0.0.1"),
        2: lambda box: status("perf", "-R", "--bidir", "127.0.0.1"),
        130: lambda box: interrupted("perf", "-s", "-p", str(free_port()), ready=settle()),
    },
    "capture": {
        0: lambda box: status("capture", "-i", "lo", "--duration", "0.5", "-c", "1"),
        1: lambda box: status("capture", "-i", "lo", "-c", "1", argv_prefix=NOBODY),
        2: lambda box: status("capture", "-i", "lo", "tcp", "prt", "80"),
    },
    "forward": {
        0: _forward_once,
        1: lambda box: status("forward", f"127.0.0.1:{box.holder()}", "127.0.0.1:1"),
        2: lambda box: status("forward", "70000", "127.0.0.1:1"),
    },
    "completion": {
        0: lambda box: status("completion", "bash"),
        2: lambda box: status("completion", "tcsh"),
    },
    "help": {
        0: lambda box: status("help", "scan", env=dict(os.environ, PATH="/nonexistent")),
        2: lambda box: status("help", "lisen"),
    },
}


def _perf_test() -> int:
    """A one-second test against a one-off pysock server."""
    port = free_port()
    server = subprocess.Popen([*PYSOCK, "perf", "-s", "--one-off", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc=server)
        return status("perf", "-t", "1", "-p", str(port), "127.0.0.1")
    finally:
        server.kill()
        server.wait()


def test_every_command_has_its_cases():
    assert set(CASES) == set(COMMANDS)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(CASES))
def test_exit_status_table_is_what_the_command_does(name, lab, tmp_path):
    cases = CASES[name]
    assert page_statuses(name) == set(cases), "the page and the cases disagree"
    box = Box(lab, tmp_path)
    try:
        for expected, case in sorted(cases.items()):
            got = case(box)
            if expected == 130 and got == -signal.SIGINT:
                got = 130  # died by the signal before Python's handler: the shell sees 130
            assert got == expected, f"{name}: expected {expected}, got {got}"
    finally:
        box.close()


def test_ctrl_c_while_the_commands_are_imported_is_130_without_traceback():
    """A Ctrl-C that lands while pysock is still importing its commands (slow on a
    loaded machine) ends as one later would: 130 and nothing on stderr."""
    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, *rest):\n"
            "        if name == 'pysock.cli':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "sys.argv = ['pysock', 'listen', '0']\n"
            "from pysock.launch import main\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert (out.returncode, out.stderr) == (130, b"")


UNWIND_CASES = {
    # a cleanup that blocks: the finally of a command that never ends
    "a cleanup that blocks": "try:\n    time.sleep(60)\nfinally:\n    time.sleep(60)\n",
    # the signal lands in a __del__: Python prints "Exception ignored" and goes on
    "a Terminated swallowed in __del__": (
        "class Slow:\n"
        "    def __del__(self):\n"
        "        time.sleep(5)\n"
        "Slow()\n"
        "time.sleep(60)\n"),
}


@pytest.mark.parametrize("case", UNWIND_CASES)
def test_sigterm_ends_pysock_when_its_unwinding_cannot(case):
    """SIGTERM unwinds pysock (finally blocks clean up); if that has not ended it
    UNWIND_LIMIT s later, pysock ends anyway: 143, one line and where it was stuck."""
    from pysock.status import UNWIND_LIMIT
    code = ("import sys, time\n"
            "from pysock.status import unwind_on_signals\n"
            "unwind_on_signals()\n"
            "print('ready', flush=True)\n" + UNWIND_CASES[case])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=UNWIND_LIMIT + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143
    assert b"pysock: still running 8 s after SIGTERM, ending now" in err
    assert b"(most recent call first)" in err  # faulthandler's dump of each thread


def test_threads_leave_the_signals_to_the_main_thread():
    """The kernel gives a signal to any thread that does not block it; only the main
    thread runs Python's handlers. pysock's own threads (perf's acceptor here) block
    SIGHUP, SIGINT and SIGTERM, so the main thread's wait is the one they end."""
    port = free_port()
    proc = subprocess.Popen([*PYSOCK, "perf", "-s", "-p", str(port), "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc=proc)
        masks = {}
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{tid}/status") as status:
                line = next(x for x in status if x.startswith("SigBlk:"))
            masks[int(tid)] = int(line.split()[1], 16)
        wanted = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGINT - 1)) | \
                 (1 << (signal.SIGTERM - 1))
        others = {tid: mask for tid, mask in masks.items() if tid != proc.pid}
        assert others and all(mask & wanted == wanted for mask in others.values())
        assert masks[proc.pid] & wanted == 0
        started = time.monotonic()
        proc.terminate()
        assert proc.wait(10) == 143 and time.monotonic() - started < 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
