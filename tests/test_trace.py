"""pysock trace on a three-host namespace chain (client, forwarding router,
server), judged by the system traceroute on the same chain."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest

import netns
from conftest import PYSOCK, need_tool, run_pysock

NO_RAW = ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-net_raw"]
METHODS = {"icmp": [], "udp": ["--udp"], "tcp": ["--tcp", "80"]}
TRACEROUTE = {"icmp": ["-I"], "udp": [], "tcp": ["-T", "-p", "80"]}


@pytest.fixture
def chain(lab):
    client, router, server = netns.chain(lab)
    for host in (router, server):  # no ICMP rate limit: every probe gets its answer
        host.run("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
        host.run("sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
    client.run(*PYSOCK, "ping", "-c", "1", "-W", "2", server.addr, check=False)  # warm neighbours
    client.run(*PYSOCK, "ping", "-c", "1", "-W", "2", server.addr6, check=False)
    return client, router, server


def hop_addrs(stdout: str) -> list[list[str]]:
    """Per hop line of traceroute-style output: the addresses in it."""
    hops = []
    for line in stdout.splitlines()[1:]:
        if re.match(r"^\s*\d+ ", line):
            hops.append(re.findall(r"(?<![\d.:])(\d+\.\d+\.\d+\.\d+|[0-9a-f]*:[0-9a-f:]+)(?= )", line + " "))
    return hops


def trace(host, *args, timeout=60):
    return host.run(*PYSOCK, "trace", *args, check=False, timeout=timeout)


@pytest.mark.parametrize("method", list(METHODS))
def test_router_then_server_like_traceroute(chain, method):
    need_tool("traceroute")
    client, router, server = chain
    hop1 = next(iter(router.addrs.values()))
    ours = trace(client, "-n", "-w", "2", *METHODS[method], server.addr)
    assert ours.returncode == 0, ours.stderr
    lines = ours.stdout.splitlines()
    assert lines[0] == f"traceroute to {server.addr} ({server.addr}), 30 hops max, 60 byte packets"
    assert re.match(rf"^ 1  {re.escape(hop1)}  \d+\.\d{{3}} ms  \d+\.\d{{3}} ms  \d+\.\d{{3}} ms$",
                    lines[1]), lines
    assert re.match(rf"^ 2  {re.escape(server.addr)}  \d+\.\d{{3}} ms", lines[2]), lines
    assert len(lines) == 3
    theirs = client.run("traceroute", "-n", "-w", "2", *TRACEROUTE[method], server.addr,
                        check=False, timeout=60)
    assert [set(h) for h in hop_addrs(ours.stdout)] == [set(h) for h in hop_addrs(theirs.stdout)]


@pytest.mark.parametrize("method", list(METHODS))
def test_ipv6_path(chain, method):
    client, router, server = chain
    ours = trace(client, "-n", "-w", "2", *METHODS[method], server.addr6)
    assert ours.returncode == 0, ours.stderr
    assert hop_addrs(ours.stdout) == [[next(iter(router.addrs6.values()))], [server.addr6]]
    assert ours.stdout.splitlines()[0].endswith("30 hops max, 80 byte packets")


@pytest.mark.parametrize("method", ["udp", "tcp"])
def test_udp_and_tcp_need_no_privilege(chain, method):
    need_tool("setpriv")
    client, router, server = chain
    out = client.run(*NO_RAW, *PYSOCK, "trace", "-n", "-w", "2", *METHODS[method], server.addr,
                     check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    assert hop_addrs(out.stdout) == [[next(iter(router.addrs.values()))], [server.addr]]


def test_icmp_without_privilege_uses_ping_sockets(chain):
    need_tool("setpriv")
    client, router, server = chain
    client.run("sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
    out = client.run(*NO_RAW, *PYSOCK, "trace", "-n", "-w", "2", server.addr, check=False,
                     timeout=60)
    assert out.returncode == 0, out.stderr
    assert hop_addrs(out.stdout) == [[next(iter(router.addrs.values()))], [server.addr]]
    client.run("sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    out = client.run(*NO_RAW, *PYSOCK, "trace", "-n", server.addr, check=False)
    assert out.returncode == 2 and "ping_group_range" in out.stderr


def test_tcp_to_an_open_port(chain, port):
    client, router, server = chain
    listener = server.popen("python3", "-c", f"""
