"""struct tcp_info (linux/tcp.h) and the skmem array (linux/sock_diag.h), decoded by length.

The kernel sends as much of tcp_info as it knows; older kernels send a shorter
struct, so every field past the end it sent is reported as absent (None)."""

from __future__ import annotations

import bisect
import operator
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


def _values(data) -> tuple:
    """The struct's values; None for every field past the length the kernel sent."""
    if len(data) >= SIZE:
        return _STRUCT.unpack_from(data)
    values = _STRUCT.unpack(bytes(data).ljust(SIZE, b"\0"))
    known = bisect.bisect_right(_ENDS, len(data))
    return values[:known] + (None,) * (len(values) - known)


def raw_fields(data: bytes) -> dict[str, int | None]:
    """Every tcp_info field by its kernel name; None past the length the kernel sent."""
    return dict(zip(_NAMES, _values(data)))


# pysock's stable names: copied as they are, microseconds -> ms, bytes/s -> bits/s
_COPY = (("cwnd", "snd_cwnd"), ("mss", "snd_mss"), ("retransmits", "retransmits"),
         ("retrans", "total_retrans"), ("lost", "lost"), ("unacked", "unacked"),
         ("bytes_acked", "bytes_acked"), ("bytes_received", "bytes_received"),
         ("bytes_sent", "bytes_sent"), ("bytes_retrans", "bytes_retrans"),
         ("segs_out", "segs_out"), ("segs_in", "segs_in"), ("notsent_bytes", "notsent_bytes"),
         ("last_send_ms", "last_data_sent"), ("last_recv_ms", "last_data_recv"),
         ("rcv_mss", "rcv_mss"), ("advmss", "advmss"), ("pmtu", "pmtu"),
         ("rcv_space", "rcv_space"), ("snd_wnd", "snd_wnd"), ("delivered", "delivered"))
_MS = (("rtt_ms", "rtt"), ("rttvar_ms", "rttvar"), ("min_rtt_ms", "min_rtt"), ("rto_ms", "rto"),
       ("ato_ms", "ato"), ("busy_ms", "busy_time"), ("rwnd_limited_ms", "rwnd_limited"),
       ("sndbuf_limited_ms", "sndbuf_limited"))
_BPS = (("delivery_rate_bps", "delivery_rate"), ("pacing_rate_bps", "pacing_rate"))
_INDEX = {name: i for i, name in enumerate(_NAMES)}


def _picker(pairs):
    return tuple(out for out, _ in pairs), operator.itemgetter(*(_INDEX[k] for _, k in pairs))


_COPY_NAMES, _copy = _picker(_COPY)
_MS_NAMES, _ms_values = _picker(_MS)
_BPS_NAMES, _bps_values = _picker(_BPS)
_SSTHRESH, _CA_STATE = _INDEX["snd_ssthresh"], _INDEX["ca_state"]
_OPTIONS, _WSCALE = _INDEX["options"], _INDEX["wscale"]
TCPI_OPT_WSCALE = 4


def decode(data: bytes) -> dict:
    """tcp_info as pysock's stable JSON field names (times in ms, rates in bits/s)."""
    values = _values(data)
    out = dict(zip(_MS_NAMES, (None if v is None else v / 1000 for v in _ms_values(values))))
    out.update(zip(_COPY_NAMES, _copy(values)))
    ssthresh = values[_SSTHRESH]
    out["ssthresh"] = None if ssthresh is None or ssthresh >= INFINITE_SSTHRESH else ssthresh
    out["ca_state"] = CA_STATES.get(values[_CA_STATE])
    scaled = values[_OPTIONS] & TCPI_OPT_WSCALE
    out["snd_wscale"] = values[_WSCALE] & 0xF if scaled else None
    out["rcv_wscale"] = values[_WSCALE] >> 4 if scaled else None
    out.update(zip(_BPS_NAMES, (None if v is None or v == _UNSET_RATE else v * 8
                                for v in _bps_values(values))))
    return out


SKMEM = struct.Struct(f"={len(SKMEM_NAMES)}I")


def decode_skmem(data: bytes) -> dict[str, int]:
    return dict(zip(SKMEM_NAMES, skmem_values(data)))


# ---- the fields the extended table shows, without a dict per socket -------------

# decode()'s names and units, in this order; the kernel fields they come from are read
# with one Struct that skips the rest (a listing of thousands of sockets pays per field)
SHOWN = ("rtt_ms", "rttvar_ms", "cwnd", "retransmits", "retrans", "bytes_acked",
         "bytes_received", "delivery_rate_bps", "mss", "rcv_mss", "advmss", "pmtu", "rto_ms",
         "ato_ms", "snd_wscale", "rcv_wscale", "pacing_rate_bps", "busy_ms",
         "rwnd_limited_ms", "sndbuf_limited_ms", "notsent_bytes")
_SHOWN_KERNEL = {"retransmits", "options", "wscale", "rto", "ato", "snd_mss", "rcv_mss",
                 "pmtu", "rtt", "rttvar", "snd_cwnd", "advmss", "total_retrans",
                 "pacing_rate", "bytes_acked", "bytes_received", "notsent_bytes",
                 "delivery_rate", "busy_time", "rwnd_limited", "sndbuf_limited"}


def _sub_struct(keep: set[str]) -> struct.Struct:
    """A Struct reading only the kept fields (in kernel order), padding over the rest."""
    last = max(_NAMES.index(name) for name in keep)
    return struct.Struct("=" + "".join(fmt if name in keep else f"{struct.calcsize(fmt)}x"
                                       for name, fmt in _LAYOUT[:last + 1]))


_SHOWN_STRUCT = _sub_struct(_SHOWN_KERNEL)


def shown(data) -> tuple:
    """The SHOWN fields of tcp_info, as decode() has them."""
    if len(data) < _SHOWN_STRUCT.size:  # an older kernel's shorter struct: the careful way
        info = decode(data)
        return tuple(info[name] for name in SHOWN)
    (retransmits, options, wscale, rto, ato, mss, rcv_mss, pmtu, rtt, rttvar, cwnd, advmss,
     retrans, pacing, acked, received, notsent, delivery, busy, rwnd_limited,
     sndbuf_limited) = _SHOWN_STRUCT.unpack_from(data)
    scaled = options & TCPI_OPT_WSCALE
    return (rtt / 1000, rttvar / 1000, cwnd, retransmits, retrans, acked, received,
            None if delivery == _UNSET_RATE else delivery * 8, mss, rcv_mss, advmss, pmtu,
            rto / 1000, ato / 1000, wscale & 0xF if scaled else None,
            wscale >> 4 if scaled else None, None if pacing == _UNSET_RATE else pacing * 8,
            busy / 1000, rwnd_limited / 1000, sndbuf_limited / 1000, notsent)


def skmem_values(data) -> tuple[int, ...]:
    """The skmem array as the kernel sent it (SKMEM_NAMES order, as many as it has)."""
    if len(data) >= SKMEM.size:
        return SKMEM.unpack_from(data)
    return struct.unpack_from(f"={len(data) // 4}I", data)
