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
import gc
import hashlib
import itertools
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, overload
from urllib.parse import urlsplit

from archiver import collector, history
from archiver.catalog import Catalog, LinkFacts, PackedText, RunRow, StoredResult
from archiver.config import Settings
from archiver.errors import ArchiveError, ArchiverError
from archiver.models import (
    Capture,
    Change,
    ChangeKind,
    Document,
    FootnoteRef,
    Judgement,
    LinkRecord,
    LinkState,
    Memento,
    Source,
    Target,
    Verdict,
    isoformat,
    utcnow,
)
from archiver.spool import Spool

if TYPE_CHECKING:
    from archiver import support_store
    from archiver.capturing import Finished
    from archiver.catalog import StoredCapture
    from archiver.rescue import Breaker, Rescuer
    from archiver.support import EvidenceText, Support

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

log = logging.getLogger(__name__)


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
    # The links the terminal lists (not healthy, failing or dead, or not fetched), not every
    # link: a document of 100,000 URLs would hold them all (``verdicts`` counts them all).
    links: tuple[LinkRecord, ...] = ()
    # Its links by verdict ("unchecked" for a link not checked yet), in the order met.
    verdicts: Mapping[str, int] = field(default_factory=dict)
    # Each of its document's URLs' verdict, by position (``document.urls``): a URL that
    # several sources cite is counted once in the run's ``verdicts`` (``_distinct_counts``).
    url_verdicts: Sequence[Verdict | None] = ()


@dataclass(frozen=True)
class RunOutcome:
    """What a run did, for the summary line and the exit code."""

    run_id: int
    kind: str
    sources: tuple[SourceOutcome, ...]
    fetched: int
    reused: int
    # Distinct cited URLs by verdict, over every source read.
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
    # URLs that got an HTTP answer in this run, and those judged without the network
    # (invalid_url, private_address).
    reached: int = 0
    refused: int = 0
    # URL → why it was not fetched ("not fetched: run deadline of 60 s reached").
    not_fetched: Mapping[str, str] = field(default_factory=dict)
    # The outage test: distinct hosts this run tested the network on, and the fewest it needs.
    tested_hosts: int = 0
    min_hosts: int = 0
    # URLs that failed at network level in this run and had not last time.
    network_failures: int = 0

    @property
    def outage_test_applied(self) -> bool:
        return self.tested_hosts >= self.min_hosts

    def summary(self) -> dict[str, object]:
        """What the catalog keeps about the run (the reports rebuilt later read it back)."""
        return {"fetched": self.fetched, "reused": self.reused, "reached": self.reached,
                "refused": self.refused, "verdicts": dict(self.verdicts),
                "this_run": dict(self.this_run), "offline": self.offline,
                "outage": self.outage, "rescued": self.rescued, "saved": self.saved,
                "changes": len(self.changes), "notes": list(self.notes),
                "not_fetched": dict(self.not_fetched), "tested_hosts": self.tested_hosts,
                "min_hosts": self.min_hosts, "network_failures": self.network_failures}

    @property
    def link_count(self) -> int:
        """Distinct cited URLs in the sources read."""
        documents = [o.document for o in self.sources if o.document is not None]
        if len(documents) == 1:
            return len(documents[0].urls)
        return len({url for doc in documents for url in doc.urls})

    @property
    def links(self) -> tuple[LinkRecord, ...]:
        """The links the terminal lists (``SourceOutcome.links``), each URL once."""
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


#: A run with more distinct URLs than this keeps its parsed documents on disk while it
#: fetches (``archiver.docshelf``); as many as the tail holds in memory (``spool.HELD``).
SHELVE_AT = 4096


def _read_sources(settings: Settings, ids: Sequence[str] | None) -> list[SourceOutcome]:
    from archiver.parse import read_document

    chosen = [settings.source(i) for i in ids] if ids else list(settings.sources)
    outcomes = []
    # The collector off while parsing: a document of 100,000 footnotes makes millions of
    # objects that all live on, no cycle among them, and each full collection they set off
    # went over all made so far (about 2 s of 6.5 for such a document: more per footnote
    # the longer the document).
    with _collector_off():
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
    # How many URLs got an HTTP answer (any status).
    reached: int = 0
    # URL → why it was not fetched ("not fetched: run deadline of 60 s reached"): no verdict,
    # the link keeps its previous state and the next run tries it again.
    not_fetched: dict[str, str] = field(default_factory=dict)
    # The network watch saw nothing answer on enough hosts and stopped the run early.
    offline: bool = False
    notes: list[str] = field(default_factory=list)  # the browser stage's, said once


#: Outcomes (a failure verdict's value) that tell of a network that does not work.
_NETWORK_KINDS = frozenset(v.value for v in Verdict if v.network_level)

NO_NETWORK = "not fetched: no network"


class _NetworkWatch:
    """Tells early that there is no network at all, so an offline run stops after a few URLs
    instead of failing every one of them (and waiting through their retries).

    The sample is the first URL of each of the first ``min_hosts`` distinct hosts in fetch
    order, leaving out URLs that need no network and URLs that already failed at network level
    last time (as ``history.is_offline`` does). No network is *suspected* when the first
    outcome (first attempt, or the result when no request was made: a DNS failure) of every
    sample URL is a network failure and nothing at all has answered; it is *confirmed* when
    still nothing has answered once every URL started so far has a first outcome, or
    ``grace`` seconds after the suspicion arose provided a host outside the sample failed
    too: the URLs in flight on other hosts are what tells a network fault from the first few
    cited domains being dead, and a working network answers one of them within that time.
    One HTTP answer from anywhere ends the watch for the run. With fewer sample hosts than
    ``min_hosts`` the watch stays off, as the outage test does.
    """

    def __init__(self, sample: Sequence[str], min_hosts: int, grace: float = 2.0) -> None:
        self.sample = [_defrag(u) for u in sample]
        self.enabled = len(self.sample) >= max(min_hosts, 2)
        self.reached = False
        self.grace = grace
        self._first: dict[str, str] = {}
        self._started: set[str] = set()
        self._suspected_at: float | None = None

    def started(self, url: str) -> None:
        self._started.add(_defrag(url))

    def finished(self, url: str) -> None:
        """``url`` is done, with or without an outcome (not fetched: its host gave up)."""
        self._started.discard(_defrag(url))

    def outcome(self, url: str, kind: str) -> None:
        """``kind``: ``"response"`` or a failure verdict's value."""
        if kind == "response":
            self.reached = True
        if self.enabled and not self.reached:  # nothing reads them after that
            self._first.setdefault(_defrag(url), kind)

    @property
    def suspected(self) -> bool:
        return (self.enabled and not self.reached
                and all(self._first.get(u) in _NETWORK_KINDS for u in self.sample))

    def confirmed(self, now: float) -> bool:
        """Whether there is no network (``now``: ``time.monotonic()``); call while
        ``suspected``."""
        if not self.suspected:
            self._suspected_at = None
            return False
        if self._suspected_at is None:
            self._suspected_at = now
        if all(u in self._first for u in self._started):
            return True
        sample_hosts = {history.host_of(u) for u in self.sample}
        elsewhere = any(kind in _NETWORK_KINDS and history.host_of(url) not in sample_hosts
                        for url, kind in self._first.items())
        return elsewhere and now - self._suspected_at >= self.grace

    @property
    def online(self) -> bool:
        """Known not to be offline: the watch is off, something answered, or the sample
        showed a failure that is not the network's."""
        if not self.enabled or self.reached:
            return True
        known = [self._first.get(u) for u in self.sample]
        return all(k is not None for k in known) and not self.suspected


def _defrag(url: str) -> str:
    return url.split("#", 1)[0]


class _HeldProgress:
    """Progress held back while the network watch cannot yet tell whether there is a network:
    released as soon as it can, dropped when there is none (then the summary says it once)."""

    def __init__(self, inner: Progress, held: bool) -> None:
        self.inner = inner
        self.held = held
        self.events: list[tuple[str, str, int | str]] = []

    def stage(self, name: str, total: int) -> None:
        self._emit(("stage", name, total))

    def advance(self, url: str, verdict: str) -> None:
        self._emit(("advance", url, verdict))

    def done(self) -> None:
        pass

    def _emit(self, event: tuple[str, str, int | str]) -> None:
        if self.held:
            self.events.append(event)
        else:
            self._apply(event)

    def _apply(self, event: tuple[str, str, int | str]) -> None:
        kind, a, b = event
        if kind == "stage":
            self.inner.stage(a, int(b))
        else:
            self.inner.advance(a, str(b))

    def release(self) -> None:
        if self.held:
            self.held = False
            events, self.events = self.events, []
            for event in events:
                self._apply(event)

    def drop(self) -> None:
        self.events = []


