"""Man pages and --help: generated from the commands and their prose, lint-clean,
current with the code, installed by pip where man finds them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pysock.cli import COMMANDS, cli, gendocs, helpview, manpage, prose

from conftest import need_tool, run_pysock

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "man/man1").glob("*.1"))
EVERY_COMMAND = ("listen", "connect", "udp", "unix", "forward", "scan", "ping", "trace",
                 "inspect")


def command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli), name)


def test_committed_files_are_what_the_code_generates():
    """The drift check (scripts/gen-docs --check), in the suite too."""
    assert gendocs.check(ROOT) == []


def test_drift_check_script_fails_on_a_stale_page(tmp_path):
    for part in ("man", "completions"):
        subprocess.run(["cp", "-r", ROOT / part, tmp_path / part], check=True)
    (tmp_path / "man/man1/pysock-listen.1").write_text(".TH OLD 1\n")
    (tmp_path / "man/man1/pysock-gone.1").write_text(".TH GONE 1\n")
    out = subprocess.run([sys.executable, "-m", "pysock.cli.gendocs", "--check", "--root",
                          tmp_path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "pysock-listen.1: differs" in out.stderr and "pysock-gone.1" in out.stderr
    written = subprocess.run([sys.executable, "-m", "pysock.cli.gendocs", "--root", tmp_path],
                             capture_output=True, text=True, timeout=60)
    assert written.returncode == 0 and "pysock-listen.1" in written.stdout
    assert not (tmp_path / "man/man1/pysock-gone.1").exists()
    assert gendocs.check(tmp_path) == []


def test_a_page_for_pysock_and_every_registered_command():
    names = {p.name for p in PAGES}
    assert names == {"pysock.1"} | {f"pysock-{c}.1" for c in COMMANDS}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_groff_is_silent(page):
    need_tool("groff")
    out = subprocess.run(["groff", "-man", "-ww", "-Tutf8", "-z", page], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0 and out.stderr == ""


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_mandoc_lint_is_silent(page):
    need_tool("mandoc")
    out = subprocess.run(["mandoc", "-Tlint", page], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout + out.stderr == ""


def rendered(page: Path) -> str:
    out = subprocess.run(["mandoc", "-Tascii", "-Owidth=80", page], capture_output=True,
                         timeout=30)
    return re.sub(".\b", "", out.stdout.decode())  # no overstrike bold/underline


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_page_has_every_option_and_section(name):
    need_tool("mandoc")
    text = rendered(ROOT / f"man/man1/pysock-{name}.1")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in text
    cmd = command(name)
    for param in cmd.params:
        for opt in (*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])):
            if isinstance(param, click.Option):
                assert opt in text, f"{opt} missing from pysock-{name}(1)"


def test_defaults_are_shown():
    text = rendered(ROOT / "man/man1/pysock-listen.1")
    assert "Length of the accept queue. Default: 128." in " ".join(text.split())
    assert "auto|always|never" in rendered(ROOT / "man/man1/pysock.1")


def test_overview_names_every_command_and_its_page():
    need_tool("mandoc")
    text = rendered(ROOT / "man/man1/pysock.1")
    for name in EVERY_COMMAND:
        assert f"pysock {name}" in text and f"pysock-{name}(1)" in text
    for section in ("GLOBAL OPTIONS", "OUTPUT", "EXIT STATUS", "ENVIRONMENT", "FILES",
                    "SEE ALSO"):
        assert f"\n{section}\n" in text
    for peer in ("nc(1)", "ss(8)", "ping(8)", "nmap(1)", "socat(1)"):
        assert peer in text


@pytest.mark.parametrize("name", ["listen", "connect"])
def test_big_commands_have_netcat_translations(name):
    examples = prose.load(name).examples
    assert len(examples) >= 5
    notes = [prose.split_comment(c)[1] for e in examples for c in e.commands]
    assert sum(note.startswith(("nc ", "ncat ")) for note in notes) >= 3


def pysock_invocations(line: str) -> list[list[str]]:
    """The argument lists `pysock` is given in a shell line (pipes, <(...) and
    redirections cut them off)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    found, current = [], None
    for word in words:
        if word == "pysock":
            current = []
            found.append(current)
        elif current is not None and word and set(word) <= set("|&;<>()"):
            current = None
        elif current is not None:
            current.append(word)
    return found


def example_lines():
    for name in ["pysock", *COMMANDS]:
        for example in prose.load(name).examples:
            for line in example.commands:
                yield pytest.param(line, id=f"{name}: {line[:50]}")


@pytest.mark.parametrize("line", list(example_lines()))
def test_examples_run_as_written(line):
    """Every example parses with the current options: an example that names a
    removed option, a bad port or a wrong argument count fails here."""
    text, _ = prose.split_comment(line)
    invocations = pysock_invocations(text)
    assert invocations, f"no pysock in {line!r}"
    for args in invocations:
        ctx = cli.make_context("pysock", list(args), resilient_parsing=False)
        sub = [*getattr(ctx, "_protected_args", []), *ctx.args]  # click 9: all in args
        if not sub:
            continue
        cmd = cli.get_command(ctx, sub[0])
        assert cmd is not None, f"no command {sub[0]!r}"
        with cmd.make_context(sub[0], list(sub[1:]), parent=ctx) as sub_ctx:
            assert sub_ctx.params is not None


