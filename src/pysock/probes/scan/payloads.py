"""UDP probe payloads for services that stay silent on an empty datagram.

Everything else gets an empty datagram, as nmap sends."""

from __future__ import annotations

import struct


def _ber(tag: int, body: bytes) -> bytes:
    assert len(body) < 128  # short-form lengths are all these messages need
    return bytes((tag, len(body))) + body


def dns_query() -> bytes:
    """A DNS query for version.bind TXT in class CHAOS: any name server answers
    it, if only to refuse."""
    header = struct.pack("!HHHHHH", 0x7053, 0x0100, 1, 0, 0, 0)  # id, RD, one question
    qname = b"\x07version\x04bind\x00"
    return header + qname + struct.pack("!HH", 16, 3)  # TXT, CH


def ntp_request() -> bytes:
    """An NTPv4 client request (mode 3): 48 bytes, only the first one set."""
    return b"\xe3" + b"\0" * 47


def snmp_get() -> bytes:
    """SNMPv2c get-request for sysDescr.0 with community 'public'."""
    oid = _ber(0x06, bytes((0x2B, 6, 1, 2, 1, 1, 1, 0)))  # 1.3.6.1.2.1.1.1.0
    varbinds = _ber(0x30, _ber(0x30, oid + _ber(0x05, b"")))
    pdu = _ber(0xA0, _ber(0x02, b"\x70\x53") + _ber(0x02, b"\0") + _ber(0x02, b"\0") + varbinds)
    return _ber(0x30, _ber(0x02, b"\x01") + _ber(0x04, b"public") + pdu)


PAYLOADS = {53: dns_query(), 5353: dns_query(), 123: ntp_request(), 161: snmp_get()}


def payload(port: int) -> bytes:
    return PAYLOADS.get(port, b"")
