"""Man pages from the click commands plus their prose (cli/<command>.md): the options,
defaults and synopsis come from the code, the rest from the prose, so neither drifts.
Output is man(7) roff that `groff -man -ww` and `mandoc -Tlint` accept silently."""

from __future__ import annotations

import re

import click

from pysock import __version__
from pysock.cli import prose as prose_mod
from pysock.cli.helpview import metavar
from pysock.cli.prose import Example, Group, Prose

WIDTH = 79  # source lines, not output: mandoc -Tlint wants at most 80 bytes
LATE_SECTIONS = ("EXIT STATUS", "ENVIRONMENT", "FILES")  # before EXAMPLES and SEE ALSO
DEFAULT_EXIT_STATUS = ["0", ": Success.", "", "1", ": The operation failed: refused, timed out, "
                       "unreachable, no reply.", "", "2", ": Usage error: a bad option, port or "
                       "address.", "", "130", ": Interrupted (Ctrl-C)."]


# ---- roff text ---------------------------------------------------------------

def escape(text: str) -> str:
    """Prose text: backslashes escaped; dashes that start options are minus signs."""
    text = text.replace("\\", "\\e")
    return re.sub(r"(?<![\w/])-+(?=[\w-])", lambda m: "\\-" * len(m.group()), text)


def literal(text: str) -> str:
    """Text to be typed as shown: every dash a minus, quotes straight."""
    return (text.replace("\\", "\\e").replace("-", "\\-").replace("'", "\\(aq")
            .replace("`", "\\(ga"))


def inline(text: str) -> str:
    """Prose with `code`, **bold** and *argument* markup, as roff."""
    out, pos = [], 0
    for m in re.finditer(r"`(.+?)`|\*\*(.+?)\*\*|\*(.+?)\*", text):
        out.append(escape(text[pos:m.start()]))
        code, bold, arg = m.groups()
        out.append(f"\\fB{literal(code)}\\fR" if code else
                   f"\\fB{escape(bold)}\\fR" if bold else f"\\fI{escape(arg)}\\fR")
        pos = m.end()
    out.append(escape(text[pos:]))
    return line("".join(out))


def line(text: str) -> str:
    """A text line that roff will not take for a request."""
    text = text.strip()
    return "\\&" + text if text[:1] in (".", "'") else text


def fill(text: str) -> str:
    """Text lines of at most 80 bytes (mandoc's style), broken at spaces only."""
    import textwrap
    lines = textwrap.wrap(text, WIDTH, break_long_words=False, break_on_hyphens=False)
    return "\n".join(line(x) for x in lines)


class Roff:
    """Lines of roff with the paragraph bookkeeping mandoc insists on."""

    def __init__(self):
        self.lines: list[str] = []
        self.fresh = True  # just after a heading: no .PP needed (mandoc warns on one)

    def request(self, text: str) -> None:
        self.lines.append(text)

    def heading(self, name: str, sub: bool = False) -> None:
        self.lines.append(f"{'.SS' if sub else '.SH'} {name}")
        self.fresh = True

    def paragraph(self, text: str) -> None:
        if not self.fresh:
            self.lines.append(".PP")
        self.lines.append(fill(text))
        self.fresh = False

    def literal_block(self, lines: list[str]) -> None:
        if not self.fresh:
            self.lines.append(".PP")
        self.lines += [".RS 4", ".nf", *[literal(x) for x in lines], ".fi", ".RE"]
        self.fresh = False

    def tagged(self, tag: str, text: str) -> None:
        self.lines += [".TP", tag, fill(text)] if text else [".TP", tag]
        self.fresh = False

    def bullet(self, text: str) -> None:
        self.lines += [".IP \\(bu 2", fill(text)]
        self.fresh = False

    def prose(self, lines: list[str]) -> None:
        """Markdown-subset paragraphs, lists, definitions and literal blocks."""
        for block in _blocks(lines):
            if all(x.startswith("    ") for x in block):
                self.literal_block([x[4:] for x in block])
            elif block[0].startswith("- "):
                for item in _items(block):
                    self.bullet(inline(item))
            elif len(block) > 1 and block[1].startswith(": "):
                for term, text in _definitions(block):
                    self.tagged(inline(term), inline(text))
            elif block[0] == "\b":
                self.literal_block([x.strip() for x in block[1:]])
            else:
                self.paragraph(inline(" ".join(x.strip() for x in block)))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _blocks(lines: list[str]) -> list[list[str]]:
    return prose_mod.blocks(lines)


def _items(block: list[str]) -> list[str]:
    items: list[str] = []
    for x in block:
        if x.startswith("- "):
            items.append(x[2:].strip())
        else:
            items[-1] += " " + x.strip()
    return items


