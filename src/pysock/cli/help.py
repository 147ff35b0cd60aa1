"""pysock help [COMMAND]: the manual page, wherever pysock is installed (as git help).

pip puts the pages under the install prefix's share/man, which man does not search
under pyenv, a venv or --user. This finds the page there (from a source checkout, or
where it is missing, it makes the page from the code and prose, as scripts/gen-docs
does) and shows it with `man -l`; without man, as plain text."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from pysock.errors import ExitStatus


@click.command(short_help="Show the manual page of pysock or of COMMAND.")
@click.argument("command", required=False, metavar="[COMMAND]",
                shell_complete=lambda ctx, param, incomplete: _commands(incomplete))
def help(command: str | None) -> int:  # noqa: A001 - the command is called help
    """Show the manual page for COMMAND (or pysock's overview) with man, wherever
    pysock is installed, even where 'man pysock-COMMAND' finds nothing. Without
    man, the page is printed as text."""
    from pysock.cli import COMMANDS
    if command is not None and command not in COMMANDS:
        raise click.exceptions.NoSuchCommand(command, possibilities=list(COMMANDS),
                                             ctx=click.get_current_context().parent)
    name = f"pysock-{command}" if command else "pysock"
    text = (not from_checkout() and installed_page(name)) or generated_page(command)
    if shutil.which("man") and _show_with_man(text):
        return ExitStatus.OK
    click.echo(plain_text(text), nl=False)
    return ExitStatus.OK


def _commands(incomplete: str):
    from click.shell_completion import CompletionItem

    from pysock.cli import COMMANDS
    return [CompletionItem(name) for name in COMMANDS if name.startswith(incomplete)]


def page_dirs() -> list[Path]:
    """Where pip puts pysock's pages: the prefix it was installed into, or the user base."""
    prefixes = [sys.prefix, site.getuserbase(), sys.base_prefix]
    return [Path(p) / "share" / "man" / "man1" for p in dict.fromkeys(prefixes)]


def from_checkout() -> bool:
    """Running from a source tree (an editable install): the pages under the prefix
    are a copy from install time, the code may be newer."""
    import pysock
    return (Path(pysock.__file__).resolve().parents[2] / "pyproject.toml").is_file()


def installed_page(name: str) -> str | None:
    for folder in page_dirs():
        path = folder / f"{name}.1"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def generated_page(command: str | None) -> str:
    """The page made from the code and prose, as scripts/gen-docs makes it."""
    from pysock.cli import COMMANDS, cli, prose
    from pysock.cli.manpage import command_page, overview_page
    if command is None:
        return overview_page(cli, COMMANDS)
    return command_page(cli, command, COMMANDS[command][1], prose.load("pysock").meta["date"])


def _show_with_man(text: str) -> bool:
    """man -l on a copy of the page: its pager on a terminal, formatted text when piped."""
    with tempfile.TemporaryDirectory(prefix="pysock-help-") as tmp:
        path = os.path.join(tmp, "page.1")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            return subprocess.run(["man", "-l", path]).returncode == 0
        except OSError:
            return False


ESCAPES = {"\\-": "-", "\\e": "\\", "\\(aq": "'", "\\(ga": "`", "\\(bu": "*", "\\&": "",
           "\\fB": "", "\\fI": "", "\\fR": ""}


def plain_text(roff: str) -> str:
    """The page without man: headings, indented paragraphs, tags, literal blocks."""
    out: list[str] = []
    indent = "       "
    for line in roff.splitlines():
        word = line.split(" ", 1)
        if line.startswith(".SH "):
            out += ["", _unescape(word[1]).strip('"')]
        elif line.startswith(".SS "):
            out += ["", "   " + _unescape(word[1])]
        elif line in (".PP", ".TP") or line.startswith(".IP"):
            out.append("")
        elif line.startswith(".") and not line.startswith(".\\"):
            continue  # .TH, .RS, .RE, .nf, .fi, .br: layout only
        else:
            out.append(indent + _unescape(line))
    return "\n".join(out).strip("\n") + "\n"


def _unescape(text: str) -> str:
    for code, char in ESCAPES.items():
        text = text.replace(code, char)
    return text
