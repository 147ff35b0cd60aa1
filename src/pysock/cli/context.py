"""What every command needs to know about where its output goes."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from pysock.render.style import use_color


@dataclass(frozen=True)
class Settings:
    debug: bool
    color_choice: str
    stdout_tty: bool
    stderr_tty: bool

    @classmethod
    def detect(cls, *, debug: bool = False, color: str = "auto") -> Settings:
        return cls(debug, color, _isatty(sys.stdout), _isatty(sys.stderr))

    def output_mode(self, json: bool) -> str:
        """'json', 'table' (stdout is a terminal, or --color always: always means
        always, piped too, as for less -R) or 'plain' (piped)."""
        if json:
            return "json"
        return "table" if self.stdout_tty or self.color_choice == "always" else "plain"

    def diagnostics(self, verbosity: int = 0):
        """The command's stderr lines (-v reports, warnings, notices), at its -v level."""
        from pysock.render.diagnostics import Diagnostics
        return Diagnostics(verbosity)

    @property
    def color(self) -> bool:
        return use_color(self.color_choice, self.stdout_tty)

    @property
    def stderr_color(self) -> bool:
        return use_color(self.color_choice, self.stderr_tty)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def settings() -> Settings:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Settings) if ctx else None
    return obj or Settings.detect()