@pytest.mark.parametrize("name", list(COMMANDS))
def test_prose_groups_name_real_options(name):
    cmd = command(name)
    names = {n for p in cmd.params for n in (*getattr(p, "opts", []),
                                             *getattr(p, "secondary_opts", []))}
    for group in prose.load(name).groups:
        unknown = set(group.options) - names
        assert not unknown, f"{name}.md group {group.title!r} names no such option {unknown}"


# ---- --help ------------------------------------------------------------------

def help_of(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_groups_every_option_once_and_shows_examples(name):
    text = help_of(name)
    cmd = command(name)
    ctx = click.Context(cmd)
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            term = helpview.help_row(param, ctx)[0]
            row = re.compile(rf"^  {re.escape(term)}(\s{{2,}}|$)", re.M)
            assert len(row.findall(text)) == 1, param.opts
    examples = prose.load(name).help_examples()
    for example in examples:
        for line in example.commands:
            assert prose.split_comment(line)[0] in text
    if examples:
        assert "\nExamples:\n" in text
    for group in prose.load(name).groups:
        assert f"\n{group.title}:\n" in text
    assert f"man pysock-{name}" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_top_level_help_fits_a_80x24_terminal_with_every_command(monkeypatch):
    summaries = {  # as long as the summaries the other commands register
        "udp": "UDP datagrams to/from a peer (nc -u); -l receives, --measure.",
        "unix": "Unix domain sockets (nc -U): stream, dgram, seqpacket, @abstract.",
        "scan": "Scan TCP/UDP ports (connect, SYN, UDP) of hosts and CIDR blocks.",
        "ping": "ICMP/ICMPv6 echo (or TCP/UDP probes) to one or many hosts",
        "trace": "the hops to a host, like traceroute (ICMP, UDP or TCP)",
        "inspect": "every socket with its process, state and queues (ss, lsof -i)",
    }
    full = dict(COMMANDS)
    for name, summary in summaries.items():
        full.setdefault(name, (f"pysock.cli.{name}", summary))
    monkeypatch.setattr("pysock.cli.COMMANDS", full)
    lines = help_of().splitlines()
    assert len(lines) <= 24, "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
    assert lines.index("Commands:") < lines.index("Options:")
    for name in EVERY_COMMAND:
        assert any(line.startswith(f"  {name} ") for line in lines)


def test_help_is_the_same_through_the_real_entry_point():
    out = run_pysock("listen", "--help", env=dict(os.environ, COLUMNS="80"))
    assert out.returncode == 0
    assert "Many clients:" in out.stdout.decode() and "Examples:" in out.stdout.decode()


# ---- installed by pip --------------------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pysock pip-installed into a fresh venv (no deps: the test venv's packages are
    made visible through a .pth file)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    site = next(venv.glob("lib/python*/site-packages"))
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (site / "test-venv.pth").write_text("\n".join(ours) + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", venv / "bin/python",
                          "install", "-q", "--no-deps", "--disable-pip-version-check", ROOT],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return venv


def test_pip_install_puts_pages_and_completions_where_they_are_looked_for(installed):
    share = installed / "share"
    for name in [p.name for p in PAGES]:
        assert (share / "man/man1" / name).read_text() == (ROOT / "man/man1" / name).read_text()
    assert (share / "bash-completion/completions/pysock").is_file()
    assert (share / "zsh/site-functions/_pysock").is_file()
    assert (share / "fish/vendor_completions.d/pysock.fish").is_file()


@pytest.mark.parametrize("page", ["pysock", "pysock-listen", "pysock-connect"])
def test_man_finds_and_renders_the_installed_pages(installed, page):
    need_tool("man")
    env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8")
    out = subprocess.run(["man", "-M", installed / "share/man", page], capture_output=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert text.startswith(page.upper()) and "SYNOPSIS" in text and "EXAMPLES" in text
    # man's own search path: bin/ on PATH makes ../share/man a man directory
    env["PATH"] = f"{installed / 'bin'}:{os.environ['PATH']}"
    env.pop("MANPATH", None)
    found = subprocess.run(["man", "-w", page], capture_output=True, text=True, timeout=60,
                           env=env)
    assert found.stdout.strip() == str(installed / "share/man/man1" / f"{page}.1")


def test_installed_pysock_runs(installed):
    out = subprocess.run([installed / "bin/pysock", "completion", "fish"], capture_output=True,
                         timeout=60)
    assert out.returncode == 0
    assert out.stdout.decode() == (ROOT / "completions/pysock.fish").read_text()


def test_page_generator_handles_a_command_without_prose():
    """A command that lands without a .md still gets a complete page."""
    @click.command()
    @click.argument("host")
    @click.option("-c", "--count", type=click.IntRange(1), default=3, help="How many.")
    def lonely(host, count):
        """Do a thing to HOST."""

    group = click.Group("pysock", commands={"lonely": lonely})
    page = manpage.command_page(group, "lonely", "A thing.", "2026-01-01")
    assert ".SH EXIT STATUS" in page and "\\fB\\-\\-count\\fR \\fIN\\fR" in page
    assert "Default: \\fB3\\fR." in page and "\\fBpysock\\fR \\fBlonely\\fR" in page


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_example_notes_line_up_after_a_gap(name):
    text = help_of(name)
    if "\nExamples:\n" not in text:
        return
    block = text.split("\nExamples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    noted = [line for line in block if " # " in line or "# " in line.lstrip()[1:]]
    assert all("  # " in line for line in noted), noted  # never 'app.sock# nc'
    assert len({line.index("  # ") for line in noted}) <= 1, noted  # one column