async def _fetch_and_judge(
    settings: Settings,
    catalog: Catalog,
    run_id: int,
    targets: Sequence[Target],
    progress: Progress,
    *,
    compare_text: bool = False,
    on_judged: Callable[[str, Judgement], None] | None = None,
    previous: Mapping[str, StoredResult | None] | None = None,
    deadline_at: float | None = None,
    prejudged: _Prejudged | None = None,
) -> _Fetched:
    """Fetch, probe, judge and record every target; with ``compare_text``, also measure how
    far each page's text drifted from its previous capture. ``on_judged(url, judgement)`` is
    called as soon as a URL is finished and committed (the rescue queues its lookup there).
    ``prejudged`` judges the claim support of each URL's capture once it is queued for the
    catalog (``_Prejudged.take``).

    The stages: this coroutine hands targets out (interleaved by host, bounded in number),
    the capture stage (``archiver.capturing``; in worker processes sharded by host,
    ``archiver.shards``) fetches, judges and archives each, and the recorder
    (``archiver.recording``) writes them to the catalog in batches. A URL counts as done only
    once its catalog rows are committed, and its WARC records are written before that, so a
    run killed at any moment resumes where it stopped: what has a verdict has its capture,
    and at most two batches of captured URLs (``archiver.recording`` says how large) are
    fetched again.

    Some URLs may end up not fetched (``_Fetched.not_fetched``, with the reason), never
    judged: those still queued or in flight when ``deadline_at`` (a ``time.monotonic()``
    value) passes, those of a host given up after ``[fetch] host_give_up`` timeouts in a row,
    those of a worker process that died, and, when the network watch finds no network at
    all, every URL not finished by then. URLs that need no network (an invalid URL, a refused
    literal address) go first, so they are judged whatever happens to the rest.
    """
    from archiver import recording, shards, soft404
    from archiver.fetch import Attempt, Fetcher, HostGaveUp

    previous = previous or {}
    fetched = _Fetched()
    watch = _NetworkWatch((), 0)
    news: Callable[[], None] = lambda: None  # noqa: E731 (set once the stage is open)
    shown: _HeldProgress | None = None

    # Equal judgements are kept as one object ("answers 200 with content" for most URLs):
    # each arrives as its own copy from a worker, and the run holds one per URL.
    judgements: dict[Judgement, Judgement] = {}

    def recorded(finished: Finished) -> None:
        url, judgement = finished.url, finished.judgement
        fetched.judgements[url] = judgements.setdefault(judgement, judgement)
        if finished.reached:
            fetched.reached += 1
        assert shown is not None
        shown.advance(url, judgement.verdict.value)
        if on_judged is not None:
            on_judged(url, judgement)

    recorder = recording.Recorder(settings, catalog, run_id, on_recorded=recorded,
                                  compare_text=compare_text)

    def on_attempt(attempt: Attempt) -> None:
        recorder.attempt(attempt)
        watch.outcome(attempt.url, attempt.outcome)
        news()

    # Only deciding which URLs need no network: this fetcher never opens. Asked twice per
    # URL (the order, the network watch's sample), answered once.
    offline = functools.cache(Fetcher(settings.fetch, None).decided_offline)
    ordered = _fetch_order(targets, offline, previous)
    sample = _first_per_host(
        [t.url for t in ordered if not offline(t.url)
         and not ((p := previous.get(t.url)) is not None and p.verdict.network_level)],
        settings.check.outage_min_hosts)
    offline.cache_clear()  # an answer per URL, not asked again: freed before the fork
    workers = shards.worker_count(settings, len(ordered))
    # Workers for http:// URLs alone are forked without what only https needs.
    tls = any(t.url[:6].lower() == "https:" for t in ordered)
    # URLs checked before are fetched again (a check, a refresh, a run resumed): their
    # payloads may be the ones read then.
    reread = any(previous.get(t.url) is not None for t in targets)
    async with shards.open_shards(settings, catalog, run_id, workers, compare_text=compare_text,
                                  reread=reread, on_attempt=on_attempt, tls=tls) as stage:
        collector.resume()  # fetching starts (the workers are forked)
        watch = _NetworkWatch(sample, settings.check.outage_min_hosts)
        shown = _HeldProgress(progress, held=watch.enabled)
        shown.stage("fetch", len(targets))

        async def one(target: Target) -> None:
            finished = await stage.capture(target)
            watch.outcome(target.url, "response" if isinstance(finished.result, Capture)
                          else finished.result.verdict.value)
            network_news()
            # Stopped while waiting for the writer, the URL is queued already and the last
            # flush records it: it is judged in this run, not "not fetched".
            with contextlib.suppress(asyncio.CancelledError):
                await recorder.put(finished)
            if prejudged is not None:
                prejudged.take(finished)

        probes_started = False

        def network_news() -> None:
            nonlocal probes_started
            if watch.online:
                shown.release()
                if not probes_started:
                    # Probes go first: queued behind a host's fetches, every URL of that
                    # host would wait for its probe before its verdict could be recorded.
                    # Not before the network is known to work: offline they would only
                    # double the wait.
                    probes_started = True
                    stage.start_probes([t.url for t in ordered
                                        if soft404.worth_probing(t.url)])

        news = network_news
        network_news()
        # A bounded pool of workers over the targets, interleaved by host: thousands of
        # waiting tasks would cost memory, and host by host order would leave every worker
        # queued behind one host's politeness limit.
        queue = iter(ordered)
        running: dict[str, asyncio.Task[None]] = {}
        stopped: list[str] = []  # why no more URLs are fetched (first reason wins)

        def stop(reason: str) -> None:
            if not stopped:
                stopped.append(reason)
            for task in list(running.values()):
                task.cancel()

        async def next_target() -> Target | None:
            while not stopped:
                if watch.suspected:
                    if watch.confirmed(time.monotonic()):
                        fetched.offline = True
                        stop(NO_NETWORK)
                        return None
                    await asyncio.sleep(0.02)  # the URLs in flight will tell
                    continue
                return next(queue, None)
            return None

        async def worker() -> None:
            while (target := await next_target()) is not None:
                watch.started(target.url)
                task = asyncio.ensure_future(one(target))
                running[target.url] = task
                try:
                    await asyncio.wait([task])
                except asyncio.CancelledError:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise
                finally:
                    running.pop(target.url, None)
                    watch.finished(target.url)
                if task.cancelled():
                    fetched.not_fetched[target.url] = stopped[0] if stopped \
                        else "not fetched: interrupted"
                    continue
                error = task.exception()
                if isinstance(error, HostGaveUp):
                    fetched.not_fetched[target.url] = f"not fetched: {error.reason}"
                    shown.advance(target.url, "not fetched")
                elif isinstance(error, shards.ShardLost):
                    fetched.not_fetched[target.url] = str(error)
                    shown.advance(target.url, "not fetched")
                elif error is not None:
                    raise error

        loop = asyncio.get_running_loop()
        timer = None
        if deadline_at is not None:
            seconds = settings.fetch.run_deadline
            timer = loop.call_at(
                loop.time() + max(0.0, deadline_at - time.monotonic()), stop,
                f"not fetched: run deadline of {seconds:g} s reached")
        pool = min(len(ordered), max(64, settings.fetch.concurrency * 4))
        tasks = [asyncio.ensure_future(worker()) for _ in range(pool)]
        flusher = asyncio.ensure_future(recorder.run())
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            # What finished before a stop is recorded whatever stopped the rest.
            recorder.flush()
        for target in queue:  # what was still queued when fetching stopped
            fetched.not_fetched[target.url] = stopped[0] if stopped \
                else "not fetched: interrupted"
    fetched.similarity.update(recorder.similarity)
    if fetched.offline:
        shown.drop()
    else:
        shown.release()
    fetched.notes.extend(stage.notes)
    return fetched


def _fetch_order(
    targets: Sequence[Target],
    offline: Callable[[str], bool],
    previous: Mapping[str, StoredResult | None],
) -> list[Target]:
    """The order URLs are fetched in: those that need no network first (they are judged
    whatever happens to the network or the run's deadline), then round-robin by host; within
    a host, URLs never checked first, then the longest unchecked (so a run cut by its
    deadline or a host given up does not leave the same URLs unchecked every time)."""
    def last_checked(target: Target) -> str:
        result = previous.get(target.url)
        return result.checked_at.isoformat() if result is not None else ""

    first = [t for t in targets if offline(t.url)]
    rest = sorted((t for t in targets if not offline(t.url)), key=last_checked)
    return first + _interleave_by_host(rest)


