"""ss's filter expressions, parsed once into a tree that matches SocketRecords and
compiles into the inet_diag bytecode the kernel runs during the dump.

The grammar is ss's (misc/ssfilter.y): leading `state X` / `exclude X` words, then
conditions `src|dst [=] HOST`, `sport|dport OP PORT` (OP: = == eq != ne neq < lt >
gt <= le leq >= ge geq), joined by and (& &&), or (| ||), juxtaposition (and),
not (!) and parentheses. As in ss, and/or bind left to right with equal weight:
`a or b and c` is `(a or b) and c`. HOST is ADDR[/BITS][:PORT], [V6ADDR[/BITS]][:PORT],
*:PORT or :PORT; PORT a number or a service name, `*` for any."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

from pysock.errors import UsageError

STATE_WORDS = ("state", "exclude", "excl")
_AND = ("and", "&", "&&")
_OR = ("or", "|", "||")
_NOT = ("not", "!")
_EQ = ("=", "==", "eq")
_OPS = {"!=": "ne", "ne": "ne", "neq": "ne", ">=": "ge", "ge": "ge", "geq": "ge",
        "<=": "le", "le": "le", "leq": "le", ">": "gt", "gt": "gt", "<": "lt", "lt": "lt",
        **{w: "eq" for w in _EQ}}
# word -> (what is missing, the advice key that words the way out in flags)
_UNSUPPORTED = {
    "dev": ("pysock has no ss 'dev' condition", "ss_dev"),
    "fwmark": ("pysock has no ss 'fwmark' condition (firewall marks are not shown)", None),
    "cgroup": ("pysock has no ss 'cgroup' condition", "ss_cgroup"),
    "autobound": ("pysock has no ss 'autobound' condition; select ports with sport ranges",
                  None),
}

# inet_diag bytecode (linux/inet_diag.h)
INET_DIAG_REQ_BYTECODE = 1
BC_JMP, BC_S_GE, BC_S_LE, BC_D_GE, BC_D_LE, BC_S_COND, BC_D_COND = 1, 2, 3, 4, 5, 7, 8
_OP = struct.Struct("=BBH")  # code, yes, no (byte offsets from this op)
_HOSTCOND = struct.Struct("=BBxxi")  # family, prefix_len, port (-1: any)


# ---- the tree -----------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """src/dst: an end's address in one of these blocks (none: any) and port (None: any)."""

    local: bool
    nets: tuple = ()
    port: int | None = None

    def match(self, r) -> bool:
        if self.port is not None and (r.local_port if self.local else r.peer_port) != self.port:
            return False
        return not self.nets or _in_nets(r.local_addr if self.local else r.peer_addr, self.nets)

    def bytecode(self) -> bytes:
        code = BC_S_COND if self.local else BC_D_COND
        port = -1 if self.port is None else self.port
        if not self.nets:
            return _cond(code, 0, 0, port, b"\0" * 4)
        conds = [_cond(code, socket.AF_INET if n.version == 4 else socket.AF_INET6,
                       n.prefixlen, port, n.network_address.packed) for n in self.nets]
        out = conds[-1]
        for cond in reversed(conds[:-1]):
            out = _or(cond, out)
        return out


@dataclass(frozen=True)
class PortRange:
    """sport/dport >= or <= a port (> and < are the negations, as in ss)."""

    local: bool
    at_least: bool
    port: int

    def match(self, r) -> bool:
        value = r.local_port if self.local else r.peer_port
        if value is None:
            return False
        return value >= self.port if self.at_least else value <= self.port

    def bytecode(self) -> bytes:
        code = (BC_S_GE if self.at_least else BC_S_LE) if self.local \
            else (BC_D_GE if self.at_least else BC_D_LE)
        return _OP.pack(code, 8, 12) + _OP.pack(0, 0, self.port)


