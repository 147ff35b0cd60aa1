"""Flags that nmap, traceroute, ping and nc users type without thinking.

Each command's table (cli/peertable.py) says, per peer flag, one of:
  same     pysock has the flag, spelled and meaning the same
  alias    another name for a pysock option (-sS is --syn), optionally with its value
           translated (nc -X 5 is --proxy-type socks5)
  preset   defaults for several options at once (nmap -T4, -F); options given on the
           command line still win, as in nmap
  missing  pysock cannot honour it: one usage line naming what it offers instead
install() turns the aliases, presets and missing flags into hidden click options, so
they parse where click parses options and never appear in --help or completion; the
man page lists them all (rows())."""

from __future__ import annotations

import click

from pysock.errors import UsageError


class PeerFlag:
    """One peer flag and what pysock does with it (a plain class: the table is built on
    every start, and a dataclass costs milliseconds there)."""

    __slots__ = ("flag", "peer", "meaning", "kind", "target", "values", "sets", "instead",
                 "takes_value", "note")

    def __init__(self, flag: str, peer: str, meaning: str, kind: str, *, target: str = "",
                 values: tuple = (), sets: tuple = (), instead: str = "",
                 takes_value: bool = False, note: str = ""):
        self.flag, self.peer, self.meaning, self.kind = flag, peer, meaning, kind
        self.target = target  # alias: the pysock option it names
        self.values = values  # alias: (peer value, pysock value) pairs
        self.sets = sets  # preset: (pysock option, value) pairs
        self.instead = instead  # missing: what pysock offers
        self.takes_value = takes_value  # missing: the peer flag takes an argument
        self.note = note  # what pysock does, when the generated wording would not say it

    def __repr__(self) -> str:
        return f"PeerFlag({self.flag!r}, {self.kind!r})"

    def explain(self, command: str) -> str:
        return f"{command} has no {self.flag} ({self.meaning}); {self.instead}"

    def pysock_side(self) -> str:
        """What the man page says pysock does with the flag."""
        if self.note:
            return self.note
        if self.kind == "same":
            return "the same"
        if self.kind == "alias":
            pairs = ", ".join(f"{a} is {b}" for a, b in self.values)
            return f"same as {self.target}" + (f" ({pairs})" if pairs else "")
        if self.kind == "preset":
            return "sets " + ", ".join(f"{opt} {_word(v)}" if v is not True else opt
                                       for opt, v in self.sets) + " unless given"
        return f"not available; {self.instead}"


def same(flag: str, peer: str, meaning: str) -> PeerFlag:
    return PeerFlag(flag, peer, meaning, "same")


def alias(flag: str, peer: str, meaning: str, target: str, **values: str) -> PeerFlag:
    return PeerFlag(flag, peer, meaning, "alias", target=target,
                    values=tuple((k.removeprefix("_"), v) for k, v in values.items()))


def preset(flag: str, peer: str, meaning: str, *sets: tuple[str, object], note: str = "") -> PeerFlag:
    """Several defaults at once; with no sets, a flag whose meaning the command always has."""
    return PeerFlag(flag, peer, meaning, "preset", sets=tuple(sets), note=note)


def missing(flag: str, peer: str, meaning: str, instead: str, takes_value: bool = False) -> PeerFlag:
    return PeerFlag(flag, peer, meaning, "missing", instead=instead, takes_value=takes_value)


def _word(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def table(command: str) -> list[PeerFlag]:
    from pysock.cli.peertable import TABLES
    return TABLES[command]() if command in TABLES else []


def install(command: click.Command) -> click.Command:
    """Add the command's peer flags as hidden options (once)."""
    if getattr(command, "_peer_flags", False):
        return command
    command._peer_flags = True
    by_name = {o: p for p in command.params if isinstance(p, click.Option)
               for o in (*p.opts, *p.secondary_opts)}
    for n, entry in enumerate(table(command.name)):
        if entry.kind == "same":
            continue
        if entry.flag in by_name:
            raise RuntimeError(f"{command.name}: peer flag {entry.flag} is a pysock option")
        make = {"alias": _alias, "preset": _preset, "missing": _missing}[entry.kind]
        command.params.append(make(entry, command.name, by_name, f"peer_flag_{n}"))
    return command


def _alias(entry: PeerFlag, command: str, by_name: dict, name: str) -> click.Option:
    """A hidden option writing the target's variable. click's parser files both under
    that variable, and gives the one typed on the command line precedence."""
    target = by_name[entry.target]
    if entry.values:
        return _translated(entry, target, name)
    kw = dict(hidden=True, default=target.default, multiple=target.multiple)
    if target.count:
        kw = dict(hidden=True, count=True)
    elif target.is_flag:
        kw.update(is_flag=True, flag_value=target.flag_value)
    else:
        kw["type"] = target.type
    option_class = type(target) if target.is_flag else click.Option  # a Switch stays one
    return option_class([entry.flag, target.name], **kw)


def _translated(entry: PeerFlag, target: click.Option, name: str) -> click.Option:
    """The peer's word for a value (nc -X 5) -> the target's (socks5), written before the
    target is processed; its own variable, since the parser would hand '5' to both."""
    mapping = dict(entry.values)

    def write(ctx: click.Context, param: click.Parameter, value) -> None:
        if value is None or ctx.resilient_parsing:
            return
        if value not in mapping:
            raise click.BadParameter(f"'{value}' is not one of {', '.join(mapping)}", ctx, param)
        ctx.params[target.name] = mapping[value]
        ctx.set_parameter_source(target.name, click.core.ParameterSource.COMMANDLINE)

    return click.Option([entry.flag, name], hidden=True, is_eager=True, expose_value=False,
                        callback=write)


def _preset(entry: PeerFlag, command: str, by_name: dict, name: str) -> click.Option:
    defaults = {by_name[opt].name: value for opt, value in entry.sets}

    def apply(ctx: click.Context, param: click.Parameter, given: bool) -> None:
        if given:
            ctx.default_map = {**(ctx.default_map or {}), **defaults}

    return click.Option([entry.flag, name], is_flag=True, hidden=True, is_eager=True,
                        expose_value=False, callback=apply)


def _missing(entry: PeerFlag, command: str, by_name: dict, name: str) -> click.Option:
    def refuse(ctx: click.Context, param: click.Parameter, value) -> None:
        if value not in (None, False, ()) and not ctx.resilient_parsing:
            raise UsageError(entry.explain(command))

    return click.Option([entry.flag, name], is_flag=not entry.takes_value, hidden=True,
                        is_eager=True, expose_value=False, callback=refuse)


SECTION_TITLES = {"same": "Accepted as they are", "mapped": "Mapped to pysock options",
                  "missing": "Not available (exit status 2, with what pysock offers instead)"}


def rows(command: str) -> dict[str, list[tuple[str, str]]]:
    """Man page subsection -> (flag and its peer, what it means there and in pysock)."""
    out: dict[str, list[tuple[str, str]]] = {k: [] for k in SECTION_TITLES}
    for entry in table(command):
        kind = "mapped" if entry.kind in ("alias", "preset") else entry.kind
        flag = f"`{entry.flag}` ({entry.peer})"
        if kind == "same":
            out[kind].append((flag, entry.meaning))
        else:
            meaning = entry.meaning[0].upper() + entry.meaning[1:]
            out[kind].append((flag, f"{meaning}: {entry.pysock_side()}."))
    return out
