"""The spool of long record lists (``archiver.spool``) and the reports written from spooled
link records and claim support: the same bytes as from the records held whole."""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import ArchiveError
from archiver.models import LinkRecord, Verdict
from archiver.report import (
    build_report,
    render_csv,
    render_html,
    render_json,
    render_md,
    render_support,
)
from archiver.report.model import Report, SupportIndex, Tally, needs_rescue
from archiver.report.write import write_reports
from archiver.spool import Spool
from tests.report_samples import (
    evidence_report,
    long_strings_report,
    sample_links,
    sample_report,
    supported_report,
)
from tests.test_shards import _alive
from tests.tmpfs import small_tmpfs

SIZES = (1, 2, 3, 7)


@pytest.mark.parametrize("chunk", SIZES)
@pytest.mark.parametrize("count", [0, 1, 6, 7, 8, 22])
def test_a_spool_is_the_sequence_of_its_items(chunk: int, count: int) -> None:
    items = [LinkRecord(url=f"https://example.org/{n}", footnotes=(n,), verdict=Verdict.OK,
                        reason="ä" * n) for n in range(count)]
    spool: Spool[LinkRecord] = Spool(items, chunk=chunk, kept=1, held=0)
    assert len(spool) == count
    assert list(spool) == items
    assert [spool[n] for n in range(count)] == items  # read out of the cache each chunk
    assert [spool[-n] for n in range(1, count + 1)] == [items[-n] for n in range(1, count + 1)]
    assert [spool[n] for n in reversed(range(count))] == items[::-1]
    assert spool[1:5:2] == items[1:5:2]
    assert bool(spool) is bool(items)
    with pytest.raises(IndexError):
        spool[count]
    with pytest.raises(IndexError):
        spool[-count - 1]
    more = LinkRecord(url="https://example.org/more", footnotes=(99,), verdict=None)
    spool.append(more)  # appending after reading
    assert list(spool) == [*items, more]
    spool.close()
    assert len(spool) == 0 and list(spool) == []


def test_a_spool_writes_its_full_chunks_to_disk() -> None:
    spool = Spool(range(10), chunk=4, held=0)
    assert "2 chunk(s) on disk" in repr(spool)
    assert spool._pending == [8, 9]
    with pytest.raises(ValueError):
        Spool(chunk=0)


@pytest.mark.parametrize("held", [0, 5, 8, 9, 30])
def test_a_spool_holds_its_first_items_in_memory(held: int) -> None:
    """Up to ``held`` items stay in memory; past that every whole chunk goes to disk."""
    spool = Spool(range(10), chunk=4, held=held)
    on_disk = 0 if held >= 10 else 2
    assert f"{on_disk} chunk(s) on disk" in repr(spool)
    assert list(spool) == list(range(10))
    assert [spool[n] for n in range(-10, 10)] == [*range(10), *range(10)]
    spool.extend(range(10, 13))
    assert list(spool) == list(range(13)) and len(spool) == 13


def _spooled(report: Report, chunk: int, *, counted: bool = False) -> Report:
    """``report`` built again from its links and claim support in spools of ``chunk``;
    with ``counted``, both counted and indexed as they are spooled (as the pipeline does:
    ``Tally``, ``SupportIndex``)."""
    tally = Tally(report.document) if counted else None
    index = SupportIndex() if counted else None
    links: Spool[LinkRecord] = Spool(chunk=chunk, kept=1, held=0)
    for link in report.links:
        links.append(link)
        if tally is not None:
            tally.add(link)
    support = Spool(report.support if index is None else index.each(report.support),
                    chunk=chunk, kept=1, held=0)
    spooled = build_report(report.source, report.document, links,
                           generated_at=report.generated_at, changes=report.changes,
                           notes=report.notes, run=report.run, support=support,
                           tally=tally, support_index=index)
    # The paths as the sample made them (from its root and folder).
    return replace(spooled, source_path=report.source_path, archive_base=report.archive_base)




def _backwards() -> Report:
    """The supported sample with its footnotes listed last to first: its URLs (and so its
    links) in that order, its entries in the order of the claims, from the last link back."""
    supported = supported_report()
    document = replace(supported.document,
                       footnotes=tuple(reversed(supported.document.footnotes)))
    report = build_report(supported.source, document, sample_links(document),
                          generated_at=supported.generated_at, support=supported.support)
    return replace(report, source_path=supported.source_path)


def _reports() -> list[Report]:
    return [sample_report(), sample_report(notes=(), changes=False), evidence_report(),
            long_strings_report(), supported_report(), _backwards()]