@dataclass(frozen=True)
class Not:
    inner: object

    def match(self, r) -> bool:
        return not self.inner.match(r)

    def bytecode(self) -> bytes:
        # inner accepts: reach the jump, which leaves past the end (reject);
        # inner rejects: land at the end (accept)
        return self.inner.bytecode() + _OP.pack(BC_JMP, 4, 8)


@dataclass(frozen=True)
class And:
    first: object
    then: object

    def match(self, r) -> bool:
        return self.first.match(r) and self.then.match(r)

    def bytecode(self) -> bytes:
        first, then = self.first.bytecode(), self.then.bytecode()
        return _relocate_rejects(first, len(then)) + then


@dataclass(frozen=True)
class Or:
    first: object
    other: object

    def match(self, r) -> bool:
        return self.first.match(r) or self.other.match(r)

    def bytecode(self) -> bytes:
        return _or(self.first.bytecode(), self.other.bytecode())


def _cond(code: int, family: int, prefix: int, port: int, addr: bytes) -> bytes:
    size = _OP.size + _HOSTCOND.size + len(addr)
    return _OP.pack(code, size, size + 4) + _HOSTCOND.pack(family, prefix, port) + addr


def _or(first: bytes, other: bytes) -> bytes:
    # first rejects: it jumps to its end + 4, where `other` starts; first accepts:
    # the jump skips `other`
    return first + _OP.pack(BC_JMP, 4, len(other) + 4) + other


def _relocate_rejects(code: bytes, by: int) -> bytes:
    """Make the ops of code that reject (jump to its end + 4) jump `by` bytes further,
    past what follows: ss's ssfilter_patch."""
    out = bytearray(code)
    at, left = 0, len(code)
    while left > 0:
        kind, yes, no = _OP.unpack_from(out, at)
        if no == left + 4:
            _OP.pack_into(out, at, kind, yes, no + by)
        at, left = at + yes, left - yes
    return bytes(out)


def _in_nets(text: str | None, nets) -> bool:
    if text is None:
        return False
    addr = ipaddress.ip_address(text)
    mapped = addr.ipv4_mapped if addr.version == 6 else None
    for net in nets:
        if net.version == addr.version and addr in net:
            return True
        if mapped is not None and net.version == 4 and mapped in net:
            return True
    return False


# ---- parsing ------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    states: int | None  # from leading state/exclude words; None: not given
    tree: object | None  # Host, PortRange, Not, And, Or; None: no conditions

    def bytecode(self) -> bytes | None:
        return None if self.tree is None else self.tree.bytecode()


def tokens(words) -> list[str]:
    out = []
    for word in words:
        for part in word.replace("(", " ( ").replace(")", " ) ").split():
            out.append(part)
    return out


def parse(words, parse_state, all_states: int) -> Expression:
    """ss's state words and expression -> Expression. parse_state maps a state word to
    a mask; all_states is the mask `exclude` starts from."""
    toks = tokens(words)
    states = None
    while toks and toks[0] in STATE_WORDS:
        word = toks.pop(0)
        if not toks:
            raise UsageError(f"'{word}' needs a state name (as in ss: state established)")
        mask = parse_state(toks.pop(0))
        if word == "state":
            states = (states or 0) | mask
        else:
            states = (all_states if states is None else states) & ~mask
    if not toks:
        return Expression(states, None)
    parser = _Parser(toks)
    tree = parser.expression()
    if parser.more():
        raise UsageError(f"unexpected '{parser.peek()}' in the filter expression")
    return Expression(states, tree)


