"""TLS over Unix stream sockets: pysock unix --tls and unix -l --tls against each other
and against openssl s_server/s_client -unix, with certificates made per test (trustme)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest

from test_tls import PKI, close_stdin, fingerprint_of
from test_unix import wait_unix

from conftest import need_tool, run_pysock
from peers import read_all, sha, tls_digest_server


@pytest.fixture
def pki(tmp_path) -> PKI:
    return PKI(tmp_path)


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "tls.sock")


@pytest.fixture
def short_path():
    """openssl s_server -unix fails (bio_addr addr_strings) on paths longer than about
    40 bytes, such as pytest's tmp_path: give it a short one."""
    folder = tempfile.mkdtemp(prefix="pst", dir="/tmp")
    yield os.path.join(folder, "s.sock")
    shutil.rmtree(folder, ignore_errors=True)


def serve_tls(procs, path, *args, stdin=subprocess.DEVNULL):
    proc = procs.pysock("unix", "-l", "--tls", *args, path, stdin=stdin)
    wait_unix(path, proc)
    return proc


def with_cert(pki):
    return ["--cert", pki.server[0], "--key", pki.server[1]]


def tls_unix_client(path, data: bytes = b"") -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(10)
    raw.connect(path)
    conn = ctx.wrap_socket(raw)
    if data:
        conn.sendall(data)
    return conn


# ---- pysock to pysock ---------------------------------------------------------------


def test_client_and_server_verified_both_ways_with_v(procs, pki, sock_path):
    server = serve_tls(procs, sock_path, "-v", *with_cert(pki), stdin=subprocess.PIPE)
    server.stdin.write(b"from server\n")
    close_stdin(server)
    out = run_pysock("unix", "--tls", "--cafile", pki.cafile, "--sni", "localhost", "-v",
                     sock_path, input=b"from client\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"from server\n"
    got, err = server.communicate(timeout=10)
    assert server.returncode == 0, err
    assert got == b"from client\n"
    client_err = out.stderr.decode()
    assert "TLS: TLSv1.3" in client_err
    assert f"SHA-256 fingerprint: {fingerprint_of(pki.server[0])}" in client_err
    assert b"TLS: TLSv1.3" in err and b"the client sent no certificate" in err
    assert b"connection from pid " in err  # a Unix client is named by its process


def test_self_signed_server_with_insecure_client(procs, sock_path):
    server = serve_tls(procs, sock_path, stdin=subprocess.PIPE)
    server.stdin.write(b"generated\n")
    close_stdin(server)
    out = run_pysock("unix", "--tls", "--insecure", sock_path, input=b"")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"generated\n"
    assert b"--insecure" in out.stderr  # the warning line
    _, err = server.communicate(timeout=10)
    assert b"SHA-256 fingerprint:" in err


def test_mutual_tls_over_unix(procs, pki, sock_path):
    server = serve_tls(procs, sock_path, *with_cert(pki), "--verify-client", pki.cafile, "-v")
    out = run_pysock("unix", "--tls", "--cafile", pki.cafile, "--sni", "localhost", "--cert",
                     pki.client[0], "--key", pki.client[1], sock_path, input=b"me\n")
    assert out.returncode == 0, out.stderr
    got, err = server.communicate(timeout=10)
    assert got == b"me\n"
    assert b"peer certificate subject: CN=alice" in err


# ---- openssl as the peer ------------------------------------------------------------


def test_client_to_openssl_s_server_unix(procs, pki, short_path):
    sock_path = short_path
    need_tool("openssl")
    server = procs.start(["openssl", "s_server", "-unix", sock_path, "-cert", pki.server[0],
                          "-key", pki.server[1], "-quiet", "-naccept", "1"],
                         stdin=subprocess.PIPE)  # at end of its input s_server quits
    wait_unix(sock_path, server)
    out = run_pysock("unix", "--tls", "--cafile", pki.cafile, "--sni", "localhost", sock_path,
                     input=b"hello s_server\n")
    assert out.returncode == 0, out.stderr
    got, _ = server.communicate(timeout=10)
    assert got == b"hello s_server\n"


def test_openssl_s_client_unix_to_server_and_half_close(procs, pki, short_path):
    sock_path = short_path
    need_tool("openssl")
    server = serve_tls(procs, sock_path, *with_cert(pki), stdin=subprocess.PIPE)
    client = procs.start(["openssl", "s_client", "-unix", sock_path, "-CAfile", pki.cafile,
                          "-servername", "localhost", "-verify_hostname", "localhost",
                          "-verify_return_error", "-quiet"], stdin=subprocess.PIPE)
    client.stdin.write(b"from s_client\n")
    client.stdin.flush()
    assert server.stdout.readline() == b"from s_client\n"
    server.stdin.write(b"from pysock\n")
    close_stdin(server)  # close_notify: s_client ends
    out, _ = client.communicate(timeout=15)
    assert out == b"from pysock\n"
    _, err = server.communicate(timeout=10)
    assert server.returncode == 0, err


# ---- verification failures ----------------------------------------------------------


@pytest.mark.parametrize("case", ["wrong name", "unknown CA"])
def test_verification_failure_is_one_line(case, procs, pki, sock_path):
    serve_tls(procs, sock_path, *with_cert(pki))
    args = ["--cafile", pki.cafile, "--sni", "svc.example.test"] if case == "wrong name" \
        else ["--sni", "localhost"]
    out = run_pysock("unix", "--tls", *args, sock_path, input=b"")
    assert out.returncode == 1
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"pysock: TLS verification of {sock_path} failed")
    assert ("name mismatch" if case == "wrong name" else "unknown issuer") in lines[0]


