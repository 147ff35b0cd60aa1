"""The command group and its error boundary."""

import os
import socket
import subprocess
import sys

from pysock import __version__

from conftest import PYSOCK, run_pysock


def test_version_both_ways():
    script = os.path.join(os.path.dirname(sys.executable), "pysock")
    for argv in ([*PYSOCK, "--version"], [script, "--version"]):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert out.returncode == 0
        assert out.stdout.strip() == f"pysock {__version__}"


def test_help_lists_registered_commands():
    from pysock.cli import COMMANDS
    out = run_pysock("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout.decode()


def test_unknown_option_is_one_line_exit_2():
    out = run_pysock("--no-such-option")
    assert out.returncode == 2
    err = out.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pysock: ") and "--no-such-option" in err[0]


def test_unknown_command_is_one_line_exit_2():
    out = run_pysock("frobnicate")
    assert out.returncode == 2
    assert len(out.stderr.decode().strip().splitlines()) == 1


def test_bad_color_choice():
    out = run_pysock("--color", "purple", "frobnicate")
    assert out.returncode == 2 and b"purple" in out.stderr


def test_import_is_light():
    code = ("import sys, pysock.cli; heavy = {'scapy', 'psutil', 'rich'} & "
            "{m.split('.')[0] for m in sys.modules}; print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "[]", out


def test_color_always_means_always_even_when_piped():
    """--color always: the colored table when stdout is a pipe too (less -R, tee);
    auto keeps piped output plain, tab-separated."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = str(closed.getsockname()[1])
        always = run_pysock("--color", "always", "scan", "-p", port, "127.0.0.1").stdout.decode()
        auto = run_pysock("--color", "auto", "scan", "-p", port, "127.0.0.1").stdout.decode()
    assert "\x1b[1m" in always and "PORT" in always and "\t" not in always
    assert "\x1b[" not in auto and auto.splitlines()[0].split("\t")[:3] == ["HOST", "PORT", "PROTO"]
