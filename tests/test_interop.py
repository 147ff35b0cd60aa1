"""1 GiB of random bytes both ways at once, pysock on one side and nc, ncat or socat
(or pysock) on the other; sha256 equal at both ends."""

import hashlib
import subprocess

import pytest

from conftest import PYSOCK, need_tool, wait_listening

SIZE = 1 << 30


def digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    """Two different random files: one per direction."""
    base = tmp_path_factory.mktemp("payload")
    files = []
    for name in ("up", "down"):
        path = base / name
        subprocess.run(["head", "-c", str(SIZE), "/dev/urandom"], stdout=open(path, "wb"),
                       check=True, timeout=120)
        files.append((path, digest(path)))
    yield files
    for path, _ in files:  # 2 GiB a session: pytest keeps old tmp dirs, and /tmp is shared
        path.unlink(missing_ok=True)


LISTENERS = {
    "nc": lambda p: ["nc", "-N", "-l", "127.0.0.1", str(p)],
    "ncat": lambda p: ["ncat", "-l", "127.0.0.1", str(p)],
    "socat": lambda p: ["socat", "-t", "30", "-b", "262144", f"TCP-LISTEN:{p},bind=127.0.0.1,reuseaddr",
                        "-"],
    "pysock": lambda p: [*PYSOCK, "listen", "127.0.0.1", str(p)],
}
CLIENTS = {
    "nc": lambda p: ["nc", "-N", "127.0.0.1", str(p)],
    "ncat": lambda p: ["ncat", "127.0.0.1", str(p)],
    "socat": lambda p: ["socat", "-t", "30", "-b", "262144", "-", f"TCP:127.0.0.1:{p}"],
    "pysock": lambda p: [*PYSOCK, "connect", "127.0.0.1", str(p)],
}


def exchange(server_argv, client_argv, port, payloads, tmp_path, procs):
    (up, up_sha), (down, down_sha) = payloads
    server_out, client_out = tmp_path / "server.out", tmp_path / "client.out"
    server = procs.start(server_argv, stdin=open(down, "rb"), stdout=open(server_out, "wb"))
    wait_listening(port, proc=server)
    client = procs.start(client_argv, stdin=open(up, "rb"), stdout=open(client_out, "wb"))
    try:
        assert client.wait(timeout=150) == 0, client.stderr.read()
        assert server.wait(timeout=60) == 0, server.stderr.read()
        assert digest(server_out) == up_sha, "upload damaged or cut short"
        assert digest(client_out) == down_sha, "download damaged or cut short"
    finally:  # 2 GiB a test, kept by pytest after the session otherwise
        server_out.unlink(missing_ok=True)
        client_out.unlink(missing_ok=True)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("peer", ["nc", "ncat", "socat", "pysock"])
def test_pysock_connect_to_peer_listener(peer, payloads, tmp_path, procs, port):
    if peer != "pysock":
        need_tool(peer)
    exchange(LISTENERS[peer](port), CLIENTS["pysock"](port), port, payloads, tmp_path, procs)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("peer", ["nc", "ncat", "socat"])
def test_peer_client_to_pysock_listen(peer, payloads, tmp_path, procs, port):
    need_tool(peer)
    exchange(LISTENERS["pysock"](port), CLIENTS[peer](port), port, payloads, tmp_path, procs)