def _first_per_host(urls: Sequence[str], count: int) -> list[str]:
    """The first URL of each of the first ``count`` distinct hosts of ``urls``."""
    chosen: dict[str, str] = {}
    for url in urls:
        chosen.setdefault(history.host_of(url), url)
        if len(chosen) >= count:
            break
    return list(chosen.values())


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
    breaker: Breaker | None,
    previous: Mapping[str, StoredResult | None],
    deadline_at: float | None,
    prejudged: _Prejudged | None = None,
) -> tuple[_Fetched, int, str | None]:
    """Fetch and judge ``todo`` and, with ``rescue``, look every failing link of ``targets``
    up in the web archive meanwhile (``_Lookups``); with ``capture``, then copy the mementos
    into our WARCs. Returns what was fetched, how many failing links have a memento (0
    without ``rescue``) and a note when some lookups could not be made. ``breaker`` is the
    run's: a host given up on is not asked again. ``previous``, ``deadline_at`` and
    ``prejudged`` are ``_fetch_and_judge``'s. Offline, the lookups still waiting are
    dropped: they would only fail the same way, and their links stay "not looked up"."""
    if not rescue:
        return (await _fetch_and_judge(settings, catalog, run_id, todo, progress,
                                       compare_text=compare_text, previous=previous,
                                       deadline_at=deadline_at, prejudged=prejudged)
                if todo else _Fetched()), 0, None
    from archiver.rescue import Rescuer

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
                                              compare_text=compare_text, on_judged=judged,
                                              previous=previous, deadline_at=deadline_at,
                                              prejudged=prejudged)
                       if todo else _Fetched())
            if fetched.offline:
                await lookups.cancel()
            else:
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
    from archiver import capturing, recording
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
                    kept = capturing.write_provenance(settings, writer, result, url,
                                                      memento)
                    recording.record_provenance(catalog, kept)
                    recording.log_custody(settings, "rescue", [kept] if kept else [])


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
    *, rescue: bool | None = None, not_fetched: Mapping[str, str] | None = None,
) -> tuple[LinkRecord, ...]:
    """``link_records`` in a tuple."""
    return tuple(link_records(settings, catalog, source_id, doc, now, rescue=rescue,
                              not_fetched=not_fetched))


def link_records(
    settings: Settings, catalog: Catalog, source_id: str, doc: Document, now: datetime,
    *, rescue: bool | None = None, not_fetched: Mapping[str, str] | None = None,
) -> Iterator[LinkRecord]:
    """One ``LinkRecord`` per distinct URL of ``doc``, in its order, from what the catalog
    knows (read ``_FACTS_CHUNK`` URLs at a time, made as they are asked for).
    ``rescue`` says whether this run looked failing links up (default: ``[rescue] enabled``);
    a failing link with no cached answer gets ``not_looked_up``: why it was not asked.
    ``not_fetched`` (URL → reason) marks the URLs the run did not fetch: they keep their
    previous verdict and state, and their reason says why and when that result is from."""
    for link, _ in _records_and_facts(settings, catalog, source_id, doc, now, rescue=rescue,
                                      not_fetched=not_fetched):
        yield link


def _records_and_facts(
    settings: Settings, catalog: Catalog, source_id: str, doc: Document, now: datetime,
    *, rescue: bool | None = None, not_fetched: Mapping[str, str] | None = None,
    unpack: bool = False, prejudged: _Prejudged | None = None, recall: bool = False,
    keeper: support_store.Keeper | None = None,
) -> Iterator[tuple[LinkRecord, LinkFacts]]:
    """``link_records``, each with the catalog's facts it was made from. ``unpack``: the
    page text claim support reads of a link (``_text_source``) is unpacked whole once, for
    the record's excerpt and for claim support (``_Unpacked``), rather than its head for the
    one and all of it again for the other; not for the texts ``prejudged`` judged during
    the fetch (``_Prejudged.vouch``): their excerpt is made already, and claim support;
    nor, with ``recall``, for the texts whose claim support the catalog keeps
    (``_recalled``; ``keeper`` is told of the supports taken)."""
    from archiver.history import status_of

    not_fetched = not_fetched or {}
    published = settings.source(source_id).published
    each = _link_facts(catalog, doc.urls, near=published, until=now)
    if prejudged is not None:
        each = prejudged.vouch(each)
    if recall:
        each = _recalled(catalog, each, doc, source_id, keeper)
    for url, facts in _unpacking(each) if unpack else each:
        footnotes = doc.citing[url]
        last = facts.last
        stored, browser = facts.capture, facts.browser
        status = status_of(facts.streak, settings.check)
        cached = facts.lookup
        memento = cached.memento if cached is not None else None
        not_looked_up = None
        if last is not None and not last.verdict.healthy and cached is None:
            not_looked_up = _not_looked_up(settings, catalog, url, published, rescue)
        rescued = None
        if memento is not None and memento.raw_url:
            rescued_capture = catalog.latest_capture(memento.raw_url)
            rescued = rescued_capture.warc if rescued_capture is not None else None
        yield LinkRecord(
            url=url,
            footnotes=footnotes,
            verdict=last.verdict if last else None,
            reason=_reason(last, not_fetched.get(url)),
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
            excerpt=_excerpt(facts.text),
            provenance=_glance(stored, facts.provenance, facts.text),
            checked_at=last.checked_at if last else None,
            rescued=rescued,
            not_looked_up=not_looked_up,
            payload_digest=stored.payload_digest if stored else None,
            truncated=stored.truncated if stored else None,
            capture_mode=(("browser" if browser and browser.mode == "browser" else "http")
                          if stored else None),
            screenshot=browser.screenshot if browser else None,
            profile=bool(browser and browser.profile),
            browser_lost=browser.lost if browser and browser.mode == "http" else None,
        ), facts


#: URLs per bulk read of the catalog: few queries, and only this many page texts in memory.
_FACTS_CHUNK = 512


def _read_whole(facts: LinkFacts) -> bool:
    """Whether claim support reads a link's packed text whole (``_text_source``): a
    healthy link's capture, not a browser's, whose text the catalog holds and which was
    not judged during the fetch (``_Vouched``)."""
    if facts.text is None or facts.browser is not None or facts.capture is None \
            or isinstance(facts.text, _Vouched):
        return False
    last = facts.last
    return last is not None and last.verdict.healthy


#: Links per batch of texts inflated in ``_unpacking``'s thread, and batches inflated ahead
#: of the one read: a few MB of inflated text at most, however many links.
_UNPACK_BATCH = 32
_UNPACK_AHEAD = 2


def _unpacking(each: Iterator[tuple[str, LinkFacts]]) -> Iterator[tuple[str, LinkFacts]]:
    """``each`` link's facts, the text claim support reads (``_read_whole``) unpacked whole
    (``_Unpacked``). The inflating (zlib, which lets go of the GIL) is done in a thread a
    few batches ahead of the caller, on the machine's other core; the decoding here. Reads
    ``each`` in this thread only (it reads the catalog). Raises what ``PackedText.text``
    raises for a damaged text, when that link's turn comes."""
    from concurrent.futures import Future, ThreadPoolExecutor

    def inflate(texts: list[PackedText | None]) -> list[bytes | None]:
        return [None if text is None else text.inflated() for text in texts]

    with ThreadPoolExecutor(1, thread_name_prefix="archiver-unpack") as pool:
        pending: deque[tuple[list[tuple[str, LinkFacts]], Future[list[bytes | None]]]] = \
            deque()

        def ahead() -> None:
            batch = list(itertools.islice(each, _UNPACK_BATCH))
            if batch:
                pending.append((batch, pool.submit(inflate, [
                    facts.text if _read_whole(facts) else None for _, facts in batch])))

        for _ in range(_UNPACK_AHEAD):
            ahead()
        while pending:
            batch, job = pending.popleft()
            ahead()
            raws = job.result()
            for n, (url, facts) in enumerate(batch):
                raw, raws[n] = raws[n], None  # each inflated text let go once decoded
                if raw is not None and facts.text is not None:
                    facts = replace(facts, text=_Unpacked(facts.text.blob, raw.decode("utf-8")))
                    del raw
                yield url, facts


@dataclass(frozen=True)
class _Unpacked(PackedText):
    """A ``PackedText`` unpacked already: ``whole`` is its text."""

    whole: str = ""

    def text(self) -> str:
        return self.whole

    def head(self, chars: int) -> tuple[str, bool]:
        return self.whole[:max(chars, 0)], len(self.whole) <= chars


def _excerpt(text: PackedText | None) -> str | None:
    """``pagetext.excerpt`` of a link's text, unpacking only its head unless the head is
    mostly whitespace; ``None`` for no text or an empty one."""
    from archiver.pagetext import excerpt, excerpt_head

    if text is None:
        return None
    if isinstance(text, _Vouched) and text.judged is not None \
            and not text.judged.recalled:  # made during the fetch
        return text.judged.excerpt
    if isinstance(text, _Unpacked):  # the head is a slice: the excerpt of the whole text
        return excerpt(text.whole) if text.whole else None
    head, complete = text.head(excerpt_head())
    if complete:
        return excerpt(head) if head else None
    return excerpt(head, whole=text.text)


