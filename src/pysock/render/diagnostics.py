"""Lines on stderr: -v reports, warnings, status lines. Never on stdout."""

from __future__ import annotations

import sys


def say(text: str, stream=None) -> None:
    """One line on stderr (or stream) with pysock's prefix: the one place it is written."""
    stream = stream if stream is not None else sys.stderr
    try:
        stream.write(f"pysock: {text}\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class Diagnostics:
    def __init__(self, verbosity: int = 0, stream=None):
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr

    def say(self, text: str) -> None:
        say(text, self.stream)

    def verbose(self, text: str, level: int = 1) -> None:
        if self.verbosity >= level:
            self.say(text)

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}")
