"""The report: building the Report record and writing its files."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from archiver.errors import ArchiveError
from archiver.models import Claim, Document, Footnote, LinkRecord, Source, Verdict, WarcRef
from archiver.report import (
    build_report,
    render_csv,
    render_html,
    render_json,
    render_md,
    write_reports,
)
from archiver.report.model import (
    Report,
    evidence_kind,
    evidence_text,
    memento_offset_days,
    offset_phrase,
)
from archiver.report.write import REPORT_FILES
from tests.report_samples import (
    BRIEFING,
    EVIDENCE_PUBLISHED,
    GENERATED,
    HEALTHY_URL,
    LOST_URL,
    MEMENTO_URL,
    REPO,
    RESCUED_URL,
    UNCHECKED_URL,
    WARC,
    briefing_document,
    evidence_report,
    sample_links,
    sample_report,
    with_extra_footnotes,
)


def _doc(*notes: Footnote) -> Document:
    return Document(path="/x/doc.md", format="test", footnotes=notes)


def _note(number: int, urls: tuple[str, ...], claim_line: int | None, line: int = 100) -> Footnote:
    claims = () if claim_line is None else (Claim(number, f"Claim {number}.", claim_line),)
    return Footnote(number=number, text=f"Note {number}", urls=urls, line=line, claims=claims)


def test_every_footnote_and_marker_of_the_briefing_appears() -> None:
    document = briefing_document()
    report = build_report(Source("kazakhstan-2020", str(BRIEFING)), document, [],
                          generated_at=GENERATED, root=REPO)
    assert len(report.entries) == len(document.footnotes)
    assert sorted(e.number for e in report.entries) == sorted(n.number for n in document.footnotes)
    in_report = [c for e in report.entries for c in e.claims]
    assert sorted(in_report, key=lambda c: (c.line, c.footnote)) == list(document.claims)
    assert report.summary.claims == len(document.claims)
    # Document order: entries sorted by their first marker's line.
    lines = [e.line for e in report.entries]
    assert lines == sorted(lines)
    # Nothing checked yet: every URL is listed, as not checked.
    assert [link.url for link in report.links] == list(document.urls)
    assert all(link.verdict is None for link in report.links)
    assert report.summary.by_verdict == (("unchecked", len(document.urls)),)


def test_unsupported_and_orphan_footnotes_are_kept() -> None:
    document = _doc(
        _note(1, ("https://a.example/",), 5),
        _note(2, (), 9),  # cites no URL: its claim is unsupported
        _note(3, ("https://b.example/",), None, line=40),  # no marker cites it
    )
    report = build_report(Source("s", "/x/doc.md"), document, [], generated_at=GENERATED)
    by_number = {e.number: e for e in report.entries}
    assert by_number[2].unsupported and by_number[2].keys == ("unsupported",)
    assert by_number[3].orphan and not by_number[3].unsupported
    assert by_number[3].line == 40
    assert report.summary.unsupported_claims == 1
    assert report.summary.orphan_footnotes == 1
    assert [e.number for e in report.entries] == [1, 2, 3]


def test_entries_follow_the_markers_not_the_numbers() -> None:
    document = _doc(_note(1, ("https://a.example/",), 50), _note(2, (), 10))
    report = build_report(Source("s", "/x/doc.md"), document, [], generated_at=GENERATED)
    assert [e.number for e in report.entries] == [2, 1]


def test_duplicate_footnote_numbers_get_distinct_anchors() -> None:
    document = _doc(_note(4, (), 1), _note(4, (), 2))
    report = build_report(Source("s", "/x/doc.md"), document, [], generated_at=GENERATED)
    assert [e.anchor for e in report.entries] == ["fn-4", "fn-4-2"]


def test_links_are_joined_by_url_and_extras_kept() -> None:
    document = _doc(_note(1, ("https://a.example/", "https://b.example/"), 3))
    given = [
        LinkRecord(url="https://z.example/", footnotes=(), verdict=Verdict.OK),
        LinkRecord(url="https://b.example/", footnotes=(), verdict=Verdict.GONE,
                   http_status=410),
    ]
    report = build_report(Source("s", "/x/doc.md"), document, given, generated_at=GENERATED)
    assert [link.url for link in report.links] == [
        "https://a.example/", "https://b.example/", "https://z.example/"]
    assert report.links[0].verdict is None and report.links[0].footnotes == (1,)
    assert report.links[1].http_status == 410
    assert report.links[1].footnotes == (1,)  # filled in from the document
    assert report.summary.healthy == 1 and report.summary.failing == 1
    assert report.summary.unchecked == 1


def test_summary_counts_match_the_links() -> None:
    report = sample_report()
    links = report.links
    counts = Counter(link.verdict.value if link.verdict else "unchecked" for link in links)
    assert dict(report.summary.by_verdict) == dict(counts)
    # Every verdict of the contract occurs in the sample, plus "not checked".
    assert set(counts) == {v.value for v in Verdict} | {"unchecked"}
    assert report.summary.healthy == counts["ok"] + counts["redirected"]
    assert report.summary.captured == sum(1 for x in links if x.capture is not None)
    assert report.summary.mementos == sum(1 for x in links if x.memento is not None)
    failing_without_copy = [x for x in links if x.verdict and not x.verdict.healthy
                            and x.memento is None and x.rescued is None]
    assert report.summary.no_copy == len(failing_without_copy) > 0


def test_source_path_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    doc_path = tmp_path / "sources" / "brief.md"
    source = Source("s", str(doc_path), published=date(2020, 11, 1))
    report = build_report(source, _doc(), [], generated_at=GENERATED, root=tmp_path,
                          report_dir=tmp_path / "out" / "reports" / "s")
    assert report.source_path == "sources/brief.md"
    assert report.archive_base == "../../../"
    outside = build_report(Source("s", "/elsewhere/brief.md"), _doc(), [],
                           generated_at=GENERATED, root=tmp_path)
    assert outside.source_path == "/elsewhere/brief.md"
    assert outside.archive_base == "../../"


def test_report_is_frozen_and_run_is_json_safe() -> None:
    report = build_report(Source("s", "/x/doc.md"), _doc(), [], generated_at=GENERATED,
                          run={"started": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                               "path": Path("/a/b"), "n": 3, "mode": Verdict.OK})
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.notes = ("x",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        report.run["n"] = 4  # type: ignore[index]
    assert dict(report.run) == {"started": "2026-01-02T03:04:05Z", "path": "/a/b", "n": 3,
                                "mode": "ok"}


def test_blank_notes_are_dropped() -> None:
    report = build_report(Source("s", "/x/doc.md"), _doc(), [], generated_at=GENERATED,
                          notes=("", "  ", "Real note"))
    assert report.notes == ("Real note",)


# ── write_reports ────────────────────────────────────────────────────────────────


def test_write_reports_writes_the_four_files_atomically(tmp_path: Path) -> None:
    report = sample_report()
    folder = tmp_path / "reports" / "kazakhstan-2020"
    (folder).mkdir(parents=True)
    (folder / "report.json").write_text("old")
    written = write_reports(report, folder)
    assert [p.name for p in written] == ["report.json", "report.html", "report.md", "links.csv"]
    assert (folder / "report.json").read_text(encoding="utf-8") == render_json(report)
    assert (folder / "report.html").read_text(encoding="utf-8") == render_html(report)
    assert (folder / "report.md").read_text(encoding="utf-8") == render_md(report)
    # newline="" on read too: the CSV's \r\n line ends must reach the disk unchanged.
    with open(folder / "links.csv", encoding="utf-8", newline="") as handle:
        assert handle.read() == render_csv(report)
    assert sorted(os.listdir(folder)) == sorted(p.name for p in written)  # no temp files left


def test_write_reports_names_the_path_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ArchiveError, match="reports"):
        write_reports(sample_report(), blocker / "kazakhstan-2020")


def test_a_failed_replace_leaves_no_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    (folder / "report.html").mkdir(parents=True)  # os.replace cannot put a file over a folder
    with pytest.raises(ArchiveError, match=r"report\.html"):
        write_reports(sample_report(), folder)
    assert sorted(os.listdir(folder)) == ["report.html", "report.json"]
    assert (folder / "report.html").is_dir()


def test_sample_covers_what_the_renderer_tests_rely_on() -> None:
    document = with_extra_footnotes(briefing_document())
    links = sample_links(document)
    assert {link.verdict for link in links} >= set(Verdict)
    assert any(link.memento for link in links)
    assert any(link.capture is None and link.verdict for link in links)
    kinds = {evidence_kind(link) for link in links}
    assert kinds == {"ours", "internet_archive", "none", None}


# ── evidence recovered for failing links ─────────────────────────────────────────


def test_evidence_kind_per_link() -> None:
    report = evidence_report()
    kinds = {link.url: evidence_kind(link) for link in report.links}
    assert kinds == {
        RESCUED_URL: "ours",  # rescued copy in our WARC
        MEMENTO_URL: "internet_archive",  # memento only
        LOST_URL: "none",
        HEALTHY_URL: None,  # healthy: not asked, even though it has a memento
        UNCHECKED_URL: None,  # never checked, so never looked up
    }


def test_our_capture_of_a_failing_page_is_not_evidence() -> None:
    # The capture of a 404 page shows the failure, not the cited content.
    link = LinkRecord(url="https://a.example/", footnotes=(1,), verdict=Verdict.NOT_FOUND,
                      http_status=404, capture=WarcRef(WARC, 0, 10, "<urn:uuid:x>"),
                      captured_at=GENERATED)
    assert evidence_kind(link) == "none"
    assert evidence_text(link, EVIDENCE_PUBLISHED) == "No archived copy found"
    assert memento_offset_days(link, EVIDENCE_PUBLISHED) is None


def test_memento_offset_is_signed_days_from_publication() -> None:
    report = evidence_report()
    offsets = {link.url: memento_offset_days(link, EVIDENCE_PUBLISHED) for link in report.links}
    # 2020-10-28 23:10Z and 2020-11-13 08:00Z against a briefing published 2020-11-01.
    assert offsets == {RESCUED_URL: -4, MEMENTO_URL: 12, LOST_URL: None, HEALTHY_URL: None,
                       UNCHECKED_URL: None}
    assert all(memento_offset_days(link, None) is None for link in report.links)


def test_offset_phrase() -> None:
    assert offset_phrase(4) == "archived 4 days after publication"
    assert offset_phrase(-12) == "archived 12 days before publication"
    assert offset_phrase(1) == "archived 1 day after publication"
    assert offset_phrase(-1) == "archived 1 day before publication"
    assert offset_phrase(0) == "archived on the publication day"
    assert offset_phrase(2.5) == "archived 2.5 days after publication"


def test_evidence_text_for_a_reader() -> None:
    report = evidence_report()
    texts = {link.url: evidence_text(link, EVIDENCE_PUBLISHED) for link in report.links}
    assert texts[RESCUED_URL] == ("Internet Archive copy from 2020-10-28, stored in our WARC "
                                  "(archived 4 days before publication)")
    assert texts[MEMENTO_URL] == ("Internet Archive copy from 2020-11-13 "
                                  "(archived 12 days after publication)")
    assert texts[LOST_URL] == "No archived copy found"
    assert texts[HEALTHY_URL] is None and texts[UNCHECKED_URL] is None
    # Without a publication date the copy is still named, just not placed in time.
    undated = evidence_report(published=None)
    assert evidence_text(undated.link(MEMENTO_URL), None) == (
        "Internet Archive copy from 2020-11-13")


def test_summary_counts_evidence() -> None:
    assert evidence_report().summary.evidence == (
        ("ours", 1), ("internet_archive", 1), ("none", 1), ("unknown", 0))
    report = sample_report()
    s = report.summary
    counts = Counter(evidence_kind(link) for link in report.links)
    assert dict(s.evidence) == {"ours": counts["ours"], "internet_archive":
                                counts["internet_archive"], "none": counts["none"],
                                "unknown": counts["unknown"]}
    assert sum(n for _, n in s.evidence) == s.failing
    assert s.evidence_count("none") == s.no_copy
    assert s.evidence_count("ours") == sum(
        1 for x in report.links if x.rescued and x.verdict and not x.verdict.healthy) > 0


# ── write_reports in two processes ───────────────────────────────────────────


def _written(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _counting_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every ``os.fork`` from now on, counted (in this process: the child's count is its)."""
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return forks


