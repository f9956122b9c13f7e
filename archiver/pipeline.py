"""Wires the stages for ``run`` and ``check``.

One code path serves both: extract every source → plan the distinct URLs → fetch (archiving
every hop) → judge → record in the catalog → rescue what is not healthy (each lookup starts
as soon as its URL's verdict is recorded, while other URLs are still being fetched) → build
the reports from the catalog. Reports are always built from the catalog, so ``archiver report`` (no
fetching) and a resumed run show exactly what a full run would.

``run`` fetches only what is not captured yet (unless ``refresh``); ``check`` re-tests
everything and reports what changed since the previous check. A check in which nearly every
host fails at once is an outage: it is recorded, but changes no link's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from archiver.catalog import Catalog
from archiver.config import Settings
from archiver.errors import ArchiverError
from archiver.models import (
    Capture,
    Change,
    ChangeKind,
    Document,
    FetchResult,
    FootnoteRef,
    Judgement,
    LinkRecord,
    LinkState,
    Memento,
    Source,
    Target,
    utcnow,
)

if TYPE_CHECKING:
    from archiver import provenance
    from archiver.catalog import StoredCapture
    from archiver.rescue import Breaker, Rescuer
    from archiver.warc import WarcWriter

__all__ = [
    "Progress",
    "RunOptions",
    "RunOutcome",
    "SilentProgress",
    "build_link_records",
    "execute",
    "plan_targets",
    "rebuild",
]


class Progress(Protocol):
    """What the pipeline tells the terminal while it works."""

    def stage(self, name: str, total: int) -> None: ...

    def advance(self, url: str, verdict: str) -> None: ...

    def done(self) -> None: ...


class SilentProgress:
    """Progress that says nothing (``--quiet``, JSON output, tests)."""

    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, url: str, verdict: str) -> None:
        pass

    def done(self) -> None:
        pass


@dataclass(frozen=True)
class RunOptions:
    """What the command asked for."""

    kind: str = "run"  # "run" or "check"
    refresh: bool = False
    rescue: bool = True
    rescue_capture: bool = False


@dataclass(frozen=True)
class SourceOutcome:
    source: Source
    document: Document | None
    error: str | None = None
    report_dir: Path | None = None
    links: tuple[LinkRecord, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    """What a run did, for the summary line and the exit code."""

    run_id: int
    kind: str
    sources: tuple[SourceOutcome, ...]
    fetched: int
    reused: int
    verdicts: Mapping[str, int]
    offline: bool = False
    outage: bool = False
    changes: tuple[Change, ...] = ()
    rescued: int = 0
    saved: int = 0
    this_run: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime = field(default_factory=utcnow)

    def summary(self) -> dict[str, object]:
        """What the catalog keeps about the run."""
        return {"fetched": self.fetched, "reused": self.reused,
                "verdicts": dict(self.verdicts), "this_run": dict(self.this_run),
                "offline": self.offline, "outage": self.outage, "rescued": self.rescued,
                "saved": self.saved, "changes": len(self.changes)}

    @property
    def links(self) -> tuple[LinkRecord, ...]:
        seen: dict[str, LinkRecord] = {}
        for outcome in self.sources:
            for link in outcome.links:
                seen.setdefault(link.url, link)
        return tuple(seen.values())

    @property
    def document_errors(self) -> tuple[str, ...]:
        return tuple(o.error for o in self.sources if o.error)


def plan_targets(documents: Mapping[str, Document]) -> list[Target]:
    """Distinct URLs in order of first citation, each with every footnote that cites it."""
    cited: dict[str, list[FootnoteRef]] = {}
    for source_id, doc in documents.items():
        for note in doc.footnotes:
            for url in note.urls:
                refs = cited.setdefault(url, [])
                ref = FootnoteRef(source_id, note.number)
                if ref not in refs:
                    refs.append(ref)
    return [Target(url, tuple(refs)) for url, refs in cited.items()]


def _read_sources(settings: Settings, ids: Sequence[str] | None) -> list[SourceOutcome]:
    from archiver.parse import read_document

    chosen = [settings.source(i) for i in ids] if ids else list(settings.sources)
    outcomes = []
    for source in chosen:
        try:
            outcomes.append(SourceOutcome(source, read_document(source.path)))
        except ArchiverError as exc:
            outcomes.append(SourceOutcome(source, None, error=str(exc)))
    return outcomes


# ── fetching and judging ─────────────────────────────────────────────────────


@dataclass
class _Fetched:
    """What one pass of fetching leaves for the run's summary, keyed by cited URL. Bodies
    are not kept (they are in the WARCs and the catalog), so memory stays flat however many
    URLs a run has."""

    judgements: dict[str, Judgement] = field(default_factory=dict)
    # Text similarity to the previous capture (content drift); None when not comparable.
    similarity: dict[str, float | None] = field(default_factory=dict)


async def _fetch_and_judge(
    settings: Settings,
    catalog: Catalog,
    run_id: int,
    targets: Sequence[Target],
    progress: Progress,
    *,
    compare_text: bool = False,
    on_judged: Callable[[str, Judgement], None] | None = None,
) -> _Fetched:
    """Fetch, probe, judge and record every target; with ``compare_text``, also measure how
    far each page's text drifted from its previous capture. ``on_judged(url, judgement)`` is
    called as soon as a URL is finished and committed (the rescue queues its lookup there).

    Each URL is finished completely (WARC records, capture, verdict, all in the catalog)
    before it counts as done, so a run killed at any moment resumes exactly where it
    stopped: what has a capture also has its verdict.
    """
    from archiver import classify, history, pagetext, soft404
    from archiver.fetch import Attempt, Fetcher
    from archiver.warc import WarcWriter

    fetched = _Fetched()
    progress.stage("fetch", len(targets))

    # Attempts are kept until their URL is finished, then written in the same transaction
    # as its capture and verdict (one commit per URL, not one per attempt).
    attempts: dict[str, list[Attempt]] = {}

    def on_attempt(attempt: Attempt) -> None:
        attempts.setdefault(attempt.url, []).append(attempt)

    writer = WarcWriter(
        settings.archive.dir,
        root=settings.root,
        run_id=str(run_id),
        max_size=settings.archive.warc_max_size,
        prefix=settings.archive.warc_prefix,
        find_payload=catalog.find_payload,
    )
    with writer:
        async with Fetcher(settings.fetch, writer, on_attempt=on_attempt) as fetcher:
            # One soft-404 probe per host and directory, shared by every URL under it.
            probes: dict[tuple[str, str], asyncio.Task[FetchResult]] = {}

            async def probe_for(capture: Capture) -> soft404.ProbeOutcome | None:
                if not soft404.needs_probe(capture):
                    return None
                key = soft404.probe_key(capture.final_url)
                if key not in probes:
                    probes[key] = asyncio.ensure_future(
                        fetcher.probe(soft404.probe_url(capture.final_url)))
                return soft404.ProbeOutcome.from_result(await probes[key])

            async def one(target: Target) -> None:
                url = target.url
                result = await fetcher.fetch(url)
                page = None
                probe = None
                if isinstance(result, Capture):
                    # In a worker thread: a large PDF or page would otherwise stall every
                    # other fetch on the event loop while it is parsed.
                    page = await asyncio.to_thread(pagetext.extract, result.content,
                                                   result.content_type, result.final_url)
                    probe = await probe_for(result)
                judgement = classify.classify(result, probe=probe, cited_url=url, page=page)
                # Drift means the evidence page changed; for an error page it means nothing.
                if compare_text and judgement.verdict.healthy and page is not None \
                        and page.text:
                    before = catalog.latest_capture(url)
                    fetched.similarity[url] = (
                        history.text_similarity(before.text, page.text)
                        if before is not None and before.text else None)
                if isinstance(result, Capture) and result.warc is not None:
                    # In the writer's thread, as the fetcher writes: waiting for its lock
                    # here would stall every other fetch on the event loop.
                    await asyncio.to_thread(
                        writer.write_metadata,
                        url=result.final_url,
                        concurrent_to=result.warc.record_id,
                        fields=[("cited-url", url)]
                        + [("cited-by", str(ref)) for ref in target.cited_by],
                        captured_at=result.captured_at,
                    )
                kept = await _write_provenance(settings, writer, result, url)
                # No await inside: the transaction must hold this URL's writes only.
                with catalog.transaction():
                    for hop_url in [url, *(hop.url for hop in result.hops)]:
                        for attempt in attempts.pop(hop_url, ()):
                            catalog.record_attempt(
                                run_id, attempt.url, attempt.number, attempt.outcome,
                                status=attempt.status, error=attempt.error,
                                waited=attempt.waited, at=attempt.at)
                    if isinstance(result, Capture):
                        catalog.record_capture(run_id, result, text=page.text if page else None,
                                               title=page.title if page else None)
                        _record_provenance(catalog, kept)
                    capture = result if isinstance(result, Capture) else None
                    catalog.record_result(
                        run_id, url, judgement,
                        http_status=capture.status if capture else None,
                        final_url=capture.final_url if capture else None,
                        attempts=result.attempts,
                        checked_at=utcnow(),
                    )
                _log_custody(settings, "capture", kept)
                fetched.judgements[url] = judgement
                progress.advance(url, judgement.verdict.value)
                if on_judged is not None:
                    on_judged(url, judgement)

            # Probes go first: queued behind a host's fetches, every URL of that host would
            # wait for its probe before its verdict could be recorded.
            for target in targets:
                if soft404.worth_probing(target.url):
                    key = soft404.probe_key(target.url)
                    if key not in probes:
                        probes[key] = asyncio.ensure_future(
                            fetcher.probe(soft404.probe_url(target.url)))
            # A bounded pool of workers over the targets, interleaved by host: thousands of
            # waiting tasks would cost memory, and host by host order would leave every
            # worker queued behind one host's politeness limit.
            queue = iter(_interleave_by_host(targets))

            async def worker() -> None:
                for target in queue:
                    await one(target)

            workers = min(len(targets), max(64, settings.fetch.concurrency * 4))
            tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in [*tasks, *probes.values()]:
                    task.cancel()
                await asyncio.gather(*tasks, *probes.values(), return_exceptions=True)
                raise
    return fetched


def _interleave_by_host(targets: Sequence[Target]) -> list[Target]:
    """Targets in round-robin order of their hosts (first host's first URL, second host's
    first URL, ...), each host's URLs in citation order."""
    by_host: dict[str, list[Target]] = {}
    for target in targets:
        try:
            host = urlsplit(target.url).netloc.lower()
        except ValueError:
            host = ""
        by_host.setdefault(host, []).append(target)
    ordered: list[Target] = []
    for row in itertools.zip_longest(*by_host.values()):
        ordered.extend(t for t in row if t is not None)
    return ordered


