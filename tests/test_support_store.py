"""Claim support kept in the catalog (``archiver.support_store``): reused only for the very
text, claims and code it was judged with, and giving the reports that judging again gives."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from archiver import pipeline, support, support_store
from archiver.support import EvidenceText
from tests.test_fast_paths import court_pages, run_briefing
from tests.test_run import call

PAGE = ("В 2020 году суд оштрафовал Айгуль Нурланову на 138 900 тенге по статье 488 в Алматы. "
        "On 18 August 2020 Amnesty International said 12 people were detained. "
        "«Мы будем бороться», — сказала она. ") * 3
CLAIMS = [
    ("On 18 August 2020 a court fined Aigul Nurlanova 138,900 tenge under Article 488.",),
    ("12 people were detained in Almaty in 2020, Amnesty International said.",
     "She said: «Мы будем бороться»."),
    ("In 2019 the court fined someone 5,000 euros under Article 400.",),
    ("Nothing checkable here.",),
]


@pytest.mark.parametrize("claims", CLAIMS)
@pytest.mark.parametrize("kind", ["html", "pdf"])
def test_a_kept_support_decodes_to_the_support_judged(claims, kind) -> None:
    judged = support.assess(7, "https://example.org/a", claims, EvidenceText(PAGE, kind, "ours"))
    assert judged.facts or claims == CLAIMS[3]
    again = support_store.decode(support_store.encode(judged), 7, "https://example.org/a",
                                 claims, kind)
    assert again == judged


@pytest.mark.parametrize("row", ["", "not json", "[]", '["supported"]', "{}",
                                 '[1, "r", []]', '["supported", "r", [[1, 2]]]',
                                 '["supported", "r", 5]',
                                 '["partial", "r", [["person", 1, 0, 1, "v", true, "r", 0, false,'
                                 ' null, null, ""]]]',
                                 '["partial", "r", [["person", "a", 0, 1, "v", 1, "r", 0, false,'
                                 ' null, null, ""]]]',
                                 '["partial", "r", [["person", "a", 0, 1, "v", true, "r", 0,'
                                 ' false, null, null]]]'])
def test_a_row_not_of_encodes_shape_is_a_miss(row: str) -> None:
    assert support_store.decode(row, 1, "u", ("c",), "html") is None


def test_the_rules_change_with_the_version_and_with_the_judging_code(tmp_path, monkeypatch,
                                                                      ) -> None:
    import archiver
    from archiver import support_match

    support_store.rules.cache_clear()
    try:
        now = support_store.rules()
        monkeypatch.setattr(archiver, "__version__", archiver.__version__ + ".1")
        support_store.rules.cache_clear()
        assert support_store.rules() != now
        monkeypatch.undo()
        changed = tmp_path / "support_match.py"
        changed.write_bytes(Path(support_match.__file__).read_bytes() + b"# changed\n")
        monkeypatch.setattr(support_match, "__file__", str(changed))
        support_store.rules.cache_clear()
        assert support_store.rules() != now
        monkeypatch.undo()
        support_store.rules.cache_clear()
        assert support_store.rules() == now
        # Another version of the morphology's dictionary: other rules.
        package = tmp_path / "morphology" / "dicts"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / "meta.json").write_text('{"version": 1}')
        monkeypatch.syspath_prepend(str(tmp_path / "morphology"))
        monkeypatch.setattr(support_store, "_MORPHOLOGY", (("dicts", ("data/meta.json",)),))
        support_store.rules.cache_clear()
        first = support_store.rules()
        (package / "data" / "meta.json").write_text('{"version": 2}')
        support_store.rules.cache_clear()
        assert support_store.rules() not in (first, now)
    finally:
        support_store.rules.cache_clear()


def test_claims_keys_tell_every_list_of_claims_apart() -> None:
    lists = [("a\0b",), ("a", "b"), ("a", ""), ("a",), ("",), (), ("a\ud800",), ("ab",),
             ('a", "b',)]
    assert len({support_store.claims_key(claims) for claims in lists}) == len(lists)


def _kept(config: Path) -> list[tuple[str, str, str, str, str, str]]:
    db = sqlite3.connect(config.parent / "archive" / "catalog.sqlite3")
    try:
        return sorted(db.execute("SELECT rules, text, kind, claims, judged, used "
                                 "FROM judged_supports").fetchall())
    finally:
        db.close()


def _execute(config: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(config.parent / "archive" / "catalog.sqlite3")
    try:
        db.execute(sql, params)
        db.commit()
    finally:
        db.close()


def _counting(monkeypatch) -> list[tuple[int, str]]:
    """Every (footnote, URL) ``support.assess`` judges from now on, in this process."""
    judged: list[tuple[int, str]] = []
    assess = support.assess

    def counted(footnote, url, claims, evidence, *, index=None):
        judged.append((footnote, url))
        return assess(footnote, url, claims, evidence, index=index)

    monkeypatch.setattr(support, "assess", counted)
    return judged


def _timeless(data: bytes) -> bytes:
    return re.sub(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC)", b"T", data)


def _reports(config: Path) -> dict[str, bytes]:
    folder = config.parent / "reports" / "brief"
    return {p.name: _timeless(p.read_bytes()) for p in folder.iterdir() if p.is_file()}


def test_report_reuses_what_the_run_kept_and_judges_again_what_changed(tmp_path,
                                                                        monkeypatch) -> None:
    """A run keeps the supports it judged on its captures' texts; ``archiver report``
    judges none of them again, and writes the reports it writes with the rows deleted.
    A footnote whose claims were edited, a damaged row, and other judging code (rules) are
    judged again; a footnote without claims, or a failing link, is never kept."""
    from tests.webserver import WebServer

    with WebServer() as web:
        urls = court_pages(web, 6)
        urls[4] = web.url("/missing/4")
        cited = urls + urls[:2]  # footnotes 7 and 8 cite the first two pages again
        claims = [f"In 20{10 + i % 6} the court fined {(i % 6) * 1000 + (7 if n % 3 else 0)}"
                  f" tenge in Almaty.[^{n}]" for n, i in enumerate(range(6), 1)]
        # Footnote 7 makes footnote 1's claim again: one row for both.
        claims += [claims[0].replace("[^1]", "[^7]"), "In 2011 the court fined 2000 "
                   "tenge in Almaty.[^8]"]
        with pytest.MonkeyPatch.context() as during_run:
            # Nothing judged during the fetch: the tail judges, and keeps, every support.
            during_run.setattr(pipeline, "_PREJUDGE_SHARE", 0.0)
            during_run.setattr(pipeline, "_PREJUDGE_ALLOWANCE", 0.0)
            config = run_briefing(tmp_path, cited, " ".join(claims))
        _judged_again(tmp_path, config, urls, cited, claims, monkeypatch)


def _judged_again(tmp_path: Path, config: Path, urls: list[str], cited: list[str],
                  claims: list[str], monkeypatch) -> None:
    """The checks of ``test_report_reuses_what_the_run_kept_and_judges_again_what_changed``
    once its run is done (its web still serving)."""
    kept = _kept(config)
    # Seven footnotes cite a page with text (not the 404); footnotes 1 and 7 make the same
    # claim on page 0, so each pair of (text, claims) is kept once: six rows.
    assert len(kept) == 6
    assert {row[2] for row in kept} == {"html"}
    assert len({row[0] for row in kept}) == 1 and kept[0][0] == support_store.rules()
    ran = _reports(config)

    judged = _counting(monkeypatch)
    assert call("report", "--config", str(config))[0] == 0
    # Only the failing link's footnote (no text: nothing kept) is judged again.
    assert judged == [(5, urls[4])]
    assert _reports(config) == ran
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    assert {s["level"] for s in report["support"]} == {"supported", "unsupported", "unknown"}

    # With the rows deleted, every footnote is judged again: the same reports.
    _execute(config, "DELETE FROM judged_supports")
    judged.clear()
    assert call("report", "--config", str(config))[0] == 0
    assert sorted(judged) == sorted((n, url) for n, url in enumerate(cited, 1))
    assert _reports(config) == ran

    # Put back, one row damaged: its footnotes are judged again, the rest taken.
    db = sqlite3.connect(config.parent / "archive" / "catalog.sqlite3")
    db.executemany("INSERT INTO judged_supports (rules, text, kind, claims, judged, used)"
                   " VALUES (?, ?, ?, ?, ?, ?)", kept)
    damaged = next(row for row in kept)
    db.execute("UPDATE judged_supports SET judged = 'not json' WHERE text = ? AND claims = ?",
               (damaged[1], damaged[3]))
    db.commit()
    db.close()
    judged.clear()
    assert call("report", "--config", str(config))[0] == 0
    assert _reports(config) == ran
    assert 2 <= len(judged) < len(cited) and (5, urls[4]) in judged

    # Footnote 2's claim edited: footnote 2 is judged again, on the new claim.
    brief = tmp_path / "sources" / "brief.md"
    brief.write_text(brief.read_text().replace(claims[1], "In 2011 the court fined 1000 "
                                               "tenge in Almaty.[^2]"), encoding="utf-8")
    judged.clear()
    assert call("report", "--config", str(config))[0] == 0
    assert (2, urls[1]) in judged and (3, urls[2]) not in judged
    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    second = next(s for s in report["support"] if s["footnote"] == 2)
    before = next(s for s in json.loads(ran["report.json"])["support"] if s["footnote"] == 2)
    assert (before["level"], second["level"]) == ("unsupported", "supported")
    assert "1000 tenge" in [f["text"] for f in second["facts"]]

    # Other judging code: nothing is taken, and the next run deletes the old rules' rows.
    monkeypatch.setattr(support_store, "rules", lambda: "0" * 32)
    judged.clear()
    assert call("report", "--config", str(config))[0] == 0
    assert len(judged) == len(cited)
    assert call("run", "--config", str(config), "--refresh")[0] == 0
    again = _kept(config)
    assert {row[0] for row in again} == {"0" * 32} and len(again) == 6


def test_a_page_whose_text_changed_is_judged_on_the_new_text(tmp_path, monkeypatch) -> None:
    """The supports are kept by the packed text's digest: a page that says something else
    at the next run is judged on what it says now, and the report says so."""
    from tests.webserver import Reply, WebServer

    monkeypatch.setattr(pipeline, "_PREJUDGE_SHARE", 0.0)
    monkeypatch.setattr(pipeline, "_PREJUDGE_ALLOWANCE", 0.0)
    with WebServer() as web:
        urls = court_pages(web, 3)
        config = run_briefing(tmp_path, urls, " ".join(
            f"In 20{10 + i} the court fined {i * 1000} tenge in Almaty.[^{i + 1}]"
            for i in range(3)))
        levels = [s["level"] for s in json.loads(
            (tmp_path / "reports" / "brief" / "report.json").read_text())["support"]]
        assert levels == ["supported"] * 3
        web.route("/p/1", Reply(200, b"<html><body><main><p>The weather in Paris was "
                                b"fine on that day, and nothing else happened.</p></main>"
                                b"</body></html>",
                                {"Content-Type": "text/html; charset=utf-8"}))
        judged = _counting(monkeypatch)
        assert call("run", "--config", str(config), "--refresh")[0] == 0
    # Pages 0 and 2 are the texts judged before; page 1 is judged on its new text.
    assert judged == [(2, urls[1])]
    levels = [s["level"] for s in json.loads(
        (tmp_path / "reports" / "brief" / "report.json").read_text())["support"]]
    assert levels == ["supported", "unsupported", "supported"]
    judged.clear()
    assert call("report", "--config", str(config))[0] == 0
    assert judged == []


@pytest.mark.parametrize("workers", [0, 2])
def test_supports_judged_during_the_fetch_are_kept_and_not_judged_again(tmp_path, monkeypatch,
                                                                         workers) -> None:
    """A run judges claim support as its captures arrive (``pipeline._Prejudged``); those
    supports are kept as the tail's are. The next run judges none of them again, neither
    during its fetch (the catalog keeps them) nor in its tail, but the page that changed;
    nor does the report after it: the same claim support as judged afresh."""
    from tests.webserver import Reply, WebServer

    monkeypatch.setattr(pipeline, "_PREJUDGE_SHARE", 1.0)
    monkeypatch.setattr(pipeline, "_PREJUDGE_ALLOWANCE", 60.0)
    taken: list[str] = []
    take = pipeline._Prejudged._judge

    def judge(self, finished, result, wanted):
        taken.append(finished.url)
        take(self, finished, result, wanted)

    monkeypatch.setattr(pipeline._Prejudged, "_judge", judge)
    judged = _counting(monkeypatch)
    report = tmp_path / "reports" / "brief" / "report.json"
    with WebServer() as web:
        urls = court_pages(web, 4)
        config = tmp_path / "sources.toml"
        run_briefing(tmp_path, urls, " ".join(
            f"In 20{10 + i} the court fined {i * 1000} tenge in Almaty.[^{i + 1}]"
            for i in range(4)))
        assert sorted(taken) == sorted(urls) and len(_kept(config)) == 4
        assert sorted(judged) == [(n, url) for n, url in enumerate(urls, 1)]
        first = json.loads(report.read_text())["support"]
        config.write_text(config.read_text().replace("[fetch]\n",
                                                     f"[fetch]\nworkers = {workers}\n"))
        judged.clear()
        # As if last used long ago: the run marks the supports it takes used today (and
        # forgets none of them).
        _execute(config, "UPDATE judged_supports SET used = '2001-01-01'")
        assert call("run", "--config", str(config), "--refresh")[0] == 0
        assert judged == []
        assert json.loads(report.read_text())["support"] == first
        from archiver.models import utcnow

        assert {row[5] for row in _kept(config)} == {utcnow().date().isoformat()}
        assert len(_kept(config)) == 4
        web.route("/p/2", Reply(200, b"<html><body><main><p>Nothing of the kind happened "
                                b"in Paris that year, or in any other.</p></main></body></html>",
                                {"Content-Type": "text/html; charset=utf-8"}))
        assert call("run", "--config", str(config), "--refresh")[0] == 0
    assert judged == [(3, urls[2])]
    assert len(_kept(config)) == 5
    now = json.loads(report.read_text())["support"]
    assert [s["level"] for s in now] == ["supported", "supported", "unsupported", "supported"]
    judged.clear()
    assert call("report", "--config", str(config))[0] == 0
    assert judged == []
    assert json.loads(report.read_text())["support"] == now


def test_the_rules_read_the_installed_morphologys_version_files() -> None:
    """The files ``rules`` reads of pymorphy3 and its dictionary are where it looks: a
    release that moves them would leave its version out of the rules."""
    from importlib.util import find_spec

    for package, parts in support_store._MORPHOLOGY:
        spec = find_spec(package)
        assert spec is not None and spec.origin, package
        for part in parts:
            assert (Path(spec.origin).parent / part).is_file(), (package, part)


def test_a_keeper_that_cannot_write_says_so_once_and_keeps_nothing(tmp_path, caplog) -> None:
    """The kept supports are a cache: a catalog that refuses the write (here a read-only
    connection; a full disk alike) costs the next report time, never the run."""
    from archiver.catalog import Catalog

    Catalog.open(tmp_path).close()
    judged = support.assess(1, "u", CLAIMS[0], EvidenceText(PAGE, "html", "ours"))
    reader = Catalog.open_reader(tmp_path)
    try:
        keeper = support_store.Keeper(reader)
        for _ in range(support_store.BATCH + 3):
            keeper.keep(judged, "t", "html")
        keeper.flush()
    finally:
        reader.close()
    assert keeper.kept == 0 and keeper.failed and "catalog" in keeper.failed
    assert [r.levelname for r in caplog.records
            if "not kept" in r.getMessage()] == ["WARNING"]
    with Catalog.open(tmp_path) as catalog:
        assert catalog.judged_supports(support_store.rules(), [
            ("t", "html", support_store.claims_key(CLAIMS[0]))]) == {}
        keeper = support_store.Keeper(catalog)
        keeper.keep(judged, "t", "html")
        keeper.flush()
        assert keeper.kept == 1 and keeper.failed is None
        assert len(catalog.judged_supports(support_store.rules(), [
            ("t", "html", support_store.claims_key(CLAIMS[0]))])) == 1


def test_supports_taken_are_marked_used_and_those_unused_are_forgotten(tmp_path) -> None:
    """A run marks the supports it takes from the catalog used (once a week at most); the
    first write of a run forgets the supports no run used for ``FORGET_AFTER_DAYS`` (a page
    that changed, claims edited)."""
    from datetime import date, timedelta

    from archiver.catalog import Catalog

    judged = support.assess(1, "u", CLAIMS[0], EvidenceText(PAGE, "html", "ours"))
    claims = support_store.claims_key(CLAIMS[0])
    rules = support_store.rules()
    today = date(2026, 6, 1)

    def day(days_ago: int) -> str:
        return (today - timedelta(days=days_ago)).isoformat()

    with Catalog.open(tmp_path) as catalog:
        catalog.keep_supports(rules, [(t, "html", claims, support_store.encode(judged))
                                      for t in ("old", "stale", "recent", "taken")],
                              used=day(200))
        for text, used in (("stale", 91), ("recent", 3), ("taken", 120)):
            catalog.keep_supports(rules, [(text, "html", claims, "x")], used=day(used))
        keeper = support_store.Keeper(catalog, today=today)
        keeper.took(("recent", "html", claims), day(3))  # used this week: left as it is
        keeper.took(("taken", "html", claims), day(120))  # taken today: kept
        keeper.keep(judged, "new", "html")
        keeper.flush()
        found = catalog.judged_supports(rules, [(t, "html", claims) for t in (
            "old", "stale", "recent", "taken", "new")])
    assert {key[0]: used for key, (_, used) in found.items()} == {
        "recent": day(3), "taken": day(0), "new": day(0)}
    # The stored support of a key is the one first kept (the same key judges the same).
    assert found[("taken", "html", claims)][0] == support_store.encode(judged)


def test_nothing_is_kept_once_the_russian_analyser_failed(tmp_path, monkeypatch) -> None:
    """What was judged without the Russian word forms is not what the rules judge: a
    process in which the analyser failed keeps nothing."""
    from archiver import support_match
    from archiver.catalog import Catalog

    def broken() -> None:
        raise OSError("no dictionary")

    monkeypatch.setattr(support_match, "_analyser_failed", False)
    monkeypatch.setattr(support_match, "_morph", broken)
    support_match._word_keys.cache_clear()
    support_match.month_of.cache_clear()
    try:
        judged = support.assess(1, "u", ("Айгуль Нурланова was fined in Almaty.",),
                                EvidenceText(PAGE, "html", "ours"))
        assert support_match.analyser_failed()
    finally:
        support_match._word_keys.cache_clear()
        support_match.month_of.cache_clear()
    with Catalog.open(tmp_path) as catalog:
        keeper = support_store.Keeper(catalog)
        keeper.keep(judged, "t", "html")
        keeper.flush()
        assert not catalog.keeps_supports(support_store.rules())


def test_a_report_whose_kept_supports_cannot_be_read_judges_them(tmp_path, caplog) -> None:
    """The kept supports are a cache: a catalog whose table cannot be read (here it is
    gone) costs the report time, with a warning, never the report."""
    from tests.webserver import WebServer

    with WebServer() as web:
        urls = court_pages(web, 3)
        config = run_briefing(tmp_path, urls, " ".join(
            f"In 20{10 + i} the court fined {i * 1000} tenge in Almaty.[^{i + 1}]"
            for i in range(3)))
    ran = _reports(config)
    _execute(config, "ALTER TABLE judged_supports RENAME TO elsewhere")
    assert call("report", "--config", str(config))[0] == 0
    assert _reports(config) == ran
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


KILLED_WHILE_KEEPING = """
import os, signal, sys
from archiver import catalog
keep = catalog.Catalog.keep_supports

