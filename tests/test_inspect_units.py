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
from pysock.inventory.filter import ALL, DEFAULT, LISTENING, Filter, Selection, parse_state
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
    assert Filter.build(Selection()).states == DEFAULT
    assert Filter.build(Selection(listening=True)).states == LISTENING
    assert Filter.build(Selection(all_states=True)).states == ALL
    assert Filter.build(Selection(states=["listen"], listening=True)).states == LISTENING


def test_family_alone_leaves_unix_out():
    assert "unix" not in Filter.build(Selection(family=4)).protos
    assert Filter.build(Selection(protos=["unix"], family=4)).protos == {"unix"}


def test_mapped_v4_matches_a_v4_block():
    rec = SocketRecord("tcp", 6, ESTABLISHED, 0, 0, "::ffff:10.1.2.3", 80, "::", 0, 1)
    assert Filter.build(Selection(addrs=["10.0.0.0/8"], all_states=True)).match_socket(rec)
    assert not Filter.build(Selection(addrs=["11.0.0.0/8"], all_states=True)).match_socket(rec)


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
            # both ports: an ephemeral port may be in use towards other peers too
            this = ["sport", "=", f":{client.getsockname()[1]}", "and", "dport", "=",
                    f":{listener.getsockname()[1]}"]
            ss = subprocess.run(["ss", "-tniH", *this], capture_output=True,
                                text=True, timeout=20, check=True).stdout
            out = subprocess.run([*PYSOCK, "inspect", "-t", "-e", "--json", *this],
                                 capture_output=True, text=True, timeout=30)
            plain = subprocess.run([*PYSOCK, "inspect", "-t", "-e", *this],
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


# ---- the extended listing without a dict per socket ----------------------------


def _tcp_info(**fields) -> bytes:
    values = [fields.get(name, 0) for name, _ in tcpinfo._LAYOUT]
    return struct.pack("=" + "".join(f for _, f in tcpinfo._LAYOUT), *values)


def test_shown_fields_are_what_decode_says():
    import random
    rng = random.Random(19)
    for n in range(500):
        data = bytearray(rng.randbytes(rng.choice((tcpinfo.SIZE, 280, 192, 160, 104))))
        if n % 5 == 0:  # rates the kernel left unset
            data[104:112] = data[160:168] = b"\xff" * 8
        if n % 7 == 0:
            data[5] &= ~tcpinfo.TCPI_OPT_WSCALE & 0xFF
        info = tcpinfo.decode(bytes(data))
        assert tcpinfo.shown(bytes(data)) == tuple(info[name] for name in tcpinfo.SHOWN), n


def _extended_records() -> list[SocketRecord]:
    a = SocketRecord("tcp", 4, ESTABLISHED, 0, 4096, "192.0.2.1", 443, "198.51.100.7", 50000,
                     77, 0, pids=[42], process="srv", user="root")
    a.tcp_raw = _tcp_info(
        retransmits=1, options=4, wscale=0x97, rto=204000, ato=40000, snd_mss=1448,
        rcv_mss=536, pmtu=1500, rtt=1234, rttvar=617, snd_cwnd=10, advmss=1448,
        total_retrans=3, pacing_rate=2500000, bytes_acked=123456, bytes_received=789,
        notsent_bytes=4096, delivery_rate=125000, busy_time=5000000, rwnd_limited=1000000,
        sndbuf_limited=250000)
    a.skmem_raw = (0, 131072, 0, 87040, 0, 0, 0, 0, 3)
    a.congestion, a.timer, a.timer_ms = "cubic", "on", 204
    b = SocketRecord("tcp", 4, TIME_WAIT, 0, 0, "192.0.2.1", 443, "198.51.100.8", 50001, 0)
    b.timer, b.timer_ms = "timewait", 59000
    return [a, b]


# pysock 0.x's text for _extended_records(), as the dict-per-socket writer drew it
EXTENDED_GOLDEN = (
    "tcp\tESTABLISHED\t0\t4096\t192.0.2.1:443\t198.51.100.7:50000\tsrv[42]\troot\t77\t"
    "1.234/0.617\t10\t1/3\t123456/789\t1.0Mbps\tcubic\ton,204ms\tr0,rb131072,t0,tb87040,d3\t"
    "mss:1448 rcvmss:536 advmss:1448 pmtu:1500 rto:204 ato:40 wscale:7,9 pacing_rate "
    "20000000bps delivery_rate 1000000bps busy:5000ms rwnd_limited:1000ms(20.0%) "
    "sndbuf_limited:250ms(5.0%) notsent:4096\n"
    "tcp\tTIME_WAIT\t0\t0\t192.0.2.1:443\t198.51.100.8:50001\t-\t-\t0\t-\t-\t-\t-\t-\t-\t"
    "timewait,59000ms\t-\t-\n")


def test_extended_plain_lines_are_the_text_they_were():
    out = io.StringIO()
    write_sockets(_extended_records(), "plain", color=False, extended=True,
                  names=Names(services=False), stream=out, header=False)
    assert out.getvalue() == EXTENDED_GOLDEN


def test_fast_extended_is_the_same_as_the_record_writer(pair):
    """FastPlain's one-format lines against RecordWriter drawing row(): real sockets of
    this process, the golden ones, random tcp_info of every length, and lines made
    before the owners were known (prepare, then the owner pass, then write)."""
    import random

    from pysock.inventory.sources import read_sockets
    from pysock.render.inspect import FastPlain, row, socket_columns
    from pysock.render.records import RecordWriter
    rng = random.Random(7)
    records, _ = read_sockets(Filter.build(Selection(all_states=True)), extended=True)
    assert any(r.tcp_raw for r in records) and any(r.proto == "unix" for r in records)
    records += _extended_records() + _records()
    for n in range(200):
        r = SocketRecord("tcp", 6, ESTABLISHED, n, 0, "::1", 1000 + n, "::1", 80, 500 + n, 0)
        r.tcp_raw = rng.randbytes(rng.choice((tcpinfo.SIZE, 280, 192, 120)))
        r.skmem_raw = tuple(rng.randrange(3) for _ in range(rng.choice((9, 8, 5))))
        r.congestion = rng.choice((None, "", "bbr"))
        records.append(r)
    names = Names()
    fast = FastPlain(names, extended=True)
    fast.prepare(records)
    for r in records:  # owners arrive after prepare, as from the /proc pass
        if r.proto == "tcp" and not r.pids:
            r.pids, r.process, r.user = [r.inode % 97 + 1], "late", "someone"
    got, want = io.StringIO(), io.StringIO()
    fast.write(records, got, header=True)
    with RecordWriter(socket_columns(True), "plain", stream=want) as writer:
        for r in records:
            writer.write(row(r, names, True))
    assert got.getvalue() == want.getvalue() and "late[" in got.getvalue()


def test_attribute_chains_read_by_layout_and_by_walk():
    """A chain seen once is read by its layout; one of the same length but other kinds
    (or a broken one) is walked, and both give what the attributes say."""
    def attr(kind, payload):
        return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)
    info, skmem = _tcp_info(snd_cwnd=33, rtt=1000), struct.pack("=9I", *range(1, 10))
    usual = attr(15, b"\0" * 4) + attr(sockdiag.INET_DIAG_SKMEMINFO, skmem) \
        + attr(sockdiag.INET_DIAG_INFO, info) + attr(sockdiag.INET_DIAG_CONG, b"bbr\0")
    other = attr(15, b"\0" * 4) + attr(99, skmem) + attr(sockdiag.INET_DIAG_INFO, info) \
        + attr(sockdiag.INET_DIAG_CONG, b"dct\0")
    broken = attr(15, b"\0" * 4) + struct.pack("=HH", 2, 0) + b"\0" * (len(usual) - 12)
    assert len(usual) == len(other) == len(broken)
    buf = bytearray(usual * 3 + other + usual + broken)
    reader = sockdiag._AttrReader(buf, "tcp")
    got = []
    for i in range(6):
        r = SocketRecord("tcp", 4, ESTABLISHED, 0, 0, "a", 1, "b", 2, i)
        reader.read(r, i * len(usual), (i + 1) * len(usual))
        got.append(r)
        if i == 2:
            assert len(reader.layouts) == 1  # the usual chain, learned once
    for r in got[:3] + got[4:5]:
        assert (r.tcp_info["cwnd"], r.skmem_raw, r.congestion) == (33, tuple(range(1, 10)), "bbr")
    assert (got[3].tcp_info["cwnd"], got[3].skmem_raw, got[3].congestion) == (33, None, "dct")
    assert (got[5].tcp_raw, got[5].skmem_raw, got[5].congestion) == (None, None, None)


def test_collect_works_while_the_owner_pass_runs(pair):
    """collect(): while_waiting sees the selected sockets before they have owners; the
    inventory has them after; a pass started early (beside) is the one used."""
    from pysock.inventory.processes import ScanBeside
    from pysock.inventory.sources import collect
    seen_before = {}

    def early(records):
        seen_before.update({r.inode: list(r.pids) for r in records})
    with ScanBeside(False, None).start() as beside:
        child = beside.pid
        assert child and beside.start().pid == child  # started once
        inventory = collect(Filter.build(Selection(protos=["tcp"], all_states=True)), beside=beside,
                            while_waiting=early)
    mine = [ino(s) for s in pair]
    assert all(seen_before[i] == [] for i in mine)
    owners = {r.inode: r.pids for r in inventory.records}
    assert all(owners[i] == [os.getpid()] for i in mine)
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # reaped