import socket
s = socket.create_server(('0.0.0.0', {port}))
while True:
    c, _ = s.accept(); c.close()
""")
    try:
        deadline = time.monotonic() + 10
        while f":{port:04X}" not in server.run("cat", "/proc/net/tcp").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        out = trace(client, "-n", "-w", "2", "--tcp", str(port), server.addr)
        assert out.returncode == 0, out.stderr
        assert hop_addrs(out.stdout)[-1] == [server.addr]
    finally:
        listener.kill()
        listener.communicate()


def test_json_records_and_silent_hop(chain):
    need_tool("nft")
    client, router, server = chain
    router.nft("""table ip t {
        chain out {
            type filter hook output priority 0;
            icmp type time-exceeded drop
        }
    }""")
    started = time.monotonic()
    out = trace(client, "-n", "--json", "-w", "1", "-q", "2", server.addr)
    took = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["hop"], r["probe"]) for r in recs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for r in recs[:2]:
        assert r["addr"] is None and r["rtt_ms"] is None and r["reached"] is False
    for r in recs[2:]:
        assert r["addr"] == server.addr and r["rtt_ms"] > 0 and r["reached"] is True
    assert took < 6  # -w 1 for the silent hop, not 5 s
    plain = trace(client, "-n", "-w", "1", server.addr)
    assert plain.stdout.splitlines()[1] == " 1  * * *"


def test_queries_and_max_hops(chain):
    client, router, server = chain
    out = trace(client, "-n", "-w", "1", "-q", "1", server.addr)
    assert out.returncode == 0
    assert re.match(r"^ 1  \S+  \d+\.\d{3} ms$", out.stdout.splitlines()[1])
    out = trace(client, "-n", "-w", "1", "-m", "1", server.addr)
    assert out.returncode == 1  # the destination was not reached within one hop
    assert out.stdout.splitlines()[0].endswith("1 hops max, 60 byte packets")
    assert len(out.stdout.splitlines()) == 2
    out = trace(client, "-n", "-w", "1", "-f", "2", server.addr)
    assert out.returncode == 0 and out.stdout.splitlines()[1].startswith(" 2  " + server.addr)


def test_unreachable_marks(chain):
    need_tool("nft")
    client, router, server = chain
    hop1 = next(iter(router.addrs.values()))
    router.nft("""table ip t {
        chain through {
            type filter hook forward priority 0;
            reject with icmp type host-unreachable
        }
    }""")
    out = trace(client, "-n", "-w", "1", server.addr)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert len(lines) == 3  # hop 2 is the dead end: the router says the host is unreachable
    assert re.match(rf"^ 2  {re.escape(hop1)}  \d+\.\d{{3}} ms !H  \d+\.\d{{3}} ms !H", lines[2])


def test_names_from_the_hosts_file(chain):
    """Names without DNS: ip netns exec binds /etc/netns/NAME/hosts over /etc/hosts
    and an empty resolv.conf, so nothing is asked of a name server."""
    client, router, server = chain
    hop1 = next(iter(router.addrs.values()))
    etc = f"/etc/netns/{client.name}"
    os.makedirs(etc, exist_ok=True)
    try:
        with open(f"{etc}/hosts", "w") as f:
            f.write(f"127.0.0.1 localhost\n{hop1} router.lab\n{server.addr} server.lab\n")
        with open(f"{etc}/resolv.conf", "w") as f:
            f.write("")
        out = trace(client, "-w", "1", "server.lab")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith(f"traceroute to server.lab ({server.addr})")
        assert lines[1].startswith(f" 1  router.lab ({hop1})  ")
        assert lines[2].startswith(f" 2  server.lab ({server.addr})  ")
        out = trace(client, "-w", "1", "--json", "server.lab")
        assert [json.loads(x)["name"] for x in out.stdout.splitlines()][::3] == ["router.lab",
                                                                               "server.lab"]
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def test_bad_input():
    for args, words in ((["--udp", "--tcp", "80", "127.0.0.1"], "one of"),
                        (["-q", "0", "127.0.0.1"], "queries"),
                        (["-f", "5", "-m", "3", "127.0.0.1"], "first hop"),
                        (["-n", "localhost"], "numeric"),
                        (["-p", "80", "127.0.0.1"], "--udp")):
        out = run_pysock("trace", *args)
        assert out.returncode == 2, (args, out.stderr)
        err = out.stderr.decode().strip().splitlines()
        assert len(err) == 1 and err[0].startswith("pysock: ") and words in err[0], err


def test_loopback_is_one_hop():
    out = run_pysock("trace", "-n", "127.0.0.1")
    assert out.returncode == 0
    assert out.stdout.decode().splitlines()[1].startswith(" 1  127.0.0.1  ")


def test_no_route_is_one_line_before_any_probe(lab):
    a = lab.host("a")
    out = a.run(*PYSOCK, "trace", "-n", "10.99.0.1", check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "pysock: cannot trace 10.99.0.1: network is unreachable\n"
    out = run_pysock("trace", "-n", "-i", "no-such-if0", "127.0.0.1")
    assert out.returncode == 2 and b"no network interface 'no-such-if0'" in out.stderr


# ---- mtr's mode: --repeat -------------------------------------------------------------

LOSSY = """table inet lossy {{
    counter seen {{ }}
    counter dropped {{ }}
    chain passing {{
        type filter hook forward priority 0;
        iifname "{iface}" counter name seen
        iifname "{iface}" numgen inc mod 5 == 0 counter name dropped drop
    }}
}}"""


def _mtr_hops(stdout: str) -> list[tuple[str, float, int]]:
    """(address, loss %, sent) per hop line of mtr --report."""
    hops = []
    for line in stdout.splitlines():
        m = re.match(r"^\s*\d+\.\|-- (\S+)\s+([\d.]+)%\s+(\d+)", line)
        if m:
            hops.append((m.group(1), float(m.group(2)), int(m.group(3))))
    return hops


def _counted(router, run):
    """Run; the share of forwarded probes the router's rule dropped meanwhile."""
    before = router.nft_counter("lossy", "seen"), router.nft_counter("lossy", "dropped")
    out = run()
    seen = router.nft_counter("lossy", "seen") - before[0]
    dropped = router.nft_counter("lossy", "dropped") - before[1]
    return out, dropped / seen


