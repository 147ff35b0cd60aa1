"""pysock inspect: every socket on the machine, with its process (ss, netstat, lsof -i)."""

from __future__ import annotations

import sys

import click

from pysock.cli import options
from pysock.cli.context import settings
from pysock.errors import ExitStatus, PysockError, UsageError


def _state(text: str):
    from pysock.inventory.filter import parse_state
    return parse_state(text)


def _net(text: str):
    from pysock.inventory.filter import parse_net
    return parse_net(text)


def _uid(text: str) -> int:
    from pysock.inventory.sources import uid_of
    return uid_of(text)


def _query(text: str) -> tuple[str, ...]:
    """ss -A: table names -> pysock's kinds."""
    kinds: list[str] = []
    for word in text.split(","):
        word = word.strip().lower()
        if word not in SS_TABLES:
            raise UsageError(f"pysock has no '{word}' socket table; use all, inet, tcp, udp, "
                             "raw, unix, packet or netlink")
        kinds += SS_TABLES[word]
    return tuple(kinds)


SS_TABLES = {"all": ("tcp", "udp", "raw", "unix", "netlink", "packet"),
             "inet": ("tcp", "udp", "raw"), "tcp": ("tcp",), "udp": ("udp",), "raw": ("raw",),
             "unix": ("unix",), "unix_stream": ("unix",), "unix_dgram": ("unix",),
             "unix_seqpacket": ("unix",), "packet": ("packet",), "packet_raw": ("packet",),
             "packet_dgram": ("packet",), "netlink": ("netlink",)}
# ss -f NAME -> (kinds, IP family)
SS_FAMILIES = {"inet": (("tcp", "udp", "raw"), 4), "inet6": (("tcp", "udp", "raw"), 6),
               "unix": (("unix",), None), "link": (("packet",), None),
               "netlink": (("netlink",), None)}
QUERY = options.Parsed("kinds", _query)
STATE = options.TcpStateType(_state)
ADDR = options.Parsed("addr", _net)
USER = options.Parsed("user", _uid)


def _select(*, protos, queries, ss_family, family, listening, all_states, states, ports,
            sports, dports, addrs, paths, pids, process_names, uids):
    """The selection options -> inventory.filter.Selection, checked here once."""
    from pysock.inventory.filter import Selection
    kinds, family = _kinds(protos, queries, ss_family, family)
    return Selection(protos=kinds, family=family, listening=listening, all_states=all_states,
                     states=states, ports=[p for group in ports for p in group],
                     sports=[p for group in sports for p in group],
                     dports=[p for group in dports for p in group], addrs=addrs, pids=pids,
                     process_names=process_names, uids=uids, paths=paths)


# -t ... --user: the command receives them as selection=Selection
selection_options = options.option_group([
    click.option("-t", "--tcp", "protos", flag_value="tcp", multiple=True, help="TCP sockets."),
    click.option("-u", "--udp", "protos", flag_value="udp", multiple=True, help="UDP sockets."),
    click.option("-w", "--raw", "protos", flag_value="raw", multiple=True, help="Raw IP sockets."),
    click.option("-x", "--unix", "protos", flag_value="unix", multiple=True, help="Unix sockets."),
    click.option("--netlink", "protos", flag_value="netlink", multiple=True,
                 help="Netlink sockets (ss -A netlink), with their owners."),
    click.option("-0", "--packet", "protos", flag_value="packet", multiple=True,
                 help="Packet sockets (ss -0): raw frames on an interface, with their owners."),
    click.option("-A", "--query", "queries", type=QUERY, multiple=True, metavar="KINDS",
                 help="ss's socket tables, comma-separated: all, inet, tcp, udp, raw, unix, "
                      "packet, netlink."),
    click.option("-f", "--family", "ss_family", type=click.Choice(list(SS_FAMILIES)),
                 default=None, help="ss's families: inet (-4), inet6 (-6), unix (-x), "
                                    "link (-0), netlink."),
    options.family,
    click.option("-l", "--listening", is_flag=True,
                 help="Listening and unconnected (bound) sockets only."),
    click.option("-a", "--all", "all_states", is_flag=True,
                 help="Sockets in every state (default: connected ones, as ss); with "
                      "--counters, every counter."),
    click.option("--state", "states", type=STATE, multiple=True, metavar="STATE",
                 help="Only this state (repeatable): established, syn-sent, syn-recv, fin-wait-1, "
                      "fin-wait-2, time-wait, close-wait, last-ack, closing, listen, unconn; or a "
                      "group: all, connected, synchronized, bucket, big."),
    click.option("--port", "ports", type=options.PortListType(), multiple=True, metavar="PORTS",
                 help="Local or peer port in this list (22,80,8000-8100; repeatable)."),
    click.option("--sport", "sports", type=options.PortListType(), multiple=True, metavar="PORTS",
                 help="Local port in this list."),
    click.option("--dport", "dports", type=options.PortListType(), multiple=True, metavar="PORTS",
                 help="Peer port in this list."),
    click.option("--addr", "addrs", type=ADDR, multiple=True, metavar="ADDR|CIDR",
                 help="Local or peer address in this block (repeatable)."),
    click.option("--path", "paths", multiple=True, metavar="TEXT",
                 help="Unix sockets whose own or peer name contains TEXT (repeatable)."),
    click.option("--pid", "pids", type=click.IntRange(min=1), multiple=True, metavar="PID",
                 help="Sockets held by this process (repeatable)."),
    click.option("--process", "process_names", multiple=True, metavar="NAME",
                 help="Sockets held by a process whose name contains NAME (repeatable)."),
    click.option("--user", "uids", type=USER, multiple=True, metavar="NAME",
                 help="Sockets of this user, by name or uid (repeatable)."),
], _select, "selection")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@selection_options
@click.option("-r", "--resolve", is_flag=True, help="Show host names (reverse DNS) for addresses.")
@click.option("-n", "--numeric", is_flag=True, help="Port numbers, not service names.")
@click.option("-e", "--extended", is_flag=True,
              help="TCP internals (rtt, cwnd, retransmits, bytes, delivery rate) and memory.")
