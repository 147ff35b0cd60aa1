"""TLS end to end: pysock connect/listen --tls against openssl s_server/s_client and
ncat --ssl in both roles, with certificates made per test by trustme."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import PYSOCK, need_tool, run_pysock, wait_listening
from peers import sha, tls_digest_server


class PKI:
    """A CA, a server certificate for localhost/127.0.0.1/::1, a client certificate,
    and the awkward ones (expired, other name, other CA), as files."""

    def __init__(self, path):
        import trustme
        self.path = path
        self.ca = trustme.CA()
        self.cafile = self._write("ca.pem", self.ca.cert_pem)
        self.server = self._leaf("server", self.ca.issue_cert("localhost", "127.0.0.1", "::1"))
        self.client = self._leaf("client", self.ca.issue_cert("alice@example.test",
                                                              common_name="alice"))
        past = datetime.datetime(2020, 1, 1)
        self.expired = self._leaf("expired", self.ca.issue_cert(
            "localhost", "127.0.0.1", not_before=past, not_after=past + datetime.timedelta(1)))
        self.other_name = self._leaf("other", self.ca.issue_cert("svc.example.test"))
        stranger = trustme.CA()
        self.stranger_cafile = self._write("stranger-ca.pem", stranger.cert_pem)
        self.stranger_client = self._leaf("stranger", stranger.issue_cert("mallory@example.test"))

    def _write(self, name, blob) -> str:
        target = str(self.path / name)
        blob.write_to_path(target)
        return target

    def _leaf(self, name, leaf) -> tuple[str, str]:
        cert = str(self.path / f"{name}.pem")
        with open(cert, "wb") as f:
            for pem in leaf.cert_chain_pems:
                f.write(pem.bytes())
        return cert, self._write(f"{name}.key", leaf.private_key_pem)


@pytest.fixture
def pki(tmp_path) -> PKI:
    return PKI(tmp_path)


def s_server(procs, port, cert, key, *extra, stdin=subprocess.PIPE):
    need_tool("openssl")
    proc = procs.start(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert,
                        "-key", key, "-quiet", "-naccept", "1", *extra], stdin=stdin)
    wait_listening(port, proc=proc)
    return proc


def fingerprint_of(cert_file) -> str:
    with open(cert_file) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def close_stdin(proc) -> None:
    """End a started process's input now; communicate() later leaves stdin alone."""
    proc.stdin.close()
    proc.stdin = None


def listen_tls(procs, port, *args, stdin=subprocess.DEVNULL):
    proc = procs.pysock("listen", "--tls", *args, "127.0.0.1", str(port), stdin=stdin)
    wait_listening(port, proc=proc)
    return proc


# ---- connect --tls ----------------------------------------------------------


def test_connect_to_openssl_s_server_verified_with_v_details(procs, pki, port):
    server = s_server(procs, port, *pki.server)
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "-v", "localhost", str(port),
                     input=b"hello over tls\n")
    assert out.returncode == 0, out.stderr
    got, _ = server.communicate(timeout=10)
    assert got == b"hello over tls\n"
    err = out.stderr.decode()
    assert re.search(r"TLS: TLSv1\.3, TLS_\w+", err)
    assert "peer certificate subject: " in err and "trustme" in err
    assert "peer certificate issuer: " in err
    assert re.search(r"valid from \d{4}-\d\d-\d\d .* to \d{4}-", err)
    assert f"SHA-256 fingerprint: {fingerprint_of(pki.server[0])}" in err


def test_connect_verifies_by_default_unknown_issuer(procs, pki, port):
    s_server(procs, port, *pki.server)
    out = run_pysock("connect", "--tls", "localhost", str(port), input=b"")
    assert out.returncode == 1
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pysock: TLS verification of")
    assert "unknown issuer" in lines[0]


def test_expired_certificate_is_named(procs, pki, port):
    s_server(procs, port, *pki.expired)
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "127.0.0.1", str(port), input=b"")
    assert out.returncode == 1
    assert b"certificate expired" in out.stderr and out.stderr.count(b"\n") == 1


def test_wrong_name_is_a_name_mismatch(procs, pki, port):
    s_server(procs, port, *pki.other_name)
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "localhost", str(port), input=b"")
    assert out.returncode == 1
    assert b"name mismatch" in out.stderr and b"localhost" in out.stderr


def test_sni_overrides_the_name_sent_and_verified(pki, port):
    """A Python TLS server records the SNI it is sent."""
    seen = {}
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki.other_name)

    def record_sni(sslsock, name, _ctx):
        seen["sni"] = name
    ctx.sni_callback = record_sni
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(15)

    def serve():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")
            tls.recv(10)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "--sni", "svc.example.test",
                     "127.0.0.1", str(port), input=b"")
    thread.join(10)
    listener.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"ok" and seen["sni"] == "svc.example.test"


