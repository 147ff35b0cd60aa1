"""pysock scan end to end: options, errors, output, and the traps a scanner falls into."""

from __future__ import annotations

import json
import os
import pty
import resource
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

import scanlab as sl

import netns
from conftest import PYSOCK, free_port, need, need_root, need_tool, run_pysock, wait_listening

pytestmark = pytest.mark.timeout(180)
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def records(out) -> list[dict]:
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def ports_of(recs, state=None) -> list[int]:
    return sorted(r["port"] for r in recs if r.get("type") != "summary"
                  and (state is None or r["state"] == state))


def one_line_error(out, status: int, *words: str) -> None:
    err = out.stderr.decode().strip().splitlines()
    assert out.returncode == status, out
    assert len(err) == 1 and err[0].startswith("pysock: "), err
    for word in words:
        assert word in err[0], err


@pytest.fixture
def listener(procs):
    """A process listening on a loopback port (v4 and v6), greeting each client."""
    port = free_port()
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.bind(('::',int(sys.argv[1])))\n"
            "s.listen(64)\n"
            "while True:\n c,_=s.accept()\n"
            " try: c.send(b'220 hello\\x01 from\\r\\nthe [bold]test[/bold]\\r\\n')\n"
            " except OSError: pass\n c.close()\n")
    proc = procs.start([sys.executable, "-c", code, str(port)])
    wait_listening(port, proc=proc)
    return port, proc


# ---- usage and failures: one line each -------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["-p", "0", "127.0.0.1"], ["0", "out of range"]),
    (["-p", "70000", "127.0.0.1"], ["70000"]),
    (["-p", "9-2", "127.0.0.1"], ["backwards"]),
    (["-p", "nosuchservice", "127.0.0.1"], ["nosuchservice"]),
    (["-p", "X:22", "127.0.0.1"], ["X:"]),
    (["-p", "22", "--top", "10", "127.0.0.1"], ["-p", "--top"]),
    (["--top", "0", "127.0.0.1"], ["--top"]),
    (["10.0.0.0/33"], ["10.0.0.0/33"]),
    (["10.0.0.0/8"], ["limit"]),
    (["999.1.1.1"], ["999.1.1.1"]),
    (["-n", "some.name.example"], ["some.name.example", "-n"]),
    (["-6", "127.0.0.1"], ["127.0.0.1"]),
    (["--syn", "-p", "U:53", "127.0.0.1"], ["--syn"]),
    (["--rate", "0", "127.0.0.1"], ["--rate"]),
    (["-w", "abc", "127.0.0.1"], ["abc"]),
    ([], ["TARGET"]),
])
def test_usage_errors(args, words):
    one_line_error(run_pysock("scan", *args), 2, *words)


def test_syn_without_privilege_says_what_is_needed():
    need_root()  # to become nobody
    out = subprocess.run([*NOBODY, *PYSOCK, "scan", "--syn", "-p", "80", "127.0.0.1"],
                         capture_output=True, timeout=30)
    one_line_error(out, 2, "--syn", "root", "CAP_NET_RAW")  # errors.PrivilegeError: one rule


