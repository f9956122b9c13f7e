"""Truncated captures are reported as incomplete, never as healthy evidence.

A body cut by the deadline (a drip-fed page), a body shorter than its ``Content-Length`` (the
connection closed early) and a body over ``max_body`` are archived with ``WARC-Truncated``;
the verdict is ``incomplete`` (not healthy) instead of ``ok``, the reason says how the body
was cut, and every report format says so. End to end through ``archiver run`` against a real
loopback server; every WARC is read back with warcio.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from archiver.classify import classify
from archiver.config import CheckSettings
from archiver.history import link_status
from archiver.models import Capture, Hop, LinkState, Verdict
from archiver.report.render_md import md_text
from tests.test_run import ARTICLE, call, make_project, read_back
from tests.webserver import Reply, Request, WebServer, drip

BIG = bytes(range(256)) * 40  # 10240 bytes
SHORT = b"<html><p>" + b"y" * 91  # 100 bytes of the 1000 announced


def short_body(req: Request) -> None:
    """Announce 1000 bytes, send 100, close."""
    w = req.handler.wfile
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n"
            + SHORT)
    w.flush()
    req.handler.close_connection = True


def project(root: Path, urls: list[str]) -> Path:
    """``make_project`` with a 1 s per-URL deadline and a 1000-byte body cap."""
    config = make_project(root, urls)
    text = config.read_text(encoding="utf-8")
    assert "deadline = 20\n" in text
    config.write_text(text.replace("deadline = 20\n", "deadline = 1\nmax_body = 1000\n"),
                      encoding="utf-8")
    return config


def test_truncated_captures_are_incomplete_in_every_report_format(tmp_path: Path,
                                                                  web: WebServer) -> None:
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html; charset=utf-8"}))
    web.route("/drip", drip(total=1000, interval=0.05))
    web.route("/short", short_body)
    web.route("/big", Reply(200, BIG, {"Content-Type": "application/octet-stream"}))
    urls = [web.url("/article"), web.url("/drip"), web.url("/short"), web.url("/big")]
    code, out, err = call("run", "--config", str(project(tmp_path, urls)))
    assert code == 0, out + err

    folder = tmp_path / "reports" / "brief"
    links = {link["url"]: link for link in
             json.loads((folder / "report.json").read_text())["links"]}
    article = links[urls[0]]
    assert article["verdict"] == "ok"
    assert article["reason"].startswith("answers 200 with content")
    assert "incomplete" not in article["reason"]

    expected = {
        urls[1]: ("time", r"body cut at (\d+) of 1000 bytes \(deadline or stall\)"),
        urls[2]: ("disconnect", r"body cut at (100) of 1000 bytes \(connection closed\)"),
        urls[3]: ("length", r"body cut at (1000) of 10240 bytes \(over the max_body limit\)"),
    }
    kept: dict[str, int] = {}
    for url, (why, pattern) in expected.items():
        link = links[url]
        assert link["verdict"] == "incomplete", link["reason"]
        assert link["truncated"] == why
        # (the soft-404 probe's finding, "a random path on this host answers 404", may come
        # between the two parts)
        found = re.fullmatch(r"answers 200 with content(?:; [^,]+)?, but the capture is "
                             r"incomplete: " + pattern, link["reason"])
        assert found, link["reason"]
        kept[url] = int(found.group(1))
        # Not healthy, so a copy would be looked for; rescue is off here, so it was not.
        assert link["evidence"] == "unknown"

    # The WARC says the same: each capture record is marked, and holds what the reason says.
    for url, (why, _) in expected.items():
        capture = links[url]["capture"]
        with (tmp_path / capture["warc"]).open("rb") as fh:
            fh.seek(capture["offset"])
            record = next(iter(ArchiveIterator(fh)))
            assert record.rec_type == "response"
            assert record.rec_headers.get_header("WARC-Target-URI") == url
            assert record.rec_headers.get_header("WARC-Truncated") == why
            payload = record.content_stream().read()
        assert len(payload) == kept[url]
        if url == urls[2]:
            assert payload == SHORT
        if url == urls[3]:
            assert payload == BIG[:1000]
    assert 5 <= kept[urls[1]] < 1000
    read_back(tmp_path)

    md = (folder / "report.md").read_text(encoding="utf-8")
    html = (folder / "report.html").read_text(encoding="utf-8")
    with (folder / "links.csv").open(newline="", encoding="utf-8") as fh:
        rows = {row["url"]: row for row in csv.DictReader(fh)}
    for url in expected:
        reason = links[url]["reason"]
        assert rows[url]["verdict"] == "incomplete" and rows[url]["reason"] == reason
        assert md_text(reason) in md
        assert reason in html
    assert "Incomplete capture" in html and 'data-verdict="incomplete"' in html
    assert rows[urls[0]]["verdict"] == "ok" and article["truncated"] is None


def _capture(status: int, truncated: str | None, body: bytes, body_bytes: int,
             headers: tuple[tuple[str, str], ...] = ()) -> Capture:
    url = "https://example.org/news/2020/article"
    return Capture(url=url, final_url=url, status=status,
                   hops=(Hop(url=url, status=status, headers=headers),),
                   content=body, content_type="text/html", payload_digest="sha1:X",
                   captured_at=datetime(2026, 1, 1, tzinfo=UTC), truncated=truncated,
                   body_bytes=body_bytes)


def test_a_cut_page_that_is_not_healthy_keeps_its_verdict_and_says_it_is_cut() -> None:
    page = b"<html><head><title>Not Found</title></head><body><h1>Not Found</h1>"
    judged = classify(_capture(404, "disconnect", page, len(page),
                               (("Content-Length", "5000"),)))
    assert judged.verdict is Verdict.NOT_FOUND
    assert judged.reason == ("the site says the page does not exist (HTTP 404); the capture is "
                             f"incomplete: body cut at {len(page)} of 5000 bytes "
                             "(connection closed)")


def test_a_whole_capture_is_untouched_and_incomplete_is_not_healthy() -> None:
    body = b"<html><body><main><p>" + b"Evidence. " * 100 + b"</p></main></body></html>"
    judged = classify(_capture(200, None, body, len(body)))
    assert judged.verdict is Verdict.OK and judged.reason == "answers 200 with content"
    assert not Verdict.INCOMPLETE.healthy and not Verdict.INCOMPLETE.network_level
    cut = classify(_capture(200, "time", body, len(body)))
    assert cut.verdict is Verdict.INCOMPLETE
    assert cut.reason == (f"answers 200 with content, but the capture is incomplete: body cut "
                          f"at {len(body)} bytes (deadline or stall)")



def test_a_link_whose_captures_keep_being_cut_is_failing_never_dead() -> None:
    # The site answers with content every time; only our copy is cut. Not evidence of death.
    @dataclass(frozen=True)
    class Result:
        verdict: Verdict
        checked_at: datetime
        outage: bool = False

    start = datetime(2026, 1, 1, tzinfo=UTC)
    rules = CheckSettings(dead_after=3, dead_after_days=3)
    cut = [Result(Verdict.INCOMPLETE, start + timedelta(days=d)) for d in range(6)]
    status = link_status(cut, rules)
    assert status.state is LinkState.FAILING and status.consecutive_failures == 6
    # The same streak of a dead answer is dead: the rule is about the verdict.
    gone = [Result(Verdict.NOT_FOUND, r.checked_at) for r in cut]
    assert link_status(gone, rules).state is LinkState.DEAD
