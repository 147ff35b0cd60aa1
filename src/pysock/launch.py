"""The entry point: `pysock inspect` with only ss-style flags, piped or --json, runs
here without click; everything else goes to the click group (pysock.cli).

Why this lives outside cli/: importing anything under pysock.cli imports the
click group first, and click with the command modules costs more than the whole
listing of a few hundred sockets (measured in bench/scenarios/inspect.py). The
flags taken here are a fixed table that means exactly what the click command
means by them; any other word (an expression, a value option, --help, a typo)
sends the whole command line to click, which parses and reports it as always."""

from __future__ import annotations

import os
import sys

# short flag -> (what it sets, value); ss's -p, -O and -i/-m/-o as pysock's command maps them
_SHORT = {"t": ("protos", "tcp"), "u": ("protos", "udp"), "w": ("protos", "raw"),
          "x": ("protos", "unix"), "l": ("listening", True), "a": ("all_states", True),
          "n": ("numeric", True), "4": ("family", 4), "6": ("family", 6),
          "H": ("header", False), "e": ("extended", True), "i": ("extended", True),
          "m": ("extended", True), "o": ("extended", True), "p": None, "O": None}
_LONG = {"--tcp": "t", "--udp": "u", "--raw": "w", "--unix": "x", "--listening": "l",
         "--all": "a", "--numeric": "n", "--extended": "e", "--no-header": "H"}


def parse_inspect(args: list[str]) -> dict | None:
    """inspect's simple flags -> settings; None when click must parse this line."""
    if not args or args[0] != "inspect" or os.environ.get("PYSOCK_DEBUG") == "1":
        return None
    got: dict = {"protos": [], "listening": False, "all_states": False, "numeric": False,
                 "family": None, "header": True, "extended": False, "json": False}
    for word in args[1:]:
        if word == "--json":
            got["json"] = True
            continue
        letters = _LONG.get(word) or (word[1:] if word[:1] == "-" and word[1:2] != "-" else "")
        if not letters or any(c not in _SHORT for c in letters):
            return None
        for c in letters:
            if _SHORT[c] is not None:
                key, value = _SHORT[c]
                if key == "protos":
                    got["protos"].append(value)
                elif key == "family" and got["family"] not in (None, value):
                    return None  # -4 with -6: click refuses it, with the usual line
                else:
                    got[key] = value
    if not got["json"] and _isatty(sys.stdout):
        return None  # a table on a terminal: rich draws it, through click's command
    return got


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def list_sockets(got: dict) -> int:
    from pysock.inventory.processes import ScanBeside, sockets_in_use
    # the /proc owner pass is the longest part of a big listing: it starts first, in a
    # child, and runs while this process imports the rest and reads the sockets
    with ScanBeside(False, sockets_in_use()).start() as beside:
        from pysock.inventory.filter import Filter, Selection
        from pysock.inventory.sources import choose_source, collect
        from pysock.render.diagnostics import say
        from pysock.render.inspect import FastPlain, Names, write_sockets
        flt = Filter.build(Selection(protos=got["protos"], family=got["family"],
                                     listening=got["listening"], all_states=got["all_states"]))
        names = Names(services=not got["numeric"])
        plain = None if got["json"] else FastPlain(names, got["extended"])
        inventory = collect(flt, source=choose_source(None), extended=got["extended"],
                            beside=beside, while_waiting=plain.prepare if plain else None)
    for note in inventory.notes:
        say(note)
    if plain is not None:
        plain.write(inventory.records, sys.stdout, got["header"])
    else:
        write_sockets(inventory.records, "json", color=False, extended=got["extended"],
                      names=names, header=got["header"])
    return 0


def run_fast(got: dict) -> int:
    """list_sockets inside the same error boundary as pysock.cli.run."""
    try:
        return list_sockets(got)
    except BaseException as exc:
        from pysock.advice import install
        from pysock.status import exit_status
        install()
        return exit_status(exc)


def main() -> None:
    try:
        got = parse_inspect(sys.argv[1:])
        if got is None:
            from pysock.cli import main as full
            full()
    except KeyboardInterrupt:  # Ctrl-C while the commands are still being imported
        from pysock.errors import ExitStatus
        from pysock.status import quiet
        sys.exit(quiet(ExitStatus.INTERRUPTED))
    sys.exit(run_fast(got))


if __name__ == "__main__":
    main()
