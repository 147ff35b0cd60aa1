"""Ancillary data (control messages) that ride along with data: the TTL or hop
limit a datagram arrived with, descriptors passed with SCM_RIGHTS and the sender's
credentials (SCM_CREDENTIALS). What to ask the kernel for, how to read what it
gave, and how to build what we send."""

from __future__ import annotations

import array
import os
import socket
import struct
from dataclasses import dataclass

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # not exported by every Python build
MAX_FDS = 64  # descriptors accepted in one message; more are closed by the kernel (MSG_CTRUNC)
_INT = array.array("i").itemsize
_UCRED = struct.Struct("iII")  # pid, uid, gid


@dataclass(frozen=True)
class Credentials:
    pid: int
    uid: int
    gid: int

    @property
    def process(self) -> str | None:
        try:
            with open(f"/proc/{self.pid}/comm", "rb") as f:
                return f.read().strip().decode(errors="replace")
        except OSError:
            return None

    def describe(self) -> str:
        name = self.process
        who = f"pid {self.pid}" + (f" ({name})" if name else "")
        return f"{who}, uid {self.uid}, gid {self.gid}"


@dataclass(frozen=True)
class Ancillary:
    ttl: int | None = None
    fds: tuple[int, ...] = ()
    creds: Credentials | None = None
    cut: bool = False  # MSG_CTRUNC: the kernel dropped some (more than MAX_FDS descriptors)

    def close_fds(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


def space(family: int) -> int:
    """Control buffer size for what we may receive on a socket of this family."""
    if family == socket.AF_UNIX:
        return socket.CMSG_SPACE(MAX_FDS * _INT) + socket.CMSG_SPACE(_UCRED.size)
    return socket.CMSG_SPACE(_INT)


def want_ttl(sock: socket.socket) -> None:
    """Ask for the TTL (IPv4) / hop limit (IPv6) of each received datagram."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    try:  # IPv4 datagrams on a dual-stack socket report through the IPv4 option
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
    except OSError:
        pass


def want_credentials(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)


def parse(cmsgs, flags: int = 0) -> Ancillary:
    ttl, fds, creds = None, [], None
    for level, kind, data in cmsgs:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL),
                             (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            ttl = int.from_bytes(data[:_INT], "little")
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _INT
            fds.extend(array.array("i", data[:usable]))
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            creds = Credentials(*_UCRED.unpack(data[:_UCRED.size]))
    return Ancillary(ttl, tuple(fds), creds, bool(flags & socket.MSG_CTRUNC))


def rights(fds) -> tuple[int, int, bytes]:
    return socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes()


def credentials(creds: Credentials | None = None) -> tuple[int, int, bytes]:
    """SCM_CREDENTIALS for ourselves, or (root only) the given pid/uid/gid."""
    creds = creds or Credentials(os.getpid(), os.getuid(), os.getgid())
    return socket.SOL_SOCKET, socket.SCM_CREDENTIALS, _UCRED.pack(creds.pid, creds.uid, creds.gid)


def peer_credentials(sock: socket.socket) -> Credentials | None:
    """SO_PEERCRED: who was on the other end when the connection was made."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None
    creds = Credentials(*_UCRED.unpack(raw))
    return None if creds.pid == 0 else creds
