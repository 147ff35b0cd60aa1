"""TLSChannel on socketpairs and loopback: what the relay relies on. Blocked names the
right fd and event, nothing is left in the TLS engine while poll() sees nothing,
close_notify goes out even when the kernel is full, and the relay keeps every byte."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from pysock.net.endpoints import StdioChannel
from pysock.net.pump import Blocked
from pysock.net.relay import relay
from pysock.net.tls import (
    TLSChannel,
    TLSOptions,
    client_identity,
    server_identity,
    start_client,
    start_server,
)

from conftest import PYSOCK


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    import trustme
    path = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(str(path / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(path / "leaf.pem"))
    server = server_identity(TLSOptions(cert=str(path / "leaf.pem")))
    client = client_identity(TLSOptions(cafile=str(path / "ca.pem")))
    return server, client


def tls_pair(certs, family=socket.AF_UNIX) -> tuple[TLSChannel, TLSChannel]:
    server_id, client_id = certs
    if family == socket.AF_UNIX:
        a, b = socket.socketpair()
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
        listener.close()
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("s", start_server(b, server_id, 10)))
    thread.start()
    client = start_client(a, client_id, "localhost", 10)
    thread.join(10)
    return client, box["s"]


def recv_until(channel: TLSChannel, size: int, timeout: float = 10) -> bytes:
    """Read through Blocked the way the relay does: poll exactly what it names."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < size:
        try:
            chunk = channel.recv(1 << 20)
        except Blocked as blocked:
            poller = select.poll()
            poller.register(blocked.fd, blocked.event)
            assert poller.poll(max(1, int((deadline - time.monotonic()) * 1000))), "stalled"
            continue
        if not chunk:
            break
        data += chunk
    return data


def test_recv_with_nothing_there_blocks_on_pollin(certs):
    client, server = tls_pair(certs)
    with pytest.raises(Blocked) as caught:
        client.recv(1024)
    assert caught.value.fd == client.rfd and caught.value.event & select.POLLIN
    client.close()
    server.close()


def test_no_data_stays_in_the_engine_when_poll_sees_nothing(certs):
    """Many small records in one burst: one recv returns them all, so the socket being
    quiet afterwards never hides data already inside the TLS engine."""
    client, server = tls_pair(certs)
    server.sock.setblocking(True)
    for n in range(200):
        server.send(f"record {n:03d}\n".encode())
    time.sleep(0.2)
    client.sock.setblocking(False)
    got = client.recv(1 << 20)
    assert got == b"".join(f"record {n:03d}\n".encode() for n in range(200))
    assert client.tls.pending() == 0 and client._in.pending == 0
    with pytest.raises(Blocked):
        client.recv(1 << 20)


def test_close_notify_ends_the_stream_and_the_other_way_stays_open(certs):
    client, server = tls_pair(certs)
    for ch in (client, server):
        ch.sock.setblocking(False)
    client.send(b"last words")
    client.shutdown_write()
    assert recv_until(server, 1 << 20) == b"last words"  # then b'': the end
    assert server.clean_close
    server.send(b"still talking")
    server.shutdown_write()
    assert recv_until(client, 1 << 20) == b"still talking"
    assert client.clean_close


def test_bare_fin_ends_the_stream_but_is_not_clean(certs):
    client, server = tls_pair(certs)
    server.sock.setblocking(False)
    client.sock.shutdown(socket.SHUT_WR)  # no close_notify, as ncat does
    assert recv_until(server, 1) == b""
    assert not server.clean_close
    server.send(b"reply")  # writing on is still allowed
    client.sock.setblocking(False)
    assert recv_until(client, 5) == b"reply"


def test_send_holds_ciphertext_and_flush_names_pollout(certs):
    client, server = tls_pair(certs, family=socket.AF_INET)
    client.sock.setblocking(False)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    blob = os.urandom(4 << 20)
    sent, blocked = 0, None
    while sent < len(blob):
        try:
            sent += client.send(memoryview(blob)[sent:])
        except Blocked as exc:
            blocked = exc
            break
    assert blocked is not None and blocked.event == select.POLLOUT
    assert client.pending_output > 0
    server.sock.setblocking(False)
    thread = threading.Thread(target=lambda: box.setdefault("got", recv_until(server, len(blob))))
    box: dict = {}
    thread.start()
    while sent < len(blob):  # the rest, as the relay would
        try:
            sent += client.send(memoryview(blob)[sent:])
        except Blocked as exc:
            select.select([], [exc.fd], [], 5)
    while client.pending_output:
        try:
            client.flush()
        except Blocked:
            select.select([], [client.wfd], [], 5)
    thread.join(20)
    assert box["got"] == blob


def test_relay_delivers_close_notify_even_when_the_peer_reads_late(certs, tmp_path):
    """Input ends while ciphertext still waits in user space: the relay must flush it,
    then close_notify, then FIN, although nothing else wakes it."""
    client, server = tls_pair(certs, family=socket.AF_INET)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    blob = os.urandom(6 << 20)
    source = tmp_path / "in.bin"
    source.write_bytes(blob)
    got = {}

    def late_reader():
        time.sleep(1)  # the client has hit the end of its input by now
        server.sock.setblocking(False)
        got["data"] = recv_until(server, len(blob) + 1, timeout=20)
        server.shutdown_write()
        while server.pending_output:
            try:
                server.flush()
            except Blocked:
                select.select([], [server.wfd], [], 5)
    thread = threading.Thread(target=late_reader)
    thread.start()
    out_r, out_w = os.pipe()
    with open(source, "rb") as stdin:
        result = relay(StdioChannel(stdin.fileno(), out_w), client)
    thread.join(20)
    os.close(out_r)
    assert result.sent == len(blob) and result.status == 0
    assert hashlib.sha256(got["data"]).digest() == hashlib.sha256(blob).digest()


def test_plain_connect_and_listen_never_import_ssl():
    """The start-up rule: ssl (and the TLS and proxy modules) load only for --tls/--proxy."""
    for args in (["connect", "--help"], ["listen", "--help"],
                 ["connect", "127.0.0.1", "1"]):
        out = subprocess.run([sys.executable, "-X", "importtime", *PYSOCK[1:], *args],
                             capture_output=True, text=True, timeout=30)
        names = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
                 if line.startswith("import time:")}
        assert names, out.stderr
        assert not names & {"ssl", "_ssl", "pysock.net.tls", "pysock.net.proxy", "cryptography"}


def test_unix_socket_client_needs_sni_or_insecure(certs, tmp_path):
    """What `unix --tls` will do: no host name, so the server must be named (--sni, which
    the command words) or not verified (--insecure); the core says only the fact."""
    from pysock.errors import UsageError
    server_id, client_id = certs
    a, b = socket.socketpair()
    with pytest.raises(UsageError, match="needs a server name to verify"):
        start_client(a, client_id, None)
    b.close()
    named = client_identity(TLSOptions(cafile=client_id.options.cafile, server_name="localhost"))
    insecure = client_identity(TLSOptions(insecure=True))
    for identity in (named, insecure):
        a, b = socket.socketpair()
        thread = threading.Thread(target=lambda sock=b: start_server(sock, server_id, 10).close())
        thread.start()
        start_client(a, identity, None, 10).close()
        thread.join(10)
