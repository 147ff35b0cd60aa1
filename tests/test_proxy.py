"""connect --proxy end to end, through real proxies on loopback: Dante (danted) for
SOCKS4 and SOCKS5 with rules, microsocks for SOCKS5 logins and names resolved at the
proxy, ncat for HTTP CONNECT."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from conftest import PYSOCK, free_port, need_root, need_tool, run_pysock, wait_listening
from peers import Server, read_all, sha

BLOCKED = "127.0.0.2"  # Dante's rules refuse this target
LINE = b"one line\n"


def greeter(conn):
    """Says hello, then answers what it read with its hash once the client is done."""
    conn.sendall(b"hello\n")
    data = read_all(conn)
    conn.sendall(f"{len(data)} {sha(data)}\n".encode())
    return data


def line_greeter(conn):
    """The same for proxies that end the whole tunnel at the client's FIN (microsocks,
    ncat): answers the first line, then closes."""
    conn.sendall(b"hello\n")
    data = conn.makefile("rb").readline()
    conn.sendall(f"{len(data)} {sha(data)}\n".encode())
    return data


@pytest.fixture
def target():
    server = Server(greeter)
    yield server
    server.join(timeout=1)


@pytest.fixture
def line_target():
    """For proxies without half-close: pysock runs with --no-shutdown against it."""
    server = Server(line_greeter)
    yield server
    server.join(timeout=1)


@pytest.fixture
def dante(procs, tmp_path):
    need_tool("danted")
    port = free_port()
    conf = tmp_path / "danted.conf"
    conf.write_text(f"""logoutput: stderr
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks block {{ from: 0.0.0.0/0 to: {BLOCKED}/32 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 protocol: tcp }}
""")
    proc = procs.start(["danted", "-f", str(conf), "-N", "1", "-p", str(tmp_path / "pid")])
    wait_listening(port, proc=proc)
    return port


def microsocks(procs, *args, wrap=()):
    need_tool("microsocks")
    port = free_port()
    proc = procs.start([*wrap, "microsocks", "-i", "127.0.0.1", "-p", str(port), *args])
    wait_listening(port, proc=proc)
    return port


def ncat_http_proxy(procs, *args):
    need_tool("ncat")
    port = free_port()
    proc = procs.start(["ncat", "-l", "-k", "--proxy-type", "http", *args, "127.0.0.1",
                        str(port)])
    wait_listening(port, proc=proc)
    return port


def through(proxy_port, kind, host, port, *extra, data=b"payload"):
    return run_pysock("connect", "-v", "--proxy", f"127.0.0.1:{proxy_port}", "--proxy-type",
                      kind, *extra, host, str(port), input=data)


def assert_tunnel(out, target, data=b"payload"):
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hello\n" + f"{len(data)} {sha(data)}\n".encode()
    assert target.join() == data


# ---- SOCKS5 -----------------------------------------------------------------


def test_socks5_through_dante(dante, target):
    out = through(dante, "socks5", "127.0.0.1", target.port)
    assert_tunnel(out, target)
    assert b"socks5 proxy 127.0.0.1:" in out.stderr and b"opened a tunnel" in out.stderr


def test_socks5_big_upload_half_closes(dante, target):
    data = os.urandom(4 << 20)
    assert_tunnel(through(dante, "socks5", "127.0.0.1", target.port, data=data), target, data)


def test_socks5_rule_refusal_is_named(dante):
    out = through(dante, "socks5", BLOCKED, 80)
    assert out.returncode == 1
    assert b"not allowed by the proxy's rules" in out.stderr


def test_socks5_target_refused_is_named(dante):
    out = through(dante, "socks5", "127.0.0.1", free_port())
    assert out.returncode == 1 and b"refused" in out.stderr


def test_socks5_login(procs, line_target):
    port = microsocks(procs, "-u", "bob", "-P", "s3cret")
    assert_tunnel(through(port, "socks5", "127.0.0.1", line_target.port, "--proxy-auth",
                          "bob:s3cret", "--no-shutdown", data=LINE), line_target, LINE)


@pytest.mark.parametrize("auth, words", [
    ([], b"accepts none of our authentication methods (it may need --proxy-auth"),
    (["--proxy-auth", "bob:wrong"], b"refused the user name or password"),
])
def test_socks5_login_refused(procs, auth, words):
    port = microsocks(procs, "-u", "bob", "-P", "s3cret")
    out = through(port, "socks5", "127.0.0.1", free_port(), *auth)
    assert out.returncode == 1
    assert words in out.stderr and out.stderr.count(b"\n") == 1


def test_socks5_names_are_resolved_by_the_proxy(procs, tmp_path, line_target):
    """Only the proxy's /etc/hosts knows the name; pysock runs with no resolver at all,
    so it can only succeed by sending the name (socks5h)."""
    need_root()
    need_tool("unshare", "mount")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 only-the-proxy-knows.test\n")
    empty = tmp_path / "resolv.conf"
    empty.write_text("")
    port = microsocks(procs, wrap=["unshare", "-m", "sh", "-c",
                                   f'mount --bind {hosts} /etc/hosts && exec "$@"', "sh"])
    argv = ["unshare", "-m", "sh", "-c",
            f'mount --bind {empty} /etc/resolv.conf && exec "$@"', "sh",
            *PYSOCK, "connect", "--no-shutdown", "--proxy", f"127.0.0.1:{port}",
            "only-the-proxy-knows.test", str(line_target.port)]
    out = subprocess.run(argv, input=LINE, capture_output=True, timeout=30)
    assert_tunnel(out, line_target, LINE)


def test_numeric_forbids_sending_a_name(dante):
    out = through(dante, "socks5", "some.name.test", 80, "-n")
    assert out.returncode == 2 and b"-n" in out.stderr


# ---- SOCKS4 -----------------------------------------------------------------


def test_socks4_through_dante(dante, target):
    out = through(dante, "socks4", "127.0.0.1", target.port)
    assert_tunnel(out, target)


def test_socks4_refusal_is_named(dante):
    out = through(dante, "socks4", BLOCKED, 80)
    assert out.returncode == 1 and b"request rejected or failed" in out.stderr


def test_socks4_has_no_ipv6(dante):
    out = through(dante, "socks4", "::1", 80)
    assert out.returncode == 2 and b"IPv4 addresses only" in out.stderr


# ---- HTTP CONNECT -----------------------------------------------------------


def test_http_connect_through_ncat(procs, line_target):
    port = ncat_http_proxy(procs)
    out = through(port, "http", "127.0.0.1", line_target.port, "--no-shutdown", data=LINE)
    assert_tunnel(out, line_target, LINE)
    assert b"http proxy" in out.stderr


def test_http_connect_target_unreachable(procs):
    port = ncat_http_proxy(procs)
    out = through(port, "http", "127.0.0.1", free_port())
    assert out.returncode == 1
    assert b"refused CONNECT" in out.stderr and b"could not reach the target" in out.stderr


@pytest.mark.parametrize("auth, words", [
    ([], b"407"),
    (["--proxy-auth", "bob:wrong"], b"wrong --proxy-auth"),
])
def test_http_proxy_login_refused(procs, auth, words):
    port = ncat_http_proxy(procs, "--proxy-auth", "bob:pw")
    out = through(port, "http", "127.0.0.1", free_port(), *auth)
    assert out.returncode == 1 and words in out.stderr


def test_http_proxy_login(procs, line_target):
    port = ncat_http_proxy(procs, "--proxy-auth", "bob:pw")
    assert_tunnel(through(port, "http", "127.0.0.1", line_target.port, "--proxy-auth", "bob:pw",
                          "--no-shutdown", data=LINE), line_target, LINE)


# ---- TLS through a proxy, and the proxy itself failing ----------------------


def test_tls_through_socks5_verifies_the_target_name(dante, procs, tmp_path):
    import trustme
    need_tool("openssl")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    port = free_port()
    server = procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
                          str(tmp_path / "cert.pem"), "-key", str(tmp_path / "key.pem"),
                          "-quiet", "-naccept", "1"], stdin=subprocess.PIPE)
    wait_listening(port, proc=server)
    out = through(dante, "socks5", "localhost", port, "--tls", "--cafile",
                  str(tmp_path / "ca.pem"), data=b"secret via socks\n")
    assert out.returncode == 0, out.stderr
    assert server.communicate(timeout=10)[0] == b"secret via socks\n"


def test_proxy_not_listening():
    out = through(free_port(), "socks5", "127.0.0.1", 80)
    assert out.returncode == 1
    assert out.stderr.startswith(b"pysock: proxy: connection refused")


def test_proxy_that_never_answers_is_bounded():
    server = Server(lambda conn: conn.recv(100) and time.sleep(5))
    out = run_pysock("connect", "-w", "1", "--proxy", f"127.0.0.1:{server.port}",
                     "127.0.0.1", "80", input=b"")
    assert out.returncode == 1 and b"did not answer within 1 s" in out.stderr


@pytest.mark.parametrize("args, words", [
    (["--proxy-auth", "a:b", "127.0.0.1", "80"], b"--proxy-auth needs --proxy"),
    (["--proxy", "127.0.0.1:99999", "127.0.0.1", "80"], b"99999"),
    (["--proxy", "127.0.0.1:1080", "--proxy-type", "socks6", "127.0.0.1", "80"], b"socks6"),
    (["--proxy", "127.0.0.1:1080", "--proxy-auth", ":x", "127.0.0.1", "80"], b"USER:PASS"),
    (["--proxy", "127.0.0.1:1080", "-z", "127.0.0.1", "80"], b"-z"),
])
def test_bad_proxy_options(args, words):
    out = run_pysock("connect", *args)
    assert out.returncode == 2 and words in out.stderr and out.stderr.count(b"\n") == 1
