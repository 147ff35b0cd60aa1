"""pysock capture against tcpdump and tshark, in throwaway network namespaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PYSOCK, need_root, need_tool, run_pysock

pytestmark = pytest.mark.timeout(120)

FILTERS = [
    "", "tcp", "udp", "icmp", "ip6", "arp", "ip", "host 10.1.0.1", "src host 10.1.0.2",
    "dst host 10.1.0.1", "net 10.1.0.0/24", "port 80", "src port 5353", "dst port 53",
    "portrange 50-60", "tcp port 80", "udp and port 53", "not tcp", "tcp or icmp",
    "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "tcp[tcpflags] & tcp-rst != 0", "ip6 and udp", "ip6 host fd00::1", "greater 100",
    "less 60", "ip[8] = 64", "udp[8:2] = 0x4142", "host 10.1.0.1 and not port 80",
    "ether broadcast", "icmp6",
]


def _mixed_pcap(path: str) -> None:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    a, b = "10.1.0.1", "10.1.0.2"
    packets = [
        e / IP(src=b, dst=a) / TCP(sport=40000, dport=80, flags="S"),
        e / IP(src=a, dst=b) / TCP(sport=80, dport=40000, flags="SA"),
        e / IP(src=b, dst=a) / TCP(sport=40000, dport=80, flags="A", seq=1) / (b"GET /" * 30),
        e / IP(src=a, dst=b) / TCP(sport=80, dport=40000, flags="R"),
        e / IP(src=b, dst=a, ttl=64) / UDP(sport=5353, dport=53) / b"ABCD",
        e / IP(src=a, dst=b, ttl=63) / UDP(sport=53, dport=5353) / b"xyz",
        e / IP(src=b, dst="10.2.0.9") / UDP(sport=55, dport=9999) / b"AB",
        e / IP(src=a, dst=b) / ICMP() / (b"p" * 56),
        e / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=53, dport=1000) / b"q",
        e / IPv6(src="fd00::2", dst="fd00::1") / TCP(sport=2000, dport=80, flags="S"),
        e / IPv6(src="fd00::2", dst="fd00::3") / ICMPv6EchoRequest(),
        Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=a),
    ]
    wrpcap(path, packets)


def test_filters_count_like_tcpdump_r(tmp_path):
    need_tool("tcpdump")
    path = str(tmp_path / "mixed.pcap")
    _mixed_pcap(path)
    for expression in FILTERS:
        want = subprocess.run(["tcpdump", "-n", "-r", path, expression], capture_output=True,
                              text=True, timeout=20)
        assert want.returncode == 0, want.stderr
        got = run_pysock("capture", "-n", "-r", path, expression)
        assert got.returncode == 0, got.stderr
        assert len(got.stdout.splitlines()) == len(want.stdout.splitlines()), expression


def test_bad_filter_is_a_usage_error(tmp_path):
    path = str(tmp_path / "mixed.pcap")
    _mixed_pcap(path)
    got = run_pysock("capture", "-r", path, "tcp", "prot", "80")
    assert got.returncode == 2
    assert got.stderr.decode().startswith("pysock: bad filter 'tcp prot 80'")
    assert len(got.stderr.splitlines()) == 1


def test_no_privilege_names_the_ways_out():
    need_root()
    got = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          *PYSOCK, "capture", "-c", "1"], capture_output=True, text=True,
                         timeout=30, cwd="/")
    assert got.returncode == 1
    assert got.stderr.count("\n") == 1 and "CAP_NET_RAW" in got.stderr and "-r FILE" in got.stderr


def _started(proc, word: bytes, timeout: float = 15) -> None:
    """Wait for the 'listening on' line a capture prints when it is on."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline and word not in seen:
        seen += os.read(proc.stderr.fileno(), 4096)
    assert word in seen, seen


def _stop(proc) -> tuple[bytes, bytes]:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=20)


