"""--allow/--deny CIDR lists: which peers a listener keeps."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pysock.errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_network(text: str) -> Network:
    """An address or CIDR block; an IPv4-mapped block (::ffff:a.b.c.d/n, n >= 96)
    becomes the IPv4 block it maps, so it matches peers the way they are compared."""
    try:
        return unmap_network(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise UsageError(f"'{text}' is not an address or CIDR block") from None


def unmap_network(net: Network) -> Network:
    if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(_MAPPED):
        v4 = ipaddress.IPv4Address(int(net.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network((v4, net.prefixlen - 96))
    return net


def read_networks(path: str) -> list[Network]:
    """One address or CIDR per line; blank lines and # comments ignored."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    nets = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                nets.append(parse_network(line))
            except UsageError as exc:
                raise UsageError(f"{path}:{number}: {exc.message}") from None
    return nets


@dataclass(frozen=True)
class Access:
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    def permits(self, host: str) -> bool:
        """Deny wins; with an allow list, only listed peers are kept."""
        addr = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return not _covers(self.deny, addr) and (not self.allow or _covers(self.allow, addr))


def _covers(nets: tuple[Network, ...], addr) -> bool:
    """addr is unmapped; so are rules inside ::ffff:0:0/96. Other IPv6 rules
    (::/0 included) are about IPv6 peers only, as a user reading them expects."""
    return any(addr in net for net in nets)
