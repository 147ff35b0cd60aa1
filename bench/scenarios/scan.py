"""Port scans: pysock scan against nmap on the same target, same run.

- all TCP ports of 127.0.0.1: connect scan vs `nmap -sT -T4 -p- -Pn`, and --syn vs
  `nmap -sS -T4 -p- -Pn` (root only);
- all TCP ports of a namespace host with 1000 ports dropped by nftables (root only).

Every run must find exactly the ports that were listening (a fast wrong scan
cannot win). --quick scans a small range instead of all ports."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys

from bench.core import BenchFailure, Contender, Scenario, timed
from bench.tools import PYSOCK, free_port, have, pysock_has, run

LOOPBACK_LISTENERS = 5
LOOPBACK_PORTS = [22, 8080, 33000, 45000, 60999]  # some inside the ephemeral range
DROPPED = range(20001, 21001)  # 1000 ports behind an nftables drop in the namespace host
NS_OPEN = [22, 80, 443, 8080, 20500]  # 20500 listens behind the drop: filtered, not open


def _listening_loopback() -> set[int]:
    """TCP ports listening where a scan of 127.0.0.1 reaches them."""
    found = set()
    for table, any_addr in (("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "0" * 32)):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                addr, port = cols[1].split(":")
                if cols[3] == "0A" and (addr in (any_addr, "0100007F")):
                    found.add(int(port, 16))
    return found


def _nmap_open(stdout: str) -> set[int]:
    ports = set()
    for line in stdout.splitlines():
        if "Ports:" in line:
            for item in line.split("Ports:", 1)[1].split("\t")[0].split(","):
                fields = item.strip().split("/")
                if len(fields) > 1 and fields[1] == "open":
                    ports.add(int(fields[0]))
    return ports


def _pysock_open(stdout: str) -> set[int]:
    return {r["port"] for r in map(json.loads, stdout.splitlines()) if r.get("state") == "open"}


def _contender(tool: str, argv: list[str], parse, expect, peer: bool) -> Contender:
    def go(env) -> float:
        before = expect(env)
        secs, proc = timed(lambda: run([*env["prefix"], *argv], timeout=300,
                                       stdout=subprocess.PIPE))
        if proc.returncode != 0:
            raise BenchFailure(f"exit {proc.returncode}: {proc.stderr[-300:]!r}")
        found = parse(proc.stdout.decode())
        after = expect(env)
        if not (before & after) <= found <= (before | after):
            raise BenchFailure(f"open ports {sorted(found)[:20]} differ from the listening "
                               f"{sorted(before)[:20]}")
        return secs
    return Contender(tool, go, peer=peer)


LISTENER = ("import socket,sys,time\nss=[]\nfor p in sys.argv[1:]:\n"
            " s=socket.socket();s.bind(('127.0.0.1',int(p)));s.listen(128);ss.append(s)\n"
            "print('ready',flush=True)\ntime.sleep(3600)\n")


@contextlib.contextmanager
def _loopback_setup(ports: list[int]):
    """A loopback of our own (a network namespace, as root) with listeners on ports:
    on a shared machine other programs' listeners come and go on the host's loopback
    during a scan, and a run that sees one is rejected, for nmap as for pysock."""
    if os.geteuid() != 0 or not have("ip"):
        yield from _host_loopback(ports)
        return
    ns = f"psl{os.getpid() % 100000}"
    proc = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=30)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=30)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER,
                                 *map(str, ports)], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        if proc.stdout.readline().strip() != "ready":
            raise BenchFailure("loopback listeners did not start")
        yield {"prefix": ["ip", "netns", "exec", ns], "open": set(ports)}
    finally:
        if proc is not None:
            os.killpg(proc.pid, 9)
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _host_loopback(ports: list[int]):
    """Without root: listeners on this machine's loopback, the open set read from /proc
    before and after each run."""
    socks = []
    for port in ports:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            sock = socket.socket()
            sock.bind(("127.0.0.1", free_port()))
        sock.listen(128)
        socks.append(sock)
    try:
        yield {"prefix": [], "open": None}
    finally:
        for sock in socks:
            sock.close()


def _loopback(quick: bool, syn: bool):
    spec = "1-3000" if quick else "-"
    ports = list(range(2950, 2950 + LOOPBACK_LISTENERS)) if quick else LOOPBACK_PORTS

    def expect(env):
        if env["open"] is not None:
            return env["open"]
        found = _listening_loopback()
        return {p for p in found if p <= 3000} if quick else found

    kind = "--syn" if syn else "--connect"
    pysock_argv = [PYSOCK, "scan", "--json", "--open", "-n", "-p", spec, "127.0.0.1"]
    if syn:
        pysock_argv.insert(2, "--syn")
    nmap_argv = ["nmap", "-sS" if syn else "-sT", "-T4", "-Pn", "-n", "-oG", "-", "-p", spec,
                 "127.0.0.1"]
    contenders = [_contender(f"pysock scan {kind}", pysock_argv, _pysock_open, expect, False)]
    if have("nmap"):
        contenders.append(_contender(f"nmap {nmap_argv[1]} -T4", nmap_argv, _nmap_open, expect, True))
    return contenders, lambda: _loopback_setup(ports)


# ---- the namespace host -------------------------------------------------------------


@contextlib.contextmanager
def _namespace_setup():
    tag = f"psb{os.getpid() % 100000}"
    client, server = f"{tag}c", f"{tag}s"
    net = 200 + os.getpid() % 50
    server_proc = None

    def sh(*argv, input=None):
        subprocess.run(argv, check=True, capture_output=True, input=input, text=True, timeout=30)
    try:
        for ns in (client, server):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"{tag}a", "netns", client, "type", "veth", "peer", "name",
           f"{tag}b", "netns", server)
        for ns, dev, last in ((client, f"{tag}a", 1), (server, f"{tag}b", 2)):
            sh("ip", "-n", ns, "addr", "add", f"10.232.{net}.{last}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "netns", "exec", server, "nft", "-f", "-", input=(
            "table inet bench {\n chain in {\n  type filter hook input priority 0;\n"
            f"  tcp dport {DROPPED.start}-{DROPPED.stop - 1} drop\n }}\n}}\n"))
        code = ("import socket,sys,time\nss=[]\nfor p in sys.argv[1:]:\n"
                " s=socket.socket();s.bind(('0.0.0.0',int(p)));s.listen(128);ss.append(s)\n"
                "print('ready',flush=True)\ntime.sleep(3600)\n")
        server_proc = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, "-c", code,
                                        *map(str, NS_OPEN)], stdout=subprocess.PIPE, text=True,
                                       start_new_session=True)
        if server_proc.stdout.readline().strip() != "ready":
            raise BenchFailure("namespace listeners did not start")
        yield {"client": client, "addr": f"10.232.{net}.2"}
    finally:
        if server_proc is not None:
            os.killpg(server_proc.pid, 9)
            server_proc.wait()
        for ns in (client, server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _namespace(quick: bool, syn: bool):
    spec = f"1-{DROPPED.start + 99}" if quick else "-"
    expected = {p for p in NS_OPEN if p not in DROPPED}

    contenders = []
    kind = "--syn" if syn else "--connect"
    pysock_argv = [PYSOCK, "scan", "--json", "--open", "-n", "-p", spec]
    if syn:
        pysock_argv.insert(2, "--syn")
    nmap_argv = ["nmap", "-sS" if syn else "-sT", "-T4", "-Pn", "-n", "-oG", "-", "-p", spec]
    for tool, argv, parse, peer in ((f"pysock scan {kind}", pysock_argv, _pysock_open, False),
                                    (f"nmap {nmap_argv[1]} -T4", nmap_argv, _nmap_open, True)):
        if peer and not have("nmap"):
            continue
        contenders.append(_ns_contender(tool, argv, parse, expected, peer))
    return contenders


def _ns_contender(tool, argv, parse, expected, peer) -> Contender:
    def go(env) -> float:
        full = ["ip", "netns", "exec", env["client"], *argv, env["addr"]]
        secs, proc = timed(lambda: run(full, timeout=600, stdout=subprocess.PIPE))
        if proc.returncode != 0:
            raise BenchFailure(f"exit {proc.returncode}: {proc.stderr[-300:]!r}")
        found = parse(proc.stdout.decode())
        if found != expected:
            raise BenchFailure(f"open ports {sorted(found)} != {sorted(expected)}")
        return secs
    return Contender(tool, go, peer=peer)


# ---- a /24 with a handful of hosts up --------------------------------------------------

SWEEP_UP = [2, 10, 20, 30, 40]  # the peer namespace answers on these; the rest is absent


@contextlib.contextmanager
def _sweep_setup():
    """A client namespace on a /24 whose peer answers on SWEEP_UP (and the client on .1)."""
    tag = f"psw{os.getpid() % 100000}"
    client, peer = f"{tag}c", f"{tag}p"
    net = 150 + os.getpid() % 50

    def ip(*argv):
        subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)
    try:
        for ns in (client, peer):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", f"{tag}a", "netns", client, "type", "veth", "peer", "name", f"{tag}b",
           "netns", peer)
        ip("-n", client, "addr", "add", f"10.233.{net}.1/24", "dev", f"{tag}a")
        for last in SWEEP_UP:
            ip("-n", peer, "addr", "add", f"10.233.{net}.{last}/24", "dev", f"{tag}b")
        for ns, dev in ((client, f"{tag}a"), (peer, f"{tag}b")):
            ip("-n", ns, "link", "set", dev, "up")
        up = {f"10.233.{net}.{last}" for last in [1, *SWEEP_UP]}
        yield {"client": client, "block": f"10.233.{net}.0/24", "up": up}
    finally:
        for ns in (client, peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _nmap_up(stdout: str) -> set[str]:
    return {line.split()[1] for line in stdout.splitlines()
            if line.startswith("Host:") and "Status: Up" in line}


def _pysock_up(stdout: str) -> set[str]:
    return {r["host"] for r in map(json.loads, stdout.splitlines())
            if r.get("type") == "summary" and r["up"]}


def _nmap_scanned(stdout: str) -> set[str]:
    return {line.split()[1] for line in stdout.splitlines() if "Ports:" in line}


def _pysock_scanned(stdout: str) -> set[str]:
    return {r["host"] for r in map(json.loads, stdout.splitlines()) if "port" in r}


def _sweep_contender(tool, argv, found, want, peer) -> Contender:
    """Run argv on the block from the client namespace; `found` must equal want(env)."""
    def go(env) -> float:
        full = ["ip", "netns", "exec", env["client"], *argv, env["block"]]
        secs, proc = timed(lambda: run(full, timeout=120, stdout=subprocess.PIPE))
        if proc.returncode != 0:
            raise BenchFailure(f"exit {proc.returncode}: {proc.stderr[-300:]!r}")
        got, expected = found(proc.stdout.decode()), want(env)
        if got != expected:
            raise BenchFailure(f"hosts {sorted(got)[:8]} != {sorted(expected)[:8]}")
        return secs
    return Contender(tool, go, peer=peer)


def _sweeps(rounds: int):
    up = lambda env: env["up"]  # noqa: E731
    every = lambda env: {f"{env['block'][:-4]}{i}" for i in range(1, 255)}  # noqa: E731
    # nmap -sT lists the network and broadcast addresses too
    all_256 = lambda env: {f"{env['block'][:-4]}{i}" for i in range(256)}  # noqa: E731
    discovery = [
        _sweep_contender("pysock scan -p 80 (up-check, then 80)",
                         [PYSOCK, "scan", "--json", "-n", "-p", "80"], _pysock_up, up, False),
        _sweep_contender("nmap -sn", ["nmap", "-sn", "-n", "-oG", "-"], _nmap_up, up, True)]
    yield Scenario("scan: host discovery, a /24 in a namespace, 6 up", "s", "lower", discovery,
                   setup=_sweep_setup, rounds=rounds,
                   note="pysock's up-check (ICMP echo; ARP settles absent on-link hosts; TCP "
                        "80/443 for the rest) and a scan of port 80 on the hosts found, against "
                        "nmap -sn alone; both must find exactly the 6 hosts that are up.")
    ports = ["-p", "22,80,443"]
    no_check = [
        _sweep_contender("pysock scan -Pn", [PYSOCK, "scan", "--json", "-n", "-Pn", *ports],
                         _pysock_scanned, every, False),
        _sweep_contender("pysock scan --syn -Pn", [PYSOCK, "scan", "--syn", "--json", "-n",
                                                   "-Pn", *ports], _pysock_scanned, every, False),
        _sweep_contender("nmap -Pn -T4 (-sS)", ["nmap", "-Pn", "-T4", "-n", "-oG", "-", *ports],
                         _nmap_scanned, up, True),
        _sweep_contender("nmap -sT -Pn -T4", ["nmap", "-sT", "-Pn", "-T4", "-n", "-oG", "-", *ports],
                         _nmap_scanned, all_256, True)]
    yield Scenario("scan: -Pn, a /24 in a namespace, 3 ports", "s", "lower", no_check,
                   setup=_sweep_setup, rounds=rounds,
                   note="Every host scanned, up or not (nmap's SYN scan still asks ARP on the "
                        "link and reports only the hosts that answered it).")


def scenarios(quick: bool):
    if not pysock_has("scan"):
        return
    rounds = 2 if quick else 5
    size = "TCP 1-3000" if quick else "all TCP ports"
    contenders, setup = _loopback(quick, syn=False)
    yield Scenario(f"scan: connect, 127.0.0.1, {size}", "s", "lower", contenders, setup=setup,
                   rounds=rounds, note="pysock scan (connect loop, both cores) vs nmap -sT -T4 -Pn, in a "
                   "network namespace of their own (as root) so that no other program's "
                   "listener comes and goes; every run must report exactly the listening ports.")
    root = os.geteuid() == 0
    if root:
        contenders, setup = _loopback(quick, syn=True)
        yield Scenario(f"scan: SYN, 127.0.0.1, {size}", "s", "lower", contenders, setup=setup,
                       rounds=rounds, note="pysock scan --syn (a raw socket and a patched template per "
                       "process, both cores sharing the ports in chunks) vs nmap -sS -T4 -Pn.")
    if root and have("ip", "nmap"):
        yield from _sweeps(rounds)
    if root and have("ip", "nft"):
        ns_size = f"TCP 1-{DROPPED.start + 99}, 100 dropped" if quick else "all TCP ports, 1000 dropped"
        for syn in (False, True):
            yield Scenario(
                f"scan: {'SYN' if syn else 'connect'}, namespace host, {ns_size}", "s", "lower",
                _namespace(quick, syn), setup=_namespace_setup, rounds=rounds,
                note="A host in its own network namespace behind a veth, nftables dropping "
                     f"ports {DROPPED.start}-{DROPPED.stop - 1}; open set must be {NS_OPEN[:4]}.")
