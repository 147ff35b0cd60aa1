"""iperf3's control protocol (esnet/iperf src/iperf_api.c, iperf_client_api.c,
iperf_server_api.c): a 37-byte cookie, one signed byte per state change, and JSON
blocks behind a 4-byte big-endian length."""

from __future__ import annotations

import json
import secrets
import socket
import struct

from pysock.errors import NetworkError

DEFAULT_PORT = 5201
COOKIE_SIZE = 37  # 36 characters and a NUL
COOKIE_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
MAX_JSON = 64 * 1024  # iperf3 itself refuses parameter blocks far smaller than this
DEFAULT_TCP_LEN = 128 * 1024
DEFAULT_UDP_LEN = 1460
CLIENT_VERSION = "3.12"

# the state bytes (iperf_api.h)
TEST_START = 1
TEST_RUNNING = 2
TEST_END = 4
PARAM_EXCHANGE = 9
CREATE_STREAMS = 10
SERVER_TERMINATE = 11
CLIENT_TERMINATE = 12
EXCHANGE_RESULTS = 13
DISPLAY_RESULTS = 14
IPERF_START = 15
IPERF_DONE = 16
ACCESS_DENIED = -1
SERVER_ERROR = -2

STATE_NAMES = {TEST_START: "TEST_START", TEST_RUNNING: "TEST_RUNNING", TEST_END: "TEST_END",
               PARAM_EXCHANGE: "PARAM_EXCHANGE", CREATE_STREAMS: "CREATE_STREAMS",
               SERVER_TERMINATE: "SERVER_TERMINATE", CLIENT_TERMINATE: "CLIENT_TERMINATE",
               EXCHANGE_RESULTS: "EXCHANGE_RESULTS", DISPLAY_RESULTS: "DISPLAY_RESULTS",
               IPERF_START: "IPERF_START", IPERF_DONE: "IPERF_DONE",
               ACCESS_DENIED: "ACCESS_DENIED", SERVER_ERROR: "SERVER_ERROR"}

# UDP data streams open with a 4-byte hello and its reply (iperf_udp.c)
UDP_CONNECT_MSG = 0x36373839
UDP_CONNECT_REPLY = 0x39383736
LEGACY_UDP_CONNECT_REPLY = 987654321


class ProtocolError(NetworkError):
    """The peer broke the protocol: the test is dropped."""


def new_cookie() -> bytes:
    return "".join(secrets.choice(COOKIE_ALPHABET) for _ in range(36)).encode() + b"\0"


def valid_cookie(cookie: bytes) -> bool:
    """36 printable characters and a NUL (iperf3 makes them from base32 letters)."""
    return (len(cookie) == COOKIE_SIZE and cookie[-1] == 0
            and all(33 <= b < 127 for b in cookie[:-1]))


def read_exact(sock: socket.socket, size: int, what: str) -> bytes:
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            raise ProtocolError(f"timed out waiting for the {what}") from None
        except OSError as exc:
            raise ProtocolError(f"control connection failed reading the {what}: "
                                f"{exc.strerror or exc}") from None
        if not chunk:
            raise ProtocolError(f"the peer closed the control connection before the {what}")
        data += chunk
    return bytes(data)


def send_all(sock: socket.socket, data: bytes, what: str) -> None:
    try:
        sock.sendall(data)
    except OSError as exc:
        raise ProtocolError(f"control connection failed sending the {what}: "
                            f"{exc.strerror or exc}") from None


def send_state(sock: socket.socket, state: int) -> None:
    send_all(sock, struct.pack("b", state), f"state {STATE_NAMES.get(state, state)}")


def read_state(sock: socket.socket) -> int:
    return struct.unpack("b", read_exact(sock, 1, "next state byte"))[0]


def send_json(sock: socket.socket, obj: dict, what: str) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    send_all(sock, struct.pack("!I", len(body)) + body, what)


def read_json(sock: socket.socket, what: str) -> dict:
    (size,) = struct.unpack("!I", read_exact(sock, 4, f"length of the {what}"))
    if not 0 < size <= MAX_JSON:
        raise ProtocolError(f"the {what} claims {size} bytes (at most {MAX_JSON})")
    body = read_exact(sock, size, what)
    try:
        obj = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"the {what} is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"the {what} is not a JSON object")
    return obj


def read_server_error(sock: socket.socket) -> str:
    """SERVER_ERROR is followed by iperf3's error number and errno, 4 bytes each."""
    try:
        i_errno, err = struct.unpack("!ii", read_exact(sock, 8, "server error"))
    except ProtocolError:
        return "the server reported an error"
    text = f"the server reported error {i_errno}"
    if err:
        import os
        text += f" ({os.strerror(err)})"
    return text


def stream_ids(count: int) -> list[int]:
    """iperf3 numbers streams 1, 3, 4, 5, ... (iperf_add_stream skips 2), and matches
    results by these numbers, so both ends must count the same way."""
    return [1] + list(range(3, count + 2))