def test_insecure_connects_with_a_warning(procs, pki, port):
    server = s_server(procs, port, *pki.expired)
    out = run_pysock("connect", "--tls", "--insecure", "127.0.0.1", str(port), input=b"x")
    assert out.returncode == 0, out.stderr
    assert b"warning: --insecure" in out.stderr
    assert server.communicate(timeout=10)[0] == b"x"


def test_alpn_is_negotiated_and_shown(procs, pki, port):
    s_server(procs, port, *pki.server, "-alpn", "h2,http/1.1")
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "--alpn", "h2", "-v",
                     "localhost", str(port), input=b"")
    assert out.returncode == 0, out.stderr
    assert b"ALPN h2" in out.stderr


def test_capath_trusts_a_hashed_ca_directory(procs, pki, port, tmp_path):
    need_tool("openssl")
    cadir = tmp_path / "cadir"
    cadir.mkdir()
    (cadir / "ca.pem").write_bytes(open(pki.cafile, "rb").read())
    subprocess.run(["openssl", "rehash", str(cadir)], check=True, timeout=15)
    server = s_server(procs, port, *pki.server)
    out = run_pysock("connect", "--tls", "--capath", str(cadir), "localhost", str(port),
                     input=b"capath\n")
    assert out.returncode == 0, out.stderr
    assert server.communicate(timeout=10)[0] == b"capath\n"


def test_listen_offers_alpn(procs, pki, port):
    need_tool("openssl")
    server = listen_tls(procs, port, "-v", "--alpn", "h2,http/1.1", "--cert", pki.server[0],
                        "--key", pki.server[1])
    client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-alpn",
                             "http/1.1"], input=b"", capture_output=True, timeout=15)
    _, err = server.communicate(timeout=10)
    assert b"ALPN protocol: http/1.1" in client.stdout
    assert b"ALPN http/1.1" in err


def test_tls_min_refuses_an_older_server(procs, pki, port):
    s_server(procs, port, *pki.server, "-tls1_2")
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "--tls-min", "1.3",
                     "localhost", str(port), input=b"")
    assert out.returncode == 1
    assert b"no TLS version both sides accept" in out.stderr


def test_tls_1_2_server_works_and_is_reported(procs, pki, port):
    s_server(procs, port, *pki.server, "-tls1_2")
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "-v", "localhost", str(port),
                     input=b"")
    assert out.returncode == 0 and b"TLS: TLSv1.2" in out.stderr


def test_plain_tcp_peer_is_not_tls(procs, port):
    need_tool("ncat")
    server = procs.start(["ncat", "-l", "127.0.0.1", str(port)],
                         stdin=subprocess.PIPE)
    wait_listening(port, proc=server)
    server.stdin.write(b"HTTP/1.0 200 OK\r\n\r\nplain text, long enough to be a record\n")
    server.stdin.flush()
    out = run_pysock("connect", "--tls", "-w", "5", "127.0.0.1", str(port), input=b"")
    assert out.returncode == 1
    assert b"does not speak TLS" in out.stderr or b"plain HTTP" in out.stderr


def test_half_close_over_tls_server_answers_after_close_notify(pki, port):
    """The server reads to the end (close_notify), then answers: pysock must keep
    reading after its own close_notify. 20 MiB, checked by hash."""
    data = os.urandom(20 << 20)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pki.server)
    listener = socket.create_server(("127.0.0.1", port))
    thread, result = tls_digest_server(ctx, listener)
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "localhost", str(port),
                     input=data, timeout=60)
    thread.join(20)
    listener.close()
    assert out.returncode == 0, out.stderr
    assert result["sha"] == sha(data)
    assert out.stdout == b"sha256 " + sha(data).encode()


def test_client_certificate_to_s_server_requiring_one(procs, pki, port):
    server = s_server(procs, port, *pki.server, "-Verify", "1", "-CAfile", pki.cafile,
                      "-verify_return_error")
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "--cert", pki.client[0],
                     "--key", pki.client[1], "localhost", str(port), input=b"mutual\n")
    assert out.returncode == 0, out.stderr
    assert server.communicate(timeout=10)[0] == b"mutual\n"


