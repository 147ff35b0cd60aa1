"""solo: the one-Link loop, and the Engine taking the Link back from it as it is."""

import os
import socket
import time

import pytest
from tests.test_relay import Pipes, read_all, run_relay, tcp_pair

from pysock.net import solo
from pysock.net.relay import Policy, RelayError


@pytest.fixture
def solo_runs(monkeypatch):
    """Each Solo.run, and whether it ended handing the Link back (over)."""
    runs: list[solo.Solo] = []
    real = solo.Solo.run

    def run(self):
        runs.append(self)
        real(self)
    monkeypatch.setattr(solo.Solo, "run", run)
    return runs


def exchange(pipes: Pipes, theirs: socket.socket, n: int) -> None:
    """n interactive round trips: a line in, the peer answers, the answer out."""
    for i in range(n):
        line = f"line {i}\n".encode()
        os.write(pipes.stdin_w, line)
        assert theirs.recv(100) == line
        theirs.sendall(line.upper())
        assert os.read(pipes.stdout_r, 100) == line.upper()


def test_interactive_traffic_runs_in_solo_to_the_end(solo_runs):
    pipes = Pipes()
    mine, theirs = tcp_pair()
    t, box = run_relay(pipes.channel, mine)
    exchange(pipes, theirs, 50)
    os.close(pipes.stdin_w)
    assert read_all(theirs) == b""  # FIN after end of input
    theirs.close()
    t.join(10)
    assert box["result"].sent == box["result"].received == sum(
        len(f"line {i}\n") for i in range(50))
    assert len(solo_runs) == 1  # from the first byte to end of input


def test_a_full_destination_hands_over_and_every_byte_arrives(solo_runs):
    pipes = Pipes()
    mine, theirs = tcp_pair()
    t, box = run_relay(pipes.channel, mine)
    exchange(pipes, theirs, 5)
    big = os.urandom(8 << 20)  # more than the socket buffers hold: the send side blocks
    pipes.feed(big)
    time.sleep(0.5)  # the peer reads nothing yet: the socket's buffers fill up
    got = read_all(theirs)
    theirs.close()
    t.join(10)
    assert got == big
    assert solo_runs and solo_runs[0].over
    assert box["result"].sent == len(big) + sum(len(f"line {i}\n") for i in range(5))


def test_a_reset_during_solo_is_the_same_error(solo_runs):
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.drain()
    t, box = run_relay(pipes.channel, mine)
    os.write(pipes.stdin_w, b"hello\n")
    assert theirs.recv(10) == b"hello\n"
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    theirs.close()  # linger 0: RST
    t.join(5)
    assert isinstance(box.get("error"), RelayError)
    assert "connection reset by 127.0.0.1" in str(box["error"])
    assert len(solo_runs) == 1


def test_an_idle_timeout_keeps_the_link_in_the_engine(solo_runs):
    pipes = Pipes()
    mine, theirs = tcp_pair()
    pipes.drain()
    t, box = run_relay(pipes.channel, mine, Policy(idle_timeout=0.3))
    t.join(5)
    assert "idle" in str(box.get("error"))
    assert solo_runs == []  # a timer that runs without an event: not solo's to keep
