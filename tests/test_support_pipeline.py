"""Claim support end to end, on a hand-checked set built from the shipped briefing.

``tests/data/support/cases.json`` lists, for 36 footnotes of ``sources/kazakhstan-2020.md``,
a page written in the source's language (Russian, Kazakh, English, two PDFs, a dead link),
the level a careful reader gives it and which of the claim's required facts the page holds.
The test writes a briefing whose claims are the real briefing's sentences for those
footnotes, citing the pages on a loopback server, runs ``archiver run`` in-process, and
compares ``report.json``'s ``support`` with the hand-checked answers. Then a ``check``
against a page that changed reports the drop, and the HTML and Markdown show it.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from archiver.parse import read_document
from tests.test_pagetext_pdf import make_pdf
from tests.test_run import call, read_back
from tests.webserver import Reply, WebServer

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "support"
CASES = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]
HTML = "text/html; charset=utf-8"

PDF_TEXT = [
    ["Kazakhstan: reinforced authoritarianism",
     "In October 2018 the poet Kenzhebek Abishev, a supporter of the DVK,",
     "was sentenced to seven years in prison for propagating terrorism",
     "under Article 256 of the Criminal Code, after a trial of three DVK supporters."],
]


def _claims() -> dict[int, str]:
    document = read_document(REPO / "sources" / "kazakhstan-2020.md")
    return {f.number: f.claims[0].text for f in document.footnotes if f.claims}


def _serve(web: WebServer) -> dict[int, str]:
    """Route every case's page; the URL each footnote cites."""
    urls = {}
    for case in CASES:
        number, page = case["footnote"], case["page"]
        path = f"/fn{number}/page"
        if page == "pdf:text":
            reply = Reply(200, make_pdf(PDF_TEXT, title="IPHR report"),
                          {"Content-Type": "application/pdf"})
        elif page == "pdf:scan":
            # A scanned report: pages, but no text layer.
            reply = Reply(200, make_pdf([[]], title="Scanned report"),
                          {"Content-Type": "application/pdf"})
        elif page == "status:404":
            reply = Reply(404, b"<html><body><h1>Not found</h1></body></html>",
                          {"Content-Type": HTML})
        else:
            reply = Reply(200, (DATA / "pages" / page).read_bytes(), {"Content-Type": HTML})
        web.route(path, reply)
        urls[number] = web.url(path)
    return urls