def keep_then_die(self, rules, rows, **kwargs):
    rows = list(rows)
    with self._write() as db:  # the first rows written, the transaction not committed
        db.executemany(
            "INSERT INTO judged_supports (rules, text, kind, claims, judged, used)"
            " VALUES (?, ?, ?, ?, ?, ?)", [(rules, *row, "2026-01-01") for row in rows[:1]])
        os.kill(os.getpid(), signal.SIGKILL)

catalog.Catalog.keep_supports = keep_then_die
from archiver.cli import main
sys.exit(main(["run", "--config", *sys.argv[1:]]))
"""


def test_a_run_killed_while_it_keeps_supports_leaves_none_and_the_next_run_keeps_them(
        tmp_path) -> None:
    """kill -9 in the middle of the transaction that keeps a run's supports: the catalog
    opens, holds none of them and every capture; the next run judges and keeps them, and
    its reports are those judged afresh."""
    import os
    import signal
    import subprocess
    import sys

    from archiver.catalog import Catalog
    from tests.webserver import WebServer

    with WebServer() as web:
        urls = court_pages(web, 4)
        config = run_briefing(tmp_path, urls, " ".join(
            f"In 20{10 + i} the court fined {i * 1000} tenge in Almaty.[^{i + 1}]"
            for i in range(4)))
        _execute(config, "DELETE FROM judged_supports")
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_WHILE_KEEPING, str(config), "--refresh"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        with Catalog.open(tmp_path / "archive") as catalog:
            assert catalog._read("PRAGMA integrity_check")[0][0] == "ok"
            assert not catalog.keeps_supports(support_store.rules())
            assert len(catalog._read("SELECT id FROM captures")) >= 4
        assert call("run", "--config", str(config), "--refresh")[0] == 0
    assert len(_kept(config)) == 4
    ran = _reports(config)
    _execute(config, "DELETE FROM judged_supports")
    assert call("report", "--config", str(config))[0] == 0
    assert _reports(config) == ran
