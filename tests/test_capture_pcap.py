"""pysock capture -w in classic pcap: libpcap's loop on one interface, pysock's
ring on several; both give tcpdump's file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import need_tool, run_pysock

pytestmark = pytest.mark.timeout(120)

PCAP_MAGIC = bytes.fromhex("d4c3b2a1")  # microseconds, this machine's byte order
PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")


def _capture(host, *args: str):
    return host.popen(sys.executable, "-m", "pysock", "capture", *args)


def _started(proc, timeout: float = 15) -> None:
    deadline, seen = time.monotonic() + timeout, b""
    while time.monotonic() < deadline and b"listening on" not in seen:
        seen += os.read(proc.stderr.fileno(), 4096)
    assert b"listening on" in seen, seen


def _stop(proc) -> bytes:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=20)[1]


def _frames(path: str) -> list[str]:
    out = subprocess.run(["tcpdump", "-n", "-t", "-xx", "-r", path], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return out.split("\n")


def _packets(lines: list[str]) -> list[str]:
    """tcpdump -xx lines as one text per packet (its summary line and its hex lines)."""
    packets: list[str] = []
    for line in lines:
        if line.startswith("\t") and packets:
            packets[-1] += "\n" + line
        elif line:
            packets.append(line)
    return packets


def _magic(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def test_pcap_is_tcpdumps_file_through_libpcap_and_through_the_ring(lab, tmp_path):
    need_tool("tcpdump", "socat")
    from netns import two_hosts
    a, b = two_hosts(lab)
    iface = next(iter(a.addrs))
    only = ["tcp", "port", "5000", "or", "icmp"]
    theirs, fast, ring = (str(tmp_path / name) for name in ("t.pcap", "one.pcap", "any.pcap"))
    procs = [a.popen("tcpdump", "-i", iface, "-w", theirs, *only),
             _capture(a, "-i", iface, "-w", fast, *only),  # one interface: libpcap
             _capture(a, "--format", "pcap", "-w", ring, *only)]  # every interface: the ring
    try:
        for proc in procs:
            _started(proc)
        server = b.popen("socat", "-u", "TCP-LISTEN:5000,reuseaddr", "OPEN:/dev/null")
        time.sleep(0.5)
        client = a.popen("socat", "-u", "-", f"TCP:{b.addr}:5000", stdin=subprocess.PIPE)
        client.communicate(b"a pcap line\n" * 3000, timeout=20)
        server.communicate(timeout=20)
        a.run("ping", "-c", "5", "-i", "0.05", b.addr)
        time.sleep(1.5)  # tcpdump hands over a part-filled block after 1 s
    finally:
        errors = [_stop(proc) for proc in procs]
    reference, packets = _frames(theirs), _count(theirs)
    assert packets > 20
    for path, err in zip((fast, ring), errors[1:]):
        assert _magic(path) == PCAP_MAGIC
        with open(path, "rb") as mine, open(theirs, "rb") as tcpdumps:
            assert mine.read(24) == tcpdumps.read(24)  # snapshot length, link type
        if path == fast:  # the same interface as tcpdump's: the same order too
            assert _frames(path) == reference, path
        else:  # every interface: a reply and the next send may swap by nanoseconds
            assert sorted(_packets(_frames(path))) == sorted(_packets(reference)), path
        assert f"{packets} packets captured" in err.decode().splitlines(), err


def _count(path: str) -> int:
    out = subprocess.run(["tcpdump", "-n", "-r", path], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return len(out.splitlines())


def test_format_follows_the_name_unless_told(lab, tmp_path):
    need_tool("tcpdump")
    from netns import two_hosts
    a, b = two_hosts(lab)
    iface = next(iter(a.addrs))
    flood = a.popen("ping", "-i", "0.002", "-c", "2000", b.addr)
    cases = [([], "x.pcap", PCAP_MAGIC), ([], "x.pcapng", PCAPNG_MAGIC),
             ([], "x.cap", PCAPNG_MAGIC), (["--format", "pcapng"], "y.pcap", PCAPNG_MAGIC),
             (["--format", "pcap"], "y.cap", PCAP_MAGIC)]
    try:
        for extra, name, magic in cases:
            path = str(tmp_path / name)
            done = _capture(a, "-i", iface, "-c", "7", *extra, "-w", path, "icmp")
            err = done.communicate(timeout=30)[1]
            assert done.returncode == 0, err
            assert b"7 packets captured" in err, err
            assert _magic(path) == magic, name
            assert _count(path) == 7, name
    finally:
        flood.kill()
        flood.wait()


def test_pcap_to_stdout_and_for_a_duration(lab, tmp_path):
    need_tool("tcpdump")
    from netns import two_hosts
    a, b = two_hosts(lab)
    iface = next(iter(a.addrs))
    flood = a.popen("ping", "-i", "0.01", "-c", "500", b.addr)
    try:
        started = time.monotonic()
        cap = _capture(a, "-i", iface, "--duration", "1.5", "--format", "pcap", "-w", "-",
                       "icmp")
        out, err = cap.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        flood.kill()
        flood.wait()
    assert cap.returncode == 0, err
    assert 1.4 < took < 10
    path = tmp_path / "out.pcap"
    path.write_bytes(out)
    assert _magic(str(path)) == PCAP_MAGIC
    captured = int(err.split(b" packets captured")[0].split()[-1])
    assert captured > 50
    assert _count(str(path)) == captured


def test_format_needs_a_file_and_converts_what_it_reads(tmp_path):
    need_tool("tcpdump")
    from test_capture import _mixed_pcap
    source, converted = str(tmp_path / "mixed.pcap"), str(tmp_path / "out.pcap")
    _mixed_pcap(source)
    got = run_pysock("capture", "--format", "pcap", "-r", source)
    assert got.returncode == 2 and len(got.stderr.splitlines()) == 1, got.stderr
    assert got.stderr.startswith(b"pysock:") and b"--format" in got.stderr
    got = run_pysock("capture", "-r", source, "-w", converted, "tcp")
    assert got.returncode == 0, got.stderr
    assert _magic(converted) == PCAP_MAGIC
    want = subprocess.run(["tcpdump", "-n", "-t", "-xx", "-r", source, "tcp"],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    assert _frames(converted) == want.split("\n")


def test_libpcap_path_says_what_stops_it_in_one_line(lab, tmp_path):
    from netns import two_hosts
    a, _ = two_hosts(lab)
    iface = next(iter(a.addrs))
    cases = [(["-w", str(tmp_path / "no" / "x.pcap")], 1, "pysock: cannot write '"),
             (["-w", str(tmp_path / "x.pcap"), "udp", "prot", "5"], 2, "pysock: bad filter '")]
    for args, status, line in cases:
        done = a.run(sys.executable, "-m", "pysock", "capture", "-i", iface, "-c", "1", *args,
                     check=False)
        assert done.returncode == status, done.stderr
        assert done.stderr.startswith(line) and len(done.stderr.splitlines()) == 1, done.stderr
    a.run("ip", "link", "set", iface, "down")
    done = a.run(sys.executable, "-m", "pysock", "capture", "-i", iface, "-c", "1", "-w",
                 str(tmp_path / "y.pcap"), check=False)
    assert done.returncode == 1
    assert done.stderr == "pysock: cannot start the capture: That device is not up\n"
