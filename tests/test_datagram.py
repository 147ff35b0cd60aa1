"""Datagram relaying, measurement accounting, Unix listeners and descriptor passing,
on socketpairs and loopback sockets."""

import os
import socket
import stat
import threading
import time

import pytest

from pysock.errors import NetworkError, UsageError
from pysock.net import ancillary, measure, multicast
from pysock.net.address import parse_unix
from pysock.net.datagram import DatagramChannel, Framer, Framing
from pysock.net.endpoints import StdioChannel
from pysock.net.pump import grow_pipe
from pysock.net.relay import Policy, RelayError, relay
from pysock.net.unixsock import Outgoing, UnixChannel, describe_fd, listen_unix


def stdio_pipes(data: bytes):
    r, w = os.pipe()
    out_r, out_w = os.pipe()
    grow_pipe(w)
    os.write(w, data)
    os.close(w)
    return StdioChannel(r, out_w), out_r


def drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def recv_all(sock, timeout=0.3):
    sock.settimeout(timeout)
    got = []
    try:
        while True:
            got.append(sock.recv(1 << 20))
    except (TimeoutError, BlockingIOError):
        return got


# ---- framing --------------------------------------------------------------------


def test_framer_lines_keep_newlines_and_send_the_last_unterminated_line():
    f = Framer(Framing("line"))
    assert f.feed(b"one\ntw") == [b"one\n"]
    assert f.feed(b"o\nthree") == [b"two\n"]
    assert f.end() == [b"three"]


def test_framer_chunks_and_raw():
    f = Framer(Framing("chunk", 4))
    assert f.feed(b"abcdefghij") == [b"abcd", b"efgh"]
    assert f.end() == [b"ij"]
    assert Framer(Framing("raw")).feed(b"a\nb\nc") == [b"a\nb\nc"]


@pytest.mark.parametrize("framing,expected", [
    (Framing("line"), [b"a\n", b"bb\n", b"ccc"]),
    (Framing("chunk", 2), [b"a\n", b"bb", b"\nc", b"cc"]),
])
def test_relay_keeps_boundaries_both_ways(framing, expected):
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    local, out = stdio_pipes(b"a\nbb\nccc")
    for reply in (b"r1", b"", b"r2"):  # an empty datagram is not the end
        theirs.send(reply)
    result = relay(local, DatagramChannel(mine), Policy(quit_after_eof=0.2, framing=framing))
    assert recv_all(theirs) == expected
    assert drain(out) == b"r1r2"
    assert (result.datagrams_sent, result.datagrams_received) == (len(expected), 3)
    assert result.status == 0


def test_relay_reports_truncated_datagrams_and_fails():
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    local, out = stdio_pipes(b"")
    theirs.send(b"x" * 100)
    seen = []

    class Tap:
        sees_datagrams = True

        def datagram(self, direction, d):
            seen.append((d.size, len(d.data), d.truncated))
    result = relay(local, DatagramChannel(mine, bufsize=10), Policy(quit_after_eof=0.2), [Tap()])
    assert seen == [(100, 10, True)]
    assert result.truncated == 1 and result.status == 1
    assert drain(out) == b"x" * 10


def test_udp_send_too_big_names_size_and_limit():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    local, _ = stdio_pipes(b"y" * 70000)
    with pytest.raises(NetworkError, match="70000 bytes is larger than UDP allows over IPv4 "
                                           r"\(65507 bytes\)"):
        relay(local, DatagramChannel(client), Policy(framing=Framing("chunk", 70000)))
    server.close()


def test_connected_udp_refused_is_no_one_listening():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sock.connect(("127.0.0.1", port))
    local, _ = stdio_pipes(b"ping\n")
    with pytest.raises(RelayError, match=f"no one is listening on 127.0.0.1:{port}/udp"):
        relay(local, DatagramChannel(sock), Policy(quit_after_eof=2))


def test_unconnected_channel_replies_to_the_last_sender():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    a, b = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    a.sendto(b"from a", server.getsockname())
    b.sendto(b"from b", server.getsockname())
    channel = DatagramChannel(server)
    assert channel.recv_datagram().data == b"from a"
    assert channel.recv_datagram().data == b"from b"
    channel.send(b"reply")
    b.settimeout(2)
    assert b.recv(100) == b"reply"


def test_seqpacket_end_is_eof():
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.send(b"last")
    theirs.close()
    channel = DatagramChannel(mine)
    assert channel.recv_datagram().data == b"last"
    assert channel.recv_datagram() is None


# ---- measurement ------------------------------------------------------------------


def test_stats_count_loss_duplicates_reordering():
    stats = measure.Stats()
    for seq in (0, 1, 3, 2, 3, 5):
        stats.add(measure.HEADER.pack(measure.MAGIC, measure.DATA, 7, seq, 1000), 2000)
    stats.add(b"not ours", 0)
    stats.add(measure.HEADER.pack(measure.MAGIC, measure.END, 7, 8, 0), 0)
    record = stats.record(final=True)
    assert (record["sent"], record["received"], record["lost"]) == (8, 5, 3)
    assert (record["duplicated"], record["reordered"]) == (1, 1)
    assert stats.foreign == 1 and record["complete"]