@pytest.mark.parametrize("index", range(6))
def test_reports_of_spooled_records_are_the_same_bytes(
        index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Link records and claim support in spools of 1, 2, 3 and 7 items per chunk (one chunk
    kept in memory: the entries and the support of each footnote read them out of order)
    give the same four files as the records held whole; the report keeps them on disk."""
    from archiver.report import render_csv as csv_module

    whole = _reports()[index]
    texts = [render(whole) for render in (render_json, render_html, render_md, render_csv)]
    # The cells of the CSV made again for a link met again after others.
    monkeypatch.setattr(sys.modules[csv_module.__module__], "_CELLS_KEPT", 1)
    # The Markdown claim support section in pieces of a few supports.
    monkeypatch.setattr(render_support, "_MD_PIECE_SUPPORTS", 3)
    for chunk, counted in itertools.product(SIZES, (False, True)):
        spooled = _spooled(whole, chunk, counted=counted)
        assert isinstance(spooled.links, Spool)
        assert spooled.summary == whole.summary
        assert spooled.support_counts == whole.support_counts
        assert list(spooled.entries) == list(whole.entries)
        assert [render(spooled) for render in (render_json, render_html, render_md,
                                               render_csv)] == texts


@pytest.mark.parametrize("index", range(6))
def test_records_counted_as_they_are_spooled_are_not_read_back_for_the_report(
        index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a ``Tally`` of the links and a ``SupportIndex`` of the claim support made as
    they were spooled, building the report and its summary, its support counts and the
    links that need attention read no chunk from disk (without them, each is a pass)."""
    whole = _reports()[index]
    reads: list[int] = []
    read = Spool._read
    monkeypatch.setattr(Spool, "_read", lambda self, n: reads.append(n) or read(self, n))
    counted = _spooled(whole, 2, counted=True)
    assert counted.support_counts == whole.support_counts
    assert counted.attention == tuple(link for link in whole.links if needs_rescue(link))
    assert reads == []
    number = whole.entries[0].number
    assert counted.support_for(number) == whole.support_for(number)
    reads.clear()
    uncounted = _spooled(whole, 2)
    assert uncounted.attention is None
    assert uncounted.support_counts == whole.support_counts
    assert len(reads) >= len(whole.links) // 2  # the summary's pass over the links


def test_the_reports_compared_have_what_the_streamed_path_reads() -> None:
    """The reports above cite URLs from several footnotes, have footnotes without URLs and
    footnotes whose entry order differs from their own, and claim support."""
    reports = _reports()
    assert any(len(link.footnotes) > 1 for r in reports for link in r.links)
    assert any(not e.footnote.urls for r in reports for e in r.entries)
    assert any([e.footnote for e in r.entries] != list(r.document.footnotes) for r in reports)
    assert any(r.support for r in reports)


def test_links_out_of_the_document_order_are_held_whole() -> None:
    """A spool whose records are not the document's URLs in order (a record missing, or
    one without footnotes) gives the report the whole-list path builds."""
    whole = sample_report()
    shuffled = Spool(reversed(whole.links), chunk=2, held=0)
    report = build_report(whole.source, whole.document, shuffled,
                          generated_at=whole.generated_at)
    assert isinstance(report.links, tuple)
    assert report.links == whole.links
    bare = Spool((replace(link, footnotes=()) for link in whole.links), chunk=2,
                 held=0)
    report = build_report(whole.source, whole.document, bare, generated_at=whole.generated_at)
    assert isinstance(report.links, tuple) and report.links == whole.links
    # The same with the records counted as they were spooled: the tally says so.
    for spool in (shuffled, bare):
        tally = Tally(whole.document)
        for link in spool:
            tally.add(link)
        assert not tally.in_order
        report = build_report(whole.source, whole.document, spool,
                              generated_at=whole.generated_at, tally=tally)
        assert isinstance(report.links, tuple) and report.links == whole.links
        assert report.summary == whole.summary and report.attention is None


def _spooled_items(count: int) -> list[LinkRecord]:
    return [LinkRecord(url=f"https://example.org/{n}", footnotes=(n,), verdict=Verdict.OK,
                       reason="x" * 200) for n in range(count)]


def test_a_spool_writes_its_file_in_the_folder_it_is_given(tmp_path: Path) -> None:
    """The run spools into its reports folder (a disk it writes anyway), not the system's
    temporary folder, which may be RAM: records "spooled" there would stay in memory."""
    folder = tmp_path / "reports"
    spool: Spool[LinkRecord] = Spool(_spooled_items(10), chunk=2, held=0, directory=folder)
    assert spool._file is not None
    where = os.readlink(f"/proc/self/fd/{spool._file.fileno()}")
    assert where.startswith(f"{folder}/"), where
    assert list(spool) == _spooled_items(10)
    spool.close()


def test_a_full_disk_under_a_spool_is_an_archive_error_naming_the_folder(
        tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "tiny", "64k") as mount:
        with pytest.raises(ArchiveError, match="cannot write the run's temporary records") as err:
            Spool(_spooled_items(2_000), chunk=16, held=0, directory=mount / "reports")
        assert str(mount / "reports") in str(err.value)
        assert "space" in str(err.value).lower()


def test_a_folder_that_cannot_be_made_is_an_archive_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArchiveError, match="cannot write the run's temporary records"):
        Spool(_spooled_items(10), chunk=2, held=0, directory=blocker / "reports")