def test_files_written_by_two_processes_are_those_written_by_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archiver.report import write as write_module

    report = sample_report()
    monkeypatch.setattr(write_module, "TWO_AT", len(report.links) + 1)
    forks = _counting_forks(monkeypatch)
    write_reports(report, tmp_path / "one")
    assert forks == []
    monkeypatch.setattr(write_module, "TWO_AT", 1)
    write_reports(report, tmp_path / "two")
    assert len(forks) == 1 and forks[0] > 0
    assert _written(tmp_path / "two") == _written(tmp_path / "one")  # no temp file left
    assert list(_written(tmp_path / "two")) == sorted(REPORT_FILES)
    # Past TWO_UP_TO links, one process again.
    monkeypatch.setattr(write_module, "TWO_UP_TO", len(report.links) - 1)
    write_reports(report, tmp_path / "three")
    assert len(forks) == 1 and _written(tmp_path / "three") == _written(tmp_path / "one")


def test_files_the_forked_process_fails_to_write_are_written_by_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that fails (here: its HTML renderer raises in any process but this one)
    exits 1 and leaves its files to this process, which renders them again: the same files,
    no temp file left."""
    from archiver.report import write as write_module

    report = sample_report()
    write_reports(report, tmp_path / "one")
    this = os.getpid()
    renderers = dict(write_module._RENDERERS)

    def html_here_only(report: Report) -> Iterator[str]:
        if os.getpid() != this:
            raise RuntimeError("the forked process fails")
        return renderers["report.html"](report)

    monkeypatch.setattr(write_module, "_RENDERERS", tuple(
        (name, html_here_only if name == "report.html" else render)
        for name, render in write_module._RENDERERS))
    monkeypatch.setattr(write_module, "TWO_AT", 1)
    forks = _counting_forks(monkeypatch)
    write_reports(report, tmp_path / "two")
    assert len(forks) == 1
    assert _written(tmp_path / "two") == _written(tmp_path / "one")


def test_a_failed_replace_after_two_processes_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from archiver.report import write as write_module

    monkeypatch.setattr(write_module, "TWO_AT", 1)
    folder = tmp_path / "reports"
    (folder / "report.html").mkdir(parents=True)  # the forked process's file: not moved
    with pytest.raises(ArchiveError, match=r"report\.html"):
        write_reports(sample_report(), folder)
    assert sorted(os.listdir(folder)) == ["report.html", "report.json"]
    assert (folder / "report.html").is_dir()
