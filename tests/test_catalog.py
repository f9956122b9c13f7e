"""The SQLite catalog (archiver.catalog): schema, round trips, transactions, the archive lock
across real processes, WAL readers beside a writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.catalog import (
    CATALOG_NAME,
    SCHEMA_VERSION,
    AttemptRow,
    Catalog,
    PackedText,
    ResultIn,
    archive_lock,
    pack_text,
)
from archiver.config import CheckSettings
from archiver.errors import ArchiveError, ArchiveLockedError
from archiver.history import link_status, status_of, streak_of
from archiver.models import (
    Capture,
    Footnote,
    FootnoteRef,
    Hop,
    Judgement,
    LinkState,
    Memento,
    Verdict,
    WarcRef,
)
from archiver.warc import PayloadSeen

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
URL = "https://www.example.org/report"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return tmp_path / "archive"


@pytest.fixture
def catalog(archive: Path) -> Iterator[Catalog]:
    with Catalog.open(archive) as opened:
        yield opened


def make_capture(
    url: str = URL,
    *,
    digest: str = "sha1:AAAA",
    at: datetime = T0,
    record: str | None = "<urn:uuid:1>",
    offset: int = 0,
    revisit: bool = False,
    final_url: str | None = None,
) -> Capture:
    final = final_url or url
    ref = WarcRef("archive/a.warc.gz", offset, 500, record) if record else None
    hops = []
    if final != url:
        hops.append(Hop(url, 301, (("Location", final),)))
    hops.append(Hop(final, 200, (("Content-Type", "text/html"),), warc=ref, revisit=revisit))
    return Capture(
        url=url, final_url=final, status=200, hops=tuple(hops), content=b"<p>x</p>",
        content_type="text/html", payload_digest=digest, captured_at=at,
    )


def child(code: str, archive: Path) -> subprocess.Popen[str]:
    """A real second process running ``code`` with ``archive`` bound; it prints lines."""
    script = "import sys, time\nfrom pathlib import Path\nfrom archiver.catalog import Catalog\n"
    script += f"archive = Path({str(archive)!r})\n" + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)


def wait_for_line(process: subprocess.Popen[str], expected: str) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith(expected):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"child said {line!r}, stderr: {err}")
    return line


# ── schema ───────────────────────────────────────────────────────────────────


def test_fresh_folder_gets_schema_and_reopens(tmp_path: Path) -> None:
    archive = tmp_path / "deep" / "archive"
    with Catalog.open(archive) as catalog:
        assert catalog.schema_version == SCHEMA_VERSION == 8
        run_id = catalog.begin_run("run", ["kazakhstan-2020"])
        catalog.finish_run(run_id, status="ok", summary={"links": 3})
    assert (archive / CATALOG_NAME).is_file()
    raw = sqlite3.connect(archive / CATALOG_NAME)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "runs", "attempts", "captures", "results", "citations",
            "mementos", "texts", "saves", "lookup_failures", "support_levels",
            "provenance", "judged_supports"} <= tables
    raw.close()
    with Catalog.open(archive) as again:  # reopening migrates nothing and keeps the data
        assert again.schema_version == 8
        [run] = again.runs()
        assert (run.id, run.status, run.summary) == (run_id, "ok", {"links": 3})
        versions = again._read("SELECT count(*) AS n FROM schema_version")
        assert versions[0]["n"] == 8  # one row per migration applied, none added on reopen


def test_newer_schema_is_refused(archive: Path) -> None:
    Catalog.open(archive).close()
    raw = sqlite3.connect(archive / CATALOG_NAME)
    raw.execute("INSERT INTO schema_version VALUES (99, '2030-01-01', '9.0')")
    raw.commit()
    raw.close()
    with pytest.raises(ArchiveError, match=r"catalog\.sqlite3.*schema version 99.*newer"):
        Catalog.open(archive)


def test_not_a_database_is_a_clear_error(archive: Path) -> None:
    archive.mkdir()
    (archive / CATALOG_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ArchiveError, match=r"catalog\.sqlite3: not a usable catalog"):
        Catalog.open(archive)


def test_archive_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "archive").write_text("oops")
    with pytest.raises(ArchiveError, match="cannot create the archive folder"):
        Catalog.open(tmp_path / "archive")


def test_foreign_keys_are_enforced(catalog: Catalog) -> None:
    with pytest.raises(ArchiveError, match="FOREIGN KEY"):
        catalog.record_result(999, URL, Judgement(Verdict.OK, "ok"), http_status=200,
                              final_url=URL, attempts=1, checked_at=T0)
    assert catalog.results(URL) == []


def test_naive_datetimes_are_refused(catalog: Catalog) -> None:
    run_id = catalog.begin_run("check", [])
    with pytest.raises(ValueError, match="naive"):
        catalog.record_attempt(run_id, URL, 1, "ok", status=200, error=None, waited=0,
                               at=datetime(2026, 1, 1))


# ── runs ─────────────────────────────────────────────────────────────────────


def test_runs_round_trip(catalog: Catalog) -> None:
    first = catalog.begin_run("run", ["a", "b"])
    second = catalog.begin_run("check", ["a"])
    assert catalog.run(second).status == "running"  # this process, not finished: running
    catalog.finish_run(first, status="failed", summary={"error": "disk full"})
    catalog.finish_run(
        second, status="ok", offline=True,
        summary={"at": T0, "verdicts": {Verdict.OK: 2}, "since": date(2026, 1, 1),
                 "hosts": {"x"}},
    )
    runs = catalog.runs()
    assert [r.id for r in runs] == [second, first]
    newest = runs[0]
    assert newest.kind == "check" and newest.sources == ("a",)
    assert newest.status == "ok" and newest.offline
    assert newest.summary == {"at": "2026-03-02T08:00:00Z", "verdicts": {"ok": 2},
                              "since": "2026-01-01", "hosts": ["x"]}
    assert newest.finished_at is not None and newest.finished_at >= newest.started_at
    assert newest.started_at.tzinfo is not None
    assert runs[1].status == "failed" and not runs[1].offline
    assert [r.id for r in catalog.runs(1)] == [second]
    assert [r.id for r in catalog.runs(kind="run")] == [first]
    with pytest.raises(ValueError, match="kind"):
        catalog.begin_run("sweep", [])
    with pytest.raises(ValueError, match="status"):
        catalog.finish_run(first, status="done", summary={})
    with pytest.raises(ValueError, match="no run"):
        catalog.finish_run(12345, status="ok", summary={})


def test_a_run_killed_midway_reads_interrupted(archive: Path) -> None:
    process = child(
        """
        catalog = Catalog.open(archive)
        with catalog.lock():
            run_id = catalog.begin_run("run", ["s"])
            print("started", run_id, flush=True)
            time.sleep(60)
        """,
        archive,
    )
    try:
        run_id = int(wait_for_line(process, "started").split()[1])
        with Catalog.open(archive) as catalog:
            assert catalog.run(run_id).status == "running"  # its process still holds the lock
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert catalog.run(run_id).status == "interrupted"
            stored = catalog._read("SELECT status FROM runs WHERE id = ?", (run_id,))
            assert stored[0]["status"] == "running"  # nothing rewrote it yet
            with catalog.lock():  # the next run takes the lock and records the truth
                stored = catalog._read("SELECT status FROM runs WHERE id = ?", (run_id,))
                assert stored[0]["status"] == "interrupted"
    finally:
        process.kill()
        process.communicate(timeout=10)


# ── citations, attempts ──────────────────────────────────────────────────────


def test_citations_round_trip_and_are_replaced(catalog: Catalog) -> None:
    notes = [
        Footnote(1, "see", ("https://a.example/", "https://b.example/"), line=10),
        Footnote(2, "also", ("https://a.example/",), line=12),
        Footnote(3, "no url", (), line=14),
    ]
    catalog.record_citations("kz", notes)
    catalog.record_citations("other", [Footnote(7, "x", ("https://a.example/",), line=1)])
    assert catalog.footnote_urls("kz", 1) == ["https://a.example/", "https://b.example/"]
    assert catalog.cited_by("https://a.example/") == [
        FootnoteRef("kz", 1), FootnoteRef("kz", 2), FootnoteRef("other", 7)]
    assert len(catalog.citations("kz")) == 3
    catalog.record_citations("kz", [Footnote(1, "edited", ("https://c.example/",), line=10)])
    assert [(c.footnote, c.url) for c in catalog.citations("kz")] == [(1, "https://c.example/")]
    assert len(catalog.citations()) == 2


def test_attempts_round_trip(catalog: Catalog) -> None:
    run_id = catalog.begin_run("run", [])
    catalog.record_attempt(run_id, URL, 1, "retry", status=503, error="503 Service Unavailable",
                           waited=0.0, at=T0)
    catalog.record_attempt(run_id, URL, 2, "ok", status=200, error=None, waited=2.5,
                           at=T0 + timedelta(seconds=3))
    attempts = catalog.attempts(URL)
    assert [(a.attempt, a.outcome, a.status, a.waited) for a in attempts] == [
        (1, "retry", 503, 0.0), (2, "ok", 200, 2.5)]
    assert attempts[0].error == "503 Service Unavailable"
    assert attempts[1].at == T0 + timedelta(seconds=3)
    assert catalog.attempts(URL, run_id=run_id + 1) == []


# ── captures ─────────────────────────────────────────────────────────────────


def test_capture_round_trip_with_text(catalog: Catalog) -> None:
    run_id = catalog.begin_run("run", [])
    assert not catalog.is_captured(URL)
    capture = make_capture(final_url="https://www.example.org/report-2020")
    capture_id = catalog.record_capture(run_id, capture, text="The report text.", title="Report")
    stored = catalog.latest_capture(URL)
    assert stored is not None and stored.id == capture_id
    assert stored.warc == WarcRef("archive/a.warc.gz", 0, 500, "<urn:uuid:1>")
    assert stored.payload == stored.warc
    assert (stored.url, stored.final_url, stored.status) == (
        URL, "https://www.example.org/report-2020", 200)
    assert stored.captured_at == T0
    assert stored.content_type == "text/html"
    assert stored.title == "Report"
    assert stored.text == "The report text."
    assert stored.fingerprint is None  # only a compared capture has one (a check's)
    assert not stored.revisit
    assert catalog.is_captured(URL)
    assert catalog.captured_urls() == {URL}
    # found by where the redirects ended, too
    assert catalog.latest_capture("https://www.example.org/report-2020").id == capture_id


def test_revisits_resolve_to_the_original_payload(catalog: Catalog) -> None:
    run_id = catalog.begin_run("run", [])
    catalog.record_capture(run_id, make_capture(at=T0, record="<urn:uuid:orig>", offset=0),
                           text="same words", title="A")
    check_id = catalog.begin_run("check", [])
    later = T0 + timedelta(days=7)
    catalog.record_capture(
        check_id, make_capture(at=later, record="<urn:uuid:rev>", offset=900, revisit=True),
        text="same words", title="A")
    newest = catalog.latest_capture(URL)
    assert newest.revisit and newest.captured_at == later
    assert newest.warc.record_id == "<urn:uuid:rev>"
    assert newest.payload == WarcRef("archive/a.warc.gz", 0, 500, "<urn:uuid:orig>")
    assert newest.text == "same words"
    assert [c.warc.record_id for c in catalog.captures(URL)] == ["<urn:uuid:rev>",
                                                                 "<urn:uuid:orig>"]
    seen = catalog.find_payload("sha1:AAAA")
    assert (seen.record_id, seen.target_uri, seen.date) == ("<urn:uuid:orig>", URL, T0)
    assert catalog.find_payload("sha1:NEVER") is None


def test_find_payload_reads_the_provenance_of_its_candidates_only(catalog: Catalog) -> None:
    """Finding a payload's original looks up the provenance of the captures with that digest
    by key, never every provenance row: once per payload written, a scan of them all made
    re-running a large archive quadratic."""
    run_id = catalog.begin_run("run", [])
    for n in range(60):
        record = f"<urn:uuid:{n}>"
        catalog.record_capture(run_id, make_capture(f"{URL}/{n}", digest=f"sha1:{n}",
                                                    record=record, offset=n * 1000),
                               text=None, title=None)
        kind = "rescued" if n % 3 == 0 else "capture"
        catalog.record_provenance(record, f"{URL}/{n}", f'{{"kind": "{kind}"}}', "ab" * 32,
                                  None)
    calls: list[str] = []

    def counted(document: str, path: str) -> object:
        calls.append(path)
        return "rescued" if '"rescued"' in document else "capture"

    # SQLite lets an application's function stand in for a built-in of the same name.
    catalog._db.create_function("json_extract", 2, counted)
    seen = catalog.find_payload("sha1:7")
    assert seen is not None and seen.record_id == "<urn:uuid:7>"
    assert len(calls) <= 1
    calls.clear()
    assert catalog.find_payload("sha1:9") is None  # a rescued copy is never an original
    assert len(calls) <= 1


def test_find_payload_has_the_warc_writers_field_names(catalog: Catalog) -> None:
    run_id = catalog.begin_run("run", [])
    catalog.record_capture(run_id, make_capture(final_url="https://x.example/final"),
                           text=None, title=None)
    seen = catalog.find_payload("sha1:AAAA")
    assert isinstance(seen, PayloadSeen)
    assert seen.record_id == "<urn:uuid:1>"
    assert seen.target_uri == "https://x.example/final"  # the final response's URI
    assert seen.date == T0 and seen.date.tzinfo is not None


def test_captures_without_a_record_or_original_are_not_evidence(catalog: Catalog) -> None:
    run_id = catalog.begin_run("run", [])
    catalog.record_capture(run_id, make_capture(digest="sha1:OLD", at=T0, record="<urn:old>"),
                           text=None, title=None)
    # a revisit of a payload the catalog never saw as a response: skipped
    catalog.record_capture(run_id, make_capture(digest="sha1:LOST", at=T0 + timedelta(days=1),
                                                record="<urn:rev>", revisit=True),
                           text=None, title=None)
    # a capture whose WARC record could not be written: skipped
    catalog.record_capture(run_id, make_capture(digest="sha1:NEW", at=T0 + timedelta(days=2),
                                                record=None), text=None, title=None)
    assert len(catalog.captures(URL)) == 3
    assert catalog.captures(URL)[1].payload is None
    assert catalog.latest_capture(URL).warc.record_id == "<urn:old>"
    other = "https://unwritten.example/"
    catalog.record_capture(run_id, make_capture(other, record=None), text=None, title=None)
    assert not catalog.is_captured(other)
    assert catalog.latest_capture(other) is None


# ── results and link status ──────────────────────────────────────────────────


def test_results_history_and_link_status(catalog: Catalog) -> None:
    rules = CheckSettings()
    verdicts = [(Verdict.OK, 0, False), (Verdict.NOT_FOUND, 7, False),
                (Verdict.DNS_ERROR, 8, True), (Verdict.NOT_FOUND, 9, False),
                (Verdict.NOT_FOUND, 11, False)]
    for verdict, days, outage in verdicts:
        run_id = catalog.begin_run("check", ["kz"])
        catalog.record_result(run_id, URL, Judgement(verdict, f"said {verdict}"),
                              http_status=404 if verdict is Verdict.NOT_FOUND else None,
                              final_url=URL, attempts=2, checked_at=T0 + timedelta(days=days),
                              outage=outage)
    results = catalog.results(URL)
    assert [r.checked_at for r in results] == sorted((r.checked_at for r in results),
                                                     reverse=True)
    assert results[0].verdict is Verdict.NOT_FOUND and results[0].http_status == 404
    assert results[0].reason == "said not_found" and results[0].attempts == 2
    assert results[2].outage and results[2].verdict is Verdict.DNS_ERROR
    assert catalog.last_result(URL).checked_at == T0 + timedelta(days=11)
    assert catalog.last_result(URL, include_outage=True).checked_at == T0 + timedelta(days=11)
    status = catalog.link_status(URL, rules, T0 + timedelta(days=30))
    assert status.state is LinkState.DEAD  # 3 failures over 4 days; the outage ignored
    assert status.failing_since == T0 + timedelta(days=7)
    assert status.last_ok == T0
    as_of_day_9 = catalog.link_status(URL, rules, T0 + timedelta(days=9))
    assert as_of_day_9.state is LinkState.FAILING
    assert as_of_day_9.consecutive_failures == 2
    assert catalog.link_status("https://never.example/", rules).state is LinkState.OK
    assert len(catalog.run_results(run_id)) == 1


_HISTORY = st.lists(st.tuples(
    st.sampled_from([Verdict.OK, Verdict.REDIRECTED, Verdict.NOT_FOUND, Verdict.TIMEOUT,
                     Verdict.BLOCKED, Verdict.INCOMPLETE, Verdict.SOFT_404,
                     Verdict.PRIVATE_ADDRESS]),
    st.integers(0, 12),  # the day: equal days give equal times, kept in record order
    st.sampled_from(["", "outage", "marked later"]),
    st.sampled_from([0, 5.5, -8])), max_size=14)  # the UTC offset it was recorded with
_STATE_URLS = iter(range(10**9))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=_HISTORY, at=st.one_of(st.none(), st.tuples(st.integers(-1, 13),
                                                            st.sampled_from([0, 1]))))
def test_the_results_a_state_is_made_from_give_the_whole_history_s_state(
        catalog: Catalog, history: list[tuple[Verdict, int, str, float]],
        at: tuple[int, int] | None) -> None:
    """The streak the catalog sums up in SQL (``link_streaks``, read by ``link_facts``,
    ``link_status`` and ``link_statuses``) is the one ``history.streak_of`` makes of the
    whole history, and so is the state; the newest verdict too: any history, outage results
    (recorded so, or marked after the run: ``mark_outage``), equal times and times given in
    other offsets included, as of any moment (a result's own time included) or none."""
    rules = CheckSettings(dead_after=2, dead_after_days=2)
    url = f"https://state.example/{next(_STATE_URLS)}"
    for verdict, day, outage, offset in history:
        run_id = catalog.begin_run("check", ["kz"])
        zone = timezone(timedelta(hours=offset))
        catalog.record_result(run_id, url, Judgement(verdict, str(verdict)), http_status=None,
                              final_url=None, attempts=1,
                              checked_at=(T0 + timedelta(days=day)).astimezone(zone),
                              outage=outage == "outage")
        if outage == "marked later":
            catalog.mark_outage(run_id)
    now = None if at is None else T0 + timedelta(days=at[0], hours=at[1])
    whole = catalog.results(url)[::-1]  # oldest first, equal times in record order
    expected = link_status([r for r in whole if now is None or r.checked_at <= now], rules)
    newest = next((r for r in reversed(whole) if not r.outage), None)
    assert catalog.link_streaks([url], now).get(url) == streak_of(
        r for r in whole if now is None or r.checked_at <= now)
    assert catalog.link_status(url, rules, now) == expected
    assert catalog.link_statuses([url, url], rules, now) == {url: expected}
    facts = catalog.link_facts([url], until=now)[url]
    assert status_of(facts.streak, rules) == expected
    assert facts.last == newest
    assert catalog.last_results([url]).get(url) == newest == catalog.last_result(url)


def test_a_verdict_of_a_newer_archiver_in_a_streak_is_an_error(catalog: Catalog) -> None:
    """A failure of a kind this archiver does not know cannot be judged: an ``ArchiveError``
    naming it, as reading the results names it, not a failure silently counted."""
    run_ids = []
    for day, verdict in enumerate([Verdict.OK, Verdict.NOT_FOUND, Verdict.NOT_FOUND,
                                   Verdict.NOT_FOUND]):
        run_ids.append(catalog.begin_run("check", ["kz"]))
        catalog.record_result(run_ids[-1], URL, Judgement(verdict, "said"), http_status=None,
                              final_url=None, attempts=1, checked_at=T0 + timedelta(days=day))
    catalog._db.execute("UPDATE results SET verdict = 'rate_limited' WHERE run_id = ?",
                        (run_ids[2],))
    for read in (lambda: catalog.link_status(URL, CheckSettings()),
                 lambda: catalog.link_statuses([URL], CheckSettings()),
                 lambda: catalog.link_facts([URL]), lambda: catalog.results(URL)):
        with pytest.raises(ArchiveError, match="unknown verdict 'rate_limited'"):
            read()


def test_a_link_s_state_costs_the_same_after_a_year_of_checks(catalog: Catalog) -> None:
    """A nightly check adds a result per link; reading a link's state, newest verdict and
    facts must not cost more for it. A link that answers: its history before its last
    healthy result is never read (measured in SQLite steps, with 5 and then 370 nightly
    results per link). A link failing all along: its streak is summed up by SQLite, which
    reads its rows, and handed over as one ``Streak``, exact either way."""
    urls = [f"https://nightly.example/{n}" for n in range(20)]
    failing = set(urls[::2])  # half of them fail every night
    answering = [url for url in urls if url not in failing]
    costs = []
    later = T0 + timedelta(days=400)
    total = 0
    for nights in (5, 365):
        run_ids = [catalog.begin_run("check", ["kz"]) for _ in range(nights)]
        catalog.record_results(
            ResultIn(run_id, url, Judgement(Verdict.NOT_FOUND if url in failing
                                            else Verdict.OK, "said"),
                     http_status=None, final_url=url, attempts=1,
                     checked_at=T0 + timedelta(days=night, minutes=nights))
            for night, run_id in enumerate(run_ids) for url in urls)
        total += nights
        streaks = catalog.link_streaks(urls)
        assert [s.failures for s in streaks.values()] == \
            [total if url in failing else 0 for url in urls]
        states = catalog.link_statuses(urls, CheckSettings(), later)
        assert [states[url].state for url in urls] == \
            [LinkState.DEAD if url in failing else LinkState.OK for url in urls]
        costs.append((
            _steps(catalog, lambda: catalog.link_facts(answering)),
            _steps(catalog, lambda: catalog.link_statuses(answering, CheckSettings(), later)),
            _steps(catalog, lambda: catalog.last_results(urls)),
        ))
    few, many = costs
    for a, b in zip(few, many, strict=True):
        assert b < 2 * a + 20, costs


def test_last_result_skips_outages_unless_asked(catalog: Catalog) -> None:
    run_id = catalog.begin_run("check", [])
    catalog.record_result(run_id, URL, Judgement(Verdict.OK, "ok"), http_status=200,
                          final_url=URL, attempts=1, checked_at=T0)
    catalog.record_result(run_id, URL, Judgement(Verdict.TIMEOUT, "t"), http_status=None,
                          final_url=None, attempts=4, checked_at=T0 + timedelta(1), outage=True)
    assert catalog.last_result(URL).verdict is Verdict.OK
    assert catalog.last_result(URL, include_outage=True).verdict is Verdict.TIMEOUT


def test_batch_writes_store_what_the_one_row_writes_store(tmp_path: Path) -> None:
    """The recorder's statements per batch (``record_attempts``, ``record_captures``,
    ``record_provenances``, ``record_results``) leave the very rows, ids included, that
    the one-row methods leave: a text shared by two captures stored once, a packed text, a
    revisit, a provenance row replaced, an outage result."""
    other = "https://b.example/x"
    attempts = [AttemptRow(1, URL, 1, "timeout", None, "read timed out", 0.0, T0),
                AttemptRow(1, URL, 2, "response", 200, None, 1.5, T0 + timedelta(seconds=2)),
                AttemptRow(1, other, 1, "response", 404, None, 0.0, T0)]
    captures = [(make_capture(), "same words", "A", None),
                (make_capture(other, digest="sha1:B", record="<urn:b>", offset=600),
                 pack_text("packed"), "B",
                 "fp1"),
                (make_capture(at=T0 + timedelta(1), record="<urn:rev>", offset=900,
                              revisit=True), "same words", "A", None),
                (make_capture("https://c.example/", digest="sha1:C", record=None), None, None,
                 None)]
    provenance = [("<urn:uuid:1>", URL, '{"kind": "capture"}', "ab" * 32, "<urn:m1>"),
                  ("<urn:b>", other, '{"kind": "capture"}', "cd" * 32, None),
                  ("<urn:uuid:1>", URL, '{"kind": "again"}', "ef" * 32, "<urn:m2>")]
    results = [ResultIn(1, URL, Judgement(Verdict.OK, "200 OK"), 200, URL, 2, T0),
               ResultIn(1, other, Judgement(Verdict.NOT_FOUND, "404"), 404, other, 1, T0,
                        outage=True)]

    def tables(catalog: Catalog) -> dict[str, list[tuple[object, ...]]]:
        return {name: [tuple(row) for row in catalog._read(f"SELECT * FROM {name} ORDER BY 1")]
                for name in ("attempts", "texts", "captures", "provenance", "results")}

    with Catalog.open(tmp_path / "one") as one, Catalog.open(tmp_path / "batch") as batch:
        for catalog in (one, batch):
            assert catalog.begin_run("run", []) == 1
        for a in attempts:
            one.record_attempt(a.run_id, a.url, a.attempt, a.outcome, status=a.status,
                               error=a.error, waited=a.waited, at=a.at)
        ids = [one.record_capture(1, c, text=text, title=title, fingerprint=fp)
               for c, text, title, fp in captures]
        for row in provenance:
            one.record_provenance(*row)
        for r in results:
            one.record_result(r.run_id, r.url, r.judgement, http_status=r.http_status,
                              final_url=r.final_url, attempts=r.attempts,
                              checked_at=r.checked_at, outage=r.outage)
        with batch.transaction():
            batch.record_attempts(attempts)
            assert batch.record_captures(1, captures) == ids == [1, 2, 3, 4]
            batch.record_provenances(provenance)
            batch.record_results(results)
        written = tables(batch)
        assert written == tables(one)
        assert [len(rows) for rows in written.values()] == [3, 2, 4, 2, 2]
        assert batch.latest_capture(URL).text == "same words"
        assert batch.latest_capture(other).text == "packed"
        assert batch.provenance("<urn:uuid:1>") == ('{"kind": "again"}', "ef" * 32, "<urn:m2>")


@pytest.mark.parametrize("text", [
    "", "a", "short text", "x" * 50, "Объём инвестиций " * 40, "emoji \U0001f600" * 30,
    "€" * 7 + "\U0001f600" * 9, "\n" * 3000 + "late words",
])
def test_packed_text_head_is_the_text_cut_at_any_length(text: str) -> None:
    """``PackedText.head`` gives the first characters of the text, whatever the bytes per
    character and wherever the cut falls in a character's bytes, and says when that is all."""
    packed = PackedText(pack_text(text))
    assert packed.text() == text
    for chars in range(0, min(len(text) + 3, 70)):
        head, whole = packed.head(chars)
        assert head == text[:chars]
        assert whole == (len(text) <= chars)
    assert packed.head(len(text)) == (text, True)
    assert packed.head(len(text) + 100) == (text, True)


def test_packed_text_head_of_a_damaged_blob_fails_as_the_whole_text_does() -> None:
    blob = pack_text("Объём " * 500)
    for damaged in (blob[: len(blob) // 2], blob[:20], b"not zlib at all"):
        with pytest.raises(zlib.error):
            PackedText(damaged).text()
        with pytest.raises(zlib.error):
            PackedText(damaged).head(5000)
    # A head inside the intact part needs no more of it.
    assert PackedText(blob[: len(blob) // 2]).head(10) == ("Объём Объё", False)


def test_link_facts_are_what_the_per_url_reads_say(catalog: Catalog) -> None:
    """The bulk read for reports answers as the one-URL methods do, for every kind of URL: a
    history with an outage, a revisit, a browser capture, a capture found only by where a
    redirect ended, a cached lookup for one date and not another, a URL never seen."""
    near = date(2020, 11, 1)
    other, redirected, target = ("https://b.example/x", "https://c.example/old",
                                 "https://c.example/new")
    run_id = catalog.begin_run("run", [])
    catalog.record_capture(run_id, make_capture(at=T0, record="<urn:uuid:orig>"),
                           text="same words", title="A")
    catalog.record_provenance("<urn:uuid:orig>", URL, '{"kind": "capture"}', "ab" * 32,
                              "<urn:uuid:meta>")
    shot = catalog.record_capture(run_id, make_capture(other, digest="sha1:B",
                                                       record="<urn:uuid:b>", offset=600),
                                  text="http text", title="B")
    catalog.record_browser(shot, mode="browser", wanted="app shell", text="rendered text",
                           screenshot=WarcRef("archive/a.warc.gz", 2000, 50, "<urn:shot>"))
    catalog.record_capture(run_id, make_capture(redirected, final_url=target, digest="sha1:C",
                                                record="<urn:c>", offset=1200),
                           text="moved", title="C")
    catalog.record_provenance("<urn:c>", redirected, '{"kind": "capture"}', "cd" * 32, None)
    later = T0 + timedelta(days=7)
    catalog.record_capture(run_id, make_capture(at=later, record="<urn:uuid:rev>",
                                                offset=900, revisit=True),
                           text="same words", title="A")
    for verdict, days, outage in [(Verdict.OK, 0, False), (Verdict.TIMEOUT, 1, True),
                                  (Verdict.NOT_FOUND, 2, False)]:
        catalog.record_result(run_id, URL, Judgement(verdict, str(verdict)), http_status=None,
                              final_url=None, attempts=1, checked_at=T0 + timedelta(days),
                              outage=outage)
    catalog.put_memento(URL, None, T0, near=near)
    catalog.put_memento(other, None, T0)
    urls = [URL, other, redirected, target, "https://never.example/"]
    facts = catalog.link_facts(urls, near=near)
    assert list(facts) == urls
    for url in urls:
        fact = facts[url]
        # What its state is made from: the same state and newest verdict as its whole
        # history gives.
        history = catalog.results(url)[::-1]
        assert fact.streak == streak_of(history)
        assert status_of(fact.streak, CheckSettings()) == link_status(history, CheckSettings())
        assert fact.last == next((r for r in reversed(history) if not r.outage), None)
        latest = catalog.latest_capture(url)
        # The same capture and browser row, their texts left packed in ``text``.
        assert fact.capture == (replace(latest, text=None) if latest else None)
        capture = fact.capture
        browser = catalog.browser_capture(capture.id) if capture else None
        assert fact.browser == (replace(browser, text=None) if browser else None)
        read_by = browser.text if browser and browser.text is not None else \
            (latest.text if latest else None)
        assert (fact.text.text() if fact.text else None) == read_by
        assert fact.provenance == (catalog.provenance(capture.warc.record_id)
                                   if capture else None)
        assert fact.lookup == catalog.get_memento(url, near=near)
    assert facts[URL].capture.warc.record_id == "<urn:uuid:rev>"
    assert facts[URL].provenance is None  # the revisit's own provenance was never recorded
    assert facts[other].text.text() == "rendered text" and facts[other].lookup is None
    assert facts[URL].text.text() == "same words" and facts[target].text.text() == "moved"
    assert facts["https://never.example/"].text is None
    # ok, an outage's timeout, not_found: the outage's result changes nothing.
    assert facts[URL].lookup.memento is None
    assert facts[URL].last.verdict is Verdict.NOT_FOUND
    assert facts[URL].streak.failures == 1 and facts[URL].streak.last_ok == T0
    # The target was never fetched as cited: the capture that ended there stands for it.
    assert facts[target].capture == facts[redirected].capture
    assert facts[target].capture.warc.record_id == "<urn:c>"
    assert facts[target].provenance == facts[redirected].provenance is not None
    assert catalog.link_facts([]) == {}
    # The captures alone (claim support's bulk read): the same captures and browser rows.
    latest = catalog.latest_captures(urls)
    assert list(latest) == [URL, other, redirected, target]  # never.example has none
    for url, (capture, browser) in latest.items():
        assert capture == catalog.latest_capture(url)
        assert browser == catalog.browser_capture(capture.id)
    assert latest[other][1].text == "rendered text"
    assert catalog.latest_captures([]) == {}
    # A run's planning reads: the newest result not in an outage, whether a URL is captured.
    last = catalog.last_results([*urls, URL])
    assert last == {u: r for u in urls if (r := catalog.last_result(u)) is not None}
    assert list(last) == [URL] and last[URL].verdict is Verdict.NOT_FOUND
    assert catalog.captured(urls) == {u for u in urls if catalog.is_captured(u)} \
        == {URL, other, redirected}


# ── mementos ─────────────────────────────────────────────────────────────────


def test_memento_cache_round_trip(catalog: Catalog) -> None:
    assert catalog.get_memento(URL) is None
    catalog.put_memento(URL, None, T0)
    cached = catalog.get_memento(URL)
    assert cached.memento is None and cached.looked_up_at == T0  # "none found" is cached
    memento = Memento(
        url=f"http://web.archive.org/web/20201105093012/{URL}",
        datetime=datetime(2020, 11, 5, 9, 30, 12, tzinfo=UTC),
        original_url=URL,
        raw_url=f"http://web.archive.org/web/20201105093012id_/{URL}",
        status=200,
    )
    catalog.put_memento(URL, memento, T0 + timedelta(days=1))
    cached = catalog.get_memento(URL)
    assert cached.memento == memento
    assert cached.looked_up_at == T0 + timedelta(days=1)
    # a lookup aimed at another date is cached apart
    assert catalog.get_memento(URL, near=date(2020, 11, 1)) is None
    catalog.put_memento(URL, None, T0, near=date(2020, 11, 1))
    assert catalog.get_memento(URL, near=date(2020, 11, 1)).memento is None
    assert catalog.get_memento(URL).memento == memento


def test_a_failed_lookup_is_not_a_cached_answer(catalog: Catalog) -> None:
    near = date(2020, 11, 1)
    catalog.put_lookup_failure(URL, "unreachable", "connection failed", T0, requests=2,
                               near=near)
    assert catalog.get_memento(URL, near=near) is None  # asked again, never "no copy"
    failure = catalog.lookup_failure(URL, near=near)
    assert (failure.kind, failure.error, failure.requests, failure.failed_at) == (
        "unreachable", "connection failed", 2, T0)
    assert catalog.lookup_failure(URL) is None  # another date: another lookup
    # An earlier answer is kept when a later lookup fails; an answer clears the failure.
    catalog.put_memento(URL, None, T0 + timedelta(days=1), near=near)
    assert catalog.lookup_failure(URL, near=near) is None
    catalog.put_lookup_failure(URL, "rate_limited", "429", T0 + timedelta(days=2), near=near)
    assert catalog.get_memento(URL, near=near).looked_up_at == T0 + timedelta(days=1)
    assert catalog.lookup_failure(URL, near=near).kind == "rate_limited"


# ── transactions ─────────────────────────────────────────────────────────────


def test_an_exception_mid_write_leaves_no_partial_rows(catalog: Catalog) -> None:
    run_id = catalog.begin_run("run", [])

    class Boom(Exception):
        pass

    with pytest.raises(Boom), catalog.transaction():
        catalog.record_capture(run_id, make_capture(), text="words", title=None)
        with catalog.transaction():  # nested: joins the outer one
            catalog.record_result(run_id, URL, Judgement(Verdict.OK, "ok"), http_status=200,
                                  final_url=URL, attempts=1, checked_at=T0)
        catalog.put_memento(URL, None, T0)
        raise Boom
    assert catalog.captures(URL) == []
    assert catalog.results(URL) == []
    assert catalog.get_memento(URL) is None
    assert catalog._read("SELECT count(*) AS n FROM texts")[0]["n"] == 0
    # and the catalog is usable afterwards
    catalog.record_result(run_id, URL, Judgement(Verdict.OK, "ok"), http_status=200,
                          final_url=URL, attempts=1, checked_at=T0)
    assert len(catalog.results(URL)) == 1


def test_a_failing_call_rolls_back_its_own_partial_write(catalog: Catalog) -> None:
    catalog.record_citations("kz", [Footnote(1, "t", ("https://a.example/",), line=1)])
    broken = Footnote(2, "t", ("https://b.example/", object()), line=2)  # type: ignore[arg-type]
    with pytest.raises(sqlite3.ProgrammingError, match="binding"):
        catalog.record_citations("kz", [Footnote(1, "t", ("https://c.example/",), line=1),
                                        broken])
    # the DELETE that ran before the failure was rolled back with it
    assert [c.url for c in catalog.citations("kz")] == ["https://a.example/"]


# ── the archive lock, across real processes ──────────────────────────────────


def test_second_lock_in_one_process_refuses(catalog: Catalog, archive: Path) -> None:
    refusal = rf"in use by another run \(pid {os.getpid()}"
    with catalog.lock(), pytest.raises(ArchiveLockedError, match=refusal), archive_lock(archive):
        pytest.fail("took a lock this process already holds")
    with catalog.lock():  # released on leaving the block
        pass


def test_another_process_holding_the_lock_refuses_then_releases_on_kill_9(
        archive: Path) -> None:
    holder = child(
        """
        catalog = Catalog.open(archive)
        with catalog.lock():
            print("locked", flush=True)
            time.sleep(60)
        """,
        archive,
    )
    try:
        wait_for_line(holder, "locked")
        with Catalog.open(archive) as catalog:
            started = time.monotonic()
            with pytest.raises(ArchiveLockedError) as refused, catalog.lock():
                pytest.fail("took a lock that another process holds")
            assert time.monotonic() - started < 1.0  # refuses at once
            message = str(refused.value)
            assert message.startswith(f"{archive}/ is in use by another run (pid {holder.pid}, ")
            assert "started 20" in message
            started = time.monotonic()
            with pytest.raises(ArchiveLockedError), catalog.lock(wait=0.3):
                pass
            assert time.monotonic() - started >= 0.3  # waited as asked
            assert refused.value.exit_code == 3

            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
            with catalog.lock():  # the kernel released it: no stale lock
                run_id = catalog.begin_run("run", [])
                catalog.finish_run(run_id, status="ok", summary={})
    finally:
        holder.kill()
        holder.communicate(timeout=10)


def test_lock_wait_succeeds_when_the_holder_finishes(archive: Path) -> None:
    holder = child(
        """
        catalog = Catalog.open(archive)
        with catalog.lock():
            print("locked", flush=True)
            time.sleep(0.4)
        print("released", flush=True)
        """,
        archive,
    )
    try:
        wait_for_line(holder, "locked")
        with Catalog.open(archive) as catalog, catalog.lock(wait=10):
            assert (archive / ".lock").read_text().split()[0] == str(os.getpid())
        assert (archive / ".lock").read_text() == ""  # emptied on a clean release
    finally:
        holder.communicate(timeout=10)
    assert holder.returncode == 0


# ── WAL: readers beside a writer ─────────────────────────────────────────────


def test_readers_see_whole_transactions_while_a_writer_writes(archive: Path) -> None:
    with Catalog.open(archive) as catalog:
        catalog.begin_run("run", [])  # schema in place before the writer starts
    writer = child(
        """
        from datetime import UTC, datetime
        from archiver.models import Judgement, Verdict, Capture, Hop, WarcRef
        catalog = Catalog.open(archive)
        run_id = catalog.begin_run("run", [])
        print("ready", flush=True)
        sys.stdin.readline()  # start when the reader is reading
        now = datetime.now(UTC)
        for i in range(300):
            time.sleep(0.002)  # paced, so that reads surely fall between transactions
            url = f"https://h{i % 7}.example/{i}"
            ref = WarcRef("archive/a.warc.gz", i * 100, 100, f"<urn:uuid:{i}>")
            capture = Capture(url=url, final_url=url, status=200,
                              hops=(Hop(url, 200, (), warc=ref),), content=b"",
                              content_type="text/html", payload_digest=f"sha1:{i}",
                              captured_at=now)
            with catalog.transaction():
                catalog.record_capture(run_id, capture, text="x " * 200, title=None)
                catalog.record_result(run_id, url, Judgement(Verdict.OK, "ok"),
                                      http_status=200, final_url=url, attempts=1,
                                      checked_at=now)
        print("done", flush=True)
        """,
        archive,
    )
    try:
        wait_for_line(writer, "ready")
        reader = sqlite3.connect(archive / CATALOG_NAME, timeout=0.5)
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        seen = set()
        with Catalog.open(archive) as catalog:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
            while writer.poll() is None:
                # one statement, one snapshot: a capture never shows without its result
                captures, results = reader.execute(
                    "SELECT (SELECT count(*) FROM captures), (SELECT count(*) FROM results)"
                ).fetchone()
                assert captures == results
                seen.add(captures)
                catalog.runs()  # the catalog's own reads do not block or fail either
        wait_for_line(writer, "done")
        assert writer.returncode == 0
        final = reader.execute("SELECT count(*) FROM captures").fetchone()[0]
        assert final == 300
        assert len(seen - {0, 300}) > 2  # the reads really happened while the writer wrote
        reader.close()
    finally:
        writer.kill()
        writer.communicate(timeout=10)


def test_uncommitted_writes_are_invisible_and_do_not_block_readers(archive: Path) -> None:
    with Catalog.open(archive) as writer, Catalog.open(archive) as reader:
        run_id = writer.begin_run("run", [])
        with writer.transaction():
            writer.record_result(run_id, URL, Judgement(Verdict.OK, "ok"), http_status=200,
                                 final_url=URL, attempts=1, checked_at=T0)
            started = time.monotonic()
            assert reader.results(URL) == []
            assert reader.run(run_id) is not None  # committed before: visible
            assert time.monotonic() - started < 0.5
        assert len(reader.results(URL)) == 1


def test_two_unlocked_writers_lose_nothing(archive: Path) -> None:
    Catalog.open(archive).close()
    code = """
        from datetime import UTC, datetime
        from archiver.models import Judgement, Verdict
        catalog = Catalog.open(archive)
        run_id = catalog.begin_run("check", [])
        print("ready", flush=True)
        for i in range(150):
            catalog.record_result(run_id, f"https://x.example/{sys.argv[0]}{i}",
                                  Judgement(Verdict.OK, "ok"), http_status=200, final_url=None,
                                  attempts=1, checked_at=datetime.now(UTC))
        """
    writers = [child(code, archive) for _ in range(2)]
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    with Catalog.open(archive) as catalog:
        counts = catalog._read("SELECT run_id, count(*) AS n FROM results GROUP BY run_id")
        assert sorted(row["n"] for row in counts) == [150, 150]


def test_a_version_1_catalog_is_migrated_forward(tmp_path: Path) -> None:
    import sqlite3

    from archiver.catalog import SCHEMA_VERSION

    assert SCHEMA_VERSION >= 2
    Catalog.open(tmp_path).close()
    # Take the catalog back to what version 1 wrote: no Save Page Now table, no lookup
    # failures (version 3), no claim support levels (version 4).
    db = sqlite3.connect(tmp_path / "catalog.sqlite3")
    db.execute("DROP TABLE saves")
    db.execute("DROP TABLE lookup_failures")
    db.execute("DROP TABLE browser_captures")  # version 4
    db.execute("DROP TABLE support_levels")  # version 5
    db.execute("DROP TABLE provenance")  # version 6
    db.execute("DROP TABLE judged_supports")  # version 7
    db.execute("ALTER TABLE captures DROP COLUMN page")  # version 8
    db.execute("DELETE FROM schema_version WHERE version >= 2")
    db.commit()
    db.close()
    with Catalog.open(tmp_path) as catalog:
        assert catalog.last_save("https://example.org/") is None
        catalog.record_save("https://example.org/", "submitted", job_id="j1", message="",
                            at=datetime(2026, 1, 1, tzinfo=UTC))
        assert catalog.last_save("https://example.org/") == (
            "submitted", datetime(2026, 1, 1, tzinfo=UTC))
        catalog.keep_supports("r", [("t", "html", "c", "[]")], used="2026-01-01")
        assert catalog.judged_supports("r", [("t", "html", "c"), ("t", "pdf", "c")]) == {
            ("t", "html", "c"): ("[]", "2026-01-01")}
        assert catalog.has_supports("r", [("t", "html", "c")] * 2)
        assert not catalog.has_supports("r", [("t", "html", "c"), ("t", "html", "d")])
        assert catalog.keeps_supports("r") and not catalog.keeps_supports("other")
        assert catalog.judged_supports("other", [("t", "html", "c")]) == {}
    db = sqlite3.connect(tmp_path / "catalog.sqlite3")
    versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
    db.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def _steps(catalog: Catalog, read: Callable[[], object]) -> int:
    """SQLite virtual-machine steps (in hundreds) that ``read`` costs."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    catalog._db.set_progress_handler(count, 100)
    try:
        read()
    finally:
        catalog._db.set_progress_handler(None, 100)
    return steps


def test_a_link_s_newest_capture_costs_the_same_after_a_year_of_checks(
        catalog: Catalog) -> None:
    """A nightly check of an unchanged page adds a revisit of its payload, with its own
    provenance. A link's newest capture (with its browser row and provenance), and whether it
    was captured at all, are found in as many SQLite steps after 365 nights as after 5: the
    reads walk the URL's index back from its newest capture, and read the provenance and
    browser rows of the captures chosen only (they read every capture of the URL, its text
    joined, and every capture's provenance document)."""
    urls = [f"https://nightly.example/{n}" for n in range(10)]
    run_id = catalog.begin_run("run", [])
    first = catalog.record_captures(run_id, [
        (make_capture(url, digest=f"sha1:{n}", record=f"<urn:uuid:{n}>", offset=n * 1000),
         f"page {n}", "A page", None) for n, url in enumerate(urls)])
    catalog.record_browser(first[0], mode="browser", wanted="app shell", text="rendered",
                           screenshot=None)
    costs = []
    night = 0
    for nights in (5, 365):
        for _ in range(nights):
            night += 1
            run_id = catalog.begin_run("check", [])
            catalog.record_captures(run_id, [
                (make_capture(url, digest=f"sha1:{n}", record=f"<urn:uuid:{n}-{night}>",
                              at=T0 + timedelta(days=night), revisit=True),
                 f"page {n}", "A page", None) for n, url in enumerate(urls)])
            catalog.record_provenances(
                (f"<urn:uuid:{n}-{night}>", url, f'{{"night": {night}}}', "ab" * 32, None)
                for n, url in enumerate(urls))
        facts = catalog.link_facts(urls)
        assert [facts[u].capture.warc.record_id for u in urls] == \
            [f"<urn:uuid:{n}-{night}>" for n in range(len(urls))]
        assert all(facts[u].provenance[0] == f'{{"night": {night}}}' for u in urls)
        assert all(facts[u].capture.payload.record_id == f"<urn:uuid:{n}>"
                   for n, u in enumerate(urls))
        assert [facts[u].text.text() for u in urls] == [f"page {n}" for n in range(10)]
        assert catalog.latest_captures(urls) == {
            u: (catalog.latest_capture(u), catalog.browser_capture(
                catalog.latest_capture(u).id)) for u in urls}
        assert catalog.captured([*urls, "https://never.example/"]) == set(urls)
        costs.append((
            _steps(catalog, lambda: catalog.link_facts(urls)),
            _steps(catalog, lambda: catalog.latest_captures(urls)),
            _steps(catalog, lambda: catalog.captured(urls)),
        ))
    few, many = costs
    for a, b in zip(few, many, strict=True):
        assert b < 2 * a + 20, costs


def test_reading_revisits_of_a_shared_payload_does_not_grow_with_their_number(
        tmp_path: Path) -> None:
    """One error page served for every missing URL is one payload with thousands of
    revisits. Finding each revisit's original (the oldest response with the payload) seeks
    the digest index; it read and sorted every capture of the payload for each row, so
    reading 100 such links cost ten times more at 1,000 revisits than at 100."""
    costs = []
    urls = [f"{URL}/{n}" for n in range(1, 101)]
    for revisits in (100, 1_000):
        with Catalog.open(tmp_path / f"a{revisits}") as catalog:
            run_id = catalog.begin_run("run", [])
            catalog.record_capture(run_id, make_capture(f"{URL}/0", record="<urn:uuid:0>"),
                                   text="gone", title="Not found")
            for n in range(1, revisits + 1):
                catalog.record_capture(
                    run_id, make_capture(f"{URL}/{n}", record=f"<urn:uuid:{n}>",
                                         offset=n * 1000, at=T0 + timedelta(seconds=n),
                                         revisit=True),
                    text="gone", title="Not found")
            found = catalog.latest_captures(urls)
            assert all(found[u][0].payload.record_id == "<urn:uuid:0>" for u in urls)
            facts = catalog.link_facts(urls)
            assert all(facts[u].capture.payload.record_id == "<urn:uuid:0>" for u in urls)
            assert catalog.find_payload("sha1:AAAA").record_id == "<urn:uuid:0>"
            costs.append((
                _steps(catalog, lambda: catalog.latest_captures(urls)),
                _steps(catalog, lambda: catalog.link_facts(urls)),
                _steps(catalog, lambda: [catalog.latest_capture(u) for u in urls[:10]]),
                _steps(catalog, lambda: [catalog.find_payload("sha1:AAAA") for _ in range(10)]),
            ))
    small, large = costs
    for few, many in zip(small, large, strict=True):
        assert many < 2 * few + 20, costs


def test_support_drops_are_found_across_chunks_and_runs(catalog: Catalog) -> None:
    """``record_levels`` reads the last levels a chunk of supports at a time
    (``last_supports``): over 1,100 footnotes (three chunks), with levels stored by two
    earlier runs, the drops it reports are exactly those a reading per support finds, each
    against the newest earlier level, and a footnote no run judged before is no drop."""
    from archiver.support import FactCheck, Support, record_levels
    from archiver.support_facts import Fact

    fact = Fact("number", "7", 0, 1, "7", True, "a number")

    def support(n: int, level: str) -> Support:
        return Support(n, f"https://example.org/{n % 7}", level, "", ("7",),
                       (FactCheck(fact, 0, level == "supported"),))

    levels = ("supported", "partial", "unsupported", "unknown")
    first = catalog.begin_run("run", ["brief"])
    record_levels(catalog, first, "brief", [support(n, "unsupported") for n in range(1100)],
                  compare=False)
    second = catalog.begin_run("check", ["brief"])
    record_levels(catalog, second, "brief",
                  [support(n, levels[n % 3]) for n in range(1, 1100)], compare=False)
    now = [support(n, levels[(n // 3) % 4]) for n in range(1150)]
    # What the earlier runs stored, newest first: the second run's level, else the first's.
    rank = {"supported": 3, "partial": 2, "unsupported": 1}
    expected = []
    for s in now:
        n = s.footnote
        before = levels[n % 3] if 1 <= n < 1100 else "unsupported" if n == 0 else None
        if before in rank and s.level in rank and rank[s.level] < rank[before]:
            expected.append((n, s.url, f"{before} → {s.level}"))
    third = catalog.begin_run("check", ["brief"])
    reads: list[str] = []
    catalog._db.set_trace_callback(
        lambda sql: reads.append(sql) if sql.startswith("SELECT s.footnote") else None)
    try:
        changes = record_levels(catalog, third, "brief", now, compare=True)
    finally:
        catalog._db.set_trace_callback(None)
    assert len(reads) == 3  # a query per chunk of 512, not one per support
    assert [(c.footnotes[0], c.url, c.reason.split(": ")[1]) for c in changes] == expected
    # Drops in each chunk of 512, and none for footnotes no earlier run judged.
    assert {n // 512 for n, _, _ in expected} == {0, 1, 2}
    assert all(n < 1100 for n, _, _ in expected)
    assert catalog.last_support("brief", 5, "https://example.org/5") == (
        levels[(5 // 3) % 4], [])
    assert catalog.last_support("brief", 1149, "https://example.org/1") == (
        levels[(1149 // 3) % 4], ["7"] if levels[(1149 // 3) % 4] == "supported" else [])
    assert catalog.last_support("brief", 1150, "https://example.org/2") is None