@click.option("--summary", "view", flag_value="summary", cls=options.Switch,
              help="Counts by protocol and state, kernel counters, top processes (ss -s).")
@click.option("--by-process", "view", flag_value="by_process", cls=options.Switch,
              help="Per process: sockets by kind and state, descriptors against RLIMIT_NOFILE, "
                   "command line, memory, CPU %, threads, start time.")
@click.option("--limits", "view", flag_value="limits", cls=options.Switch,
              help="Kernel settings that bound sockets, with current use beside each.")
@click.option("--counters", "view", flag_value="counters", cls=options.Switch,
              help="The kernel's TCP/IP counters (nstat, netstat -s): the ones that explain "
                   "failing connections named and flagged; -a every counter.")
@click.option("--interfaces", "view", flag_value="interfaces", cls=options.Switch,
              help="Every network interface: addresses, state, MTU, speed, duplex, bytes, "
                   "packets, errors and drops each way (ip -s link, netstat -i).")
@click.option("--interval", type=options.SECONDS, default=None, metavar="SECS",
              help="With --counters or --interfaces: the change every SECS, per second "
                   "(as nstat).")
@click.option("--watch", type=options.SECONDS, is_flag=False, flag_value=2.0, default=None,
              metavar="[SECS]", help="Refresh every SECS (default 2): new sockets highlighted, "
                                     "gone ones marked. q or Ctrl-C quits.")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --watch: stop after this many looks.")
@click.option("-H", "--no-header", "no_header", is_flag=True,
              help="No header line (tables and plain text), as ss -H.")
@click.option("-K", "--kill", is_flag=True,
              help="Close the selected TCP, UDP and raw sockets (SOCK_DESTROY, as ss -K): "
                   "TCP peers get a reset. Asks first on a terminal.")
@click.option("--yes", is_flag=True, help="With --kill: do not ask.")
@click.option("--source", type=click.Choice(["auto", "netlink", "proc"]), default=None,
              help="Where sockets are read: netlink sock_diag, /proc/net, or auto (netlink, "
                   "/proc/net where netlink cannot); env PYSOCK_INSPECT_SOURCE.")
@options.json_output
@click.argument("expression", nargs=-1, metavar="[SS-FILTER...]")
def inspect(expression, selection, resolve, numeric, extended, view, interval, watch, count,
            no_header, kill, yes, source, json) -> int:
    """Every socket on the machine with its process, state, queues and TCP internals.

    By default the connected TCP, UDP, raw and Unix sockets, as ss shows them;
    -a adds listeners and TIME_WAIT, -l shows only listeners. For a listener,
    Recv-Q/Send-Q are its accept queue and backlog; a Recv-Q ending in '!' is a
    queue at (or near) its backlog. Different selections must all match;
    repeating one adds alternatives. After the options, ss's filter language:
    state established '( dport = :443 or sport >= :1024 )' and not dst 10.0.0.0/8."""
    from pysock.inventory.filter import Filter
    from pysock.inventory.sources import choose_source

    if view in PERIODIC:
        _only_with_counters(click.get_current_context(), view)
        _no_expression(click.get_current_context(), view)
        return _periodic(view, selection.all_states, interval, watch, count, json,
                         not no_header)
    _refuse_combinations(view, interval, watch, count, kill, yes)
    local = [k for k in ("Unix", "netlink", "packet") if k.lower() in selection.protos]
    if kill and local:
        raise UsageError(f"the kernel cannot destroy {local[0]} sockets; --kill takes TCP, "
                         "UDP and raw sockets")
    flt = Filter.build(selection._replace(
        # the aggregate views count every state unless told otherwise
        all_states=selection.all_states or view is not None, expression=expression,
        internet_only=kill))
    if selection.pids:
        from pysock.inventory.processes import missing
        gone = missing(selection.pids)
        if gone:
            raise PysockError(f"no such process: {', '.join(map(str, gone))}")
    run = _Run(flt, choose_source(source), extended, settings().output_mode(json),
               settings().color, _names(numeric, resolve), not no_header)
    if kill:
        return run.kill(yes)
    if watch is not None:
        return run.watch(watch, count)
    if view is not None:
        return run.view(view)
    return run.sockets()