def test_udp_needs_no_privilege():
    """ICMP errors reach an ordinary socket through IP_RECVERR: no raw socket needed."""
    need_root()
    closed = free_port()
    out = subprocess.run([*NOBODY, *PYSOCK, "scan", "--udp", "--json", "-p", str(closed), "127.0.0.1"],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert records(out)[0]["state"] == "closed"


def test_unresolvable_target_is_skipped_and_exit_1(lab):
    """A name that does not resolve: one line, the other targets still scanned."""
    host = lab.host("dns")  # no route anywhere, and an empty resolver configuration
    os.makedirs(f"/etc/netns/{host.name}", exist_ok=True)
    try:
        open(f"/etc/netns/{host.name}/resolv.conf", "w").close()
        out = subprocess.run(host.argv(*PYSOCK, "scan", "--json", "-p", "1", "no-such-host.invalid",
                                       "127.0.0.1"), capture_output=True, timeout=60)
    finally:
        import shutil
        shutil.rmtree(f"/etc/netns/{host.name}", ignore_errors=True)
    one_line_error(out, 1, "no-such-host.invalid")
    assert [r["host"] for r in records(out) if r.get("type") == "summary"] == ["127.0.0.1"]


def test_unroutable_target_exit_1(lab):
    host = lab.host("lonely")
    out = subprocess.run(host.argv(*PYSOCK, "scan", "-p", "80", "10.99.0.1"),
                         capture_output=True, timeout=60)
    one_line_error(out, 1, "10.99.0.1", "unreachable")


# ---- output ---------------------------------------------------------------------


def test_json_fields_and_summary(listener):
    port, _ = listener
    closed = free_port()
    out = run_pysock("scan", "--json", "-p", f"{port},{closed}", "127.0.0.1")
    assert out.returncode == 0, out.stderr
    recs = records(out)
    by_port = {r["port"]: r for r in recs if "port" in r}
    for field in ("host", "port", "proto", "state", "service", "rtt_ms"):
        assert field in by_port[port]
    assert by_port[port]["state"] == "open" and by_port[closed]["state"] == "closed"
    assert by_port[port]["host"] == "127.0.0.1" and by_port[port]["proto"] == "tcp"
    assert isinstance(by_port[port]["rtt_ms"], float)
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["open"] == 1 and summary["closed"] == 1


@pytest.fixture
def private_listener(lab):
    """A host of its own (a namespace: nobody else's ports on its loopback) with one
    listening port; returns (host, port)."""
    host = lab.host("solo")
    port = 20400
    code = (f"import socket,time\ns=socket.socket();s.bind(('127.0.0.1',{port}));s.listen(64)\n"
            "print('ready',flush=True)\ntime.sleep(600)\n")
    proc = host.popen(sys.executable, "-c", code, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return host, port


def in_ns(host, *args, **kw):
    return subprocess.run(host.argv(*PYSOCK, "scan", *args), capture_output=True, timeout=60, **kw)


def test_plain_output_hides_a_crowded_state_and_summarises(private_listener):
    host, port = private_listener
    low = port - 40
    out = in_ns(host, "-p", f"{low}-{port}", "127.0.0.1")
    assert out.returncode == 0
    lines = out.stdout.decode().splitlines()
    assert lines[0].split("\t")[:6] == ["HOST", "PORT", "PROTO", "STATE", "SERVICE", "RTT_MS"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[1] for r in rows] == [str(port)] and rows[0][3] == "open"
    err = out.stderr.decode()
    assert "127.0.0.1: 1 open, 40 closed, 0 filtered in" in err and "not shown: 40 closed" in err
    everything = in_ns(host, "--all", "-p", f"{low}-{port}", "127.0.0.1")
    assert len(everything.stdout.decode().splitlines()) == 1 + 41


def test_open_shows_only_open(private_listener):
    host, port = private_listener
    out = in_ns(host, "--json", "--open", "-p", f"{port - 3}-{port + 3}", "127.0.0.1")
    assert ports_of(records(out)) == [port]


def test_table_on_a_terminal_and_progress_on_stderr_terminal(listener):
    """stdout a terminal: a table per host; stderr a terminal: the progress bar."""
    port, _ = listener
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    proc = subprocess.Popen([*PYSOCK, "--color", "never", "scan", "--banner", "-p", f"1-{port}",
                             "127.0.0.1"],
                            stdout=out_slave, stderr=err_slave, stdin=subprocess.DEVNULL,
                            env={**os.environ, "COLUMNS": "200", "TERM": "xterm"})
    os.close(out_slave)
    os.close(err_slave)
    out, err = _read_pty(out_master, proc), _read_pty(err_master, proc)
    assert proc.wait(30) == 0
    assert "PORT" in out and "STATE" in out and f"{port}" in out and "127.0.0.1" in out
    assert "[bold]test[/bold]" in out  # a banner is text, not rich markup
    assert "scanning" in err  # the progress bar's label
    assert "open," in err  # and the summary


def _read_pty(fd: int, proc, limit: float = 30) -> str:
    chunks, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def test_no_progress_when_stderr_is_not_a_terminal(listener):
    port, _ = listener
    out = run_pysock("scan", "-p", f"1-{port}", "127.0.0.1")
    assert "scanning" not in out.stderr.decode()


def test_local_target_open_port_names_its_process(listener):
    port, proc = listener
    out = run_pysock("scan", "--json", "-p", str(port), "127.0.0.1")
    rec = records(out)[0]
    assert rec["pid"] == proc.pid and rec["process"].startswith("python")
    import pwd
    assert rec["user"] == pwd.getpwuid(os.getuid()).pw_name
    plain = run_pysock("scan", "-p", str(port), "::1").stdout.decode().splitlines()
    assert plain[0].split("\t")[6:9] == ["PID", "PROCESS", "USER"]
    assert plain[1].split("\t")[6] == str(proc.pid)


def test_banner_is_printable_and_shown(listener):
    port, _ = listener
    out = run_pysock("scan", "--json", "--banner", "-p", str(port), "127.0.0.1")
    assert records(out)[0]["banner"] == "220 hello. from | the [bold]test[/bold]"
    plain = run_pysock("scan", "--banner", "-p", str(port), "127.0.0.1").stdout.decode()
    assert plain.splitlines()[0].split("\t")[-1] == "BANNER"
    assert "220 hello. from | the [bold]test[/bold]" in plain


def test_top_ports_are_nmaps():
    need_tool("nmap")
    out = subprocess.run(["nmap", "-sT", "-Pn", "-n", "--top-ports", "100", "-oX", "-", "127.0.0.1"],
                         capture_output=True, text=True, timeout=60)
    services = out.stdout.split(' services="', 1)[1].split('"', 1)[0]
    theirs = set()
    for part in services.split(","):
        lo, _, hi = part.partition("-")
        theirs.update(range(int(lo), int(hi or lo) + 1))
    ours = run_pysock("scan", "--json", "--all", "--top", "100", "127.0.0.1")
    assert set(ports_of(records(ours))) == theirs
    default = run_pysock("scan", "--json", "--all", "127.0.0.1")
    assert len(ports_of(records(default))) == 1000


# ---- the traps ------------------------------------------------------------------


def test_self_connect_is_closed_not_open():
    """A socket bound to 127.0.0.1:P connecting to 127.0.0.1:P meets itself (TCP
    simultaneous open) and connects, though nobody listens. -g P forces exactly that."""
    trap, port = free_port(), free_port()
    with socket.socket() as naive:  # the trap is real on this kernel
        naive.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        naive.bind(("127.0.0.1", trap))
        assert naive.connect_ex(("127.0.0.1", trap)) == 0
        assert naive.getsockname() == naive.getpeername()
    out = run_pysock("scan", "--json", "--reason", "-g", str(port), "-p", str(port), "127.0.0.1")
    assert out.returncode == 0, out.stderr
    rec = records(out)[0]
    assert (rec["state"], rec["reason"]) == ("closed", "self-connect")


@pytest.mark.parametrize("kind", [[], ["--syn"], ["--udp"]])
def test_no_phantom_open_ports_on_an_empty_loopback(lab, kind):
    """In a namespace where nothing listens, every port of 127.0.0.1 must be closed,
    run after run: a connect to the ephemeral range can meet itself, and a UDP probe
    to the scanner's own port comes back to it."""
    host = lab.host("empty")
    for _ in range(3 if not kind else 1):
        out = in_ns(host, "--json", *kind, "-p-", "127.0.0.1")
        assert out.returncode == 0, out.stderr
        assert records(out)[-1]["closed"] == 65535, records(out)


def test_big_connect_scan_is_split_over_processes_with_the_same_verdicts(listener):
    """A big connect scan runs in two processes (both cores); their verdicts merge
    into exactly what one process finds, and the progress adds up."""
    from pysock.probes.scan.connect import ConnectScan
    from pysock.probes.scan.model import Target, Timing
    from pysock.probes.scan.workers import run_split

    class Tagged(ConnectScan):  # which process settled each port
        def run(self):
            results = super().run()
            for verdicts in results:
                for verdict in verdicts.values():
                    verdict.reason += f"@{os.getpid()}"
            return results

    port, _ = listener
    ports = sorted(set(range(port - 10000, port + 10000)) & set(range(1, 65536)))
    target = [Target("127.0.0.1", socket.AF_INET, "127.0.0.1")]
    progress = []
    before = _listening_loopback(ports)
    split = run_split(Tagged, target, ports, Timing(), progress.append, 2)[0]
    after = _listening_loopback(ports)
    assert sorted(split) == ports and sum(progress) == len(ports)
    tagged = [v.reason.split("@") for v in split.values() if "@" in v.reason]
    assert len({pid for _, pid in tagged}) == 2
    # the rest were open in the scan and refused when confirmed (a listener gone since)
    assert all((v.state, v.reason) == ("closed", "conn-refused")
               for v in split.values() if "@" not in v.reason)
    found = {p for p, v in split.items() if v.state == "open"}
    assert before & after <= found <= before | after  # other tests' listeners come and go
    assert port in found
    assert all(v.state == "closed" for p, v in split.items() if p not in found)


def test_split_scan_work_goes_to_the_process_with_time_for_it():
    """The processes of a split scan take chunks of ports as they go: when the
    forked worker is slow (its core busy elsewhere), this process scans most ports,
    rather than waiting for the worker's fixed half."""
    from pysock.probes.scan.connect import ConnectScan
    from pysock.probes.scan.model import Target, Timing
    from pysock.probes.scan.workers import run_split

    parent = os.getpid()

    class SlowWorker(ConnectScan):
        def _start(self, *job):
            if os.getpid() != parent:
                time.sleep(0.0005)
            return super()._start(*job)

        def run(self):
            results = super().run()
            for verdicts in results:
                for verdict in verdicts.values():
                    verdict.reason += "@parent" if os.getpid() == parent else "@worker"
            return results

    ports = list(range(40000, 60000))
    target = [Target("127.0.0.1", socket.AF_INET, "127.0.0.1")]
    split = run_split(SlowWorker, target, ports, Timing(), None, 2)[0]
    assert sorted(split) == ports
    by = [v.reason.rsplit("@", 1)[-1] for v in split.values()]
    assert 0 < by.count("worker") < len(ports) // 4, by.count("worker")


def test_local_ports_that_never_answer_are_filtered_not_stuck(lab):
    """To this machine's own address a probe waits a tick inside connect(); a port
    whose SYN is dropped must still come out filtered (from epoll, after retries),
    and the rest of the host is scanned the ordinary way without a tick per port."""
    host = lab.host("dropper")
    host.nft("table inet t {\n chain o {\n type filter hook output priority 0;\n"
             "  tcp dport 3000-3999 drop\n }\n}\n")
    started = time.monotonic()
    out = in_ns(host, "--json", "--all", "--reason", "-p", "2001-4500", "127.0.0.1")
    assert out.returncode == 0, out.stderr
    states = {r["port"]: (r["state"], r["reason"]) for r in records(out) if "port" in r}
    assert len(states) == 2500
    assert all(states[p] == ("filtered", "no-response") for p in range(3000, 4000))
    assert all(states[p] == ("closed", "conn-refused")
               for p in [*range(2001, 3000), *range(4000, 4501)])
    assert time.monotonic() - started < 30


def test_loopback_connect_scan_costs_one_connect_per_port(lab):
    """To loopback each port is one connect() (the blocking kind with a one-tick
    send timeout), not a non-blocking connect and a second one to read the answer."""
    need_tool("strace")
    host = lab.host("counted")
    out = subprocess.run(host.argv("strace", "-f", "-c", "-e", "trace=connect", "-o", "/dev/stderr",
                                   *PYSOCK, "scan", "--json", "-p", "1-20000", "127.0.0.1"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    calls = [line.split() for line in out.stderr.splitlines() if line.endswith(" connect")]
    assert calls, out.stderr
    assert 20000 <= int(calls[0][3]) < 21000, calls


def _listening_loopback(ports) -> set[int]:
    """Ports with a TCP listener that 127.0.0.1 reaches, from /proc."""
    found = set()
    for table, wildcard in (("/proc/net/tcp", "00000000"), ("/proc/net/tcp6", "0" * 32)):
        with open(table) as f:
            for line in list(f)[1:]:
                cols = line.split()
                addr, hexport = cols[1].split(":")
                if cols[3] == "0A" and addr in (wildcard, "0100007F"):
                    found.add(int(hexport, 16))
    return found & set(ports)


def test_backs_off_when_out_of_descriptors(private_listener):
    """An open-file limit far below --concurrency: EMFILE shrinks the window, the scan
    completes with the right answer."""
    host, port = private_listener

    def tiny_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
    for extra in (["-c", "2000"], []):
        out = in_ns(host, "--json", *extra, "-p", f"{port - 1500}-{port}", "127.0.0.1",
                    preexec_fn=tiny_limit)
        assert out.returncode == 0, out.stderr
        assert ports_of(records(out), "open") == [port]
        assert records(out)[-1]["closed"] == 1500


# ---- timing options, counted by the target's firewall ------------------------------


@pytest.fixture
def counted(lab):
    """client, server where the server drops TCP to 7001 and counts each SYN."""
    need_tool("nft")
    client, server = netns.two_hosts(lab)
    server.nft("""table inet c {
        counter syns { }
        counter fromport { }
        chain in {
            type filter hook input priority 0;
            tcp sport 4444 counter name fromport
            tcp dport 7001 counter name syns drop
        }
    }""")
    return client, server


@pytest.mark.parametrize("syn", [False, True])
@pytest.mark.parametrize("retries", [0, 2])
def test_retries_resend_to_silent_ports(counted, syn, retries):
    client, server = counted
    extra = ["--syn"] if syn else []
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", *extra, "-w", "0.3", "--retries",
                                     str(retries), "-p", "7001", server.addr),
                         capture_output=True, timeout=60)
    assert records(out)[0]["state"] == "filtered"
    assert server.nft_counter("c", "syns") == retries + 1


def test_timeout_bounds_the_wait(counted):
    client, server = counted
    started = time.monotonic()
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "-w", "0.2", "--retries", "0",
                                     "-p", "7001", server.addr), capture_output=True, timeout=60)
    assert records(out)[0]["state"] == "filtered"
    assert time.monotonic() - started < 0.9 + 1.5  # 1 s without -w; the rest is start-up


