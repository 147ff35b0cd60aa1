"""A big connect scan on every core: this process and forked workers each run their
own engine loop; the workers send their progress and, at the end, their verdicts
back through a pipe.

On loopback the work is the kernel's (socket set-up, the SYN and the RST), done in
the context of the process that connects, so two processes on two cores take
about half the time of one. The ports are not halved in advance: they are cut into
chunks that the processes take from a shared pipe as they go, so a process whose
core is busy with other work takes fewer, and the scan ends when the work is done
rather than when the slower half is."""

from __future__ import annotations

import marshal
import math
import os
import signal
import socket
import struct
from array import array
from collections.abc import Callable

from pysock.errors import NetworkError
from pysock.net.route import is_local
from pysock.probes.scan.model import CLOSED, OPEN, Target, Timing, Verdict

CONFIRM_TIMEOUT = 1.0
MIN_PROBES = 8192  # below this a fork costs more than it saves
_RECORD = struct.Struct("!cI")  # b"P" + progress count, or b"R" + length of the results
_TOKEN = struct.Struct("=I")  # a chunk's index in the work pipe
CHUNK_PROBES = 1024  # ports per chunk: about 10 ms of work on loopback
NO_RTT = math.nan  # an unanswered probe's round trip in the packed arrays
MAX_CHUNKS = 4096  # their tokens (16 KiB) must fit in the pipe's buffer (64 KiB) at once