# ── rescue ───────────────────────────────────────────────────────────────────


# Why a failing link's lookup was not made, for the report (LinkRecord.not_looked_up), by
# rescue.LookupResult.failure.
_NOT_LOOKED_UP = {
    "unreachable": "the Internet Archive could not be reached",
    "rate_limited": "the Internet Archive asked us to slow down for longer than a run waits",
}


class _Lookups:
    """The rescue step, overlapping the fetch.

    ``want(url, source)`` queues the lookup of a URL whose verdict is not healthy (unless
    the catalog already has a fresh answer); up to ``[rescue] concurrency`` lookups run at
    once, while other URLs are still being fetched, so a run ends with only the lookups still
    outstanding. ``finish()`` waits for those; ``cancel()`` stops them. Each result is written
    as soon as it comes, in one catalog write with no await inside (as each fetched URL is):
    an answer (a copy, or "no copy") is cached; a lookup that could not be made is recorded
    as a failure, never as "no copy", so the report says "not looked up" and the next run
    asks again.
    """

    def __init__(self, settings: Settings, catalog: Catalog, rescuer: Rescuer,
                 progress: Progress) -> None:
        self._catalog = catalog
        self._rescuer = rescuer
        self._progress = progress
        self._stale = utcnow() - timedelta(days=settings.rescue.recheck_days)
        self._queue: asyncio.Queue[tuple[str, Source] | None] = asyncio.Queue()
        self._wanted: dict[str, Source] = {}
        self._outstanding = 0
        self.not_made: Counter[str] = Counter()  # lookups that could not be made, by kind
        self._reporting = False  # the progress shows lookups once fetching is over
        self._workers = [asyncio.ensure_future(self._work())
                         for _ in range(settings.rescue.concurrency)]

    @property
    def wanted(self) -> Mapping[str, Source]:
        """Every URL asked for, cached or not, with the source whose date it aims at."""
        return self._wanted

    def want(self, url: str, source: Source) -> None:
        if url in self._wanted:
            return
        self._wanted[url] = source
        cached = self._catalog.get_memento(url, near=source.published)
        if cached is not None and (cached.memento is not None
                                   or cached.looked_up_at > self._stale):
            return
        self._outstanding += 1
        self._queue.put_nowait((url, source))

    async def _work(self) -> None:
        while (item := await self._queue.get()) is not None:
            url, source = item
            result = await self._rescuer.lookup(url, source.published)
            if result.error is None:
                self._catalog.put_memento(url, result.memento, utcnow(), near=source.published)
            else:  # "could not ask" is not an answer: not cached, asked again next run
                self.not_made[result.failure or "failed"] += 1
                self._catalog.put_lookup_failure(url, result.failure or "failed", result.error,
                                                 utcnow(), requests=result.requests,
                                                 near=source.published)
            self._outstanding -= 1
            if self._reporting:
                self._progress.advance(url, "memento" if result.memento else
                                       "none" if result.error is None else "not looked up")

    async def finish(self) -> None:
        """Wait for the lookups still queued or running."""
        if self._outstanding:
            self._progress.stage("rescue", self._outstanding)
            self._reporting = True
        for _ in self._workers:
            self._queue.put_nowait(None)  # after every queued URL: workers drain, then stop
        await asyncio.gather(*self._workers)

    def note(self) -> str | None:
        """The run's note when some lookups could not be made, else ``None``."""
        total = sum(self.not_made.values())
        if not total:
            return None
        short = {"unreachable": "could not be reached", "rate_limited": "rate-limited"}
        why = ", ".join(f"{n} {short.get(kind, 'failed')}"
                        for kind, n in self.not_made.most_common())
        return (f"Internet Archive: {total} lookup(s) could not be made ({why}); those links "
                "say \"not looked up\", and the next run asks again.")

    async def cancel(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)


