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


def test_an_unchanged_page_takes_its_previous_fingerprint_without_tokenising(
        tmp_path: Path, web: WebServer, monkeypatch) -> None:
    """A check that finds a page's text exactly as the previous capture's stores that
    capture's fingerprint again (it is this text's) and tokenises nothing; a page that
    changed, or one whose previous capture has no fingerprint, is fingerprinted."""
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
    # The first check: the previous capture (the run's) has no fingerprint.
    assert call("check", "--config", str(config))[0] == 0
    [(_, first, text)] = fingerprints(tmp_path, 2)
    assert len(made) == 1 and text is not None and first == fingerprint_of(text)
    # The same page again: the same fingerprint, not made again.
    assert call("check", "--config", str(config))[0] == 0
    assert len(made) == 1
    assert fingerprints(tmp_path, 3)[0][1] == first
    # Its date changed: made again, and the same words give the same fingerprint.
    web.route("/ruling", Reply(200, article("14 April 2021, 09:05"), HTML))
    code, out, err = call("check", "--config", str(config), "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["changes"] == [] and len(made) == 2
    [(_, after, changed)] = fingerprints(tmp_path, 4)
    assert changed != text and after == first == fingerprint_of(changed or "")
