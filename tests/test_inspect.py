"""pysock inspect against known sockets, with ss as the judge.

Most tests share one empty network namespace in which a child process named
'sockfixture' (tests/inspect_fixture.py) holds every kind of socket; pysock and
ss both run inside it, so counts must agree exactly."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest

import inspect_fixture as fx

import netns as _netns
from conftest import PYSOCK, need, need_root, need_tool

HERE = os.path.dirname(os.path.abspath(__file__))
SS_STATES = {"ESTAB": "ESTABLISHED", "TIME-WAIT": "TIME_WAIT", "CLOSE-WAIT": "CLOSE_WAIT",
             "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV", "FIN-WAIT-1": "FIN_WAIT1",
             "FIN-WAIT-2": "FIN_WAIT2", "LAST-ACK": "LAST_ACK", "CLOSING": "CLOSING",
             "LISTEN": "LISTEN", "UNCONN": "UNCONN", "CLOSE": "CLOSE"}


class World:
    """The namespace, the fixture process and what it told us it made."""

    def __init__(self, host, proc, info, tmp):
        self.host, self.proc, self.info, self.tmp = host, proc, info, tmp

    def pysock(self, *args, env=None, check=True):
        out = subprocess.run(self.host.argv(*PYSOCK, "inspect", *args), capture_output=True, text=True,
                             timeout=60, env={**os.environ, **(env or {})})
        if check:
            assert out.returncode == 0, out.stderr
        return out

    def records(self, *args, env=None) -> list[dict]:
        out = self.pysock(*args, "--json", env=env)
        return [json.loads(line) for line in out.stdout.splitlines()]

    def ss(self, *args) -> list[list[str]]:
        return [line.split() for line in self.host.run("ss", "-H", *args).stdout.splitlines()]

    def fresh_time_wait(self) -> int:
        self.proc.stdin.write("tw\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_root()
    need_tool("ip", "ss")
    lab = _netns.Lab()
    proc = None
    try:
        host = lab.host("i")
        tmp = str(tmp_path_factory.mktemp("inspect"))
        proc = host.popen(sys.executable, os.path.join(HERE, "inspect_fixture.py"), tmp,
                          stdin=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        yield World(host, proc, json.loads(line), tmp)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        lab.close()


def by_inode(records: list[dict]) -> dict[int, dict]:
    return {r["inode"]: r for r in records if r["inode"]}


def state_counts(records, proto: str | None = None, family: int | None = None) -> Counter:
    return Counter(r["state"] for r in records
                   if (proto is None or r["proto"] == proto)
                   and (family is None or r["family"] == family))


def ss_counts(rows: list[list[str]]) -> Counter:
    return Counter(SS_STATES[row[0]] for row in rows)


# ---- known sockets ---------------------------------------------------------------


def test_every_known_socket_is_listed_right(world):
    world.fresh_time_wait()
    info, recs = world.info, by_inode(world.records("-a"))
    pid = info["pid"]

    listener = recs[info["listener"]]
    assert (listener["proto"], listener["family"], listener["state"]) == ("tcp", 4, "LISTEN")
    assert (listener["local_addr"], listener["local_port"]) == ("127.0.0.1", fx.TCP_PORT)
    assert listener["send_q"] == 64 and listener["backlog_full"] is False
    assert (listener["pid"], listener["process"], listener["user"]) == (pid, "sockfixture", "root")

    server, client = recs[info["est_server"]], recs[info["est_client"]]
    assert server["state"] == client["state"] == "ESTABLISHED"
    assert server["recv_q"] == 100 and client["recv_q"] == 0
    assert (client["peer_addr"], client["peer_port"]) == ("127.0.0.1", fx.TCP_PORT)
    assert server["peer_port"] == client["local_port"] == info["est_client_port"]

    for inode in info["close_wait"]:
        assert recs[inode]["state"] == "CLOSE_WAIT" and recs[inode]["pid"] == pid

    full = recs[info["full"]]
    assert full["state"] == "LISTEN" and full["recv_q"] == 3 and full["send_q"] == 2
    assert full["backlog_full"] is True

    assert (recs[info["tcp6"]]["family"], recs[info["tcp6"]]["local_addr"]) == (6, "::1")

    udp, udp_conn = recs[info["udp"]], recs[info["udp_conn"]]
    assert (udp["proto"], udp["state"], udp["local_port"]) == ("udp", "UNCONN", fx.UDP_PORT)
    assert udp["recv_q"] > 0  # the datagram we sent waits there
    assert (udp_conn["state"], udp_conn["peer_port"]) == ("ESTABLISHED", fx.UDP_PORT)

    raw, raw6 = recs[info["raw"]], recs[info["raw6"]]
    assert (raw["proto"], raw["family"], raw["local_port"]) == ("raw", 4, 1)  # ICMP
    assert (raw6["proto"], raw6["family"], raw6["local_port"]) == ("raw", 6, 58)  # ICMPv6
    assert raw["process"] == "sockfixture"

    ul, uc, us = recs[info["unix_listener"]], recs[info["unix_client"]], recs[info["unix_server"]]
    assert (ul["proto"], ul["state"], ul["path"], ul["type"]) == \
        ("unix", "LISTEN", info["unix_path"], "stream")
    assert ul["local_port"] is None and ul["peer_port"] is None
    assert uc["state"] == us["state"] == "ESTABLISHED"
    assert recs[info["unix_dgram"]]["type"] == "dgram"
    assert recs[info["unix_dgram"]]["state"] == "UNCONN"
    assert recs[info["abstract"]]["path"] == info["abstract_name"]


def test_time_wait_has_no_owner(world):
    port = world.fresh_time_wait()
    tw = [r for r in world.records("--state", "time-wait") if r["local_port"] == port]
    assert len(tw) == 1
    assert (tw[0]["peer_port"], tw[0]["pid"], tw[0]["inode"]) == (fx.TCP_PORT, None, 0)


def test_unix_peers_are_paired_with_their_process(world):
    info, recs = world.info, by_inode(world.records("-x", "-a"))
    client, server = recs[info["unix_client"]], recs[info["unix_server"]]
    assert client["peer_inode"] == info["unix_server"]
    assert server["peer_inode"] == info["unix_client"]
    # the client's other end was accepted on the listening path: lsof +E style
    assert client["peer_path"] == info["unix_path"]
    assert (client["peer_pid"], client["peer_process"]) == (info["pid"], "sockfixture")
    assert server["path"] == info["unix_path"]


@pytest.mark.parametrize("source", ["auto", "proc"])
def test_counts_by_state_agree_with_ss(world, source):
    world.fresh_time_wait()
    env = {"PYSOCK_INSPECT_SOURCE": source}
    recs = world.records("-a", env=env)
    assert state_counts(recs, "tcp") == ss_counts(world.ss("-tan"))
    assert state_counts(recs, "udp") == ss_counts(world.ss("-uan"))
    assert state_counts(recs, "raw") == ss_counts(world.ss("-wan"))
    assert state_counts(recs, "unix") == ss_counts([row[1:] for row in world.ss("-xa")])
    assert sum(state_counts(recs, "tcp").values()) > 15


def test_proc_fallback_is_what_it_reads(world):
    """Forced /proc/net: same sockets, but no listener backlog nor unix peers."""
    info = world.info
    auto = by_inode(world.records("-a"))
    proc = by_inode(world.records("-a", "--source", "proc"))
    env_proc = by_inode(world.records("-a", env={"PYSOCK_INSPECT_SOURCE": "proc"}))
    assert set(auto) == set(proc) == set(env_proc)
    for inode in auto:
        for key in ("proto", "family", "state", "local_addr", "local_port", "peer_addr",
                    "peer_port", "pid", "process"):
            assert auto[inode][key] == proc[inode][key], (key, auto[inode], proc[inode])
    assert proc[info["unix_client"]]["peer_inode"] is None  # /proc/net/unix has no peers
    assert auto[info["listener"]]["send_q"] == 64 and proc[info["listener"]]["send_q"] == 0
    assert proc[info["est_server"]]["recv_q"] == 100


def test_netlink_only_refuses_what_it_cannot_list(world):
    out = world.pysock("-t", "--source", "netlink", "--json")
    assert len(out.stdout.splitlines()) == sum(ss_counts(world.ss("-tn")).values())
    raw = world.pysock("-w", "-a", "--source", "netlink", check=False)
    if raw.returncode == 0:  # this kernel has raw_diag
        assert len(raw.stdout.splitlines()) == 1 + len(world.ss("-wan"))
    else:
        assert raw.returncode == 1 and "raw" in raw.stderr and len(raw.stderr.splitlines()) == 1


# ---- selections ------------------------------------------------------------------


def test_default_is_connected_without_minisockets_as_ss(world):
    world.fresh_time_wait()
    recs = world.records("-t")
    assert state_counts(recs) == ss_counts(world.ss("-tn"))
    assert "LISTEN" not in state_counts(recs) and "TIME_WAIT" not in state_counts(recs)


def test_listening_as_ss(world):
    recs = world.records("-l")
    assert state_counts(recs, "tcp") == ss_counts(world.ss("-tln"))
    assert state_counts(recs, "udp") == ss_counts(world.ss("-uln"))
    assert state_counts(recs, "unix") == ss_counts([row[1:] for row in world.ss("-xl")])


@pytest.mark.parametrize("state, ss_args", [
    ("close-wait", ["state", "close-wait"]), ("CLOSE_WAIT", ["state", "close-wait"]),
    ("listening", ["state", "listening"]), ("established", ["state", "established"]),
    ("connected", ["state", "connected"]), ("synchronized", ["state", "synchronized"]),
    ("bucket", ["state", "bucket"]), ("big", ["state", "big"]), ("time-wait", ["state", "time-wait"]),
])
def test_state_and_groups_as_ss(world, state, ss_args):
    world.fresh_time_wait()
    recs = world.records("-t", "--state", state)
    ss_rows = world.ss("-tan", *ss_args)
    # with one state ss leaves out the State column
    assert len(recs) == len(ss_rows) > 0


def test_state_is_repeatable(world):
    recs = world.records("-t", "--state", "listen", "--state", "close-wait")
    assert set(state_counts(recs)) == {"LISTEN", "CLOSE_WAIT"}
    assert state_counts(recs)["CLOSE_WAIT"] == fx.CLOSE_WAIT_PILE


def test_protocol_and_family_flags(world):
    every = world.records("-a")
    for flag, proto in (("-t", "tcp"), ("-u", "udp"), ("-w", "raw"), ("-x", "unix")):
        recs = world.records(flag, "-a")
        assert recs and {r["proto"] for r in recs} == {proto}
        assert len(recs) == sum(1 for r in every if r["proto"] == proto)
    both = world.records("-t", "-u", "-a")
    assert {r["proto"] for r in both} == {"tcp", "udp"}
    six = world.records("-6", "-a")
    assert six and {r["family"] for r in six} == {6}
    assert len(six) == sum(1 for r in every if r["family"] == 6)
    four = world.records("-4", "-a")
    assert {r["family"] for r in four} == {4}
    assert {r["proto"] for r in four} == {"tcp", "udp", "raw"}


def test_ports_as_ss(world):
    port = str(fx.TCP_PORT)
    recs = world.records("-t", "-a", "--port", port)
    assert len(recs) == len(world.ss("-tan", f"( sport = :{port} or dport = :{port} )"))
    sport = world.records("-t", "-a", "--sport", port)
    assert len(sport) == len(world.ss("-tan", f"sport = :{port}"))
    assert {r["local_port"] for r in sport} == {fx.TCP_PORT}
    dport = world.records("-t", "-a", "--dport", port)
    assert len(dport) == len(world.ss("-tan", f"dport = :{port}")) > 0
    assert {r["peer_port"] for r in dport} == {fx.TCP_PORT}
    ranged = world.records("-t", "-l", "--sport", f"{fx.TCP_PORT}-{fx.FULL_PORT}")
    assert {r["local_port"] for r in ranged} == {fx.TCP_PORT, fx.TCP6_PORT, fx.FULL_PORT}


def test_addr_and_cidr(world):
    v6 = world.records("-a", "--addr", "::1")
    assert v6 and all("::1" in (r["local_addr"], r["peer_addr"]) for r in v6)
    block = world.records("-a", "--addr", "127.0.0.0/8")
    assert {r["family"] for r in block} == {4}
    assert len(block) == len(world.ss("-tuwan", "src 127.0.0.0/8 or dst 127.0.0.0/8"))
    assert world.records("-a", "--addr", "10.99.0.0/16") == []


def test_owner_selections(world):
    pid = str(world.info["pid"])
    mine = world.records("-a", "--pid", pid)
    assert mine and {r["pid"] for r in mine} == {world.info["pid"]}
    assert world.records("-a", "--process", "FIXTURE") == mine  # substring, any case
    assert world.records("-a", "--process", "no-such-process") == []
    root = world.records("-a", "-t", "--user", "root")
    assert root and all(r["user"] == "root" for r in root)
    assert world.records("-a", "--user", "0") == world.records("-a", "--user", "root")
    assert world.records("-a", "--user", "nobody") == []


def test_path_selects_unix_by_own_or_peer_name(world):
    recs = world.records("-a", "--path", "stream.sock")
    inodes = {r["inode"] for r in recs}
    info = world.info
    assert {info["unix_listener"], info["unix_server"], info["unix_client"]} <= inodes
    assert info["unix_dgram"] not in inodes


# ---- renderings ------------------------------------------------------------------


def test_plain_table_with_service_names_and_numeric(world):
    out = world.pysock("-t", "-l", "--sport", "22").stdout.splitlines()
    assert out[0].split("\t") == ["Proto", "State", "Recv-Q", "Send-Q", "Local", "Peer",
                                  "Process", "User"]
    assert out[1].split("\t") == ["tcp", "LISTEN", "0", "128", "127.0.0.1:ssh", "*:*",
                                  f"sockfixture[{world.info['pid']}]", "root"]
    numeric = world.pysock("-t", "-l", "-n", "--sport", "22").stdout.splitlines()
    assert numeric[1].split("\t")[4] == "127.0.0.1:22"
    full = world.pysock("-t", "-l", "--sport", str(fx.FULL_PORT)).stdout.splitlines()
    assert full[1].split("\t")[2:4] == ["3!", "2"]  # the accept queue is at its backlog


def test_resolve_names_from_hosts_file(world):
    out = world.pysock("-t", "-l", "-r", "--sport", str(fx.TCP_PORT)).stdout.splitlines()
    assert out[1].split("\t")[4] == "localhost:4100"
    recs = world.records("-t", "-l", "-r", "--sport", str(fx.TCP_PORT))
    assert recs[0]["local_name"] == "localhost" and recs[0]["local_addr"] == "127.0.0.1"


def test_unix_rows_show_path_and_peer_process(world):
    info = world.info
    rows = [line.split("\t") for line in world.pysock("-x", "--pid", str(info["pid"])).stdout
            .splitlines()[1:]]
    peers = {row[5] for row in rows}
    assert f"{info['unix_path']} sockfixture[{info['pid']}]" in peers


def test_extended_tcp_info_agrees_with_ss(world):
    port = str(fx.TCP_PORT)
    recs = world.records("-e", "-t", "--dport", port, "--state", "established")
    assert len(recs) == 1
    r = recs[0]
    assert r["rtt_ms"] > 0 and r["cwnd"] > 0 and r["mss"] > 0
    assert r["bytes_acked"] >= 100 and r["bytes_sent"] >= 100
    assert r["congestion"] and r["skmem"]["sndbuf"] > 0
    text = " ".join(" ".join(row) for row in world.ss("-tin", "state", "established",
                                                      f"dport = :{port}"))
    assert f"cwnd:{r['cwnd']}" in text and f"mss:{r['mss']}" in text
    assert r["congestion"] in text
    plain = world.pysock("-e", "-t", "--dport", port).stdout.splitlines()
    assert "RTT ms" in plain[0] and "Skmem" in plain[0]


def test_extended_from_proc_says_what_is_missing(world):
    out = world.pysock("-e", "-t", "--source", "proc", "--json")
    assert "netlink" in out.stderr and len(out.stderr.splitlines()) == 1
    assert all(json.loads(line).get("rtt_ms") is None for line in out.stdout.splitlines())


# ---- views -----------------------------------------------------------------------


def test_summary_counts_as_ss(world):
    world.fresh_time_wait()
    rows = world.records("--summary")
    states = {(r["proto"], r["state"]): r["count"] for r in rows if r["type"] == "state"}
    tcp = Counter({s: n for (p, s), n in states.items() if p == "tcp"})
    assert tcp == ss_counts(world.ss("-tan"))
    kernel = {r["name"]: r for r in rows if r["type"] == "sockstat"}
    # the kernel counts orphaned FIN_WAIT2 sockets (our closed CLOSE_WAIT peers) as tw too
    assert kernel["tcp"]["tw"] == tcp["TIME_WAIT"] + tcp["FIN_WAIT2"]
    top = [r for r in rows if r["type"] == "process"]
    assert top[0]["process"] == "sockfixture" and top[0]["pid"] == world.info["pid"]
    assert top[0]["sockets"] == sum(1 for r in world.records("-a") if r["pid"] == top[0]["pid"])
    plain = world.pysock("--summary").stdout
    assert "Kind\tIn use" in plain and "Proto\tState\tCount" in plain


def test_by_process_flags_leaks_and_close_wait(world):
    info = world.info
    rows = world.records("--by-process")
    mine = next(r for r in rows if r["pid"] == info["pid"])
    assert mine["process"] == "sockfixture" and mine["close_wait"] == fx.CLOSE_WAIT_PILE
    assert mine["fd_limit"] == info["fd_limit"]
    assert mine["fds"] == len(os.listdir(f"/proc/{info['pid']}/fd"))
    assert set(mine["flags"]) == {"near-fd-limit", "close-wait-pile"}
    assert mine["unix"] == 5 and mine["raw"] == 2 and mine["udp"] == 2
    assert rows[0]["flags"]  # flagged processes come first
    plain = world.pysock("--by-process", "--pid", str(info["pid"])).stdout.splitlines()
    assert len(plain) == 2 and "near-fd-limit,close-wait-pile" in plain[1]


def test_by_process_has_psutils_details_checked_against_proc(world):
    pid = world.info["pid"]
    mine = next(r for r in world.records("--by-process") if r["pid"] == pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert mine["cmdline"] == " ".join(a.decode() for a in f.read().split(b"\0") if a)
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    assert mine["threads"] == int(status["Threads"])
    rss = int(status["VmRSS"].split()[0]) * 1024
    assert abs(mine["rss_bytes"] - rss) <= rss * 0.1
    assert 0 <= mine["cpu_pct"] < 50  # the fixture sleeps
    started = datetime.datetime.fromisoformat(mine["started"]).timestamp()
    assert abs(started - (time.time() - _age(pid))) < 3
    assert "inspect_fixture.py" in world.pysock("--by-process").stdout


def _age(pid: int) -> float:
    """Seconds since pid started, from /proc (starttime in clock ticks since boot)."""
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def test_limits_show_settings_with_use(world):
    rows = {r["setting"]: r for r in world.records("--limits")}
    with open("/proc/sys/net/core/somaxconn") as f:
        assert rows["net.core.somaxconn"]["value"] == int(f.read())
    assert rows["net.core.somaxconn"]["in_use"] == 128  # the largest backlog we asked for
    assert rows["net.ipv4.tcp_tw_reuse"]["in_use"] == state_counts(
        world.records("-t", "-a"))["TIME_WAIT"]
    # the connections to our listener use ephemeral ports: one row per destination
    dest = rows[f"ephemeral ports to 127.0.0.1:{fx.TCP_PORT}"]
    assert dest["in_use"] == len(world.ss("-tan", f"dport = :{fx.TCP_PORT}"))
    assert "fs.file-max" in rows and rows["fs.file-max"]["in_use"] > 0
    limited = subprocess.run(["prlimit", "--nofile=777:888", *world.host.argv(
        *PYSOCK, "inspect", "--limits", "--json")], capture_output=True, text=True, timeout=60)
    nofile = next(json.loads(line) for line in limited.stdout.splitlines()
                  if json.loads(line)["setting"] == "RLIMIT_NOFILE")
    assert nofile["value"] == 777 and "888" in nofile["note"]


# ---- bad input -------------------------------------------------------------------


@pytest.mark.parametrize("args, word", [
    (["--state", "sleepy"], "sleepy"), (["--port", "70000"], "70000"),
    (["--addr", "300.1.1.1"], "300.1.1.1"), (["--user", "no-such-user-x"], "no-such-user-x"),
    (["--count", "2"], "--watch"), (["--watch", "--summary"], "--summary"),
    (["--source", "floppy"], "floppy"), (["--pid", "0"], "0"), (["--watch", "-1"], "-1"),
])
def test_bad_values_are_one_line_usage_errors(args, word):
    out = subprocess.run([*PYSOCK, "inspect", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pysock: ") and word in lines[0]


def test_bad_source_in_environment():
    out = subprocess.run([*PYSOCK, "inspect"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYSOCK_INSPECT_SOURCE": "tape"})
    assert out.returncode == 2 and "PYSOCK_INSPECT_SOURCE" in out.stderr


def test_other_users_processes_are_hidden_and_said(tmp_path):
    need_root()
    need_tool("setpriv")
    out = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          *PYSOCK, "inspect", "-a", "--json"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    need("nobody cannot run this venv's python", "Permission denied" not in out.stderr
         or "hidden" in out.stderr)
    assert out.returncode == 0, out.stderr
    assert "hidden" in out.stderr and len(out.stderr.splitlines()) == 1


def test_raw_sockets_are_named_by_protocol_as_ss_names_them(world):
    named = world.pysock("-w", "-a", "--pid", str(world.info["pid"])).stdout
    assert "\t*:icmp\t" in named and "\t*:ipv6-icmp\t" in named
    ss = " ".join(" ".join(row) for row in world.ss("-w", "-a"))
    assert ":icmp " in ss + " " and ":ipv6-icmp " in ss + " "
    numeric = world.pysock("-w", "-a", "-n", "--pid", str(world.info["pid"])).stdout
    assert "\t*:1\t" in numeric and "\t*:58\t" in numeric


def test_a_pid_with_no_process_is_said():
    out = subprocess.run([*PYSOCK, "inspect", "--pid", "999999"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == "pysock: no such process: 999999\n"


def test_ss_habits_tlnp_and_no_header(world):
    with_header = world.pysock("-tl").stdout.splitlines()
    assert with_header[0].startswith("Proto\tState")
    assert world.pysock("-tlnp").stdout.splitlines() == \
        world.pysock("-tl", "-n").stdout.splitlines()
    assert world.pysock("-tl", "-H").stdout.splitlines() == with_header[1:]
    assert world.pysock("--counters", "-H").stdout.splitlines()[0].split("\t")[1] != "Counter"


FULL = [sys.executable, "-c", "import sys; from pysock.cli import main; main()"]


@pytest.mark.parametrize("flags", [["-tln"], ["-t", "-a", "--json"], ["-tanp", "-H"],
                                   ["-x", "-a"], ["--udp", "--all", "-4"], ["-tl6n"],
                                   ["-wa", "--numeric"], ["-ta", "-6", "-6"]])
def test_the_quick_path_prints_what_the_click_command_prints(world, flags):
    quick = world.host.run(*PYSOCK, "inspect", *flags).stdout
    full = world.host.run(*FULL, "inspect", *flags).stdout
    assert quick == full and quick


def test_the_quick_path_imports_no_click_and_hands_the_rest_to_click():
    out = subprocess.run([*PYSOCK[:1], "-X", "importtime", *PYSOCK[1:], "inspect", "-tln"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and " click" not in out.stderr and "rich" not in out.stderr
    bad = subprocess.run([*PYSOCK, "inspect", "-t", "--bogus"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and "no such option" in bad.stderr
