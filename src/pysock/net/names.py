"""Names this machine knows, listed for shell completion: service names, network
interfaces, bound Unix socket paths. Plain file reads, no heavy imports: completion
runs these on every Tab."""

from __future__ import annotations

import os
import stat

SERVICES = "/etc/services"
INTERFACES = "/sys/class/net"
UNIX_TABLE = "/proc/net/unix"


def services(proto: str = "tcp", path: str = SERVICES) -> dict[str, int]:
    """Service name (and alias) -> port, for one protocol, from the services database."""
    found: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if len(words) < 2 or "/" not in words[1]:
                    continue
                port, _, kind = words[1].partition("/")
                if kind == proto and port.isdigit():
                    for name in (words[0], *words[2:]):
                        found.setdefault(name, int(port))
    except OSError:
        pass
    return found


def interfaces(path: str = INTERFACES) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def unix_sockets(path: str = UNIX_TABLE) -> list[str]:
    """Paths and @abstract names Unix sockets are bound to, as the kernel lists them."""
    found: dict[str, None] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            next(f, None)
            for line in f:
                cols = line.split(None, 7)
                if len(cols) == 8:
                    found[cols[7].rstrip("\n")] = None
    except OSError:
        pass
    return list(found)


def unix_types(name: str, path: str = UNIX_TABLE) -> set[int]:
    """The socket types (socket.SOCK_STREAM, ...) bound to a path or @abstract name."""
    found: set[int] = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            next(f, None)
            for line in f:
                cols = line.split(None, 7)
                if len(cols) == 8 and cols[7].rstrip("\n") == name:
                    found.add(int(cols[4], 16))
    except (OSError, ValueError):
        pass
    return found


def socket_files(directory: str) -> list[str]:
    """Socket files in a directory (not descending), as paths joined to it."""
    try:
        entries = list(os.scandir(directory or "."))
    except OSError:
        return []
    out = []
    for entry in entries:
        try:
            if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                out.append(os.path.join(directory, entry.name) if directory else entry.name)
        except OSError:
            continue
    return sorted(out)