def _recalled(catalog: Catalog, each: Iterator[tuple[str, LinkFacts]], doc: Document,
              source_id: str, keeper: support_store.Keeper | None = None,
              ) -> Iterator[tuple[str, LinkFacts]]:
    """``each`` link's facts, its text ``_Vouched`` for with the supports the catalog keeps
    (``support_store``) when every footnote with claims that cites it has one judged by
    this code on this very text (the same packed bytes) read as the same kind: claim support
    takes those as they are (``_FedTexts.judged``), and the text is not unpacked for it.
    A link with one footnote missing is judged whole as before. Read ``_FACTS_CHUNK`` links
    at a time, a query each for the very supports wanted. ``keeper``: told of each support
    taken (a run marks them used). A catalog that cannot be read for them (a damaged table)
    is a miss, logged once: everything is judged as before."""
    from archiver import support_store
    from archiver.support import text_kind

    rules = support_store.rules()
    claims_of = _claims_by_number(doc)
    readable = True
    while chunk := list(itertools.islice(each, _FACTS_CHUNK)):
        # Each link's text digest and kind, and its wanted supports: (footnote, its claims,
        # the key of its support).
        wanted: dict[str, tuple[bytes, str, list[tuple[int, tuple[str, ...],
                                                         tuple[str, str, str]]]]] = {}
        for url, facts in chunk if readable else ():
            if _read_whole(facts):
                assert facts.text is not None and facts.capture is not None
                digest = _digest(facts.text.blob)
                kind = text_kind(facts.capture.content_type)
                wanted[url] = (digest, kind, [
                    (number, claims, (digest.hex(), kind, support_store.claims_key(claims)))
                    for number in doc.citing[url] if (claims := claims_of.get(number))])
        kept: dict[tuple[str, str, str], tuple[str, str]] = {}
        if wanted:
            try:
                kept = catalog.judged_supports(
                    rules, (key for _, _, each_wanted in wanted.values()
                            for _, _, key in each_wanted))
            except ArchiveError as exc:
                log.warning("claim support kept in the catalog cannot be read (%s); it is "
                            "judged again", exc)
                readable = False
        for url, facts in chunk:
            if kept and url in wanted and wanted[url][2]:
                digest, kind, footnotes = wanted[url]
                supports: dict[tuple[str, int], Support] = {}
                taken = []
                for number, claims, key in footnotes:
                    row = kept.get(key)
                    support = None if row is None else support_store.decode(
                        row[0], number, url, claims, kind)
                    if row is None or support is None:
                        break
                    supports[(source_id, number)] = support
                    taken.append((key, row[1]))
                else:
                    assert facts.text is not None
                    facts = replace(facts, text=_Vouched(facts.text.blob, _Prejudgement(
                        digest, kind, None, supports, None, recalled=True)))
                    if keeper is not None:
                        for key, used in taken:
                            keeper.took(key, used)
            yield url, facts


def _claims_by_number(doc: Document) -> dict[int, tuple[str, ...]]:
    """Each footnote's distinct claims, as ``support.each_support`` reads them, by number;
    none for a number two footnotes have (supports are found by number: those are judged
    in the tail, each on its own claims)."""
    found: dict[int, tuple[str, ...]] = {}
    twice = set()
    for note in doc.footnotes:
        if note.number in found:
            twice.add(note.number)
        found[note.number] = tuple(dict.fromkeys(c.text for c in note.claims))
    for number in twice:
        found[number] = ()
    return found


def _link_facts(catalog: Catalog, urls: Sequence[str], *, near: date | None,
                until: datetime | None = None) -> Iterator[tuple[str, LinkFacts]]:
    """``Catalog.link_facts`` of ``urls``, in order, read ``_FACTS_CHUNK`` URLs at a time."""
    for start in range(0, len(urls), _FACTS_CHUNK):
        chunk = urls[start:start + _FACTS_CHUNK]
        facts = catalog.link_facts(chunk, near=near, until=until)
        for url in chunk:
            yield url, facts[url]


def _not_looked_up(settings: Settings, catalog: Catalog, url: str, published: date | None,
                   rescue: bool | None) -> str:
    """Why a failing link has no answer from the web archive, in a phrase."""
    if not (settings.rescue.enabled if rescue is None else rescue):
        return "rescue is disabled"
    failure = catalog.lookup_failure(url, near=published)
    if failure is None:
        return "not looked up yet"  # e.g. a run stopped before its lookups
    return _NOT_LOOKED_UP.get(failure.kind, f"the lookup failed ({failure.error})")


def _reason(last: StoredResult | None, not_fetched: str | None) -> str:
    if not_fetched is None:
        return last.reason if last else "not checked yet"
    if last is None:
        return f"{not_fetched}; not checked yet"
    return f"{not_fetched}; result of {isoformat(last.checked_at)[:10]}: {last.reason}"


@dataclass(frozen=True)
class _RunContext:
    """What the reports say about the run that wrote them, derived from the run's stored
    summary alone, so a report rebuilt later from the catalog says the same."""

    notes: tuple[str, ...] = ()
    info: Mapping[str, object] = field(default_factory=dict)
    not_fetched: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, run_id: int, kind: str, started_at: datetime,
           summary: Mapping[str, object]) -> _RunContext:
        not_fetched = summary.get("not_fetched") or {}
        notes = summary.get("notes") or []
        assert isinstance(not_fetched, dict) and isinstance(notes, list)
        info = {"id": run_id, "kind": kind, "started_at": started_at}
        for key in ("fetched", "reached", "offline", "outage"):
            info[key] = summary.get(key)
        info["not_fetched"] = len(not_fetched)
        return cls(tuple(str(n) for n in notes), info,
                   {str(k): str(v) for k, v in not_fetched.items()})

    @classmethod
    def stored(cls, catalog: Catalog, source_id: str) -> _RunContext:
        """The context of the newest finished run or check that covered ``source_id``."""
        row: RunRow | None = next(
            (r for r in catalog.runs(limit=200) if r.kind in ("run", "check")
             and r.status == "ok" and source_id in r.sources), None)
        if row is None:
            return cls()
        return cls.of(row.id, row.kind, row.started_at, row.summary)

    def notes_for(self, urls: Sequence[str]) -> tuple[str, ...]:
        """The run's notes, then one per reason for the URLs of ``urls`` not fetched, in
        the order of ``urls`` (not for "no network": the run's own note says it once)."""
        by_reason: dict[str, list[str]] = {}
        for url in urls:
            reason = self.not_fetched.get(url)
            if reason is not None and reason != NO_NETWORK:
                by_reason.setdefault(reason, []).append(url)
        extra = [
            f"{reason[:1].upper()}{reason[1:]}: {len(group)} URL(s) keep their previous "
            f"state and will be tried again by the next run: {', '.join(group)}"
            for reason, group in by_reason.items()
        ]
        return (*self.notes, *extra)


class _Links:
    """A source's link records, spooled to disk as they are made (``Spool``), and what the
    terminal needs of them kept in memory: the count by verdict, in the order met, and the
    links it lists (not healthy, failing or dead, or not fetched: ``not_fetched``). Counted
    as they are made, so that nothing reads the spool back for it: the report's figures
    (``tally``) and, by position, each link's verdict and its rescued copy (``glimpses``:
    what claim support reads of a link to find its text).

    Made as they are asked for: ``pull`` makes the next (claim support asks for them as it
    reaches their footnotes, ``_FedTexts``), ``finish`` the rest; ``listed`` is set then."""

    def __init__(self, records: Iterable[tuple[LinkRecord, LinkFacts | None]],
                 not_fetched: Mapping[str, str], directory: Path, document: Document) -> None:
        from archiver.report.model import Tally

        self._records = iter(records)
        self._not_fetched = not_fetched
        # Spooled under ``directory`` (the reports folder, which the run writes anyway).
        self.records: Spool[LinkRecord] = Spool(directory=directory)
        self.tally = Tally(document)
        self.verdicts: Counter[str] = Counter()
        self._listed: list[LinkRecord] = []
        self.listed: tuple[LinkRecord, ...] = ()
        self.screenshots: list[LinkRecord] = []  # browser captures, for write_screenshots
        self._verdict_at: list[Verdict | None] = []
        self._rescued_at: dict[int, LinkRecord] = {}
        self.glimpses = _Glimpses(document.urls, self._verdict_at, self._rescued_at)

    def pull(self) -> tuple[LinkRecord, LinkFacts | None] | None:
        """The next link record, made and counted, with the facts it was made from
        (``None`` when all are made)."""
        made = next(self._records, None)
        if made is None:
            return None
        link = made[0]
        self.records.append(link)
        self.tally.add(link)
        if link.rescued is not None:
            self._rescued_at[len(self._verdict_at)] = link
        self._verdict_at.append(link.verdict)
        if link.screenshot is not None:
            self.screenshots.append(link)
        self.verdicts[link.verdict.value if link.verdict else "unchecked"] += 1
        if (link.verdict is not None and not link.verdict.healthy) \
                or (link.state is not None and link.state is not LinkState.OK) \
                or link.url in self._not_fetched:
            self._listed.append(link)
        return made

    @property
    def made(self) -> int:
        """How many records are made so far (those of the first ``made`` URLs)."""
        return len(self._verdict_at)

    def finish(self) -> _Links:
        """Make the records not made yet; sets ``listed``."""
        while self.pull() is not None:
            pass
        self.listed = tuple(self._listed)
        return self


