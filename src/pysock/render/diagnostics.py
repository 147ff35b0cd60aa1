"""Lines on stderr: -v reports, warnings, status lines. Never on stdout."""

from __future__ import annotations

import sys


class Diagnostics:
    def __init__(self, verbosity: int = 0, stream=None):
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr

    def say(self, text: str) -> None:
        try:
            self.stream.write(f"pysock: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def verbose(self, text: str, level: int = 1) -> None:
        if self.verbosity >= level:
            self.say(text)

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}")
