"""The inspect codec, filter and renderings on real loopback sockets of this process."""

from __future__ import annotations

import io
import json
import os
import socket
import struct

import pytest

from pysock.errors import UsageError
from pysock.inventory import procnet, sockdiag, tcpinfo
from pysock.inventory.filter import ALL, DEFAULT, LISTENING, Filter, parse_state
from pysock.inventory.model import ESTABLISHED, LISTEN, TIME_WAIT, SocketRecord
from pysock.inventory.processes import fd_limit, scan
from pysock.render.inspect import FastJson, Names, socket_json, write_sockets

from conftest import PYSOCK


@pytest.fixture
def pair():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    client.sendall(b"hello")
    yield listener, client, server
    for s in (listener, client, server):
        s.close()


def ino(sock) -> int:
    return os.fstat(sock.fileno()).st_ino


def netlink_tcp(extended=False) -> dict[int, SocketRecord]:
    with sockdiag.DiagSocket() as diag:
        return {r.inode: r for r in sockdiag.inet_sockets(diag, "tcp", 4, extended=extended)}


def test_netlink_reads_our_sockets(pair):
    listener, client, server = pair
    found = netlink_tcp()
    lrec, crec, srec = found[ino(listener)], found[ino(client)], found[ino(server)]
    assert (lrec.state, lrec.local_addr, lrec.local_port) == (LISTEN, "127.0.0.1",
                                                              listener.getsockname()[1])
    assert crec.state == srec.state == ESTABLISHED
    assert (crec.local_port, crec.peer_port) == (client.getsockname()[1],
                                                 listener.getsockname()[1])
    assert srec.recv_q == 5 and crec.uid == os.geteuid()


def test_netlink_and_proc_agree(pair):
    found = netlink_tcp()
    from_proc = {r.inode: r for r in procnet.inet_sockets("tcp", 4)}
    for sock in pair:
        a, b = found[ino(sock)], from_proc[ino(sock)]
        assert (a.state, a.local_addr, a.local_port, a.peer_addr, a.peer_port, a.uid) == \
            (b.state, b.local_addr, b.local_port, b.peer_addr, b.peer_port, b.uid)


def test_proc_decodes_ipv6():
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as six:
        found = {r.inode: r for r in procnet.inet_sockets("tcp", 6)}
        assert (found[ino(six)].local_addr, found[ino(six)].local_port) == \
            ("::1", six.getsockname()[1])


def test_extended_carries_tcp_info(pair):
    _, client, _ = pair
    rec = netlink_tcp(extended=True)[ino(client)]
    assert rec.tcp_info["cwnd"] > 0 and rec.tcp_info["bytes_acked"] >= 5
    assert rec.skmem["sndbuf"] > 0 and rec.congestion


def test_unix_dump_has_names_peers_and_queues(tmp_path):
    path = str(tmp_path / "u.sock")
    with socket.socket(socket.AF_UNIX) as srv, socket.socket(socket.AF_UNIX) as cli:
        srv.bind(path)
        srv.listen(3)
        cli.connect(path)
        with sockdiag.DiagSocket() as diag:
            found = {r.inode: r for r in sockdiag.unix_sockets(diag)}
        listener = found[ino(srv)]
        assert (listener.path, listener.state, listener.recv_q, listener.send_q) == \
            (path, LISTEN, 1, 3)  # one connection waits to be accepted; backlog 3
        accepted, _ = srv.accept()
        with accepted, sockdiag.DiagSocket() as diag:
            found = {r.inode: r for r in sockdiag.unix_sockets(diag)}
            assert found[ino(cli)].peer_inode == ino(accepted)
            assert found[ino(accepted)].peer_inode == ino(cli)
            assert found[ino(accepted)].path == path


