"""--help that teaches: options in the groups the command's prose names, then a
few examples, then where the manual is. The prose is read only when help is shown."""

from __future__ import annotations

import click

COMMENT_COLUMN = 42  # examples' '# ...' notes line up here when the command is short enough
TERM_COLUMN_MAX = 26  # option names wider than this put their help on the next line


def metavar(param: click.Option, ctx: click.Context) -> str:
    """What follows an option's name: '' for flags, its metavar, or a short word for
    its type (N, not click's 'INTEGER RANGE')."""
    if param.is_flag or param.count:
        return ""
    if param.metavar:
        return param.metavar
    if isinstance(param.type, click.Choice):
        return "|".join(str(c) for c in param.type.choices)
    if isinstance(param.type, click.IntRange | click.FloatRange):
        return "N" if isinstance(param.type, click.IntRange) else "NUM"
    if isinstance(param.type, click.Path):
        return "FILE" if param.type.file_okay else "DIR"
    return param.type.name.upper()


def help_row(param: click.Option, ctx: click.Context) -> tuple[str, str]:
    """(names and metavar, help with click's [default: ...] notes)."""
    _, text = param.get_help_record(ctx) or ("", "")
    names = ", ".join((*param.opts, *param.secondary_opts))
    word = metavar(param, ctx)
    return (f"{names} {word}" if word else names), text


class TeachingCommand(click.Command):
    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from pysock.cli.prose import load
        rows = [(p, help_row(p, ctx)) for p in self.get_params(ctx)
                if isinstance(p, click.Option) and not p.hidden]
        width = min(max((len(term) for _, (term, _) in rows), default=0), TERM_COLUMN_MAX)
        rows = [(p, (term.ljust(width), text)) for p, (term, text) in rows]
        shown: set[int] = set()
        for group in load(self.name).groups:
            members = [(p, r) for p, r in rows if id(p) not in shown and _named(p, group.options)]
            shown.update(id(p) for p, _ in members)
            if members:
                with formatter.section(group.title):
                    formatter.write_dl([r for _, r in members])
        rest = [r for p, r in rows if id(p) not in shown]
        if rest:
            with formatter.section("Other options" if shown else "Options"):
                formatter.write_dl(rest)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from pysock.cli.prose import load
        super().format_epilog(ctx, formatter)
        examples = load(self.name).help_examples()
        if examples:
            with formatter.section("Examples"):
                write_examples(formatter, [c for e in examples for c in e.commands])
        formatter.write_paragraph()
        formatter.write_text(f"More in 'pysock help {self.name}' (man pysock-{self.name}).")


def format_group_options(group: click.Group, ctx: click.Context,
                         formatter: click.HelpFormatter) -> None:
    """pysock --help: the commands first (what people look for), then the options,
    and where to read more; it fits a 80x24 terminal."""
    group.format_commands(ctx, formatter)
    rows = [help_row(p, ctx) for p in group.get_params(ctx) if isinstance(p, click.Option)]
    with formatter.section("Options"):
        formatter.write_dl(rows)
    # no "see also" line: with 14 commands the page fills 24 lines, and the help
    # command's row already says where the manual is


def teach(command: click.Command) -> click.Command:
    """Give a plain click command (as @click.command makes) the grouped help."""
    if type(command) is click.Command:
        command.__class__ = TeachingCommand
    return command


def _named(param: click.Parameter, names: list[str]) -> bool:
    return any(name in names for name in (*param.opts, *param.secondary_opts))


def write_examples(formatter: click.HelpFormatter, commands: list[str]) -> None:
    """Commands with their '# note' lined up in one column; a note that would overflow
    the line is left to the man page."""
    from pysock.cli.prose import split_comment
    indent = " " * formatter.current_indent
    room = (formatter.width or 80) - formatter.current_indent
    pairs = [split_comment(command) for command in commands]
    column = note_column(pairs, room)
    for text, note in pairs:
        line = f"{text:<{column}}# {note}" if note and len(text) < column else text
        formatter.write(f"{indent}{line if len(line) <= room else text}\n")


def note_column(pairs: list[tuple[str, str]], room: int) -> int:
    """Where the notes start: COMMENT_COLUMN when every noted line fits there, else just
    past the longest command with a note."""
    noted = [(text, note) for text, note in pairs if note]
    if not noted:
        return 0
    tight = max(len(text) for text, _ in noted) + 2
    for column in (max(COMMENT_COLUMN, tight), tight):
        if all(column + 2 + len(note) <= room for _, note in noted):
            return column
    return tight