def test_connect_to_ncat_ssl_server_both_ways(procs, pki, port):
    need_tool("ncat")
    server = procs.start(["ncat", "--ssl", "--ssl-cert", pki.server[0], "--ssl-key",
                          pki.server[1], "-l", "127.0.0.1", str(port)], stdin=subprocess.PIPE)
    wait_listening(port, proc=server)
    server.stdin.write(b"from ncat\n")
    close_stdin(server)
    out = run_pysock("connect", "-v", "--tls", "--cafile", pki.cafile, "localhost", str(port),
                     input=b"to ncat\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"from ncat\n"
    assert b"ended without TLS close_notify" in out.stderr  # ncat ends with a bare FIN
    assert server.communicate(timeout=10)[0] == b"to ncat\n"


# ---- listen --tls -----------------------------------------------------------


def _fingerprint_line(stderr: bytes) -> str:
    match = re.search(rb"SHA-256 fingerprint: ([0-9A-F:]{95})", stderr)
    assert match, stderr
    return match.group(1).decode()


def test_listen_self_signed_fingerprint_matches_what_s_client_sees(procs, port, tmp_path):
    need_tool("openssl")
    server = listen_tls(procs, port, stdin=subprocess.PIPE)
    client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                             "-showcerts"], input=b"", capture_output=True, timeout=15)
    _, err = server.communicate(timeout=10)
    pem = re.search(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                    client.stdout, re.S).group(0)
    (tmp_path / "seen.pem").write_bytes(pem)
    assert _fingerprint_line(err) == fingerprint_of(tmp_path / "seen.pem")
    assert b"self-signed" in err


def test_self_signed_server_is_refused_by_a_verifying_client(procs, port):
    server = listen_tls(procs, port)
    out = run_pysock("connect", "--tls", "127.0.0.1", str(port), input=b"")
    assert out.returncode == 1
    assert b"self-signed certificate" in out.stderr
    server.communicate(timeout=10)


def test_listen_with_cert_talks_to_s_client_and_half_closes(procs, pki, port):
    need_tool("openssl")
    server = listen_tls(procs, port, "--cert", pki.server[0], "--key", pki.server[1],
                        stdin=subprocess.PIPE)
    client = procs.start(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                          pki.cafile, "-servername", "localhost", "-verify_return_error",
                          "-quiet"], stdin=subprocess.PIPE)
    client.stdin.write(b"from s_client\n")
    client.stdin.flush()
    assert server.stdout.readline() == b"from s_client\n"
    server.stdin.write(b"from pysock\n")
    close_stdin(server)  # pysock sends close_notify: s_client ends
    out, _ = client.communicate(timeout=15)
    assert out == b"from pysock\n"
    got, err = server.communicate(timeout=10)
    assert got == b"" and server.returncode == 0, err


def test_listen_with_ncat_ssl_client_verifying_us(procs, pki, port):
    need_tool("ncat")
    server = listen_tls(procs, port, "--cert", pki.server[0], "--key", pki.server[1],
                        stdin=subprocess.PIPE)
    server.stdin.write(b"hi ncat\n")
    close_stdin(server)
    client = subprocess.run(["ncat", "--ssl", "--ssl-verify", "--ssl-trustfile", pki.cafile,
                             "localhost", str(port)], input=b"hi pysock\n", capture_output=True,
                            timeout=15)
    assert client.returncode == 0, client.stderr
    assert client.stdout == b"hi ncat\n"
    assert server.communicate(timeout=10)[0] == b"hi pysock\n"


def test_mutual_tls_accepted(procs, pki, port):
    server = listen_tls(procs, port, "-v", "--cert", pki.server[0], "--key", pki.server[1],
                        "--verify-client", pki.cafile)
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "--cert", pki.client[0],
                     "--key", pki.client[1], "localhost", str(port), input=b"me\n")
    got, err = server.communicate(timeout=10)
    assert out.returncode == 0 and server.returncode == 0, (out.stderr, err)
    assert got == b"me\n"
    assert b"subject: CN=alice" in err


@pytest.mark.parametrize("which", ["none", "stranger"])
def test_mutual_tls_refused(procs, pki, port, which):
    server = listen_tls(procs, port, "--cert", pki.server[0], "--key", pki.server[1],
                        "--verify-client", pki.cafile)
    cert = [] if which == "none" else ["--cert", pki.stranger_client[0], "--key",
                                       pki.stranger_client[1]]
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, *cert, "localhost", str(port),
                     input=b"secret\n")
    got, err = server.communicate(timeout=10)
    assert server.returncode == 1 and got == b""
    assert err.count(b"\n") == 1 and b"TLS" in err
    assert out.returncode == 1
    expected = b"requires a client certificate" if which == "none" else b"our certificate"
    assert expected in out.stderr