def test_tcp_info_by_length():
    full = struct.pack("=8B", 1, 0, 2, 0, 0, 0, 0x74, 1) + struct.pack("=24I", *range(24)) \
        .ljust(tcpinfo.SIZE - 8, b"\0")
    assert tcpinfo.SIZE == 248  # the layout of linux 6.x
    fields = tcpinfo.raw_fields(full)
    assert fields["retransmits"] == 2 and fields["rto"] == 0 and fields["total_retrans"] == 23
    assert (fields["wscale"] & 0xF, fields["wscale"] >> 4) == (4, 7)
    decoded = tcpinfo.decode(full)
    assert (decoded["retransmits"], decoded["ca_state"], decoded["rto_ms"]) == (2, "open", 0)
    assert decoded["retrans"] == 23 and decoded["bytes_sent"] == 0
    old = tcpinfo.decode(full[:104])  # a kernel from before pacing_rate
    assert old["retrans"] == 23 and old["pacing_rate_bps"] is None and old["bytes_sent"] is None
    assert tcpinfo.decode_skmem(struct.pack("=9I", *range(9)))["drops"] == 8


def test_netlink_errors_become_unsupported():
    view = memoryview(struct.pack("=IHHIIi", 20, sockdiag.NLMSG_DONE, 2, 1, 0, -2))
    with pytest.raises(sockdiag.Unsupported):
        sockdiag._check(view, 0, 20)
    sockdiag._check(memoryview(struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)), 0, 20)


def test_state_words():
    assert parse_state("TIME_WAIT") == parse_state("time-wait") == 1 << TIME_WAIT
    assert parse_state("all") == ALL and parse_state("listening") == 1 << LISTEN
    with pytest.raises(UsageError, match="bogus"):
        parse_state("bogus")
    assert Filter.build().states == DEFAULT
    assert Filter.build(listening=True).states == LISTENING
    assert Filter.build(all_states=True).states == ALL
    assert Filter.build(states=["listen"], listening=True).states == LISTENING


def test_family_alone_leaves_unix_out():
    assert "unix" not in Filter.build(family=4).protos
    assert Filter.build(protos=["unix"], family=4).protos == {"unix"}


def test_mapped_v4_matches_a_v4_block():
    rec = SocketRecord("tcp", 6, ESTABLISHED, 0, 0, "::ffff:10.1.2.3", 80, "::", 0, 1)
    assert Filter.build(addrs=["10.0.0.0/8"], all_states=True).match_socket(rec)
    assert not Filter.build(addrs=["11.0.0.0/8"], all_states=True).match_socket(rec)


def test_process_pass_finds_us(pair):
    seen = scan({ino(s) for s in pair})
    assert all(seen.by_inode[ino(s)] == [os.getpid()] for s in pair)
    assert seen.processes[os.getpid()].fds == len(os.listdir("/proc/self/fd")) - 1 or \
        seen.processes[os.getpid()].fds >= 3
    import resource
    assert fd_limit(os.getpid()) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _records() -> list[SocketRecord]:
    a = SocketRecord("tcp", 4, LISTEN, 3, 3, "0.0.0.0", 80, "0.0.0.0", 0, 11, 0, pids=[7],
                     process='we"ird\\name', user="root")
    b = SocketRecord("tcp", 6, ESTABLISHED, 0, 10, "::1", 5000, "::1", 80, 12, 1000,
                     pids=[8, 9], process="[ok]", user="ünï")
    c = SocketRecord("udp", 4, 7, 0, 0, "127.0.0.1", 53, "0.0.0.0", 0, 13)
    d = SocketRecord("unix", 0, 1, 0, 0, None, None, None, None, 14, path="/run/x.sock",
                     unix_type="stream", peer_inode=15)
    return [a, b, c, d]


def test_fast_json_is_the_same_as_the_plain_encoder():
    fast = FastJson()
    for r in _records():
        line = fast.line(r)
        expected = json.dumps(socket_json(r, False), separators=(",", ":"))
        if r.proto == "unix":
            assert line is None
        else:
            assert line == expected + "\n"
            assert json.loads(line) == r.to_json()


