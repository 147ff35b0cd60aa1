"""ss's filter language: pysock selects the same sockets as ss for the same expression."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap

import pytest

from pysock.errors import UsageError
from pysock.inventory import sockdiag, ssfilter
from pysock.inventory.filter import Filter, Selection

import netns as _netns
from conftest import PYSOCK, need_root, need_tool

# Sockets on several addresses of the namespace's loopback, held until stdin closes.
HOLDER = textwrap.dedent("""
    import socket, sys
    held = []

    def listen(family, addr, port, v6only=None):
        s = socket.socket(family, socket.SOCK_STREAM)
        if v6only is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        s.bind((addr, port))
        s.listen(16)
        held.append(s)
        return s

    def connect(listener, family, addr, port, source=None):
        c = socket.socket(family, socket.SOCK_STREAM)
        if source:
            c.bind(source)
        c.connect((addr, port))
        held.append(c)
        held.append(listener.accept()[0])

    v4, v6 = socket.AF_INET, socket.AF_INET6
    https = listen(v4, "0.0.0.0", 443)
    listen(v6, "::", 443, v6only=1)
    web = listen(v4, "127.0.0.1", 80)
    ssh = listen(v4, "10.1.2.3", 22)
    alt = listen(v6, "::1", 8080)
    listen(v4, "192.168.5.1", 5000)
    ssh6 = listen(v6, "fd00::5", 22)
    connect(web, v4, "127.0.0.1", 80)
    connect(web, v4, "127.0.0.1", 80)
    connect(ssh, v4, "10.1.2.3", 22)
    connect(https, v4, "10.1.2.3", 443, ("192.168.5.1", 2000))
    connect(https, v6, "::ffff:10.1.2.3", 443)
    connect(alt, v6, "::1", 8080)
    connect(ssh6, v6, "fd00::5", 22, ("fd00::5", 3000))
    for family, addr, port in ((v4, "0.0.0.0", 53), (v6, "::1", 5353)):
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.bind((addr, port))
        held.append(u)
    u = socket.socket(v4, socket.SOCK_DGRAM)
    u.connect(("127.0.0.1", 53))
    held.append(u)
    print("ready", flush=True)
    sys.stdin.read()