class _Prejudged:
    """Claim support judged during the fetch, as each URL's capture arrives (``take``), on
    the page text the capture stage packed for the catalog: the run's process has CPU to
    spare while it waits on the network, and none in the tail, where ``_FedTexts.judged``
    uses these instead of judging again.

    Only a healthy HTTP capture's own text is judged (a browser's capture, a failing link's
    rescued copy, a capture without text are left to the tail), for every footnote with
    claims that cites the URL, and kept with the text's digest and kind. The excerpt of the
    link's record is made here too, from the whole text at hand, and the glance of its
    provenance document (``_glance``). The tail (``vouch``) marks a link's text that is the
    very text judged here (``_Vouched``: the same digest): its record takes this excerpt
    (and this glance, if its provenance document has the same SHA-256), and its claim
    support these supports where it reads the text as the same kind (the same text gives
    the same support: ``support.assess`` is pure). Held in memory, what is made of at most
    ``SHELVE_AT`` URLs (a larger run shelves its documents while it fetches: it has none).

    Judged in the event loop that takes the captures in: a text of more than
    ``_PREJUDGE_UP_TO`` packed bytes (a long PDF's), or of more than ``_PREJUDGE_TEXT_UP_TO``
    bytes unpacked (a long text that repeats packs small), is left to the tail, so that no
    page holds the loop up for long, and so are the captures that come in once the judging
    has taken its share of the fetch's time (``take``).

    Nor is a text whose supports the catalog of ``archive`` keeps already, for every
    footnote wanted (``support_store``: a page unchanged since it was judged, as most are
    at a re-check): the tail takes those from the catalog (``_recalled``). Asked through a
    read-only connection of its own, which never waits for the run's writer (``close``
    closes it)."""

    def __init__(self, documents: Mapping[str, Document], archive: Path | None = None,
                 ) -> None:
        self._documents = documents
        self._footnotes: dict[str, dict[int, tuple[str, ...]]] = {}
        self._judged: dict[str, _Prejudgement] = {}
        self._since: float | None = None  # when the first capture came in
        self._spent = 0.0  # seconds spent judging since
        self._archive = archive
        self._reader: Catalog | None = None
        self.kept = 0  # captures not judged: the catalog keeps their supports

    def close(self) -> None:
        """Close the catalog connection ``_is_kept`` opened, if it did."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _is_kept(self, digest: bytes, kind: str,
                 wanted: list[tuple[str, int, tuple[str, ...]]]) -> bool:
        """Whether the catalog keeps the supports of every footnote ``wanted`` on the packed
        text of ``digest`` read as ``kind``. ``False`` when it cannot tell."""
        from archiver import support_store

        if self._archive is None:
            return False
        try:
            if self._reader is None:
                self._reader = Catalog.open_reader(self._archive)
                if not self._reader.keeps_supports(support_store.rules()):
                    # None kept (a first run, or other code's): nothing to ask per capture.
                    self._archive = None
                    return False
            text = digest.hex()
            return self._reader.has_supports(support_store.rules(), [
                (text, kind, support_store.claims_key(claims)) for _, _, claims in wanted])
        except ArchiveError:
            self._archive = None  # asked no more: everything is judged, as before
            return False

    def _claims(self, source: str, number: int) -> tuple[str, ...]:
        """The distinct claims of footnote ``number`` of ``source`` (``_claims_by_number``),
        each document's read once."""
        claims = self._footnotes.get(source)
        if claims is None:
            document = self._documents.get(source)
            claims = self._footnotes[source] = \
                {} if document is None else _claims_by_number(document)
        return claims.get(number, ())

    def take(self, finished: Finished) -> None:
        """Judge the claims citing ``finished``'s URL on its text, if it is one the tail
        would read as ours (see the class) and the judging so far is within its share of
        the time since the first capture came in (``_PREJUDGE_SHARE``). Never raises: what
        it cannot judge (a damaged text) is left to the tail."""
        result = finished.result
        if finished.text is None or len(finished.text) > _PREJUDGE_UP_TO \
                or finished.browser is not None or not isinstance(result, Capture) \
                or not finished.judgement.verdict.healthy:
            return
        wanted = [(ref.source, ref.number, claims) for ref in finished.target.cited_by
                  if (claims := self._claims(ref.source, ref.number))]
        if not wanted:
            return
        # Within its share of the fetch's time: the loop hands out targets and takes results
        # in for the workers; judging more would keep them waiting (what is left over is
        # judged in the tail, as before).
        start = time.perf_counter()
        if self._since is None:
            self._since = start
        if self._spent >= _PREJUDGE_SHARE * (start - self._since) + _PREJUDGE_ALLOWANCE:
            return
        try:
            self._judge(finished, result, wanted)
        finally:
            self._spent += time.perf_counter() - start

    def _judge(self, finished: Finished, result: Capture,
               wanted: list[tuple[str, int, tuple[str, ...]]]) -> None:
        """``take``'s judging of ``finished`` (its ``result``) for the footnotes ``wanted``
        (source, number, claims)."""
        from archiver.pagetext import excerpt
        from archiver.support import EvidenceText, assess, text_kind
        from archiver.support_match import Evidence

        assert finished.text is not None
        url, kind = finished.url, text_kind(result.content_type)
        try:
            # Unpacked only as far as the limit: a text of millions of characters that
            # repeat packs under _PREJUDGE_UP_TO, and would take a second or more to judge.
            digest = _digest(finished.text)
            if self._is_kept(digest, kind, wanted):
                self.kept += 1
                return  # the tail takes the kept supports (_recalled)
            text = PackedText(finished.text).text_up_to(_PREJUDGE_TEXT_UP_TO)
            if text is None:
                return  # too long, or not a whole stream: the tail's
            evidence = EvidenceText(text, kind, "ours")
            index = Evidence(text)  # one per page, shared by its footnotes, as in the tail
            kept = finished.kept
            self._judged[url] = _Prejudgement(
                digest, kind, excerpt(text) if text else None,
                {(source, number): assess(number, url, claims, evidence, index=index)
                 for source, number, claims in wanted},
                None if kept is None else (kept.sha256, _glance_of(kept.text)))
        except Exception:
            # Neither a damaged text nor a fault of claim support stops the fetch: the tail
            # judges the page again, and says what is wrong with it.
            return

    def vouch(self, each: Iterable[tuple[str, LinkFacts]],
              ) -> Iterator[tuple[str, LinkFacts]]:
        """``each`` link's facts, its text ``_Vouched`` for when it is the text judged here."""
        judged = self._judged
        for url, facts in each:
            text, done = facts.text, judged.get(url)
            if done is not None and text is not None and done.digest == _digest(text.blob):
                facts = replace(facts, text=_Vouched(text.blob, done))
            yield url, facts

    def __contains__(self, url: object) -> bool:
        """Whether ``url``'s capture was judged during the fetch."""
        return url in self._judged


#: Packed bytes of the largest page text ``_Prejudged`` judges (some 200,000 characters).
_PREJUDGE_UP_TO = 64 * 1024
#: UTF-8 bytes of the longest page text ``_Prejudged`` judges (some 250,000 characters of
#: ASCII, judged in some 60 ms against three claims where the text repeats them often).
_PREJUDGE_TEXT_UP_TO = 256 * 1024
#: The share of the fetch's time ``_Prejudged`` may spend judging (after a first
#: ``_PREJUDGE_ALLOWANCE`` seconds): about what the run's process has spare while its workers
#: fetch; the captures that come in past it are judged in the tail.
_PREJUDGE_SHARE = 0.25
_PREJUDGE_ALLOWANCE = 0.05


class _Prejudgement(NamedTuple):
    """What ``_Prejudged`` keeps of a URL: its text's digest and kind, the excerpt of its
    link record, the supports of the footnotes citing it by (source, footnote), and the
    SHA-256 of its capture's provenance document with its glance (``_glance_of``)."""

    digest: bytes
    kind: str
    excerpt: str | None
    supports: dict[tuple[str, int], Support]
    glance: tuple[str, tuple[tuple[str, str | None], ...]] | None
    #: Taken from the catalog (``_recalled``), not judged in this process: no excerpt made,
    #: and kept there already.
    recalled: bool = False


def _digest(blob: bytes) -> bytes:
    """What tells one packed text from another: its BLAKE2b digest (in hex, the text's key
    among the supports the catalog keeps: ``support_store``)."""
    return hashlib.blake2b(blob, digest_size=16).digest()


@dataclass(frozen=True)
class _Vouched(PackedText):
    """A link's packed text that ``_Prejudged`` judged during the fetch (the same bytes),
    with what was made of it then (``judged``): not unpacked in the tail."""

    judged: _Prejudgement | None = None


#: A text ``_FedTexts`` cannot tell from a link's facts: read from the catalog instead.
_UNKNOWN = object()


