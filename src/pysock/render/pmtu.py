"""trace --pmtu's output: tracepath's lines (plain and on a terminal), or JSON
records per answer and a summary with the path MTU."""

from __future__ import annotations

import sys

from pysock.probes.pmtu import PmtuHop, PmtuStart
from pysock.render.records import json_line


def line(event, names, numeric: bool) -> str:
    """One tracepath line for a walk event."""
    if isinstance(event, PmtuStart):
        return f"{1:2d}?: {'[LOCALHOST]':<49}pmtu {event.pmtu}"
    head = f"{event.hop:2d}:  "
    if event.addr is None:
        return head + "no reply"
    who = event.addr if numeric else f"{names(event.addr) or event.addr} ({event.addr})"
    text = head + f"{who:<49}{event.rtt_ns / 1e6:.3f}ms"
    if event.pmtu:
        text += f" pmtu {event.pmtu}"
    if event.reached:
        text += " reached"
    elif event.note:
        text += f" {event.note}"
    return text


def resume(pmtu: int, hops: int, reached: bool) -> str:
    if reached:
        return f"     Resume: pmtu {pmtu} hops {hops} back {hops} "
    return f"     Too many hops: pmtu {pmtu}\n     Resume: pmtu {pmtu} "


def record(event: PmtuHop) -> dict:
    return {"hop": event.hop, "addr": event.addr,
            "rtt_ms": None if event.rtt_ns is None else round(event.rtt_ns / 1e6, 3),
            "pmtu": event.pmtu, "reached": event.reached, "note": event.note}


class PmtuView:
    def __init__(self, mode: str, *, numeric: bool, names, stream=None):
        self.json, self.numeric, self.names = mode == "json", numeric, names
        self.out = stream or sys.stdout

    def event(self, event) -> None:
        if self.json:
            if isinstance(event, PmtuHop):
                self.out.write(json_line(record(event)))
        else:
            self.out.write(line(event, self.names, self.numeric) + "\n")
        self.out.flush()

    def finish(self, pmtu: int, hops: int, reached: bool) -> None:
        if self.json:
            self.out.write(json_line({"type": "summary", "pmtu": pmtu, "hops": hops,
                                       "reached": reached}))
        else:
            self.out.write(resume(pmtu, hops, reached) + "\n")
        self.out.flush()
