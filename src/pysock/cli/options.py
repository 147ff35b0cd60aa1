"""Options and value types shared by commands: one spelling, one parser each."""

from __future__ import annotations

import click

from pysock.errors import PysockError
from pysock.net import address, sockopt


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


class HostType(_ParsedType):
    name = "host"
    parse = staticmethod(address.check_host)


class PortListType(_ParsedType):
    name = "ports"
    parse = staticmethod(address.parse_port_list)


class UnixPathType(_ParsedType):
    name = "path"
    parse = staticmethod(address.parse_unix)


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


PORT = PortType()
HOST = HostType()
SECONDS = Seconds()


def family(f):
    """-4/-6 -> family=4|6|None."""
    f = click.option("-6", "family", flag_value=6, help="IPv6 only.")(f)
    return click.option("-4", "family", flag_value=4, help="IPv4 only.")(f)


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
