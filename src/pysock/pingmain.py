"""The body of `pysock ping`, without click: cli/ping.py calls it once click has
parsed the line, and pysock.launch calls it for a line of plain flags without
importing click at all (at -i 0.01 the start-up is a third of ping's CPU per
packet over a thousand probes: bench/scenarios/ping.py)."""

from __future__ import annotations

import ipaddress

from pysock.errors import ExitStatus, PysockError

USER_MIN_INTERVAL = 0.002  # iputils: below this only root may go


def run(hosts: list[str], spec, *, quiet: bool, family: int | None, timestamps: bool,
        numeric: bool, port: tuple[str, int] | None, json: bool, mode: str, color: bool) -> int:
    """Ping hosts with spec (a probes.ping.PingSpec); mode is the output mode
    ('plain', 'table' or 'json'). Returns the exit status."""
    from pysock.probes.ping import Session, make_targets

    targets = make_targets(list(hosts), family=family, numeric=numeric)
    if not targets:
        raise PysockError("no hosts to ping", ExitStatus.USAGE)
    session = Session(targets, spec, _prober(port))
    view = _view(targets, spec, port, mode, quiet=quiet, numeric=numeric,
                 timestamps=timestamps, color=color)
    header = _header(targets, spec, port, json)
    events = session.events()
    with view:
        try:
            first = next(events, None)  # opens the sockets: errors come before the header
            view.start(header)
            if first is not None:
                view.event(first)
            for event in events:
                view.event(event)
        except KeyboardInterrupt:
            events.close()
        view.finish()
    return _status(targets, spec)


def split_interface(value: str | None) -> tuple[str | None, str | None]:
    """-I: an address is a source to bind to, anything else an interface name."""
    if value is None:
        return None, None
    try:
        ipaddress.ip_address(value.split("%", 1)[0])
        return value, None
    except ValueError:
        return None, value


def _prober(port):
    if port is not None:
        from pysock.probes.portping import PortProber
        return PortProber(*port)
    from pysock.probes.ping import EchoProber
    return EchoProber(min_interval=USER_MIN_INTERVAL)


def _view(targets, spec, port, mode: str, *, quiet, numeric, timestamps, color):
    from pysock.render import ping as render
    kw = dict(numeric=numeric, quiet=quiet, flood=spec.flood, timestamps=timestamps,
              interval=spec.interval, port=port, color=color)
    if mode == "json":
        return render.JsonView(targets, **kw)
    if mode == "table" and len(targets) > 1:
        return render.LiveView(targets, **kw)
    return render.LinesView(targets, **kw)


def _header(targets, spec, port, json) -> str | None:
    """iputils' first line(s), for one host and plain output only."""
    if json or len(targets) > 1:
        return None
    from pysock.probes.ping import route_source
    from pysock.render import ping as render
    target = targets[0]
    source = None
    if port is None:
        source = route_source(target.name, target.sockaddr, spec.device)
    chosen = spec.source is not None or spec.device is not None  # -I was given
    text = render.header(target, spec.size, source=source if chosen else None,
                         device=spec.device, port=port)
    if spec.pattern and port is None:
        text = f"PATTERN: 0x{spec.pattern.hex()}\n" + text
    return text


def _status(targets, spec) -> int:
    for target in targets:
        got = target.stats.received
        if not got or (spec.deadline and spec.count and got < spec.count):
            return ExitStatus.FAILURE
    return ExitStatus.OK