class _Parser:
    def __init__(self, toks: list[str]):
        self.toks, self.at = toks, 0

    def more(self) -> bool:
        return self.at < len(self.toks)

    def peek(self) -> str | None:
        return self.toks[self.at] if self.more() else None

    def take(self) -> str:
        if not self.more():
            raise UsageError("the filter expression ends too soon")
        self.at += 1
        return self.toks[self.at - 1]

    def expression(self):
        tree = self.term()
        while self.more() and self.peek() != ")":
            word = self.peek()
            if word in _OR:
                self.take()
                tree = Or(tree, self.term())
            else:
                if word in _AND:
                    self.take()
                tree = And(tree, self.term())
        return tree

    def term(self):
        word = self.take()
        if word == "(":
            tree = self.expression()
            if not self.more() or self.take() != ")":
                raise UsageError("a '(' in the filter expression is never closed")
            return tree
        if word in _NOT:
            return Not(self.term())
        if word in ("src", "dst"):
            if self.peek() in _EQ:
                self.take()
            return host_condition(self.take(), local=word == "src")
        if word in ("sport", "dport"):
            return self.port_condition(word == "sport")
        if word in STATE_WORDS:
            raise UsageError(f"'{word}' goes before the other conditions, as in ss "
                             "(ss ... state established '( dport = :443 )')")
        if word in _UNSUPPORTED:
            fact, advice = _UNSUPPORTED[word]
            raise UsageError(fact, advice=advice)
        raise UsageError(f"'{word}' is not a filter condition (src, dst, sport, dport, "
                         "state; and, or, not, parentheses)")

    def port_condition(self, local: bool):
        word = self.peek()
        op = _OPS.get(word, "eq")
        if word in _OPS:
            self.take()
        port = parse_port(self.take())
        if port is None:  # 'any port' matches everything but an unset one
            return Host(local) if op == "eq" else Not(Host(local))
        if op == "eq":
            return Host(local, port=port)
        if op == "ne":
            return Not(Host(local, port=port))
        if op in ("ge", "le"):
            return PortRange(local, op == "ge", port)
        # > is not <=, < is not >=, as ss compiles them
        return Not(PortRange(local, op == "lt", port))


def parse_port(text: str) -> int | None:
    """:443, 443, :https, https; * or :* is any port (None)."""
    word = text[1:] if text.startswith(":") else text
    if word in ("", "*"):
        return None
    if word.isdigit():
        port = int(word)
        if port > 65535:
            raise UsageError(f"port {port} is out of range (0-65535)")
        return port
    found = set()
    for proto in ("tcp", "udp"):
        try:
            found.add(socket.getservbyname(word, proto))
        except OSError:
            continue
    if len(found) == 1:
        return found.pop()
    if found:
        raise UsageError(f"service '{word}' has different TCP and UDP ports; give the number")
    raise UsageError(f"'{text}' is not a port number or a known service name")


def host_condition(text: str, local: bool) -> Host:
    """ADDR[/BITS][:PORT], [V6[/BITS]][:PORT], *:PORT, :PORT, or a bare IPv6 address."""
    for scheme in ("unix:", "link:", "netlink:", "vsock:"):
        if text.startswith(scheme):
            raise UsageError(f"'{text}': pysock's expressions select internet sockets",
                             advice="inspect_path")
    if text.startswith("inet:") or text.startswith("inet6:"):
        text = text.partition(":")[2]
    addr, port = _split_host(text)
    nets = () if addr in ("", "*") else _networks(addr)
    return Host(local, nets, parse_port(port) if port else None)


def _split_host(text: str) -> tuple[str, str]:
    if text.startswith("["):
        addr, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise UsageError(f"'{text}' has a '[' without its ']'")
        return addr, rest
    if text.startswith("*"):
        return "*", text[1:]
    try:  # an IPv6 address or block without brackets has no port
        ipaddress.ip_network(text, strict=False)
        return text, ""
    except ValueError:
        pass
    head, colon, port = text.rpartition(":")
    if colon and "/" not in port:
        return head, colon + port
    return text, ""


def _networks(addr: str) -> tuple:
    try:
        return (ipaddress.ip_network(addr, strict=False),)
    except ValueError:
        pass
    if "/" in addr:
        raise UsageError(f"'{addr}' is not an address block")
    try:  # a host name, as ss takes one: every address it has
        infos = socket.getaddrinfo(addr, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UsageError(f"'{addr}' is not an address, block or known host name") from None
    return tuple(dict.fromkeys(ipaddress.ip_network(info[4][0]) for info in infos))
