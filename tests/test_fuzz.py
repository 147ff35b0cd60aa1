"""Fuzzed command lines for every command, built from the commands' own option lists:
values at and beyond range edges, quoting, unicode, empty strings. Each runs in a
network namespace with only lo (nothing it sends leaves it) and must end with exit
0, 1 or 2 (or still be running at the time limit), never a traceback and never the
catch-all "internal error" line: that line exists so a user never sees a traceback,
but here it means a bug. Bounded: about 20 command lines a command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysock.cli import COMMANDS  # every command the group has

# options that act on the machine beyond the namespace (killing sockets, running
# programs) or only wait for a terminal: never fuzzed
SKIPPED = {"kill", "yes", "sh_exec", "exec_cmd", "watch", "help", "version"}

EDGES = ["0", "-1", "1", "255", "256", "65535", "65536", "65507", "65508", "2147483647",
         "2147483648", "4294967295", "4294967296", "9223372036854775808", "99999999999",
         "1e309", "nan", "inf", "-0", "0x10", "1.5", "1K", "9g"]
ODD = ["", " ", '"', "'", 'a"b', "\\", "ü", "名前", "\u202e", "-", "--", "@", "@x", "[::1",
       "::1]", "[::1]", "fe80::1%nosuchif", "fe80::1%lo", "256.1.1.1", "::ffff:127.0.0.1",
       "127.0.0.1", "::1", "localhost", "10.0.0.0/33", "a" * 300, "/", "/nonexistent/x",
       "1-", "-5", "1,2,,3", "T:1,U:2", "tcp", "x=1"]
PLACES = ["127.0.0.1", "::1", "[::1]", "[::1", "::1]", "localhost", "127.0.0.1:9", "[::1]:9",
          "fe80::1%nosuchif", "fe80::1%lo", "9", "0", "65536", "", "ü", "@fuzz", "/nonexistent/s"]

printable = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                    max_size=10)
EXAMPLES = 40  # a command; a forked run takes milliseconds, a waiting server LIMIT seconds
value = st.one_of(st.sampled_from(EDGES), st.sampled_from(ODD), printable)


def _options(name: str):
    import click

    from pysock.cli import cli
    ctx = click.Context(cli)
    command = cli.get_command(ctx, name)
    return [p for p in command.params
            if isinstance(p, click.Option) and p.name not in SKIPPED and p.opts[0] != "-e"]


def _argument(option) -> st.SearchStrategy:
    """[flag] for a flag, [flag, value] otherwise; sockopt names and choices mixed in."""
    import click
    flag = st.sampled_from(list(option.opts))
    if option.is_flag or option.count:
        return flag.map(lambda f: [f])
    values = value
    if isinstance(option.type, click.Choice):
        values = st.one_of(st.sampled_from(list(option.type.choices)), value)
    if option.name == "sockopts":
        from pysock.net.sockopt import OPTIONS
        values = st.builds(lambda n, v: f"{n}={v}", st.sampled_from(sorted(OPTIONS)), value)
    return st.tuples(flag, values).map(list)


def command_lines(name: str) -> st.SearchStrategy:
    options = _options(name)
    picked = st.lists(st.sampled_from(options).flatmap(_argument), max_size=4) if options \
        else st.just([])
    places = st.lists(st.one_of(st.sampled_from(PLACES), value), max_size=2)
    return st.tuples(picked, places).map(
        lambda t: [name, *[w for arg in t[0] for w in arg], *t[1]])


@pytest.fixture(scope="module")
def driver():
    """tests/fuzz_driver.py in a namespace with only lo, pysock imported once."""
    import json
    import os

    import netns
    from conftest import need_root, need_tool
    need_root()
    need_tool("ip")
    lab = netns.Lab()
    host = lab.host("fuzz")
    here = os.path.dirname(os.path.abspath(__file__))
    proc = host.popen(sys.executable, os.path.join(here, "fuzz_driver.py"),
                      stdin=subprocess.PIPE, text=True, cwd=str(host_dir(lab)))
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()

        def run(argv: list[str]) -> dict:
            proc.stdin.write(json.dumps(argv) + "\n")
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())
        yield run
    finally:
        proc.kill()
        proc.communicate(timeout=10)
        lab.close()


def host_dir(lab) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix=f"pysock-fuzz-{lab.tag}-")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_fuzzed_command_lines(name, driver):
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(command_lines(name))
    def fuzz(argv):
        result = driver(argv)
        text, status = result["stderr"], result["status"]
        assert "internal error" not in text and "Traceback" not in text, (argv, text)
        assert status in (None, 0, 1, 2), (argv, status, text)

    fuzz()


# Every value-taking option of every command, each given the values that broke pysock
# before (past a C int, past a u32, negative, empty, an open quote), on a
# command line that otherwise ends at once: so no option's range edge is left to chance.
HOSTILE = ["2147483648", "4294967296", "99999999999", "-1", "", '"']
QUICK = {
    "listen": ["-w", "0.05", "127.0.0.1", "0"],
    "connect": ["127.0.0.1", "9"],
    "udp": ["-q", "0", "127.0.0.1", "9"],
    "unix": ["-l", "-w", "0.05", "@pysock-fuzz-sweep"],
    "scan": ["-p", "9", "127.0.0.1"],
    "ping": ["-c", "1", "-W", "0.2", "127.0.0.1"],
    "trace": ["-m", "1", "-w", "0.2", "127.0.0.1"],
    "inspect": [],
    "forward": ["127.0.0.1:0", "127.0.0.1:9"],
}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_every_option_at_its_edges(name, driver):
    from pysock.net.sockopt import OPTIONS
    failures = []
    for option in _options(name):
        if option.is_flag or option.count:
            continue
        values = [f"{n}={v}" for n in sorted(OPTIONS) for v in HOSTILE[:3]] \
            if option.name == "sockopts" else HOSTILE
        for v in values:
            argv = [name, option.opts[-1], v, *QUICK[name]]
            result = driver(argv)
            text = result["stderr"]
            if "internal error" in text or "Traceback" in text or \
                    result["status"] not in (None, 0, 1, 2):
                failures.append((argv, result["status"], text.strip()[-200:]))
    assert not failures, "\n".join(map(str, failures))