def _within_band(loss_pct: float, rate: float, sent: int) -> bool:
    """The loss seen over `sent` probes is what the rule's rate predicts, give or take
    three binomial standard deviations (and one probe)."""
    band = 3 * (rate * (1 - rate) / sent) ** 0.5 + 1 / sent
    return abs(loss_pct / 100 - rate) <= band


@pytest.mark.parametrize("method", ["icmp", "udp"])
def test_repeat_reports_loss_like_mtr(chain, method):
    need_tool("mtr", "nft")
    client, router, server = chain
    router.nft(LOSSY.format(iface=next(iter(router.addrs))))
    hop1 = next(iter(router.addrs.values()))
    ours, rate = _counted(router, lambda: trace(client, "-n", "-c", "10", "--interval", "0.1",
                                                 "-w", "1", "--json", *METHODS[method],
                                                 server.addr))
    assert ours.returncode == 0, ours.stderr
    recs = [json.loads(line) for line in ours.stdout.splitlines()]
    rounds = [r for r in recs if r.get("type") != "summary"]
    summary = [r for r in recs if r.get("type") == "summary"]
    assert {r["round"] for r in rounds} == set(range(1, 11))
    assert [(s["hop"], s["addr"], s["sent"]) for s in summary] == [(1, hop1, 10), (2, server.addr, 10)]
    assert summary[0]["loss_pct"] == 0.0  # TTL 1 dies at the router: never forwarded
    assert _within_band(summary[1]["loss_pct"], rate, 10), (summary, rate)
    s = summary[1]
    assert s["best_ms"] <= s["avg_ms"] <= s["worst_ms"] and s["stdev_ms"] >= 0
    assert s["last_ms"] is not None
    mtr_flag = {"icmp": [], "udp": ["-u"]}[method]
    theirs, their_rate = _counted(router, lambda: client.run(
        "mtr", "--report", "-n", "-c", "10", "-i", "0.1", *mtr_flag, server.addr, timeout=60))
    mtr_hops = _mtr_hops(theirs.stdout)
    assert [h[0] for h in mtr_hops] == [hop1, server.addr], theirs.stdout
    assert _within_band(mtr_hops[1][1], their_rate, mtr_hops[1][2])