def test_mutual_tls_with_openssl_s_client(procs, pki, port):
    need_tool("openssl")
    # stdin held open: a server at stdin EOF sends close_notify at once, and s_client may
    # take it and end before it has read its own stdin
    server = listen_tls(procs, port, "--cert", pki.server[0], "--key", pki.server[1],
                        "--verify-client", pki.cafile, stdin=subprocess.PIPE)
    client = procs.start(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                          pki.cafile, "-cert", pki.client[0], "-key", pki.client[1], "-quiet"],
                         stdin=subprocess.PIPE)
    client.stdin.write(b"s_client cert\n")
    client.stdin.flush()
    assert server.stdout.readline() == b"s_client cert\n"
    close_stdin(server)
    client.communicate(timeout=15)
    got, err = server.communicate(timeout=10)
    assert got == b"" and server.returncode == 0, err


# ---- listen -k --tls --------------------------------------------------------


def _tls_client(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_keep_open_a_stalled_handshake_does_not_stall_others(procs, pki, port):
    server = listen_tls(procs, port, "-k", "--echo", "--cert", pki.server[0], "--key",
                        pki.server[1])
    stalled = socket.create_connection(("127.0.0.1", port))  # TCP only, never says hello
    half = socket.create_connection(("127.0.0.1", port))
    half.sendall(b"\x16\x03\x01\x02\x00")  # a ClientHello header, and nothing after it
    try:
        start = time.monotonic()
        for n in range(3):
            with _tls_client(port, pki.cafile) as tls:
                tls.sendall(f"ping {n}".encode())
                assert tls.recv(100) == f"ping {n}".encode()
        assert time.monotonic() - start < 5
    finally:
        stalled.close()
        half.close()
    assert server.poll() is None


def _hello_with_data(port, cafile, data: bytes) -> bytes:
    """A client whose first application data leaves in the same segment as its
    Finished message, so the server reads both in one go."""
    ctx = ssl.create_default_context(cafile=cafile)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        tls.write(data)
        sock.sendall(outgoing.read())  # Finished and data together
        got = b""
        while len(got) < len(data):
            try:
                got += tls.read(65536)
            except ssl.SSLWantReadError:
                incoming.write(sock.recv(65536))
        return got


@pytest.mark.parametrize("mode", [["--echo"], ["--exec", "cat"]])
def test_keep_open_data_arriving_with_the_handshake_is_not_stranded(procs, pki, port, mode):
    listen_tls(procs, port, "-k", *mode, "--cert", pki.server[0], "--key", pki.server[1])
    assert _hello_with_data(port, pki.cafile, b"right behind Finished") == \
        b"right behind Finished"


def test_keep_open_echo_to_s_client_and_ncat(procs, pki, port):
    need_tool("openssl", "ncat")
    listen_tls(procs, port, "-k", "--echo", "--cert", pki.server[0], "--key", pki.server[1])
    a = procs.start(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile",
                     pki.cafile, "-quiet", "-verify_return_error"], stdin=subprocess.PIPE)
    b = subprocess.run(["ncat", "--ssl", "--ssl-verify", "--ssl-trustfile", pki.cafile,
                        "localhost", str(port)], input=b"from ncat\n", capture_output=True,
                       timeout=15)
    a.stdin.write(b"from s_client\n")
    a.stdin.flush()
    line = a.stdout.readline()
    a.kill()
    assert b.stdout == b"from ncat\n" and line == b"from s_client\n"


def test_keep_open_relay_broadcasts_stdin_and_collects_clients(procs, pki, port):
    server = listen_tls(procs, port, "-k", "--cert", pki.server[0], "--key", pki.server[1],
                        stdin=subprocess.PIPE)
    clients = [_tls_client(port, pki.cafile) for _ in range(2)]
    try:
        for n, tls in enumerate(clients):
            tls.sendall(f"from client {n}\n".encode())
            assert server.stdout.readline() == f"from client {n}\n".encode()
        server.stdin.write(b"to everyone\n")
        server.stdin.flush()
        for tls in clients:
            assert tls.recv(100) == b"to everyone\n"
    finally:
        for tls in clients:
            tls.close()


