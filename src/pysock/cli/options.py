"""Options and value types shared by commands: one spelling, one parser each, and
for Tab the values worth offering (service names, interfaces, states, socket paths)."""

from __future__ import annotations

import functools

import click

from pysock.errors import PysockError, UsageError
from pysock.net import address, names, sockopt


def _items(words, incomplete: str, prefix: str = ""):
    from click.shell_completion import CompletionItem
    return [CompletionItem(prefix + w) for w in words if w.startswith(incomplete)]


class _ParsedType(click.ParamType):
    """A click type that defers to a core parser; its PysockError becomes a usage error."""

    parse = staticmethod(lambda text: text)

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except PysockError as exc:
            self.fail(exc.message, param, ctx)


class Parsed(_ParsedType):
    """Any parser as a click type: Parsed('state', parse_state)."""

    def __init__(self, name: str, parse):
        self.name = name
        self.parse = parse


class PortType(_ParsedType):
    name = "port"

    def __init__(self, allow_zero: bool = False):
        self.allow_zero = allow_zero

    def parse(self, text):
        return address.parse_port(text, allow_zero=self.allow_zero)

    def shell_complete(self, ctx, param, incomplete):
        return _service_items(incomplete)


def _service_items(incomplete: str, prefix: str = ""):
    """Service names, once a name is begun: a bare Tab offers no 300-word list."""
    if not incomplete[:1].isalpha():
        return []
    return _items(sorted(names.services("tcp")), incomplete, prefix)


class HostType(_ParsedType):
    name = "host"
    parse = staticmethod(address.check_host)


class PortListType(_ParsedType):
    name = "ports"
    parse = staticmethod(address.parse_port_list)

    def shell_complete(self, ctx, param, incomplete):
        head, comma, last = incomplete.rpartition(",")
        last_range_start, dash, last = last.rpartition("-") if "-" in last[1:] else ("", "", last)
        return _service_items(last, head + comma + last_range_start + dash)


class UnixPathType(_ParsedType):
    """A Unix socket path or @abstract name; Tab offers bound sockets (the kernel's list,
    and socket files in the directory typed so far), else ordinary file completion."""

    name = "path"
    parse = staticmethod(address.parse_unix)

    def shell_complete(self, ctx, param, incomplete):
        import os

        from click.shell_completion import CompletionItem
        bound = [p for p in names.unix_sockets() if p.startswith(incomplete)]
        local = names.socket_files(os.path.dirname(incomplete))
        found = list(dict.fromkeys(bound + [p for p in local if p.startswith(incomplete)]))
        if found:
            return [CompletionItem(p) for p in found]
        return [CompletionItem(incomplete, type="file")]


class InterfaceType(_ParsedType):
    """A network interface name (-I/--iface); with addresses=True an IP address is
    taken too (ping -I ADDR binds to it). Tab offers /sys/class/net."""

    name = "iface"

    def __init__(self, addresses: bool = False):
        self.addresses = addresses

    def parse(self, text):
        have = names.interfaces()
        if text in have or (not have and text):
            return text
        if self.addresses:
            import ipaddress
            try:
                return str(ipaddress.ip_address(text))
            except ValueError:
                pass
        raise UsageError(f"no network interface '{text}' (there are: {', '.join(have)})")

    def shell_complete(self, ctx, param, incomplete):
        return _items(names.interfaces(), incomplete)


# What users type for --state: ss's state names and groups.
TCP_STATES = ("established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2", "time-wait",
              "close-wait", "last-ack", "closing", "listen", "unconn")
STATE_GROUPS = ("all", "connected", "synchronized", "bucket", "big")


class TcpStateType(_ParsedType):
    """A socket state or state group (--state); parse turns it into what the command
    needs (by default the word itself, checked). Tab offers the states and groups."""

    name = "state"

    def __init__(self, parse=None):
        if parse is not None:
            self.parse = parse

    @staticmethod
    def parse(text):
        word = text.strip().lower().replace("_", "-")
        if word not in TCP_STATES + STATE_GROUPS:
            raise UsageError(f"unknown socket state '{text}' (states: {', '.join(TCP_STATES)}; "
                        f"groups: {', '.join(STATE_GROUPS)})")
        return word

    def shell_complete(self, ctx, param, incomplete):
        return _items(TCP_STATES + STATE_GROUPS, incomplete.lower())


