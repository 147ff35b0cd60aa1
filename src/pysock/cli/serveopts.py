"""What the serving commands share: the serve modes of listen and unix -l (-k,
--broker, --chat, --echo, --exec, --sh-exec, --max-conns, --backlog), the access
lists of listen and forward, and the [ADDRESS] PORT place of listen and udp -l.
Each group reaches its command as one checked, frozen spec."""

from __future__ import annotations

import shlex
from typing import NamedTuple

import click

from pysock.cli import options as opt
from pysock.errors import UsageError


def _serve_options(with_l: bool):
    """The serve-mode options; unix says 'With -l:' where listen needs no -l."""
    def say(text: str, unix_text: str | None = None) -> str:
        return (unix_text or f"With -l: {text[0].lower()}{text[1:]}") if with_l else text
    return [
        click.option("-k", "--keep-open", is_flag=True,
                     help=say("Serve many clients, at once.",
                              "With -l: serve many clients (or senders).")),
        click.option("--max-conns", type=click.IntRange(1), default=None,
                     help="With -k: refuse clients beyond N at a time."),
        click.option("--broker", is_flag=True,
                     help=say("Send each client's data to every other client.",
                              "With -l: send each client's data to every other.")),
        click.option("--chat", is_flag=True, help="--broker with a '<user N>' prefix per line."),
        click.option("--echo", is_flag=True, help=say("Send each client back what it sends.")),
        click.option("--exec", "exec_cmd", type=opt.COMMAND, metavar="'PROG ARGS'", default=None,
                     help=say("Run PROG for each client, stdin/stdout tied to the socket "
                              "(no shell).", "With -l: run PROG per client, stdin/stdout tied "
                              "to the socket.")),
        click.option("--sh-exec", metavar="CMD", default=None,
                     help="Like --exec, through /bin/sh -c."),
        click.option("--backlog", type=opt.BACKLOG, default=128, show_default=True,
                     help="Length of the accept queue."),
    ]


class ServeSpec(NamedTuple):
    """How a server treats its clients: one (relayed with stdin/stdout) or many, and
    in which mode: relay, broker, chat, echo or exec (--exec and --sh-exec)."""

    keep_open: bool = False
    max_conns: int | None = None
    mode: str = "relay"
    exec_cmd: str | None = None
    sh_exec: str | None = None
    backlog: int = 128

    @classmethod
    def build(cls, *, keep_open, max_conns, broker, chat, echo, exec_cmd, sh_exec,
              backlog) -> ServeSpec:
        chosen = [name for name, on in (("broker", broker), ("chat", chat), ("echo", echo),
                                        ("exec", exec_cmd is not None),
                                        ("exec", sh_exec is not None)) if on]
        if len(chosen) > 1:
            raise UsageError("--broker, --chat, --echo, --exec and --sh-exec exclude "
                             "each other", see_help=True)
        return cls(keep_open, max_conns, chosen[0] if chosen else "relay", exec_cmd, sh_exec,
                   backlog)

    @property
    def mode_flag(self) -> str:
        """The mode as its flag names it (--sh-exec is the exec mode through a shell)."""
        return "sh-exec" if self.sh_exec is not None else self.mode

    @property
    def one_client(self) -> bool:
        """nc -l: the first client relayed with stdin/stdout, and then the end."""
        return self.mode == "relay" and not self.keep_open

    def server_only(self) -> list[str]:
        """The flags given that only a server has a use for."""
        return [name for name, on in (("-k", self.keep_open), ("--max-conns", self.max_conns),
                                      ("--broker", self.mode == "broker"),
                                      ("--chat", self.mode == "chat"),
                                      ("--echo", self.mode == "echo"),
                                      ("--exec", self.exec_cmd), ("--sh-exec", self.sh_exec))
                if on]

    def command(self) -> tuple[str, ...]:
        """--exec's program and arguments (checked runnable now, not by the first
        client), or --sh-exec's command line; () in the other modes."""
        if self.exec_cmd is not None:
            command = tuple(shlex.split(self.exec_cmd))
            if not command:
                raise UsageError("--exec needs a program", see_help=True)
            check_program(command[0])
            return command
        return (self.sh_exec,) if self.sh_exec is not None else ()


def check_program(name: str) -> None:
    """--exec PROG: there and runnable, checked once at start (a usage error), not
    found missing by the first client."""
    import os
    import shutil
    if "/" in name:
        if not os.path.exists(name):
            raise UsageError(f"cannot run {name}: no such file", see_help=True)
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise UsageError(f"cannot run {name}: not an executable program", see_help=True)
    elif shutil.which(name) is None:
        raise UsageError(f"cannot run {name}: not found in PATH", see_help=True)


# the command receives the group as serve=ServeSpec
serve_options = opt.option_group(_serve_options(False), ServeSpec.build, "serve")
unix_serve_options = opt.option_group(_serve_options(True), ServeSpec.build, "serve")


# ---- access lists ---------------------------------------------------------------------

def _access_options(keep: str, drop: str):
    return [
        click.option("--allow", multiple=True, metavar="CIDR", help=keep),
        click.option("--deny", multiple=True, metavar="CIDR", help=drop),
        click.option("--allowfile", type=click.Path(dir_okay=False), default=None,
                     help="--allow for each address/CIDR line of a file."),
        click.option("--denyfile", type=click.Path(dir_okay=False), default=None,
                     help="--deny for each address/CIDR line of a file."),
    ]


def build_access(*, allow, deny, allowfile, denyfile):
    """net.access.Access from --allow/--deny and their files (read once, now)."""
    from pysock.net.access import Access, parse_network, read_networks
    allows = [parse_network(a) for a in allow] + (read_networks(allowfile) if allowfile else [])
    denies = [parse_network(d) for d in deny] + (read_networks(denyfile) if denyfile else [])
    return Access(tuple(allows), tuple(denies))


def access_options(keep: str, drop: str):
    """--allow/--deny/--allowfile/--denyfile; the command receives access=Access.
    keep and drop are the help of --allow and --deny, in the command's words."""
    return opt.option_group(_access_options(keep, drop), build_access, "access")


# ---- the place a server binds ----------------------------------------------------------

def bind_place(place: tuple[str, ...], port_opt: int | None, usage: str,
               proto: str = "tcp") -> tuple[str | None, int]:
    """[ADDRESS] PORT as arguments, or -p PORT with at most an ADDRESS argument;
    usage is the command line to show when the port is missing."""
    from pysock.net import address
    if port_opt is not None:
        if len(place) > 1:
            raise UsageError("give the port either as -p PORT or as an argument, not both", see_help=True)
        return (address.check_host(address.unbracket(place[0])) if place else None), port_opt
    if not place:
        raise UsageError(f"missing PORT ({usage})", see_help=True)
    return address.bind_place(place, proto=proto)
