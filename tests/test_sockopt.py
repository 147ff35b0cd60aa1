import socket
import struct

import pytest

from pysock.errors import UsageError
from pysock.net.sockopt import apply_all, parse_sockopt


def opts(*texts):
    return [parse_sockopt(t) for t in texts]


def test_tcp_options_reach_the_socket():
    with socket.socket() as s:
        apply_all(s, opts("nodelay", "keepalive=30:5:4", "sndbuf=64K", "reuseport", "ttl=7",
                          "tos=16", "linger=0", "mark=5", "user_timeout=1500"))
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 64 * 1024
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 7
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 16
        assert struct.unpack("ii", s.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)) == (1, 0)
        assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 1500


def test_ttl_on_ipv6_sets_hops():
    with socket.socket(socket.AF_INET6) as s:
        apply_all(s, opts("ttl=9"))
        assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS) == 9


@pytest.mark.parametrize("text,words", [("nosuch", "unknown socket option"),
                                        ("nodelay=1", "takes no value"),
                                        ("rcvbuf", "needs a value"),
                                        ("rcvbuf=lots", "not a number"),
                                        ("ttl=300", "out of range"),
                                        ("keepalive=1:2", "IDLE:INTVL:CNT"),
                                        ("bindtodevice=", "empty")])
def test_bad_sockopts_are_usage_errors(text, words):
    with pytest.raises(UsageError, match=words):
        parse_sockopt(text)


def test_bindtodevice_to_missing_interface_is_a_clear_failure():
    from pysock.errors import PysockError
    with socket.socket() as s, pytest.raises(PysockError, match="bindtodevice"):
        apply_all(s, opts("bindtodevice=nosuchif0"))