class SockOptType(_ParsedType):
    name = "sockopt"
    parse = staticmethod(sockopt.parse_sockopt)


class Seconds(click.ParamType):
    """A duration in seconds (fractions allowed): positive, or with allow_zero >= 0."""

    name = "secs"

    def __init__(self, allow_zero: bool = False):
        self.allow_zero = allow_zero

    def convert(self, value, param, ctx):
        try:
            secs = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not a number of seconds", param, ctx)
        low_ok = secs >= 0 if self.allow_zero else secs > 0
        if not (low_ok and secs < 1e9):
            kind = "non-negative" if self.allow_zero else "positive"
            self.fail(f"{value} must be a {kind} number of seconds", param, ctx)
        return secs


class CommandLine(_ParsedType):
    """--exec 'PROG ARGS': split as a shell would (no shell runs), checked here so an
    unclosed quote is a usage line; the text itself is what commands receive."""

    name = "command"

    @staticmethod
    def parse(text):
        import shlex
        try:
            words = shlex.split(text)
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise UsageError(f"cannot split '{text}': {str(exc).lower()}") from None
        if not words:
            raise UsageError("needs a program")
        return text


INT_MAX = (1 << 31) - 1
BACKLOG = click.IntRange(1, INT_MAX)  # listen(2) takes an int; the kernel caps it at somaxconn
COMMAND = CommandLine()
PORT = PortType()
HOST = HostType()
SECONDS = Seconds()
IFACE = InterfaceType()
TCP_STATE = TcpStateType()
UNIX_PATH = UnixPathType()


class Switch(click.Option):
    """One of several flags that write one variable (flag_value): -4/-6, inspect's views.
    click lets the last one typed win; two different ones together are a usage error."""

    def add_to_parser(self, parser, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        typed = ctx.meta.setdefault(f"pysock.switch.{self.name}", [])
        for flag in self.opts:
            parsed = parser._long_opt.get(flag) or parser._short_opt.get(flag)
            parsed.process = _recording(parsed.process, flag, typed)

    def process_value(self, ctx: click.Context, value):
        typed = list(dict.fromkeys(ctx.meta.get(f"pysock.switch.{self.name}", ())))
        if len(typed) > 1:
            raise UsageError(f"{_listing(typed)} exclude each other", see_help=True)
        return super().process_value(ctx, value)


def _listing(flags: list[str]) -> str:
    return flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and {flags[-1]}"


def _recording(process, flag: str, typed: list):
    def record(value, state):
        typed.append(flag)
        return process(value, state)
    return record


def family(f):
    """-4/-6 -> family=4|6|None."""
    f = click.option("-6", "family", flag_value=6, cls=Switch, help="IPv6 only.")(f)
    return click.option("-4", "family", flag_value=4, cls=Switch, help="IPv4 only.")(f)


def numeric(f):
    return click.option("-n", "--numeric", is_flag=True,
                        help="Numeric addresses only: never ask DNS.")(f)


def sockopts(f):
    names = ", ".join(sorted(sockopt.OPTIONS))
    return click.option("--sockopt", "sockopts", type=SockOptType(), multiple=True,
                        metavar="NAME[=VALUE]",
                        help=f"Set a socket option (repeatable): {names}.")(f)


def json_output(f):
    return click.option("--json", "json", is_flag=True, help="JSON Lines on stdout.")(f)


def option_group(options, build, into: str, keep: tuple[str, ...] = ()):
    """A decorator adding an option group whose values reach the command as one typed
    spec: build(**values) runs once, where click hands over (so the group's usage
    errors are said in one place), and its result is passed as the keyword `into`.
    keep: options listed among the group's only to hold their place in the help,
    which reach the command as they are."""
    names = [name for name in _param_names(options) if name not in keep]

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kwargs):
            values = {name: kwargs.pop(name) for name in names if name in kwargs}
            return f(*args, **kwargs, **{into: build(**values)})
        for option in reversed(options):
            command = option(command)
        return command
    return decorate


def _param_names(options) -> list[str]:
    def probe():
        pass
    for option in options:
        probe = option(probe)
    return [p.name for p in probe.__click_params__]
