import io
import json

from pysock.render.records import Column, RecordWriter
from pysock.render.style import use_color

COLS = [Column("port", "PORT", "right"), Column("state", "STATE"), Column("rtt_ms", "RTT")]
RECS = [{"port": 22, "state": "open", "rtt_ms": 0.1234}, {"port": 23, "state": "closed",
                                                          "rtt_ms": None}]


def render(mode, **kw):
    out = io.StringIO()
    with RecordWriter(COLS, mode, stream=out, **kw) as w:
        for r in RECS:
            w.write(r)
    return out.getvalue()


def test_plain_is_tab_separated_with_header():
    assert render("plain").splitlines() == ["PORT\tSTATE\tRTT", "22\topen\t0.123", "23\tclosed\t-"]
    assert render("plain", header=False).splitlines()[0] == "22\topen\t0.123"


def test_json_lines_keep_numbers_and_nulls():
    lines = [json.loads(line) for line in render("json").splitlines()]
    assert lines == RECS


def test_table_has_no_escape_codes_without_color():
    text = render("table", color=False)
    assert "PORT" in text and "closed" in text and "\x1b[" not in text


def test_table_colors_when_asked():
    assert "\x1b[" in render("table", color=True)


def test_color_policy(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color("auto", True) and not use_color("auto", False)
    assert use_color("always", False) and not use_color("never", True)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color("auto", True)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_color("auto", True)
