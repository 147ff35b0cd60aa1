"""pysock scan must give nmap's verdicts, port by port, on the same target in the
same test: a namespace host with every kind of port (scanlab), seen from a second
host over a veth (IPv4 and IPv6) and from itself over loopback (127.0.0.1, ::1)."""

from __future__ import annotations

import pytest

import scanlab as sl

import netns
from conftest import need_tool

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


PLACES = ["remote4", "remote6", "127.0.0.1", "::1"]


def _place(target, place: str):
    """(host that scans, address it scans, -6 or nothing)."""
    client, server = target
    if place == "remote4":
        return client, server.addr, []
    if place == "remote6":
        return client, server.addr6, ["-6"]
    return server, place, ["-6"] if ":" in place else []


@pytest.mark.parametrize("place", PLACES)
def test_connect_scan_agrees_with_nmap_sT(target, place):
    scanner, addr, six = _place(target, place)
    ports = sl.ports_arg(sl.TCP_PORTS)
    ours = sl.pysock_states(scanner.argv(*sl.pysock_argv("-p", ports, *six, addr)))
    theirs = sl.nmap_states(scanner.argv(*sl.nmap_argv("-sT", *six, "-p", ports, addr)))
    assert ours == theirs, sl.diff(ours, theirs)
    _expected_tcp(ours)


@pytest.mark.parametrize("place", PLACES)
def test_syn_scan_agrees_with_nmap_sS(target, place):
    scanner, addr, six = _place(target, place)
    ports = sl.ports_arg(sl.TCP_PORTS)
    ours = sl.pysock_states(scanner.argv(*sl.pysock_argv("--syn", "-p", ports, *six, addr)))
    theirs = sl.nmap_states(scanner.argv(*sl.nmap_argv("-sS", *six, "-p", ports, addr)))
    assert ours == theirs, sl.diff(ours, theirs)
    _expected_tcp(ours)


@pytest.mark.parametrize("place", PLACES)
def test_udp_scan_agrees_with_nmap_sU(target, place):
    scanner, addr, six = _place(target, place)
    ports = sl.ports_arg(sl.UDP_PORTS)
    ours = sl.pysock_states(scanner.argv(*sl.pysock_argv("--udp", "-p", ports, *six, addr)))
    theirs = sl.nmap_states(scanner.argv(*sl.nmap_argv("-sU", *six, "-p", ports, addr)))
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