class _FedTexts(Mapping[str | tuple[int, str], "EvidenceText | None"]):
    """``support.LazyTexts``'s answers (the text each link's claim support reads) taken from
    the catalog facts its link record is made from, as ``links`` makes them: each page text
    read from the catalog once, for its record and its claim support. A text the facts do
    not settle (a browser capture, a rescued copy, a text not stored), or one no longer
    among the ``kept`` most recent, is ``LazyTexts``'s.

    ``judged`` answers ``each_support``'s question for document ``source``: the supports
    judged during the fetch on the very text this mapping gives (``_Vouched``)."""

    def __init__(self, links: _Links, catalog: Catalog, root: Path, document: Document,
                 kept: int = 256, *, source: str = "") -> None:
        from archiver import support

        self._links, self._kept = links, kept
        self._fallback = support.LazyTexts(catalog, root, links.glimpses, urls=document.urls)
        self._recent: OrderedDict[str, object] = OrderedDict()
        self._source = source
        # The packed text (its digest) and kind each recent URL's support is judged on, for
        # ``keeping`` (not for the supports the catalog kept already: ``recalled``).
        self._keys: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def judged(self, footnote: int, url: str) -> Support | None:
        """The support of (``footnote``, ``url``) judged already on the text this mapping
        gives ``url`` (our capture's own, ``_Vouched``: during the fetch, or before and kept
        in the catalog) read as the same kind; else ``None``."""
        if url not in self._fallback:
            return None
        source = self._source_of(url)
        if not isinstance(source, tuple):
            return None
        packed, kind = source
        if not isinstance(packed, _Vouched) or packed.judged is None \
                or packed.judged.kind != kind:
            return None
        found = packed.judged.supports.get((self._source, footnote))
        if found is not None and not packed.judged.recalled:
            self._key(url, packed.judged.digest.hex(), kind)
        return found

    def _key(self, url: str, text: str, kind: str) -> None:
        keys = self._keys
        keys[url] = (text, kind)
        keys.move_to_end(url)
        if len(keys) > self._kept:
            keys.popitem(last=False)

    def keeping(self, supports: Iterable[Support], keeper: support_store.Keeper,
                ) -> Iterator[Support]:
        """``supports`` (this mapping's ``each_support``), each judged on one of our
        captures' packed texts given to ``keeper`` as it passes, with the text's digest and
        kind (``support_store``); the ones the catalog kept already are not."""
        keys = self._keys
        for support in supports:
            key = keys.get(support.url)
            if key is not None and support.origin == "ours" and support.text_kind == key[1]:
                keeper.keep(support, *key)
            yield support

    def __getitem__(self, key: str | tuple[int, str]) -> EvidenceText | None:
        from archiver.support import EvidenceText

        if not isinstance(key, str) or key not in self._fallback:
            raise KeyError(key)
        recent = self._recent
        source = self._source_of(key)
        if source is None or isinstance(source, EvidenceText):
            return source
        if source is _UNKNOWN:
            return self._fallback[key]
        assert isinstance(source, tuple)
        packed, kind = source
        recent[key] = text = EvidenceText(packed.text(), kind, "ours")
        self._key(key, _digest(packed.blob).hex(), kind)
        return text

    def _source_of(self, key: str) -> object:
        """Where ``key``'s text is (``_text_source``, or its ``EvidenceText`` once read), the
        link records made up to ``key``'s and a batch more if not made yet; ``_UNKNOWN``
        for a record made already and no longer kept."""
        recent = self._recent
        # A record made already and no longer kept (a URL cited again far on) is the
        # fallback's: pulling on for it would make every record left, none of them its.
        if key not in recent and self._fallback.position(key) >= self._links.made:
            # Up to the one asked for, then a batch more (each made alongside the others,
            # not alternating with the matching), their texts still packed.
            ahead = -1
            while ahead < self._kept // 2 and (made := self._links.pull()) is not None:
                link, facts = made
                recent[link.url] = _text_source(link, facts)
                recent.move_to_end(link.url)
                if len(recent) > self._kept:
                    recent.popitem(last=False)
                if ahead >= 0 or link.url == key:
                    ahead += 1
        return recent.get(key, _UNKNOWN)

    def __contains__(self, key: object) -> bool:
        return key in self._fallback

    def __iter__(self) -> Iterator[str | tuple[int, str]]:
        return iter(self._fallback)

    def __len__(self) -> int:
        return len(self._fallback)


def _text_source(link: LinkRecord, facts: LinkFacts | None) -> object:
    """Where ``link``'s claim support text is, from its facts (as ``support._evidence_many``
    finds it): ``None`` (no text), its packed text and kind, or ``_UNKNOWN``."""
    from archiver.support import text_kind

    if facts is None:
        return _UNKNOWN
    if link.verdict is not None and link.verdict.healthy:
        if facts.capture is None:
            return None
        # With a browser row the text may be the rendered one; without a stored text it is
        # read from the WARC: both as support reads them.
        if facts.browser is not None or facts.text is None:
            return _UNKNOWN
        return facts.text, text_kind(facts.capture.content_type)
    if link.rescued is not None and link.memento is not None and link.memento.raw_url:
        return _UNKNOWN
    return None