async def _fetch_and_rescue(
    settings: Settings,
    catalog: Catalog,
    run_id: int,
    todo: Sequence[Target],
    targets: Sequence[Target],
    source_of: Mapping[str, Source],
    progress: Progress,
    *,
    compare_text: bool,
    rescue: bool,
    capture: bool,
    breaker: Breaker,
) -> tuple[_Fetched, int, str | None]:
    """Fetch and judge ``todo`` and, with ``rescue``, look every failing link of ``targets``
    up in the web archive meanwhile (``_Lookups``); with ``capture``, then copy the mementos
    into our WARCs. Returns what was fetched, how many failing links have a memento (0
    without ``rescue``) and a note when some lookups could not be made. ``breaker`` is the
    run's: a host given up on is not asked again."""
    from archiver.rescue import Rescuer

    if not rescue:
        return (await _fetch_and_judge(settings, catalog, run_id, todo, progress,
                                       compare_text=compare_text)
                if todo else _Fetched()), 0, None
    async with Rescuer(settings.rescue, user_agent=settings.fetch.user_agent,
                       breaker=breaker) as rescuer:
        lookups = _Lookups(settings, catalog, rescuer, progress)
        try:
            # Links not fetched again in this run keep their last verdict: asked at once.
            fetching = {t.url for t in todo}
            for target in targets:
                last = catalog.last_result(target.url)
                if target.url not in fetching and last is not None \
                        and not last.verdict.healthy:
                    lookups.want(target.url, source_of[target.url])

            def judged(url: str, judgement: Judgement) -> None:
                if not judgement.verdict.healthy:
                    lookups.want(url, source_of[url])

            fetched = (await _fetch_and_judge(settings, catalog, run_id, todo, progress,
                                              compare_text=compare_text, on_judged=judged)
                       if todo else _Fetched())
            await lookups.finish()
        except BaseException:
            await lookups.cancel()
            raise
    wanted = lookups.wanted
    if capture and wanted:
        await _capture_mementos(settings, catalog, run_id, wanted)
    found = sum(1 for url, source in wanted.items()
                if (c := catalog.get_memento(url, near=source.published)) is not None
                and c.memento is not None)
    return fetched, found, lookups.note()


