"""The fetch stage's catalog writer: batches written in a thread while the loop goes on, a URL
reported only once committed, a full batch held back while the one before is written, a
write error raised where the run sees it."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver import provenance
from archiver.capturing import Finished
from archiver.catalog import Catalog, pack_text
from archiver.config import Settings, load_settings
from archiver.custody import CUSTODY_NAME, entries
from archiver.errors import ArchiveError
from archiver.fetch import Attempt
from archiver.models import Capture, FootnoteRef, Hop, Judgement, Target, Verdict, WarcRef
from archiver.recording import Recorder

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def settings_in(tmp_path: Path) -> Settings:
    (tmp_path / "sources.toml").write_text('[[sources]]\nid = "s"\npath = "b.md"\n')
    return load_settings(tmp_path / "sources.toml")


def finished(n: int) -> tuple[Attempt, Finished]:
    url = f"http://127.0.0.1:8080/news/{n:05d}.html"
    digest = "sha1:" + hashlib.sha1(str(n).encode()).hexdigest().upper()
    ref = WarcRef("archive/a-00001.warc.gz", n * 9000, 8800, f"<urn:uuid:{n:032x}>")
    capture = Capture(url=url, final_url=url, status=200,
                      hops=(Hop(url, 200, (("Content-Type", "text/html"),), warc=ref),),
                      content=b"", content_type="text/html", payload_digest=digest,
                      captured_at=T0)
    doc = f'{{"kind": "capture", "url": "{url}"}}'
    kept = provenance.Kept(f"<urn:uuid:{n:032x}>", url, doc,
                           hashlib.sha256(doc.encode()).hexdigest(), f"<urn:uuid:m{n:031x}>",
                           digest, "archive/a-00001.warc.gz")
    return (Attempt(url, 1, "response", status=200, at=T0),
            Finished(Target(url, (FootnoteRef("s", n + 1),)), capture,
                     Judgement(Verdict.OK, "200 OK"), text=pack_text(f"Story {n}."),
                     title=f"Story {n}", kept=kept))


class HeldCustody:
    """Another holder of the custody log's lock: the recorder's custody append (in its
    writer thread) waits until ``release``."""

    def __init__(self, archive: Path) -> None:
        archive.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(archive / CUSTODY_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

        self.released = False
        # Released after a minute whatever happens: a failing test must not hang.
        self.timer = threading.Timer(60, self.release)
        self.timer.start()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.timer.cancel()
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


def committed(settings: Settings, run_id: int) -> set[str]:
    """URLs with a verdict of ``run_id`` as another connection sees them (committed only)."""
    with Catalog.open(settings.archive.dir) as reader:
        return {r.url for r in reader.run_results(run_id)}


async def until_committed(settings: Settings, run_id: int, urls: set[str]) -> None:
    """Wait (on the loop, so the recorder's thread goes on) until exactly ``urls`` of
    ``run_id`` are committed; a busy machine may take a while, a broken recorder forever."""
    deadline = time.monotonic() + 20
    while (seen := committed(settings, run_id)) != urls:
        assert time.monotonic() < deadline, f"committed {sorted(seen)}, not {sorted(urls)}"
        await asyncio.sleep(0.01)


def listing_recorder(settings: Settings, catalog: Catalog, run_id: int, batch: int,
                     ) -> tuple[Recorder, list[str]]:
    """A recorder of ``run_id`` that writes only full batches (or when flushed) and the URLs
    it reports, in order."""
    reported: list[str] = []
    recorder = Recorder(settings, catalog, run_id, on_recorded=lambda f: reported.append(
        f.url), batch=batch, interval=30.0)
    return recorder, reported


async def a_full_batch_fails(recorder: Recorder, items: list[tuple[Attempt, Finished]],
                             error: type[BaseException], match: str) -> None:
    """Run ``recorder``'s writer (batches of 2), fill a batch from ``items`` and check that
    its failure ``error`` ends the writer and is raised by the next ``put`` and ``flush``."""
    writer = asyncio.ensure_future(recorder.run())
    await asyncio.sleep(0)  # the writer has started
    await recorder.put(items[0][1])
    await recorder.put(items[1][1])
    with pytest.raises(error, match=match):
        await asyncio.wait_for(writer, 10)
    with pytest.raises(error, match=match):
        await recorder.put(items[2][1])
    with pytest.raises(error, match=match):
        recorder.flush()


def test_batches_are_written_in_a_thread_and_reported_once_committed(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(40)]
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])
        reported: list[str] = []
        seen_committed: list[bool] = []
        threads: set[str] = set()

        def on_recorded(done: Finished) -> None:
            threads.add(threading.current_thread().name)
            seen_committed.append(done.url in committed(settings, run_id))
            reported.append(done.url)

        recorder = Recorder(settings, catalog, run_id, on_recorded=on_recorded, batch=8,
                            interval=0.05)

        async def main() -> None:
            writer = asyncio.ensure_future(recorder.run())
            await asyncio.sleep(0)  # the writer has started
            for attempt, done in items:
                recorder.attempt(attempt)
                await recorder.put(done)
                await asyncio.sleep(0)
            await asyncio.sleep(0.3)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            recorder.flush()

        asyncio.run(main())
        assert reported == [done.url for _, done in items]  # in the order they finished
        assert all(seen_committed)
        assert threads == {threading.main_thread().name}  # reported on the loop's thread
        assert len(catalog.run_results(run_id)) == 40
        assert all(len(catalog.attempts(done.url, run_id)) == 1 for _, done in items)
    assert [e["subject"] for e in entries(settings.archive.dir)] == reported


def test_a_full_batch_waits_for_the_one_being_written(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(4)]
    held = HeldCustody(settings.archive.dir)
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])
        recorder, reported = listing_recorder(settings, catalog, run_id, batch=2)

        async def main() -> None:
            writer = asyncio.ensure_future(recorder.run())
            await asyncio.sleep(0)  # the writer has started
            await recorder.put(items[0][1])
            await recorder.put(items[1][1])  # full: the writer takes it at once
            # Committed, then held by the custody lock: not reported, its custody entries
            # are not written yet.
            await until_committed(settings, run_id, {items[0][1].url, items[1][1].url})
            assert reported == []
            await recorder.put(items[2][1])
            fourth = asyncio.ensure_future(recorder.put(items[3][1]))
            await asyncio.sleep(0.2)
            assert not fourth.done(), "a second full batch did not wait"
            held.release()
            await asyncio.wait_for(fourth, 10)
            await asyncio.sleep(0.2)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            recorder.flush()

        asyncio.run(main())
        assert reported == [done.url for _, done in items]
        assert len(catalog.run_results(run_id)) == 4


def test_cancelled_while_writing_it_waits_for_the_batch_and_reports_it(tmp_path: Path,
                                                                       ) -> None:
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(3)]
    held = HeldCustody(settings.archive.dir)
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])
        recorder, reported = listing_recorder(settings, catalog, run_id, batch=3)

        async def main() -> None:
            writer = asyncio.ensure_future(recorder.run())
            await asyncio.sleep(0)  # the writer has started
            for _, done in items:
                await recorder.put(done)
            # Being written: committed, held by the custody lock.
            await until_committed(settings, run_id, {done.url for _, done in items})
            threading.Timer(0.3, held.release).start()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            assert writer.cancelled()

        asyncio.run(main())
        assert reported == [done.url for _, done in items]
    assert len(list(entries(settings.archive.dir))) == 3


def test_a_batch_that_cannot_be_written_stops_the_run(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(6)]
    (settings.archive.dir / CUSTODY_NAME).mkdir(parents=True)  # the log cannot be opened
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])
        recorder, reported = listing_recorder(settings, catalog, run_id, batch=2)

        asyncio.run(a_full_batch_fails(recorder, items, ArchiveError, "custody"))
        assert reported == []  # nothing of the batch counts as done


def test_urls_waiting_for_a_batch_that_cannot_be_written_get_its_error(tmp_path: Path,
                                                                       ) -> None:
    """A full batch waits while the one before is written; that write failing stops the
    run: the waiting URL gets the writer's error at once rather than waiting for ever."""
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(4)]
    # The custody log is a pipe: the append waits for the lock held here, then its fsync
    # fails (the catalog rows are committed by then).
    settings.archive.dir.mkdir(parents=True)
    os.mkfifo(settings.archive.dir / CUSTODY_NAME)
    held = HeldCustody(settings.archive.dir)
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])
        recorder, reported = listing_recorder(settings, catalog, run_id, batch=2)

        async def main() -> None:
            writer = asyncio.ensure_future(recorder.run())
            await asyncio.sleep(0)  # the writer has started
            await recorder.put(items[0][1])
            await recorder.put(items[1][1])  # full: the writer takes it at once
            await until_committed(settings, run_id, {items[0][1].url, items[1][1].url})
            await recorder.put(items[2][1])
            fourth = asyncio.ensure_future(recorder.put(items[3][1]))
            await asyncio.sleep(0.2)
            assert not fourth.done(), "a second full batch did not wait"
            held.release()
            with pytest.raises(ArchiveError, match="custody"):
                await asyncio.wait_for(fourth, 10)
            with pytest.raises(ArchiveError, match="custody"):
                await asyncio.wait_for(writer, 10)
            with pytest.raises(ArchiveError, match="custody"):
                recorder.flush()

        asyncio.run(main())
        assert reported == []


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_cancelled_just_as_a_full_batch_wakes_it_the_writer_stops(tmp_path: Path,
                                                                  turns: int) -> None:
    """The run cancels the writer once every URL is in; a full batch that woke it a loop
    turn or two before must not swallow that cancellation (the run would wait for the
    writer for ever). The batch is recorded by the last flush."""
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(2)]
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])
        recorder, reported = listing_recorder(settings, catalog, run_id, batch=2)

        async def main() -> None:
            writer = asyncio.ensure_future(recorder.run())
            await asyncio.sleep(0)  # the writer has started
            for _, done in items:
                recorder.add(done)  # the second one fills the batch: the writer wakes
            for _ in range(turns):
                await asyncio.sleep(0)
            writer.cancel()
            done, _ = await asyncio.wait([writer], timeout=10)
            assert done, "the writer went on after it was cancelled"
            assert writer.cancelled()
            recorder.flush()

        asyncio.run(main())
        assert reported == [done.url for _, done in items]
        assert len(catalog.run_results(run_id)) == 2


def test_a_report_that_fails_after_a_write_stops_the_run_too(tmp_path: Path) -> None:
    """``on_recorded`` failing (the run's own fault, not the disk's) ended the writer task
    with an exception only whoever awaits it sees, and the run gathers it with the rest:
    the batch's other URLs were committed but never reported, later ones recorded only by
    the last flush. It is raised by ``put`` and ``flush`` as a write error is."""
    settings = settings_in(tmp_path)
    items = [finished(n) for n in range(6)]
    with Catalog.open(settings.archive.dir) as catalog:
        run_id = catalog.begin_run("run", ["s"])

        def on_recorded(done: Finished) -> None:
            raise RuntimeError(f"cannot report {done.url}")

        recorder = Recorder(settings, catalog, run_id, on_recorded=on_recorded, batch=2,
                            interval=30.0)

        asyncio.run(a_full_batch_fails(recorder, items, RuntimeError, "cannot report"))
        assert committed(settings, run_id) == {items[0][1].url, items[1][1].url}
