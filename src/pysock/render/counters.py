"""How `inspect --counters` and `--interfaces` draw their rows."""

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


def _size(value) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _addrs(value) -> str:
    return " ".join(value) if value else "-"


def _speed(value) -> str:
    return "-" if not value else f"{value}Mb/s"


def interface_columns(rates: bool) -> list[Column]:
    columns = [Column("iface", "Iface"), Column("state", "State"),
               Column("mtu", "MTU", "right"), Column("speed_mbps", "Speed", "right", fmt=_speed),
               Column("duplex", "Duplex"), Column("addrs", "Addresses", fmt=_addrs),
               Column("rx_bytes", "RX bytes", "right", fmt=_size),
               Column("rx_packets", "RX pkts", "right"),
               Column("rx_errors", "RX err", "right"), Column("rx_drops", "RX drop", "right"),
               Column("tx_bytes", "TX bytes", "right", fmt=_size),
               Column("tx_packets", "TX pkts", "right"),
               Column("tx_errors", "TX err", "right"), Column("tx_drops", "TX drop", "right")]
    if rates:
        columns += [Column("rx_bytes_per_s", "RX B/s", "right", fmt=_size),
                    Column("tx_bytes_per_s", "TX B/s", "right", fmt=_size),
                    Column("rx_packets_per_s", "RX pkt/s", "right", fmt=_size),
                    Column("tx_packets_per_s", "TX pkt/s", "right", fmt=_size)]
    return columns