async def _capture_mementos(
    settings: Settings, catalog: Catalog, run_id: int, wanted: Mapping[str, Source]
) -> None:
    from archiver.fetch import Fetcher
    from archiver.warc import WarcWriter

    mementos: list[tuple[str, Memento]] = []
    for url, source in wanted.items():
        cached = catalog.get_memento(url, near=source.published)
        memento = cached.memento if cached is not None else None
        if memento is not None and memento.raw_url and not catalog.is_captured(memento.raw_url):
            mementos.append((url, memento))
    if not mementos:
        return
    writer = WarcWriter(settings.archive.dir, root=settings.root, run_id=f"{run_id}-rescue",
                        max_size=settings.archive.warc_max_size,
                        prefix=settings.archive.warc_prefix, find_payload=catalog.find_payload)
    writer.from_archive = functools.partial(  # stored under the original URL and date
        _memento_origin, replay_base=settings.rescue.replay_base)
    with writer:
        async with Fetcher(settings.fetch, writer) as fetcher:
            results = await fetcher.fetch_all([m.raw_url or m.url for _, m in mementos])
            for url, memento in mementos:
                result = results.get(memento.raw_url or memento.url)
                if isinstance(result, Capture) and result.warc is not None:
                    catalog.record_capture(run_id, result, text=None, title=None)
                    writer.write_metadata(
                        url=result.url,
                        concurrent_to=result.warc.record_id,
                        fields=[("original-url", url),
                                ("memento-datetime", memento.datetime.isoformat())],
                        captured_at=result.captured_at,
                    )
                    kept = await _write_provenance(settings, writer, result, url, memento)
                    _record_provenance(catalog, kept)
                    _log_custody(settings, "rescue", kept)


