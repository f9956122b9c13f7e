"""``check`` compares each healthy page with the URL's previous capture in the capture stage:
the texts' fingerprints are stored with the check's captures, an unchanged page (numbers and
dates aside) is similarity 1.0, a rewritten one drifts; a ``run`` computes no fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archiver.catalog import Catalog
from archiver.history import text_fingerprint, text_similarity
from tests.test_run import call, make_project, read_back
from tests.webserver import Reply, WebServer

HTML = {"Content-Type": "text/html; charset=utf-8"}
WORDS = "The court upheld the conviction of the activist for organising a peaceful rally. "


def article(updated: str, words: str = WORDS) -> bytes:
    return (f"<html><head><title>Court ruling</title></head><body><main><h1>Court ruling</h1>"
            f"<p>Updated {updated}</p><p>{words * 30}</p></main></body></html>").encode()


def fingerprints(root: Path, run_id: int) -> list[tuple[str, str | None, str | None]]:
    with Catalog.open(root / "archive") as catalog:
        rows = catalog._read(
            "SELECT c.url, c.fingerprint, c.payload_digest FROM captures c WHERE run_id = ?",
            (run_id,))
        return [(r["url"], r["fingerprint"],
                 next(iter(s.text for s in catalog.captures(r["url"])
                           if s.payload_digest == r["payload_digest"]), None))
                for r in rows]


@pytest.mark.parametrize("workers", [1, 2])
def test_check_compares_in_the_capture_stage(tmp_path: Path, web: WebServer,
                                             workers: int) -> None:
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article("12 March 2021, 10:32"), HTML))
    config = make_project(tmp_path, [url], fetch=f"workers = {workers}\n")
    assert call("run", "--config", str(config))[0] == 0
    [(_, fingerprint, _)] = fingerprints(tmp_path, 1)
    assert fingerprint is None  # a run compares nothing

    # Only the date changed: the same words, similarity 1.0, no drift.
    web.route("/ruling", Reply(200, article("14 April 2021, 09:05"), HTML))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["changes"] == []
    [(_, fingerprint, text)] = fingerprints(tmp_path, 2)
    assert text is not None and fingerprint == text_fingerprint(text)
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert report["links"][0].get("similarity") in (None, 1.0)

    # Rewritten: the check says how much of the text is left.
    other = "Officials announced a new programme of road repairs across the region. "
    web.route("/ruling", Reply(200, article("15 April 2021", other), HTML))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code in (0, 1), out + err
    [change] = json.loads(out)["changes"]
    assert change["kind"] == "drifted"
    assert change["similarity"] == pytest.approx(
        round(text_similarity(text, fingerprints(tmp_path, 3)[0][2] or ""), 2), abs=0.01)
    assert change["similarity"] < 0.5
    read_back(tmp_path)


def test_an_unchanged_page_is_not_tokenised_and_keeps_no_fingerprint(
        tmp_path: Path, web: WebServer, monkeypatch) -> None:
    """A check that finds a page's text exactly as the previous capture's stored text
    tokenises nothing and keeps no fingerprint for it (the previous capture's may be of
    another text: the stored text is the first extracted from that payload); a page that
    changed is fingerprinted, and compared by its fingerprint as before."""
    from archiver import history

    made: list[str] = []
    fingerprint_of = history.text_fingerprint

    def counted(text: str) -> str:
        made.append(text)
        return fingerprint_of(text)

    monkeypatch.setattr(history, "text_fingerprint", counted)
    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article("12 March 2021, 10:32"), HTML))
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    assert made == []  # a run compares nothing
    # The same page: not tokenised, no fingerprint kept, no change.
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0 and json.loads(out)["changes"] == [], out + err
    [(_, first, text)] = fingerprints(tmp_path, 2)
    assert made == [] and first is None and text is not None
    # Its date changed: fingerprinted, the same words: no drift.
    web.route("/ruling", Reply(200, article("14 April 2021, 09:05"), HTML))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0 and json.loads(out)["changes"] == [], out + err
    [(_, second, changed)] = fingerprints(tmp_path, 3)
    assert len(made) == 1 and changed != text and second == fingerprint_of(changed or "")
    # Its date changed again: the fingerprints are equal, no alignment needed.
    aligned: list[tuple[str, str]] = []
    similarity = history.text_similarity
    monkeypatch.setattr(history, "text_similarity",
                        lambda a, b: aligned.append((a, b)) or similarity(a, b))
    web.route("/ruling", Reply(200, article("15 April 2021, 11:00"), HTML))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0 and json.loads(out)["changes"] == [], out + err
    assert len(made) == 2 and aligned == []
    assert fingerprints(tmp_path, 4)[0][1] == second


def test_a_payload_read_in_another_charset_is_never_given_anothers_fingerprint(
        tmp_path: Path, web: WebServer) -> None:
    """One body served under two charsets gives two texts, and the catalog keeps the first
    for that payload: a check that finds the stored text again keeps no fingerprint, so a
    later page in the other charset is compared by its words, not by a fingerprint made
    from the other text."""
    body = article("12 March 2021").replace(b"court", "суд".encode())
    url = web.url("/ruling")
    cp = {"Content-Type": "text/html; charset=windows-1251"}
    web.route("/ruling", Reply(200, body, cp))
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    for headers in (HTML, cp, HTML):
        web.route("/ruling", Reply(200, body, headers))
        code, out, err = call("check", "--config", str(config), "--format", "json")
        assert code in (0, 1), out + err
    texts = [text for _, _, text in (fingerprints(tmp_path, n)[0] for n in (2, 3, 4))]
    assert len(set(texts)) == 1  # the first text extracted from that payload
    stored = [fingerprint for _, fingerprint, _ in
              (fingerprints(tmp_path, n)[0] for n in (2, 3, 4))]
    # Check 2 (utf-8) and 4 (utf-8) read a text other than the stored one: fingerprinted;
    # check 3 (windows-1251) reads the stored text again: none kept.
    assert stored[1] is None and stored[0] == stored[2] is not None
    assert stored[0] != text_fingerprint(texts[0])


def test_a_page_that_recovers_unchanged_reports_its_similarity(tmp_path: Path,
                                                               web: WebServer) -> None:
    """A link that failed with no capture (connection reset) and answers again with the very
    text of its last capture: the ``recovered`` change says the text is 100% similar (the
    comparison made without a fingerprint is a comparison all the same)."""
    from tests.webserver import reset

    url = web.url("/ruling")
    web.route("/ruling", Reply(200, article("12 March 2021"), HTML))
    config = make_project(tmp_path, [url], fetch="workers = 0\n")
    assert call("run", "--config", str(config))[0] == 0
    web.route("/ruling", reset)
    for _ in range(3):
        assert call("check", "--config", str(config))[0] in (0, 1)
    web.route("/ruling", Reply(200, article("12 March 2021"), HTML))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code in (0, 1), out + err
    [change] = json.loads(out)["changes"]
    assert change["kind"] == "recovered" and change["similarity"] == 1.0