def _refuse_combinations(view, interval, watch, count, kill, yes) -> None:
    """The socket list's options that go only with one another."""
    if interval is not None:
        raise UsageError("--interval goes with --counters or --interfaces (the socket list "
                         "refreshes with --watch)")
    if count is not None and watch is None:
        raise UsageError("--count goes with --watch")
    if yes and not kill:
        raise UsageError("--yes goes with --kill")
    if kill and (watch is not None or view is not None):
        raise UsageError(f"--kill acts on a socket list; it does not go with "
                         f"--{'watch' if watch is not None else view.replace('_', '-')}")
    if watch is not None and view is not None:
        raise UsageError(f"--watch shows the socket list; it does not go with "
                         f"--{view.replace('_', '-')}")


# what the periodic views (--counters) take besides their own options
PERIODIC_OPTIONS = {"view", "all_states", "interval", "watch", "count", "json", "no_header"}


def _no_expression(ctx: click.Context, view: str) -> None:
    if ctx.params.get("expression"):
        raise UsageError(f"a filter expression selects sockets; it does not go with --{view}")


def _only_with_counters(ctx: click.Context, view: str) -> None:
    from click.core import ParameterSource
    for param in ctx.command.params:
        if param.name in PERIODIC_OPTIONS or not isinstance(param, click.Option):
            continue
        if ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE:
            raise UsageError(f"{param.opts[-1]} selects sockets; it does not go with --{view}")


class _Counters:
    """--counters: the kernel's counters; later looks show the change."""

    def __init__(self, every: bool):
        from pysock.inventory import counters
        self.core, self.every = counters, every

    def snapshot(self):
        return self.core.Snapshot.now()

    def rows(self, now, before, live: bool) -> list[dict]:
        return self.core.records(now, before, every=self.every,
                                 changed_only=before is not None and not live)

    def columns(self, periodic: bool):
        from pysock.render.counters import counter_columns
        return counter_columns(periodic)

    def title(self, turn: int, period: float | None) -> str:
        if turn == 0:
            return "Kernel counters since boot (or since the network namespace was made)"
        return f"Kernel counters: change over the last {period:g}s; q quits"


class _Interfaces:
    """--interfaces: every interface; later looks add rates."""

    def __init__(self, every: bool):
        from pysock.inventory import interfaces
        self.core = interfaces

    def snapshot(self):
        return self.core.Snapshot.now()

    def rows(self, now, before, live: bool) -> list[dict]:
        return self.core.with_rates(now, before)

    def columns(self, periodic: bool):
        from pysock.render.counters import interface_columns
        return interface_columns(periodic)

    def title(self, turn: int, period: float | None) -> str:
        if turn == 0:
            return "Interfaces: counters since they came up"
        return f"Interfaces: rates over the last {period:g}s; q quits"


PERIODIC = {"counters": _Counters, "interfaces": _Interfaces}


def _periodic(view: str, every: bool, interval: float | None, watch: float | None,
              count: int | None, json: bool, header: bool) -> int:
    """--counters, --interfaces: one look, or with --interval/--watch one every SECS."""
    if interval is not None and watch is not None:
        raise UsageError("--interval and --watch both set the period; give one")
    if every and view == "interfaces":
        raise UsageError("-a/--all goes with --counters or the socket list, not --interfaces "
                         "(which shows every interface)")
    source = PERIODIC[view](every)
    mode, color = settings().output_mode(json), settings().color
    period = interval if interval is not None else watch
    if period is None:
        if count is not None:
            raise UsageError("--count goes with --interval or --watch")
        from pysock.render.inspect import write_rows
        write_rows(source.rows(source.snapshot(), None, False), source.columns(False), mode,
                   color=color, title=source.title(0, None), header=header)
        return ExitStatus.OK
    from pysock.render.watch import Keys, LiveRows, RowsStream
    live = watch is not None and mode == "table"
    columns = source.columns(True)
    display = LiveRows(columns, color=color, header=header) if live \
        else RowsStream(columns, mode, color=color, header=header)
    before, turn = None, 0
    with Keys() as keys, display:
        while True:
            now = source.snapshot()
            display.show(source.rows(now, before, live), source.title(turn, period))
            before, turn = now, turn + 1
            if count is not None and turn >= count:
                return ExitStatus.OK
            if keys.wait(period):
                return ExitStatus.OK