async def _save_live(
    settings: Settings, catalog: Catalog, urls: Sequence[str], progress: Progress,
    breaker: Breaker | None = None,
) -> tuple[int, str | None]:
    """Submit healthy links never submitted before to Save Page Now, so that a public copy
    exists too. Returns how many were accepted, and a note when some could not be (no keys,
    or the archive could not be reached: the rest is then left for the next run, unasked).
    ``breaker`` is the run's: a host the lookups gave up on is not asked either."""
    from archiver.rescue import Rescuer, SaveStatus

    done = {SaveStatus.SUBMITTED.value, SaveStatus.PENDING.value, SaveStatus.SUCCESS.value}
    todo = [url for url in urls if (last := catalog.last_save(url)) is None
            or last[0] not in done]
    if not todo:
        return 0, None
    progress.stage("save", len(todo))
    accepted = 0
    note = None
    async with Rescuer(settings.rescue, user_agent=settings.fetch.user_agent,
                       breaker=breaker) as rescuer:
        for done_count, url in enumerate(todo):  # one at a time: SPN limits submissions
            result = await rescuer.save_page_now(url)
            if result.status is SaveStatus.KEYS_MISSING:
                note = f"Save Page Now is on, but not used: {result.message}"
                break
            if result.unreachable:
                # Not recorded as a submission: the next run submits these again.
                note = (f"Save Page Now: the Internet Archive could not be reached; "
                        f"{len(todo) - done_count} live link(s) not submitted, they will be "
                        f"on the next run ({result.message})")
                break
            catalog.record_save(url, result.status.value, job_id=result.job_id,
                                message=result.message, at=utcnow())
            accepted += result.status.value in done
            progress.advance(url, result.status.value)
    return accepted, note


# ── reports ──────────────────────────────────────────────────────────────────


