"""Option pairs that contradict each other, refused with one usage line before any
command body runs: one table, so every command answers the same way."""

from __future__ import annotations

import functools

import click
from click.core import ParameterSource

from pysock.errors import UsageError

# (param, param): never both, in any command that has the two.
EXCLUSIVE = (
    ("insecure", "cafile"),
    ("insecure", "capath"),
)

# command -> (param, needs param): the first means nothing without the second.
REQUIRES = {
    "connect": (("json", "probe"),),
}


def refuse_conflicts(command: click.Command) -> click.Command:
    """Wrap the command's callback with the table's checks (once)."""
    if getattr(command, "_conflicts_checked", False) or command.callback is None:
        return command
    command._conflicts_checked = True
    callback = command.callback

    @functools.wraps(callback)
    def checked(*args, **kwargs):
        check(click.get_current_context())
        return callback(*args, **kwargs)

    command.callback = checked
    return command


def check(ctx: click.Context) -> None:
    given: dict[str, click.Parameter] = {}
    for param in ctx.command.params:  # the documented option, not a peer alias of it
        if _typed(ctx, param):
            given.setdefault(param.name, param)
    for first, second in EXCLUSIVE:
        if first in given and second in given:
            raise UsageError(f"{_flag(given[first])} and {_flag(given[second])} "
                             "exclude each other", see_help=True)
    by_name = {p.name: p for p in reversed(ctx.command.params)}
    for needy, needed in REQUIRES.get(ctx.command.name, ()):
        if needy in given and needed not in given:
            raise UsageError(f"{_flag(given[needy])} needs {_flag(by_name[needed])}", see_help=True)


def _typed(ctx: click.Context, param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and \
        ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE


def _flag(param: click.Parameter) -> str:
    return min(param.opts, key=len)
