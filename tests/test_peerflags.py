"""Peer habits: every row of cli/peertable.py does what the man page says it does."""

from __future__ import annotations

import socket
import subprocess
import threading

import click
import pytest

from pysock.cli import cli, run
from pysock.cli.peerflags import table
from pysock.cli.peertable import TABLES

from conftest import PYSOCK

BASE = {"inspect": [], "scan": ["127.0.0.1"], "trace": ["127.0.0.1"], "ping": ["127.0.0.1"],
        "connect": ["127.0.0.1", "1"], "listen": ["1"], "udp": ["127.0.0.1", "1"],
        "unix": ["/tmp/peerflags.sock"]}
SAMPLE = {"--top": "7", "--retries": "3", "--rate": "50", "--concurrency": "4",
          "--proxy": "127.0.0.1:1080", "--hexdump": "-", "--cert": __file__, "--key": __file__,
          "--cafile": __file__, "--alpn": "h2", "--sni": "example.org", "--max-conns": "3",
          "--exec": "cat", "--sh-exec": "cat", "--ttl": "4", "--repeat": "3"}


def command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli), name)


def params(name: str, args: list[str]) -> dict:
    parent = click.Context(cli, info_name="pysock", **cli.context_settings)  # -h as in use
    ctx = command(name).make_context(name, [*args, *BASE[name]], parent=parent)
    return {k: v for k, v in ctx.params.items()}


def rows(kind: str):
    return [pytest.param(name, e, id=f"{name}{e.flag}") for name in TABLES
            for e in table(name) if e.kind == kind]


@pytest.mark.parametrize("name,entry", rows("same"))
def test_same_flags_are_pysock_options(name, entry):
    names = {o for p in command(name).params if isinstance(p, click.Option) and not p.hidden
             for o in (*p.opts, *p.secondary_opts)}
    assert entry.flag in names


@pytest.mark.parametrize("name,entry", rows("alias"))
def test_aliases_parse_as_their_target(name, entry):
    target = [p for p in command(name).params if entry.target in getattr(p, "opts", [])][0]
    if entry.values:
        for peer_word, ours in entry.values:
            assert params(name, [entry.flag, peer_word]) == params(name, [entry.target, ours])
        return
    value = [] if target.is_flag or target.count else [SAMPLE[entry.target]]
    got = params(name, [entry.flag, *value])
    assert got == params(name, [entry.target, *value])
    assert got != params(name, [])  # the alias did something


@pytest.mark.parametrize("name,entry", rows("preset"))
def test_presets_set_defaults_that_typed_options_override(name, entry):
    typed = [str(w) for opt, value in entry.sets for w in (opt, value)]
    assert params(name, [entry.flag]) == params(name, typed) if entry.sets else params(name, [])
    for opt, value in entry.sets:
        other = "9" if not isinstance(value, float) or value > 1 else "0.5"
        assert params(name, [entry.flag, opt, other]) == params(name, [*typed, opt, other])


@pytest.mark.parametrize("name,entry", rows("missing"))
def test_missing_flags_say_what_pysock_offers(name, entry, capsys):
    argv = [name, entry.flag, *(["x"] if entry.takes_value else []), *BASE[name]]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err == f"pysock: {name} has no {entry.flag} ({entry.meaning}); {entry.instead}\n"


@pytest.mark.parametrize("name", TABLES)
def test_man_page_lists_every_peer_flag(name):
    from pysock.cli import COMMANDS
    from pysock.cli.manpage import command_page
    page = command_page(cli, name, COMMANDS[name][1], "2026-01-01")
    section = page.split(".SH PEER FLAGS", 1)[1].split("\n.SH ", 1)[0]
    for entry in table(name):
        assert "\\fB" + entry.flag.replace("-", "\\-") + "\\fR" in section, entry.flag


@pytest.mark.parametrize("typo,meant", [("lisen", "listen"), ("scna", "scan"), ("conect", "connect")])
def test_mistyped_commands_get_did_you_mean(typo, meant):
    out = subprocess.run([*PYSOCK, typo, "80"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.startswith(f"pysock: no such command '{typo}'.")
    assert "Did you mean" in out.stderr and f"'{meant}'" in out.stderr
    assert out.stderr.count("\n") == 1


# ---- end to end: the mapped flags work on real sockets -------------------------------------

def _server():
    srv = socket.create_server(("127.0.0.1", 0))
    got = []

    def serve():
        conn, _ = srv.accept()
        with conn:
            try:
                while data := conn.recv(4096):
                    got.append(data)
            except ConnectionResetError:  # a scan or trace resets what it opened
                pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return srv, got, thread


def test_nmap_sT_scans_a_real_port():
    srv, _, _ = _server()
    with srv:
        port = srv.getsockname()[1]
        out = subprocess.run([*PYSOCK, "scan", "-sT", "-T4", "-p", str(port), "--json", "127.0.0.1"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f'"port":{port},"proto":"tcp","state":"open"' in out.stdout


def test_nc_C_sends_crlf_to_a_real_server():
    srv, got, thread = _server()
    with srv:
        port = srv.getsockname()[1]
        out = subprocess.run([*PYSOCK, "connect", "-C", "-N", "127.0.0.1", str(port)],
                             input=b"a\nb\n", capture_output=True, timeout=30)
        thread.join(10)
    assert out.returncode == 0, out.stderr
    assert b"".join(got) == b"a\r\nb\r\n"


def test_traceroute_T_with_p_traces_by_tcp_to_that_port():
    srv, _, _ = _server()
    with srv:
        port = srv.getsockname()[1]
        out = subprocess.run([*PYSOCK, "trace", "-T", "-p", str(port), "-n", "-q", "1", "--json",
                              "127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"addr":"127.0.0.1"' in out.stdout