@pytest.mark.parametrize("syn", [False, True])
def test_timeout_adapts_to_a_fast_host(counted, syn):
    """Silence is judged against the measured round trip, not a fixed second: on a
    fast link 50 dropped ports (each tried twice) are given up on in well under the
    1 s a probe gets before anything is measured."""
    client, server = counted
    server.nft("""table inet many {
        chain in {
            type filter hook input priority 0;
            tcp dport 7100-7149 drop
        }
    }""")
    extra = ["--syn"] if syn else []
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "--all", *extra, "-p", "7100-7169",
                                     server.addr), capture_output=True, timeout=60)
    recs = records(out)
    states = {r["port"]: r["state"] for r in recs if "port" in r}
    assert [states[p] for p in range(7100, 7150)] == ["filtered"] * 50
    assert [states[p] for p in range(7150, 7170)] == ["closed"] * 20
    assert recs[-1]["elapsed_ms"] < 900


@pytest.mark.parametrize("syn", [False, True])
def test_source_port(counted, syn):
    client, server = counted
    extra = ["--syn"] if syn else []
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", *extra, "-g", "4444", "-p", "22,23",
                                     server.addr), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert server.nft_counter("c", "fromport") >= 2


@pytest.mark.parametrize("kind", [[], ["--syn"], ["--udp"]])
def test_rate_ceiling(lab, kind):
    """--rate holds the average, also above the thousand a second a millisecond poll
    timer would allow one probe at a time. (A loopback of its own: no one else's
    ports in the range.)"""
    host = lab.host("rate")
    out = in_ns(host, "--json", "--all", *kind, "--rate", "4000", "-p", "20001-21000", "127.0.0.1")
    recs = records(out)
    assert out.returncode == 0 and len(ports_of(recs)) == 1000
    elapsed = recs[-1]["elapsed_ms"] / 1000
    assert 999 / 4000 <= elapsed < 3 * 1000 / 4000, elapsed