# ---- many clients, exec, half-close -------------------------------------------------


def test_keep_open_echo_two_tls_clients_at_once(procs, sock_path):
    server = serve_tls(procs, sock_path, "-k", "--echo", "-v")
    first = tls_unix_client(sock_path, b"one")
    second = tls_unix_client(sock_path, b"two")
    assert first.recv(100) == b"one"
    assert second.recv(100) == b"two"
    first.sendall(b"again")
    assert first.recv(100) == b"again"
    for conn in (first, second):
        conn.close()
    server.kill()
    _, err = server.communicate(timeout=10)
    assert err.count(b": TLS TLSv1.3") == 2, err


def test_exec_answers_after_close_notify(procs, sock_path):
    serve_tls(procs, sock_path, "--sh-exec", "wc -c")
    data = os.urandom(3 << 20)
    out = run_pysock("unix", "--tls", "--insecure", sock_path, input=data, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(data)).encode()


def test_half_close_server_answers_after_close_notify(pki, sock_path):
    """The server reads to the end (close_notify), then answers: pysock must keep
    reading after its own close_notify."""
    data = os.urandom(8 << 20)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki.server)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    thread, result = tls_digest_server(ctx, listener)
    try:
        out = run_pysock("unix", "--tls", "--cafile", pki.cafile, "--sni", "localhost",
                         sock_path, input=data, timeout=60)
        thread.join(20)
    finally:
        listener.close()
    assert out.returncode == 0, out.stderr
    assert result["sha"] == sha(data)
    assert out.stdout == b"sha256 " + sha(data).encode()


def test_broker_between_tls_clients(procs, sock_path):
    server = serve_tls(procs, sock_path, "-k", "--broker", "-v")
    first = tls_unix_client(sock_path)
    second = tls_unix_client(sock_path)
    # the client's handshake ends before the server's: wait until the hub has both
    while b"(client 2)" not in server.stderr.readline():
        assert server.poll() is None
    first.sendall(b"hi")
    second.sendall(b"ho")
    assert first.recv(100) == b"ho"
    assert second.recv(100) == b"hi"
    first.close()
    second.close()


# ---- usage --------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["--tls"], "--sni NAME"),
    (["--tls", "-u", "--insecure"], "--type stream"),
    (["--tls", "--type", "seqpacket", "--insecure"], "--type stream"),
    (["--tls", "--insecure", "--send-fd", "/etc/hostname"], "--send-fd cannot go over --tls"),
    (["--tls", "--send-creds", "--insecure"], "--send-creds cannot go over --tls"),
    (["-l", "--tls", "--show-fds"], "--show-fds cannot go over --tls"),
    (["-l", "--tls", "--sni", "x"], "--sni is for the client side"),
    (["--tls", "--insecure", "--verify-client", "/etc/hostname"], "for the server side"),
    (["--cafile", "/etc/hostname"], "--cafile needs --tls"),
])
def test_usage_errors(args, words, sock_path):
    out = run_pysock("unix", *args, sock_path, input=b"")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and words in lines[0], lines
    assert not os.path.exists(sock_path)


def test_plain_client_to_tls_server_fails_the_handshake(procs, sock_path):
    server = serve_tls(procs, sock_path)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(10)
    conn.connect(sock_path)
    conn.sendall(b"plain text, not a ClientHello\n")
    read_all(conn)
    conn.close()
    _, err = server.communicate(timeout=10)
    assert server.returncode == 1
    assert b"TLS handshake with pid " in err and b"does not speak TLS" in err
