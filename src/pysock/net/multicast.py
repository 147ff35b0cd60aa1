"""Multicast and broadcast: joining groups (IPv4 and IPv6) on an interface, and
the sending side's socket options (interface, TTL / hop limit, loopback), which
are --sockopt kinds in sockopt.py so they apply before connect like any other."""

from __future__ import annotations

import ipaddress
import socket
import struct

from pysock.errors import NetworkError, UsageError


def group_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A multicast group as typed; anything else is a usage error."""
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise UsageError(f"'{text}' is not a multicast group address") from None
    if not addr.is_multicast:
        raise UsageError(f"{text} is not a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8)")
    return addr


def is_multicast(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_multicast
    except ValueError:
        return False


def interface_index(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        raise UsageError(f"no network interface named '{name}' (see 'ip link')") from None


def join(sock: socket.socket, group: str, iface: str | None = None) -> None:
    """Join group on iface (or the interface the routing table picks)."""
    addr = group_address(group)
    index = interface_index(iface) if iface else 0
    try:
        if addr.version == 6:
            if sock.family != socket.AF_INET6:
                raise UsageError(f"cannot join IPv6 group {group} on an IPv4 socket",
                                 advice="multicast_v6_on_v4")
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                            addr.packed + struct.pack("@I", index))
        else:
            mreqn = addr.packed + bytes(4) + struct.pack("@i", index)  # struct ip_mreqn
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    except OSError as exc:
        where = f" on {iface}" if iface else ""
        raise NetworkError(f"cannot join {group}{where}: {exc.strerror}",
                           advice=None if iface else "multicast_iface") from None