def test_repeat_plain_report_is_mtrs(chain):
    client, router, server = chain
    out = trace(client, "-n", "-c", "3", "--interval", "0.1", server.addr)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[-7:] == ["Loss%", "Snt", "Last", "Avg", "Best", "Wrst", "StDev"]
    assert lines[1].split()[:4] == ["1.|--", next(iter(router.addrs.values())), "0.0%", "3"]
    assert lines[2].split()[:4] == ["2.|--", server.addr, "0.0%", "3"]
    assert len(lines) == 3


@pytest.mark.parametrize("args, words", [
    (["-c", "3", "-q", "2"], "-q/--queries"),
    (["-c", "3", "-N", "4"], "-N/--sim-queries"),
    (["--interval", "0.5"], "--interval is for"),
    (["--watch"], "--watch draws on a terminal"),
])
def test_repeat_refuses_what_it_cannot_honour(args, words):
    out = run_pysock("trace", "-n", *args, "127.0.0.1")
    assert out.returncode == 2
    err = out.stderr.decode()
    assert words in err and len(err.strip().splitlines()) == 1, err


def test_watch_redraws_the_table_each_round_on_a_terminal():
    import pty
    pid, fd = pty.fork()
    if pid == 0:  # the child: pysock with a terminal for stdout
        os.execv(PYSOCK[0], [*PYSOCK, "--color", "never", "trace", "-n", "--watch", "-c", "3",
                             "--interval", "0.2", "--udp", "127.0.0.1"])
    chunks = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Loss%" in text and "127.0.0.1" in text
    for sent in ("1", "2", "3"):  # the Snt column after each round
        assert re.search(rf"127\.0\.0\.1\s+0\.0%\s+{sent}\s", text), text


# ---- tracepath: --pmtu ----------------------------------------------------------------


def _narrow_middle(router, server) -> None:
    """The router-server link at MTU 1280 (the client's link stays at 1500)."""
    link = list(router.addrs)[1]
    router.run("ip", "link", "set", link, "mtu", "1280")
    server.run("ip", "link", "set", next(iter(server.addrs)), "mtu", "1280")


def _resume_pmtu(stdout: str) -> int:
    return int(re.search(r"Resume: pmtu (\d+)", stdout).group(1))


@pytest.mark.parametrize("v6", [False, True])
def test_pmtu_finds_the_narrow_link_like_tracepath(chain, v6):
    need_tool("tracepath")
    client, router, server = chain
    _narrow_middle(router, server)
    dest = server.addr6 if v6 else server.addr
    hop1 = next(iter((router.addrs6 if v6 else router.addrs).values()))
    ours = trace(client, "-n", "--pmtu", dest)  # first: the kernel has no cached path MTU yet
    assert ours.returncode == 0, ours.stderr
    lines = ours.stdout.splitlines()
    assert re.match(r"^ 1\?: \[LOCALHOST\]\s+pmtu 1500$", lines[0]), lines
    assert re.search(rf"^ 2:  {re.escape(hop1)}\s+\d+\.\d+ms pmtu 1280$", ours.stdout, re.M), lines
    assert re.search(rf"^ 2:  {re.escape(dest)}\s+\d+\.\d+ms reached$", ours.stdout, re.M), lines
    assert _resume_pmtu(ours.stdout) == 1280
    theirs = client.run("tracepath", "-n", dest, timeout=60)
    assert _resume_pmtu(theirs.stdout) == 1280
    assert "hops 2 back 2" in theirs.stdout and "hops 2 back 2" in ours.stdout
    recs = [json.loads(x) for x in trace(client, "-n", "--pmtu", "--json", dest).stdout.splitlines()]
    assert recs[-1] == {"type": "summary", "pmtu": 1280, "hops": 2, "reached": True}
    assert recs[-2]["addr"] == dest and recs[-2]["reached"]


@pytest.mark.parametrize("args, words", [
    (["--pmtu", "-c", "3"], "not with --repeat"),
    (["--pmtu", "--tcp", "80"], "not with --tcp"),
    (["--pmtu", "-q", "2"], "not with -q/--queries"),
])
def test_pmtu_refuses_what_it_cannot_honour(args, words):
    out = run_pysock("trace", "-n", *args, "127.0.0.1")
    assert out.returncode == 2
    err = out.stderr.decode()
    assert words in err and len(err.strip().splitlines()) == 1, err
