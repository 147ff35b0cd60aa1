"""Small things every scenario needs: finding tools, ports, processes that are
always ended, and running a command to completion within a time bound."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from bench.core import BenchFailure

PYSOCK = os.path.join(os.path.dirname(sys.executable), "pysock")


def have(*names: str) -> bool:
    return all(shutil.which(n) for n in names)


def pysock_has(command: str) -> bool:
    from pysock.cli import COMMANDS
    return command in COMMANDS


def free_port() -> int:
    """A port outside the ephemeral range that is free right now on v4 and v6."""
    base = 30000 + (os.getpid() * 13 + int(time.monotonic() * 1000)) % 2000
    for port in range(base, base + 2000):
        try:
            for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                with socket.socket(family) as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise BenchFailure("no free port")


def listening(port: int, pid: int | None = None) -> bool:
    """Something (pid, when given: that very process) listens on TCP port."""
    suffix = f":{port:04X}"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                if cols[1].endswith(suffix) and cols[3] == "0A":
                    inodes.add(cols[9])
    if not inodes or pid is None:
        return bool(inodes)
    return any(_holds(p, inodes) for p in _tree(pid))


def _tree(pid: int) -> list[int]:
    """pid and its descendants (a server started through bash -c is bash's child)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def _holds(pid: int, inodes: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in inodes:
                return True
        except OSError:
            continue
    return False


def wait_listening(port: int, timeout: float = 10, proc: subprocess.Popen | None = None) -> None:
    """Until proc (or anyone, without proc) listens on port: another program that
    happens to grab the same port must not count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port, proc.pid if proc is not None else None):
            return
        if proc is not None and proc.poll() is not None:
            raise BenchFailure(f"server exited with {proc.returncode} before listening")
        time.sleep(0.005)
    raise BenchFailure(f"nothing listened on port {port} within {timeout}s")


def start(argv, **kw) -> subprocess.Popen:
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(argv, start_new_session=True, **kw)


def stop(proc: subprocess.Popen, timeout: float = 5) -> None:
    """End a process we started (its whole process group) and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()


@contextlib.contextmanager
def running(argv, **kw) -> Iterator[subprocess.Popen]:
    proc = start(argv, **kw)
    try:
        yield proc
    finally:
        stop(proc)


def run(argv, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """Run to completion; a time-out is a failed run, never a hang."""
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    try:
        return subprocess.run(argv, timeout=timeout, start_new_session=True, **kw)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"{argv[0]} did not finish within {timeout}s") from None


def sh(script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run(["bash", "-c", script], timeout=timeout)


def compile_pysock() -> None:
    """Byte-compile pysock as an installed copy would be: with PYTHONDONTWRITEBYTECODE set,
    every run would otherwise compile its modules again (about 20 ms of start-up)."""
    import compileall

    import pysock
    compileall.compile_dir(os.path.dirname(pysock.__file__), quiet=1)