def test_concurrency_one_probes_one_at_a_time(counted):
    client, server = counted
    server.nft("""table inet d {
        chain in {
            type filter hook input priority 0;
            tcp dport 7002-7003 drop
        }
    }""")
    started = time.monotonic()
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "-c", "1", "-w", "0.3", "--retries",
                                     "0", "-p", "7001-7003", server.addr), capture_output=True,
                         timeout=60)
    assert [r["state"] for r in records(out)[:3]] == ["filtered"] * 3
    assert time.monotonic() - started >= 0.9


# ---- CIDR targets and the up-check ----------------------------------------------------


def _block(host) -> str:
    return host.addr.rsplit(".", 1)[0] + ".0/29"


@pytest.mark.parametrize("privileged", [True, False])
def test_cidr_scans_hosts_that_are_up(lab, privileged):
    need_tool("nft")
    client, server = netns.two_hosts(lab)
    sl.serve(server)  # listens on 80: the unprivileged up-check's TCP connect finds it
    prefix = [] if privileged else NOBODY
    out = subprocess.run(client.argv(*prefix, *PYSOCK, "scan", "--json", "-p", "22,23",
                                     _block(server)), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summaries = {r["host"]: r for r in records(out) if r.get("type") == "summary"}
    up = sorted(h for h, r in summaries.items() if r["up"])
    assert server.addr in up and len(summaries) == 6
    down = [h for h, r in summaries.items() if not r["up"]]
    assert len(down) == 6 - len(up) >= 4
    scanned = {r["host"] for r in records(out) if "port" in r}
    assert scanned == set(up)
    assert {r["port"]: r["state"] for r in records(out) if r.get("host") == server.addr and "port" in r} == \
        {22: "open", 23: "closed"}


def test_cidr_up_check_asks_arp_on_the_link_and_tcp_only_where_it_helps(lab):
    """On a directly connected network the echo sweep's ARP settles the absent hosts:
    no TCP probe goes to an address nobody answered ARP for. A host that answers ARP
    but drops echo is still asked on TCP, and found up."""
    need_tool("nft")
    client, server = netns.two_hosts(lab)
    server.nft("table inet quiet {\n chain in {\n type filter hook input priority 0;\n"
               " icmp type echo-request drop\n }\n}\n")
    client.nft(f"""table inet seen {{
        counter absent {{ }}
        counter present {{ }}
        chain out {{
            type filter hook output priority 0;
            ip daddr != {{ {server.addr}, {client.addr} }} tcp dport {{ 80, 443 }} counter name absent
            ip daddr {server.addr} tcp dport {{ 80, 443 }} counter name present
        }}
    }}""")
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "-p", "22", _block(server)),
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    up = {r["host"] for r in records(out) if r.get("type") == "summary" and r["up"]}
    assert server.addr in up
    assert client.nft_counter("seen", "absent") == 0
    assert client.nft_counter("seen", "present") >= 1


