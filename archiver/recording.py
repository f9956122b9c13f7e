"""The catalog writer of the fetch stage: records finished URLs in batches.

The capture stage (``archiver.capturing``), in this process or in worker processes, hands
over one ``Finished`` record per cited URL after its WARC records are written. The recorder
is the one writer of the catalog for the run's fetching: it keeps each URL's attempts until
the URL is finished, then records attempts, captures, provenance and verdict of a batch of
URLs in one transaction, appends their custody entries with one fsync, and only then reports
them done (``on_recorded``: progress, the rescue's lookup queue, the run's summary).

While fetching (``run``), the transaction and the custody append are made in a thread of
their own: committing (a WAL checkpoint now and then) and the custody ``fsync`` mostly wait
for the disk, and the event loop meanwhile hands out targets and takes results in. One batch
is written at a time, in the order the URLs finished; the next one gathers meanwhile.

Crash safety: a URL counts as captured only once its catalog rows are committed, and its
WARC records were written before it reached the recorder. A run killed at any moment leaves
recorded in WARCs but not in the catalog at most the batch being written and the one
gathering, and the URLs in flight. A batch is full at ``batch`` URLs, but each of the run's
fetching tasks (``pool`` of them) adds its URL before it waits for the writer, so a batch
can reach ``batch + pool - 1`` URLs; it also gathers for as long as the write before it
takes. The next run fetches those URLs again; nothing recorded is fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from archiver.catalog import AttemptRow, CaptureIn, Catalog, ResultIn
from archiver.config import Settings
from archiver.models import Capture, utcnow

if TYPE_CHECKING:
    from archiver import provenance
    from archiver.browse import Browsed
    from archiver.capturing import Finished
    from archiver.fetch import Attempt

#: URLs per transaction, and the longest a finished URL waits for its commit.
BATCH = 128
INTERVAL = 0.1


class Recorder:
    """Records ``Finished`` URLs of run ``run_id`` in ``catalog``, ``batch`` at a time.

    ``attempt`` keeps an attempt until its URL is recorded; ``add`` queues a finished URL and
    commits when the batch is full; ``flush`` commits what is queued (``run`` does it in a
    thread every ``interval`` seconds or as soon as a batch is full, until cancelled; ``put``
    is ``add`` while ``run`` runs; the caller flushes once at the end). With
    ``compare_text``, ``similarity[url]`` is how much of the previous capture's text the new
    one keeps (``None`` when not comparable).
    """

    def __init__(self, settings: Settings, catalog: Catalog, run_id: int, *,
                 on_recorded: Callable[[Finished], None], compare_text: bool = False,
                 batch: int = BATCH, interval: float = INTERVAL) -> None:
        self.settings = settings
        self.catalog = catalog
        self.run_id = run_id
        self.on_recorded = on_recorded
        self.compare_text = compare_text
        self.batch = batch
        self.interval = interval
        self.similarity: dict[str, float | None] = {}
        self._attempts: dict[str, list[Attempt]] = {}
        self._queued: list[Finished] = []
        # While ``run`` runs: set to have the queue written now (a full batch); set when the
        # writer has taken the queue (a full batch's ``put`` waits for it); the first error
        # of the writer (raised by ``put`` and ``flush`` from then on).
        self._wake: asyncio.Event | None = None
        self._taken: asyncio.Event | None = None
        self._error: BaseException | None = None

    def attempt(self, attempt: Attempt) -> None:
        self._attempts.setdefault(attempt.url, []).append(attempt)

    def add(self, finished: Finished) -> None:
        self._queued.append(finished)
        if len(self._queued) >= self.batch:
            if self._wake is not None:
                self._wake.set()
            else:
                self.flush()

    async def put(self, finished: Finished) -> None:
        """``add``, while ``run`` runs: a full batch wakes the writer, and waits while the
        writer is still busy with the one before (so no more than two batches, see the
        module's text for their size, are ever captured but not recorded). Raises the
        writer's error. Cancelled while it waits, ``finished`` stays queued: the last
        ``flush`` records it."""
        if self._error is not None:
            raise self._error
        self.add(finished)
        while self._taken is not None and len(self._queued) >= self.batch:
            await self._taken.wait()
        if self._error is not None:
            raise self._error

    async def run(self) -> None:
        """Commit what is queued, in a thread, every ``interval`` seconds or as soon as a
        batch is full; runs until cancelled (or until a batch cannot be written: the error is
        then raised by ``put`` and ``flush`` too). Cancelled while a batch is being written,
        it waits for that batch (it counts once written) and reports it first."""
        self._wake, self._taken = asyncio.Event(), asyncio.Event()
        writer = ThreadPoolExecutor(1, thread_name_prefix="recorder")
        try:
            while True:
                # Not asyncio.wait_for: in Python 3.11 it swallows a cancellation that comes
                # just after the wake (a full batch), and the writer would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
                self._wake.clear()
                await self._write_in(writer)
        except Exception as exc:
            # Reporting a written batch failed (``on_recorded``): the run's own fault, raised
            # by ``put`` and ``flush`` as a write error is; the task's own exception is only
            # seen by whoever awaits it, and the run gathers it with the rest.
            if self._error is None:
                self._error = exc
            raise
        finally:
            taken, self._wake, self._taken = self._taken, None, None
            taken.set()
            writer.shutdown(wait=True)

    async def _write_in(self, writer: ThreadPoolExecutor) -> None:
        queued, attempts = self._take()
        assert self._taken is not None
        taken, self._taken = self._taken, asyncio.Event()
        taken.set()
        if not queued:
            return
        job = writer.submit(self._write, queued, attempts)
        try:
            await asyncio.shield(asyncio.wrap_future(job))
        except asyncio.CancelledError:
            # The thread goes on with the batch (it counts once written): wait for it.
            self._error = job.exception()
            if self._error is None:
                self._recorded(queued)
            raise
        except BaseException as exc:
            self._error = exc
            raise
        self._recorded(queued)

    def flush(self) -> None:
        """Record every queued URL in one transaction, then their custody entries, then tell
        ``on_recorded``. Raises ``ArchiveError`` when the catalog or the custody log cannot
        be written (nothing of the batch then counts as done)."""
        if self._error is not None:
            raise self._error
        queued, attempts = self._take()
        if not queued:
            return
        self._write(queued, attempts)
        self._recorded(queued)

    def _take(self) -> tuple[list[Finished], list[list[Attempt]]]:
        """The queued URLs and, for each, the attempts of it and its hops (taken here, in the
        event loop's thread, where attempts arrive)."""
        queued, self._queued = self._queued, []
        if self.compare_text:
            for finished in queued:
                self._compare(finished)
        pop = self._attempts.pop
        attempts = [[attempt for hop_url in (finished.url, *finished.hop_urls)
                     for attempt in pop(hop_url, ())] for finished in queued]
        return queued, attempts

    def _write(self, queued: list[Finished], attempts: list[list[Attempt]]) -> None:
        with self.catalog.transaction():
            custody = self._record(queued, attempts)
        if custody:
            log_custody(self.settings, "capture", custody)

    def _recorded(self, queued: list[Finished]) -> None:
        for finished in queued:
            self.on_recorded(finished)

    def _compare(self, finished: Finished) -> None:
        # The capture stage compared the page with the previous capture, in parallel (a
        # healthy page with text has a fingerprint then, or a similarity of 1.0 without one
        # where its text is the previous capture's); a run's stage compares nothing.
        if finished.compared and (finished.fingerprint is not None
                                  or finished.similarity is not None):
            self.similarity[finished.url] = finished.similarity

    def _record(self, queued: list[Finished], tried: list[list[Attempt]],
                ) -> list[provenance.Kept]:
        """The catalog rows of the URLs of ``queued`` (inside the batch's transaction), a
        statement per table for all of them, rows in the order the URLs finished (``tried``:
        each URL's attempts); returns the provenance records whose custody entries are due."""
        catalog, run_id = self.catalog, self.run_id
        attempts: list[AttemptRow] = []
        captures: list[CaptureIn] = []
        browsers: list[tuple[int, Browsed]] = []  # (index in captures, outcome)
        kept: list[provenance.Kept] = []
        results: list[ResultIn] = []
        for finished, its_attempts in zip(queued, tried, strict=True):
            url = finished.url
            attempts.extend(
                AttemptRow(run_id, attempt.url, attempt.number, attempt.outcome,
                           attempt.status, attempt.error, attempt.waited, attempt.at)
                for attempt in its_attempts)
            if finished.http is not None:
                # The HTTP exchange stays in the catalog too (a browser document that is a
                # revisit of it needs its original), before the browser capture.
                captures.append((finished.http, finished.http_text, finished.http_title, None,
                                 finished.http_page))
                if finished.kept_http is not None:
                    kept.append(finished.kept_http)
            result = finished.result
            if isinstance(result, Capture):
                if finished.browser is not None:
                    browsers.append((len(captures), finished.browser))
                captures.append((result, finished.text, finished.title, finished.fingerprint,
                                 finished.page))
                if finished.kept is not None:
                    kept.append(finished.kept)
            capture = result if isinstance(result, Capture) else None
            results.append(ResultIn(
                run_id, url, finished.judgement,
                http_status=capture.status if capture else None,
                final_url=capture.final_url if capture else None,
                attempts=result.attempts,
                checked_at=utcnow(),
            ))
        if attempts:
            catalog.record_attempts(attempts)
        if captures:
            ids = catalog.record_captures(run_id, captures)
            for index, browser in browsers:
                browser.record(catalog, ids[index])
        if kept:
            catalog.record_provenances(
                (k.record_id, k.cited_url, k.text, k.sha256, k.metadata_id) for k in kept)
        catalog.record_results(results)
        return kept


def record_provenance(catalog: Catalog, kept: provenance.Kept | None) -> None:
    if kept is not None:
        catalog.record_provenance(kept.record_id, kept.cited_url, kept.text, kept.sha256,
                                  kept.metadata_id)


def log_custody(settings: Settings, action: str, kept: list[provenance.Kept]) -> None:
    """One custody entry per capture or rescue in ``kept``, after their catalog rows are
    committed; one fsync for all."""
    from archiver import custody, provenance

    if not kept:
        return
    custody.Custody(settings.archive.dir, settings.provenance.actor
                    or provenance.default_actor()).append_many(
        [(action, k.cited_url, k.sha256,
          {"record_id": k.record_id, "provenance_record_id": k.metadata_id,
           "payload_digest": k.payload_digest, "warc": k.warc_path}) for k in kept])