def _definitions(block: list[str]) -> list[tuple[str, str]]:
    """term / ': text' pairs; indented lines continue the text."""
    pairs: list[list[str]] = []
    for x in block:
        if x.startswith(": ") and pairs:
            pairs[-1][1] = x[2:].strip()
        elif x.startswith(" ") and pairs:
            pairs[-1][1] += " " + x.strip()
        else:
            pairs.append([x.strip(), ""])
    return [(term, text) for term, text in pairs]


# ---- the parts of a page -----------------------------------------------------

def synopsis_line(text: str) -> str:
    """'pysock listen [OPTIONS] [ADDRESS] PORT': words to type bold, placeholders italic."""
    out = []
    for m in re.finditer(r"[A-Z][A-Z0-9_]*(?:\.\.\.)?|[a-z@-][\w-]*|\s+|.", text):
        word = m.group()
        if re.fullmatch(r"[A-Z][A-Z0-9_]*(\.\.\.)?", word):
            out.append(f"\\fI{word.removesuffix('...')}\\fR" + ("..." if word.endswith("...") else ""))
        elif word.strip() and (word[0].isalpha() or word[0] in "-@"):
            out.append(f"\\fB{literal(word)}\\fR")
        else:
            out.append(escape(word))
    return line("".join(out))


def _unset(default) -> bool:
    """None, or click's UNSET sentinel (click 8.3+) for an option given no default."""
    return default is None or getattr(default, "name", None) == "UNSET"


def synopsis(roff: Roff, forms: list[str]) -> None:
    """One line per form of the command, no blank lines between."""
    roff.paragraph(synopsis_line(forms[0]))
    for form in forms[1:]:
        roff.request(".br")
        roff.request(synopsis_line(form))


def option_tag(param: click.Option, ctx: click.Context) -> str:
    names = ", ".join(f"\\fB{literal(n)}\\fR" for n in (*param.opts, *param.secondary_opts))
    metavar = _metavar(param, ctx)
    return f"{names} {metavar}" if metavar else names


def _metavar(param: click.Option, ctx: click.Context) -> str:
    word = metavar(param, ctx)
    if isinstance(param.type, click.Choice) and not param.metavar:
        return "|".join(f"\\fB{literal(str(c))}\\fR" for c in param.type.choices)
    return f"\\fI{literal(word)}\\fR" if word else ""


def option_text(param: click.Option) -> str:
    text = (param.help or "").strip()
    if "--help" in param.opts and param.is_flag and param.expose_value is False:
        text = "Show the options, grouped, and a few examples, then exit."
    default = _default(param)
    if default is not None:
        text += f" Default: {default}."
    return inline(text)


def _default(param: click.Option) -> str | None:
    if param.is_flag or param.count or param.multiple or _unset(param.default):
        return None
    if callable(param.default) or param.default is False:
        return None
    if isinstance(param.show_default, str):
        return param.show_default
    return f"`{param.default:g}`" if isinstance(param.default, float) else f"`{param.default}`"