def test_cidr_down_hosts_are_one_line_and_listed_with_v(lab):
    client, server = netns.two_hosts(lab)
    sl.serve(server)
    argv = [*PYSOCK, "scan", "-p", "22", _block(server)]
    out = subprocess.run(client.argv(*argv), capture_output=True, timeout=120, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    total = [x for x in lines if "hosts up;" in x]
    assert total and total[0].startswith(("1 of 6 hosts up; 5 down", "2 of 6 hosts up; 4 down"))
    assert not [x for x in lines if ": down (" in x]
    verbose = subprocess.run(client.argv(*argv, "-v"), capture_output=True, timeout=120, text=True)
    listed = [x for x in verbose.stderr.splitlines() if ": down (" in x]
    assert len(listed) == int(total[0].split(";")[1].split()[0])
    assert not [x for x in listed if x.startswith(server.addr + ":")]


def test_skip_up_check_scans_every_host(lab):
    client, server = netns.two_hosts(lab)
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "-Pn", "-w", "0.3", "-p", "22",
                                     _block(server)), capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len({r["host"] for r in records(out) if "port" in r}) == 6


def test_all_hosts_down_is_exit_1(lab):
    client, server = netns.two_hosts(lab)
    block = server.addr.rsplit(".", 1)[0] + ".4/30"  # .5 and .6: nobody
    out = subprocess.run(client.argv(*PYSOCK, "scan", "-p", "22", block), capture_output=True,
                         timeout=120)
    assert out.returncode == 1
    assert "down" in out.stderr.decode() and "-Pn" in out.stderr.decode()


