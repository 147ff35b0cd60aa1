"""One socket-option spec for every command: `--sockopt nodelay`,
`keepalive=IDLE:INTVL:CNT`, `rcvbuf=256K`, `ttl=5`, ..."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass

from pysock.errors import ExitStatus, OptionError, PysockError, UsageError

_SIZE_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None


def _size(text: str) -> int:
    suffix = text[-1:].lower()
    if suffix in _SIZE_SUFFIX:
        return _int(text[:-1]) * _SIZE_SUFFIX[suffix]
    return _int(text)


INT_MAX = (1 << 31) - 1  # the kernel reads most options as a C int
UINT_MAX = (1 << 32) - 1


def _ranged(parse: Callable[[str], int], low: int, high: int) -> Callable[[str], int]:
    """parse, then refuse what the kernel's field cannot hold, naming the range."""
    def checked(text: str) -> int:
        value = parse(text)
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range ({low}-{high})")
        return value
    return checked


_byte = _ranged(_int, 0, 255)
_count = _ranged(_int, 0, INT_MAX)  # mark, priority, user_timeout, linger
_bytes = _ranged(_size, 0, INT_MAX)  # rcvbuf, sndbuf, notsent_lowat
_mss = _ranged(_int, 88, 32767)  # TCP_MIN_MSS .. MAX_TCP_WINDOW
_mark = _ranged(_int, 0, UINT_MAX)
_keep_time = _ranged(_int, 1, 32767)  # MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL
_keep_count = _ranged(_int, 1, 127)  # MAX_TCP_KEEPCNT


def _setter(level: int, name: int, parse: Callable[[str], object] | None, default=1):
    def apply(sock: socket.socket, value: str | None) -> None:
        arg = default if value is None else parse(value)
        sock.setsockopt(level, name, arg)
    return apply


def _keepalive_values(value: str) -> tuple[int, int, int]:
    parts = value.split(":")
    if len(parts) != 3:
        raise ValueError("expected keepalive=IDLE:INTVL:CNT (seconds, seconds, count)")
    return _keep_time(parts[0]), _keep_time(parts[1]), _keep_count(parts[2])


def _nonempty(text: str) -> str:
    if not text:
        raise ValueError("empty value")
    return text


def _keepalive(sock: socket.socket, value: str | None) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if value is None:
        return
    idle, intvl, cnt = _keepalive_values(value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)


def set_ttl(sock: socket.socket, ttl: int) -> None:
    """The TTL (IPv4) or unicast hop limit (IPv6) of the packets sock sends."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def bind_device(sock: socket.socket, device: str) -> None:
    """SO_BINDTODEVICE; an unknown or unusable interface is a usage error."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode() + b"\0")
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise UsageError(f"no such interface: {device}") from None
        raise UsageError(f"cannot bind to interface {device}: {exc.strerror}") from None


def _ttl(sock: socket.socket, value: str | None) -> None:
    set_ttl(sock, _byte(value or ""))


