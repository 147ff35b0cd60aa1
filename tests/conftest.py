"""Shared fixtures: peers and privileges, free ports, processes that are always
reaped, and network namespaces that are always torn down."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import netns as _netns

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.tools import listening  # noqa: E402  (the bench's own check, in /proc)

REQUIRE_ALL = os.environ.get("PYSOCK_REQUIRE_ALL") == "1"
PYSOCK = [sys.executable, "-m", "pysock"]


def need(reason: str, ok: bool) -> None:
    """Skip when a need is unmet; fail instead under PYSOCK_REQUIRE_ALL=1 (CI)."""
    if ok:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required but missing: {reason}")
    pytest.skip(reason)


def need_tool(*names: str) -> None:
    for name in names:
        need(f"{name} is not installed", shutil.which(name) is not None)


def need_root() -> None:
    need("needs root", os.geteuid() == 0)


# ---- ports ------------------------------------------------------------------

_next_port = 20000 + (os.getpid() * 37) % 10000


def _bindable(port: int) -> bool:
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(family, kind) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    return False
    return True


def free_port() -> int:
    """A port free on v4 and v6, TCP and UDP, outside the ephemeral range, so the kernel
    never hands it to an outgoing connection before our server binds it."""
    global _next_port
    while True:
        _next_port = 20000 if _next_port >= 30000 else _next_port + 1
        if _bindable(_next_port):
            return _next_port


@pytest.fixture
def port() -> int:
    return free_port()


def wait_listening(port: int, host: str = "127.0.0.1", timeout: float = 10,
                   proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}) before listening on {port}")
        # /proc/net tells without connecting (a connect would be the server's one client)
        if listening(port):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {host}:{port} after {timeout}s")


def serve_on_free_port(procs: Procs, argv_for, timeout: float = 10,
                       attempts: int = 5) -> tuple[int, subprocess.Popen]:
    """Start argv_for(port) on a free port and wait until that very process listens.
    A port can be taken between free_port() and the server's bind (another program on
    the machine binds it): the server then fails with 'in use', or the listener found
    is not its own, and it is started again on a fresh port."""
    for _ in range(attempts):
        port = free_port()
        proc = procs.start(argv_for(port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if listening(port, proc.pid):
                return port, proc
            time.sleep(0.02)
        if proc.poll() is None:
            raise AssertionError(f"{argv_for(port)[0]} does not listen on {port} after {timeout}s")
        out, err = proc.communicate(timeout=10)
        if b"in use" not in out + err:
            raise AssertionError(f"server exited ({proc.returncode}) before listening on "
                                 f"{port}: {(out + err).decode(errors='replace')[-500:]}")
    raise AssertionError(f"no free port held after {attempts} tries")


# ---- processes --------------------------------------------------------------


class Procs:
    """Start processes in their own session; kill and reap each at teardown."""

    def __init__(self):
        self.started: list[subprocess.Popen] = []

    def start(self, argv, **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(argv, start_new_session=True, **kw)
        self.started.append(proc)
        return proc

    def pysock(self, *args: str, **kw) -> subprocess.Popen:
        return self.start([*PYSOCK, *args], **kw)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.communicate(timeout=5)
            except (subprocess.TimeoutExpired, ValueError):
                pass


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.close()


def run_pysock(*args: str, input: bytes | None = None, timeout: float = 30, **kw):
    return subprocess.run([*PYSOCK, *args], input=input, capture_output=True, timeout=timeout,
                          **kw)


# ---- namespaces -------------------------------------------------------------


@pytest.fixture
def lab():
    need_root()
    need_tool("ip")
    the_lab = _netns.Lab()
    yield the_lab
    the_lab.close()