def build_link_records(
    settings: Settings, catalog: Catalog, source_id: str, doc: Document, now: datetime,
    *, rescue: bool | None = None,
) -> tuple[LinkRecord, ...]:
    """One ``LinkRecord`` per distinct URL of ``doc``, from what the catalog knows.
    ``rescue`` says whether this run looked failing links up (default: ``[rescue] enabled``);
    a failing link with no cached answer gets ``not_looked_up``: why it was not asked."""
    from archiver.pagetext import excerpt

    records = []
    published = settings.source(source_id).published
    for url in doc.urls:
        footnotes = doc.citing[url]
        last = catalog.last_result(url)
        stored = catalog.latest_capture(url)
        status = catalog.link_status(url, settings.check, now)
        cached = catalog.get_memento(url, near=published)
        memento = cached.memento if cached is not None else None
        not_looked_up = None
        if last is not None and not last.verdict.healthy and cached is None:
            not_looked_up = _not_looked_up(settings, catalog, url, published, rescue)
        rescued = None
        if memento is not None and memento.raw_url:
            rescued_capture = catalog.latest_capture(memento.raw_url)
            rescued = rescued_capture.warc if rescued_capture is not None else None
        records.append(
            LinkRecord(
                url=url,
                footnotes=footnotes,
                verdict=last.verdict if last else None,
                reason=last.reason if last else "not checked yet",
                http_status=last.http_status if last else None,
                final_url=last.final_url if last else None,
                attempts=last.attempts if last else 0,
                # The record of this URL's fetch, not the record it deduplicates against
                # (which may be another URL's response of another date).
                capture=stored.warc if stored else None,
                capture_payload=stored.payload if stored else None,
                captured_at=stored.captured_at if stored else None,
                memento=memento if not (last and last.verdict.healthy) else None,
                state=status.state if last else None,
                failing_since=status.failing_since,
                title=stored.title if stored else None,
                excerpt=excerpt(stored.text) if stored and stored.text else None,
                provenance=_glance(catalog, stored),
                checked_at=last.checked_at if last else None,
                rescued=rescued,
                not_looked_up=not_looked_up,
            )
        )
    return tuple(records)


def _not_looked_up(settings: Settings, catalog: Catalog, url: str, published: date | None,
                   rescue: bool | None) -> str:
    """Why a failing link has no answer from the web archive, in a phrase."""
    if not (settings.rescue.enabled if rescue is None else rescue):
        return "rescue is disabled"
    failure = catalog.lookup_failure(url, near=published)
    if failure is None:
        return "not looked up yet"  # e.g. a run stopped before its lookups
    return _NOT_LOOKED_UP.get(failure.kind, f"the lookup failed ({failure.error})")


def _write_reports(
    settings: Settings,
    catalog: Catalog,
    outcomes: Sequence[SourceOutcome],
    *,
    changes: Sequence[Change] = (),
    notes: Sequence[str] = (),
    run: Mapping[str, object] | None = None,
    rescue: bool | None = None,
) -> list[SourceOutcome]:
    from archiver.report import build_report, write_reports

    now = utcnow()
    written = []
    for outcome in outcomes:
        if outcome.document is None:
            written.append(outcome)
            continue
        links = build_link_records(settings, catalog, outcome.source.id, outcome.document, now,
                                   rescue=rescue)
        urls = set(outcome.document.urls)
        folder = settings.archive.reports_dir / outcome.source.id
        report = build_report(
            outcome.source,
            outcome.document,
            links,
            generated_at=now,
            changes=[c for c in changes if c.url in urls],
            notes=notes,
            run=run,
            root=settings.root,
            report_dir=folder,
        )
        write_reports(report, folder)
        written.append(SourceOutcome(outcome.source, outcome.document, None, folder, links))
    return written


# ── the commands' entry points ───────────────────────────────────────────────


def execute(
    settings: Settings,
    source_ids: Sequence[str] | None,
    options: RunOptions,
    progress: Progress | None = None,
) -> RunOutcome:
    """Run or check: fetch, judge, record, rescue, report. Raises ``ArchiveError`` (exit 3)
    when the archive cannot be written and ``ArchiveLockedError`` when another run holds it;
    a failing URL is a verdict, never an exception."""
    progress = progress or SilentProgress()
    started = utcnow()
    outcomes = _read_sources(settings, source_ids)
    documents = {o.source.id: o.document for o in outcomes if o.document is not None}
    targets = plan_targets(documents)

    with Catalog.open(settings.archive.dir) as catalog, catalog.lock():
        run_id = catalog.begin_run(options.kind, [o.source.id for o in outcomes])
        try:
            outcome = _execute(settings, catalog, run_id, options, outcomes, targets,
                               progress, started)
        except BaseException as exc:
            status = "failed" if isinstance(exc, Exception) else "interrupted"
            with contextlib.suppress(ArchiverError):  # the disk may be what failed
                catalog.finish_run(run_id, status=status, summary={"error": str(exc)})
            raise
        catalog.finish_run(run_id, status="ok", summary=outcome.summary(),
                           offline=outcome.offline)
        return outcome