def test_ipv6_cidr_up_check(lab):
    client, server = netns.two_hosts(lab)
    block = server.addr6.rsplit(":", 1)[0] + ":0/126"  # ::0-::3; ::1 client, ::2 server
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "-p", "22", block),
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    up = {r["host"] for r in records(out) if r.get("type") == "summary" and r["up"]}
    assert server.addr6 in up and client.addr6 in up and len(up) == 2


def test_syn_scan_reads_banners_too(listener):
    need_root()
    port, _ = listener
    out = run_pysock("scan", "--syn", "--json", "--banner", "-p", str(port), "127.0.0.1")
    rec = records(out)[0]
    assert rec["state"] == "open" and rec["banner"].startswith("220 hello")


def test_reason_column_in_plain_output(listener):
    port, _ = listener
    lines = run_pysock("scan", "--reason", "-p", str(port), "127.0.0.1").stdout.decode().splitlines()
    header = lines[0].split("\t")
    assert lines[1].split("\t")[header.index("REASON")] == "syn-ack"


def test_interrupt_ends_quietly_with_130(counted):
    client, server = counted
    server.nft("""table inet slow {
        chain in {
            type filter hook input priority 0;
            tcp dport 10000-20000 drop
        }
    }""")
    proc = subprocess.Popen(client.argv(*PYSOCK, "scan", "-w", "2", "-p", "10000-20000", server.addr),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    proc.send_signal(2)  # SIGINT reaches `ip netns exec`, which execs pysock: same process
    out, err = proc.communicate(timeout=20)
    assert proc.returncode in (130, -signal.SIGINT), err  # the shell sees 130 either way
    assert b"Traceback" not in err


def test_udp_paces_for_icmp_rate_limits(lab):
    """Linux answers a burst of 6 closed UDP ports, then one a second: pysock slows
    down and tries again until each closed port has had its chance to say so, instead
    of calling the silent ones open|filtered."""
    client, server = netns.two_hosts(lab)
    limit = server.run("sysctl", "-n", "net.ipv4.icmp_ratelimit").stdout.strip()
    need("the target limits ICMP errors (net.ipv4.icmp_ratelimit > 0)", limit != "0")
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "--all", "--udp", "-p", "40001-40012",
                                     server.addr), capture_output=True, timeout=120)
    states = [r["state"] for r in records(out) if "port" in r]
    assert states == ["closed"] * 12, states


