"""How `inspect --counters` draws the kernel counters."""

from __future__ import annotations

from pysock.render.records import Column


def _flag_style(record: dict) -> str | None:
    return "bold red" if record.get("flag") else None


def _mark(flag) -> str:
    return "!" if flag else ""


def _rate(value) -> str:
    return "-" if value is None else f"{value:g}"


def counter_columns(interval: bool) -> list[Column]:
    columns = [Column("flag", "!", fmt=_mark, style=_flag_style),
               Column("name", "Counter", style=_flag_style),
               Column("value", "Value", "right")]
    if interval:
        columns += [Column("delta", "Delta", "right", style=_flag_style),
                    Column("per_s", "Per s", "right", fmt=_rate)]
    return columns + [Column("about", "Meaning", fmt=lambda v: v or "")]
