import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysock.errors import ExitStatus, NetworkError, PysockError, UsageError
from pysock.net import address as a


@pytest.mark.parametrize("text,port", [("80", 80), ("1", 1), ("65535", 65535), ("http", 80),
                                       ("ssh", 22), (" 443 ", 443)])
def test_parse_port_accepts(text, port):
    assert a.parse_port(text) == port


@pytest.mark.parametrize("text", ["0", "70000", "65536", "abc", "", "-1", "nosuchservice"])
def test_parse_port_rejects_with_usage_error(text):
    with pytest.raises(UsageError) as exc:
        a.parse_port(text)
    assert exc.value.status == ExitStatus.USAGE


def test_port_zero_only_where_allowed():
    assert a.parse_port("0", allow_zero=True) == 0


def test_port_list():
    assert a.parse_port_list("22,80,8000-8003") == [22, 80, 8000, 8001, 8002, 8003]
    assert a.parse_port_list("80,22,80") == [22, 80]
    assert a.parse_port_list("-3") == [1, 2, 3]
    assert a.parse_port_list("65534-") == [65534, 65535]
    assert len(a.parse_port_list("-")) == 65535
    assert a.parse_port_list("ssh,http") == [22, 80]


@pytest.mark.parametrize("text,words", [("5-1", "backwards"), ("0", "out of range"),
                                        ("70000", "out of range"), ("1,,2", "empty"),
                                        ("80-70000", "out of range")])
def test_port_list_errors_say_what(text, words):
    with pytest.raises(UsageError, match=words):
        a.parse_port_list(text)


def test_port_spec_per_protocol():
    assert a.parse_port_spec("U:53,T:80,443") == {"udp": [53], "tcp": [80, 443]}
    assert a.parse_port_spec("22") == {"tcp": [22]}
    with pytest.raises(UsageError):
        a.parse_port_spec("X:5")


@pytest.mark.parametrize("args,host,port", [
    (("example.org", "80"), "example.org", 80),
    (("example.org:80",), "example.org", 80),
    (("[2001:db8::1]:443",), "2001:db8::1", 443),
    (("2001:db8::1", "443"), "2001:db8::1", 443),
    (("[::1]", "22"), "::1", 22),
    (("127.0.0.1", "http"), "127.0.0.1", 80),
])
def test_host_port_forms(args, host, port):
    assert a.host_port(args) == a.HostPort(host, port)


@pytest.mark.parametrize("args", [("256.1.1.1", "80"), ("[::1", "80"), ("[::1:80",),
                                  ("::1:80",), ("host", "0"), ("host", "70000"),
                                  ("bad host", "80"), ("1.2.3", "x"), ("a", "b", "c")])
def test_host_port_rejects(args):
    with pytest.raises(UsageError):
        a.host_port(args)


def test_bind_place():
    assert a.bind_place(["8080"]) == (None, 8080)
    assert a.bind_place(["0"]) == (None, 0)
    assert a.bind_place(["127.0.0.1", "8080"]) == ("127.0.0.1", 8080)
    assert a.bind_place(["[::1]:0"]) == ("::1", 0)
    assert a.bind_place(["127.0.0.1:9"]) == ("127.0.0.1", 9)


def test_unix_paths():
    assert a.parse_unix("/run/x.sock") == a.UnixAddress("/run/x.sock", False)
    abstract = a.parse_unix("@pysock-test")
    assert abstract.abstract and abstract.sockaddr == b"\0pysock-test"
    for bad in ("", "@", "/x" * 60):
        with pytest.raises(UsageError):
            a.parse_unix(bad)


def test_long_unix_path_names_the_limit():
    with pytest.raises(UsageError, match="107"):
        a.parse_unix("/" + "x" * 120)


def test_cidr_targets():
    assert a.parse_targets("10.0.0.0/30") == ["10.0.0.1", "10.0.0.2"]
    assert a.parse_targets("10.0.0.5/32") == ["10.0.0.5"]
    assert a.parse_targets("192.0.2.0/31") == ["192.0.2.0", "192.0.2.1"]
    assert len(a.parse_targets("fd00::/120")) == 255
    with pytest.raises(UsageError, match="limit"):
        a.parse_targets("10.0.0.0/8")
    with pytest.raises(UsageError):
        a.parse_targets("10.0.0.0/33")


def test_resolve_numeric_and_families():
    [v4] = a.resolve("127.0.0.1", 80, numeric=True)
    assert v4.family == socket.AF_INET and v4.sockaddr[:2] == ("127.0.0.1", 80)
    [v6] = a.resolve("::1", 80, family=6)
    assert v6.family == socket.AF_INET6 and str(v6) == "[::1]:80"
    with pytest.raises(UsageError, match="-n"):
        a.resolve("localhost", 80, numeric=True)
    with pytest.raises(PysockError):
        a.resolve("127.0.0.1", 80, family=6)


def test_unresolvable_name_is_one_clear_line():
    # .invalid is reserved (RFC 2606) and /etc/hosts-only resolution is enough to fail it;
    # the test does not depend on a DNS server answering.
    with pytest.raises(NetworkError, match="could not resolve host 'no-such-host.invalid'"):
        a.resolve("no-such-host.invalid", 80)


@given(st.text(max_size=40))
def test_port_parser_never_raises_anything_else(text):
    try:
        port = a.parse_port(text)
    except PysockError:
        return
    assert 1 <= port <= 65535


@given(st.text(alphabet="0123456789,-: abcTU", max_size=30))
def test_port_list_parser_never_raises_anything_else(text):
    try:
        ports = a.parse_port_list(text)
    except PysockError:
        return
    assert all(1 <= p <= 65535 for p in ports)


@given(st.text(max_size=60))
def test_host_port_parser_never_raises_anything_else(text):
    try:
        a.split_host_port(text)
        a.check_host(text)
    except PysockError:
        pass


@given(st.text(max_size=50))
def test_target_parser_never_raises_anything_else(text):
    try:
        a.parse_targets(text, max_hosts=256)
    except PysockError:
        pass


@given(st.text(max_size=130))
def test_unix_parser_never_raises_anything_else(text):
    try:
        a.parse_unix(text)
    except PysockError:
        pass
