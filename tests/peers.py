"""Little servers for end-to-end tests, each in a thread, each bounded in time."""

from __future__ import annotations

import hashlib
import socket
import threading


class Server:
    """A TCP server on 127.0.0.1 running `handler(conn)` for one client."""

    def __init__(self, handler, family=socket.AF_INET, host="127.0.0.1"):
        self.sock = socket.create_server((host, 0), family=family)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.result = {}
        self.thread = threading.Thread(target=self._run, args=(handler,), daemon=True)
        self.thread.start()

    def _run(self, handler):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(20)
        with conn:
            try:
                self.result["value"] = handler(conn)
            except OSError as exc:
                self.result["error"] = exc

    def join(self, timeout: float = 20):
        self.thread.join(timeout)
        self.sock.close()
        return self.result.get("value")


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tls_digest_server(ctx, listener: socket.socket):
    """A TLS server for one client on listener: it hashes all it reads until the
    client's close_notify, then answers 'sha256 <hex>' and closes with its own.
    Returns (thread, result) where result['sha'] is the hash it saw."""
    listener.settimeout(20)
    result = {}

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(20)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            digest = hashlib.sha256()
            while chunk := tls.recv(1 << 16):  # b'' only on close_notify
                digest.update(chunk)
            result["sha"] = digest.hexdigest()
            tls.sendall(b"sha256 " + digest.hexdigest().encode())
            tls.unwrap()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread, result
