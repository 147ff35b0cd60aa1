"""Where packets would go: the source address this machine would send from (a
route look-up by connecting a UDP socket: nothing is sent), and whether an
address is this machine's own."""

from __future__ import annotations

import ipaddress
import socket

from pysock.net.sockopt import bind_device


def family_of(addr: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for a numeric address (a %scope is allowed)."""
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def source_address(addr: str, *, scope_id: int = 0, device: str | None = None) -> str:
    """The address this machine sends from towards addr (iputils' connect() probe).
    Raises OSError (ENETUNREACH, ...) when there is no route, PysockError for a bad
    device."""
    family = family_of(addr)
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        if device:
            bind_device(probe, device)
        dest = (addr, 1025, 0, scope_id) if family == socket.AF_INET6 else (addr, 1025)
        probe.connect(dest)
        return probe.getsockname()[0].split("%", 1)[0]


def is_local(addr: str) -> bool:
    """True when addr belongs to this machine (loopback, or a bind to it succeeds)."""
    bare = addr.split("%", 1)[0]
    try:
        if ipaddress.ip_address(bare).is_loopback:
            return True
    except ValueError:
        return False
    with socket.socket(family_of(bare), socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((addr, 0))
        except OSError:
            return False
    return True