def _execute(
    settings: Settings,
    catalog: Catalog,
    run_id: int,
    options: RunOptions,
    outcomes: Sequence[SourceOutcome],
    targets: Sequence[Target],
    progress: Progress,
    started: datetime,
) -> RunOutcome:
    """The body of ``execute``, under the archive lock, inside run ``run_id``."""
    from archiver import history

    documents = {o.source.id: o.document for o in outcomes if o.document is not None}
    source_of = {}
    for target in targets:
        first = target.cited_by[0].source
        source_of[target.url] = next(o.source for o in outcomes if o.source.id == first)
    for source_id, doc in documents.items():
        catalog.record_citations(source_id, doc.footnotes)
    refresh = options.refresh or options.kind == "check"
    todo = [t for t in targets if refresh or not catalog.is_captured(t.url)]
    previous = {t.url: catalog.last_result(t.url) for t in targets}
    # Only a check reports what changed; its "newly dead" needs each link's state before.
    before = ({t.url: catalog.link_status(t.url, settings.check, started) for t in targets}
              if options.kind == "check" else {})
    from archiver.rescue import Breaker

    rescue = options.rescue and settings.rescue.enabled
    # One per run, shared by the lookups and Save Page Now: a host down for one is down.
    breaker = Breaker(settings.rescue.breaker_after)
    fetched, rescued, lookup_note = asyncio.run(_fetch_and_rescue(
        settings, catalog, run_id, todo, targets, source_of, progress,
        compare_text=options.kind == "check", rescue=rescue,
        capture=options.rescue_capture or settings.rescue.capture, breaker=breaker))

    verdicts = {url: j.verdict for url, j in fetched.judgements.items()}
    offline = bool(todo) and history.is_offline(verdicts, previous=previous)
    outage = offline or (bool(todo) and history.is_outage(
        verdicts, settings.check, previous=previous))
    if outage:
        catalog.mark_outage(run_id)
    checked_at = utcnow()

    changes: list[Change] = []
    if options.kind == "check" and not outage:
        current = {}
        for url, judgement in fetched.judgements.items():
            similarity = fetched.similarity.get(url)
            current[url] = (judgement,
                            catalog.link_status(url, settings.check, checked_at),
                            similarity)
        changes = history.changes(previous, current, settings.check, before=before,
                                  outage=outage)
        footnotes_of = {t.url: tuple(r.number for r in t.cited_by) for t in targets}
        changes = [_with_footnotes(c, footnotes_of.get(c.url, ())) for c in changes]

    # Offline, the "No network" note says it all (the lookups failed for the same reason).
    notes = [lookup_note] if lookup_note and not offline else []
    saved = 0
    if settings.rescue.save_page_now and not offline:
        live = [t.url for t in targets
                if (last := catalog.last_result(t.url)) is not None
                and last.verdict.healthy]
        saved, save_note = asyncio.run(_save_live(settings, catalog, live, progress,
                                                  breaker))
        if save_note:
            notes.append(save_note)
    if offline:
        notes.append("No network: nothing could be reached, so no link was judged "
                     "in this run; every link keeps the state it had.")
    elif outage:
        notes.append("Outage: nearly every host failed at once, so this check changes "
                      "no link's state.")
    counts = Counter(j.verdict.value for j in fetched.judgements.values())
    run_info = {"id": run_id, "kind": options.kind, "started_at": started,
                "fetched": len(todo), "offline": offline, "outage": outage}
    written = _write_reports(settings, catalog, outcomes, changes=changes,
                             notes=notes, run=run_info, rescue=rescue)
    all_counts = Counter(
        link.verdict.value if link.verdict else "unchecked"
        for o in written for link in o.links
    )
    return RunOutcome(
        run_id=run_id,
        kind=options.kind,
        sources=tuple(written),
        fetched=len(todo),
        reused=len(targets) - len(todo),
        verdicts=dict(all_counts),
        offline=offline,
        outage=outage,
        changes=tuple(changes),
        rescued=rescued,
        saved=saved,
        this_run=dict(counts),
        notes=tuple(notes),
        started_at=started,
        finished_at=utcnow(),
    )