def _per_family(sock: socket.socket, v4: int, v6: int, value: int) -> None:
    """An IP-level option that IPv6 spells with its own constant."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, v6, value)
    else:
        sock.setsockopt(socket.IPPROTO_IP, v4, value)


def _tos(sock: socket.socket, value: str | None) -> None:
    _per_family(sock, socket.IP_TOS, socket.IPV6_TCLASS, _byte(value or ""))


def _multicast_ttl(sock: socket.socket, value: str | None) -> None:
    _per_family(sock, socket.IP_MULTICAST_TTL, socket.IPV6_MULTICAST_HOPS, _byte(value or ""))


def _bool(text: str) -> int:
    if text not in ("0", "1"):
        raise ValueError(f"'{text}' is not 0 or 1")
    return int(text)


def _multicast_loop(sock: socket.socket, value: str | None) -> None:
    on = 1 if value is None else _bool(value)
    _per_family(sock, socket.IP_MULTICAST_LOOP, socket.IPV6_MULTICAST_LOOP, on)


def _multicast_if(sock: socket.socket, value: str | None) -> None:
    try:
        index = socket.if_nametoindex(value or "")
    except OSError:
        raise ValueError(f"no network interface named '{value}'") from None
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
    else:  # struct ip_mreqn: no group, any address, this interface
        import struct
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, bytes(8) + struct.pack("@i", index))


def _linger(sock: socket.socket, value: str | None) -> None:
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, _count(value or "")))


def _set_mark(sock: socket.socket, value: str | None) -> None:
    import struct  # a u32 in the kernel: values past INT_MAX are fine
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, struct.pack("I", _mark(value or "")))


def _device(sock: socket.socket, value: str | None) -> None:
    bind_device(sock, value or "")


def _congestion(sock: socket.socket, value: str | None) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, (value or "").encode())


@dataclass(frozen=True)
class _Kind:
    apply: Callable[[socket.socket, str | None], None]
    takes_value: bool | None  # True: required, False: none, None: optional
    help: str
    check: Callable[[str], object] = _nonempty  # validates a value before any socket exists


SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP

OPTIONS: dict[str, _Kind] = {
    "nodelay": _Kind(_setter(TCP, socket.TCP_NODELAY, None), False, "disable Nagle (TCP_NODELAY)"),
    "keepalive": _Kind(_keepalive, None, "SO_KEEPALIVE, optionally =IDLE:INTVL:CNT", _keepalive_values),
    "rcvbuf": _Kind(_setter(SOL, socket.SO_RCVBUF, _bytes), True, "receive buffer bytes (K/M suffix)",
                    _bytes),
    "sndbuf": _Kind(_setter(SOL, socket.SO_SNDBUF, _bytes), True, "send buffer bytes (K/M suffix)", _bytes),
    "reuseaddr": _Kind(_setter(SOL, socket.SO_REUSEADDR, None), False, "SO_REUSEADDR"),
    "reuseport": _Kind(_setter(SOL, socket.SO_REUSEPORT, None), False, "SO_REUSEPORT"),
    "broadcast": _Kind(_setter(SOL, socket.SO_BROADCAST, None), False, "SO_BROADCAST"),
    "ttl": _Kind(_ttl, True, "IP TTL / IPv6 unicast hops", _byte),
    "tos": _Kind(_tos, True, "IP TOS / IPv6 traffic class", _byte),
    "multicast_ttl": _Kind(_multicast_ttl, True, "TTL / hop limit of multicast datagrams", _byte),
    "multicast_loop": _Kind(_multicast_loop, None, "deliver own multicast locally (=0 to stop)",
                            _bool),
    "multicast_if": _Kind(_multicast_if, True, "interface for outgoing multicast"),
    "mark": _Kind(_set_mark, True, "SO_MARK (fwmark)", _mark),
    "priority": _Kind(_setter(SOL, socket.SO_PRIORITY, _count), True, "SO_PRIORITY", _count),
    "linger": _Kind(_linger, True, "SO_LINGER seconds (0: reset on close)", _count),
    "bindtodevice": _Kind(_device, True, "SO_BINDTODEVICE interface"),
    "maxseg": _Kind(_setter(TCP, socket.TCP_MAXSEG, _mss), True, "TCP_MAXSEG bytes", _mss),
    "quickack": _Kind(_setter(TCP, socket.TCP_QUICKACK, None), False, "TCP_QUICKACK"),
    "user_timeout": _Kind(_setter(TCP, socket.TCP_USER_TIMEOUT, _count), True, "TCP_USER_TIMEOUT ms",
                          _count),
    "congestion": _Kind(_congestion, True, "TCP_CONGESTION algorithm name"),
    "notsent_lowat": _Kind(_setter(TCP, socket.TCP_NOTSENT_LOWAT, _bytes), True,
                           "TCP_NOTSENT_LOWAT bytes", _bytes),
}


@dataclass(frozen=True)
class SockOpt:
    name: str
    value: str | None

    def apply(self, sock: socket.socket) -> None:
        try:
            OPTIONS[self.name].apply(sock, self.value)
        except ValueError as exc:  # a value only checkable once the socket exists (ttl on v6)
            raise OptionError("sockopts", f"{self}: {exc}") from None
        except PysockError as exc:
            raise OptionError("sockopts", f"{self}: {exc.message}", exc.status) from None
        except OSError as exc:
            raise OptionError("sockopts", f"{self}: {exc.strerror or exc}",
                              ExitStatus.FAILURE) from None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value}"


def parse_sockopt(text: str) -> SockOpt:
    name, sep, value = text.partition("=")
    name = name.strip().lower().replace("-", "_")
    kind = OPTIONS.get(name)
    if kind is None:
        raise UsageError(f"unknown socket option '{name}' (known: {', '.join(sorted(OPTIONS))})")
    if sep and kind.takes_value is False:
        raise UsageError(f"socket option '{name}' takes no value")
    if not sep and kind.takes_value:
        raise UsageError(f"socket option '{name}' needs a value: {name}=VALUE ({kind.help})")
    opt = SockOpt(name, value if sep else None)
    _check_value(opt)
    return opt


def _check_value(opt: SockOpt) -> None:
    if opt.value is None:
        return
    try:
        OPTIONS[opt.name].check(opt.value)
    except ValueError as exc:
        raise UsageError(f"{opt}: {exc}") from None


def apply_all(sock: socket.socket, opts: list[SockOpt] | tuple[SockOpt, ...]) -> None:
    for opt in opts:
        opt.apply(sock)
