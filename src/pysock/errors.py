"""Exit statuses and the one exception type the core raises."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILURE = 1  # the operation failed: refused, timed out, unreachable, no reply
    USAGE = 2  # bad option, port, address
    INTERRUPTED = 130  # Ctrl-C


# Ways out that involve options, which only the command line can name: cli/ fills
# this at start (advice key -> text appended to the message, formatted with the
# error's facts). The core raises facts and a key; without cli/ the facts stand alone.
ADVICE: dict[str, str] = {}


def worded(fact: str, advice: str | None = None, **facts) -> str:
    """fact with the way out its advice key names, in the user's flags (ADVICE); a
    text that starts with '=' is the whole line instead (where the flag leads it)."""
    text = ADVICE.get(advice, "") if advice is not None else ""
    if text.startswith("="):
        return text[1:].format(**facts)
    return fact + text.format(**facts)


class PysockError(Exception):
    """A failure the user should read about: one line, one exit status. fact is what
    went wrong; advice (a key of ADVICE) and facts add the way out in the user's flags."""

    status = ExitStatus.FAILURE

    def __init__(self, message: str, status: ExitStatus | None = None, *,
                 advice: str | None = None, **facts):
        super().__init__(message)
        self.fact = message
        self.advice, self.facts = advice, facts
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return worded(self.fact, self.advice, **self.facts)

    @message.setter
    def message(self, text: str) -> None:  # the whole line, advice included
        self.fact, self.advice = text, None

    def __str__(self) -> str:
        return self.message


class UsageError(PysockError):
    """The user typed something pysock cannot accept (exit 2): the one usage-error
    type (cli/ turns click's own into it). see_help: the command line's shape is
    wrong, and the line points to the command's help (command: its path, which the
    click boundary fills in)."""

    status = ExitStatus.USAGE

    def __init__(self, message: str, status: ExitStatus | None = None, *,
                 see_help: bool = False, advice: str | None = None, **facts):
        super().__init__(message, status, advice=advice, **facts)
        self.see_help = see_help
        self.command: str | None = None


class OptionError(UsageError):
    """A value given for an option failed (its text leads the message); option is
    the option's parameter name, and cli/ puts the flag before the message. A usage
    error unless the value failed on a real socket (status FAILURE then)."""

    def __init__(self, option: str, message: str, status: ExitStatus | None = None):
        super().__init__(message, status)
        self.option = option


class PrivilegeError(UsageError):
    """The probe needs a privilege this process lacks (raw sockets for scan --syn, ICMP
    for ping and trace). One rule for every command: exit 2, as iputils ping does,
    since nothing was sent and the command as typed cannot run here; the message names
    the ways out (root, CAP_NET_RAW, a probe that needs none)."""


class NetworkError(PysockError):
    """The network said no: refused, reset, unreachable, timed out (exit 1)."""

    status = ExitStatus.FAILURE
