"""A target for scan tests: a namespace host with listening, closed, dropped,
reset and ICMP-rejected ports, a DNS responder and a UDP echo; and helpers that
ask nmap and pysock for their verdicts on the same ports."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import PYSOCK

TCP_OPEN = [22, 80, 8080]
TCP_BANNER = 2222  # open, and says something first
TCP_CLOSED = [23, 81, 443, 9999]
TCP_DROPPED = [1001, 1002, 8081]  # 8081 listens behind the drop
TCP_RESET = [2001, 2002]
TCP_PROHIBITED = [3001, 3002]
UDP_DNS, UDP_ECHO = 53, 7
UDP_CLOSED = [54, 1234, 5000]
UDP_DROPPED = [1001]
UDP_PROHIBITED = [3001]

TCP_PORTS = sorted(TCP_OPEN + [TCP_BANNER] + TCP_CLOSED + TCP_DROPPED + TCP_RESET + TCP_PROHIBITED)
UDP_PORTS = sorted([UDP_DNS, UDP_ECHO] + UDP_CLOSED + UDP_DROPPED + UDP_PROHIBITED)

RULES = """table inet scantest {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport { 1001, 1002, 8081 } drop
        tcp dport { 2001, 2002 } reject with tcp reset
        tcp dport { 3001, 3002 } reject with icmpx type admin-prohibited
        udp dport 1001 drop
        udp dport 3001 reject with icmpx type admin-prohibited
    }
}
"""

# Servers for the target host, one process: TCP listeners (dual stack), one of them
# greeting its clients, a DNS responder that answers any query, and a UDP echo.
SERVERS = r"""
import selectors, socket, sys

def bound(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.setblocking(False)
    return s

sel = selectors.DefaultSelector()
for port in map(int, sys.argv[1].split(",")):
    s = bound(socket.SOCK_STREAM, port)
    s.listen(512)
    sel.register(s, selectors.EVENT_READ, "greet" if port == int(sys.argv[2]) else "tcp")
sel.register(bound(socket.SOCK_DGRAM, int(sys.argv[3])), selectors.EVENT_READ, "dns")
sel.register(bound(socket.SOCK_DGRAM, int(sys.argv[4])), selectors.EVENT_READ, "echo")
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        try:
            if key.data in ("tcp", "greet"):
                conn, _ = s.accept()
                if key.data == "greet":
                    conn.send(b"SSH-2.0-pysock_test\r\n")
                conn.close()
            elif key.data == "dns":
                data, peer = s.recvfrom(512)
                if len(data) >= 12:  # the question echoed back, flagged as an answer
                    s.sendto(data[:2] + b"\x81\x80" + data[4:6] + b"\0" * 6 + data[12:], peer)
            else:
                data, peer = s.recvfrom(2048)
                s.sendto(data, peer)
        except OSError:
            pass
"""


def serve(host) -> subprocess.Popen:
    """Start the servers and the firewall on `host`; the lab kills the process."""
    host.nft(RULES)
    listen = ",".join(map(str, TCP_OPEN + [TCP_BANNER, 8081]))
    proc = host.popen(sys.executable, "-c", SERVERS, listen, str(TCP_BANNER), str(UDP_DNS),
                      str(UDP_ECHO), text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc


def ports_arg(ports) -> str:
    return ",".join(map(str, ports))


def nmap_states(argv: list[str]) -> dict[tuple[str, int], str]:
    """{(proto, port): state} from nmap's XML (-oX -) output."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    root = ET.fromstring(out.stdout)
    states = {}
    for port in root.iter("port"):
        states[(port.get("protocol"), int(port.get("portid")))] = port.find("state").get("state")
    assert not list(root.iter("extraports")), "a state was summarised: keep each under 26 ports"
    return states


def pysock_records(argv: list[str]) -> list[dict]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def pysock_states(argv: list[str]) -> dict[tuple[str, int], str]:
    return {(r["proto"], r["port"]): r["state"] for r in pysock_records(argv)
            if r.get("type") != "summary"}


def pysock_argv(*args: str) -> list[str]:
    return [*PYSOCK, "scan", "--json", "--all", "-n", *args]


def in_host(host, argv: list[str]) -> list[str]:
    return host.argv(*argv) if host is not None else argv


def nmap_argv(kind: str, *args: str) -> list[str]:
    return ["nmap", kind, "-Pn", "-n", "-T4", "-oX", "-", *args]


def diff(ours: dict, theirs: dict) -> str:
    keys = sorted(set(ours) | set(theirs), key=lambda k: (k[1], k[0]))
    rows = [f"{proto}/{port}: pysock {ours.get((proto, port))} nmap {theirs.get((proto, port))}"
            for proto, port in keys if ours.get((proto, port)) != theirs.get((proto, port))]
    return "\n".join(rows)