def _project(root: Path, urls: dict[int, str], claims: dict[int, str]) -> Path:
    """A briefing of the chosen footnotes' claim sentences, each its own paragraph."""
    (root / "sources").mkdir()
    body = "\n\n".join(f"{claims[n]}[^{n}]" for n in urls)
    notes = "\n".join(f"[^{n}]: See <{url}>." for n, url in urls.items())
    (root / "sources" / "brief.md").write_text(f"# Kazakhstan 2020\n\n{body}\n\n{notes}\n",
                                              encoding="utf-8")
    config = root / "sources.toml"
    config.write_text(
        '[[sources]]\nid = "brief"\npath = "sources/brief.md"\ntitle = "Kazakhstan 2020"\n'
        "published = 2020-11-01\n\n"
        "[fetch]\ntimeout = 5\nretries = 1\nallow_private_networks = true\n"
        "host_interval = 0\ndeadline = 60\nbackoff_base = 0.01\nbackoff_max = 0.05\n\n"
        "[rescue]\nenabled = false\n", encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def claims() -> dict[int, str]:
    return _claims()


def test_hand_checked_set_from_the_briefing(tmp_path: Path, web: WebServer,
                                            claims: dict[int, str]) -> None:
    urls = _serve(web)
    config = _project(tmp_path, urls, claims)
    # The briefing we wrote reads back with the real claims, so the facts are the real ones.
    written = read_document(tmp_path / "sources" / "brief.md")
    assert {f.number: f.claims[0].text for f in written.footnotes} == \
        {n: claims[n] for n in urls}

    code, out, err = call("run", "--config", str(config))
    assert code in (0, 1), out + err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    support = {(s["footnote"], s["url"]): s for s in report["support"]}
    assert len(support) == len(CASES)
    assert "paraphrase" in report["support_rule"]

    wrong = []
    tally: dict[str, list[int]] = {}
    for case in CASES:
        entry = support[(case["footnote"], urls[case["footnote"]])]
        required = [f for f in entry["facts"] if f["required"]]
        found = sorted(f["text"] for f in required if f["found"])
        missing = sorted(f["text"] for f in required if not f["found"])
        # Without text nothing is found, and nothing is called missing from the page.
        right = (entry["level"] == case["level"] and found == sorted(case["found"])
                 and (case["level"] == "unknown" or missing == sorted(case["missing"])))
        tally.setdefault(case["level"], [0, 0])
        tally[case["level"]][0] += right
        tally[case["level"]][1] += 1
        if not right:
            wrong.append((case["footnote"], case["level"], entry["level"], found, missing))
        for fact in entry["facts"]:
            # The contract's fields, and a passage that holds what matched.
            assert {"text", "kind", "found", "passage"} <= fact.keys()
            assert fact["kind"] in {"person", "organisation", "place", "date", "number",
                                    "amount", "law", "quote"}
            if fact["found"]:
                assert fact["matched"] and fact["matched"] in fact["passage"]
            else:
                assert fact["passage"] is None
            claim = claims[case["footnote"]]
            assert claim[fact["start"]:fact["end"]] == fact["text"]
    # Every supported and unsupported right; partial right at least 9 in 10.
    assert tally["supported"][0] == tally["supported"][1] == 18, wrong
    assert tally["unsupported"][0] == tally["unsupported"][1] == 6, wrong
    assert tally["unknown"][0] == tally["unknown"][1] == 2, wrong
    assert tally["partial"][1] == 10
    assert tally["partial"][0] >= 9, wrong
    assert report["summary"]["support"] == {"supported": 18, "partial": 10,
                                            "unsupported": 6, "unknown": 2}

    # The evidence is the capture in our WARCs, and those WARCs are sound.
    by_number = {s["footnote"]: s for s in report["support"]}
    assert by_number[83]["evidence"] == {"origin": "ours", "kind": "pdf"}
    assert by_number[82]["level"] == "unknown" and by_number[82]["evidence"]["kind"] == "pdf"
    assert by_number[74]["evidence"] is None
    assert "no readable text" in by_number[74]["reason"]
    records = read_back(tmp_path)
    assert sum(1 for t, _ in records if t == "response") >= len(CASES)

    # The HTML shows the facts and passages, escaped; the Markdown lists what is missing.
    page = (tmp_path / "reports" / "brief" / "report.html").read_text(encoding="utf-8")
    assert 'id="support"' in page
    assert '<mark class="fact k-amount"' in page
    assert html.escape("Серикжана Билаша", quote=True) in page
    # No passage text is injected as markup: every <q> holds escaped text only.
    for passage in re.findall(r'<q class="passage">(.*?)</q>', page):
        assert "<" not in passage.replace("<mark>", "").replace("</mark>", "")
    md = (tmp_path / "reports" / "brief" / "report.md").read_text(encoding="utf-8")
    assert "## Claim support" in md and "missing 83 340 KZT" in md


def test_check_reports_a_page_that_no_longer_holds_the_facts(
        tmp_path: Path, web: WebServer, claims: dict[int, str]) -> None:
    page = (DATA / "pages" / "fn51-ru-supported.html").read_bytes()
    web.route("/fn51/page", Reply(200, page, {"Content-Type": HTML}))
    urls = {51: web.url("/fn51/page")}
    config = _project(tmp_path, urls, claims)
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err

    # The article is edited: the sum is gone.
    edited = page.decode("utf-8").replace("138&nbsp;900 тенге", "крупную сумму")
    web.route("/fn51/page", Reply(200, edited.encode("utf-8"), {"Content-Type": HTML}))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0, out + err
    data = json.loads(out)
    drops = [c for c in data["changes"] if c["kind"] == "support_dropped"]
    assert len(drops) == 1, data["changes"]
    assert drops[0]["url"] == urls[51] and drops[0]["verdict"] == "ok"
    assert "no longer mentions 138 900 KZT" in drops[0]["reason"]
    assert "supported → partial" in drops[0]["reason"]
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert [s["level"] for s in report["support"]] == ["partial"]
    assert any(c["kind"] == "support_dropped" for c in report["changes"])

    # `archiver report` rebuilds the same support from the catalog, without the network.
    code, out, err = call("report", "--config", str(config))
    assert code == 0, out + err
    rebuilt = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert rebuilt["support"] == report["support"]

    # A second check with nothing new reports nothing.
    code, out, err = call("check", "--config", str(config))
    assert code == 0 and "claim support dropped" not in out, out + err


def test_a_dead_link_is_checked_against_the_rescued_copy(tmp_path: Path, web: WebServer,
                                                         claims: dict[int, str]) -> None:
    from tests.test_rescue_run import archive_at
    from tests.wayback_server import WaybackServer

    web.route("/fn51/page", Reply(404, b"<html><body>Not Found</body></html>",
                                  {"Content-Type": HTML}))
    web.route("/fn14/page", Reply(404, b"<html><body>Not Found</body></html>",
                                  {"Content-Type": HTML}))
    urls = {51: web.url("/fn51/page"), 14: web.url("/fn14/page")}
    config = _project(tmp_path, urls, claims)
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(urls[51], "20200820093012",
                    body=(DATA / "pages" / "fn51-ru-supported.html").read_bytes())
        wayback.add(urls[14], "20200820093012",
                    body=(DATA / "pages" / "fn14-ru-supported.html").read_bytes())
        text = config.read_text().replace("[rescue]\nenabled = false\n",
                                          "[rescue]\nenabled = true\n"
                                          + archive_at(archive_host.origin))
        config.write_text(text)
        code, out, err = call("run", "--config", str(config), "--rescue-capture")
        assert code in (0, 1), out + err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    support = {s["footnote"]: s for s in report["support"]}
    links = {link["url"]: link for link in report["links"]}
    assert links[urls[51]]["evidence"] == "ours" and links[urls[14]]["evidence"] == "ours"
    # Both were rescued into our WARCs: both are read from the Internet Archive's copy,
    # never from our capture of the 404 page.
    assert support[51]["evidence"] == {"origin": "internet_archive", "kind": "html"}
    assert support[51]["level"] == "supported"
    assert support[14]["level"] == "supported"
    read_back(tmp_path)


def test_a_dead_link_without_a_copy_is_unknown_not_unsupported(
        tmp_path: Path, web: WebServer, claims: dict[int, str]) -> None:
    web.route("/fn51/page", Reply(404, b"<html><body>Not Found: Bilash</body></html>",
                                  {"Content-Type": HTML}))
    urls = {51: web.url("/fn51/page")}
    config = _project(tmp_path, urls, claims)
    code, out, err = call("run", "--config", str(config))
    assert code in (0, 1), out + err
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    [entry] = report["support"]
    assert entry["level"] == "unknown" and entry["evidence"] is None
    assert not any(f["found"] for f in entry["facts"])
