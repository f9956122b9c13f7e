"""Control characters from documents and servers never reach a terminal or a report raw.

A footnote holding terminal escape sequences (ESC, the 8-bit CSI U+009B, OSC title changes),
DEL and bidi overrides, and a server answering with such a header and page title: ``extract``,
``run``, ``show --headers``/``--text``, report.md, links.csv, report.html and every JSON output
carry them only as visible escapes.
"""

from __future__ import annotations

import json
from pathlib import Path

from archiver.safetext import UNSAFE, escape_controls, json_dumps
from tests.test_run import call, make_project
from tests.webserver import Reply, WebServer

# ESC [ 31m (colour), OSC 0 (window title) ended by BEL, 8-bit CSI, DEL, RLO ... PDF, an isolate.
HOSTILE = "\x1b[31mRED\x1b]0;pwned\x07 \x9b2J \x7f \u202egnp.exe\u202c \u2066x\u2069 \r"


def _raw_controls(text: str, allowed: str = "\t\n") -> list[str]:
    return sorted({hex(ord(ch)) for ch in text if ord(ch) in UNSAFE and ch not in allowed})


def test_escape_controls_makes_every_control_visible_and_is_idempotent() -> None:
    escaped = escape_controls("a\tb\nc" + HOSTILE)
    assert _raw_controls(escaped) == []
    assert "a\tb\nc" in escaped  # layout the format allows is kept
    for visible in ("\\x1b[31m", "\\x07", "\\x9b", "\\x7f", "\\u202e", "\\u2066", "\\x0d"):
        assert visible in escaped
    assert escape_controls(escaped) == escaped
    assert escape_controls("tab\there", keep="") == "tab\\x09here"
    assert escape_controls("Ünïcödé — “quotes” ✓") == "Ünïcödé — “quotes” ✓"


def test_json_dumps_escapes_c1_del_and_bidi_and_stays_valid_json() -> None:
    text = json_dumps({"t": HOSTILE, "ok": "Ünïcödé"})
    assert _raw_controls(text, allowed="\n") == []
    assert json.loads(text) == {"t": HOSTILE, "ok": "Ünïcödé"}


def _hostile_project(root: Path, web: WebServer) -> Path:
    page = (f"<html><head><title>Title {HOSTILE}</title></head><body><main><p>Court "
            f"upholds the conviction {HOSTILE} of the activist, the appeal court said on "
            "Tuesday after a long hearing.</p></main></body></html>").encode()
    web.route("/page", Reply(200, page, [("Content-Type", "text/html; charset=utf-8"),
                                         ("X-Note", "\x1b]0;pwned\x07\x1b[2J")]))
    config = make_project(root, [web.url("/page")])
    doc = root / "sources" / "brief.md"
    text = doc.read_text(encoding="utf-8").replace("See <", f"{HOSTILE} See <")
    text = text.replace("is stated here", f"is stated {HOSTILE.strip()} here")
    doc.write_text(text, encoding="utf-8")
    return config


def test_every_text_output_escapes_controls(tmp_path: Path, web: WebServer) -> None:
    config = _hostile_project(tmp_path, web)
    doc = tmp_path / "sources" / "brief.md"

    code, out, err = call("extract", str(doc))
    assert code in (0, 1), err  # 1 while lint calls IPv4 hosts malformed
    assert "\\x1b[31mRED" in out and "\\u202egnp.exe" in out
    assert _raw_controls(out + err) == []
    code, out, _ = call("extract", str(doc), "--format", "json")
    assert _raw_controls(out, allowed="\n") == []
    assert HOSTILE.strip() in json.loads(out)["footnotes"][0]["text"]

    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    assert _raw_controls(out + err) == []

    code, out, err = call("show", web.url("/page"), "--headers", "--config", str(config))
    assert code == 0, err
    assert "X-Note: \\x1b]0;pwned\\x07\\x1b[2J" in out
    assert _raw_controls(out + err) == []
    code, out, err = call("show", web.url("/page"), "--text", "--config", str(config))
    assert code == 0 and "conviction" in out
    assert _raw_controls(out + err) == []

    reports = tmp_path / "reports" / "brief"
    md = (reports / "report.md").read_text(encoding="utf-8")
    assert "\\x1b" in md and "\\u202egnp.exe" in md and _raw_controls(md) == []
    csv_text = (reports / "links.csv").read_text(encoding="utf-8")
    assert "\\x1b[31mRED" in csv_text and _raw_controls(csv_text, allowed="\t\n\r") == []
    html_text = (reports / "report.html").read_text(encoding="utf-8")
    assert "\\u202egnp.exe" in html_text and _raw_controls(html_text) == []
    # (and, from a real run, our capture's replay link and payload digest as text)
    assert "http://127.0.0.1:8080/archive/" in html_text
    assert "payload digest <code>sha256:" in html_text
    report_json = (reports / "report.json").read_text(encoding="utf-8")
    assert _raw_controls(report_json, allowed="\n") == []
    data = json.loads(report_json)
    assert HOSTILE.strip() in data["footnotes"][0]["text"]  # the data itself is kept exactly
