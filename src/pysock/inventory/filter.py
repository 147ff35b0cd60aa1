"""The Filter: every selection of `pysock inspect`, built once and applied per socket.

State selection follows ss: by default the connected states without the
minisockets (TIME_WAIT, SYN_RECV); -l listening and unconnected; -a everything;
--state names (TCP states, netstat or ss spelling) and ss's groups."""

from __future__ import annotations

from collections import namedtuple

from pysock.errors import UsageError
from pysock.inventory.model import (
    CLOSE,
    CLOSE_WAIT,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT1,
    FIN_WAIT2,
    LAST_ACK,
    LISTEN,
    SYN_RECV,
    SYN_SENT,
    TIME_WAIT,
    SocketRecord,
)

PROTOS = ("tcp", "udp", "raw", "unix")  # the default selection, as ss's
KINDS = PROTOS + ("netlink", "packet")  # everything pysock lists when asked
LOCAL_KINDS = ("unix", "netlink", "packet")  # no IP family, no ports


def _bits(*states: int) -> int:
    mask = 0
    for state in states:
        mask |= 1 << state
    return mask


ALL = _bits(ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE,
            CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING)
CONNECTED = ALL & ~_bits(LISTEN, CLOSE)
BUCKET = _bits(SYN_RECV, TIME_WAIT)
DEFAULT = CONNECTED & ~BUCKET  # what ss shows without -a or -l
LISTENING = _bits(LISTEN, CLOSE)

STATE_WORDS = {
    "established": _bits(ESTABLISHED), "estab": _bits(ESTABLISHED),
    "syn-sent": _bits(SYN_SENT), "syn-recv": _bits(SYN_RECV), "syn-rcvd": _bits(SYN_RECV),
    "syn-rcv": _bits(SYN_RECV),
    "fin-wait-1": _bits(FIN_WAIT1), "fin-wait1": _bits(FIN_WAIT1),
    "fin-wait-2": _bits(FIN_WAIT2), "fin-wait2": _bits(FIN_WAIT2),
    "time-wait": _bits(TIME_WAIT), "close-wait": _bits(CLOSE_WAIT),
    "last-ack": _bits(LAST_ACK), "closing": _bits(CLOSING),
    "listen": _bits(LISTEN), "listening": _bits(LISTEN),
    "close": _bits(CLOSE), "closed": _bits(CLOSE), "unconn": _bits(CLOSE),
    "unconnected": _bits(CLOSE),
    # ss's groups
    "all": ALL, "connected": CONNECTED, "synchronized": CONNECTED & ~_bits(SYN_SENT),
    "bucket": BUCKET, "big": ALL & ~BUCKET,
}


def parse_state(text: str) -> int:
    """A state or group name, any case, '-' or '_' -> a mask of kernel states."""
    word = text.strip().lower().replace("_", "-")
    mask = STATE_WORDS.get(word)
    if mask is None:
        raise UsageError(f"unknown socket state '{text}' (states: established, syn-sent, "
                         "syn-recv, fin-wait-1, fin-wait-2, time-wait, close-wait, last-ack, "
                         "closing, listen, unconn; groups: all, connected, synchronized, "
                         "bucket, big)")
    return mask


def parse_net(text: str):
    """An address or CIDR block -> an ipaddress network."""
    import ipaddress
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        raise UsageError(f"'{text}' is not an IP address or CIDR block") from None


class Selection(namedtuple("Selection", (
        "protos", "family", "listening", "all_states", "states", "ports", "sports", "dports",
        "addrs", "pids", "process_names", "uids", "paths", "expression", "internet_only"),
        defaults=((), None, False, False, (), (), (), (), (), (), (), (), (), (), False))):
    """What `inspect` selects, as typed: kinds (tcp, udp, raw, unix, netlink, packet),
    family (4, 6 or None), -l/-a, --state masks or words, port numbers, addresses or
    networks, pids, process-name substrings, uids, Unix path substrings, ss's
    expression words, and whether only internet sockets can do (--kill). Frozen; a
    namedtuple, since typing is not imported on the way to `inspect -tln`'s output."""

    __slots__ = ()


