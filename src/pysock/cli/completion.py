"""pysock completion: print the shell completion script (the files in completions/
are this output, committed and installed where each shell looks)."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_PYSOCK_COMPLETE"


@click.command(short_help="Print the bash, zsh or fish completion script.")
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> int:
    """Print the completion script for SHELL on stdout. pip installs these scripts
    where bash-completion, zsh and fish look; this is for other set-ups. Tab asks
    pysock itself for words, so completion follows the installed version."""
    click.echo(script(shell), nl=False)
    return 0


def script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    from pysock.cli import cli
    source = get_completion_class(shell)(cli, {}, "pysock", COMPLETE_VAR).source()
    return source if source.endswith("\n") else source + "\n"
