"""Where an exception becomes an exit status and one `pysock:` line (httpie's
status.py): shared by the click boundary (pysock.cli.run) and the fast inspect
path (pysock.launch), which must not import click."""

from __future__ import annotations

import errno
import os
import signal
import sys

from pysock.errors import ExitStatus, PysockError
from pysock.render.diagnostics import say


def exit_status(exc: BaseException, *, debug: bool = False, stdout_closed=None) -> int:
    """The exit status for exc, after saying what went wrong; with debug, exc is
    raised again (the traceback). stdout_closed() tells an EPIPE on stdout (a quiet
    end) from one on a socket; None: any EPIPE is stdout's."""
    if isinstance(exc, KeyboardInterrupt):
        return quiet(ExitStatus.INTERRUPTED)
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE and (
            stdout_closed is None or stdout_closed()):
        return quiet(ExitStatus.OK)
    if debug or not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, PysockError):
        say(exc.message)
        return exc.status
    if isinstance(exc, OSError):
        say(f"{exc.strerror or exc}")
        return ExitStatus.FAILURE
    # a bug: still one line, with the way to see more
    say(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
    return ExitStatus.FAILURE


def quiet(status: int) -> int:
    """End without Python complaining about a stdout that can no longer be flushed."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return status


class StdoutClosed(Exception):
    """The reader of stdout went away (`| head`): a quiet exit 0, as nc does."""


def stdout_closed() -> bool:
    """stdout is a pipe or socket whose reader has gone (poll reports an error on it)."""
    import select
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


class Terminated(Exception):
    """SIGTERM or SIGHUP (a closed terminal): unwind like Ctrl-C, so finally blocks
    clean up (socket files, children); the exit status is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def unwind_on_signals() -> None:
    """SIGTERM and SIGHUP raise Terminated (unless ignored: nohup's choice stands)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)


def _on_signal(signum, frame):
    raise Terminated(signum)


def is_epipe(exc: BaseException) -> bool:
    """EPIPE itself, or a PysockError a command made of one (trace wraps its OSError)."""
    for link in (exc, exc.__context__):
        if isinstance(link, OSError) and link.errno == errno.EPIPE:
            return True
    return False