def test_json_fields_of_the_design():
    out = io.StringIO()
    write_sockets(_records(), "json", color=False, extended=False, names=Names(), stream=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    for row in rows:
        assert set("proto state local_addr local_port peer_addr peer_port recv_q send_q inode "
                   "pid process user".split()) <= set(row)
    assert rows[0]["backlog_full"] is True and rows[1]["pids"] == [8, 9]
    assert rows[3]["path"] == "/run/x.sock" and rows[3]["local_port"] is None


def test_table_draws_names_literally_and_flags_full_queues(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out = io.StringIO()
    write_sockets(_records(), "table", color=True, extended=False, names=Names(), stream=out)
    text = out.getvalue()
    assert "[ok][8] +1" in text and "*:http" in text and "[::1]:5000" in text
    assert "\x1b[1;31m" in text  # the full listener's queue is bold red
    out = io.StringIO()
    write_sockets(_records(), "table", color=False, extended=False, names=Names(), stream=out)
    assert "\x1b[" not in out.getvalue()


def test_titles_have_no_escape_codes_without_color(monkeypatch):
    from pysock.render.inspect import STATE_COLUMNS, write_rows
    out = io.StringIO()
    write_rows([{"proto": "tcp", "state": "LISTEN", "count": 1}], STATE_COLUMNS, "table",
               color=False, title="Sockets", stream=out)
    assert "Sockets" in out.getvalue() and "\x1b[" not in out.getvalue()


def test_piped_inspect_imports_neither_rich_nor_psutil():
    import subprocess
    import sys
    code = ("import sys; from pysock.cli import run; run(['inspect', '-a', '--json']); "
            "sys.stderr.write(repr(sorted({'rich', 'psutil', 'scapy'} & "
            "{m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert out.stderr.strip() == "[]", out.stderr


def test_scan_beside_sees_what_scan_sees(pair):
    from pysock.inventory.processes import ScanBeside
    with ScanBeside() as beside:
        seen = beside.result()
    here = scan(None)
    for s in pair:
        assert seen.by_inode[ino(s)] == here.by_inode[ino(s)] == [os.getpid()]
    assert seen.processes[os.getpid()].process == here.processes[os.getpid()].process


def test_scan_beside_reaps_its_child_when_the_caller_fails():
    from pysock.inventory.processes import ScanBeside
    with pytest.raises(RuntimeError), ScanBeside() as beside:
        child = beside.pid
        raise RuntimeError("the socket read failed")
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # already reaped


def test_extended_has_ss_i_fields_with_ss_values():
    """mss, rcvmss, rto, ato, wscale, notsent as ss -tni prints them, for a sender
    stalled on a receiver that never reads (so the values hold still)."""
    import re
    import subprocess
    import time
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            client.setblocking(False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    client.send(b"x" * 65536)
                except BlockingIOError:
                    break
            time.sleep(0.3)
            port = client.getsockname()[1]
            ss = subprocess.run(["ss", "-tniH", "sport", "=", f":{port}"], capture_output=True,
                                text=True, timeout=20, check=True).stdout
            out = subprocess.run([*PYSOCK, "inspect", "-t", "-e", "--json", "sport", "=",
                                  f":{port}"], capture_output=True, text=True, timeout=30)
            plain = subprocess.run([*PYSOCK, "inspect", "-t", "-e", "sport", "=", f":{port}"],
                                   capture_output=True, text=True, timeout=30).stdout
    (mine,) = [json.loads(line) for line in out.stdout.splitlines()]
    theirs = dict(re.findall(r"\b(mss|rcvmss|advmss|pmtu|rto|ato|wscale|notsent):(\S+)", ss))
    assert mine["notsent_bytes"] > 0 and int(theirs["notsent"]) == mine["notsent_bytes"]
    assert theirs["wscale"] == f"{mine['snd_wscale']},{mine['rcv_wscale']}"
    for key, ours in (("mss", "mss"), ("rcvmss", "rcv_mss"), ("advmss", "advmss"),
                      ("pmtu", "pmtu"), ("rto", "rto_ms"), ("ato", "ato_ms")):
        if key in theirs:
            assert float(theirs[key]) == mine[ours], key
    assert mine["busy_ms"] is not None and mine["pacing_rate_bps"]
    assert "wscale:" in plain and "rto:" in plain


def test_fast_plain_is_the_same_as_the_record_writer():
    from pysock.render.inspect import SOCKET_COLUMNS, Names, _write_plain, row
    from pysock.render.records import RecordWriter
    records = _records()
    records[0].recv_q = 3  # a full accept queue: "3!"
    for numeric in (False, True):
        names = Names(services=not numeric)
        fast, slow = io.StringIO(), io.StringIO()
        _write_plain(records, fast, names, header=True)
        with RecordWriter(SOCKET_COLUMNS, "plain", stream=slow) as writer:
            for r in records:
                writer.write(row(r, names))
        assert fast.getvalue() == slow.getvalue() and "3!" in fast.getvalue()