def options_section(roff: Roff, command: click.Command, ctx: click.Context, groups: list[Group],
                    heading: str = "OPTIONS") -> None:
    params = [p for p in command.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    if not params:
        return
    roff.heading(heading)
    done: set[int] = set()
    for group in groups:
        members = [p for p in params if id(p) not in done and
                   any(n in group.options for n in (*p.opts, *p.secondary_opts))]
        if not members:
            continue
        roff.heading(escape(group.title), sub=True)
        roff.prose(group.text)
        for p in members:
            roff.tagged(option_tag(p, ctx), option_text(p))
            done.add(id(p))
    rest = [p for p in params if id(p) not in done]
    if rest and done:
        roff.heading("Other options", sub=True)
    for p in rest:
        roff.tagged(option_tag(p, ctx), option_text(p))


PEER_FLAGS = "PEER FLAGS"


def peer_section(roff: Roff, name: str, prose: Prose) -> None:
    """What the peers' flags do here (cli/peertable.py), after the prose's intro."""
    from pysock.cli.peerflags import SECTION_TITLES, rows
    table = rows(name)
    if not any(table.values()):
        return
    roff.heading(PEER_FLAGS)
    roff.prose(prose.sections.get(PEER_FLAGS) or [
        "Flags the tools pysock replaces taught your fingers. Some are pysock's own, some "
        "are other names for its options; the rest say in one line what pysock offers instead."])
    for kind, title in SECTION_TITLES.items():
        if not table[kind]:
            continue
        roff.heading(escape(title), sub=True)
        if kind == "same":  # one paragraph: these need no explaining
            roff.paragraph(inline(", ".join(f"{flag} {text}" for flag, text in table[kind]) + "."))
            continue
        for flag, text in table[kind]:
            roff.tagged(inline(flag), inline(text))


def examples_section(roff: Roff, examples: list[Example]) -> None:
    if not examples:
        return
    roff.heading("EXAMPLES")
    for example in examples:
        if example.text:
            roff.paragraph(inline(" ".join(x.strip() for x in example.text)))
        roff.literal_block(example.commands)


def description(command: click.Command) -> list[str]:
    """The command's help text (its docstring) as prose lines."""
    import inspect
    text = inspect.cleandoc((command.help or "").split("\f", 1)[0])
    return text.splitlines()


def see_also(roff: Roff, refs: list[str]) -> None:
    roff.heading("SEE ALSO")
    roff.paragraph(",\n".join(_ref(r) for r in refs))


def _ref(ref: str) -> str:
    m = re.fullmatch(r"\s*([\w.-]+)\((\w+)\)\s*", ref)
    return f"\\fB{literal(m.group(1))}\\fR({m.group(2)})" if m else inline(ref.strip())


def _refs(prose: Prose) -> list[str]:
    text = " ".join(prose.sections.get("SEE ALSO", []))
    return [r for r in re.split(r",\s*", text.strip()) if r]


def header(title: str, prose_date: str) -> list[str]:
    return [f'.TH {literal(title.upper())} 1 {prose_date} "pysock {__version__}" "pysock manual"']


def rest_of_sections(roff: Roff, prose: Prose, skip: tuple[str, ...]) -> None:
    for name, lines in prose.sections.items():
        if name not in skip and name not in LATE_SECTIONS:
            roff.heading(name)
            roff.prose(lines)


def late_sections(roff: Roff, prose: Prose, exit_default: list[str] | None) -> None:
    for name in LATE_SECTIONS:
        lines = prose.sections.get(name) or (exit_default if name == "EXIT STATUS" else None)
        if lines:
            roff.heading(name)
            roff.prose(lines)


# ---- whole pages -------------------------------------------------------------

def command_page(group: click.Group, name: str, summary: str, date: str) -> str:
    command = group.get_command(click.Context(group, info_name="pysock"), name)
    parent = click.Context(group, info_name="pysock", **group.context_settings)
    ctx = click.Context(command, info_name=name, parent=parent, **command.context_settings)
    prose = prose_mod.load(name)
    roff = Roff()
    roff.lines += header(f"pysock-{name}", date)
    roff.heading("NAME")
    roff.paragraph(f"pysock\\-{literal(name)} \\- {escape(summary.rstrip('.'))}")
    roff.heading("SYNOPSIS")
    forms = [x.strip() for x in prose.sections.get("SYNOPSIS", []) if x.strip()]
    if not forms:
        forms = [" ".join(["pysock", name, *command.collect_usage_pieces(ctx)])]
    synopsis(roff, forms)
    roff.heading("DESCRIPTION")
    roff.prose(description(command) + [""] + prose.sections.get("DESCRIPTION", []))
    options_section(roff, command, ctx, prose.groups)
    peer_section(roff, name, prose)
    rest_of_sections(roff, prose, ("SYNOPSIS", "DESCRIPTION", "SEE ALSO", PEER_FLAGS))
    late_sections(roff, prose, DEFAULT_EXIT_STATUS)
    examples_section(roff, prose.examples)
    see_also(roff, _refs(prose) + [r for r in ["pysock(1)"] if r not in _refs(prose)])
    return roff.text()


def overview_page(group: click.Group, commands: dict[str, tuple[str, str]]) -> str:
    """pysock(1): the overview, its global options, and the pages of every command."""
    prose = prose_mod.load("pysock")
    ctx = click.Context(group, info_name="pysock", **group.context_settings)
    roff = Roff()
    roff.lines += header("pysock", prose.meta["date"])
    roff.heading("NAME")
    roff.paragraph(f"pysock \\- {escape(prose.meta['summary'])}")
    roff.heading("SYNOPSIS")
    synopsis(roff, [x.strip() for x in prose.sections.get("SYNOPSIS", []) if x.strip()])
    roff.heading("DESCRIPTION")
    roff.prose(description(group) + [""] + prose.sections.get("DESCRIPTION", []))
    for name in prose.sections:
        if name == "COMMANDS":
            roff.heading(name)
            roff.prose(prose.sections[name])
    options_section(roff, group, ctx, prose.groups, heading="GLOBAL OPTIONS")
    rest_of_sections(roff, prose, ("SYNOPSIS", "DESCRIPTION", "SEE ALSO", "COMMANDS"))
    late_sections(roff, prose, DEFAULT_EXIT_STATUS)
    examples_section(roff, prose.examples)
    see_also(roff, [f"pysock-{n}(1)" for n in commands] + _refs(prose))
    return roff.text()


def all_pages(group: click.Group, commands: dict[str, tuple[str, str]]) -> dict[str, str]:
    """File name -> roff, for pysock(1) and every registered command."""
    date = prose_mod.load("pysock").meta["date"]
    pages = {"pysock.1": overview_page(group, commands)}
    for name, (_, summary) in commands.items():
        pages[f"pysock-{name}.1"] = command_page(group, name, summary, date)
    return pages
