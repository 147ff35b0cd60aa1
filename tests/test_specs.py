"""Issue 15: option groups reach commands as typed, frozen specs checked once where
click hands over; core errors carry facts and cli/ names the flags."""

import socket

import click
import pytest
from click.testing import CliRunner

from pysock.cli.datagramopts import DatagramSpec, datagram_options
from pysock.cli.relayopts import RelaySpec, relay_options
from pysock.cli.serveopts import ServeSpec, serve_options
from pysock.errors import OptionError, UsageError

from conftest import run_pysock


def test_a_command_receives_each_group_as_one_frozen_spec():
    seen = {}

    @click.command()
    @serve_options
    @datagram_options
    @relay_options
    def command(serve, datagrams, relay):
        seen.update(serve=serve, datagrams=datagrams, relay=relay)

    result = CliRunner().invoke(command, ["-k", "--echo", "--chunk", "5", "-q", "2", "--crlf"])
    assert result.exit_code == 0, result.output
    assert seen["serve"] == ServeSpec(keep_open=True, mode="echo")
    assert seen["datagrams"] == DatagramSpec(chunk=5)
    assert seen["relay"] == RelaySpec(quit_after=2.0, crlf=True)
    with pytest.raises(AttributeError):
        seen["relay"].crlf = False


def test_a_group_is_checked_once_before_the_command_runs():
    ran = []

    @click.command()
    @relay_options
    def command(relay):
        ran.append(relay)

    result = CliRunner().invoke(command, ["-d", "--send-only"])
    # pysock's one usage error; pysock.cli.run makes it the exit-2 line
    assert isinstance(result.exception, UsageError) and not ran
    assert "exclude each other" in str(result.exception)


def test_recv_and_send_only_are_refused_before_listening():
    """listen used to open its socket, then find the conflict."""
    result = run_pysock("listen", "-d", "--send-only", "127.0.0.1", "0")
    assert result.returncode == 2 and b"exclude each other" in result.stderr
    assert b"listening on" not in result.stderr


def test_the_sockopt_flag_is_named_once():
    """The core said '--sockopt ttl=999: ...' inside click's "invalid value for
    '--sockopt'": the flag twice."""
    err = run_pysock("connect", "--sockopt", "ttl=999", "127.0.0.1", "9").stderr.decode()
    assert err.count("--sockopt") == 1 and "ttl=999: 999 is out of range" in err


def test_a_core_error_names_no_flag():
    from pysock.net.sockopt import parse_sockopt
    from pysock.net.unixsock import open_for_passing
    with pytest.raises(OptionError) as caught:
        open_for_passing("/nonexistent/file")
    assert caught.value.option == "send_fds" and "--" not in caught.value.message
    with pytest.raises(Exception) as bad:
        parse_sockopt("ttl=999")
    assert "--" not in str(bad.value)


def test_socks5_credentials_over_255_bytes_are_refused_before_connecting():
    with socket.socket() as proxy:  # listening: a connection would be accepted
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        port = proxy.getsockname()[1]
        result = run_pysock("connect", "--proxy", f"127.0.0.1:{port}", "--proxy-auth",
                            "u" * 300 + ":pw", "127.0.0.1", "9")
        proxy.setblocking(False)
        with pytest.raises(BlockingIOError):
            proxy.accept()
    assert result.returncode == 2
    assert result.stderr == b"pysock: --proxy-auth: user name and password are at most 255 " \
                            b"bytes each\n"


def test_a_core_error_states_the_fact_and_the_command_line_adds_the_flags():
    from pysock import errors
    exc = errors.NetworkError("/x is not a stream socket", advice="unix_other_type",
                              other="dgram")
    saved = dict(errors.ADVICE)
    errors.ADVICE.clear()
    try:
        assert exc.message == "/x is not a stream socket"  # no cli/: the fact alone
    finally:
        errors.ADVICE.update(saved)
    import pysock.cli  # noqa: F401  (installs the wording)
    assert exc.message == "/x is not a stream socket (try --type dgram)"


def _spec_of(group, args):
    """What a command decorated with group receives (or the exception it raised)."""
    seen = {}

    @click.command()
    @group
    def command(**spec):
        seen.update(spec)

    result = CliRunner().invoke(command, args)
    return result.exception or next(iter(seen.values()))


def test_inspect_receives_its_selection_as_one_spec():
    from pysock.cli.inspect import selection_options
    from pysock.inventory.filter import Selection
    chosen = _spec_of(selection_options, ["-t", "-f", "inet", "--sport", "22,80", "-l"])
    assert isinstance(chosen, Selection)
    assert (chosen.protos, chosen.family, chosen.listening) == (("tcp", "udp", "raw"), 4, True)
    assert list(chosen.sports) == [22, 80]
    refused = _spec_of(selection_options, ["-f", "inet", "-6"])
    assert isinstance(refused, UsageError) and "different families" in str(refused)


def test_trace_receives_its_probe_options_as_one_trace_spec():
    from pysock.cli.trace import probe_options
    from pysock.probes.trace import TraceSpec
    spec = _spec_of(probe_options, ["--tcp", "443", "-q", "2", "-N", "4"])
    assert spec == TraceSpec(method="tcp", port=443, queries=2, window=4)
    refused = _spec_of(probe_options, ["--udp", "--icmp"])
    assert isinstance(refused, UsageError) and refused.see_help


def test_every_usage_error_is_one_line_with_exit_2():
    """click's own usage errors and pysock's leave by the same path: one line, exit 2."""
    for args, line in ((["trace", "--udp", "--icmp", "localhost"],
                        "pysock: choose one of --icmp, --udp and --tcp (see 'pysock trace --help')\n"),
                       (["trace", "-q", "99", "localhost"], "(see 'pysock trace --help')\n"),
                       (["inspect", "--yes"], "pysock: --yes goes with --kill\n")):
        out = run_pysock(*args)
        assert out.returncode == 2 and out.stderr.decode().endswith(line), out.stderr
        assert out.stderr.count(b"\n") == 1
