"""The pysock command group, its lazy command registry, and main(): the one
place where errors become a line on stderr and an exit status."""

from __future__ import annotations

import importlib
import os
import sys

import click

from pysock import __version__
from pysock.advice import install as install_advice
from pysock.cli.context import Settings
from pysock.errors import ExitStatus, PysockError, UsageError
from pysock.status import StdoutClosed, is_epipe, quiet, stdout_closed, unwind_on_signals

install_advice()  # core errors' ways out, in this command line's flags

# name -> (module, one-line summary). Commands register here; modules load on use,
# so `pysock --help` and completion never import what they do not run.
COMMANDS: dict[str, tuple[str, str]] = {
    "listen": ("pysock.cli.listen", "TCP server (nc -l); -k keeps accepting."),
    "connect": ("pysock.cli.connect", "TCP client (nc HOST PORT)."),
    "udp": ("pysock.cli.udp", "UDP datagrams to/from a peer (nc -u); -l receives, --measure."),
    "unix": ("pysock.cli.unix", "Unix sockets (nc -U): stream, dgram, seqpacket, @abstract."),
    "scan": ("pysock.cli.scan", "Port scanner: connect, SYN and UDP scans that agree with nmap."),
    "ping": ("pysock.cli.ping", "ICMP/ICMPv6 echo (or TCP/UDP probes) to one or many hosts."),
    "trace": ("pysock.cli.trace", "The hops to a host, like traceroute (ICMP, UDP or TCP)."),
    "forward": ("pysock.cli.forward", "Relay each client of FROM to TO, many at once (socat ...,fork)."),
    "inspect": ("pysock.cli.inspect", "Every socket with its process, state and queues (ss, lsof -i)."),
    "perf": ("pysock.cli.perf", "Throughput over iperf3's protocol; a server runs many at once."),
    "capture": ("pysock.cli.capture", "Packets on the wire with the process behind them (tcpdump)."),
    "completion": ("pysock.cli.completion", "Print the bash, zsh or fish completion script."),
    "help": ("pysock.cli.help", "The manual page of pysock or COMMAND, wherever installed."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        from pysock.cli.conflicts import refuse_conflicts
        from pysock.cli.helpview import teach
        from pysock.cli.peerflags import install
        module = importlib.import_module(COMMANDS[name][0])
        return refuse_conflicts(install(teach(getattr(module, name))))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """An unknown command gets click's 'did you mean' from the registry."""
        if args and args[0] not in COMMANDS and not ctx.resilient_parsing \
                and not args[0].startswith("-"):
            raise click.exceptions.NoSuchCommand(args[0], possibilities=list(COMMANDS), ctx=ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context):
        """A closed stdout leaves here as StdoutClosed: click's own main() would turn an
        EPIPE into a silent exit 1 before run() could see it."""
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            if exc.see_help and exc.command is None:  # the command whose --help to point to
                exc.command = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
            raise
        except (OSError, PysockError) as exc:
            if is_epipe(exc) and stdout_closed():
                raise StdoutClosed() from None
            raise

    def shell_complete(self, ctx: click.Context, incomplete: str):
        """Command names with their summaries from the registry: a Tab after 'pysock'
        imports no command module."""
        from click.shell_completion import CompletionItem
        names = [CompletionItem(name, help=summary) for name, (_, summary) in COMMANDS.items()
                 if name.startswith(incomplete)]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from pysock.cli.helpview import format_group_options
        format_group_options(self, ctx, formatter)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="pysock",
                      message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--color", "color", type=click.Choice(["auto", "always", "never"]),
              default="auto", show_default=True,
              help="When to color output.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, color: str) -> None:
    """Sockets on Linux, one tool. stdout carries data, stderr diagnostics."""
    ctx.obj = Settings.detect(debug=debug, color=color)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    debug = os.environ.get("PYSOCK_DEBUG") == "1" or "--debug" in (argv or sys.argv[1:])
    unwind_on_signals()
    if "_PYSOCK_COMPLETE" in os.environ:  # a Tab: answer in pysock's own line format
        from pysock.cli.completion import register
        register()
    try:
        result = cli.main(args=argv, prog_name="pysock", standalone_mode=False)
        sys.stdout.flush()
        return int(result) if isinstance(result, int) else ExitStatus.OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return quiet(ExitStatus.INTERRUPTED)
    except StdoutClosed:
        return quiet(ExitStatus.OK)
    except BaseException as exc:  # the rest as the fast path maps them: pysock.status
        if isinstance(exc, click.ClickException) and debug:
            raise
        from pysock.status import exit_status
        return exit_status(_worded(exc), debug=debug, stdout_closed=stdout_closed)


def _worded(exc: BaseException) -> BaseException:
    """The error as the command line words it: click's own usage errors become the
    one UsageError; a core error about an option's value gets the option's flag in
    front (the core names facts, the command line names flags); a usage error about
    the command line's shape points to the command's --help."""
    from pysock.errors import OptionError
    if isinstance(exc, click.ClickException):
        return UsageError(_click_message(exc))
    if isinstance(exc, OptionError):
        gap = "" if exc.message.startswith(":") else " "
        return PysockError(f"{OPTION_FLAGS[exc.option]}{gap}{exc.message}", exc.status)
    if isinstance(exc, UsageError) and exc.see_help and exc.command:
        return UsageError(f"{exc.message} (see '{exc.command} --help')", exc.status)
    return exc


# OptionError.option (a parameter name) -> the flag the user typed it with
OPTION_FLAGS = {"sockopts": "--sockopt", "proxy_auth": "--proxy-auth", "send_fds": "--send-fd",
                "mode": "--mode"}


def _click_message(exc: click.ClickException) -> str:
    text = " ".join(exc.format_message().split())
    text = text[0].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        text += f" (see '{ctx.command_path} --help')"
    return text