class _Glimpses(Sequence[LinkRecord]):
    """Stand-ins for spooled link records, by position, holding what claim support reads of
    them (``support.LazyTexts``: the URL, the verdict, the rescued copy and its memento),
    made from what ``_Links`` kept instead of read back from disk."""

    def __init__(self, urls: Sequence[str], verdicts: list[Verdict | None],
                 rescued: Mapping[int, LinkRecord]) -> None:
        # A rescued link is kept whole (it is a failing link: ``_Links.listed`` holds it).
        self.urls, self.verdicts, self._rescued = urls, verdicts, rescued

    def __len__(self) -> int:
        return len(self.verdicts)

    def _glimpse(self, n: int) -> LinkRecord:
        link = self._rescued.get(n)
        if link is not None:
            return link
        return LinkRecord(url=self.urls[n], footnotes=(), verdict=self.verdicts[n])

    @overload
    def __getitem__(self, index: int) -> LinkRecord: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[LinkRecord]: ...

    def __getitem__(self, index: int | slice) -> LinkRecord | Sequence[LinkRecord]:
        if isinstance(index, slice):
            return [self._glimpse(n) for n in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("link index out of range")
        return self._glimpse(index)


class _Verdicts(Mapping[str, "Verdict | None"]):
    """Each URL's verdict, from the verdicts of ``_Links`` by position."""

    def __init__(self, verdicts: Sequence[Verdict | None], doc: Document) -> None:
        self._verdicts, self._doc = verdicts, doc

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {url: n for n, url in enumerate(self._doc.urls)}

    def __getitem__(self, url: str) -> Verdict | None:
        return self._verdicts[self._positions[url]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._doc.urls)

    def __len__(self) -> int:
        return len(self._doc.urls)


class _Judged:
    """A source's claim support, spooled to disk as it is judged, and indexed (footnote
    positions, counts by level) on the way, for the report."""

    def __init__(self, directory: Path) -> None:
        from archiver.report.model import SupportIndex

        self.records: Spool[Support] = Spool(directory=directory)
        self.index = SupportIndex()

    def take(self, supports: Iterable[Support]) -> Iterator[Support]:
        """``supports``, each spooled and indexed as it passes."""
        records, add = self.records, self.index.add
        for support in supports:
            records.append(support)
            add(support)
            yield support

    def judge(self, settings: Settings, catalog: Catalog, document: Document,
              links: _Links, *, source: str, keeper: support_store.Keeper | None = None,
              ) -> Iterator[Support]:
        """Judge ``document`` (source ``source``)'s claims against the texts of ``links``
        (``take``n), making the link records as the claims reach them. The supports its
        links carry (``_Vouched``: judged during the fetch, or kept in the catalog) are
        taken as they are. ``keeper``: where the supports judged on our captures' texts
        are kept, for the next report or run (``support_store``)."""
        from archiver import support as claim_support

        texts = _FedTexts(links, catalog, settings.root, document, source=source)
        supports = claim_support.each_support(document, texts, judged=texts.judged)
        return self.take(supports if keeper is None else texts.keeping(supports, keeper))


def _write_reports(
    settings: Settings,
    catalog: Catalog,
    outcomes: Sequence[SourceOutcome],
    *,
    changes: Sequence[Change] = (),
    context: _RunContext | None = None,
    rescue: bool | None = None,
    support: Mapping[str, _Judged] | None = None,
    links_of: Mapping[str, _Links] | None = None,
) -> list[SourceOutcome]:
    """Build and write each readable source's reports from the catalog. ``context``: the
    run's notes and summary; ``None`` (``archiver report``) reads each source's from the
    catalog. ``support``: claim support already judged in this run, by source id; a source
    without it is judged here (``archiver report``). ``links_of``: link records already
    built in this run, by source id."""
    from archiver.report import build_report, write_reports
    from archiver.report.write import write_screenshots

    now = utcnow()
    written = []
    for outcome in outcomes:
        if outcome.document is None:
            written.append(outcome)
            continue
        run = context or _RunContext.stored(catalog, outcome.source.id)
        judged = (support or {}).get(outcome.source.id)
        made = (links_of or {}).get(outcome.source.id) or _Links(
            _records_and_facts(settings, catalog, outcome.source.id, outcome.document, now,
                               rescue=rescue, not_fetched=run.not_fetched,
                               # judged below, on these texts, where the catalog does not
                               # keep their supports
                               unpack=judged is None, recall=judged is None),
            run.not_fetched, settings.archive.reports_dir, outcome.document)
        urls = set(outcome.document.urls)
        folder = settings.archive.reports_dir / outcome.source.id
        if judged is None:
            judged = _Judged(settings.archive.reports_dir)
            for _ in judged.judge(settings, catalog, outcome.document, made,
                                  source=outcome.source.id):
                pass
        made.finish()
        links = made.records
        report = build_report(
            outcome.source,
            outcome.document,
            links,
            generated_at=now,
            changes=[c for c in changes if c.url in urls],
            notes=run.notes_for(outcome.document.urls),
            run=run.info,
            root=settings.root,
            report_dir=folder,
            support=judged.records,
            tally=made.tally,
            support_index=judged.index,
        )
        write_reports(report, folder)
        write_screenshots(made.screenshots, folder, settings.root)  # for report.html
        written.append(SourceOutcome(outcome.source, outcome.document, None, folder,
                                     made.listed, made.verdicts, made.glimpses.verdicts))
    return written


def _distinct_counts(sources: Sequence[SourceOutcome]) -> dict[str, int]:
    """The sources' links by verdict, a URL that several of them cite counted once (as
    ``RunOutcome.link_count`` counts it): summed per source, such a URL was counted once per
    source citing it, so counts and link total disagreed."""
    read = [o for o in sources if o.document is not None]
    if len(read) == 1:
        return dict(read[0].verdicts)
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    for o in read:
        assert o.document is not None
        for url, verdict in zip(o.document.urls, o.url_verdicts, strict=True):
            if url not in seen:
                seen.add(url)
                counts[verdict.value if verdict else "unchecked"] += 1
    return dict(counts)


def _assess_support(
    settings: Settings, catalog: Catalog, run_id: int, outcomes: Sequence[SourceOutcome],
    links_of: Mapping[str, _Links], *, compare: bool, keeper: support_store.Keeper,
) -> dict[str, tuple[_Judged, list[Change]]]:
    """Each source's claim support (``archiver.support``) on its link records
    (``links_of``, by source id), stored under ``run_id`` as it is judged; with ``compare``,
    the drops since the previous run as changes. The supports the link records carry
    (``_Vouched``) are taken as they are; those judged on our captures' texts are given to
    ``keeper``, which keeps them in the catalog for the next report or run
    (``support_store``)."""
    from archiver import support as claim_support

    out: dict[str, tuple[_Judged, list[Change]]] = {}
    for outcome in outcomes:
        if outcome.document is None:
            continue
        links = links_of[outcome.source.id]
        judged = _Judged(settings.archive.reports_dir)
        dropped = claim_support.record_levels(
            catalog, run_id, outcome.source.id,
            judged.judge(settings, catalog, outcome.document, links,
                         source=outcome.source.id, keeper=keeper), compare=compare,
            verdicts=_Verdicts(links.glimpses.verdicts, outcome.document))
        links.finish()
        out[outcome.source.id] = (judged, dropped)
    keeper.flush()
    return out


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
    from archiver import shards

    progress = progress or SilentProgress()
    started = utcnow()
    # The run's deadline counts from its start: reading the sources is part of the run.
    deadline_at = (time.monotonic() + settings.fetch.run_deadline
                   if settings.fetch.run_deadline > 0 else None)
    # Worker processes, if the run uses them, are prepared (their modules imported) on
    # another core while this process reads the sources and the catalog. Neither process
    # makes garbage until fetching starts: the collector waits until then (``collector``).
    with collector.paused(), shards.forking_ahead(settings, source_ids):
        outcomes = _read_sources(settings, source_ids)
        return _execute_locked(settings, options, progress, started, deadline_at, outcomes)


def _execute_locked(
    settings: Settings,
    options: RunOptions,
    progress: Progress,
    started: datetime,
    deadline_at: float | None,
    outcomes: list[SourceOutcome],
) -> RunOutcome:
    """``execute`` once the sources are read: under the archive lock, in a new run."""
    with Catalog.open(settings.archive.dir) as catalog, catalog.lock():
        run_id = catalog.begin_run(options.kind, [o.source.id for o in outcomes])
        try:
            # The targets are planned there: a large run's documents and targets are held
            # only by ``outcomes`` and ``_execute`` (``docshelf``).
            outcome = _execute(settings, catalog, run_id, options, outcomes,
                               progress, started, deadline_at)
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
    outcomes: list[SourceOutcome],
    progress: Progress,
    started: datetime,
    deadline_at: float | None = None,
) -> RunOutcome:
    """The body of ``execute``, under the archive lock, inside run ``run_id``."""

    # Before anything reads the catalog: a crash may have left WARC files to repair.
    recovery_notes = _recover_archive(settings, catalog)
    # No local name is left holding a document or a target made from it (see below).
    targets = plan_targets({o.source.id: o.document for o in outcomes if o.document is not None})
    for source_id, footnotes in [(o.source.id, o.document.footnotes) for o in outcomes
                                 if o.document is not None]:
        catalog.record_citations(source_id, footnotes)
    footnotes = ()
    # A large run's documents wait on disk while it fetches (``docshelf``): this process
    # holds no parse while it fetches (and workers forked here, without a fork server, do
    # not inherit one).
    shelf = None
    if len(targets) > SHELVE_AT:
        from archiver.docshelf import Shelf

        shelf = Shelf(settings.archive.reports_dir)
        targets = shelf.put(outcomes, targets)
    refresh = options.refresh or options.kind == "check"
    captured = set() if refresh else catalog.captured([t.url for t in targets])
    todo = [t for t in targets if t.url not in captured]
    del captured  # the catalog's copy of every URL captured before: not read again
    if not todo:  # no worker will be forked: the fork server's memory is not kept for the tail
        from archiver import shards

        shards.drop_fork_server()
        collector.resume()  # no fetching starts: the lookups' event loop makes cycles
    newest = catalog.last_results([t.url for t in targets])
    # Read with ``.get`` only: a URL never checked is left out (as many as the targets on a
    # first run), and the keys are the targets' own strings, not the catalog rows' copies.
    previous = {t.url: result for t in targets if (result := newest.get(t.url)) is not None}
    del newest
    # Only a check reports what changed; its "newly dead" needs each link's state before.
    before = (catalog.link_statuses([t.url for t in targets], settings.check, started)
              if options.kind == "check" else {})
    rescue = options.rescue and settings.rescue.enabled
    # Each URL's first citing source, for the rescue's lookups (only they read it).
    source_of = {}
    for target in targets if rescue else ():
        first = target.cited_by[0].source
        source_of[target.url] = next(o.source for o in outcomes if o.source.id == first)
    # One per run, shared by the lookups and Save Page Now: a host down for one is down.
    # Imported only for them (``archiver.rescue`` brings httpx and the fetcher: 0.1-0.2 s
    # that a run with nothing to fetch and no Internet Archive to ask has no use for).
    breaker = None
    if rescue or settings.rescue.save_page_now:
        from archiver.rescue import Breaker

        breaker = Breaker(settings.rescue.breaker_after)
    # Claim support judged as the captures arrive, while the run waits on the network: not
    # for a run whose documents are shelved (nor for its many URLs' supports in memory).
    prejudged = _Prejudged({o.source.id: o.document for o in outcomes
                            if o.document is not None}, settings.archive.dir) \
        if shelf is None and todo else None
    try:
        fetched, rescued, lookup_note = asyncio.run(_fetch_and_rescue(
            settings, catalog, run_id, todo, targets, source_of, progress,
            compare_text=options.kind == "check", rescue=rescue,
            capture=options.rescue_capture or settings.rescue.capture, breaker=breaker,
            previous=previous, deadline_at=deadline_at, prejudged=prejudged))
    finally:
        if prejudged is not None:
            prejudged.close()
    if shelf is not None:
        shelf.restore(outcomes)

    verdicts = {url: j.verdict for url, j in fetched.judgements.items()}
    min_hosts = settings.check.outage_min_hosts
    # Each URL's host found once for the three tests below (a URL parse each).
    hosts = {url: history.host_of(url) for url in verdicts}
    tested = history.hosts_tested(verdicts, hosts, previous=previous)
    # The network watch stops an offline run before enough results exist to show it.
    offline = fetched.offline or (bool(verdicts) and history.is_offline(
        verdicts, hosts, previous=previous, min_hosts=min_hosts))
    outage = offline or (bool(verdicts) and history.is_outage(
        verdicts, settings.check, hosts, previous=previous))
    if outage:
        catalog.mark_outage(run_id)
    checked_at = utcnow()

    changes: list[Change] = []
    if options.kind == "check" and not outage:
        statuses = catalog.link_statuses(list(fetched.judgements), settings.check, checked_at)
        current = {url: (judgement, statuses[url], fetched.similarity.get(url))
                   for url, judgement in fetched.judgements.items()}
        del statuses
        changes = history.changes(previous, current, settings.check, before=before,
                                  outage=outage)
        footnotes_of = {t.url: tuple(r.number for r in t.cited_by) for t in targets}
        changes = [_with_footnotes(c, footnotes_of.get(c.url, ())) for c in changes]

    # Claim support: judged on this run's texts, stored per run; a check reports a drop.
    # Built once for claim support and the reports (again only if Save Page Now adds
    # copies in between).
    # Millions of short-lived objects from here on (records spooled and read back, report
    # pieces), none in a cycle: the collector is off (_collector_off).
    with _collector_off():
        from archiver import support_store

        # Where the supports judged on our captures' texts are kept, and those taken from
        # the catalog marked used.
        keeper = support_store.Keeper(catalog)
        # Made as claim support reaches them (``_Links``), finished by _assess_support.
        links_of = {o.source.id: _Links(_records_and_facts(settings, catalog, o.source.id,
                                                           o.document, utcnow(), rescue=rescue,
                                                           not_fetched=fetched.not_fetched,
                                                           unpack=True,
                                                           prejudged=prejudged,
                                                           recall=True, keeper=keeper),
                                        fetched.not_fetched, settings.archive.reports_dir,
                                        o.document)
                    for o in outcomes if o.document is not None}
        support_of = _assess_support(settings, catalog, run_id, outcomes, links_of,
                                     compare=options.kind == "check" and not outage,
                                     keeper=keeper)
        del prejudged  # its supports are spooled with the rest now
        changes.extend(c for per_source in support_of.values() for c in per_source[1])

        # Offline, the "No network" note says it all (the lookups failed for the same reason).
        notes = list(recovery_notes)
        if lookup_note and not offline:
            notes.append(lookup_note)
        notes.extend(fetched.notes)  # the browser stage: unavailable, links that lost it
        saved = 0
        if settings.rescue.save_page_now and not offline:
            # Each link's last verdict, from its link record (not a catalog query per URL).
            verdict_in = {o.source.id: _Verdicts(links_of[o.source.id].glimpses.verdicts,
                                                 o.document)
                          for o in outcomes if o.document is not None}
            live = [t.url for t in targets
                    if (v := verdict_in[t.cited_by[0].source][t.url]) is not None and v.healthy]
            with _collector(True):
                saved, save_note = asyncio.run(_save_live(settings, catalog, live, progress,
                                                          breaker))
            if save_note:
                notes.append(save_note)
        # Network failures that are news (the URL did not fail at network level last time):
        # only those could have been an outage.
        network_failures = sum(
            1 for url, v in verdicts.items() if v.network_level
            and not ((p := previous.get(url)) is not None and p.verdict.network_level))
        refused = sum(1 for v in verdicts.values() if v in history.NOT_A_NETWORK_TEST)
        if offline:
            notes.append(OFFLINE_NOTE)
        elif outage:
            notes.append(OUTAGE_NOTE)
        elif network_failures and tested < min_hosts:
            notes.append(
                f"Outage test not applied: only {tested} host(s) tested (it needs {min_hosts}), "
                f"so the {network_failures} network failure(s) count as the links' own results.")
        counts = Counter(j.verdict.value for j in fetched.judgements.values())
        outcome = RunOutcome(
            run_id=run_id,
            kind=options.kind,
            sources=(),
            # Judged over the network in this run: an offline or outage run judges nothing.
            fetched=0 if outage else len(verdicts) - refused,
            reused=len(targets) - len(todo),
            verdicts={},
            offline=offline,
            outage=outage,
            changes=tuple(changes),
            rescued=rescued,
            saved=saved,
            this_run=dict(counts),
            notes=tuple(notes),
            started_at=started,
            reached=fetched.reached,
            refused=refused,
            not_fetched=dict(fetched.not_fetched),
            tested_hosts=tested,
            min_hosts=min_hosts,
            network_failures=network_failures,
        )
        context = _RunContext.of(run_id, options.kind, started, outcome.summary())
        written = _write_reports(settings, catalog, outcomes, changes=changes, context=context,
                                 rescue=rescue, support={k: v[0] for k, v in support_of.items()},
                                 links_of=links_of if not saved else None)
    return replace(outcome, sources=tuple(written), verdicts=_distinct_counts(written),
                   finished_at=utcnow())


