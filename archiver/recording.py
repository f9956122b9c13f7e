"""The catalog writer of the fetch stage: records finished URLs in batches.

The capture stage (``archiver.capturing``), in this process or in worker processes, hands
over one ``Finished`` record per cited URL after its WARC records are written. The recorder
is the one writer of the catalog for the run's fetching: it keeps each URL's attempts until
the URL is finished, then records attempts, captures, provenance and verdict of a batch of
URLs in one transaction, appends their custody entries with one fsync, and only then reports
them done (``on_recorded``: progress, the rescue's lookup queue, the run's summary).

Crash safety: a URL counts as captured only once its catalog rows are committed, and its
WARC records were written before it reached the recorder. A run killed at any moment leaves
at most one batch (``batch`` URLs or ``interval`` seconds of work) recorded in WARCs but not
in the catalog; the next run fetches those URLs again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
    commits when the batch is full; ``flush`` commits what is queued (``run`` does it every
    ``interval`` seconds until cancelled, and the caller once at the end). With
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

    def attempt(self, attempt: Attempt) -> None:
        self._attempts.setdefault(attempt.url, []).append(attempt)

    def add(self, finished: Finished) -> None:
        self._queued.append(finished)
        if len(self._queued) >= self.batch:
            self.flush()

    async def run(self) -> None:
        """Commit what is queued every ``interval`` seconds; runs until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        """Record every queued URL in one transaction, then their custody entries, then tell
        ``on_recorded``. Raises ``ArchiveError`` when the catalog or the custody log cannot
        be written (nothing of the batch then counts as done)."""
        queued, self._queued = self._queued, []
        if not queued:
            return
        if self.compare_text:
            for finished in queued:
                self._compare(finished)
        with self.catalog.transaction():
            custody = self._record(queued)
        if custody:
            log_custody(self.settings, "capture", custody)
        for finished in queued:
            self.on_recorded(finished)

    def _compare(self, finished: Finished) -> None:
        # The capture stage compared the page with the previous capture, in parallel (a
        # healthy page with text has a fingerprint then); a run's stage compares nothing.
        if finished.compared and finished.fingerprint is not None:
            self.similarity[finished.url] = finished.similarity

    def _record(self, queued: list[Finished]) -> list[provenance.Kept]:
        """The catalog rows of the URLs of ``queued`` (inside the batch's transaction), a
        statement per table for all of them, rows in the order the URLs finished; returns the
        provenance records whose custody entries are due."""
        catalog, run_id = self.catalog, self.run_id
        attempts: list[AttemptRow] = []
        captures: list[CaptureIn] = []
        browsers: list[tuple[int, Browsed]] = []  # (index in captures, outcome)
        kept: list[provenance.Kept] = []
        results: list[ResultIn] = []
        for finished in queued:
            url = finished.url
            for hop_url in (url, *finished.hop_urls):
                attempts.extend(
                    AttemptRow(run_id, attempt.url, attempt.number, attempt.outcome,
                               attempt.status, attempt.error, attempt.waited, attempt.at)
                    for attempt in self._attempts.pop(hop_url, ()))
            if finished.http is not None:
                # The HTTP exchange stays in the catalog too (a browser document that is a
                # revisit of it needs its original), before the browser capture.
                captures.append((finished.http, finished.http_text, finished.http_title, None))
                if finished.kept_http is not None:
                    kept.append(finished.kept_http)
            result = finished.result
            if isinstance(result, Capture):
                if finished.browser is not None:
                    browsers.append((len(captures), finished.browser))
                captures.append((result, finished.text, finished.title, finished.fingerprint))
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
