"""The load test at a size the suite can afford (bench/scenarios/load.py runs it at
2,000 / 200 / 100 clients): echo, broker and --exec cat under many clients at once,
every byte checked, the server's descriptors back to their count before the first
client."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.load import broker_load, echo_load, exec_load  # noqa: E402


@pytest.mark.timeout(180)
def test_many_echo_clients():
    echo_load(clients=300, size=16 << 10)


@pytest.mark.timeout(180)
def test_broker_with_many_clients():
    broker_load(clients=40)


@pytest.mark.timeout(180)
def test_many_exec_cat_clients():
    exec_load(clients=20, size=64 << 10)