def _with_footnotes(change: Change, footnotes: tuple[int, ...]) -> Change:
    from dataclasses import replace

    return replace(change, footnotes=footnotes)


def rebuild(settings: Settings, source_ids: Sequence[str] | None) -> list[SourceOutcome]:
    """Rebuild the reports from the catalog without fetching anything."""
    outcomes = _read_sources(settings, source_ids)
    with Catalog.open(settings.archive.dir) as catalog:
        return _write_reports(settings, catalog, outcomes)


def failing_at(outcome: RunOutcome, level: str) -> list[LinkRecord | Change]:
    """What makes ``check --fail-on LEVEL`` exit 1."""
    if level == "none" or outcome.outage:
        return []
    if level == "new":
        return [c for c in outcome.changes
                if c.kind in (ChangeKind.NEWLY_FAILING, ChangeKind.NEWLY_DEAD)]
    return [link for link in outcome.links
            if link.state in (LinkState.FAILING, LinkState.DEAD)
            or (link.verdict is not None and not link.verdict.healthy)]


# ── provenance and custody (archiver.provenance, archiver.custody) ─────────────


def _memento_origin(url: str, head: bytes, *, replay_base: str) -> tuple[str, datetime] | None:
    from archiver import provenance

    return provenance.memento_origin(url, head, replay_base=replay_base)


def _glance(catalog: Catalog, stored: StoredCapture | None) -> tuple[tuple[str, str | None], ...]:
    """The provenance at a glance of ``stored`` for the report; its payload digest alone when
    it was captured before provenance was recorded."""
    import json

    from archiver import provenance

    if stored is None or stored.warc is None:
        return ()
    row = catalog.provenance(stored.warc.record_id)
    facts = provenance.glance(json.loads(row[0])) if row is not None else {}
    facts["payload_digest"] = stored.payload_digest
    return tuple((k, None if v is None else str(v)) for k, v in facts.items())


async def _write_provenance(settings: Settings, writer: WarcWriter, result: FetchResult,
                            cited_url: str, memento: Memento | None = None
                            ) -> provenance.Kept | None:
    """Write the provenance record of ``result`` (a capture with a WARC record) in the
    writer's thread; ``None`` for failures."""
    from archiver import provenance

    if not isinstance(result, Capture) or result.warc is None:
        return None
    facts: tuple[tuple[str, str], ...] = ()
    if memento is not None:
        facts = (("archive", "Internet Archive (web.archive.org)"),
                 ("memento_url", memento.url),
                 ("memento_datetime", memento.datetime.isoformat()),
                 ("captured_by", "Internet Archive"),
                 ("fetched_from_archive_at", result.captured_at.isoformat()))
    shaped = provenance.capture_settings(settings.fetch.user_agent, http2=settings.fetch.http2)
    return await asyncio.to_thread(provenance.write, writer, result, cited_url=cited_url,
                                   settings=shaped, memento=facts)


def _record_provenance(catalog: Catalog, kept: provenance.Kept | None) -> None:
    if kept is not None:
        catalog.record_provenance(kept.record_id, kept.cited_url, kept.text, kept.sha256,
                                  kept.metadata_id)


def _log_custody(settings: Settings, action: str, kept: provenance.Kept | None) -> None:
    """One custody entry for a capture or rescue, after its catalog rows are committed."""
    from archiver import custody, provenance

    if kept is None:
        return
    custody.Custody(settings.archive.dir, settings.provenance.actor
                    or provenance.default_actor()).append(
        action, kept.cited_url, kept.sha256,
        {"record_id": kept.record_id, "provenance_record_id": kept.metadata_id,
         "payload_digest": kept.payload_digest, "warc": kept.warc_path})
