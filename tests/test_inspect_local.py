"""Netlink (ss -A netlink) and packet (ss -0) sockets, with their owners."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

import netns as _netns
from conftest import PYSOCK, need_root, need_tool

HOLDER = textwrap.dedent("""
    import json, os, socket, sys
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    nl.bind((0, 0))
    pk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    pk.bind(("lo", 0))
    dg = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    print(json.dumps({"pid": os.getpid(), "portid": nl.getsockname()[0],
                      "netlink": os.fstat(nl.fileno()).st_ino,
                      "packet": os.fstat(pk.fileno()).st_ino,
                      "packet_dgram": os.fstat(dg.fileno()).st_ino}), flush=True)
    sys.stdin.read()
""")


@pytest.fixture(scope="module")
def held():
    need_root()
    need_tool("ip", "ss")
    lab = _netns.Lab()
    proc = None
    try:
        host = lab.host("l")
        proc = host.popen(sys.executable, "-c", HOLDER, stdin=subprocess.PIPE)
        info = json.loads(proc.stdout.readline())
        yield host, info
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        lab.close()


def records(host, *args) -> dict[int, dict]:
    out = host.run(*PYSOCK, "inspect", *args, "--json").stdout
    return {r["inode"]: r for r in map(json.loads, out.splitlines())}


def test_netlink_sockets_with_owners_as_ss_lists_them(held):
    host, info = held
    mine = records(host, "-A", "netlink", "-a")
    ours = mine[info["netlink"]]
    assert (ours["proto"], ours["local_addr"], ours["local_port"], ours["pid"]) == \
        ("netlink", "rtnl", info["portid"], info["pid"])
    ss = host.run("ss", "-H", "-A", "netlink", "-a").stdout.splitlines()
    theirs = Counter(line.split()[3].split(":")[0] for line in ss)
    counted = Counter(r["local_addr"] for r in mine.values())
    # ss lists its own sock_diag socket; pysock's may not be bound yet when it reads
    assert counted["tcpdiag"] in (theirs["tcpdiag"] - 1, theirs["tcpdiag"])
    del counted["tcpdiag"], theirs["tcpdiag"]
    assert counted == theirs
    assert set(records(host, "-f", "netlink", "-a")) == set(mine)
    plain = host.run(*PYSOCK, "inspect", "--netlink", "-a", "-n").stdout
    assert f"nl\tUNCONN\t0\t0\trtnl:{info['portid']}\t*\tpython" in plain


def test_packet_sockets_with_owners(held):
    host, info = held
    mine = records(host, "-0", "-a")
    raw, dgram = mine[info["packet"]], mine[info["packet_dgram"]]
    assert (raw["proto"], raw["type"], raw["iface"], raw["local_addr"], raw["pid"]) == \
        ("packet", "raw", "lo", "all", info["pid"])
    assert (dgram["type"], dgram["iface"], dgram["local_addr"]) == ("dgram", "*", "ip")
    table = host.run("cat", "/proc/net/packet").stdout.splitlines()[1:]
    assert sorted(int(line.split()[8]) for line in table) == sorted(mine)
    plain = host.run(*PYSOCK, "inspect", "--packet", "-a").stdout
    assert "p_raw\tUNCONN\t0\t0\tall:lo\t*\tpython" in plain
    assert records(host, "-A", "packet_raw,packet_dgram", "-a") == mine


def test_kinds_without_ports_refuse_expressions_and_kill(held):
    host, _ = held
    for args, words in ((["-A", "netlink", "sport", "=", ":1"], "not netlink sockets"),
                        (["-0", "-K"], "cannot destroy packet sockets"),
                        (["-A", "dccp"], "no 'dccp' socket table"),
                        (["-f", "inet", "-6"], "different families")):
        out = host.run(*PYSOCK, "inspect", *args, check=False)
        assert out.returncode == 2 and words in out.stderr, (args, out.stderr)
