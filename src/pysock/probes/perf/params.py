"""One test's settings, as the client builds them and as iperf3's parameter
block carries them (iperf_api.c send_parameters / get_parameters)."""

from __future__ import annotations

from dataclasses import dataclass

from pysock.probes.perf.protocol import CLIENT_VERSION, DEFAULT_TCP_LEN, DEFAULT_UDP_LEN, ProtocolError

MAX_STREAMS = 128  # iperf3's limit on -P
MAX_LENGTH = 1 << 20  # iperf3's MAX_BLOCKSIZE
MAX_UDP_LENGTH = 65507


@dataclass(frozen=True)
class TestSpec:
    protocol: str = "tcp"  # tcp | udp
    duration: float = 10.0  # seconds; 0 with bytes/blocks
    bytes: int = 0
    blocks: int = 0
    parallel: int = 1
    reverse: bool = False
    bidir: bool = False
    length: int = 0  # 0: the protocol's default
    bandwidth: int = 0  # bits/s, 0: unlimited (UDP default 1 Mbit/s is set by the cli)
    omit: float = 0.0
    window: int = 0
    congestion: str | None = None
    counters64: bool = False  # UDP sequence numbers of 64 bits

    @property
    def block_size(self) -> int:
        if self.length:
            return self.length
        return DEFAULT_UDP_LEN if self.protocol == "udp" else DEFAULT_TCP_LEN

    @property
    def stream_count(self) -> int:
        return self.parallel * (2 if self.bidir else 1)

    def client_sends(self, index: int) -> bool:
        """Whether the client's index-th data stream is a sender: in bidir mode the
        client opens its senders first (iperf_client_api.c, CREATE_STREAMS)."""
        if self.bidir:
            return index < self.parallel
        return not self.reverse

    def to_params(self) -> dict:
        params: dict = {self.protocol: True, "omit": _number(self.omit),
                        "time": _number(self.duration), "num": self.bytes,
                        "blockcount": self.blocks, "parallel": self.parallel,
                        "len": self.block_size, "pacing_timer": 1000,
                        "client_version": CLIENT_VERSION}
        if self.reverse:
            params["reverse"] = True
        if self.bidir:
            params["bidirectional"] = True
        if self.window:
            params["window"] = self.window
        if self.bandwidth:
            params["bandwidth"] = self.bandwidth
        if self.congestion:
            params["congestion"] = self.congestion
        if self.protocol == "udp":
            params["udp_counters_64bit"] = 1
        return params


def _number(value: float):
    return int(value) if float(value).is_integer() else value


def from_params(params: dict) -> TestSpec:
    """The server's reading of a client's parameter block; anything out of range
    is a protocol error that drops the test."""
    if params.get("tcp"):
        protocol = "tcp"
    elif params.get("udp"):
        protocol = "udp"
    else:
        raise ProtocolError("the parameter block asks for neither TCP nor UDP")
    parallel = _int(params, "parallel", 1, 1, MAX_STREAMS)
    limit = MAX_UDP_LENGTH if protocol == "udp" else MAX_LENGTH
    low = 16 if protocol == "udp" else 1  # UDP: room for the sequence header
    return TestSpec(
        protocol=protocol, duration=_num(params, "time", 10, 0, 86400),
        bytes=_int(params, "num", 0, 0, 1 << 62), blocks=_int(params, "blockcount", 0, 0, 1 << 62),
        parallel=parallel, reverse=bool(params.get("reverse")),
        bidir=bool(params.get("bidirectional")), length=_int(params, "len", low, low, limit),
        bandwidth=_int(params, "bandwidth", 0, 0, 1 << 62), omit=_num(params, "omit", 0, 0, 600),
        window=_int(params, "window", 0, 0, 1 << 30),
        congestion=_text(params.get("congestion")),
        counters64=bool(params.get("udp_counters_64bit")))


def _num(params: dict, key: str, default, low, high) -> float:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ProtocolError(f"parameter '{key}' is {value!r}, not a number in {low}..{high}")
    return value


def _int(params: dict, key: str, default, low, high) -> int:
    value = _num(params, key, default, low, high)
    if not float(value).is_integer():
        raise ProtocolError(f"parameter '{key}' is {value!r}, not a whole number")
    return int(value)


def _text(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 32:
        raise ProtocolError("parameter 'congestion' is not an algorithm name")
    return value
