"""pysock udp end to end: against nc/ncat/socat both ways, the nc -u -l rules,
--show in three renderings, truncation, multicast and broadcast inside namespaces,
and --measure checked against nftables counters."""

import json
import os
import pty
import select
import socket
import subprocess
import time

import pytest

from conftest import PYSOCK, free_port, need_tool, run_pysock
from netns import two_hosts


def udp_bound(port: int) -> bool:
    suffix = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            if any(line.split()[1].endswith(suffix) for line in f if len(line.split()) > 1):
                return True
    return False


def wait_udp(port: int, proc=None, timeout: float = 10, host=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.stderr.read()!r}")
        if host is not None:
            out = host.run("ss", "-Hnua", "sport", f"= :{port}", check=False).stdout
            if out.strip():
                return
        elif udp_bound(port):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing bound to udp port {port}")


def udp_server(host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(10)
    return s


def read_until(stream, want: bytes, timeout: float = 10) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while want not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    return got


# ---- client ---------------------------------------------------------------------------


def test_each_line_is_one_datagram_and_replies_come_back():
    server = udp_server()
    port = server.getsockname()[1]
    proc = subprocess.Popen([*PYSOCK, "udp", "127.0.0.1", str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"first line\nsecond\n")
    proc.stdin.flush()
    got = [server.recvfrom(100) for _ in range(2)]
    assert [d for d, _ in got] == [b"first line\n", b"second\n"]
    server.sendto(b"reply one", got[0][1])
    server.sendto(b"reply two", got[0][1])
    proc.stdin.close()
    proc.stdin = None
    out, err = proc.communicate(timeout=10)
    assert out == b"reply onereply two", err
    assert proc.returncode == 0


@pytest.mark.parametrize("args,data,expected", [
    (["--chunk", "3"], b"abcdefgh", [b"abc", b"def", b"gh"]),
    (["--crlf"], b"a\nb\n", [b"a\r\n", b"b\r\n"]),
])
def test_chunk_and_crlf(args, data, expected):
    server = udp_server()
    port = server.getsockname()[1]
    out = run_pysock("udp", "-q", "0", *args, "127.0.0.1", str(port), input=data)
    assert out.returncode == 0, out.stderr
    assert [server.recv(100) for _ in expected] == expected


def test_raw_sends_what_one_read_returned():
    server = udp_server()
    port = server.getsockname()[1]
    out = run_pysock("udp", "-q", "0", "--raw", "127.0.0.1", str(port), input=b"a\nb\nc")
    assert out.returncode == 0
    assert server.recv(100) == b"a\nb\nc"


def test_port_unreachable_is_reported():
    port = free_port()
    out = run_pysock("udp", "127.0.0.1", str(port), input=b"anyone?\n")
    assert out.returncode == 1
    assert out.stderr.decode() == f"pysock: no one is listening on 127.0.0.1:{port}/udp\n"


def test_datagram_too_big_names_size_and_limit():
    server = udp_server()
    out = run_pysock("udp", "--chunk", "70000", "127.0.0.1", str(server.getsockname()[1]),
                     input=b"z" * 70000)
    assert out.returncode == 1
    assert "datagram of 70000 bytes is larger than UDP allows over IPv4 (65507 bytes)" in \
        out.stderr.decode()


def test_ipv6_client():
    server = udp_server("::1", socket.AF_INET6)
    out = run_pysock("udp", "-q", "0", "::1", str(server.getsockname()[1]), input=b"six\n")
    assert out.returncode == 0
    assert server.recv(10) == b"six\n"


# ---- peers -------------------------------------------------------------------------------


PEER_SERVERS = {
    "nc": lambda p: ["nc", "-u", "-l", "127.0.0.1", str(p)],
    "ncat": lambda p: ["ncat", "-u", "-l", "127.0.0.1", str(p)],
    "socat": lambda p: ["socat", "-u", f"UDP-RECV:{p},bind=127.0.0.1", "-"],
}
PEER_CLIENTS = {
    "nc": lambda p: ["nc", "-u", "127.0.0.1", str(p)],
    "ncat": lambda p: ["ncat", "-u", "127.0.0.1", str(p)],
    "socat": lambda p: ["socat", "-", f"UDP:127.0.0.1:{p}"],
}


@pytest.mark.parametrize("peer", sorted(PEER_SERVERS))
def test_pysock_client_to_peer_server(peer, procs):
    need_tool(peer)
    port = free_port()
    server = procs.start(PEER_SERVERS[peer](port))
    wait_udp(port, server)
    out = run_pysock("udp", "-q", "0", "127.0.0.1", str(port), input=b"to the peer\n")
    assert out.returncode == 0, out.stderr
    assert read_until(server.stdout, b"peer\n") == b"to the peer\n"


@pytest.mark.parametrize("peer", sorted(PEER_CLIENTS))
def test_peer_client_to_pysock_server_both_ways(peer, procs):
    need_tool(peer)
    port = free_port()
    server = procs.pysock("udp", "-l", "127.0.0.1", str(port), stdin=subprocess.PIPE)
    wait_udp(port, server)
    client = procs.start(PEER_CLIENTS[peer](port), stdin=subprocess.PIPE)
    client.stdin.write(b"hello pysock\n")
    client.stdin.flush()
    assert read_until(server.stdout, b"pysock\n") == b"hello pysock\n"
    server.stdin.write(b"hello " + peer.encode() + b"\n")  # replies go to the sender
    server.stdin.flush()
    assert read_until(client.stdout, b"\n") == b"hello " + peer.encode() + b"\n"


# ---- server ------------------------------------------------------------------------------


def test_listen_talks_to_the_first_sender_only(procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "127.0.0.1", str(port))
    wait_udp(port, server)
    first, second = udp_server(), udp_server()
    first.sendto(b"first\n", ("127.0.0.1", port))
    assert read_until(server.stdout, b"first\n") == b"first\n"
    second.sendto(b"second\n", ("127.0.0.1", port))
    first.sendto(b"again\n", ("127.0.0.1", port))
    assert read_until(server.stdout, b"again\n") == b"again\n"


def test_keep_open_hears_all_and_replies_to_the_last_sender(procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "-k", "127.0.0.1", str(port), stdin=subprocess.PIPE)
    wait_udp(port, server)
    first, second = udp_server(), udp_server()
    first.sendto(b"one\n", ("127.0.0.1", port))
    assert read_until(server.stdout, b"one\n") == b"one\n"
    second.sendto(b"two\n", ("127.0.0.1", port))
    assert read_until(server.stdout, b"two\n") == b"two\n"
    server.stdin.write(b"for the last\n")
    server.stdin.flush()
    assert second.recv(100) == b"for the last\n"
    first.settimeout(0.3)
    with pytest.raises(TimeoutError):
        first.recv(100)


def test_echo_returns_each_datagram_to_its_sender(procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "-k", "--echo", "127.0.0.1", str(port))
    wait_udp(port, server)
    senders = [udp_server() for _ in range(3)]
    for i, s in enumerate(senders):
        s.sendto(f"echo {i}".encode(), ("127.0.0.1", port))
    assert [s.recv(100) for s in senders] == [b"echo 0", b"echo 1", b"echo 2"]


def test_truncated_datagram_is_reported_and_fails(procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "--buffer", "8", "-i", "1", "127.0.0.1", str(port))
    wait_udp(port, server)
    s = udp_server()
    s.sendto(b"0123456789abcdef", ("127.0.0.1", port))
    out, err = server.communicate(timeout=10)
    assert out == b"01234567"
    assert "was 16 bytes; only the first 8 were kept" in err.decode()
    assert server.returncode == 1


def test_wait_gives_up_without_a_datagram():
    out = run_pysock("udp", "-l", "-w", "0.3", "127.0.0.1", str(free_port()))
    assert out.returncode == 1
    assert "no datagram arrived within 0.3 s" in out.stderr.decode()


def test_server_only_options_need_listen():
    out = run_pysock("udp", "-k", "127.0.0.1", "9")
    assert out.returncode == 2
    assert "-k only apply with -l" in out.stderr.decode()


def test_source_address_is_refused_with_listen():
    """-s names the sending side's source; -l listens on its ADDRESS argument, so -s
    there would be accepted and ignored: it is refused with one usage line."""
    out = run_pysock("udp", "-l", "-w", "0.3", "-s", "127.0.0.2", "127.0.0.1", "0")
    assert out.returncode == 2
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and "-s is the sender's source address" in lines[0]


# ---- --show -------------------------------------------------------------------------------


def _show_server(procs, *args):
    port = free_port()
    server = procs.pysock("udp", "-l", "-k", *args, "127.0.0.1", str(port))
    wait_udp(port, server)
    s = udp_server()
    s.sendto(b"hello\x00world", ("127.0.0.1", port))
    s.sendto(b"", ("127.0.0.1", port))
    return server, s.getsockname()


@pytest.mark.parametrize("args", [["--show", "--json"], ["--json"]])  # --json implies --show
def test_show_json_records(procs, args):
    server, sender = _show_server(procs, *args)
    got = b""
    deadline = time.monotonic() + 10
    while got.count(b"\n") < 2 and time.monotonic() < deadline:
        got += read_until(server.stdout, b"\n", timeout=1)
    lines = [json.loads(line) for line in got.splitlines()]
    assert lines[0]["sender"] == f"127.0.0.1:{sender[1]}"
    assert (lines[0]["bytes"], lines[0]["truncated"], lines[0]["ttl"]) == (11, False, 64)
    assert lines[0]["head_hex"] == "68 65 6c 6c 6f 00 77 6f 72 6c 64"
    assert lines[0]["head_text"] == "hello.world"
    assert lines[1]["bytes"] == 0  # an empty datagram is a datagram too


def test_show_plain_records(procs):
    server, sender = _show_server(procs, "--show")
    got = read_until(server.stdout, b"\n-\t")
    header, first = got.decode().splitlines()[:2]
    assert header.split("\t") == ["TIME", "SENDER", "BYTES", "TTL", "CUT", "FIRST BYTES", "TEXT"]
    assert first.split("\t")[1:4] == [f"127.0.0.1:{sender[1]}", "11", "64"]


def test_show_table_on_a_terminal(procs):
    port = free_port()
    master, slave = pty.openpty()
    server = procs.pysock("--color", "never", "udp", "-l", "-k", "--show", "127.0.0.1", str(port),
                          stdout=slave)
    os.close(slave)
    wait_udp(port, server)
    udp_server().sendto(b"on a tty", ("127.0.0.1", port))
    got = b""
    deadline = time.monotonic() + 10
    while b"on a tty" not in got and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            got += os.read(master, 4096)
    os.close(master)
    text = got.decode()
    assert "SENDER" in text and "FIRST BYTES" in text and "\t" not in text
    assert "on a tty" in text


# ---- multicast and broadcast in namespaces ---------------------------------------------------


def _iface(host) -> str:
    return next(iter(host.addrs))


def _ipv6_ready(*hosts, timeout: float = 10) -> None:
    """Link-local addresses are tentative (DAD) for a moment after the link comes up."""
    deadline = time.monotonic() + timeout
    for host in hosts:
        while "tentative" in host.run("ip", "-6", "addr", "show", "dev", _iface(host)).stdout:
            assert time.monotonic() < deadline, "IPv6 addresses stay tentative"
            time.sleep(0.1)


@pytest.mark.parametrize("group", ["239.7.7.7", "ff02::7:7"])
def test_multicast_join_iface_and_ttl(lab, group):
    a, b = two_hosts(lab)
    if ":" in group:
        _ipv6_ready(a, b)
    port = str(free_port())
    receiver = b.popen(*PYSOCK, "udp", "-l", "-k", "--show", "--json", "--join", group,
                       "--iface", _iface(b), port)
    wait_udp(int(port), receiver, host=b)
    sent = a.run(*PYSOCK, "udp", "-q", "0", "--iface", _iface(a), "--ttl", "3", group, port,
                 input="to the group\n")
    assert sent.returncode == 0, sent.stderr
    record = json.loads(read_until(receiver.stdout, b"\n"))
    assert record["bytes"] == 13 and record["head_text"] == "to the group." and record["ttl"] == 3
    # link-scope IPv6 multicast leaves from the link-local address
    assert record["sender"].startswith(a.addr + ":" if ":" not in group else "[fe80::")


@pytest.mark.parametrize("loop", [True, False])
def test_multicast_loop(lab, loop):
    a, b = two_hosts(lab)
    port = str(free_port())
    group = "239.7.7.8"
    local = a.popen(*PYSOCK, "udp", "-l", "-k", "--join", group, "--iface", _iface(a), port)
    remote = b.popen(*PYSOCK, "udp", "-l", "-k", "--join", group, "--iface", _iface(b), port)
    wait_udp(int(port), local, host=a)
    wait_udp(int(port), remote, host=b)
    flag = "--loop" if loop else "--no-loop"
    a.run(*PYSOCK, "udp", "-q", "0", "--iface", _iface(a), flag, group, port, input="mc\n")
    assert read_until(remote.stdout, b"mc\n") == b"mc\n"  # the network gets it either way
    assert read_until(local.stdout, b"mc\n", timeout=1 if not loop else 10) == (
        b"mc\n" if loop else b"")


def test_broadcast_needs_the_flag(lab):
    a, b = two_hosts(lab)
    port = str(free_port())
    receiver = b.popen(*PYSOCK, "udp", "-l", "-k", "-4", port)
    wait_udp(int(port), receiver, host=b)
    bcast = a.addr.rsplit(".", 1)[0] + ".255"
    refused = a.run(*PYSOCK, "udp", "-q", "0", bcast, port, input="x\n", check=False)
    assert refused.returncode == 1
    assert "needs --broadcast" in refused.stderr
    ok = a.run(*PYSOCK, "udp", "-q", "0", "--broadcast", bcast, port, input="to all\n")
    assert ok.returncode == 0, ok.stderr
    assert read_until(receiver.stdout, b"all\n") == b"to all\n"


# ---- --measure against nftables ---------------------------------------------------------------


def test_measured_loss_matches_the_nftables_drop_counter(lab):
    need_tool("nft")
    a, b = two_hosts(lab)
    port = free_port()
    # data datagrams of 64 bytes (udp length 72); end markers are shorter and always pass
    b.nft(f"""table inet pysocktest {{
  counter dropped {{}}
  chain input {{
    type filter hook input priority 0; policy accept;
    udp dport {port} udp length 72 numgen random mod 10 0 counter name dropped drop
  }}
}}""")
    receiver = b.popen(*PYSOCK, "udp", "-l", "--measure", "--json", "-w", "20", str(port))
    wait_udp(port, receiver, host=b)
    sender = a.run(*PYSOCK, "udp", "--measure", "--json", "--rate", "2000", "--count", "2000",
                   b.addr, str(port), timeout=60)
    assert sender.returncode == 0, sender.stderr
    sent = json.loads(sender.stdout)
    assert sent["sent"] == 2000
    out, err = receiver.communicate(timeout=30)
    assert receiver.returncode == 0, err
    summary = json.loads(out.decode().strip().splitlines()[-1])
    dropped = b.nft_counter("pysocktest", "dropped")
    assert 100 < dropped < 320  # about a tenth
    assert summary["type"] == "summary" and summary["complete"]
    assert summary["sent"] == 2000
    assert summary["lost"] == dropped
    assert summary["received"] == 2000 - dropped
    assert summary["duplicated"] == 0 and summary["reordered"] == 0
    assert summary["loss_pct"] == pytest.approx(100 * dropped / 2000, abs=0.001)
    assert summary["jitter_ms"] >= 0


def test_measure_counts_duplicates_from_an_nft_dup_rule(lab):
    need_tool("nft")
    a, b = two_hosts(lab)
    port = free_port()
    # some data datagrams sent twice by the sender's own output hook
    a.nft(f"""table ip pysocktest {{
  counter duplicated {{}}
  chain output {{
    type filter hook output priority 0; policy accept;
    udp dport {port} udp length 72 numgen inc mod 5 0 counter name duplicated \
      dup to {b.addr} device {_iface(a)}
  }}
}}""")
    receiver = b.popen(*PYSOCK, "udp", "-l", "--measure", "--json", "-w", "20", str(port))
    wait_udp(port, receiver, host=b)
    a.run(*PYSOCK, "udp", "--measure", "--rate", "1000", "--count", "500", b.addr, str(port),
          timeout=60)
    out, err = receiver.communicate(timeout=30)
    summary = json.loads(out.decode().strip().splitlines()[-1])
    duplicated = a.nft_counter("pysocktest", "duplicated", "ip")
    assert 100 <= duplicated <= 125  # the copies pass the hook too and take numbers
    assert summary["duplicated"] == duplicated
    assert summary["lost"] == 0 and summary["received"] == 500


# ---- the remaining options ------------------------------------------------------------------


def test_source_address_and_port():
    server = udp_server()
    source_port = free_port()
    out = run_pysock("udp", "-q", "0", "-s", "127.0.0.1", "-p", str(source_port), "127.0.0.1",
                     str(server.getsockname()[1]), input=b"from a fixed port\n")
    assert out.returncode == 0, out.stderr
    _, sender = server.recvfrom(100)
    assert sender == ("127.0.0.1", source_port)


def test_listen_port_as_option_and_numeric(procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "-n", "-p", str(port), "127.0.0.1")
    wait_udp(port, server)
    udp_server().sendto(b"via -p\n", ("127.0.0.1", port))
    assert read_until(server.stdout, b"\n") == b"via -p\n"
    out = run_pysock("udp", "-n", "localhost", "9")
    assert out.returncode == 2 and "-n forbids name lookups" in out.stderr.decode()


def test_recv_only_never_reads_stdin(procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "-d", "127.0.0.1", str(port), stdin=subprocess.PIPE)
    wait_udp(port, server)
    server.stdin.write(b"must not be sent\n")
    server.stdin.flush()
    s = udp_server()
    s.sendto(b"hello\n", ("127.0.0.1", port))
    assert read_until(server.stdout, b"\n") == b"hello\n"
    s.settimeout(0.5)
    with pytest.raises(TimeoutError):
        s.recv(100)


def test_send_only_exits_once_sent():
    server = udp_server()
    start = time.monotonic()
    out = run_pysock("udp", "--send-only", "127.0.0.1", str(server.getsockname()[1]),
                     input=b"fire and forget\n")
    assert out.returncode == 0
    assert time.monotonic() - start < 0.9 + 2  # no -q wait for replies (python start-up aside)
    assert server.recv(100) == b"fire and forget\n"


def test_quit_after_and_idle_timeout():
    server = udp_server()
    start = time.monotonic()
    out = run_pysock("udp", "-q", "0.2", "127.0.0.1", str(server.getsockname()[1]), input=b"x\n")
    assert out.returncode == 0 and "-q" not in out.stderr.decode()
    assert time.monotonic() - start < 5
    out = run_pysock("udp", "-l", "-i", "0.3", "-w", "5", "127.0.0.1", str(free_port()))
    assert out.returncode == 1  # nothing came: -w first


def test_hexdump_shows_both_directions():
    server = udp_server()
    proc = subprocess.Popen([*PYSOCK, "udp", "--hexdump", "-", "-q", "1", "127.0.0.1",
                             str(server.getsockname()[1])], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"ABC\n")
    proc.stdin.close()
    proc.stdin = None
    data, sender = server.recvfrom(100)
    server.sendto(b"xyz", sender)
    out, err = proc.communicate(timeout=10)
    text = err.decode()
    assert "> " in text and "sent 4 bytes" in text and "41 42 43 0a" in text
    assert "received 3 bytes" in text and "78 79 7a" in text
    assert out == b"xyz"


@pytest.mark.parametrize("flag", ["--hops", "--sockopt"])
def test_hop_limit_seen_by_the_receiver(flag, procs):
    port = free_port()
    server = procs.pysock("udp", "-l", "-6", "--show", "--json", "::1", str(port))
    wait_udp(port, server)
    args = ["--hops", "5"] if flag == "--hops" else ["--sockopt", "ttl=5"]
    out = run_pysock("udp", "-q", "0", *args, "::1", str(port), input=b"hop\n")
    assert out.returncode == 0, out.stderr
    assert json.loads(read_until(server.stdout, b"\n"))["ttl"] == 5


def test_measure_duration_and_size(procs):
    port = free_port()
    receiver = procs.pysock("udp", "-l", "--measure", "--json", "-w", "10", "127.0.0.1", str(port))
    wait_udp(port, receiver)
    sender = run_pysock("udp", "--measure", "--json", "--rate", "200", "--duration", "0.5",
                        "--size", "300", "127.0.0.1", str(port))
    assert sender.returncode == 0, sender.stderr
    sent = json.loads(sender.stdout)
    assert 90 <= sent["sent"] <= 101
    out, _ = receiver.communicate(timeout=20)
    summary = json.loads(out)
    assert summary["received"] == sent["sent"] and summary["lost"] == 0
    assert summary["rate_pps"] == pytest.approx(200, rel=0.3)


def test_measure_live_view_on_a_terminal(procs):
    port = free_port()
    master, slave = pty.openpty()
    receiver = procs.pysock("--color", "never", "udp", "-l", "--measure", "-w", "10", "127.0.0.1",
                            str(port), stdout=slave)
    os.close(slave)
    wait_udp(port, receiver)
    run_pysock("udp", "--measure", "--rate", "100", "--count", "100", "127.0.0.1", str(port))
    got = b""
    deadline = time.monotonic() + 15
    while receiver.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.2)[0]:
            try:
                got += os.read(master, 65536)
            except OSError:
                break
    os.close(master)
    text = got.decode(errors="replace")
    assert text.count("SENDER") >= 3, text  # redrawn while the run went on, then the summary
    assert "\x1b[" in text  # drawn in place


def test_measure_needs_a_receiver():
    out = run_pysock("udp", "--measure", "--count", "50", "--rate", "1000", "127.0.0.1",
                     str(free_port()))
    assert out.returncode == 1
    assert "no one is listening" in out.stderr.decode()


@pytest.mark.parametrize("args, flags", [
    (["--rate", "5", "127.0.0.1", "9"], "--rate is"),  # no --measure: nothing sends at a rate
    (["--count", "3", "--size", "30", "127.0.0.1", "9"], "--count, --size are"),
    (["-l", "--measure", "--duration", "2", "9"], "--duration is"),  # the receiver only counts
])
def test_measure_options_are_refused_where_nothing_sends(args, flags):
    out = run_pysock("udp", *args, input=b"")
    assert out.returncode == 2 and out.stdout == b""
    assert f"{flags} for the sending side of --measure" in out.stderr.decode()


@pytest.mark.parametrize("args", [["udp", "--help"], ["unix", "--help"],
                                  ["udp", "-q", "0", "127.0.0.1", "9"],
                                  ["unix", "/nonexistent/pysock.sock"]])
def test_start_up_stays_light(args):
    from test_startup import HEAVY, imported
    assert imported(args).isdisjoint(HEAVY)
