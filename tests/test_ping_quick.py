"""pysock ping's quick path (pysock.launch): a line of plain flags runs without
importing click, and says and does exactly what the click command says and does;
anything else is handed to click."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import PYSOCK

FULL = [sys.executable, "-c", "import sys; from pysock.cli import main; main()"]


def run(argv, *args, timeout=60):
    return subprocess.run([*argv, "ping", *args], capture_output=True, text=True,
                          timeout=timeout)


def steady(text: str) -> str:
    """The output with what differs from run to run (times, stamps) taken out."""
    text = re.sub(r"\d+\.\d+", "T", text)  # RTTs, -D stamps, JSON rtt_ms
    return re.sub(r"time[ =]\d+m?s?", "time N", text)


@pytest.mark.parametrize("flags", [
    ["-c", "2", "-i", "0.2"], ["-q", "-c", "2", "-i", ".2", "-s", "100"],
    ["--json", "-c", "1"], ["-n", "-4", "-t", "9", "-W", "1", "--count", "1"],
    ["-D", "-c", "1", "-s", "8"], ["-c", "3", "-i", "0.2", "-w", "1", "--quiet"],
    ["-c", "1", "-s", "0", "--numeric", "-c", "2", "-i", "0.1"],
    ["-c", "2", "-i", "0.1", "127.0.0.2"]])
def test_the_quick_path_prints_what_the_click_command_prints(flags):
    quick = run(PYSOCK, *flags, "127.0.0.1")
    full = run(FULL, *flags, "127.0.0.1")
    assert quick.returncode == full.returncode == 0, quick.stderr + full.stderr
    assert steady(quick.stdout) == steady(full.stdout) and quick.stdout
    assert quick.stderr == full.stderr == ""


@pytest.mark.parametrize("flags", [
    ["-c", "0"], ["-c", "1.5"], ["-c", "+1"], ["-i", "-1"], ["-i", "1e8"], ["-i", "nan"],
    ["-W", "0"], ["-s", "65508"], ["-t", "0"], ["-t", "256"], ["-4", "-6"], ["-c"],
    ["--count=1"], ["-c1"], ["-qn", "-c", "1"], ["--tcp", "1", "--udp", "1"], ["--bogus"], ["-c", "١"]])
def test_what_the_quick_path_does_not_take_click_says_as_always(flags):
    quick = run(PYSOCK, *flags, "127.0.0.1")
    full = run(FULL, *flags, "127.0.0.1")
    assert quick.returncode == full.returncode
    assert steady(quick.stdout) == steady(full.stdout)
    assert quick.stderr == full.stderr


def test_no_host_and_a_bad_host_are_said_as_click_says_them():
    for args in ([], ["-c", "1", "no.such.host.invalid"], ["-c", "1", "-4", "::1"]):
        quick, full = run(PYSOCK, *args), run(FULL, *args)
        assert quick.returncode == full.returncode == 2
        assert quick.stderr == full.stderr and quick.stderr.startswith("pysock: ")


def test_the_quick_path_imports_no_click_nor_dataclasses():
    out = subprocess.run([*PYSOCK[:1], "-X", "importtime", *PYSOCK[1:], "ping", "-q", "-c", "1",
                          "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    names = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in out.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    # dataclasses brings inspect, ast and dis: a third of the quick path's start-up
    assert "pysock" in names and names.isdisjoint({"click", "rich", "scapy", "psutil",
                                                   "dataclasses"})
    handed = subprocess.run([*PYSOCK[:1], "-X", "importtime", *PYSOCK[1:], "ping", "-c", "1",
                             "-p", "ab", "127.0.0.1"], capture_output=True, text=True, timeout=30)
    assert handed.returncode == 0 and " click" in handed.stderr
    assert "PATTERN: 0xab" in handed.stdout


def test_a_terminated_quick_ping_ends_as_the_click_one_does():
    for argv in (PYSOCK, FULL):
        proc = subprocess.Popen([*argv, "ping", "-i", "0.2", "127.0.0.1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            assert first.startswith("PING 127.0.0.1")
            proc.stdout.readline()
            proc.terminate()
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 143 and err == ""
