"""--proxy, --proxy-type and --proxy-auth, shared by connect and forward: the
command receives proxy=net.proxy.ProxySpec, or None without --proxy."""

from __future__ import annotations

import click

from pysock.cli import options as opt
from pysock.errors import UsageError

PROXY_TYPES = ("socks5", "socks4", "http")


def build_proxy(*, proxy, proxy_type, proxy_auth):
    if proxy is None:
        if proxy_auth is not None:
            raise UsageError("--proxy-auth needs --proxy", see_help=True)
        return None
    from pysock.net.proxy import ProxySpec, parse_auth, parse_proxy
    host, port = parse_proxy(proxy, proxy_type)
    user, password = (parse_auth(proxy_auth, proxy_type) if proxy_auth is not None
                      else (None, None))
    return ProxySpec(host, port, proxy_type, user, password)


def proxy_options(proxy_help: str, type_help: str, auth_help: str):
    """The three options, with help in the command's words."""
    return opt.option_group([
        click.option("--proxy", metavar="HOST[:PORT]", default=None, help=proxy_help),
        click.option("--proxy-type", type=click.Choice(PROXY_TYPES), default="socks5",
                     show_default=True, help=type_help),
        click.option("--proxy-auth", metavar="USER:PASS", default=None, help=auth_help),
    ], build_proxy, "proxy")