def _cut_short(spool: Spool[LinkRecord]) -> None:
    """Truncate the spool's file through its descriptor, as a disk fault or another program
    might: what was written is no longer there to read back."""
    assert spool._file is not None
    os.ftruncate(spool._file.fileno(), 10)


def _unreadable(spool: Spool[LinkRecord]) -> None:
    """Put a write-only descriptor in place of the spool's file: every read fails (EBADF)."""
    assert spool._file is not None
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, spool._file.fileno())
    os.close(fd)


@pytest.mark.parametrize("damage", [_cut_short, _unreadable])
def test_a_spool_that_cannot_be_read_back_is_an_archive_error_naming_the_folder(
        tmp_path: Path, damage: Any) -> None:
    folder = tmp_path / "reports"
    spool: Spool[LinkRecord] = Spool(_spooled_items(10), chunk=2, held=0, kept=1,
                                     directory=folder)
    damage(spool)
    with pytest.raises(ArchiveError, match="cannot read the run's temporary records back") \
            as err:
        list(spool)
    assert str(folder) in str(err.value)


def test_reports_whose_spool_fails_name_the_spool_and_leave_no_file(tmp_path: Path) -> None:
    """A spool that fails while the four files are written stops the writing with the
    spool's error (not a report file's), and no report file or temporary file is left."""
    whole = sample_report()
    spooled = _spooled(whole, 1)
    assert isinstance(spooled.links, Spool)
    _unreadable(spooled.links)
    out = tmp_path / "out"
    with pytest.raises(ArchiveError, match="cannot read the run's temporary records back"):
        write_reports(spooled, out)
    assert sorted(p.name for p in out.iterdir()) == []


