"""Where packets would go: the source address this machine would send from (a
route look-up by connecting a UDP socket: nothing is sent), and whether an
address is this machine's own."""

from __future__ import annotations

import ipaddress
import socket


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
            from pysock.net.sockopt import bind_device  # rarely: ping's start-up skips it
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


def on_link(addr: str) -> bool:
    """True when IPv4 addr is on a directly connected network (its best route in
    /proc/net/route has no gateway), so ARP alone says whether a host is there."""
    if family_of(addr) != socket.AF_INET:
        return False
    target = int(ipaddress.IPv4Address(addr))
    best: tuple[int, bool] | None = None  # (prefix length, direct)
    try:
        with open("/proc/net/route") as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) < 8:
                    continue
                dest, gateway, mask = (_le32(cols[i]) for i in (1, 2, 7))
                if target & mask == dest and (best is None or bin(mask).count("1") > best[0]):
                    best = (bin(mask).count("1"), gateway == 0)
    except (OSError, ValueError):
        return False
    return best is not None and best[1]


def resolved_neighbours() -> set[str]:
    """IPv4 addresses with a complete ARP entry (a host answered ARP) in this
    network namespace, from /proc/net/arp."""
    found = set()
    try:
        with open("/proc/net/arp") as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) >= 3 and int(cols[2], 16) & ATF_COM:
                    found.add(cols[0])
    except (OSError, ValueError):
        pass
    return found


ATF_COM = 0x02  # <linux/if_arp.h>: the entry is complete


def _le32(text: str) -> int:
    """A /proc/net/route word (host byte order, little-endian) as a number."""
    return int.from_bytes(int(text, 16).to_bytes(4, "little"), "big")
