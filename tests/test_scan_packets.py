"""The SYN template and UDP payloads, checked byte for byte against scapy."""

from __future__ import annotations

import socket

import pytest

from pysock.probes.scan import packets, payloads, ports


@pytest.mark.parametrize("family, src, dst", [
    (socket.AF_INET, "10.1.2.3", "192.0.2.77"),
    (socket.AF_INET6, "fd00::1", "2001:db8::abcd"),
])
def test_syn_template_patched_per_port_equals_scapy(family, src, dst):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    template = packets.SynTemplate(family, src, dst, 40123, 0xDEADBEEF)
    layer, header = (IP, 20) if family == socket.AF_INET else (IPv6, 40)
    for port in (1, 2, 80, 443, 8080, 32768, 65534, 65535):
        wire = bytes(layer(src=src, dst=dst) / TCP(sport=40123, dport=port, seq=0xDEADBEEF, flags="S",
                                                   window=1024, options=[("MSS", 1460)]))
        assert template.for_port(port) == wire[header:], port


def test_checksum_of_a_valid_segment_is_zero():
    template = packets.SynTemplate(socket.AF_INET, "127.0.0.1", "127.0.0.1", 5555, 1)
    segment = template.for_port(22)
    pseudo = packets.pseudo_header(socket.AF_INET, "127.0.0.1", "127.0.0.1", len(segment))
    assert packets.checksum(pseudo + segment) == 0


def test_icmp_error_quoting_our_syn_is_recognised():
    from scapy.layers.inet import ICMP, IP, TCP
    from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6

    quoted = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=3001, seq=99, flags="S")
    error = bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=3, code=13) / bytes(quoted))
    assert packets.icmp_error(error, socket.AF_INET) == ("10.0.0.2", 4000, 3001, 99, 13)
    quoted6 = IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=4000, dport=3001, seq=99, flags="S")
    error6 = bytes(ICMPv6DestUnreach(code=1) / bytes(quoted6))
    assert packets.icmp_error(error6, socket.AF_INET6) == ("fd00::2", 4000, 3001, 99, 1)
    echo_reply = bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0))
    assert packets.icmp_error(echo_reply, socket.AF_INET) is None


def test_udp_payloads_are_well_formed_requests():
    from scapy.layers.dns import DNS
    from scapy.layers.ntp import NTP
    from scapy.layers.snmp import SNMP

    dns = DNS(payloads.payload(53))
    assert dns.qr == 0 and dns.qd[0].qname == b"version.bind." and dns.qd[0].qclass == 3
    assert NTP(payloads.payload(123)).mode == 3
    snmp = SNMP(payloads.payload(161))
    assert snmp.community.val == b"public"
    assert snmp.PDU.varbindlist[0].oid.val == "1.3.6.1.2.1.1.1.0"
    assert payloads.payload(9999) == b""


def test_ranked_lists_are_whole_and_unique():
    for proto in ("tcp", "udp"):
        ranked = ports.ranked(proto)
        assert len(ranked) == len(set(ranked)) > 1000
        assert all(1 <= p <= 65535 for p in ranked)
    assert ports.top("tcp", 3) == [80, 23, 443]
    assert len(ports.top("tcp", 65535)) == 65535  # past the ranking: the rest in order


def test_port_selection():
    assert ports.select(["tcp"], "22,80", None) == {"tcp": [22, 80]}
    assert ports.select(["tcp", "udp"], "53", None) == {"tcp": [53], "udp": [53]}
    assert ports.select(["tcp"], "U:53,T:22-23", None) == {"tcp": [22, 23], "udp": [53]}
    assert ports.select(["udp"], None, 2) == {"udp": sorted(ports.top("udp", 2))}
    assert len(ports.select(["tcp"], "-", None)["tcp"]) == 65535