def test_local_labels_for_tcp_and_udp_on_an_interface_address(lab):
    """Not only loopback: any address of this machine is local, and UDP owners count too."""
    need_tool("nft")
    _, server = netns.two_hosts(lab)
    proc = sl.serve(server)
    pid = proc.pid  # `ip netns exec` execs the server: the same process
    out = subprocess.run(server.argv(*PYSOCK, "scan", "--json", "-p", "T:22,U:53", server.addr),
                         capture_output=True, timeout=60)
    recs = {(r["proto"], r["port"]): r for r in records(out) if "port" in r}
    for key in (("tcp", 22), ("udp", 53)):
        assert recs[key]["state"] == "open" and recs[key]["pid"] == pid, recs[key]
    assert proc.poll() is None


@pytest.mark.parametrize("kind", [[], ["--udp"], ["--syn"]])
def test_local_firewall_refusal_is_filtered_not_a_crash(lab, kind):
    """This host's own output chain dropping probes: those ports are filtered, the
    scan goes on to the others."""
    need_tool("nft")
    client, server = netns.two_hosts(lab)
    client.nft("""table inet out {
        chain out {
            type filter hook output priority 0;
            tcp dport 6000 drop
            udp dport 6000 drop
        }
    }""")
    out = subprocess.run(client.argv(*PYSOCK, "scan", "--json", "--all", *kind, "-w", "0.3", "-p",
                                     "5999-6001", server.addr), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    states = {r["port"]: r["state"] for r in records(out) if "port" in r}
    closed = "closed"
    assert states == {5999: closed, 6000: "filtered", 6001: closed}


# ---- service names: nmap's, the same on every machine -----------------------------------------

def test_service_names_of_ranked_ports_are_shipped(monkeypatch):
    from pysock.probes.scan import ports
    monkeypatch.setattr(ports, "NMAP_SERVICES", ("/nonexistent/nmap-services",))
    for cached in (ports.service, ports._nmap_names):
        cached.cache_clear()
    try:
        assert ports._nmap_names("tcp") == {}  # as on a machine without nmap
        assert (ports.service(8000, "tcp"), ports.service(9999, "tcp")) == ("http-alt", "abyss")
        assert ports.service(80, "tcp") == "http" and ports.service(53, "udp") == "domain"
    finally:
        for cached in (ports.service, ports._nmap_names):
            cached.cache_clear()


def test_service_names_beyond_the_ranked_ports_come_from_nmap_services():
    need_tool("nmap")
    from pysock.probes.scan import ports
    ranked = set(ports.ranked("tcp"))
    named = {p: n for p, n in ports._nmap_names("tcp").items() if p not in ranked}
    port, name = sorted(named.items())[0]
    assert ports.service(port, "tcp") == name


def test_scan_and_connect_z_name_services_as_nmap_does():
    out = run_pysock("scan", "--json", "-p", "8000,9999", "127.0.0.1")
    names = {r["port"]: r["service"] for r in map(json.loads, out.stdout.splitlines()) if "port" in r}
    assert names == {8000: "http-alt", 9999: "abyss"}
    out = run_pysock("connect", "-z", "--json", "127.0.0.1", "9999")
    assert json.loads(out.stdout)["service"] == "abyss"
