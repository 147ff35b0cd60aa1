"""inspect --counters against nstat: the same deltas for provoked trouble in a namespace."""

from __future__ import annotations

import concurrent.futures
import json
import os
import select
import subprocess
import sys
import textwrap
import time

from conftest import PYSOCK, need_tool, run_pysock

# Run inside the namespace: each condition the flagged counters explain, then every
# socket closed with a reset (SO_LINGER 0) so that nothing is still in flight after.
PROVOKE = textwrap.dedent("""
    import socket, struct, subprocess, time
    LINGER0 = struct.pack("ii", 1, 0)

    def drop(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.close()

    # a listener with backlog 1 that never accepts, flooded with connects
    full = socket.create_server(("127.0.0.1", 5001), backlog=1)
    clients = []
    for _ in range(8):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", 5001))
        clients.append(c)
    time.sleep(1.5)  # SYNs dropped and retransmitted once
    for c in clients:
        drop(c)
    drop(full)

    # a UDP receiver with a tiny buffer, flooded
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    rx.bind(("127.0.0.1", 5002))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(200):
        tx.sendto(b"x" * 1000, ("127.0.0.1", 5002))
    # a port with nothing listening, UDP and TCP
    for _ in range(5):
        tx.sendto(b"hello", ("127.0.0.1", 5003))
    try:
        socket.create_connection(("127.0.0.1", 5003), timeout=2)
    except OSError:
        pass
    rx.close(); tx.close()

    # an nftables drop that forces retransmissions on an established connection
    server = socket.create_server(("127.0.0.1", 5004))
    client = socket.create_connection(("127.0.0.1", 5004))
    accepted, _ = server.accept()
    subprocess.run(["nft", "-f", "-"], check=True, input=b'''
        table inet pysocktest {
            chain out {
                type filter hook output priority 0;
                tcp dport 5004 drop
            }
        }''')
    client.send(b"y" * 1000)
    time.sleep(1.5)  # RTO 200 ms, doubling: a few retransmissions
    drop(client)
    subprocess.run(["nft", "delete", "table", "inet", "pysocktest"], check=True)
    drop(accepted)
    drop(server)
    time.sleep(0.3)
""")

PROVOKED = ("TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPSynRetrans",
            "UdpRcvbufErrors", "UdpNoPorts", "TcpOutRsts", "TcpAttemptFails",
            "TcpRetransSegs", "TcpExtTCPTimeouts", "IcmpOutDestUnreachs")


def nstat(host, history: str, *args: str) -> dict[str, int]:
    out = subprocess.run(host.argv("nstat", *args), capture_output=True, text=True, timeout=20,
                         env={**os.environ, "NSTAT_HISTORY": history}, check=True).stdout
    return {w[0]: int(w[1]) for w in (line.split() for line in out.splitlines()[1:]) if w}


def test_deltas_equal_nstats_for_provoked_trouble(lab, tmp_path):
    need_tool("nstat", "nft")
    host = lab.host("n")
    history = str(tmp_path / "nstat.history")
    proc = host.popen(*PYSOCK, "inspect", "--counters", "-a", "--interval", "10", "--count", "2",
                      "--json")
    try:
        # the first look (absolute values) is printed once pysock has read the counters
        assert select.select([proc.stdout], [], [], 20)[0], "pysock printed nothing"
        first = [json.loads(proc.stdout.readline())]
        rest = concurrent.futures.ThreadPoolExecutor(1).submit(proc.stdout.read)
        nstat(host, history, "-n")
        started = time.monotonic()
        host.run(sys.executable, "-c", PROVOKE, timeout=30)
        theirs = nstat(host, history, "-s")
        assert time.monotonic() - started < 8, "provoking took too long for the interval"
        out = rest.result(timeout=30)
        err = proc.stderr.read()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err
    records = first + [json.loads(line) for line in out.decode().splitlines()]
    deltas = {r["name"]: r for r in records if "delta" in r}
    ours = {name: r["delta"] for name, r in deltas.items()}
    for name in PROVOKED:
        assert theirs.get(name, 0) > 0, f"nstat saw no {name}: {theirs}"
    assert ours == theirs  # every counter that moved, and by as much, as nstat says
    for name in PROVOKED:
        assert deltas[name]["flag"] is True  # rising trouble
        assert abs(deltas[name]["per_s"] - ours[name] / 10) <= ours[name] / 10 * 0.2 + 0.1
    assert deltas["TcpInSegs"]["flag"] is False  # traffic, not trouble


def test_one_look_flags_what_is_non_zero():
    out = run_pysock("inspect", "--counters", "--json")
    assert out.returncode == 0, out.stderr
    records = {r["name"]: r for r in map(json.loads, out.stdout.decode().splitlines())}
    assert "TcpExtListenOverflows" in records and "TcpCurrEstab" not in records
    for r in records.values():
        assert "delta" not in r
        assert r["flag"] == (r["value"] > 0 and r["name"] not in
                             ("TcpActiveOpens", "TcpPassiveOpens", "TcpInSegs", "TcpOutSegs",
                              "UdpInDatagrams", "UdpOutDatagrams", "IpInReceives",
                              "IpOutRequests"))
    every = run_pysock("inspect", "--counters", "-a", "--json").stdout.decode().splitlines()
    assert len(every) > len(records) + 100  # -a: every counter nstat -a shows


def test_counters_refuse_socket_selections_and_the_socket_list_refuses_interval():
    for args, words in ((["--counters", "-t"], "--tcp selects sockets"),
                        (["--counters", "--sport", "22"], "--sport selects sockets"),
                        (["--interval", "1"], "--interval goes with --counters"),
                        (["--counters", "--count", "2"], "--count goes with --interval"),
                        (["--counters", "--interval", "1", "--watch", "1"], "give one")):
        out = run_pysock("inspect", *args)
        assert out.returncode == 2, args
        assert words in out.stderr.decode() and len(out.stderr.splitlines()) == 1
