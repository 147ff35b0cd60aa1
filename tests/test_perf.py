"""pysock perf against the real iperf3, both ways: the byte totals each side
reports agree, throughput figures agree within 2%, -J parses as iperf3's does,
and the server keeps serving while clients misbehave."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import struct
import subprocess
import time

import pytest

from conftest import PYSOCK, free_port, need_tool, serve_on_free_port, wait_listening

pytestmark = pytest.mark.timeout(120)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _sum(records: list[dict], direction: str, reverse: bool = False) -> dict:
    return next(r for r in records if r.get("type") == "summary" and r["stream"] is None
                and r["direction"] == direction and r["reverse"] == reverse)


def _close(a: float, b: float, tolerance: float = 0.02) -> bool:
    return abs(a - b) <= tolerance * max(a, b)


@pytest.fixture
def iperf3_server(procs):
    need_tool("iperf3")

    def start(*extra: str):
        return serve_on_free_port(procs, lambda port: ["iperf3", "-s", "-1", "-J", "-p",
                                                       str(port), *extra])
    return start


@pytest.fixture
def pysock_server(procs):
    def start(*extra: str):
        return serve_on_free_port(procs, lambda port: [*PYSOCK, "perf", "-s", "-p", str(port),
                                                       "--json", *extra])
    return start


def _until_seen(pipe, done, limit: float = 30.0) -> bytes:
    """What a running server writes to pipe, read until done(what came) holds (the
    event the test waits for), or limit seconds pass."""
    fd, got = pipe.fileno(), b""
    deadline = time.monotonic() + limit
    while not done(got) and (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        got += chunk
    return got


def _pysock_client(port: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*PYSOCK, "perf", "-p", str(port), *args, "127.0.0.1"],
                          capture_output=True, text=True, timeout=timeout)


def _iperf3_client(port: int, *args: str) -> dict:
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-J", *args],
                         capture_output=True, text=True, timeout=60)
    doc = json.loads(out.stdout)
    assert "error" not in doc, doc.get("error")
    return doc


@pytest.mark.parametrize("args", [["-t", "1"], ["-t", "1", "-P", "4"], ["-n", "200M"],
                                  ["-t", "1", "-O", "1"]])
def test_pysock_client_to_iperf3_server(iperf3_server, args):
    port, server = iperf3_server()
    out = _pysock_client(port, "--json", *args)
    assert out.returncode == 0, out.stderr
    theirs = json.loads(server.communicate(timeout=30)[0])["end"]["sum_received"]
    records = _json_lines(out.stdout)
    received = _sum(records, "receiver")
    assert received["bytes"] == theirs["bytes"]
    assert _close(received["bits_per_second"], theirs["bits_per_second"])
    if "-O" not in args:  # with -O each end starts counting at its own omit point
        assert _sum(records, "sender")["bytes"] >= theirs["bytes"]
    if "-n" in args:
        assert _sum(records, "sender")["bytes"] == 200 << 20
    if "-P" in args:
        assert {r["stream"] for r in records if r.get("type") != "summary"} == {1, 3, 4, 5}


def test_pysock_client_reverse_and_bidir_with_iperf3(iperf3_server):
    port, server = iperf3_server()
    out = _pysock_client(port, "--json", "-t", "1", "-R", "-P", "2")
    assert out.returncode == 0, out.stderr
    theirs = json.loads(server.communicate(timeout=30)[0])["end"]
    mine = _json_lines(out.stdout)
    assert _sum(mine, "sender", True)["bytes"] == theirs["sum_sent"]["bytes"]
    assert _sum(mine, "receiver", True)["bytes"] <= theirs["sum_sent"]["bytes"]

    port, server = iperf3_server()
    out = _pysock_client(port, "--json", "-t", "1", "--bidir")
    assert out.returncode == 0, out.stderr
    theirs = json.loads(server.communicate(timeout=30)[0])["end"]
    mine = _json_lines(out.stdout)
    assert _sum(mine, "receiver")["bytes"] == theirs["sum_received"]["bytes"]
    assert _sum(mine, "sender", True)["bytes"] == theirs["sum_sent_bidir_reverse"]["bytes"]


def test_pysock_iperf_json_document_parses_as_iperf3s(iperf3_server):
    port, server = iperf3_server()
    out = _pysock_client(port, "-J", "-t", "1", "-P", "2")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    theirs = json.loads(server.communicate(timeout=30)[0])["end"]["sum_received"]
    assert doc["end"]["sum_received"]["bytes"] == theirs["bytes"]
    assert doc["start"]["test_start"]["num_streams"] == 2
    assert len(doc["end"]["streams"]) == 2 and doc["intervals"]
    assert doc["end"]["sum_sent"]["sender"] is True


@pytest.mark.parametrize("args", [["-t", "1"], ["-t", "1", "-P", "4"], ["-t", "1", "-R"],
                                  ["-t", "1", "--bidir"], ["-n", "100M"]])
def test_iperf3_client_to_pysock_server(pysock_server, args):
    need_tool("iperf3")
    port, server = pysock_server("--one-off")
    doc = _iperf3_client(port, *args)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    rows = _json_lines(out)
    end = doc["end"]
    received = sum(r["bytes"] for r in rows if r["direction"] == "receiver")
    sent = sum(r["bytes"] for r in rows if r["direction"] == "sender")
    if "-R" not in args:
        assert received == end["sum_received"]["bytes"]
        mine = received * 8 / max(r["end_s"] for r in rows if r["direction"] == "receiver")
        assert _close(mine, end["sum_received"]["bits_per_second"])
    if "-R" in args:
        assert sent == end["sum_sent"]["bytes"]
    if "--bidir" in args:
        assert sent == end["sum_sent_bidir_reverse"]["bytes"]
    if "-n" in args:
        assert end["sum_sent"]["bytes"] == 100 << 20 == received


def test_many_clients_at_once(pysock_server):
    """8 iperf3 and 8 pysock clients against one server: every test completes."""
    need_tool("iperf3")
    port, server = pysock_server()
    clients = []
    for _ in range(8):
        clients.append(subprocess.Popen(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-J", "-n", "20M"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        clients.append(subprocess.Popen(
            [*PYSOCK, "perf", "-p", str(port), "--json", "-n", "20M", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [c.communicate(timeout=90) for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
    for client, (out, err) in zip(clients, outputs):
        assert client.returncode == 0, err
        if client.args[0] == "iperf3":
            assert json.loads(out)["end"]["sum_received"]["bytes"] == 20 << 20
        else:
            assert _sum(_json_lines(out), "receiver")["bytes"] == 20 << 20
    # each test's rows come once it has ended on the server's side too
    out = _until_seen(server.stdout, lambda got: got.count(b'"receiver"') >= 16)
    server.kill()
    out += server.communicate(timeout=10)[0]
    rows = [r for r in _json_lines(out.decode()) if r["direction"] == "receiver"]
    assert len(rows) == 16 and all(r["bytes"] == 20 << 20 for r in rows)


def _misbehave(port: int, kind: str) -> int:
    """One client that breaks the protocol; its port (the server names it on dropping)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    mine = sock.getsockname()[1]
    if kind == "cookie":
        sock.sendall(b"\x01\x02not a cookie at all\xff" + b"\0" * 16)
    else:
        sock.sendall(b"abcdefghijklmnopqrstuvwxyz2345672345\0")
        assert sock.recv(1) == b"\x09"  # PARAM_EXCHANGE
        if kind == "length":
            sock.sendall(struct.pack("!I", 0xFFFFFFF0))
        elif kind == "params":
            body = b'{"tcp": true, "parallel": -3}'
            sock.sendall(struct.pack("!I", len(body)) + body)
        elif kind == "vanish":
            body = b'{"tcp":true,"time":30,"parallel":1,"len":131072}'
            sock.sendall(struct.pack("!I", len(body)) + body)
            assert sock.recv(1) == b"\x0a"  # CREATE_STREAMS
            data = socket.create_connection(("127.0.0.1", port), timeout=5)
            data.sendall(b"abcdefghijklmnopqrstuvwxyz2345672345\0")
            sock.recv(2)  # TEST_START, TEST_RUNNING
            data.sendall(b"x" * 100000)
            data.close()
    sock.close()
    return mine


