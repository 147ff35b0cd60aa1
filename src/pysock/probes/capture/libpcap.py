"""-w FILE as classic pcap on one Ethernet-framed interface: libpcap captures and
writes, with its own pcap_dump as the per-packet callback, so no Python runs per
packet (the Python ring walk costs about 0.6 µs a frame, over twice tcpdump's CPU).
pysock only starts it, stops it (Ctrl-C, --duration, -c) and reads its counters.
Through scapy's ctypes bindings of libpcap, the ones the filter compiler uses."""

from __future__ import annotations

import ctypes
import threading

from pysock.errors import ExitStatus, PysockError
from pysock.probes.capture import filter as bpf
from pysock.probes.capture.ring import NO_PRIVILEGE, RingSpec
from pysock.status import start_beside_main

PCAP_ERROR_BREAK, PCAP_ERROR_PERM_DENIED = -2, -8


def _bindings():
    """scapy's libpcap module, or None when libpcap is not installed."""
    try:
        from scapy.libs import winpcapy
    except (ImportError, OSError):
        return None
    return winpcapy


class Dump:
    """One live handle and its dumper: pcap_dispatch(handle, n, pcap_dump, dumper)
    in a thread, block by block, until told to stop or n packets are written."""

    def __init__(self, pcap, handle, dumper, to_stdout: bool):
        self.pcap, self.handle, self.dumper = pcap, handle, dumper
        self.to_stdout = to_stdout
        self.callback = pcap.pcap_handler(ctypes.cast(pcap._lib.pcap_dump, ctypes.c_void_p).value)
        self.user = ctypes.cast(dumper, ctypes.POINTER(ctypes.c_ubyte))
        self.captured = 0
        self.error: str | None = None
        self.stopping, self.finished = threading.Event(), threading.Event()

    def _dispatch(self, count: int | None) -> None:
        pcap = self.pcap
        try:
            while not self.stopping.is_set():
                got = pcap.pcap_dispatch(self.handle, count - self.captured if count else -1,
                                         self.callback, self.user)
                if got < 0:
                    if got != PCAP_ERROR_BREAK:
                        self.error = _text(pcap.pcap_geterr(self.handle))
                    return
                self.captured += got
                pcap.pcap_dump_flush(self.dumper)  # once a block: -w - reaches a reader
                if count and self.captured >= count:
                    return
        finally:
            self.finished.set()

    def run(self, count: int | None, duration: float | None) -> None:
        """Until count packets, duration seconds, or Ctrl-C (KeyboardInterrupt passes)."""
        worker = threading.Thread(target=self._dispatch, args=(count,), daemon=True)
        start_beside_main(worker.start)
        try:
            self.finished.wait(duration)
        finally:
            self.stopping.set()
            while worker.is_alive():
                self.pcap.pcap_breakloop(self.handle)  # wakes its poll (an eventfd)
                worker.join(0.2)
        if self.error:
            raise PysockError(f"capture failed: {self.error}", ExitStatus.FAILURE)

    def statistics(self) -> tuple[int, int, int]:
        """(captured, received by filter, dropped by kernel), as tcpdump prints them."""
        stat = self.pcap.pcap_stat()
        if self.pcap.pcap_stats(self.handle, ctypes.byref(stat)) < 0:
            return self.captured, 0, 0
        return self.captured, stat.ps_recv, stat.ps_drop

    def close(self) -> None:
        if self.to_stdout:
            self.pcap.pcap_dump_flush(self.dumper)  # closing it would close Python's stdout
        else:
            self.pcap.pcap_dump_close(self.dumper)
        self.pcap.pcap_close(self.handle)


def _text(value) -> str:
    return (value or b"").decode(errors="replace")


def eligible(ifaces: tuple[str, ...]) -> bool:
    """One interface named, with Ethernet framing: libpcap gives the link type and
    frames pysock's own ring gives. 'any' is cooked (SLL) in libpcap, and several
    interfaces are one socket each there: both stay on pysock's ring."""
    from pysock.probes.capture.session import plan
    _, cooked, _, guarded, any_device = plan(ifaces)
    return not (cooked or guarded or any_device)


def open_dump(iface: str, expression: str, snaplen: int, promisc: bool, path: str,
              ring: RingSpec = RingSpec()) -> Dump | None:
    """A started libpcap capture into path ('-' stdout), or None when libpcap is
    missing or would frame packets otherwise than pysock's ring does."""
    pcap = _bindings()
    if pcap is None:
        return None
    errbuf = ctypes.create_string_buffer(256)
    handle = pcap.pcap_create(iface.encode(), errbuf)
    if not handle:
        raise PysockError(f"cannot start the capture: {_text(errbuf.value)}", ExitStatus.FAILURE)
    try:
        if not _activate(pcap, handle, snaplen, promisc, ring):
            pcap.pcap_close(handle)
            return None
        _set_filter(pcap, handle, expression)
        dumper = pcap.pcap_dump_open(handle, path.encode())
        if not dumper:
            reason = _text(pcap.pcap_geterr(handle)).removeprefix(f"{path}: ")
            raise PysockError(f"cannot write '{path}': {reason}", ExitStatus.FAILURE)
    except BaseException:
        pcap.pcap_close(handle)
        raise
    return Dump(pcap, handle, dumper, path == "-")


def _activate(pcap, handle, snaplen: int, promisc: bool, ring: RingSpec) -> bool:
    """The same buffer, snapshot and block timeout as the ring; immediate mode off.
    False when the link type is not Ethernet."""
    pcap.pcap_set_snaplen(handle, snaplen)
    pcap.pcap_set_promisc(handle, int(promisc))
    pcap.pcap_set_timeout(handle, ring.retire_ms)
    pcap.pcap_set_buffer_size(handle, ring.block_size * ring.blocks)
    status = pcap.pcap_activate(handle)
    if status == PCAP_ERROR_PERM_DENIED:
        raise PysockError(NO_PRIVILEGE, advice="capture_saved")
    if status < 0:
        raise PysockError(f"cannot start the capture: {_text(pcap.pcap_geterr(handle))}",
                          ExitStatus.FAILURE)
    return pcap.pcap_datalink(handle) == bpf.DLT_EN10MB


def _set_filter(pcap, handle, expression: str) -> None:
    from scapy.libs.structures import bpf_program
    program = bpf_program()
    if pcap.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1,
                         bpf.NETMASK_UNKNOWN) == -1:
        reason = _text(pcap.pcap_geterr(handle))
        raise PysockError(f"bad filter '{expression}': {reason}", ExitStatus.USAGE)
    try:
        if pcap.pcap_setfilter(handle, ctypes.byref(program)) < 0:
            raise PysockError(f"cannot set the filter: {_text(pcap.pcap_geterr(handle))}",
                              ExitStatus.FAILURE)
    finally:
        pcap.pcap_freecode(ctypes.byref(program))