def test_jitter_follows_rfc3550():
    stats = measure.Stats()
    transits = [10, 30, 10, 30]  # |D| = 20 ms each time after the first
    for seq, transit in enumerate(transits):
        sent = seq * 10_000_000
        stats.add(measure.HEADER.pack(measure.MAGIC, measure.DATA, 1, seq, sent),
                  sent + transit * 1_000_000)
    expected = 0.0
    for _ in range(3):
        expected += (20e6 - expected) / 16
    assert stats.jitter_ns == pytest.approx(expected)


def test_send_and_receive_on_loopback():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    box = {}
    t = threading.Thread(target=lambda: box.update(stats=measure.receive(
        DatagramChannel(server), idle_timeout=3, first_timeout=5)))
    t.start()
    report = measure.send(DatagramChannel(client), rate=2000, count=200, duration=None, size=100)
    t.join(10)
    assert report.sent == 200
    record = box["stats"].record(final=True)
    assert record["received"] == 200 and record["lost"] == 0 and record["complete"]


# ---- multicast ----------------------------------------------------------------------


def test_group_addresses():
    assert str(multicast.group_address("239.1.2.3")) == "239.1.2.3"
    assert multicast.group_address("ff05::42").version == 6
    with pytest.raises(UsageError, match="not a multicast address"):
        multicast.group_address("10.0.0.1")
    with pytest.raises(UsageError, match="no network interface named 'nope0'"):
        multicast.interface_index("nope0")


# ---- Unix listeners -----------------------------------------------------------------


@pytest.fixture
def sockdir(tmp_path):
    return tmp_path


def test_listener_replaces_a_stale_file_and_removes_its_own(sockdir):
    path = str(sockdir / "s.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()  # the file stays behind
    listener = listen_unix(parse_unix(path))
    assert listener.replaced_stale
    listener.close()
    assert not os.path.exists(path)


def test_listener_refuses_a_live_server_naming_it(sockdir):
    path = str(sockdir / "live.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    with pytest.raises(NetworkError, match=rf"in use by python\S* \(pid {os.getpid()}\)"):
        listen_unix(parse_unix(path))
    assert os.path.exists(path)
    live.close()


def test_listener_leaves_other_files_alone(sockdir):
    path = sockdir / "plain"
    path.write_text("keep me")
    with pytest.raises(NetworkError, match="is not a socket; leaving it alone"):
        listen_unix(parse_unix(str(path)))
    assert path.read_text() == "keep me"


def test_mode_is_set_at_creation(sockdir):
    path = str(sockdir / "m.sock")
    umask = os.umask(0)
    try:
        with listen_unix(parse_unix(path), mode=0o640):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
        assert os.umask(umask) == 0  # restored
    finally:
        os.umask(umask)


def test_abstract_names_touch_no_file(sockdir):
    name = f"pysock-test-{os.getpid()}"
    with listen_unix(parse_unix("@" + name)) as listener:
        assert listener.sock.getsockname() == b"\0" + name.encode()
        with pytest.raises(NetworkError, match=f"abstract name @{name} is in use"):
            listen_unix(parse_unix("@" + name))
    with pytest.raises(UsageError, match="abstract"):
        listen_unix(parse_unix("@" + name), mode=0o600)


# ---- passing descriptors and credentials -------------------------------------------------


def test_descriptors_travel_with_the_first_data(tmp_path):
    f = tmp_path / "passed.txt"
    f.write_text("contents")
    fd = os.open(f, os.O_RDONLY)
    mine, theirs = socket.socketpair()
    received = []
    sender = UnixChannel(mine, Outgoing([fd]))
    receiver = UnixChannel(theirs, on_ancillary=lambda extra: received.extend(
        describe_fd(x) for x in extra.fds))
    sender.send(b"data")
    sender.send(b"more")
    assert receiver.recv(4) == b"data"
    assert receiver.recv(4) == b"more"
    assert [(i.target, i.kind, i.size) for i in received] == [(str(f), "regular file", 8)]


def test_descriptors_without_data_ride_on_a_nul_byte():
    r, w = os.pipe()
    mine, theirs = socket.socketpair()
    sender = UnixChannel(mine, Outgoing([r]))
    kinds = []
    receiver = UnixChannel(theirs, on_ancillary=lambda extra: kinds.extend(
        describe_fd(x).kind for x in extra.fds))
    sender.shutdown_write()
    assert receiver.recv(10) == b"\0"
    assert kinds == ["pipe"]


def test_credentials_are_sent_and_peer_credentials_read():
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ancillary.want_credentials(theirs)
    channel = DatagramChannel(mine)
    channel.outgoing = Outgoing(creds=ancillary.Credentials(os.getpid(), 1234, 4321))
    channel.send(b"who")
    got = DatagramChannel(theirs).recv_datagram()
    assert (got.creds.uid, got.creds.gid) == (1234, 4321)
    stream_a, stream_b = socket.socketpair()
    creds = ancillary.peer_credentials(stream_a)
    assert (creds.pid, creds.uid) == (os.getpid(), os.getuid())
    assert "python" in creds.describe()
    time.sleep(0)


def test_a_first_sender_already_gone_is_still_heard(tmp_path):
    from pysock.net.datagram import first_sender, talk_to
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "d.sock"))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    client.bind("")
    client.sendto(b"last words", str(tmp_path / "d.sock"))
    client.close()
    assert talk_to(server, first_sender(server, 5)) is False
    assert DatagramChannel(server).recv_datagram().data == b"last words"