def test_two_processes_reading_one_spool_write_the_same_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's files rendered by two processes at once (``report.write``), both reading
    the spools' one file, each at its own offsets: the same files as from records held
    whole."""
    from archiver.report import write as write_module
    from archiver.report import write_reports

    whole = supported_report()
    write_reports(whole, tmp_path / "whole")
    monkeypatch.setattr(write_module, "TWO_AT", 1)
    for chunk in (1, 3):
        spooled = _spooled(whole, chunk, counted=True)
        write_reports(spooled, tmp_path / f"two-{chunk}")
        for name in write_module.REPORT_FILES:
            assert (tmp_path / f"two-{chunk}" / name).read_bytes() == \
                (tmp_path / "whole" / name).read_bytes()


@pytest.mark.parametrize("count", [0, 2, 11])
def test_a_spool_handed_off_is_read_the_same_through_another_descriptor(count: int) -> None:
    """``Spool.reader`` of a spool's ``handoff`` (as another process reads it, through its
    own descriptor of the file) gives the same items, and leaves the spool whole."""
    items = _spooled_items(count)
    spool: Spool[LinkRecord] = Spool(items, chunk=3, held=0, kept=1)
    fd, spans, chunk, pending = spool.handoff()
    assert (fd >= 0) is (count >= 3)
    other = Spool.reader(os.dup(fd) if fd >= 0 else -1, spans, chunk, pending, kept=1)
    assert len(other) == count and list(other) == items
    assert [other[n] for n in reversed(range(count))] == items[::-1]
    other.close()
    assert list(spool) == items


@pytest.mark.parametrize("helper", ["works", "fails", "cannot start"])
def test_reports_past_two_up_to_are_written_around_a_helper_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helper: str) -> None:
    """Past ``TWO_UP_TO`` links, report.json's link records and claim support are written
    by a helper process while this one renders the other files (or here, when the helper
    fails or cannot be started): the same four files as from records held whole."""
    from archiver.report import write as write_module

    whole = supported_report()
    write_reports(whole, tmp_path / "whole")
    monkeypatch.setattr(write_module, "TWO_UP_TO", 1)
    copied: list[bool] = []
    section = write_module._Helper.section

    def watched(self: Any, name: str) -> Any:
        written = section(self, name)
        copied.append(written is not None)
        return written

    monkeypatch.setattr(write_module._Helper, "section", watched)
    if helper == "fails":
        monkeypatch.setattr(write_module, "_HELPER_MAIN", "import sys; sys.exit(3)")
    elif helper == "cannot start":
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise OSError("no more processes")

        monkeypatch.setattr(write_module.subprocess, "Popen", refuse)
    for chunk in (1, 3):
        spooled = _spooled(whole, chunk, counted=True)
        out = tmp_path / f"helped-{chunk}"
        write_reports(spooled, out)
        for name in write_module.REPORT_FILES:
            assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
        assert sorted(p.name for p in out.iterdir()) == sorted(write_module.REPORT_FILES)
    assert copied == {"works": [True] * 4, "fails": [False] * 4, "cannot start": []}[helper]


@pytest.mark.timeout(120)
def test_a_helper_that_never_finishes_is_killed_and_its_sections_written_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper stopped or stuck (here: one that sleeps) is waited for a bounded time, then
    killed, and this process writes its sections: the same files, and nothing left
    running."""
    import subprocess

    from archiver.report import write as write_module

    whole = supported_report()
    write_reports(whole, tmp_path / "whole")
    monkeypatch.setattr(write_module, "TWO_UP_TO", 1)
    monkeypatch.setattr(write_module, "_HELPER_PATIENCE_MIN", 0.5)
    monkeypatch.setattr(write_module, "_HELPER_MAIN",
                        "import pickle, sys, time; pickle.load(sys.stdin.buffer); time.sleep(300)")
    started: list[subprocess.Popen[bytes]] = []
    popen = subprocess.Popen

    def kept(*args: Any, **kwargs: Any) -> Any:
        process = popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(write_module.subprocess, "Popen", kept)
    out = tmp_path / "helped"
    write_reports(_spooled(whole, 3, counted=True), out)
    for name in write_module.REPORT_FILES:
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert len(started) == 1 and started[0].poll() is not None  # killed, reaped


@pytest.mark.timeout(120)
def test_a_forked_renderer_that_never_finishes_is_killed_and_its_files_rendered_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked process rendering report.html and report.md (``_write_in_two``) stopped
    or stuck is waited for a bounded time, then killed, and this process renders its files:
    the same files."""
    import time

    from archiver.report import write as write_module

    whole = supported_report()
    write_reports(whole, tmp_path / "whole")
    monkeypatch.setattr(write_module, "TWO_AT", 1)
    monkeypatch.setattr(write_module, "_HELPER_PATIENCE_MIN", 0.5)
    parent = os.getpid()
    side_by_side = write_module._write_side_by_side

    def stuck_in_the_child(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            time.sleep(300)
        return side_by_side(*args, **kwargs)

    monkeypatch.setattr(write_module, "_write_side_by_side", stuck_in_the_child)
    out = tmp_path / "two"
    write_reports(_spooled(whole, 3, counted=True), out)
    for name in write_module.REPORT_FILES:
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


_WRITER_KILLED = """
import sys
sys.path[:0] = {path!r}
from archiver.report import write as write_module
from tests.report_samples import supported_report
from tests.test_spool import _spooled

write_module.TWO_UP_TO = 1
# A helper that announces itself and never finishes: the writer waits for it.
write_module._HELPER_MAIN = '''
import os, pickle, sys, time
job = pickle.load(sys.stdin.buffer)
sys.path[:0] = job["path"]
from archiver.shards import die_with_parent
die_with_parent(job["parent"])
with open({marker!r}, "w") as out:
    out.write(str(os.getpid()))
time.sleep(300)
'''
write_module.write_reports(_spooled(supported_report(), 3, counted=True), {out!r})
"""


@pytest.mark.timeout(120)
def test_kill_9_of_the_writer_takes_its_helper_and_leaves_no_report(tmp_path: Path) -> None:
    """The process writing the reports killed (``kill -9``) while its helper writes: Linux
    ends the helper with it, and no report file is left half-written."""
    import signal
    import subprocess
    import time

    marker, out = tmp_path / "helper.pid", tmp_path / "out"
    code = _WRITER_KILLED.format(path=sys.path, marker=str(marker), out=str(out))
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the writer started no helper"
    helper = int(marker.read_text())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    end = time.monotonic() + 10
    while _alive(helper) and time.monotonic() < end:
        time.sleep(0.05)
    assert not _alive(helper), "the helper outlived the writer"
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []
