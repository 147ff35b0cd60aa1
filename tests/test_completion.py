"""Shell completion: the committed scripts driven by real bash, zsh and fish, and the
value completion of the shared option types (services, interfaces, states, sockets)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shlex
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import click
import pytest
from click.shell_completion import ShellComplete

from pysock.cli import COMMANDS, options

from conftest import need_tool, run_pysock

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"bash": ROOT / "completions/pysock", "zsh": ROOT / "completions/_pysock",
           "fish": ROOT / "completions/pysock.fish"}
BIN = os.path.dirname(sys.executable)  # the venv's pysock, which the scripts call
SHELL_ENV = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HOME="/nonexistent")


def bash_complete(line: str) -> list[str]:
    """What Tab offers at the end of line, from the committed script in real bash."""
    need_tool("bash")
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    script = f"""
source {shlex.quote(str(SCRIPTS['bash']))}
complete -p pysock >/dev/null || exit 3
COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE={shlex.quote(line)}
COMP_POINT={len(line)}
_pysock_completion pysock "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                         text=True, timeout=30, env=SHELL_ENV)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.parametrize("shell", list(SCRIPTS))
def test_completion_command_prints_the_committed_script(shell):
    out = run_pysock("completion", shell)
    assert out.returncode == 0
    assert out.stdout.decode() == SCRIPTS[shell].read_text()


def test_completion_of_an_unknown_shell_is_a_usage_error():
    out = run_pysock("completion", "tcsh")
    assert out.returncode == 2 and out.stderr.decode().startswith("pysock: ")


def test_bash_completes_a_command():
    assert bash_complete("pysock li") == ["listen"]
    assert set(bash_complete("pysock ")) >= {"listen", "connect", "completion"}


def test_bash_completes_help_topics():
    assert bash_complete("pysock help sc") == ["scan"]
    assert set(bash_complete("pysock help ")) >= {"listen", "scan", "inspect"}


def test_bash_completes_options_and_choices():
    assert bash_complete("pysock listen --kee") == ["--keep-open"]
    assert bash_complete("pysock --color ne") == ["never"]
    assert bash_complete("pysock completion ") == ["bash", "zsh", "fish"]


def test_bash_completes_service_names_for_ports():
    offered = bash_complete("pysock listen -p htt")
    assert "http" in offered and "https" in offered
    assert bash_complete("pysock listen -p ") == []  # no 300-name list for a bare Tab


def test_bash_in_an_interactive_shell():
    """The way a user gets it: an interactive bash sourcing the file, then Tab."""
    need_tool("bash")
    script = (f"source {shlex.quote(str(SCRIPTS['bash']))}\n"
              "COMP_WORDS=(pysock conn); COMP_CWORD=1\n"
              "_pysock_completion pysock conn pysock; echo \"got:${COMPREPLY[*]}\"\n")
    out = subprocess.run(["bash", "--norc", "--noprofile", "-i"], input=script,
                         capture_output=True, text=True, timeout=30, env=SHELL_ENV)
    assert "got:connect" in out.stdout, out.stderr


@pytest.mark.skipif("inspect" not in COMMANDS, reason="inspect is not on this branch yet")
def test_bash_completes_inspect_states():
    offered = bash_complete("pysock inspect --state ")
    assert set(offered) >= set(options.TCP_STATES)
    assert bash_complete("pysock inspect --state time") == ["time-wait"]


@pytest.mark.skipif("unix" not in COMMANDS, reason="unix is not on this branch yet")
def test_bash_completes_unix_socket_paths(tmp_path):
    path = tmp_path / "a.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert str(path) in bash_complete(f"pysock unix {tmp_path}/")


def test_zsh_loads_the_script():
    need_tool("zsh")
    script = (f"fpath=({shlex.quote(str(SCRIPTS['zsh'].parent))} $fpath)\n"
              "autoload -U compinit && compinit -u -D\n"
              f"source {shlex.quote(str(SCRIPTS['zsh']))}\n"
              "print -r -- ${_comps[pysock]}\n")
    out = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True,
                         timeout=30, env=SHELL_ENV)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout.strip() == "_pysock_completion"


def test_fish_loads_the_script_and_completes():
    need_tool("fish")
    script = (f"source {shlex.quote(str(SCRIPTS['fish']))}; "
              "complete -C 'pysock li'; complete -C 'pysock listen --keep'")
    out = subprocess.run(["fish", "--no-config", "-c", script], capture_output=True,
                         text=True, timeout=30, env=SHELL_ENV)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    words = [line.split("\t")[0] for line in out.stdout.splitlines()]  # word<TAB>description
    assert words == ["listen", "--keep-open"]


MODULES_AT_EXIT = """
import atexit, sys
atexit.register(lambda: print("modules:" + " ".join(sorted(sys.modules)), file=sys.stderr))
from pysock.cli import main
main()
"""


def imports_of_a_tab(line: str, cword: int) -> tuple[str, set[str]]:
    """What a Tab prints, and every module loaded (importlib.import_module included,
    which -X importtime does not show)."""
    env = dict(os.environ, _PYSOCK_COMPLETE="bash_complete", COMP_WORDS=line,
               COMP_CWORD=str(cword))
    out = subprocess.run([sys.executable, "-c", MODULES_AT_EXIT], capture_output=True,
                         text=True, timeout=30, env=env)
    listed = [x for x in out.stderr.splitlines() if x.startswith("modules:")]
    assert listed, out.stderr
    return out.stdout, set(listed[0][len("modules:"):].split())


def test_completion_imports_nothing_heavy():
    offered, modules = imports_of_a_tab("pysock listen -p ht", 3)
    assert "plain\thttp\t\n" in offered and "pysock.cli.listen" in modules
    assert {m.split(".")[0] for m in modules}.isdisjoint({"scapy", "psutil", "rich"})


@pytest.mark.parametrize("line,cword,word", [("pysock scan --ti", 2, "--timeout"),
                                             ("pysock inspect --state time", 3, "time-wait"),
                                             ("pysock trace --ic", 2, "--icmp")])
def test_completing_options_of_heavy_commands_imports_nothing_heavy(line, cword, word):
    offered, modules = imports_of_a_tab(line, cword)
    assert f"plain\t{word}\t" in offered
    assert {m.split(".")[0] for m in modules}.isdisjoint({"scapy", "psutil", "rich"})


def test_completing_a_command_name_imports_no_command():
    offered, modules = imports_of_a_tab("pysock li", 1)
    assert [line.split("\t")[:2] for line in offered.splitlines()] == [["plain", "listen"]]
    commands = {f"pysock.cli.{name}" for name in COMMANDS if name != "completion"}  # the protocol
    assert not commands & modules


# ---- the option types, through click's completion machinery --------------------------

@click.command()
@click.option("-I", "--iface", type=options.IFACE)
@click.option("--via", type=options.InterfaceType(addresses=True))
@click.option("--state", type=options.TCP_STATE)
@click.option("--port", type=options.PORT)
@click.option("--ports", type=options.PortListType())
@click.argument("path", type=options.UNIX_PATH, required=False)
def probe(**kw):
    """A command using every completing type."""
    return kw


def offered(args: list[str], incomplete: str) -> list[tuple[str, str]]:
    found = ShellComplete(probe, {}, "probe", "_X").get_completions(args, incomplete)
    return [(item.type, item.value) for item in found]


def test_interfaces_come_from_sys_class_net():
    names = sorted(os.listdir("/sys/class/net"))
    assert [v for _, v in offered(["-I"], "")] == names
    assert ("plain", "lo") in offered(["--iface"], "l")


def test_an_interface_must_exist_unless_an_address_is_allowed():
    with pytest.raises(click.BadParameter, match="no network interface 'nosuch0'.*lo"):
        options.IFACE.convert("nosuch0", None, None)
    assert options.IFACE.convert("lo", None, None) == "lo"
    assert options.InterfaceType(addresses=True).convert("::1", None, None) == "::1"
    with pytest.raises(click.BadParameter):
        options.InterfaceType(addresses=True).convert("nosuch0", None, None)


def test_states_complete_and_check():
    assert [v for _, v in offered(["--state"], "fin")] == ["fin-wait-1", "fin-wait-2"]
    assert {v for _, v in offered(["--state"], "")} == set(options.TCP_STATES +
                                                         options.STATE_GROUPS)
    assert options.TCP_STATE.convert("TIME_WAIT", None, None) == "time-wait"
    with pytest.raises(click.BadParameter, match="unknown socket state 'lisen'"):
        options.TCP_STATE.convert("lisen", None, None)


def test_a_state_type_can_hand_the_word_to_the_command_parser():
    kind = options.TcpStateType(lambda text: text.upper())
    assert kind.convert("listen", None, None) == "LISTEN"
    command = click.Command("x", params=[click.Option(["--state"], type=kind)])
    found = ShellComplete(command, {}, "x", "_X").get_completions(["--state"], "lis")
    assert [item.value for item in found] == ["listen"]


def test_services_for_ports_and_port_lists():
    assert ("plain", "ssh") in offered(["--port"], "ss")
    assert ("plain", "22,http") in offered(["--ports"], "22,htt")
    assert ("plain", "8000-http") in offered(["--ports"], "8000-htt")
    assert offered(["--port"], "8") == []


def test_unix_paths_from_the_kernel_and_the_directory(tmp_path):
    path = tmp_path / "srv.sock"
    (tmp_path / "plain-file").write_text("not a socket")
    abstract = f"@pysock-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as bound, socket.socket(socket.AF_UNIX) as hidden:
        bound.bind(str(path))
        hidden.bind("\0" + abstract[1:])
        assert offered([], f"{tmp_path}/") == [("plain", str(path))]
        assert offered([], abstract[:-2]) == [("plain", abstract)]
    os.unlink(path)
    (tmp_path / "left.sock").touch()  # gone from the kernel and not a socket: plain files
    assert offered([], f"{tmp_path}/") == [("file", f"{tmp_path}/")]


# ---- Tab pressed in real interactive shells, through a pseudo-terminal ----------------------

TAB_CASES = [("pysock sc", "pysock scan "), ("pysock scan --ti", "pysock scan --timeout ")]
STATES_SHOWN = ("time-wait", "close-wait", "established")
ROWS, COLUMNS = 40, 160


class Terminal:
    """A shell on a pseudo-terminal (its controlling tty), drawn by a terminal emulator
    (pyte): keys in, the screen as the user sees it out."""

    def __init__(self, argv: list[str], env: dict):
        import pyte
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=_take_tty, close_fds=True)
        os.close(slave)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def line(self) -> str:
        """The line the cursor is on."""
        return self.screen.display[self.screen.cursor.y].rstrip() + " " * (
            self.screen.cursor.x > len(self.screen.display[self.screen.cursor.y].rstrip()))

    def text(self) -> str:
        return "\n".join(row.rstrip() for row in self.screen.display)

    def wait(self, done, timeout: float = 20.0) -> bool:
        """Draw what the shell writes until done() holds or time runs out."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    self.stream.feed(os.read(self.master, 65536))
                except OSError:
                    return done()
        return True

    def clear(self) -> None:
        """Abandon the line (Ctrl-C) and have the shell clear the screen (Ctrl-L)."""
        for _ in range(10):  # a ^C that lands while the shell is busy can be lost: again
            self.type("\x03")  # the tty drops typeahead at ^C: wait for the empty prompt
            if self.wait(lambda: self.line().strip() == "ready>", timeout=2):
                break
        assert self.line().strip() == "ready>", self.text()
        self.type("\x0c")
        assert self.wait(lambda: self.screen.cursor.y == 0 and self.line().strip() == "ready>"), \
            self.text()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


def _take_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _shell_setup(shell: str, source: str, tmp_path: Path) -> tuple[list[str], str]:
    """The shell's argv and the line that loads completion, from the installed file's
    place (what pip installs) or from `pysock completion SHELL`."""
    if shell == "bash":  # no bash-completion package: the file is sourced by hand
        load = f"source {SCRIPTS['bash']}" if source == "installed" else "source <(pysock completion bash)"
        return ["bash", "--norc", "--noprofile", "-i"], f"PS1='rea''dy> '; {load}"
    if shell == "zsh":
        init = "autoload -U compinit && compinit -u -D"
        load = (f"fpath=({SCRIPTS['zsh'].parent} $fpath); {init}" if source == "installed"
                else f"{init}; source <(pysock completion zsh)")
        return ["zsh", "-f", "-i"], f"PS1='rea''dy> '; bindkey -e; {load}"
    vendor = tmp_path / "vendor_completions.d"  # fish autoloads pysock.fish from here
    vendor.mkdir()
    (vendor / "pysock.fish").write_text(SCRIPTS["fish"].read_text())
    load = (f"set -g fish_complete_path {vendor} $fish_complete_path" if source == "installed"
            else "pysock completion fish | source")
    return ["fish", "--no-config", "-i"], f"function fish_prompt; echo 'rea''dy> '; end; {load}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("source", ["installed", "printed"])
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_tab_in_a_real_shell(shell, source, tmp_path):
    need_tool(shell)
    argv, setup = _shell_setup(shell, source, tmp_path)
    env = dict(SHELL_ENV, TERM="xterm", HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path),
               XDG_DATA_HOME=str(tmp_path))
    term = Terminal(argv, env)
    try:
        term.type(setup + "\n")
        assert term.wait(lambda: term.line().startswith("ready>")), term.text()
        for typed, shown in TAB_CASES:
            term.clear()
            term.type(typed + "\t")
            assert term.wait(lambda shown=shown: term.line().endswith(shown)), (typed, term.text())
        term.clear()
        term.type("pysock inspect --state \t" + ("\t" if shell == "bash" else ""))
        assert term.wait(lambda: all(s in term.text() for s in STATES_SHOWN)), term.text()
    finally:
        term.close()


def test_capture_completes_interfaces_and_filter_keywords():
    assert {"lo", "any"} <= set(bash_complete("pysock capture -i "))
    assert {"port", "portrange"} <= set(bash_complete("pysock capture tcp po"))
    assert "tcp-syn" in bash_complete("pysock capture -i lo tcp-s")