#: The run-level notes the summary line also states (the terminal says them once).
OFFLINE_NOTE = ("No network: nothing could be reached, so no link was checked over the "
                "network in this run; every link keeps the state it had.")
OUTAGE_NOTE = ("Outage: nearly every host failed at once, so this check changes no link's "
               "state.")


def _recover_archive(settings: Settings, catalog: Catalog) -> list[str]:
    """Repair the WARC files a crash left ``.open`` (``warc.recover``) and make the catalog
    agree: a capture whose record is no longer in its file is forgotten, so that its URL is
    fetched again. A kill -9 never causes that (records are written before their capture is
    committed, and recovery keeps every complete record); a power cut or damage in the middle
    of a file can. Returns a note for the report on each file touched."""
    from archiver.warc import recover, ref_path

    notes = []
    for done in recover(settings.archive.dir):
        name = done.closed_path.name
        lost = catalog.forget_lost_captures(ref_path(done.closed_path, settings.root),
                                            done.size)
        if done.action == "repaired" and not done.dropped_bytes:
            notes.append(f"{name} was left open by an interrupted run; its {done.records} "
                         "records were all complete, and it was closed.")
        elif done.action == "repaired":
            notes.append(f"{name} was left open by an interrupted run: its {done.records} "
                         f"complete records were kept, {done.dropped_bytes} bytes of an "
                         "unfinished record removed.")
        elif done.action == "damaged":
            notes.append(f"{name} was damaged in the middle: its {done.records} records before "
                         f"the damage were kept; the file as found, with "
                         f"{done.found_beyond} complete records after the damage, is "
                         f"{ref_path(done.kept or done.path, settings.root)}.")
        else:
            notes.append(f"{name} held no complete record; it was moved untouched to "
                         f"{ref_path(done.path, settings.root)}.")
        if lost:
            notes.append(f"{len(lost)} captures pointed at records {name} no longer holds; "
                         "they are fetched again: " + ", ".join(lost[:5])
                         + (" ..." if len(lost) > 5 else ""))
    return notes


def _with_footnotes(change: Change, footnotes: tuple[int, ...]) -> Change:
    return replace(change, footnotes=footnotes)


def rebuild(settings: Settings, source_ids: Sequence[str] | None) -> list[SourceOutcome]:
    """Rebuild the reports from the catalog without fetching anything: each with the notes
    (and URLs not fetched) of the newest finished run or check that covered its source."""
    outcomes = _read_sources(settings, source_ids)
    with Catalog.open(settings.archive.dir) as catalog, _collector_off():
        return _write_reports(settings, catalog, outcomes)


@contextlib.contextmanager
def _collector(enabled: bool) -> Iterator[None]:
    """The cyclic garbage collector on or off until exit, then as it was (and, when it was
    on, one collection of the young generation)."""
    was = gc.isenabled()
    if enabled:
        gc.enable()
    else:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
            gc.collect(0)
        else:
            gc.disable()


def _collector_off() -> contextlib.AbstractContextManager[None]:
    """The cyclic garbage collector off for the tail: it makes and drops millions of objects
    (each spooled record read back, each report piece), none in a cycle, and each of the
    collector's passes they set off went over the parsed documents and every record in
    memory too. Network work inside it (Save Page Now: asyncio makes cycles) turns it back
    on with ``_collector(True)``."""
    return _collector(False)


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


def _glance(stored: StoredCapture | None, row: tuple[str, str, str | None] | None,
            text: PackedText | None = None) -> tuple[tuple[str, str | None], ...]:
    """The provenance at a glance of ``stored`` (``row``: its ``Catalog.provenance``) for the
    report; its payload digest alone when it was captured before provenance was recorded.
    ``text``: the link's text, whose judgement during the fetch (``_Vouched``) may hold the
    glance of that very provenance document (the same SHA-256) already."""
    if stored is None or stored.warc is None:
        return ()
    payload = _shared_pair("payload_digest", stored.payload_digest)
    judged = text.judged if isinstance(text, _Vouched) else None
    if row is not None and judged is not None and judged.glance is not None \
            and judged.glance[0] == row[1]:
        return (*judged.glance[1], payload)
    return (*(_glance_of(row[0]) if row is not None else ()), payload)


def _glance_of(document: str) -> tuple[tuple[str, str | None], ...]:
    """The facts ``provenance.glance`` gives of a provenance ``document`` (its JSON), as
    (name, value) pairs for a link record."""
    import json

    from archiver import provenance

    return tuple(_shared_pair(k, None if v is None else str(v))
                 for k, v in provenance.glance(json.loads(document)).items())


#: Provenance facts that many links share (a host's address and certificate, a missing
#: fact): their (name, value) pairs, made once per run. Per-link values (times, digests)
#: are not kept here.
_SHARED_FACTS = frozenset({"server_ip", "tls_version", "certificate_subject",
                           "certificate_sha256"})
_SHARED_PAIRS: dict[tuple[str, str | None], tuple[str, str | None]] = {}
_SHARED_PAIRS_MAX = 4096


def _shared_pair(name: str, value: str | None) -> tuple[str, str | None]:
    """``(name, value)``, the same tuple for every link when the fact is shared or absent:
    a report of N links holds a few of these instead of N."""
    if value is not None and name not in _SHARED_FACTS:
        return name, value
    pair = (name, value)
    shared = _SHARED_PAIRS.get(pair)
    if shared is None:
        if len(_SHARED_PAIRS) >= _SHARED_PAIRS_MAX:
            _SHARED_PAIRS.clear()
        shared = _SHARED_PAIRS[pair] = pair
    return shared
