"""pysock scan must give nmap's verdicts, port by port, on the same target in the
same test: a namespace host with every kind of port (scanlab), and loopback."""

from __future__ import annotations

import socket

import pytest

import scanlab as sl

import netns
from conftest import free_port, need_root, need_tool, wait_listening

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def target(lab):
    need_tool("nmap", "nft")
    client, server = netns.two_hosts(lab)
    sl.serve(server)
    return client, server


def _expected_tcp(states: dict) -> None:
    """Sanity: the lab really has each kind of port (else agreement proves little)."""
    want = {**{p: "open" for p in sl.TCP_OPEN + [sl.TCP_BANNER]},
            **{p: "closed" for p in sl.TCP_CLOSED + sl.TCP_RESET},
            **{p: "filtered" for p in sl.TCP_DROPPED + sl.TCP_PROHIBITED}}
    assert {port: state for (_, port), state in states.items()} == want


@pytest.mark.parametrize("family", [4, 6])
def test_connect_scan_agrees_with_nmap_sT(target, family):
    client, server = target
    addr = server.addr if family == 4 else server.addr6
    ports = sl.ports_arg(sl.TCP_PORTS)
    six = ["-6"] if family == 6 else []
    ours = sl.pysock_states(client.argv(*sl.pysock_argv("-p", ports, *six, addr)))
    theirs = sl.nmap_states(client.argv(*sl.nmap_argv("-sT", *six, "-p", ports, addr)))
    assert ours == theirs, sl.diff(ours, theirs)
    _expected_tcp(ours)


@pytest.mark.parametrize("family", [4, 6])
def test_syn_scan_agrees_with_nmap_sS(target, family):
    client, server = target
    addr = server.addr if family == 4 else server.addr6
    ports = sl.ports_arg(sl.TCP_PORTS)
    six = ["-6"] if family == 6 else []
    ours = sl.pysock_states(client.argv(*sl.pysock_argv("--syn", "-p", ports, *six, addr)))
    theirs = sl.nmap_states(client.argv(*sl.nmap_argv("-sS", *six, "-p", ports, addr)))
    assert ours == theirs, sl.diff(ours, theirs)
    _expected_tcp(ours)


@pytest.mark.parametrize("family", [4, 6])
def test_udp_scan_agrees_with_nmap_sU(target, family):
    client, server = target
    addr = server.addr if family == 4 else server.addr6
    ports = sl.ports_arg(sl.UDP_PORTS)
    six = ["-6"] if family == 6 else []
    ours = sl.pysock_states(client.argv(*sl.pysock_argv("--udp", "-p", ports, *six, addr)))
    theirs = sl.nmap_states(client.argv(*sl.nmap_argv("-sU", *six, "-p", ports, addr)))
    assert ours == theirs, sl.diff(ours, theirs)
    want = {sl.UDP_DNS: "open", sl.UDP_ECHO: "open", **{p: "closed" for p in sl.UDP_CLOSED},
            **{p: "open|filtered" for p in sl.UDP_DROPPED},
            **{p: "filtered" for p in sl.UDP_PROHIBITED}}
    assert {port: state for (_, port), state in ours.items()} == want


def test_tcp_and_udp_in_one_scan(target):
    client, server = target
    spec = f"T:{sl.ports_arg(sl.TCP_PORTS)},U:{sl.ports_arg(sl.UDP_PORTS)}"
    ours = sl.pysock_states(client.argv(*sl.pysock_argv("-p", spec, server.addr)))
    theirs = sl.nmap_states(client.argv(*sl.nmap_argv("-sT", "-sU", "-p", spec, server.addr)))
    assert ours == theirs, sl.diff(ours, theirs)


# ---- loopback ---------------------------------------------------------------------


@pytest.fixture
def loopback_ports(procs):
    """Three listening ports (v4 and v6) and three free ones, outside the ephemeral range."""
    listening = [free_port() for _ in range(3)]
    closed = [free_port() for _ in range(3)]
    servers = []
    for port in listening:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            s = socket.socket(family)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(64)
            servers.append(s)
        wait_listening(port)
    yield listening, closed
    for s in servers:
        s.close()


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("kind", ["-sT", "-sS"])
def test_loopback_agrees_with_nmap(loopback_ports, addr, kind):
    need_tool("nmap")
    if kind == "-sS":
        need_root()
    listening, closed = loopback_ports
    ports = sl.ports_arg(sorted(listening + closed))
    six = ["-6"] if ":" in addr else []
    extra = ["--syn"] if kind == "-sS" else []
    ours = sl.pysock_states(sl.pysock_argv(*extra, "-p", ports, *six, addr))
    theirs = sl.nmap_states(sl.nmap_argv(kind, *six, "-p", ports, addr))
    assert ours == theirs, sl.diff(ours, theirs)
    assert sorted(p for (_, p), s in ours.items() if s == "open") == sorted(listening)


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_loopback_udp_agrees_with_nmap(addr):
    need_tool("nmap")
    need_root()
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as echo:
        echo.bind((addr, free_port()))
        closed = [free_port() for _ in range(3)]
        ports = sl.ports_arg(sorted([echo.getsockname()[1], *closed]))
        six = ["-6"] if family == socket.AF_INET6 else []
        # nmap's empty probe gets no reply from an unanswering socket: open|filtered,
        # the same for pysock; the closed ports answer with ICMP port unreachable
        ours = sl.pysock_states(sl.pysock_argv("--udp", "-p", ports, *six, addr))
        theirs = sl.nmap_states(sl.nmap_argv("-sU", *six, "-p", ports, addr))
    assert ours == theirs, sl.diff(ours, theirs)
    assert sorted(p for (_, p), s in ours.items() if s == "closed") == sorted(closed)