def test_server_survives_misbehaving_clients(pysock_server):
    need_tool("iperf3")
    port, server = pysock_server()
    good = subprocess.Popen(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-J", "-t", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        ports = [_misbehave(port, kind) for kind in ("cookie", "length", "params", "vanish")]
        out, err = good.communicate(timeout=30)
    finally:
        if good.poll() is None:
            good.kill()
    assert good.returncode == 0, err
    assert json.loads(out)["end"]["sum_received"]["bytes"] > 0
    after = _iperf3_client(port, "-n", "10M")
    assert after["end"]["sum_received"]["bytes"] == 10 << 20
    marks = [f"127.0.0.1:{p} dropped: " for p in ports]
    err = _until_seen(server.stderr, lambda got: all(m.encode() in got for m in marks))
    server.kill()
    err = (err + server.communicate(timeout=10)[1]).decode()
    dropped = [line for line in err.splitlines() if "dropped" in line]
    # on a shared machine a port scan may connect and reset before its cookie: not ours
    dropped = [line for line in dropped if any(m in line for m in marks)
               or not line.endswith("reading the cookie: Connection reset by peer")]
    assert len(dropped) == 4, err
    why = [[line for line in dropped if m in line] for m in marks]  # one line each client
    assert all(len(lines) == 1 for lines in why), err
    assert "malformed cookie" in why[0][0] and "claims" in why[1][0], err
    assert "parallel" in why[2][0] and "Traceback" not in err, err


def test_a_dropped_test_leaves_a_same_cookie_test_its_streams(pysock_server):
    """Test A and test B came with one cookie; A is dropped after B began waiting for
    its data stream: that stream still joins B (A's end must not unlist B)."""
    port, server = pysock_server()
    cookie = b"abcdefghijklmnopqrstuvwxyz2345672345\0"
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    a.sendall(cookie)
    assert a.recv(1) == b"\x09"  # PARAM_EXCHANGE: A is a test
    b = socket.create_connection(("127.0.0.1", port), timeout=10)
    b.sendall(cookie)
    assert b.recv(1) == b"\x09"
    body = b'{"tcp":true,"time":1,"parallel":1,"len":131072}'
    b.sendall(struct.pack("!I", len(body)) + body)
    assert b.recv(1) == b"\x0a"  # CREATE_STREAMS: B waits under the cookie
    body = b'{"tcp": true, "parallel": -3}'
    a.sendall(struct.pack("!I", len(body)) + body)
    assert a.recv(1) == b""  # A dropped and closed
    data = socket.create_connection(("127.0.0.1", port), timeout=10)
    data.sendall(cookie)
    assert b.recv(1) == b"\x01"  # TEST_START: the stream joined B
    for sock in (a, b, data):
        sock.close()


def test_max_tests_refuses_like_a_busy_iperf3(pysock_server):
    need_tool("iperf3")
    port, server = pysock_server("--max-tests", "1")
    first = subprocess.Popen([*PYSOCK, "perf", "-p", str(port), "-t", "3", "127.0.0.1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        second = _pysock_client(port, "-t", "1")
        assert second.returncode == 1
        assert "busy" in second.stderr
        assert first.wait(timeout=30) == 0
    finally:
        if first.poll() is None:
            first.kill()


def test_client_errors_and_usage(port):
    refused = _pysock_client(port, "-t", "1")
    assert refused.returncode == 1 and refused.stderr.startswith("pysock: ")
    for args in (["-t", "1", "-n", "1M"], ["-R", "--bidir"], ["-s", "-P", "2"],
                 ["--one-off"], ["-n", "lots"], ["-s", "-t", "3"], ["-u", "-Z"],
                 ["-u", "--length", "8"], ["-b", "fast"], ["-s", "-u"], ["--rr", "-P", "2"],
                 ["--rate", "10"], ["--rr", "-J"], ["-u", "--unix", "x.sock"]):
        out = subprocess.run([*PYSOCK, "perf", *args, "127.0.0.1"], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("pysock: ") and len(out.stderr.splitlines()) == 1


def test_plain_output_is_iperf3_like(pysock_server):
    port, server = pysock_server("--one-off")
    out = _pysock_client(port, "-t", "1", "-P", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"Connecting to host 127.0.0.1, port {port}"
    assert any(line.startswith("[SUM]") and line.endswith("sender") for line in lines)
    assert any(line.startswith("[SUM]") and line.endswith("receiver") for line in lines)
    assert lines[-1] == "iperf Done."
    server.communicate(timeout=30)


# ---- UDP -------------------------------------------------------------------------------------


def test_pysock_udp_client_to_iperf3_server(iperf3_server):
    port, server = iperf3_server()
    out = _pysock_client(port, "--json", "-u", "-b", "20M", "-t", "1")
    assert out.returncode == 0, out.stderr
    theirs = json.loads(server.communicate(timeout=30)[0])["end"]["sum_received"]
    mine = _sum(_json_lines(out.stdout), "receiver")
    assert mine["bytes"] == theirs["bytes"] and mine["packets"] == theirs["packets"]
    assert mine["lost_packets"] == theirs["lost_packets"] == 0
    assert _close(mine["bits_per_second"], theirs["bits_per_second"])
    assert _close(mine["bits_per_second"], 20e6, 0.1)  # -b holds the rate


@pytest.mark.parametrize("args", [["-u", "-b", "20M"], ["-u", "-b", "20M", "-R"],
                                  ["-u", "-b", "5M", "--bidir", "-P", "2"]])
def test_iperf3_udp_client_to_pysock_server(pysock_server, args):
    need_tool("iperf3")
    port, server = pysock_server("--one-off")
    end = _iperf3_client(port, "-t", "1", *args)["end"]
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    rows = _json_lines(out)
    if "-R" in args:  # the server sent: iperf3's sender figures are the server's counts
        assert sum(r["bytes"] for r in rows) == end["sum_sent"]["bytes"]
        assert sum(r["packets"] for r in rows) == end["sum_sent"]["packets"]
    else:
        received = [r for r in rows if r["direction"] == "receiver"]
        assert sum(r["bytes"] for r in received) == end["sum_received"]["bytes"]
        assert sum(r["packets"] for r in received) == end["sum_received"]["packets"]
        assert all(r["lost_packets"] == 0 for r in received)


def test_udp_loss_equals_the_nftables_drop_counter(lab):
    """Every 20th data datagram dropped at the server's host: the loss pysock
    reports is the rule's counter, on both ends."""
    from netns import two_hosts
    need_tool("nft")
    a, b = two_hosts(lab)
    port = free_port()
    b.nft(f"""table inet pysockperf {{
  counter dropped {{}}
  chain input {{
    type filter hook input priority 0; policy accept;
    udp dport {port} udp length 1008 numgen inc mod 20 19 counter name dropped drop
  }}
}}""")
    server = b.popen(*PYSOCK, "perf", "-s", "--one-off", "--json", "-p", str(port))
    try:
        deadline = time.monotonic() + 10
        while port not in _tcp_listening(b) and time.monotonic() < deadline:
            time.sleep(0.05)
        # 990 datagrams: the 20th, 40th, ... 980th are dropped, the last one arrives
        out = a.run(*PYSOCK, "perf", "--json", "-u", "-b", "8M", "--length", "1000",
                    "-n", str(990 * 1000), "-p", str(port), b.addr, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        rows, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    dropped = b.nft_counter("pysockperf", "dropped")
    assert dropped == 49
    mine = _sum(_json_lines(out.stdout), "receiver")
    assert mine["lost_packets"] == dropped and mine["packets"] == 990
    theirs = [r for r in _json_lines(rows.decode()) if r["direction"] == "receiver"]
    assert theirs[0]["lost_packets"] == dropped


def _tcp_listening(host) -> set[int]:
    out = host.run("ss", "-Htln").stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


# ---- Unix sockets and request/response -----------------------------------------------------


def test_throughput_over_unix_sockets(procs, tmp_path):
    path = str(tmp_path / "perf.sock")
    server = procs.pysock("perf", "-s", "--one-off", "--json", "--unix", path)
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    out = subprocess.run([*PYSOCK, "perf", "--json", "-n", "300M", "-P", "2", "--unix", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    mine = _json_lines(out.stdout)
    assert _sum(mine, "sender")["bytes"] == _sum(mine, "receiver")["bytes"] == 300 << 20
    rows = _json_lines(server.communicate(timeout=30)[0].decode())
    assert sum(r["bytes"] for r in rows) == 300 << 20
    assert not os.path.exists(path)  # the server removed its socket file


def _rr_server(procs, tmp_path, proto: str) -> list[str]:
    """A pysock perf server on TCP/UDP or a Unix path, serving; the client's place options."""
    port, path = free_port(), str(tmp_path / "rr.sock")
    where = ["--unix", path] if proto == "unix" else ["-p", str(port)]
    server = procs.pysock("perf", "-s", *where)
    if proto == "unix":
        deadline = time.monotonic() + 10
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.02)
    else:
        wait_listening(port, proc=server)
    return where


@pytest.mark.parametrize("proto", ["tcp", "udp", "unix"])
def test_request_response_percentiles(procs, tmp_path, proto):
    where = _rr_server(procs, tmp_path, proto)
    extra = ["-u"] if proto == "udp" else []
    target = [] if proto == "unix" else ["127.0.0.1"]
    out = subprocess.run([*PYSOCK, "perf", "--rr", "--json", "-t", "1", "--request-size", "64",
                          "--response-size", "512", *extra, *where, *target],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (record,) = _json_lines(out.stdout)
    assert record["protocol"] == proto and record["transactions"] > 100
    assert 0 < record["p50_us"] <= record["p90_us"] <= record["p99_us"] <= record["p999_us"] \
        <= record["max_us"]
    assert record["transactions_per_s"] == pytest.approx(record["transactions"] /
                                                         record["seconds"])
    paced = subprocess.run([*PYSOCK, "perf", "--rr", "--json", "-t", "1", "--rate", "200",
                            *extra, *where, *target], capture_output=True, text=True, timeout=60)
    assert paced.returncode == 0, paced.stderr
    assert 150 <= _json_lines(paced.stdout)[0]["transactions"] <= 201


@pytest.mark.parametrize("proto", ["tcp", "unix"])
def test_request_response_with_messages_that_arrive_in_pieces(procs, tmp_path, proto):
    """1 MiB each way: neither end gets a whole message from one receive, so both
    take the path that gathers the rest (and a lost piece would hang, not pass)."""
    where = _rr_server(procs, tmp_path, proto)
    target = [] if proto == "unix" else ["127.0.0.1"]
    for request, response in ((1 << 20, 1), (1, 1 << 20)):
        out = subprocess.run([*PYSOCK, "perf", "--rr", "--json", "-t", "1", "--request-size",
                              str(request), "--response-size", str(response), *where, *target],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        (record,) = _json_lines(out.stdout)
        assert record["transactions"] > 10 and record["lost"] == 0
        assert record["request"] == request and record["response"] == response


def test_request_response_client_gives_up_on_a_silent_server():
    """A server that takes the parameters and then answers nothing: the client
    ends after its stall limit (10 s) with one line and exit 1, never hangs."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = subprocess.Popen([*PYSOCK, "perf", "--rr", "-t", "1", "-p", str(port),
                                   "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                marker = b""
                while len(marker) < 37:
                    marker += conn.recv(37 - len(marker))
                conn.sendall(bytes([100]))  # RR_READY
                began = time.monotonic()
                out, err = client.communicate(timeout=60)
                waited = time.monotonic() - began
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    assert client.returncode == 1, err
    assert err.startswith("pysock: ") and "stopped answering" in err and len(err.splitlines()) == 1
    assert 9 <= waited < 16  # one stall limit, not one per receive


def test_request_response_against_iperf3_says_so(iperf3_server):
    port, server = iperf3_server()
    out = _pysock_client(port, "--rr", "-t", "1")
    assert out.returncode == 1
    assert "iperf3" in out.stderr and "pysock perf -s" in out.stderr


def test_live_view_on_a_terminal(pysock_server):
    """On a terminal: the live table with a row per interval and stream, then the summary."""
    import pty
    port, server = pysock_server("--one-off")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([*PYSOCK, "perf", "-t", "2", "-P", "2", "-p", str(port),
                                 "127.0.0.1"], stdout=follower, stderr=subprocess.PIPE,
                                env=dict(os.environ, COLUMNS="120", TERM="xterm"))
        os.close(follower)
        follower = None
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    text = b"".join(chunks).decode(errors="replace")
    assert "Trend" in text and "Cwnd" in text  # the live table's columns
    assert "summary" in text and "receiver" in text and "sender" in text
    server.communicate(timeout=30)


@pytest.mark.parametrize("pace", [(), ("-b", "400M")], ids=["unpaced", "paced"])
def test_an_unpaced_tcp_reader_wakes_once_a_full_buffer_waits(procs, pace):
    """The receiving stream of an unpaced TCP test sleeps until 512 KiB wait
    (SO_RCVLOWAT), so its reads take up to that much each; a paced stream keeps the
    kernel's default, so its intervals do not lag. Every byte is counted either way."""
    need_tool("strace")
    port, size = free_port(), 16 << 20
    proc = procs.start(["strace", "-f", "-e", "trace=setsockopt,recvfrom", "-o", "/dev/stderr",
                        *PYSOCK, "perf", "-s", "--one-off", "-p", str(port), "127.0.0.1"],
                       stdout=subprocess.DEVNULL)
    wait_listening(port, proc=proc)
    client = _pysock_client(port, "-n", str(size), *pace, "--json")
    assert client.returncode == 0, client.stderr
    _, err = proc.communicate(timeout=30)
    reads = [int(n) for n in re.findall(rb"recvfrom\(\d+, .*, 524288, 0, NULL, NULL\) = (\d+)",
                                        err)]
    assert _sum(_json_lines(client.stdout), "receiver")["bytes"] == size
    if pace:
        assert b"SO_RCVLOWAT" not in err
    else:
        assert b"SO_RCVLOWAT, [524288]" in err
        assert max(reads) > 128 * 1024  # more than the reads of the 128 KiB buffer before
