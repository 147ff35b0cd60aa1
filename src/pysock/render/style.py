"""Color policy: --color auto|always|never, NO_COLOR, TERM=dumb."""

from __future__ import annotations

import os


def use_color(choice: str, isatty: bool) -> bool:
    if choice == "always":
        return True
    if choice == "never" or "NO_COLOR" in os.environ:
        return False
    return isatty and os.environ.get("TERM") != "dumb"


def console(stream, color: bool):
    """A rich Console bound to stream (imported only when something is drawn)."""
    from rich.console import Console
    return Console(file=stream, force_terminal=color or None, no_color=not color,
                   highlight=False, soft_wrap=False)