class Filter:
    """(A plain class: no dataclasses import on the way to `inspect -tln`'s output.)"""

    def __init__(self, *, protos: frozenset[str] = frozenset(PROTOS),
                 families: frozenset[int] = frozenset((4, 6)), states: int = DEFAULT,
                 ports: frozenset[int] | None = None, sports: frozenset[int] | None = None,
                 dports: frozenset[int] | None = None, nets: tuple = (),
                 pids: frozenset[int] | None = None, process_names: tuple[str, ...] = (),
                 uids: frozenset[int] | None = None, paths: tuple[str, ...] = (),
                 expr: object | None = None, bytecode: bytes | None = None):
        self.protos, self.families, self.states = protos, families, states
        self.ports = ports  # either side
        self.sports, self.dports = sports, dports
        self.nets = nets  # ip_network objects; either side
        self.pids = pids
        self.process_names = process_names  # substrings
        self.uids = uids
        self.paths = paths  # unix: substring of own or peer name
        self.expr = expr  # ss's expression (inventory.ssfilter), internet sockets only
        self.bytecode = bytecode  # the same expression for the kernel's inet_diag dump

    @classmethod
    def build(cls, chosen: Selection = Selection()) -> Filter:
        """The Filter for a Selection: ss's expression parsed, states as one mask."""
        expr = None
        if chosen.expression:
            from pysock.inventory import ssfilter
            expr = ssfilter.parse(chosen.expression, parse_state, ALL)
        kinds = set(chosen.protos) or set(PROTOS)
        if (chosen.family is not None or (expr and expr.tree) or chosen.internet_only) \
                and not chosen.protos:
            kinds.discard("unix")  # -4/-6 alone means internet sockets, as in ss
        local = sorted(kinds.intersection(LOCAL_KINDS))
        if expr and expr.tree and local:
            raise UsageError(f"ss expressions select internet sockets, not {local[0]} sockets",
                             advice="inspect_path_paren")
        mask = _state_mask(chosen.listening, chosen.all_states, chosen.states)
        if expr and expr.states is not None:  # ss: leading state words replace -l/-a
            mask = expr.states | (_state_mask(False, False, chosen.states) if chosen.states
                                  else 0)
        return cls(
            protos=frozenset(kinds),
            families=frozenset((chosen.family,)) if chosen.family else frozenset((4, 6)),
            states=mask,
            expr=expr.tree if expr else None,
            bytecode=expr.bytecode() if expr else None,
            ports=_set(chosen.ports), sports=_set(chosen.sports), dports=_set(chosen.dports),
            nets=tuple(parse_net(a) if isinstance(a, str) else a for a in chosen.addrs),
            pids=_set(chosen.pids), process_names=tuple(p.lower() for p in chosen.process_names),
            uids=_set(chosen.uids), paths=tuple(chosen.paths))

    @property
    def needs_owners(self) -> bool:
        """Whether selecting needs the process map (otherwise it is only for display)."""
        return bool(self.pids is not None or self.process_names or self.uids is not None)

    def wants(self, proto: str, family: int) -> bool:
        return proto in self.protos and (proto in LOCAL_KINDS or family in self.families)

    def match_socket(self, r: SocketRecord) -> bool:
        """Everything the kernel tables tell: state, ports, addresses, path."""
        if not (self.states >> r.state) & 1:
            return False
        if r.proto in LOCAL_KINDS:
            if self.ports or self.sports or self.dports or self.nets:
                return False
            return not self.paths or (r.proto == "unix" and self._path_match(r))
        if self.paths:
            return False
        if self.expr is not None and not self.expr.match(r):
            return False
        if self.sports is not None and r.local_port not in self.sports:
            return False
        if self.dports is not None and r.peer_port not in self.dports:
            return False
        if self.ports is not None and r.local_port not in self.ports \
                and r.peer_port not in self.ports:
            return False
        return not self.nets or self._net_match(r)

    def match_owner(self, r: SocketRecord) -> bool:
        """Selections on the owner: pid, process name, user (after the process map)."""
        if self.pids is not None and not self.pids.intersection(r.pids):
            return False
        if self.uids is not None and r.uid not in self.uids:
            return False
        if self.process_names:
            name = (r.process or "").lower()
            return any(p in name for p in self.process_names)
        return True

    def _path_match(self, r: SocketRecord) -> bool:
        return any(p in (r.path or "") or p in (r.peer_path or "") for p in self.paths)

    def _net_match(self, r: SocketRecord) -> bool:
        import ipaddress
        for text in (r.local_addr, r.peer_addr):
            if text is None:
                continue
            addr = ipaddress.ip_address(text)
            if addr.version == 6 and addr.ipv4_mapped is not None:
                mapped = addr.ipv4_mapped
                if any(mapped in n for n in self.nets if n.version == 4):
                    return True
            if any(addr in n for n in self.nets if n.version == addr.version):
                return True
        return False


def _set(values) -> frozenset | None:
    values = list(values)
    return frozenset(values) if values else None


def _state_mask(listening: bool, all_states: bool, states) -> int:
    if states:
        mask = 0
        for s in states:
            mask |= parse_state(s) if isinstance(s, str) else s
        return mask | (LISTENING if listening else 0)
    if all_states:
        return ALL
    return LISTENING if listening else DEFAULT