""")

EXPRESSIONS = [
    "sport = :443",
    "sport == :https",
    "dport = :80",
    "dport != :22",
    "sport >= :1024",
    "sport > :1024",
    "sport < :1024",
    "dport <= :443",
    "dst 10.0.0.0/8",
    "src 10.1.2.3",
    "src [::1]",
    "dst [::1]:8080",
    "src [fd00::/64]",
    "src *:22",
    "src 127.0.0.1:80",
    "( dport = :80 or dport = :443 )",
    "not dst 127.0.0.0/8",
    "sport = :22 and src 10.0.0.0/8",
    "state established",
    "state established dport = :443",
    "exclude listening",
    "src 192.168.5.1 or dst 192.168.5.1",
    "sport = :2000 && dst 10.1.2.3:443",
    "dst 10.1.2.3",
    "not sport = :443 and not sport = :80 || dport = :80",
    "dport gt :1024",
    "sport eq :53",
    "! ( sport = :22 | sport = :443 ) dport = :0",
    "state connected ( src [::1] or src 127.0.0.1 )",
]


@pytest.fixture(scope="module")
def host():
    need_root()
    need_tool("ip", "ss")
    lab = _netns.Lab()
    proc = None
    try:
        h = lab.host("f")
        for addr in ("10.1.2.3/8", "192.168.5.1/24"):
            h.run("ip", "addr", "add", addr, "dev", "lo")
        h.run("ip", "-6", "addr", "add", "fd00::5/64", "dev", "lo", "nodad")
        proc = h.popen(sys.executable, "-c", HOLDER, stdin=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read()
        yield h
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        lab.close()


def ss_inodes(h, expression: str) -> list[int]:
    out = h.run("ss", "-H", "-n", "-e", "-t", "-u", "-a", *expression.split()).stdout
    return sorted(int(i) for i in re.findall(r"ino:(\d+)", out))


def pysock_inodes(h, expression: str, *extra: str) -> list[int]:
    out = h.run(*PYSOCK, "inspect", "-n", "-t", "-u", "-a", *extra, *expression.split(),
                "--json").stdout
    return sorted(json.loads(line)["inode"] for line in out.splitlines())


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_same_sockets_as_ss(host, expression):
    theirs = ss_inodes(host, expression)
    assert pysock_inodes(host, expression) == theirs
    # the same answer from /proc/net, where pysock alone applies the expression
    assert pysock_inodes(host, expression, "--source", "proc") == theirs


def test_the_table_selects_something_and_not_everything(host):
    every = set(ss_inodes(host, ""))
    sizes = {e: len(ss_inodes(host, e)) for e in EXPRESSIONS}
    assert all(0 < n < len(every) for n in sizes.values()), sizes


def test_the_kernel_filters_with_the_compiled_bytecode():
    """The bytecode alone (no filtering here) returns exactly the matching sockets."""
    with socket.create_server(("127.0.0.1", 0)) as one, \
            socket.create_server(("127.0.0.1", 0)) as two:
        port = one.getsockname()[1]
        expr = ssfilter.parse([f"sport = :{port}"], None, 0)
        with sockdiag.DiagSocket() as diag:
            every = list(sockdiag.inet_sockets(diag, "tcp", 4))
            only = list(sockdiag.inet_sockets(diag, "tcp", 4, bytecode=expr.bytecode()))
            ranged = ssfilter.parse([f"not sport = :{port} and sport = "
                                     f":{two.getsockname()[1]}"], None, 0)
            other = list(sockdiag.inet_sockets(diag, "tcp", 4, bytecode=ranged.bytecode()))
        assert len(every) > 1
        assert [r.local_port for r in only] == [port]
        assert [r.local_port for r in other] == [two.getsockname()[1]]


@pytest.mark.parametrize("words, message", [
    ("sport = :99999", "out of range"),
    ("( sport = :22", "never closed"),
    ("sport = :22 )", "unexpected ')'"),
    ("dev = eth0", "no ss 'dev'"),
    ("sport = :22 state established", "goes before"),
    ("src unix:/tmp/x", "use --path"),
    ("bogus", "not a filter condition"),
    ("sport = :nosuchservice", "not a port number"),
    ("state", "needs a state"),
    ("state nosuch", "unknown socket state"),
])
def test_bad_expressions_are_one_usage_line(words, message):
    from pysock.advice import install
    install()  # the ways out in flags, as the command line words them
    with pytest.raises(UsageError, match=re.escape(message)):
        Filter.build(Selection(protos=("tcp",), expression=words.split()))


def test_and_or_bind_left_to_right_as_in_ss():
    tree = ssfilter.parse("sport = :1 or sport = :2 and dport = :3".split(), None, 0).tree
    assert isinstance(tree, ssfilter.And) and isinstance(tree.first, ssfilter.Or)


def test_the_command_line_takes_expressions_and_refuses_them_where_they_mean_nothing():
    from conftest import run_pysock
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        out = run_pysock("inspect", "-tln", "sport", "=", f":{port}", "--json")
        assert out.returncode == 0, out.stderr
        assert [json.loads(line)["local_port"] for line in out.stdout.splitlines()] == [port]
    for args, words in ((["--counters", "sport", "=", ":22"], "does not go with --counters"),
                        (["-x", "sport", "=", ":22"], "use --path"),
                        (["(", "sport", "=", ":22"], "never closed")):
        out = run_pysock("inspect", *args)
        assert out.returncode == 2 and words in out.stderr.decode(), out.stderr
        assert len(out.stderr.splitlines()) == 1
