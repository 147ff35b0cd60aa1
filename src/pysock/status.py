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
    if isinstance(exc, Terminated):
        return quiet(128 + exc.signum)
    if is_epipe(exc) and (stdout_closed is None or stdout_closed()):
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


class Terminated(BaseException):
    """SIGTERM or SIGHUP (a closed terminal): unwind like Ctrl-C, so finally blocks
    clean up (socket files, children); the exit status is 128 + the signal. A
    BaseException, as KeyboardInterrupt is: no `except Exception` may keep it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def unwind_on_signals() -> None:
    """SIGTERM and SIGHUP raise Terminated (unless ignored: nohup's choice stands)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)


UNWIND_LIMIT = 8.0  # s from the first signal to a forced end: above capture's 5 s for its COMMAND
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_unwinding = False


def _on_signal(signum, frame):
    global _unwinding
    if not _unwinding:
        _unwinding = True
        import threading
        deadline = threading.Thread(target=_end_if_still_running, args=(signum,), daemon=True)
        start_beside_main(deadline.start)
    raise Terminated(signum)


def start_beside_main(start):
    """start() starts a thread; it runs with SIGINT, SIGTERM and SIGHUP blocked, so the
    new thread inherits that mask. The kernel gives a signal for the process to any
    thread not blocking it, but only the main thread runs Python's handlers: a signal
    another thread took would leave the main thread asleep in its epoll or join."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        return start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _end_if_still_running(signum: int) -> None:
    """A thread's work: end the process UNWIND_LIMIT s after the first signal if
    unwinding has not, whether a cleanup blocks or Python swallowed the Terminated
    (raised inside a __del__, say); with where each thread was, for the bug report."""
    import faulthandler
    import time
    time.sleep(UNWIND_LIMIT)
    name = signal.Signals(signum).name
    try:  # stderr made non-blocking: a full pipe must not keep this end from coming
        os.set_blocking(2, False)
        os.write(2, f"pysock: still running {UNWIND_LIMIT:g} s after {name}, ending now "
                    "(a bug; where each thread was follows)\n".encode())
        faulthandler.dump_traceback(2, all_threads=True)
    except (OSError, ValueError):
        pass
    finally:
        os._exit(128 + signum)


def is_epipe(exc: BaseException) -> bool:
    """EPIPE itself, or a PysockError a command made of one (trace wraps its OSError)."""
    for link in (exc, exc.__context__):
        if isinstance(link, OSError) and link.errno == errno.EPIPE:
            return True
    return False
