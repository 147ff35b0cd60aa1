"""What a test measured: the results block each end sends the other (iperf_api.c
send_results / get_results), interval and summary records, and iperf3's -J document."""

from __future__ import annotations

import os
import socket
import time

from pysock.probes.perf.protocol import ProtocolError
from pysock.probes.perf.streams import Stream


class CpuClock:
    """Process CPU use between start and now, in percent of wall time (iperf3's
    cpu_util_total/user/system)."""

    def __init__(self):
        self.times = os.times()
        self.wall = time.monotonic()

    def percent(self) -> tuple[float, float, float]:
        now = os.times()
        wall = max(time.monotonic() - self.wall, 1e-9)
        user = (now.user - self.times.user) / wall * 100
        system = (now.system - self.times.system) / wall * 100
        return user + system, user, system


def congestion_of(streams: list[Stream]) -> str | None:
    for stream in streams:
        if stream.is_tcp:
            try:
                raw = stream.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
                return raw.split(b"\0", 1)[0].decode()
            except OSError:
                return None
    return None


def local_results(streams: list[Stream], cpu: tuple[float, float, float],
                  congestion: str | None) -> dict:
    """The block this end sends its peer after TEST_END."""
    has_retr = any(s.sender and s.is_tcp for s in streams)
    block = {"cpu_util_total": cpu[0], "cpu_util_user": cpu[1], "cpu_util_system": cpu[2],
             "sender_has_retransmits": 1 if has_retr else 0, "streams": []}
    if congestion:
        block["congestion_used"] = congestion
    for stream in streams:
        udp = getattr(stream, "counted_packets", None) is not None
        block["streams"].append({
            "id": stream.id, "bytes": stream.counted,
            "retransmits": stream.final_retransmits if stream.sender and stream.is_tcp else -1,
            "jitter": stream.jitter if udp else 0,
            "errors": stream.counted_lost if udp and not stream.sender else 0,
            "omitted_errors": 0, "packets": stream.counted_packets if udp else 0,
            "omitted_packets": 0, "start_time": 0, "end_time": round(stream.seconds, 6)})
    return block


def peer_results(block: dict, ids: set[int]) -> dict[int, dict]:
    """The peer's block, checked: stream id -> its bytes, retransmits, seconds."""
    streams = block.get("streams")
    if not isinstance(streams, list):
        raise ProtocolError("the peer's results carry no streams")
    found: dict[int, dict] = {}
    for entry in streams:
        if not isinstance(entry, dict) or entry.get("id") not in ids:
            raise ProtocolError(f"the peer's results name an unknown stream: {entry!r:.80}")
        nbytes = entry.get("bytes")
        if not isinstance(nbytes, (int, float)) or nbytes < 0:
            raise ProtocolError("the peer's results carry a bad byte count")
        seconds = _number(entry.get("end_time")) - _number(entry.get("start_time"))
        found[entry["id"]] = {"bytes": int(nbytes), "retransmits": _number(entry.get("retransmits")),
                              "seconds": seconds if seconds > 0 else None,
                              "jitter": _number(entry.get("jitter")),
                              "errors": int(_number(entry.get("errors"))),
                              "packets": int(_number(entry.get("packets")))}
    return found


def _number(value) -> float:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def rate(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds if seconds > 0 else 0.0


def interval_record(stream: Stream, start: float, end: float, nbytes: int,
                    retr: int | None, omitted: bool) -> dict:
    info = stream.tcp_info() if stream.sender else {}
    cwnd = None
    if info.get("snd_cwnd") is not None and info.get("snd_mss"):
        cwnd = info["snd_cwnd"] * info["snd_mss"]
    return {"stream": stream.id, "start_s": round(start, 6), "end_s": round(end, 6),
            "bytes": nbytes, "bits_per_second": rate(nbytes, end - start),
            "retransmits": retr, "cwnd": cwnd, "rtt_us": info.get("rtt"),
            "sender": stream.sender, "omitted": omitted}


def summary_records(rows: list[dict], direction: str, reverse: bool) -> list[dict]:
    """Per stream rows of one direction, then their sum (stream null)."""
    records = []
    for row in rows:
        records.append({"type": "summary", "direction": direction, "reverse": reverse, **row})
    if rows:
        seconds = max(r["end_s"] - r["start_s"] for r in rows)
        total = sum(r["bytes"] for r in rows)
        retr = [r["retransmits"] for r in rows if r["retransmits"] is not None]
        total_row = {"type": "summary", "direction": direction, "reverse": reverse,
                     "stream": None, "start_s": 0.0, "end_s": round(seconds, 6),
                     "bytes": total, "bits_per_second": rate(total, seconds),
                     "retransmits": sum(retr) if retr else None}
        if "packets" in rows[0]:
            total_row.update(udp_fields(sum(r["packets"] for r in rows),
                                        sum(r["lost_packets"] for r in rows),
                                        sum(r["jitter_ms"] for r in rows) / len(rows)))
        records.append(total_row)
    return records


def udp_fields(packets: int, lost: int, jitter_ms: float) -> dict:
    return {"packets": packets, "lost_packets": lost, "jitter_ms": jitter_ms,
            "lost_percent": lost * 100 / packets if packets else 0.0}


def summary_row(sid: int, seconds: float, nbytes: int, retr) -> dict:
    return {"stream": sid, "start_s": 0.0, "end_s": round(seconds, 6), "bytes": nbytes,
            "bits_per_second": rate(nbytes, seconds),
            # iperf3 writes "none" as -1, some builds as its unsigned 64-bit twin
            "retransmits": retr if isinstance(retr, int) and 0 <= retr < 1 << 32 else None}
