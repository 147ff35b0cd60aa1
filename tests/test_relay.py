"""The relay and its pumps on socketpairs and pipes: every EOF rule, every pump."""

import hashlib
import os
import socket
import threading

import pytest

from pysock.net import pump
from pysock.net.endpoints import SocketChannel, StdioChannel
from pysock.net.relay import Policy, RelayError, relay


class Pipes:
    """stdin/stdout stand-ins: we write into `stdin_w` and read from `stdout_r`."""

    def __init__(self):
        self.stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.channel = StdioChannel(self.stdin_r, self.stdout_w)

    def feed(self, data: bytes, close: bool = True) -> threading.Thread:
        def go():
            view = memoryview(data)
            while view:
                view = view[os.write(self.stdin_w, view):]
            if close:
                os.close(self.stdin_w)
        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t

    def drain(self) -> tuple[threading.Thread, list[bytes]]:
        chunks: list[bytes] = []

        def go():
            while chunk := os.read(self.stdout_r, 1 << 16):
                chunks.append(chunk)
        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t, chunks


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        mine = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    return mine, theirs


PAIRS = {"tcp": tcp_pair, "unix": socket.socketpair}


def run_relay(local, remote_sock, policy=Policy(), taps=()):
    box = {}
    remote = SocketChannel(remote_sock)

    def go():
        try:
            box["result"] = relay(local, remote, policy, taps)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, box


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("size", [0, 1, 65536, 3 << 20])
def test_both_directions_binary_clean(size, pair):
    data = os.urandom(size)
    pipes = Pipes()
    mine, theirs = PAIRS[pair]()
    pipes.feed(data)
    drain, out = pipes.drain()
    t, box = run_relay(pipes.channel, mine)
    # the peer: read everything (until our FIN), then answer, then close
    got = read_all(theirs)
    theirs.sendall(data[::-1])
    theirs.close()
    t.join(10)
    drain.join(10)
    assert "error" not in box
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert b"".join(out) == data[::-1]
    assert box["result"].sent == size and box["result"].received == size
    assert box["result"].first_eof == "input"


def test_input_eof_sends_fin_and_waits_for_the_reply():
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.feed(b"QUIT\r\n")
    drain, out = pipes.drain()
    t, box = run_relay(pipes.channel, mine)
    assert read_all(theirs) == b"QUIT\r\n"  # returns only because FIN arrived
    theirs.sendall(b"221 bye\r\n")
    theirs.close()
    t.join(10)
    drain.join(10)
    assert b"".join(out) == b"221 bye\r\n"


def test_no_shutdown_keeps_write_side_open():
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.feed(b"x")
    pipes.drain()
    t, box = run_relay(pipes.channel, mine, Policy(shutdown_on_eof=False, quit_after_eof=0.3))
    theirs.settimeout(0.2)
    assert theirs.recv(10) == b"x"
    with pytest.raises(socket.timeout):  # no FIN came
        theirs.recv(10)
    t.join(5)
    assert box["result"].reason.startswith("quit 0.3 s")


def test_peer_close_keeps_sending_piped_input():
    data = os.urandom(2 << 20)
    pipes = Pipes()
    mine, theirs = tcp_pair()
    theirs.shutdown(socket.SHUT_WR)  # the peer is done talking at once
    pipes.drain()
    t, box = run_relay(pipes.channel, mine)
    pipes.feed(data)
    assert read_all(theirs) == data  # the whole upload still arrives
    theirs.close()
    t.join(10)
    assert box["result"].first_eof == "peer"


def test_exit_on_peer_close():
    pipes = Pipes()
    mine, theirs = tcp_pair()
    theirs.shutdown(socket.SHUT_WR)
    pipes.drain()
    pipes.feed(b"more", close=False)  # input never ends
    t, box = run_relay(pipes.channel, mine, Policy(exit_on_peer_close=True))
    t.join(5)
    assert not t.is_alive()
    # the core states the fact; the advice key is how the command line names the flag
    assert (box["result"].reason, box["result"].advice) == ("peer closed", "relay_peer_closed")


def test_reset_is_an_error_with_the_reason():
    pipes = Pipes()
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    pipes.drain()
    pipes.feed(b"", close=False)
    t, box = run_relay(pipes.channel, client)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    conn.close()  # linger 0: RST
    t.join(5)
    assert isinstance(box.get("error"), RelayError)
    assert "connection reset by 127.0.0.1" in str(box["error"])
    server.close()


