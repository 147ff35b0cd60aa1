"""Runs pysock command lines for tests/test_fuzz.py, fast: pysock is imported once and
each command line runs in a forked child (stdin and stdout /dev/null, stderr kept),
ended after a time limit. Reads one JSON list of words a line from stdin, answers
one JSON object a line: {"status": exit status or null if it was still running,
"stderr": text}. Run it inside the namespace the fuzz made."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback

LIMIT = 1.0  # seconds a command line may run before it is ended (a server waiting)


def preload() -> None:
    import click

    from pysock.cli import COMMANDS, cli
    ctx = click.Context(cli)
    for name in COMMANDS:
        cli.get_command(ctx, name)


def child(argv: list[str], err_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(err_fd, 2)
    os.setpgid(0, 0)
    try:
        from pysock.cli import run
        status = run(argv)
    except BaseException:  # noqa: BLE001 - a traceback is what the fuzz looks for
        sys.stderr.write("Traceback (escaped run()):\n" + traceback.format_exc())
        status = 98
    sys.stderr.flush()
    os._exit(status)


def one(argv: list[str]) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        child(argv, write_fd)
    os.close(write_fd)
    err, deadline, status = b"", time.monotonic() + LIMIT, None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        err += chunk
    while True:  # stderr closed: the child is ending (or handed stderr on)
        done, code = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() >= deadline:
            break
        time.sleep(0.005)
    if done:
        status = os.waitstatus_to_exitcode(code)
    else:
        _end(pid)
    os.close(read_fd)
    return {"status": status, "stderr": err.decode(errors="replace")}


def _end(pid: int) -> None:
    for target in (-pid, pid):  # its process group (children it started), then itself
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.waitpid(pid, 0)


def main() -> None:
    preload()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(json.dumps(one(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