def _kinds(protos, queries, ss_family, family):
    """-t -u -w -x --netlink -0, ss's -A lists and -f family together -> (kinds, family)."""
    kinds = list(protos) + [k for q in queries for k in q]
    if ss_family is not None:
        more, ip = SS_FAMILIES[ss_family]
        kinds += more
        if ip is not None:
            if family is not None and family != ip:
                raise UsageError(f"-f {ss_family} and -{family} ask for different families")
            family = ip
    return tuple(dict.fromkeys(kinds)), family


def _names(numeric: bool, resolve: bool):
    from pysock.render.inspect import Names
    return Names(services=not numeric, resolve=resolve)


class _Run:
    def __init__(self, flt, source: str, extended: bool, mode: str, color: bool, names,
                 header: bool):
        self.flt, self.source, self.extended, self.header = flt, source, extended, header
        self.mode, self.color, self.names = mode, color, names
        self.said: set[str] = set()

    def collect(self, *, all_processes: bool = False, while_waiting=None):
        from pysock.inventory.sources import collect
        inventory = collect(self.flt, source=self.source, extended=self.extended,
                            all_processes=all_processes, while_waiting=while_waiting)
        for note in inventory.notes:
            if note not in self.said:  # once, not on every --watch refresh
                self.said.add(note)
                _note(note)
        return inventory

    def sockets(self) -> int:
        from pysock.render.inspect import FastPlain, write_sockets
        if self.mode == "plain":  # lines made while the owner pass runs, as pysock.launch
            plain = FastPlain(self.names, self.extended)
            plain.write(self.collect(while_waiting=plain.prepare).records, sys.stdout,
                        self.header)
            return 0
        inventory = self.collect()
        write_sockets(inventory.records, self.mode, color=self.color, extended=self.extended,
                      names=self.names, header=self.header)
        return ExitStatus.OK

    def kill(self, yes: bool) -> int:
        from pysock.inventory.kill import destroy
        from pysock.render.inspect import write_kills, write_sockets
        records = self.collect().records
        if not records:
            _note("no sockets match; nothing killed")
            return ExitStatus.OK
        if not yes and sys.stdin.isatty():
            write_sockets(records, "table", color=self.color, extended=False, names=self.names,
                          stream=sys.stderr, title="To kill")
            if not click.confirm(f"Kill these {len(records)} sockets?", err=True):
                _note("nothing killed")
                return ExitStatus.FAILURE
        outcomes = list(destroy(records))
        write_kills(outcomes, self.mode, color=self.color, names=self.names, header=self.header)
        return ExitStatus.OK if all(o.destroyed for o in outcomes) else ExitStatus.FAILURE

    def view(self, view: str) -> int:
        from pysock.inventory import views
        from pysock.render import inspect as draw
        inventory = self.collect(all_processes=view == "by_process")
        if view == "summary":
            draw.write_summary(views.summary(inventory.records, inventory.processes), self.mode,
                               color=self.color, header=self.header)
        elif view == "by_process":
            from pysock.inventory.sources import UserNames
            rows = views.by_process(inventory.records, inventory.processes, UserNames().name)
            draw.write_rows(rows, draw.BY_PROCESS_COLUMNS, self.mode, color=self.color,
                            header=self.header)
        else:
            draw.write_rows(views.limits(inventory.records), draw.LIMIT_COLUMNS, self.mode,
                            color=self.color, header=self.header)
        return ExitStatus.OK

    def watch(self, interval: float, count: int | None) -> int:
        from pysock.render.watch import ChangeStream, Keys, LiveTable
        if self.mode == "table":
            display = LiveTable(color=self.color, extended=self.extended, names=self.names,
                                interval=interval, header=self.header)
        else:
            display = ChangeStream(self.mode, extended=self.extended, names=self.names,
                                   header=self.header)
        before: dict = {}
        turn = 0
        with Keys() as keys, display:
            while True:
                records = self.collect().records
                now = {r.key: r for r in records}
                new = {k for k in now if k not in before} if turn else set()
                gone = [r for k, r in before.items() if k not in now]
                changed = {k for k, r in now.items() if k in before and r.look != before[k].look}
                display.show(records, new, gone, turn, changed)
                before, turn = now, turn + 1
                if count is not None and turn >= count:
                    return ExitStatus.OK
                if keys.wait(interval):
                    return ExitStatus.OK


def _note(text: str) -> None:
    from pysock.render.diagnostics import say
    say(text)