def worker_count(targets: list[Target], ports: list[int], timing: Timing) -> int:
    """How many processes to use: one per core for a big scan, else one. A rate
    ceiling or a fixed source port belong to one process."""
    if timing.rate or timing.source_port or len(targets) * len(ports) < MIN_PROBES:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def run_split(engine, targets: list[Target], ports: list[int], timing: Timing,
              on_progress: Callable[[int], None] | None, workers: int) -> list[dict[int, Verdict]]:
    """engine(targets, ports, timing, on_progress).run() over `workers` processes."""
    report = on_progress or (lambda n: None)
    share_timing = Timing(concurrency=timing.concurrency and max(8, timing.concurrency // workers),
                          timeout=timing.timeout, retries=timing.retries)
    chunks = _chunks(ports, len(targets))
    work_fd = _work_pipe(len(chunks), workers)
    children = []
    try:
        shares = [SharedPorts(chunks, first, work_fd) for first in range(workers)]
        children = [_fork(engine, targets, share, share_timing) for share in shares[1:]]
        readers = [_Reader(fd) for _, fd in children]

        def progress(n: int) -> None:
            report(n + sum(r.poll() for r in readers))

        results = engine(targets, shares[0], share_timing, progress).run()
        for reader in readers:
            report(reader.finish())
            for mine, theirs in zip(results, reader.results(len(targets))):
                mine.update(theirs)
        _confirm_open(targets, results)
        return results
    finally:
        os.close(work_fd)
        for pid, fd in children:
            _reap(pid, fd)


class SharedPorts:
    """One process's view of the shared work: an iterable of (hosts, ports) chunks.
    Its own first chunk (so every process has work from the start), then chunks
    taken from the work pipe until it is empty; a read of one token from a pipe is
    atomic, so no chunk is taken twice."""

    def __init__(self, chunks: list[tuple[range, list[int]]], first: int, fd: int):
        self.chunks, self.first, self.fd = chunks, first, fd

    def __iter__(self):
        if self.first < len(self.chunks):
            yield self.chunks[self.first]
        while token := os.read(self.fd, _TOKEN.size):
            yield self.chunks[_TOKEN.unpack(token)[0]]


def _chunks(ports: list[int], hosts: int) -> list[tuple[range, list[int]]]:
    """(hosts, ports) blocks of about CHUNK_PROBES probes (more when there are
    too many chunks for the pipe), in the order a single process would probe."""
    size = max(CHUNK_PROBES, -(-hosts * len(ports) // MAX_CHUNKS))
    while True:
        port_size = min(len(ports), size)
        host_size = max(1, size // port_size)
        if -(-hosts // host_size) * -(-len(ports) // port_size) <= MAX_CHUNKS:
            break
        size *= 2
    return [(range(h, min(h + host_size, hosts)), ports[p:p + port_size])
            for h in range(0, hosts, host_size) for p in range(0, len(ports), port_size)]


def _work_pipe(chunks: int, workers: int) -> int:
    """A pipe holding the index of every chunk after the first `workers` (each
    process starts with its own); the write end is closed, so an empty pipe reads
    as end of file."""
    read_fd, write_fd = os.pipe()
    try:
        _write_all(write_fd, b"".join(_TOKEN.pack(i) for i in range(workers, chunks)))
    finally:
        os.close(write_fd)
    return read_fd


def _confirm_open(targets: list[Target], results: list[dict[int, Verdict]]) -> None:
    """Connect once more, alone, to each open port of this machine. Two processes
    probing loopback at once could, once in a blue moon, connect two of their own
    probes to each other (TCP simultaneous open): such a port is closed."""
    for target, verdicts in zip(targets, results):
        if not is_local(target.addr):
            continue
        for port, verdict in verdicts.items():
            if verdict.state == OPEN and not _answers(target, port):
                verdicts[port] = Verdict(CLOSED, "conn-refused", verdict.rtt)


def _answers(target: Target, port: int) -> bool:
    with socket.socket(target.family, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONFIRM_TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            sock.connect((target.addr, port))
        except ConnectionRefusedError:
            return False
        except OSError:
            return True  # busy or slow, not a refusal: the first answer stands
        return sock.getsockname()[:2] != sock.getpeername()[:2]


def _fork(engine, targets, ports, timing) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        return pid, read_fd
    status = 1
    try:  # the child: scan, answer through the pipe, never return into the caller
        os.close(read_fd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it; the parent cleans up
        results = engine(targets, ports, timing, lambda n: _write(write_fd, b"P", n)).run()
        payload = marshal.dumps([_encode(r) for r in results])
        _write(write_fd, b"R", len(payload))
        _write_all(write_fd, payload)
        status = 0
    finally:
        os._exit(status)


def _encode(verdicts: dict[int, Verdict]) -> list[tuple]:
    """Verdicts as a few (state, reason, ports, round trips) rows of packed arrays:
    tens of thousands of them cross the pipe and are rebuilt in a few milliseconds."""
    groups: dict[tuple[str, str], tuple[array, array]] = {}
    for port, v in verdicts.items():
        group = groups.get((v.state, v.reason))
        if group is None:
            group = groups[v.state, v.reason] = (array("H"), array("d"))
        group[0].append(port)
        group[1].append(NO_RTT if v.rtt is None else v.rtt)
    return [(state, reason, ports.tobytes(), rtts.tobytes())
            for (state, reason), (ports, rtts) in groups.items()]


def _decode(rows: list[tuple]) -> dict[int, Verdict]:
    verdicts = {}
    for state, reason, port_bytes, rtt_bytes in rows:
        ports, rtts = array("H"), array("d")
        ports.frombytes(port_bytes)
        rtts.frombytes(rtt_bytes)
        for port, rtt in zip(ports, rtts):
            verdicts[port] = Verdict(state, reason, None if rtt != rtt else rtt)  # NaN: None
    return verdicts


def _write(fd: int, kind: bytes, value: int) -> None:
    _write_all(fd, _RECORD.pack(kind, value))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Reader:
    """The parent's end of one worker's pipe: progress as it comes, then verdicts."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.payload = fd, bytearray(), None
        self.eof = False

    def poll(self) -> int:
        """Progress reported since the last call (without blocking)."""
        if not self.eof:
            try:
                while chunk := os.read(self.fd, 1 << 16):
                    self.buffer += chunk
                else:
                    self.eof = True
            except BlockingIOError:
                pass
        return self._parse()

    def _parse(self) -> int:
        done = 0
        while self.payload is None and len(self.buffer) >= _RECORD.size:
            kind, value = _RECORD.unpack_from(self.buffer)
            if kind == b"R":
                if len(self.buffer) < _RECORD.size + value:
                    break
                self.payload = bytes(self.buffer[_RECORD.size:_RECORD.size + value])
            else:
                done += value
            del self.buffer[:_RECORD.size + (value if kind == b"R" else 0)]
        return done

    def finish(self) -> int:
        """Wait for the worker's verdicts; the progress not yet reported."""
        os.set_blocking(self.fd, True)
        done = 0
        while self.payload is None:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                done += self._parse()
                if self.payload is None:
                    raise NetworkError("a scan worker process ended without its results")
                break
            self.buffer += chunk
            done += self._parse()
        return done

    def results(self, count: int) -> list[dict[int, Verdict]]:
        return [_decode(rows) for rows in marshal.loads(self.payload)[:count]]


def _reap(pid: int, fd: int) -> None:
    """End the worker if it still runs (an error or Ctrl-C here) and collect it."""
    try:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(fd)
