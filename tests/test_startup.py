"""Start-up stays lean: connect and listen import neither scapy nor psutil (nor rich
unless they draw)."""

import subprocess
import sys

import pytest

from conftest import free_port, wait_listening

HEAVY = ("scapy", "psutil", "rich")


def imported(args, **kw) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "pysock", *args],
                         capture_output=True, text=True, timeout=30, **kw)
    names = set()
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert names, out.stderr
    return names


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["connect", "--help"],
                                  ["listen", "--help"]])
def test_help_and_version_are_light(args):
    assert imported(args).isdisjoint(HEAVY)


def test_refused_connect_is_light():
    assert imported(["connect", "127.0.0.1", str(free_port())]).isdisjoint(HEAVY)


def test_a_whole_connect_and_listen_are_light(procs):
    port = free_port()
    server = procs.start([sys.executable, "-X", "importtime", "-m", "pysock", "listen",
                          "127.0.0.1", str(port)], stdout=subprocess.DEVNULL)
    wait_listening(port, proc=server)
    client_imports = imported(["connect", "127.0.0.1", str(port)], input="hello")
    _, err = server.communicate(timeout=20)
    server_imports = {line.rsplit("|", 1)[1].strip().split(".")[0]
                      for line in err.decode().splitlines() if line.startswith("import time:")}
    assert "pysock" in server_imports
    assert client_imports.isdisjoint(HEAVY) and server_imports.isdisjoint(HEAVY)
