"""The table: every stream option against every mode that moves bytes. Each pair
either takes effect, observably (the hexdump appears, CRLF arrives, the idle
client is closed, ...), or is refused with one usage line and exit 2. Nothing is
accepted and ignored (issue 15)."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import PYSOCK, free_port, wait_listening

DATA = b"a\nb\n"  # what pysock's stdin carries
REPLY = b"x\n"  # what a peer sends


# ---- peers ---------------------------------------------------------------------


def _connect(family, addr, timeout=10.0) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(addr)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _read(sock: socket.socket, seconds: float, want: bytes | None = None,
          limit: float = 10.0) -> tuple[bytes, bool]:
    """What arrives within seconds, and whether the peer ended (EOF or reset). With
    want: the seconds count from want's arrival, waited for up to limit (a loaded
    machine is slow), so the window still catches anything extra after it."""
    got, start, since = b"", time.monotonic(), None

    def deadline() -> float:
        nonlocal since
        if want is None:
            return start + seconds
        if since is None and want in got:
            since = time.monotonic()
        return start + limit if since is None else since + seconds

    while (left := deadline() - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        try:
            data = sock.recv(65536)
        except ConnectionRefusedError:  # a datagram peer not up yet
            return got, False
        except (ConnectionResetError, TimeoutError):
            return got, True
        if not data:
            return got, True
        got += data
    return got, False


class Session:
    """pysock in one mode, its stdin a pipe, its stderr a pipe or a terminal."""

    def __init__(self, argv, tty_stderr: bool):
        self.master = None
        stderr = subprocess.PIPE
        if tty_stderr:
            self.master, slave = pty.openpty()
            stderr = slave
        self.proc = subprocess.Popen([*PYSOCK, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=stderr,
                                     start_new_session=True)
        if tty_stderr:
            os.close(slave)
        self.peers: list[socket.socket] = []
        self.out = b""  # stdout read so far by stdout_until

    def feed(self, data: bytes, close: bool) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            if close:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def exited_within(self, seconds: float) -> bool:
        try:
            self.proc.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stdout_until(self, want: bytes, limit: float = 10.0) -> None:
        """Read pysock's stdout until want has come (it is what pysock received, so
        its taps have seen it), or limit seconds pass; finish() returns all of it."""
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + limit
        while want not in self.out and (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.out += chunk

    def finish(self) -> tuple[bytes, bytes]:
        if self.proc.poll() is None:
            self.proc.terminate()
        out = self.out + self.proc.stdout.read() if self.proc.wait(10) is not None else b""
        err = self.proc.stderr.read() if self.proc.stderr else self._terminal()
        for peer in self.peers:
            peer.close()
        return out, err

    def _terminal(self) -> bytes:
        got = b""
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        os.close(self.master)
        return got


# ---- modes -----------------------------------------------------------------------
# Each mode starts pysock and hands back (session, peer): a socket that talks to it.


def _listen_mode(*mode_args, family="tcp"):
    def start(opts, tty_stderr=False):
        if family == "tcp":
            port = free_port()
            s = Session(["listen", *mode_args, *opts, "127.0.0.1", str(port)], tty_stderr)
            wait_listening(port, proc=s.proc)
            peer = _connect(socket.AF_INET, ("127.0.0.1", port))
        else:
            path = tempfile.mktemp(prefix="pysock-table-", suffix=".sock")
            s = Session(["unix", "-l", *mode_args, *opts, path], tty_stderr)
            deadline = time.monotonic() + 10
            while not os.path.exists(path) and time.monotonic() < deadline:
                time.sleep(0.02)
            peer = _connect(socket.AF_UNIX, path)
        s.peers.append(peer)
        return s, peer
    return start


def _client_mode(family):
    def start(opts, tty_stderr=False):
        if family == "tcp":
            server = socket.create_server(("127.0.0.1", 0))
            argv = ["connect", *opts, "127.0.0.1", str(server.getsockname()[1])]
        else:
            path = tempfile.mktemp(prefix="pysock-table-", suffix=".sock")
            server = socket.socket(socket.AF_UNIX)
            server.bind(path)
            server.listen()
            argv = ["unix", *opts, path]
        s = Session(argv, tty_stderr)
        server.settimeout(10)
        try:
            peer, _ = server.accept()
        finally:
            server.close()
        s.peers.append(peer)
        return s, peer
    return start


STREAM_RELAY = {  # stdin to the peer, the peer to stdout
    "connect": _client_mode("tcp"),
    "listen": _listen_mode(),
    "listen -k": _listen_mode("-k"),
    "unix": _client_mode("unix"),
    "unix -l": _listen_mode(family="unix"),
    "unix -l -k": _listen_mode("-k", family="unix"),
}
SERVING = {  # the peer's data comes back: to it (echo, exec) or to the others
    "listen -k --echo": (_listen_mode("-k", "--echo"), REPLY),
    "listen --echo": (_listen_mode("--echo"), REPLY),
    "listen -k --exec cat": (_listen_mode("-k", "--exec", "cat"), REPLY),
    "listen -k --broker": (_listen_mode("-k", "--broker"), REPLY),
    "listen -k --chat": (_listen_mode("-k", "--chat"), b"<user 2> x\n"),
    "unix -l -k --echo": (_listen_mode("-k", "--echo", family="unix"), REPLY),
    "unix -l -k --sh-exec cat": (_listen_mode("-k", "--sh-exec", "cat", family="unix"), REPLY),
}
STDIO_ONLY = ["-q 0.3", "--exit-on-peer-close", "--no-shutdown", "-d", "--send-only"]


def _serve_and_listen(name, opts, tty_stderr=False):
    """A serving mode: a client that sends REPLY, and the client that should see it."""
    start, _ = SERVING[name]
    s, first = start(opts, tty_stderr)
    if "--broker" in name or "--chat" in name:
        port = first.getpeername()[1]
        second = _connect(socket.AF_INET, ("127.0.0.1", port))
        s.peers.append(second)
        time.sleep(0.3)  # both are in before anyone speaks
        second.sendall(REPLY)
        return s, first
    first.sendall(REPLY)
    return s, first


def _exchange(start, opts, tty_stderr=False):
    """A relay mode: stdin carries DATA (kept open), the peer sends REPLY."""
    s, peer = start(opts, tty_stderr)
    s.feed(DATA, close=False)
    peer.sendall(REPLY)
    return s, peer


# ---- stream relays: every option takes effect ---------------------------------------


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_hexdump_in_every_stream_relay(mode):
    s, peer = _exchange(STREAM_RELAY[mode], ["--hexdump", "-"])
    got, _ = _read(peer, 1.0, want=DATA)
    s.stdout_until(REPLY)
    _, err = s.finish()
    assert got == DATA
    assert b"sent 4 bytes" in err and b"received 2 bytes" in err


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_crlf_in_every_stream_relay(mode):
    s, peer = _exchange(STREAM_RELAY[mode], ["--crlf"])
    got, _ = _read(peer, 1.0, want=b"a\r\nb\r\n")
    s.finish()
    assert got == b"a\r\nb\r\n"


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_progress_in_every_stream_relay(mode):
    s, peer = _exchange(STREAM_RELAY[mode], ["--progress"], tty_stderr=True)
    _read(peer, 1.0, want=DATA)
    s.stdout_until(REPLY)
    _, err = s.finish()
    assert b"sent" in err and b"received" in err


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_quit_after_eof_in_every_stream_relay(mode):
    s, peer = STREAM_RELAY[mode](["-q", "0.3"])
    s.feed(DATA, close=True)  # the peer never closes: only -q ends pysock
    assert s.exited_within(5)
    s.finish()


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_idle_timeout_in_every_stream_relay(mode):
    s, peer = STREAM_RELAY[mode](["-i", "0.3"])
    _, ended = _read(peer, 5)
    s.finish()
    assert ended  # the quiet connection was closed


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_no_shutdown_in_every_stream_relay(mode):
    s, peer = STREAM_RELAY[mode](["--no-shutdown"])
    s.feed(DATA, close=True)
    got, ended = _read(peer, 0.8, want=DATA)
    s.finish()
    assert got == DATA and not ended


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_recv_only_in_every_stream_relay(mode):
    s, peer = _exchange(STREAM_RELAY[mode], ["-d"])
    got, _ = _read(peer, 0.8)
    s.stdout_until(REPLY)  # the peer's FIN may come before pysock read REPLY
    out, _ = s.finish()
    assert got == b"" and out == REPLY


@pytest.mark.parametrize("mode", STREAM_RELAY)
def test_send_only_in_every_stream_relay(mode):
    s, peer = _exchange(STREAM_RELAY[mode], ["--send-only"])
    got, _ = _read(peer, 0.8, want=DATA)
    out, _ = s.finish()
    assert got == DATA and out == b""


@pytest.mark.parametrize("mode", [m for m in STREAM_RELAY if "-k" not in m])
def test_exit_on_peer_close_in_every_one_client_relay(mode):
    s, peer = STREAM_RELAY[mode](["--exit-on-peer-close"])
    s.feed(DATA, close=False)  # stdin stays open: only the peer's close ends pysock
    peer.close()
    assert s.exited_within(5)
    s.finish()


@pytest.mark.parametrize("mode", [m for m in STREAM_RELAY if "-k" in m])
def test_exit_on_peer_close_is_refused_with_keep_open(mode):
    _refused(mode.split() + ["--exit-on-peer-close", "x"])


# ---- serving modes: the options that shape what is sent, and the refusals ------------


@pytest.mark.parametrize("mode", SERVING)
def test_hexdump_in_every_serving_mode(mode):
    s, watcher = _serve_and_listen(mode, ["--hexdump", "-"])
    got, _ = _read(watcher, 1.0, want=SERVING[mode][1])
    _, err = s.finish()
    assert got.endswith(SERVING[mode][1])  # chat: after the announcement
    assert b"bytes from " in err and b"at offset" in err


@pytest.mark.parametrize("mode", SERVING)
def test_crlf_in_every_serving_mode(mode):
    s, watcher = _serve_and_listen(mode, ["--crlf"])
    got, _ = _read(watcher, 1.0, want=SERVING[mode][1].replace(b"\n", b"\r\n"))
    s.finish()
    assert got.endswith(SERVING[mode][1].replace(b"\n", b"\r\n"))
    assert b"\n" not in got.replace(b"\r\n", b"")


@pytest.mark.parametrize("mode", SERVING)
def test_progress_in_every_serving_mode(mode):
    s, watcher = _serve_and_listen(mode, ["--progress"], tty_stderr=True)
    _read(watcher, 1.0, want=SERVING[mode][1])
    _, err = s.finish()
    assert b"sent" in err and b"received" in err


@pytest.mark.parametrize("mode", SERVING)
def test_idle_timeout_in_every_serving_mode(mode):
    s, peer = SERVING[mode][0](["-i", "0.3"])
    _, ended = _read(peer, 5)
    s.finish()
    assert ended


@pytest.mark.parametrize("option", STDIO_ONLY)
@pytest.mark.parametrize("mode", SERVING)
def test_stdio_options_are_refused_where_stdio_plays_no_part(mode, option):
    words = mode.split()
    _refused(words + option.split() + (["/tmp/x.sock"] if words[0] == "unix" else ["0"]))


# ---- datagrams -------------------------------------------------------------------------


def _udp_client(opts, tty_stderr=False):
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    s = Session(["udp", *opts, "127.0.0.1", str(peer.getsockname()[1])], tty_stderr)
    s.peers.append(peer)
    s.feed(DATA, close=False)
    peer.settimeout(5)
    first, addr = peer.recvfrom(100)
    peer.connect(addr)
    peer.send(REPLY)
    return s, peer, first


def _udp_server(opts, tty_stderr=False):
    port = free_port()
    s = Session(["udp", "-l", *opts, "127.0.0.1", str(port)], tty_stderr)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.connect(("127.0.0.1", port))
    s.peers.append(peer)
    deadline = time.monotonic() + 10
    got = b""
    while not got and time.monotonic() < deadline:  # until the server is up
        peer.send(REPLY)
        s.feed(DATA, close=False)
        got, _ = _read(peer, 0.3)
    return s, peer, got


@pytest.mark.parametrize("run", [_udp_client, _udp_server], ids=["udp", "udp -l"])
def test_datagram_relays_take_hexdump_crlf_and_progress(run):
    s, peer, first = run(["--hexdump", "-", "--crlf"])
    time.sleep(0.5)  # the tap writes right after the send the peer saw
    _, err = s.finish()
    assert first.startswith(b"a\r\n") and b"at offset" in err
    s, peer, first = run(["--progress"], tty_stderr=True)
    time.sleep(0.3)
    _, err = s.finish()
    assert b"sent" in err


def test_udp_echo_takes_hexdump_and_idle_and_refuses_stdio_options():
    port = free_port()
    s = Session(["udp", "-l", "--echo", "--hexdump", "-", "-i", "1", "127.0.0.1", str(port)],
                False)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.connect(("127.0.0.1", port))
    s.peers.append(peer)
    got, deadline = b"", time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        peer.send(REPLY)
        got, _ = _read(peer, 0.3)
    assert s.exited_within(5)  # idle after the echo: -i ends it
    _, err = s.finish()
    assert got == REPLY and b"received 2 bytes" in err and b"sent 2 bytes" in err
    for option in ("--crlf", "-q 1", "-d", "--send-only"):
        _refused(["udp", "-l", "--echo", *option.split(), "0"])


@pytest.mark.parametrize("args", [["udp", "--no-shutdown", "h", "1"],
                                  ["udp", "--exit-on-peer-close", "h", "1"],
                                  ["unix", "-t", "dgram", "--no-shutdown", "/tmp/x"],
                                  ["unix", "-t", "dgram", "--exit-on-peer-close", "/tmp/x"]])
def test_end_of_stream_options_are_refused_for_datagrams(args):
    _refused(args)


def _refused(args) -> None:
    out = subprocess.run([*PYSOCK, *args], stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=30)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count(b"\n") == 1 and out.stderr.startswith(b"pysock: ")