def _frames(path: str) -> list[str]:
    out = subprocess.run(["tcpdump", "-n", "-t", "-xx", "-r", path], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return out.split("\n")


def test_same_frames_as_tcpdump_and_readable_by_tshark(lab, tmp_path):
    need_tool("tcpdump", "tshark", "socat")
    from netns import two_hosts
    a, b = two_hosts(lab)
    iface = next(iter(a.addrs))
    ours, theirs = str(tmp_path / "p.pcapng"), str(tmp_path / "t.pcap")
    only = ["tcp", "port", "5000", "or", "icmp"]  # not the IPv6 chatter of a new link
    dump = a.popen("tcpdump", "-i", iface, "-U", "-w", theirs, *only)
    cap = a.popen(sys.executable, "-m", "pysock", "capture", "-i", iface, "-w", ours, *only)
    try:
        _started(dump, b"listening on")
        _started(cap, b"listening on")
        server = b.popen("socat", "-u", "TCP-LISTEN:5000,reuseaddr", "OPEN:/dev/null")
        time.sleep(0.5)
        client = a.popen("socat", "-u", "-", f"TCP:{b.addr}:5000", stdin=subprocess.PIPE)
        client.stdin.write(b"hello capture\n" * 2000)
        client.stdin.flush()
        time.sleep(0.5)  # a connection must outlive one look at the socket tables
        client.communicate(timeout=20)
        server.communicate(timeout=20)
        a.run("ping", "-c", "5", "-i", "0.05", b.addr)
        time.sleep(2.5)  # tcpdump hands over a part-filled ring block after 1 s
    finally:
        _, cap_err = _stop(cap)
        _stop(dump)
    assert cap.returncode == 0, cap_err
    assert b"packets captured" in cap_err and b"dropped by kernel" in cap_err
    mine, reference = _frames(ours), _frames(theirs)
    assert len(mine) > 20
    assert mine == reference
    shark = subprocess.run(["tshark", "-r", ours, "-T", "fields", "-e", "frame.comment"],
                           capture_output=True, text=True, timeout=60)
    warnings = [w for w in shark.stderr.splitlines() if "Running as user" not in w]
    assert shark.returncode == 0 and not warnings, shark.stderr
    assert f"socat[{client.pid}]" in shark.stdout
    read = subprocess.run(["tcpdump", "-r", ours], capture_output=True, text=True, timeout=30)
    assert read.returncode == 0
    assert [w for w in read.stderr.splitlines() if not w.startswith("reading from")] == []


def test_json_and_pid_see_only_their_process(lab):
    need_tool("socat")
    from netns import two_hosts
    a, _ = two_hosts(lab)
    servers = [a.popen("socat", f"TCP-LISTEN:{p},reuseaddr,fork", "SYSTEM:'cat'")
               for p in (6001, 6002)]
    time.sleep(0.5)
    talkers = [a.popen("sh", "-c", f"while :; do echo ping-{p}; sleep 0.05; done | "
                       f"socat - TCP:127.0.0.1:{p}") for p in (6001, 6002)]
    time.sleep(0.5)
    socat_pid = _socat_child(talkers[0].pid)
    cap = a.popen(sys.executable, "-m", "pysock", "capture", "-i", "lo", "--json",
                  "--pid", str(socat_pid), "--duration", "2", "tcp")
    out, err = cap.communicate(timeout=30)
    for proc in servers + talkers:
        os.killpg(proc.pid, signal.SIGKILL)
    assert cap.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    packets = [r for r in records if r["type"] == "packet"]
    assert len(packets) > 10
    assert records[-1]["type"] == "summary" and records[-1]["captured"] == len(packets)
    for r in packets:
        assert 6001 in (r["src_port"], r["dst_port"]), r
        assert socat_pid in (r["pid"], r.get("peer_pid")), r
        assert {"time", "iface", "direction", "proto", "flags", "seq", "ack", "win",
                "len", "process"} <= r.keys()


def _socat_child(shell_pid: int) -> int:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if int(fields[1]) == shell_pid and comm == "socat":
                return int(pid)
        time.sleep(0.05)
    raise AssertionError("no socat child")


def test_command_mode_sees_only_its_command_and_ends_with_it(lab):
    need_tool("socat")
    from netns import two_hosts
    a, _ = two_hosts(lab)
    servers = [a.popen("socat", f"TCP-LISTEN:{p},reuseaddr,fork", "SYSTEM:'cat'")
               for p in (6001, 6002)]
    other = a.popen("sh", "-c", "while :; do echo ping-6002; sleep 0.05; done | "
                    "socat - TCP:127.0.0.1:6002")
    time.sleep(0.5)
    # the shell's child opens its socket after the capture started
    script = ("sleep 0.3; for i in $(seq 30); do echo ping-6001; sleep 0.03; done | "
              "socat - TCP:127.0.0.1:6001; exit 3")
    started = time.monotonic()
    cap = a.popen(sys.executable, "-m", "pysock", "capture", "-i", "lo", "--json", "tcp",
                  "--", "sh", "-c", script)
    try:
        out, err = cap.communicate(timeout=30)
    finally:
        for proc in servers + [other]:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.monotonic() - started < 15  # it ended with the command, unasked
    assert cap.returncode == 0, err
    assert err.decode().splitlines()[-1] == f"pysock: sh -c {script} exited with status 3"
    records = [json.loads(line) for line in out.splitlines()]
    packets = [r for r in records if r["type"] == "packet"]
    assert len(packets) > 30
    assert any(r["flags"] == "S" for r in packets)  # from its first packet
    for r in packets:
        assert 6001 in (r["src_port"], r["dst_port"]), r
    assert any(r["process"] == "socat" for r in packets)


def test_command_mode_refuses_what_it_cannot_do(tmp_path):
    for extra in (["--pid", "1"], ["-r", str(tmp_path / "x.pcap")]):
        got = run_pysock("capture", *extra, "--", "true")
        assert got.returncode == 2 and b"-- COMMAND" in got.stderr, got.stderr
    got = run_pysock("capture", "tcp", "--")
    assert got.returncode == 2 and b"-- COMMAND" in got.stderr


FLOW_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(); print("up", flush=True)
c, _ = s.accept(); got = 0
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    got += len(chunk)
c.sendall(b"r" * int(sys.argv[1])); c.close(); print(got, flush=True)
"""

FLOW_CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 7000)); time.sleep(0.2)
c.sendall(b"s" * int(sys.argv[2])); c.shutdown(socket.SHUT_WR); got = 0
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    got += len(chunk)
c.close(); print(got, flush=True)
try:
    socket.create_connection((sys.argv[1], 7001), timeout=5)
except ConnectionRefusedError:
    print("refused", flush=True)
"""


def test_flows_count_bytes_retransmissions_and_resets(lab):
    from netns import two_hosts
    a, b = two_hosts(lab)
    iface = next(iter(a.addrs))
    b.nft("table inet lossy {\n chain input {\n type filter hook input priority 0;\n"
          " tcp dport 7000 numgen inc mod 50 == 49 drop\n }\n}\n")
    sent, answer = 3_000_000, 123_456
    server = b.popen(sys.executable, "-c", FLOW_SERVER, str(answer))
    assert server.stdout.readline() == b"up\n"
    # headers are all --flows reads: -s 128 keeps the 3 MB burst far inside the 4 MiB
    # ring, which full frames nearly fill (a slow capture under load lost the last SYN)
    cap = a.popen(sys.executable, "-m", "pysock", "capture", "-i", iface, "--flows", "--json",
                  "-s", "128", "tcp", "portrange", "7000-7001")
    try:
        _started(cap, b"listening on")
        client = a.popen(sys.executable, "-c", FLOW_CLIENT, b.addr, str(sent))
        out, _ = client.communicate(timeout=60)
        assert out.split() == [str(answer).encode(), b"refused"]
        assert server.communicate(timeout=20)[0].strip() == str(sent).encode()
        time.sleep(0.5)
    finally:
        out, err = _stop(cap)
    assert cap.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    flows = {r["dst_port"]: r for r in records if r["type"] == "flow"}
    assert records[-1]["type"] == "summary"
    data, refused = flows[7000], flows[7001]
    assert (data["src_addr"], data["dst_addr"]) == (a.addr, b.addr)
    assert data["bytes_out"] == sent and data["bytes_in"] == answer, data
    assert data["bytes"] == sent + answer
    assert data["packets"] == data["packets_out"] + data["packets_in"]
    assert data["retransmits"] > 0 and data["resets"] == 0, data
    assert data["state"] == "closed" and data["rtt_ms"] > 0
    assert data["pid"] == client.pid and data["process"].startswith("python"), data
    assert refused["resets"] == 1 and refused["state"] == "reset", refused
    assert refused["packets_out"] >= 1 and refused["packets_in"] == 1
    assert refused["bytes_out"] == refused["bytes_in"] == 0


def test_flows_refuses_packet_options():
    for extra in (["-w", "x.pcapng"], ["-X"], ["--time-format", "epoch"]):
        got = run_pysock("capture", "--flows", *extra)
        assert got.returncode == 2 and b"--flows" in got.stderr, got.stderr


def test_flows_from_a_file_as_json_and_as_a_table(tmp_path):
    path = str(tmp_path / "mixed.pcap")
    _mixed_pcap(path)
    got = run_pysock("capture", "-r", path, "--flows", "--json")
    assert got.returncode == 0, got.stderr
    flows = {(r["src_port"], r["dst_port"]): r for r in map(json.loads, got.stdout.splitlines())}
    web = flows[(40000, 80)]
    assert (web["packets_out"], web["packets_in"], web["bytes_out"]) == (2, 2, 150), web
    assert web["resets"] == 1 and web["state"] == "reset" and web["rtt_ms"] is not None
    assert flows[(5353, 53)]["bytes_out"] == 4 and flows[(5353, 53)]["bytes_in"] == 3
    table = run_pysock("--color", "always", "capture", "-r", path, "--flows", "-n",
                       env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    text = table.stdout.decode()
    assert "RETRANS" in text and "10.1.0.2:40000" in text and "5 flows" in text.replace(
        "\x1b[3m", "").replace("\x1b[0m", ""), text


def test_write_stops_at_count_in_the_middle_of_a_block(lab, tmp_path):
    need_tool("tcpdump")
    from netns import two_hosts
    a, b = two_hosts(lab)
    path = str(tmp_path / "c.pcapng")
    flood = a.popen("ping", "-i", "0.002", "-c", "400", b.addr)
    cap = a.popen(sys.executable, "-m", "pysock", "capture", "-i", next(iter(a.addrs)),
                  "-c", "7", "-w", path, "icmp")
    try:
        _, err = cap.communicate(timeout=30)
    finally:
        flood.kill()
        flood.wait()
    assert cap.returncode == 0, err
    assert b"7 packets captured" in err
    read = subprocess.run(["tcpdump", "-n", "-r", path], capture_output=True, text=True,
                          timeout=30)
    assert len(read.stdout.splitlines()) == 7, read.stdout


def _segment(seq, payload, flags=0x10, ts_ns=0, reply=False):
    from types import SimpleNamespace
    ends = [("10.0.0.1", 40000), ("10.0.0.2", 80)]
    (src, sport), (dst, dport) = ends[::-1] if reply else ends
    head = SimpleNamespace(proto="tcp", src=src, sport=sport, dst=dst, dport=dport,
                           flags=flags, seq=seq, win=512, payload=payload)
    return SimpleNamespace(head=head, ts_ns=ts_ns, owner=None, peer_owner=None)


def test_flow_bytes_count_segments_the_capture_missed_once():
    from pysock.probes.capture.flows import FlowTable
    table = FlowTable()
    table.add(_segment(999, 0, flags=0x02))
    table.add(_segment(4999, 0, flags=0x12, ts_ns=1000, reply=True))
    for seq in (1000, 1100, 1300):  # 1200..1300 never reached the capture
        table.add(_segment(seq, 100, ts_ns=2000))
    table.add(_segment(1100, 100, ts_ns=50_000_000))  # a retransmission
    flow = table.add(_segment(1500, 0, flags=0x11, ts_ns=60_000_000))  # FIN after 1400..1500 missed
    assert flow.out.bytes == 500 and flow.retransmits == 1
    flow = table.add(_segment(5000, 0, flags=0x11, ts_ns=70_000_000, reply=True))
    assert flow.back.bytes == 0 and flow.closed
