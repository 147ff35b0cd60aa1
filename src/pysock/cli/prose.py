"""The hand-written part of a command's manual: cli/<command>.md, kept beside the
command's module. --help reads its option groups and examples; the man page
generator (cli/manpage.py) reads all of it. Nothing here imports click.

The format is a small Markdown subset:

    ## SECTION           a man page section (DESCRIPTION, EXIT STATUS, EXAMPLES, ...)
    ### Title            in OPTIONS: an option group; the next line names its options
    paragraphs           separated by blank lines; `code`, *argument*, **bold**
    - item               a bullet list
    term                 a definition list (pandoc's syntax)
    : text
        indented         a literal block

In EXAMPLES each block (blank-line separated) is one example: its `$ ` lines are
commands, the other lines say what they do. The first HELP_EXAMPLES examples also
appear in --help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

HELP_EXAMPLES = 5
HERE = Path(__file__).parent


@dataclass
class Example:
    commands: list[str]
    text: list[str]


@dataclass
class Group:
    title: str
    options: list[str]
    text: list[str] = field(default_factory=list)


@dataclass
class Prose:
    sections: dict[str, list[str]] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)

    def help_examples(self) -> list[Example]:
        return self.examples[:HELP_EXAMPLES]


def path_of(name: str) -> Path:
    return HERE / f"{name}.md"


def load(name: str) -> Prose:
    """The prose for a command ('pysock' for the overview); empty when there is none."""
    try:
        text = path_of(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Prose()
    return parse(text)


def parse(text: str) -> Prose:
    prose = Prose()
    lines = text.splitlines()
    while lines and (m := re.match(r"^([a-z]+):\s*(.*)$", lines[0])):  # front matter: key: value
        prose.meta[m.group(1)] = m.group(2)
        lines.pop(0)
    section = None
    for line in lines:
        if line.startswith("## "):
            section = line[3:].strip().upper()
            prose.sections[section] = []
        elif line.startswith("# ") or section is None:
            continue
        else:
            prose.sections[section].append(line)
    prose.groups = _groups(prose.sections.pop("OPTIONS", []))
    prose.examples = _examples(prose.sections.pop("EXAMPLES", []))
    return prose


def _groups(lines: list[str]) -> list[Group]:
    groups: list[Group] = []
    for line in lines:
        if line.startswith("### "):
            groups.append(Group(line[4:].strip(), []))
        elif groups and not groups[-1].options and line.strip():
            groups[-1].options = line.split()
        elif groups:
            groups[-1].text.append(line)
    return groups


def _examples(lines: list[str]) -> list[Example]:
    """Text blocks say what the next block of `$ ` command lines does."""
    found, pending = [], []
    for block in blocks(lines):
        commands = [line[2:] for line in block if line.startswith("$ ")]
        pending += [line for line in block if not line.startswith("$ ")]
        if commands:
            found.append(Example(commands, pending))
            pending = []
    return found


def blocks(lines: list[str]) -> list[list[str]]:
    """Lines split at blank lines (trailing whitespace ignored)."""
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            out[-1].append(line.rstrip())
        elif out[-1]:
            out.append([])
    return [b for b in out if b]


def plain(text: str) -> str:
    """Inline markup removed, for terminals."""
    return re.sub(r"\*\*(.+?)\*\*|\*(.+?)\*|`(.+?)`", lambda m: next(g for g in m.groups() if g),
                  text)


def split_comment(command: str) -> tuple[str, str]:
    """'pysock listen 8080   # nc -l 8080' -> ('pysock listen 8080', 'nc -l 8080')."""
    m = re.match(r"^(.*?)\s{2,}#\s(.*)$", command)
    return (m.group(1), m.group(2)) if m else (command, "")
