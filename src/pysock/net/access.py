"""--allow/--deny CIDR lists: which peers a listener keeps."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pysock.errors import UsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise UsageError(f"'{text}' is not an address or CIDR block") from None


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
        if any(addr in net for net in self.deny):
            return False
        return not self.allow or any(addr in net for net in self.allow)
