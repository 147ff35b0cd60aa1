"""struct tcp_info (linux/tcp.h) and the skmem array (linux/sock_diag.h), decoded by length.

The kernel sends as much of tcp_info as it knows; older kernels send a shorter
struct, so every field past the end it sent is reported as absent (None)."""

from __future__ import annotations

import struct

# (name, struct format) in kernel order; "=" packing matches the natural
# alignment of the real struct, which has no holes.
_LAYOUT = [
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"),
    ("backoff", "B"), ("options", "B"), ("wscale", "B"), ("app_limited", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"),
    ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"),
    ("snd_ssthresh", "I"), ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"),
    ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"), ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"),
    ("dsack_dups", "I"), ("reord_seen", "I"), ("rcv_ooopack", "I"), ("snd_wnd", "I"),
    ("rcv_wnd", "I"), ("rehash", "I"),
    ("total_rto", "H"), ("total_rto_recoveries", "H"), ("total_rto_time", "I"),
]
_STRUCT = struct.Struct("=" + "".join(fmt for _, fmt in _LAYOUT))
SIZE = _STRUCT.size
_NAMES = [name for name, _ in _LAYOUT]
_ENDS = []
for _i in range(len(_LAYOUT)):
    _ENDS.append(struct.calcsize("=" + "".join(fmt for _, fmt in _LAYOUT[:_i + 1])))

INFINITE_SSTHRESH = 0x7FFFFFFF
_UNSET_RATE = 0xFFFFFFFFFFFFFFFF
CA_STATES = {0: "open", 1: "disorder", 2: "cwr", 3: "recovery", 4: "loss"}

SKMEM_NAMES = ("rmem_alloc", "rcvbuf", "wmem_alloc", "sndbuf", "fwd_alloc", "wmem_queued",
               "optmem", "backlog", "drops")


def raw_fields(data: bytes) -> dict[str, int | None]:
    """Every tcp_info field by its kernel name; None past the length the kernel sent."""
    values = _STRUCT.unpack(bytes(data[:SIZE]).ljust(SIZE, b"\0"))
    length = len(data)
    return {name: (value if end <= length else None)
            for name, value, end in zip(_NAMES, values, _ENDS)}


def _ms(usec: int | None) -> float | None:
    return None if usec is None else usec / 1000


def _bps(rate: int | None) -> int | None:
    return None if rate is None or rate == _UNSET_RATE else rate * 8


def decode(data: bytes) -> dict:
    """tcp_info as pysock's stable JSON field names (times in ms, rates in bits/s)."""
    f = raw_fields(data)
    ssthresh = f["snd_ssthresh"]
    return {
        "rtt_ms": _ms(f["rtt"]), "rttvar_ms": _ms(f["rttvar"]), "min_rtt_ms": _ms(f["min_rtt"]),
        "rto_ms": _ms(f["rto"]), "ato_ms": _ms(f["ato"]),
        "cwnd": f["snd_cwnd"],
        "ssthresh": None if ssthresh is None or ssthresh >= INFINITE_SSTHRESH else ssthresh,
        "mss": f["snd_mss"], "pmtu": f["pmtu"], "ca_state": CA_STATES.get(f["ca_state"]),
        "retransmits": f["retransmits"], "retrans": f["total_retrans"],
        "unacked": f["unacked"], "lost": f["lost"], "sacked": f["sacked"],
        "bytes_acked": f["bytes_acked"], "bytes_received": f["bytes_received"],
        "bytes_sent": f["bytes_sent"], "bytes_retrans": f["bytes_retrans"],
        "segs_out": f["segs_out"], "segs_in": f["segs_in"], "notsent_bytes": f["notsent_bytes"],
        "delivery_rate_bps": _bps(f["delivery_rate"]),
        "pacing_rate_bps": _bps(f["pacing_rate"]),
        "app_limited": None if f["app_limited"] is None else bool(f["app_limited"] & 1),
        "busy_ms": _ms(f["busy_time"]),
        "last_send_ms": f["last_data_sent"], "last_recv_ms": f["last_data_recv"],
        "last_ack_ms": f["last_ack_recv"],
        "rcv_space": f["rcv_space"], "snd_wnd": f["snd_wnd"], "rcv_wnd": f["rcv_wnd"],
        "snd_wscale": None if f["wscale"] is None else f["wscale"] & 0xF,
        "rcv_wscale": None if f["wscale"] is None else f["wscale"] >> 4,
    }


def decode_skmem(data: bytes) -> dict[str, int]:
    count = min(len(data) // 4, len(SKMEM_NAMES))
    values = struct.unpack_from(f"={count}I", data)
    return dict(zip(SKMEM_NAMES, values))
