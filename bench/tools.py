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


def listening(port: int) -> bool:
    suffix = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            if any(line.split()[1].endswith(suffix) and line.split()[3] == "0A"
                   for line in list(f)[1:]):
                return True
    return False


def wait_listening(port: int, timeout: float = 10, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listening(port):
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