def test_idle_timeout():
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.drain()
    pipes.feed(b"", close=False)
    t, box = run_relay(pipes.channel, mine, Policy(idle_timeout=0.3))
    t.join(5)
    assert "idle for 0.3 s" in str(box["error"])
    theirs.close()


def test_crlf_and_byte_taps_see_the_bytes():
    seen = []

    def tap(direction, data):
        seen.append((direction, bytes(data)))
    tap.sees_bytes = True
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.feed(b"a\nb\r\nc\n")
    pipes.drain()
    t, box = run_relay(pipes.channel, mine, Policy(crlf=True), [tap])
    assert read_all(theirs) == b"a\r\nb\r\nc\r\n"
    theirs.close()
    t.join(5)
    assert seen == [(">", b"a\r\nb\r\nc\r\n")]


def test_line_endings_across_chunks():
    conv = pump.LineEndings()
    assert conv(b"x\r") + conv(b"\ny\n") == b"x\r\ny\r\n"


def test_send_only_and_recv_only():
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.feed(b"up")
    t, box = run_relay(pipes.channel, mine, Policy(send_only=True))
    t.join(5)
    assert read_all(theirs) == b"up" and box["result"].received == 0
    pipes2 = Pipes()
    mine2, theirs2 = tcp_pair()
    pipes2.feed(b"never read", close=False)
    drain, out = pipes2.drain()
    t2, box2 = run_relay(pipes2.channel, mine2, Policy(recv_only=True))
    theirs2.sendall(b"down")
    theirs2.close()
    t2.join(5)
    drain.join(5)
    assert b"".join(out) == b"down" and box2["result"].sent == 0


@pytest.mark.parametrize("kinds", [("pipe", "socket"), ("pipe", "null"), ("socket", "pipe"),
                                   ("socket", "null"), ("socket", "null", "discard"),
                                   ("file", "socket"), ("socket", "file")])
def test_each_pump_moves_every_byte(tmp_path, kinds):
    data = os.urandom((1 << 20) + 12345)
    src_kind, dst_kind = kinds[:2]
    src_path = tmp_path / "src"
    src_path.write_bytes(data)
    a, b = tcp_pair()
    r, w = os.pipe()
    if src_kind == "pipe":
        threading.Thread(target=lambda: (os.write(w, data) and None, os.close(w)),
                         daemon=True).start()
        src = r
    elif src_kind == "file":
        src = os.open(src_path, os.O_RDONLY)
    else:
        threading.Thread(target=lambda: (b.sendall(data), b.shutdown(socket.SHUT_WR)),
                         daemon=True).start()
        src = a.fileno()
    if dst_kind == "socket":
        dst = a.fileno()
        sink_thread = threading.Thread(target=lambda: box.setdefault("got", read_all(b)),
                                       daemon=True)
        box: dict = {}
        sink_thread.start()
    elif dst_kind == "pipe":
        dst = w
        box = {}
        sink_thread = threading.Thread(
            target=lambda: box.setdefault("got", b"".join(iter(lambda: os.read(r, 1 << 16), b""))),
            daemon=True)
        sink_thread.start()
    elif dst_kind == "null":
        dst = os.open(os.devnull, os.O_WRONLY)
    else:
        dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT)
    discard = SocketChannel(a).discard if "discard" in kinds else None
    p = pump.choose(src, src_kind, dst, dst_kind, must_copy=False, discard=discard)
    expected = {("pipe", "socket"): pump.CopyPump, ("pipe", "null"): pump.SplicePump,
                ("socket", "pipe"): pump.SplicePump, ("socket", "null"): pump.PipedSplicePump,
                ("socket", "null", "discard"): pump.DiscardPump,
                ("file", "socket"): pump.SendfilePump, ("socket", "file"): pump.PipedSplicePump}
    assert type(p) is expected[kinds]
    a.setblocking(False)
    import select
    while True:
        try:
            n = p.step()
        except pump.Blocked as blocked:
            poller = select.poll()
            poller.register(blocked.fd, blocked.event)
            poller.poll(5000)
            continue
        if n == 0:
            break
    p.close()
    assert p.moved == len(data)
    if dst_kind == "socket":
        a.shutdown(socket.SHUT_WR)
        sink_thread.join(10)
        assert box["got"] == data
    elif dst_kind == "pipe":
        os.close(w)
        sink_thread.join(10)
        assert box["got"] == data
    elif dst_kind == "file":
        assert (tmp_path / "dst").read_bytes() == data
