"""pysock help [COMMAND]: the manual page wherever pysock is installed, with man or
without it, even where `man pysock-scan` finds nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pysock.cli import help as help_mod

from conftest import need_tool

PYSOCK = [sys.executable, "-m", "pysock"]


def pysock_help(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PYSOCK, "help", *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))


def test_help_shows_the_page_where_man_finds_none(tmp_path):
    need_tool("man")
    empty = tmp_path / "man"
    empty.mkdir()
    lost = subprocess.run(["man", "pysock-scan"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, MANPATH=str(empty)))
    assert lost.returncode != 0  # pip's prefix is not on man's path here
    out = pysock_help("scan", MANPATH=str(empty))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("PYSOCK-SCAN(1)")
    assert "PEER FLAGS" in out.stdout and "EXIT STATUS" in out.stdout


def test_help_alone_is_the_overview():
    need_tool("man")
    out = pysock_help()
    assert out.returncode == 0 and out.stdout.startswith("PYSOCK(1)")


def test_without_man_the_page_is_text(tmp_path):
    out = pysock_help("trace", PATH=str(tmp_path))  # no man on this PATH
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("NAME\n       pysock-trace - ")
    assert "\nEXIT STATUS\n" in out.stdout and "\\f" not in out.stdout and "\n.TP" not in out.stdout


def test_an_unknown_command_gets_did_you_mean():
    out = pysock_help("lisen")
    assert out.returncode == 2
    assert out.stderr == "pysock: no such command 'lisen'. Did you mean 'listen'? (see 'pysock --help')\n"


def test_an_installed_page_is_preferred_outside_a_checkout(tmp_path, monkeypatch):
    pages = tmp_path / "share" / "man" / "man1"
    pages.mkdir(parents=True)
    (pages / "pysock-scan.1").write_text(".TH PYSOCK-SCAN 1\n.SH NAME\ninstalled copy\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert help_mod.installed_page("pysock-scan") == (pages / "pysock-scan.1").read_text()
    assert help_mod.installed_page("pysock-nosuch") is None


@pytest.mark.parametrize("name", ["scan", "listen"])
def test_command_help_ends_with_the_hint(name):
    out = subprocess.run([*PYSOCK, name, "--help"], capture_output=True, text=True, timeout=60)
    assert out.stdout.rstrip().endswith(f"More in 'pysock help {name}' (man pysock-{name}).")
