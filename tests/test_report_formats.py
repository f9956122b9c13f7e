"""The report's renderers: JSON (the contract's shape), CSV, Markdown and static HTML checks.

Each renders the sample report (the shipped briefing plus synthetic links with every verdict,
mementos, missing captures, changes, an offline note and a hostile page title and URL).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections import Counter
from datetime import UTC
from html.parser import HTMLParser

import pytest
from bs4 import BeautifulSoup

from archiver.models import (
    Change,
    Claim,
    Document,
    Footnote,
    LinkRecord,
    Source,
    Verdict,
    WarcRef,
    isoformat,
)
from archiver.report import build_report, render_csv, render_html, render_json, render_md
from archiver.report.model import Report
from archiver.report.render_csv import CSV_COLUMNS, safe_cell
from archiver.report.render_html import replay_url
from tests.report_samples import (
    GENERATED,
    HEALTHY_URL,
    HOSTILE,
    HOSTILE_URL,
    JS_URL,
    LOST_URL,
    MEMENTO_URL,
    OFFLINE_NOTE,
    RESCUED_URL,
    UNCHECKED_URL,
    evidence_report,
    long_strings_report,
    sample_report,
    supported_report,
)

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
VERDICTS = {v.value for v in Verdict}


@pytest.fixture(scope="module")
def report():
    return sample_report()


# ── JSON ─────────────────────────────────────────────────────────────────────────


def test_json_has_the_contract_shape(report) -> None:
    data = json.loads(render_json(report))
    assert {"source", "generated_at", "footnotes", "findings", "links"} <= set(data)
    source = data["source"]
    assert source["id"] == "kazakhstan-2020"
    assert source["path"] == "sources/kazakhstan-2020.md"
    assert isinstance(source["title"], str) and source["title"]
    assert source["published"] == "2020-11-01"
    assert data["generated_at"] == "2026-11-25T12:00:00Z"

    assert len(data["footnotes"]) == len(report.document.footnotes)
    for note in data["footnotes"]:
        assert set(note) == {"number", "text", "urls", "claims"}
        assert isinstance(note["number"], int) and isinstance(note["text"], str)
        assert all(isinstance(u, str) for u in note["urls"])
        for claim in note["claims"]:
            assert set(claim) == {"text", "line"}
            assert isinstance(claim["text"], str) and isinstance(claim["line"], int)
    for finding in data["findings"]:
        assert {"code", "severity", "footnote", "line", "message"} <= set(finding)
        assert finding["severity"] in ("error", "warning", "info")

    # One entry per distinct cited URL, in the document's order.
    assert [link["url"] for link in data["links"]] == list(report.document.urls)
    for link in data["links"]:
        assert {"url", "footnotes", "verdict", "http_status", "final_url", "attempts",
                "capture", "memento"} <= set(link)
        assert link["verdict"] is None or link["verdict"] in VERDICTS
        assert all(isinstance(n, int) for n in link["footnotes"]) and link["footnotes"]
        assert link["http_status"] is None or isinstance(link["http_status"], int)
        assert isinstance(link["attempts"], int)
        if link["capture"] is not None:
            capture = link["capture"]
            assert {"warc", "offset", "length", "record_id", "captured_at"} <= set(capture)
            assert capture["warc"].startswith("archive/")
            assert isinstance(capture["offset"], int) and isinstance(capture["length"], int)
            assert capture["record_id"].startswith("<urn:uuid:")
            assert TIME.match(capture["captured_at"])
        if link["memento"] is not None:
            assert link["memento"]["url"].startswith("http://web.archive.org/web/")
            assert TIME.match(link["memento"]["datetime"])
    assert any(link["capture"] is None for link in data["links"])
    assert any(link["memento"] is not None for link in data["links"])


def test_json_footnote_matches_the_document(report) -> None:
    data = json.loads(render_json(report))
    first = report.document.footnotes[0]
    assert data["footnotes"][0] == {
        "number": first.number, "text": first.text, "urls": list(first.urls),
        "claims": [{"text": c.text, "line": c.line} for c in first.claims],
    }


def test_json_extra_fields(report) -> None:
    data = json.loads(render_json(report))
    assert data["notes"] == [OFFLINE_NOTE]
    assert data["summary"]["by_verdict"] == dict(report.summary.by_verdict)
    assert data["summary"]["claims"] == len(report.document.claims)
    assert [c["kind"] for c in data["changes"]] == [c.kind.value for c in report.changes]
    assert data["run"]["started"] == "2026-11-25T12:00:00Z"
    unsupported = {u["footnote"] for u in data["unsupported"]}
    assert unsupported == {e.number for e in report.entries if not e.footnote.urls and e.claims}
    hostile = next(link for link in data["links"] if link["url"] == HOSTILE_URL)
    assert hostile["title"] == HOSTILE  # JSON keeps the data; escaping is the HTML's job
    failing = next(link for link in data["links"] if link["state"] == "failing")
    assert TIME.match(failing["failing_since"])


def test_json_of_an_unchecked_link_says_null() -> None:
    document = Document("/x.md", "t", (Footnote(1, "n", ("https://a.example/",), 3,
                                                (Claim(1, "c", 2),)),))
    data = json.loads(render_json(build_report(Source("s", "/x.md"), document, [],
                                               generated_at=GENERATED)))
    assert data["links"] == [dict(data["links"][0], verdict=None, capture=None, memento=None)]
    assert data["source"]["published"] is None


# ── CSV ──────────────────────────────────────────────────────────────────────────


def test_csv_has_one_row_per_footnote_url_pair(report) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    pairs = sorted((n.number, u) for n in report.document.footnotes for u in n.urls)
    # Hostile cells are prefixed; compare URLs with the prefix undone.
    got = sorted((int(r["footnote"]), r["url"]) for r in body)
    assert got == pairs
    by_url = {r["url"]: r for r in body}
    for link in report.links:
        row = by_url[link.url]
        assert row["verdict"] == (link.verdict.value if link.verdict else "unchecked")
        assert row["http_status"] == ("" if link.http_status is None else str(link.http_status))
        if link.capture:
            assert row["warc"] == link.capture.path
            assert row["offset"] == str(link.capture.offset)
            assert row["captured_at"] == isoformat(link.captured_at)
        else:
            assert row["warc"] == row["offset"] == row["record_id"] == ""
        if link.memento:
            assert row["memento_url"] == link.memento.url


def test_csv_is_safe_from_formula_injection() -> None:
    evil = "=HYPERLINK(\"http://evil.example\",\"click\")"
    document = Document("/x.md", "t", (
        Footnote(1, "n", ("https://a.example/",), 3, (Claim(1, "+1 then -2 " + evil, 2),)),))
    link = LinkRecord(url="https://a.example/", footnotes=(1,), verdict=Verdict.BLOCKED,
                      reason="@SUM(1+1)", final_url="-2+3")
    rows = list(csv.reader(io.StringIO(render_csv(
        build_report(Source("s", "/x.md"), document, [link], generated_at=GENERATED)))))
    row = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert row["reason"] == "'@SUM(1+1)"
    assert row["final_url"] == "'-2+3"
    assert row["claim"].startswith("'+1 then -2")
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@"))
    assert safe_cell("=1") == "'=1" and safe_cell("\t=1") == "'\t=1"
    assert safe_cell(-3) == "-3" and safe_cell(None) == "" and safe_cell("ok") == "ok"


# ── Markdown ─────────────────────────────────────────────────────────────────────


def test_markdown_leads_with_the_summary(report) -> None:
    text = render_md(report)
    first = text.splitlines()[0]
    s = report.summary
    assert first.startswith("**kazakhstan-2020**")
    assert f"{s.claims} claims, {s.footnotes} footnotes, {s.urls} URLs" in first
    assert f"{s.healthy} healthy, {s.failing} failing" in first
    # The offline note comes before any footnote.
    assert text.index(OFFLINE_NOTE) < text.index("## Footnotes")
    assert text.index("## What changed since the last check") < text.index("## Footnotes")
    for entry in report.entries:
        assert f"### Footnote {entry.number}\n" in text


def test_markdown_says_when_no_archived_copy_exists(report) -> None:
    text = render_md(report)
    footnotes_part = text[text.index("## Footnotes"):]
    lost = [link for link in report.links
            if link.verdict and not link.verdict.healthy and not link.memento]
    assert lost
    assert footnotes_part.count("no archived copy found") == sum(len(x.footnotes) for x in lost)
    memento = next(link for link in report.links if link.memento)
    assert f"<{memento.memento.url}>" in text


def test_markdown_escapes_hostile_text(report) -> None:
    text = render_md(report)
    # Every "<" of the hostile text is backslash-escaped, so no renderer sees a tag.
    assert re.search(r"(?<!\\)<(script|img|/script)", text) is None
    assert "\\<script\\>" in text
    assert f"<{JS_URL}>" not in text  # never an autolink
    assert "Unsupported by web evidence" in text


# ── HTML (static checks; the browser test opens it for real) ────────────────────


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_with_a_strict_csp(report) -> None:
    page = render_html(report)
    soup = BeautifulSoup(page, "lxml")
    csp = soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
    assert "default-src 'none'" in csp
    style = soup.find("style").string
    script = soup.find("script").string

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"style-src {digest(style)}" in csp
    assert f"script-src {digest(script)}" in csp
    assert len(soup.find_all("script")) == 1 and len(soup.find_all("style")) == 1
    assert soup.find_all(["link", "img", "iframe", "object", "embed", "base"]) == []
    parser = _Collect()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert "src" not in attrs, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "style" not in attrs, tag  # would need 'unsafe-inline'


def test_html_escapes_everything_from_the_web(report) -> None:
    page = render_html(report)
    assert HOSTILE not in page
    assert "<script>window.__pwned" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    soup = BeautifulSoup(page, "lxml")
    cites = [c.get_text() for c in soup.find_all("cite")]
    assert HOSTILE in cites  # shown to the reader as text
    hrefs = [a["href"] for a in soup.find_all("a")]
    assert not any(h.strip().lower().startswith(("javascript:", "data:", "vbscript:"))
                   for h in hrefs)
    assert soup.find(attrs={"data-originalurl": JS_URL}).name == "span"


def test_html_lists_claims_in_document_order_with_deep_links(report) -> None:
    soup = BeautifulSoup(render_html(report), "lxml")
    items = soup.select("ol.entries > li.fn")
    assert [li["id"] for li in items] == [e.anchor for e in report.entries]
    assert len({li["id"] for li in items}) == len(items)
    for entry, li in zip(report.entries, items, strict=True):
        assert li.select_one("a.fn-num")["href"] == f"#{entry.anchor}"
        claims = [q.p.get_text() for q in li.select("blockquote.claim")]
        assert claims == [c.text for c in entry.claims]
        assert set(li["data-verdicts"].split()) == set(entry.keys)
        if not entry.footnote.urls:
            assert "unsupported by web evidence" in li.get_text()
        if not entry.claims:
            assert "No marker" in li.get_text()
    summary = soup.select_one("#summary")
    assert summary.select_one('[data-count="claims"]').get_text() == str(report.summary.claims)
    assert summary.select_one('[data-count="urls"]').get_text() == str(len(report.document.urls))
    assert len(summary.select("svg rect.bar")) == len(report.summary.by_verdict)


def test_html_carries_robust_links_and_archived_copies(report) -> None:
    soup = BeautifulSoup(render_html(report), "lxml")
    for link in report.links:
        marks = soup.find_all(attrs={"data-originalurl": link.url})
        assert marks, link.url
        for mark in marks:
            if link.memento is not None:
                assert mark["data-versionurl"] == link.memento.url
                assert mark["data-versiondate"] == isoformat(link.memento.datetime)
            elif link.capture is not None:
                assert mark["data-versionurl"] == replay_url(link.url, link.captured_at)
                assert mark["data-versiondate"] == isoformat(link.captured_at)
            else:
                assert not mark.has_attr("data-versionurl")
    captured = next(x for x in report.links if x.capture is not None)
    assert soup.find("a", href=replay_url(captured.url, captured.captured_at))
    assert captured.capture.record_id in soup.get_text()
    ok = next(x for x in report.links if x.excerpt)
    assert ok.excerpt in soup.get_text()
    assert "No archived copy found" in soup.get_text()


def test_html_shows_notes_and_changes_only_when_present(report) -> None:
    soup = BeautifulSoup(render_html(report), "lxml")
    assert soup.select_one(".notes").get_text() == OFFLINE_NOTE
    assert len(soup.select("#changes tbody tr")) == len(report.changes)
    quiet = BeautifulSoup(render_html(sample_report(notes=(), changes=False)), "lxml")
    assert quiet.select_one(".notes") is None and quiet.select_one("#changes") is None


def test_html_of_an_empty_document() -> None:
    empty = build_report(Source("s", "/x.md"), Document("/x.md", "t", ()), [],
                         generated_at=GENERATED)
    soup = BeautifulSoup(render_html(empty), "lxml")
    assert soup.select("li.fn") == []
    assert "No cited URLs" in soup.get_text()
    assert json.loads(render_json(empty))["links"] == []
    assert render_csv(empty).splitlines() == [",".join(CSV_COLUMNS)]
    assert render_md(empty).startswith("**s**: 0 claims")


# ── Evidence recovered (every format) ───────────────────────────────────────────

# The columns links.csv had before the evidence columns were appended; they must not move.
OLD_CSV_COLUMNS = (
    "source", "footnote", "url", "verdict", "reason", "http_status", "final_url", "state",
    "captured_at", "warc", "offset", "length", "record_id", "memento_url", "memento_datetime",
    "claim",
)
OLD_LINK_KEYS = {"url", "footnotes", "verdict", "reason", "http_status", "final_url",
                 "attempts", "capture", "memento", "rescued", "state", "failing_since",
                 "checked_at", "title", "excerpt"}
EXPECTED = {  # url: (evidence, memento_offset_days)
    RESCUED_URL: ("ours", -4),
    MEMENTO_URL: ("internet_archive", 12),
    LOST_URL: ("none", None),
    HEALTHY_URL: (None, None),
    UNCHECKED_URL: (None, None),
}


@pytest.fixture(scope="module")
def evidence():
    return evidence_report()


def test_json_says_per_link_where_the_evidence_is(evidence) -> None:
    data = json.loads(render_json(evidence))
    links = {link["url"]: link for link in data["links"]}
    for url, (kind, days) in EXPECTED.items():
        assert set(links[url]) == OLD_LINK_KEYS | {"evidence", "memento_offset_days",
                                                   "truncated", "screenshot", "profile",
                                                   "browser_lost", "provenance"}
        assert links[url]["truncated"] is None  # every capture of these samples is whole
        assert (links[url]["evidence"], links[url]["memento_offset_days"]) == (kind, days)
    # The healthy link keeps its memento and capture; only the evidence fields are null.
    assert links[HEALTHY_URL]["memento"] is not None and links[HEALTHY_URL]["capture"]
    assert links[RESCUED_URL]["rescued"]["record_id"].startswith("<urn:uuid:")
    assert data["summary"]["evidence"] == {"ours": 1, "internet_archive": 1, "none": 1,
                                           "unknown": 0}
    assert data["summary"]["no_archived_copy"] == 1


def test_json_evidence_without_a_publication_date() -> None:
    data = json.loads(render_json(evidence_report(published=None)))
    links = {link["url"]: link for link in data["links"]}
    assert links[MEMENTO_URL]["evidence"] == "internet_archive"
    assert all(link["memento_offset_days"] is None for link in data["links"])


def test_json_evidence_on_the_sample_is_null_exactly_for_healthy_and_unchecked(report) -> None:
    data = json.loads(render_json(report))
    for link in data["links"]:
        failing = link["verdict"] not in (None, "ok", "redirected")
        assert (link["evidence"] is not None) == failing, link["url"]
        if link["evidence"] == "ours":
            assert link["rescued"] is not None and link["memento"] is not None
        elif link["evidence"] == "internet_archive":
            assert link["rescued"] is None and link["memento"] is not None
        elif link["evidence"] == "none":
            assert link["rescued"] is None and link["memento"] is None
            assert link["memento_offset_days"] is None
    kinds = Counter(link["evidence"] for link in data["links"] if link["evidence"])
    assert data["summary"]["evidence"] == {k: kinds[k] for k in
                                           ("ours", "internet_archive", "none", "unknown")}
    assert all(kinds.values())


def test_csv_appends_the_evidence_columns(evidence) -> None:
    rows = list(csv.reader(io.StringIO(render_csv(evidence))))
    assert tuple(rows[0]) == (*OLD_CSV_COLUMNS, "evidence", "memento_offset_days")
    assert tuple(rows[0]) == CSV_COLUMNS
    body = {row[2]: row for row in rows[1:]}
    for url, (kind, days) in EXPECTED.items():
        row = body[url]
        assert row[-2:] == ["" if kind is None else kind, "" if days is None else str(days)]
    # A negative offset is a number, not a formula: no apostrophe.
    assert body[RESCUED_URL][-1] == "-4"
    # The existing columns still say what they said.
    memento_row = dict(zip(CSV_COLUMNS, body[MEMENTO_URL], strict=True))
    assert memento_row["verdict"] == "gone" and memento_row["memento_datetime"] == (
        "2020-11-13T08:00:00Z")


def test_markdown_says_whether_evidence_was_recovered(evidence) -> None:
    text = render_md(evidence)
    assert ("Evidence recovered for the 3 failing links: ours (Internet Archive copy stored "
            "in our WARC): 1 · Internet Archive only: 1 · none (no archived copy found): 1"
            in text)
    footnotes = text[text.index("## Footnotes"):]
    blocks = dict(zip([int(n) for n in re.findall(r"^### Footnote (\d+)$", footnotes, re.M)],
                      re.split(r"^### Footnote \d+$", footnotes, flags=re.M)[1:], strict=True))
    assert ("  - Evidence recovered: Internet Archive copy from 2020-10-28, stored in our "
            "WARC (archived 4 days before publication)\n") in blocks[1]
    assert ("  - Evidence recovered: Internet Archive copy from 2020-11-13 "
            "(archived 12 days after publication)\n") in blocks[2]
    assert "  - Evidence: **no archived copy found**\n" in blocks[3]
    assert "Evidence" not in blocks[4] and "Evidence" not in blocks[5]
    attention = text[text.index("## Links that need attention"):text.index("## Footnotes")]
    assert "evidence recovered: Internet Archive copy from 2020-11-13" in attention
    assert attention.count("\n- ") == 3


def test_html_shows_an_evidence_line_per_failing_link(evidence) -> None:
    soup = BeautifulSoup(render_html(evidence), "lxml")
    lines = {}
    for item in soup.select("li.link"):
        url = item.select_one("[data-originalurl]")["data-originalurl"]
        line = item.select_one(".evidence-line")
        lines[url] = line
    assert lines[RESCUED_URL].get_text() == (
        "Evidence recovered: Internet Archive copy from 2020-10-28, stored in our WARC "
        "(archived 4 days before publication)")
    assert lines[RESCUED_URL]["data-evidence"] == "ours"
    assert lines[RESCUED_URL]["data-offset-days"] == "-4"
    assert lines[MEMENTO_URL].get_text() == (
        "Evidence recovered: Internet Archive copy from 2020-11-13 "
        "(archived 12 days after publication)")
    assert lines[MEMENTO_URL]["data-evidence"] == "internet_archive"
    assert lines[LOST_URL].get_text() == "No archived copy found"
    assert lines[LOST_URL]["data-evidence"] == "none" and "lost" in lines[LOST_URL]["class"]
    assert not lines[LOST_URL].has_attr("data-offset-days")
    assert lines[HEALTHY_URL] is None and lines[UNCHECKED_URL] is None
    summary = soup.select_one("#summary .evidence-summary")
    counts = {el["data-evidence-count"]: el.get_text()
              for el in summary.select("[data-evidence-count]")}
    assert counts == {"ours": "1", "internet_archive": "1", "none": "1", "unknown": "0"}
    assert "3 failing links" in summary.get_text()


def test_html_evidence_lines_cover_every_failing_citation(report) -> None:
    soup = BeautifulSoup(render_html(report), "lxml")
    failing = sum(1 for e in report.entries for link in e.links
                  if link.verdict is not None and not link.verdict.healthy)
    assert len(soup.select("li.link .evidence-line")) == failing
    for item in soup.select("li.link"):
        has_line = item.select_one(".evidence-line") is not None
        assert has_line == (item["data-verdict"] not in ("ok", "redirected", "unchecked"))
    s = report.summary
    for kind in ("ours", "internet_archive", "none"):
        cell = soup.select_one(f'#summary [data-evidence-count="{kind}"]')
        assert cell.get_text() == str(s.evidence_count(kind))


def test_html_has_no_evidence_summary_without_failing_links() -> None:
    document = Document("/x.md", "t", (Footnote(1, "n", ("https://a.example/",), 3,
                                                (Claim(1, "c", 2),)),))
    link = LinkRecord(url="https://a.example/", footnotes=(1,), verdict=Verdict.OK,
                      http_status=200)
    soup = BeautifulSoup(render_html(build_report(Source("s", "/x.md"), document, [link],
                                                  generated_at=GENERATED)), "lxml")
    assert soup.select(".evidence-summary, .evidence-line") == []


def test_a_quiet_check_says_nothing_changed_and_folds_still_failing() -> None:
    from archiver.models import ChangeKind
    from tests.report_samples import GENERATED, REPO, briefing_document, sample_source

    document = briefing_document()
    url = document.urls[0]
    still = [Change(url=url, kind=ChangeKind.STILL_FAILING, verdict=Verdict.NOT_FOUND,
                    previous_verdict=Verdict.NOT_FOUND, footnotes=(1,))]
    report = build_report(sample_source(), document, [], generated_at=GENERATED,
                          changes=still, root=REPO)
    md = render_md(report)
    assert "No link changed since the last check." in md
    assert "Still failing (1):" in md
    soup = BeautifulSoup(render_html(report), "html.parser")
    section = soup.find(id="changes")
    assert "No link changed since the last check." in section.get_text()
    folded = section.find("details")
    assert folded is not None and "Still failing: 1 link(s)" in folded.summary.get_text()
    assert url in folded.get_text()


# ── a failing link the archive could not be asked about ──────────────────────


@pytest.mark.parametrize("why", ["the Internet Archive could not be reached",
                                 "rescue is disabled"])
def test_a_link_not_looked_up_is_unknown_not_no_copy(why: str) -> None:
    url = "https://gone.example/page"
    document = Document("/x.md", "markdown", (Footnote(1, f"See {url}", (url,), 3,
                                                         (Claim(1, "A claim.", 2),)),))
    link = LinkRecord(url=url, footnotes=(1,), verdict=Verdict.NOT_FOUND, http_status=404,
                      reason="404 Not Found", attempts=1, checked_at=GENERATED,
                      not_looked_up=why)
    report = build_report(Source(id="x", path="/x.md", title="X"), document, [link],
                          generated_at=GENERATED)
    data = json.loads(render_json(report))
    assert data["links"][0]["evidence"] == "unknown" and data["links"][0]["memento"] is None
    assert data["summary"]["evidence"] == {"ours": 0, "internet_archive": 0, "none": 0,
                                           "unknown": 1}
    assert data["summary"]["no_archived_copy"] == 0  # not known to be lost
    soup = BeautifulSoup(render_html(report), "lxml")
    line = soup.select_one("li.link .evidence-line")
    assert line.get_text() == f"Not looked up: {why}"
    assert line["data-evidence"] == "unknown" and "lost" not in line["class"]
    assert soup.select_one('#summary [data-evidence-count="unknown"]').get_text() == "1"
    assert soup.select_one('#summary [data-evidence-count="none"]').get_text() == "0"
    text = render_md(report)
    assert f"  - Evidence: **Not looked up: {why}**\n" in text
    assert "none (no archived copy found): 0 · not looked up" in text
    assert "no archived copy found**" not in text
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    assert dict(zip(CSV_COLUMNS, rows[1], strict=True))["evidence"] == "unknown"


def test_html_links_our_captures_to_their_replay_not_to_warc_files(report) -> None:
    """An editor can open "Our capture" (the replay in ``archiver serve``, the command
    stated); the page links no file under ``archive/``, so it still works copied alone; the
    WARC file, record id, offset and length stay as text to cite."""
    soup = BeautifulSoup(render_html(report), "lxml")
    assert not [a["href"] for a in soup.find_all("a", href=True) if ".warc" in a["href"]]
    captured = [x for x in report.links if x.capture is not None]
    assert captured
    for link in captured:
        stamp = link.captured_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        href = f"http://127.0.0.1:8080/archive/{stamp}/{link.url}"
        assert replay_url(link.url, link.captured_at) == href
        anchor = soup.find("a", class_="replay", href=href)
        assert anchor is not None, href
        row = anchor.find_parent("dd").get_text(" ")
        assert "archiver serve" in row and "to open" in row
        assert link.capture.record_id in row and link.capture.path in row
        assert f"offset {link.capture.offset}" in row
    # A rescued Internet Archive copy is replayed under the address it was fetched from.
    evidence = evidence_report()
    rescued = next(x for x in evidence.links if x.rescued is not None)
    assert rescued.memento is not None and rescued.memento.raw_url
    copy = BeautifulSoup(render_html(evidence), "lxml")
    assert copy.find("a", class_="replay", href=replay_url(rescued.memento.raw_url, None))
    assert rescued.rescued.record_id in copy.get_text()
    assert "archiver serve" in soup.select_one(".page-foot").get_text()


def test_html_filter_chips_say_they_count_footnotes_and_the_chart_urls(report) -> None:
    soup = BeautifulSoup(render_html(report), "lxml")
    legend = soup.select_one("#filters legend").get_text(" ")
    assert "number of footnotes" in legend and "chart above counts URLs" in legend
    assert "distinct cited URLs" in soup.select_one(".chart figcaption").get_text()
    for chip in soup.select("#filters .check .n"):
        key = chip["data-footnote-count"]
        count = sum(1 for entry in report.entries if key in entry.keys)
        assert chip.get_text(" ").split() == [str(count), "footnotes"]


def test_html_gives_the_capture_record_id_and_payload_digest_as_text() -> None:
    url = "https://example.org/page"
    digest = "sha1:2BOSCEWUX3U7KKTB6UVMHQZCPYJ4D7WW"
    note = Footnote(number=1, text=f"See {url}", urls=(url,), line=3,
                    claims=(Claim(footnote=1, text="Claim.", line=1),))
    link = LinkRecord(url=url, footnotes=(1,), verdict=Verdict.OK, http_status=200,
                      capture=WarcRef("archive/a.warc.gz", 10, 20, "<urn:uuid:1234>"),
                      captured_at=GENERATED, checked_at=GENERATED, payload_digest=digest)
    report = build_report(Source("s", "/x.md"), Document("/x.md", "markdown", (note,)), [link],
                          generated_at=GENERATED)
    row = BeautifulSoup(render_html(report), "lxml").select_one(".evidence dd").get_text(" ")
    assert "<urn:uuid:1234>" in row and digest in row and "archive/a.warc.gz" in row


# ── Markdown and CSV written in pieces ─────────────────────────────────────────


def _reports() -> list[Report]:
    empty = build_report(Source("s", "/x.md"), Document("/x.md", "t", ()), [],
                         generated_at=GENERATED)
    return [sample_report(), sample_report(notes=(), changes=False), evidence_report(),
            long_strings_report(), empty]


@pytest.mark.parametrize("index", range(5))
def test_markdown_in_pieces_is_the_whole_text(index: int) -> None:
    """The pieces joined are the text as one join of every line makes it: each line ended by
    a newline, the blank lines at the very end dropped, control characters made visible."""
    from archiver.report.render_md import _md_pieces, render_md_chunks
    from archiver.safetext import escape_controls

    report = _reports()[index]
    lines = [line for piece in _md_pieces(report) for line in piece]
    whole = escape_controls("\n".join(lines).rstrip("\n") + "\n")
    chunks = list(render_md_chunks(report))
    assert "".join(chunks) == whole == render_md(report)
    assert len(chunks) == 1 + len(report.entries)  # one per footnote after the summary


@pytest.mark.parametrize("index", range(5))
def test_csv_in_pieces_is_the_whole_table(index: int) -> None:
    from archiver.report.render_csv import _CHUNK_ROWS, render_csv_chunks

    report = _reports()[index]
    text = render_csv(report)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) - 1 == sum(len(e.footnote.urls) for e in report.entries)
    chunks = list(render_csv_chunks(report))
    assert "".join(chunks) == text
    assert len(chunks) == (len(rows) - 1) // _CHUNK_ROWS + 1





@pytest.mark.parametrize("index", range(6))
def test_sections_written_in_pieces_do_not_depend_on_the_piece_size(
        index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim support section of report.md and the findings of report.html are the same
    text whatever the size of their pieces (pieces of one line or item cut at every
    boundary)."""
    import sys

    from archiver.report import render_support

    html_module = sys.modules["archiver.report.render_html"]
    report = [*_reports(), supported_report()][index]
    whole_md, whole_html = render_md(report), render_html(report)
    for size in (1, 2, 3, 7):
        monkeypatch.setattr(render_support, "_MD_PIECE_LINES", size)
        monkeypatch.setattr(html_module, "_FINDINGS_PER_PIECE", size)
        assert render_md(report) == whole_md
        assert render_html(report) == whole_html


def test_the_piece_test_cuts_support_lines_and_findings() -> None:
    """The reports of the test above have more support lines and findings than its
    smallest piece sizes, so it cuts them at many boundaries."""
    from archiver.report.render_support import support_md_pieces

    assert sum(map(len, support_md_pieces(supported_report()))) > 20
    assert any(len(r.document.findings) > 7 for r in _reports())