def test_keep_open_big_echo_keeps_every_byte(procs, pki, port):
    listen_tls(procs, port, "-k", "--echo", "--cert", pki.server[0], "--key", pki.server[1])
    data = os.urandom(8 << 20)
    out = run_pysock("connect", "--tls", "--cafile", pki.cafile, "localhost", str(port),
                     input=data, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sha(out.stdout) == sha(data)


def test_keep_open_exec_over_tls(procs, pki, port):
    need_tool("ncat")
    listen_tls(procs, port, "-k", "--exec", "cat -n", "--cert", pki.server[0], "--key",
               pki.server[1])
    for peer in (["ncat", "--ssl", "localhost", str(port)],
                 [*PYSOCK, "connect", "--tls", "--cafile", pki.cafile, "localhost", str(port)]):
        out = subprocess.run(peer, input=b"a\nb\n", capture_output=True, timeout=15)
        assert out.stdout.split() == [b"1", b"a", b"2", b"b"], (peer, out.stderr)


def test_keep_open_mutual_tls_refuses_one_and_serves_the_next(procs, pki, port):
    server = listen_tls(procs, port, "-k", "-v", "--echo", "--cert", pki.server[0], "--key",
                        pki.server[1], "--verify-client", pki.cafile)
    refused = run_pysock("connect", "--tls", "--cafile", pki.cafile, "localhost", str(port),
                         input=b"x")
    assert refused.returncode == 1
    good = run_pysock("connect", "--tls", "--cafile", pki.cafile, "--cert", pki.client[0],
                      "--key", pki.client[1], "localhost", str(port), input=b"echo")
    assert good.returncode == 0 and good.stdout == b"echo", good.stderr
    server.terminate()
    _, err = server.communicate(timeout=10)
    assert b"client sent no certificate" in err
    assert b"CN=alice" in err


# ---- options ----------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["connect", "--cafile", "{ca}", "127.0.0.1", "1"], b"--cafile needs --tls"),
    (["connect", "--tls", "--key", "{ca}", "127.0.0.1", "1"], b"--key needs --cert"),
    (["connect", "--tls", "--cert", "{ca}", "127.0.0.1", "1"], b"cannot load --cert"),
    (["connect", "--tls", "--alpn", ",", "127.0.0.1", "1"], b"--alpn needs"),
    (["connect", "--tls", "--tls-min", "1.0", "127.0.0.1", "1"], b"1.0"),
    (["connect", "--tls", "--verify-client", "{ca}", "127.0.0.1", "1"], b"--verify-client"),
    (["connect", "--tls", "-z", "127.0.0.1", "1"], b"-z"),
    (["listen", "--tls", "--cert", "/nonexistent.pem", "1"], b"does not exist"),
    (["listen", "--tls", "--insecure", "1"], b"--insecure"),
    (["listen", "--tls", "--cert", "{ca}", "127.0.0.1", "0"], b"cannot load --cert"),
])
def test_bad_tls_options(pki, args, words):
    out = run_pysock(*[a.replace("{ca}", pki.cafile) for a in args])
    assert out.returncode == 2, out.stderr
    assert out.stderr.count(b"\n") == 1 and words in out.stderr


def test_handshake_timeout_is_bounded(port):
    listener = socket.create_server(("127.0.0.1", port))  # accepts, never answers
    try:
        start = time.monotonic()
        out = run_pysock("connect", "--tls", "-w", "1", "127.0.0.1", str(port), input=b"")
        assert out.returncode == 1 and b"timed out" in out.stderr
        assert time.monotonic() - start < 8
    finally:
        listener.close()


def test_options_for_a_command_that_is_client_or_server():
    """What `unix` / `unix -l` will use: one option set, each role refusing the other's."""
    import click
    from click.testing import CliRunner

    from pysock.cli.tlsopts import tls_client, tls_options, tls_server
    from pysock.errors import UsageError
    from pysock.render.diagnostics import Diagnostics

    @click.command()
    @click.option("-l", "listen", is_flag=True)
    @tls_options("both")
    def either(listen, tls):
        made = tls_server(tls, Diagnostics()) if listen else tls_client(tls, Diagnostics())
        click.echo(type(made).__name__)

    runner = CliRunner()
    assert runner.invoke(either, ["--tls", "--insecure"]).output.endswith("ClientIdentity\n")
    assert runner.invoke(either, ["-l", "--tls"]).output.endswith("ServerIdentity\n")
    refused = runner.invoke(either, ["-l", "--tls", "--sni", "x"])
    assert isinstance(refused.exception, UsageError)  # pysock.cli.run: the exit-2 line
    assert "--sni is for the client side" in str(refused.exception)


def test_broker_answers_close_notify_with_its_own(procs, port):
    """A TLS client that ends with close_notify gets close_notify back (unwrap works),
    while the other clients go on."""
    listen_tls(procs, port, "-k", "--broker")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    first = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
    second = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
    time.sleep(0.3)
    first.sendall(b"to the other one")
    assert second.recv(100) == b"to the other one"
    plain = first.unwrap()  # raises if the hub just closed the socket
    assert plain.recv(10) == b""  # then FIN
    plain.close()
    second.sendall(b"still served")
    second.close()
