"""The entry point: `pysock inspect` with only ss-style flags, piped or --json, and
`pysock ping` with only plain flags and values, piped, run here without click;
everything else goes to the click group (pysock.cli).

Why this lives outside cli/: importing anything under pysock.cli imports the
click group first, and click with the command modules costs more than the whole
listing of a few hundred sockets (measured in bench/scenarios/inspect.py). The
flags taken here are a fixed table that means exactly what the click command
means by them; any other word (an expression, a value option, --help, a typo)
sends the whole command line to click, which parses and reports it as always.
ping's values are taken here only in the plain spelling that click reads the
same way (digits, one dot); click reports the rest, and a bad value, as always."""

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


# ping: flag -> (parameter, value kind); kinds: True (a flag), "count" (int >= 1),
# "size" (0..65507), "ttl" (1..255), "interval" (secs >= 0), "secs" (> 0)
_PING = {"-c": ("count", "count"), "--count": ("count", "count"),
         "-i": ("interval", "interval"), "--interval": ("interval", "interval"),
         "-W": ("timeout", "secs"), "--timeout": ("timeout", "secs"),
         "-w": ("deadline", "secs"), "--deadline": ("deadline", "secs"),
         "-s": ("size", "size"), "--size": ("size", "size"), "-t": ("ttl", "ttl"),
         "--ttl": ("ttl", "ttl"), "-q": ("quiet", True), "--quiet": ("quiet", True),
         "-f": ("flood", True), "--flood": ("flood", True), "-D": ("timestamps", True),
         "--timestamps": ("timestamps", True), "-n": ("numeric", True),
         "--numeric": ("numeric", True), "--json": ("json", True),
         "-4": ("v4", True), "-6": ("v6", True)}
_PING_RANGES = {"count": (1, None), "size": (0, 65507), "ttl": (1, 255)}


def parse_ping(args: list[str]) -> dict | None:
    """ping's plain flags -> its parameters; None when click must parse this line."""
    if not args or args[0] != "ping" or os.environ.get("PYSOCK_DEBUG") == "1":
        return None
    got: dict = {"hosts": [], "count": None, "interval": None, "timeout": 10.0,
                 "deadline": None, "size": 56, "ttl": None}
    words = iter(args[1:])
    for word in words:
        if word[:1] != "-":
            got["hosts"].append(word)
            continue
        if word not in _PING:
            return None
        name, kind = _PING[word]
        value = True if kind is True else _ping_value(kind, next(words, ""))
        if value is None:
            return None
        got[name] = value
    if not got["hosts"] or (got.get("v4") and got.get("v6")) or _isatty(sys.stdout):
        return None  # click's usage lines; a terminal may get a live table
    got["family"] = 4 if got.pop("v4", False) else 6 if got.pop("v6", False) else None
    return got


def _ping_value(kind: str, text: str) -> int | float | None:
    """text as click's type for kind reads it, when it is spelled plainly and valid."""
    if not text.isascii() or not text.replace(".", "", 1).isdigit():
        return None
    if kind in _PING_RANGES:
        if "." in text:
            return None
        low, high = _PING_RANGES[kind]
        number = int(text)
        return number if number >= low and (high is None or number <= high) else None
    secs = float(text)
    good = 0 <= secs < 1e7 if kind == "interval" else 0 < secs < 1e9
    return secs if good else None


def run_ping(got: dict) -> int:
    """ping's body inside the same error boundary as pysock.cli.run."""
    from pysock import status
    from pysock.errors import ExitStatus, UsageError
    status.unwind_on_signals()
    try:
        from pysock.pingmain import run
        from pysock.probes.ping import PingSpec
        from pysock.render.style import use_color
        interval = got["interval"]
        if interval is None:
            interval = 0.0 if got.get("flood") else 1.0
        spec = PingSpec(count=got["count"], interval=interval, timeout=got["timeout"],
                        deadline=got["deadline"], size=got["size"], ttl=got["ttl"],
                        flood=bool(got.get("flood")))
        json = bool(got.get("json"))
        result = run(got["hosts"], spec, quiet=bool(got.get("quiet")), family=got["family"],
                     timestamps=bool(got.get("timestamps")), numeric=bool(got.get("numeric")),
                     port=None, json=json, mode="json" if json else "plain",
                     color=use_color("auto", False))
        sys.stdout.flush()
        return result
    except KeyboardInterrupt:
        sys.stderr.write("\n")  # as click does for a Ctrl-C outside the probe loop
        return status.quiet(ExitStatus.INTERRUPTED)
    except BaseException as exc:
        if isinstance(exc, UsageError) and exc.see_help:
            exc = UsageError(f"{exc.message} (see 'pysock ping --help')", exc.status)
        return status.exit_status(exc, stdout_closed=status.stdout_closed)


def main() -> None:
    try:
        got = parse_inspect(sys.argv[1:])
        if got is None:
            quick = parse_ping(sys.argv[1:])
            if quick is not None:
                sys.exit(run_ping(quick))
            from pysock.cli import main as full
            full()
    except KeyboardInterrupt:  # Ctrl-C while the commands are still being imported
        from pysock.errors import ExitStatus
        from pysock.status import quiet
        sys.exit(quiet(ExitStatus.INTERRUPTED))
    sys.exit(run_fast(got))


if __name__ == "__main__":
    main()
