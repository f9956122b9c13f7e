"""The capture stage: one cited URL fetched, probed, read, judged and archived.

Everything a URL needs before the catalog: the HTTP fetch (every hop into the WARC), the
soft-404 probe of its host and directory, the page text, the verdict, the browser capture when
the HTTP one is not the evidence, the ``cited-url`` metadata and the provenance records. What
comes out is a ``Finished`` record for the catalog writer (``archiver.recording``); the stage
itself never writes to the catalog, so it runs the same in the run's own process or in a
worker process of ``archiver.shards``.

Nothing here leaves the event loop for a thread: the page text is read in one pass in well
under a millisecond, and the WARC writer's lock is never contended within one process. Only a
large body (a PDF or a page over ``OFF_LOOP_BYTES``) is read in a worker thread, where parsing
it would otherwise hold every other fetch of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from archiver.config import Settings
from archiver.models import (
    Capture,
    FetchFailure,
    FetchResult,
    Judgement,
    Memento,
    Target,
    Verdict,
)

if TYPE_CHECKING:
    from archiver import provenance, soft404
    from archiver.browse import Browsed, BrowserStage
    from archiver.catalog import PreviousRead
    from archiver.fetch import Attempt, Fetcher
    from archiver.pagetext import PageText
    from archiver.warc import PayloadSeen, WarcWriter

#: Bodies at least this long (and every PDF) are read in a worker thread.
OFF_LOOP_BYTES = 512 * 1024


@dataclass(frozen=True)
class Finished:
    """One cited URL done by the capture stage, ready for the catalog.

    ``result`` is the evidence: the HTTP capture or failure, or the browser capture that
    replaced it (then ``http`` is the HTTP capture, kept in the catalog too). Captures carry no
    body (``content`` is empty: the bytes are in the WARC). ``text``/``title`` are the
    evidence's page text and title, the text compressed as the catalog keeps it (``pack``):
    compressed here, in parallel, it crosses to the catalog writer at a third of the size
    and costs that process nothing but its insert.

    Where the stage compares captures (``check``), ``compared`` is set, ``similarity`` is how
    much of the previous capture's text this one keeps (``None``: no previous text, or the
    evidence is not a healthy page) and ``fingerprint`` is the text's
    ``history.text_fingerprint``, kept for the next comparison; all computed here, off the
    catalog writer's path.

    ``hop_urls`` are the URLs fetched on the way (redirects), whose attempts are recorded
    with the URL's. ``kept``/``kept_http`` are the provenance records written for the
    evidence and for the replaced HTTP capture; ``browser`` how the browser stage treated the
    URL (``None`` when it did not want it).
    """

    target: Target
    result: FetchResult
    judgement: Judgement
    text: bytes | None = None
    title: str | None = None
    fingerprint: str | None = None
    compared: bool = False
    similarity: float | None = None
    hop_urls: tuple[str, ...] = ()
    http: Capture | None = None
    http_text: bytes | None = None
    http_title: str | None = None
    browser: Browsed | None = None
    kept: provenance.Kept | None = None
    kept_http: provenance.Kept | None = None
    #: How the evidence's payload and the replaced HTTP capture's were read
    #: (``PageMemo``), for the next re-fetch of the same payload; ``None`` when not kept.
    page: str | None = None
    http_page: str | None = None

    @property
    def url(self) -> str:
        return self.target.url

    @property
    def reached(self) -> bool:
        """The URL got an HTTP answer (any status)."""
        return isinstance(self.result, Capture) or self.http is not None


def pack(text: str | None) -> bytes | None:
    """``text`` as the catalog stores it (``Catalog.record_capture``'s ``text``): what
    ``catalog.pack_text`` makes of it, deflated by ISA-L where the WARC writer's gzip is
    (``isal``, see ``archiver.warc``): the same zlib format, read back by zlib, in other
    bytes. ISA-L's level 0 (its fastest, still compressing): for a page text of 19 KB about
    12 µs against 20 µs at its level 1 and 65-100 µs for zlib's; measured on bench/
    worker_bench's pages and bench/pagetext_corpus.py's, the texts come out 15% larger and
    7% smaller respectively than at its level 1."""
    from archiver import warc
    from archiver.catalog import pack_text

    if text is None:
        return None
    fast = warc._FAST_DEFLATE
    return pack_text(text, fast, 0) if fast is not None else pack_text(text)


# ── pages read before ──

#: The reads a ``PageMemo`` is kept for: an HTML, plain-text or PDF page with text. A PDF
#: whose reading stopped at ``pagetext.PDF_TIME_LIMIT`` (``timed_out``: a busy machine may
#: read less of it than a quiet one) is read again rather than kept; other bodies cost next
#: to nothing to read.
_REMEMBERED_KINDS = ("html", "text", "pdf")


class PageMemo:
    """How the capture stage read a payload, kept with its capture (``captures.page``), so
    that a re-fetch of the very same payload is not read again (a re-check of an unchanged
    page, where reading it was 40% of a worker's CPU; a PDF, which takes far longer).

    As JSON: ``pagetext.rules()``, the Content-Encoding the body was decoded by
    (``Capture.content_coding``), the decoded body's length, the BLAKE2b digest of the text
    that reading gave, and the page's title, heading, declared language, kind and password
    fields. A later capture takes it (``recall``) only when its payload digest and
    Content-Type are the remembered capture's, its body was decoded by the same coding to
    as many bytes (the same bytes: a prefix of one decoding, cut at ``[fetch]
    max_decoded``, or empty where a decoder is missing), the rules are this process's, and
    the text the catalog holds for that payload is that very text (it keeps the first text
    read from a payload, which another Content-Type or older rules may have made). Anything
    else, or a memo of another shape, is read afresh.
    """

    @staticmethod
    def remember(page: PageText, capture: Capture) -> str | None:
        """The memo of ``page``, read from ``capture``'s payload; ``None`` for a read not
        kept (see ``_REMEMBERED_KINDS``)."""
        import json

        from archiver import pagetext

        if not page.text or page.kind not in _REMEMBERED_KINDS or page.timed_out:
            return None
        return json.dumps([pagetext.rules(), capture.content_coding, len(capture.content),
                           _text_digest(page.text.encode("utf-8")), page.title, page.heading,
                           page.declared_language, page.kind, page.password_fields],
                          ensure_ascii=False)

    @staticmethod
    def recall(previous: PreviousRead, capture: Capture) -> PageText | None:
        """``capture``'s page as ``previous`` (its URL's newest capture) was read, if that
        was the same payload read under the same rules (see the class); else ``None``."""
        import json

        from archiver import pagetext

        memo = previous.page
        if memo is None or previous.packed is None \
                or previous.payload_digest != capture.payload_digest \
                or previous.content_type != capture.content_type:
            return None
        try:
            fields = json.loads(memo)
        except ValueError:
            return None
        if not (isinstance(fields, list) and len(fields) == 9
                and all(isinstance(f, str) or f is None for f in (*fields[:2], *fields[3:7]))
                and type(fields[2]) is int and type(fields[8]) is int
                and isinstance(fields[7], str) and fields[7] in _REMEMBERED_KINDS):
            return None
        rules, coding, length, digest, title, heading, language, kind, passwords = fields
        if rules != pagetext.rules() or coding != capture.content_coding \
                or length != len(capture.content):
            return None
        # Unpacked only now: most re-fetches that get here match.
        utf8 = previous.utf8
        if utf8 is None or digest != _text_digest(utf8):
            return None
        text = previous.text
        if text is None:
            return None
        return pagetext.PageText(title=title, text=text, heading=heading,
                                 declared_language=language, kind=kind,
                                 password_fields=passwords)


def _text_digest(utf8: bytes) -> str:
    """What tells a page text from another in a ``PageMemo``: the BLAKE2b digest of its
    UTF-8 (of the text, not of its packed bytes, which zlib and ISA-L make differently)."""
    import hashlib

    return hashlib.blake2b(utf8, digest_size=16).hexdigest()


def _bodiless(result: FetchResult) -> FetchResult:
    """``replace(result, content=b"")`` for a capture, made as a copy of its fields (a
    tenth of ``dataclasses.replace``'s cost, which builds the record again field by field:
    ``Capture`` checks nothing on construction)."""
    if not isinstance(result, Capture):
        return result
    bare = object.__new__(type(result))
    bare.__dict__.update(result.__dict__, content=b"")
    return bare


class CaptureStage:
    """Captures targets one by one (``capture``), many at once on one event loop.

    Use ``async with open_stage(...) as stage``. Soft-404 probes are shared: one per host and
    directory, started by ``start_probes`` (all at once, ahead of the URLs that need them) or
    on first need. With ``previous`` (``Catalog.previous_read``), a payload that is the
    URL's newest capture's is not read again where that reading was kept (``PageMemo``),
    and with ``compare`` each healthy page is compared with that capture
    (``Finished.similarity``).
    """

    def __init__(self, settings: Settings, writer: WarcWriter, fetcher: Fetcher,
                 browsing: BrowserStage, *,
                 previous: Callable[[str], PreviousRead | None] | None = None,
                 compare: bool = False) -> None:
        if compare and previous is None:
            raise ValueError("comparing captures needs the previous ones (previous=)")
        self.settings = settings
        self.writer = writer
        self.fetcher = fetcher
        self.browsing = browsing
        self.previous = previous
        self.compare = compare
        self._probes: dict[tuple[str, str], asyncio.Task[soft404.ProbeOutcome]] = {}

    # ── soft-404 probes ──

    async def _probe(self, url: str) -> soft404.ProbeOutcome:
        """The probe's outcome, read once; the probe's page is not kept (a stage keeps every
        host and directory's probe for the rest of the run), nor its text unless a verdict
        can use it (a 2xx answer)."""
        from archiver import soft404
        from archiver.fetch import HostGaveUp

        try:
            result = await self.fetcher.probe(url)
        except HostGaveUp as exc:
            result = FetchFailure(url, Verdict.TIMEOUT, f"not fetched: {exc.reason}")
        if isinstance(result, Capture) and not 200 <= result.status < 300:
            return soft404.ProbeOutcome(url=result.url, status=result.status,
                                        final_url=result.final_url,
                                        redirected=result.redirected)
        return soft404.ProbeOutcome.from_result(result)

    def _probe_task(self, url: str) -> asyncio.Task[soft404.ProbeOutcome]:
        from archiver import soft404

        key = soft404.probe_key(url)
        task = self._probes.get(key)
        if task is None:
            task = self._probes[key] = asyncio.ensure_future(
                self._probe(soft404.probe_url(url)))
        return task

    def start_probes(self, urls: Iterable[str]) -> None:
        """Start the probes the URLs will need, before their fetches queue up: queued behind
        a host's fetches, every URL of that host would wait for its probe."""
        from archiver import soft404

        for url in urls:
            if soft404.worth_probing(url):
                self._probe_task(url)

    async def _probe_for(self, capture: Capture) -> soft404.ProbeOutcome | None:
        from archiver import soft404

        if not soft404.needs_probe(capture):
            return None
        return await self._probe_task(capture.final_url)

    async def stop_probes(self) -> None:
        """Cancel the probes still running (their URLs were never judged)."""
        for task in self._probes.values():
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)

    # ── one URL ──

    async def _read(self, capture: Capture) -> PageText:
        from archiver import pagetext

        # Read once here and handed on (to the verdict, the browser stage, the catalog):
        # no cache entry, which would cost a hash of the whole body.
        if len(capture.content) >= OFF_LOOP_BYTES or b"%PDF-" in capture.content[:1024]:
            return await asyncio.to_thread(functools.partial(
                pagetext.extract, capture.content, capture.content_type, capture.final_url,
                cache=False))
        return pagetext.extract(capture.content, capture.content_type, capture.final_url,
                                cache=False)

    def _previous(self, url: str) -> PreviousRead | None:
        """``url``'s newest capture (``previous``). A catalog that cannot be read stops a
        comparison, as it always did, but costs a mere re-fetch only the reuse of a reading:
        the page is read afresh."""
        from archiver.errors import ArchiveError

        assert self.previous is not None
        try:
            return self.previous(url)
        except ArchiveError:
            if self.compare:
                raise
            return None

    @staticmethod
    def _compare(before: tuple[str, str | None] | None, text: str,
                 ) -> tuple[str | None, float | None]:
        """A healthy page's text fingerprint, and how much of the previous capture's text
        (``before``: ``PreviousRead.comparable``) it keeps (``None`` when there is
        none). Equal fingerprints need no token alignment (a re-check of a page whose numbers
        and dates changed); a text equal to the previous capture's needs no fingerprint
        either (a re-check of a page that did not change)."""
        from archiver import history

        if before is not None and before[0] and before[0] == text:
            # Tokenising the text was a third of a re-check's CPU on article pages. No
            # fingerprint is kept for this capture (the next comparison makes one if it needs
            # it): the previous capture's is not necessarily this text's, as it was made from
            # the text the capture stage had, and the stored text is the first one extracted
            # from that payload (another charset, an older extractor may have made it).
            return None, 1.0
        fingerprint = history.text_fingerprint(text)
        if before is None or not before[0]:
            return fingerprint, None
        before_text, before_fingerprint = before
        if before_text == text or before_fingerprint == fingerprint:
            return fingerprint, 1.0
        return fingerprint, history.text_similarity(before_text, text)

    async def capture(self, target: Target) -> Finished:
        """Fetch, judge and archive ``target``. Raises ``HostGaveUp`` when its host was given
        up for this run (the URL is then not fetched), ``ArchiveError`` when the WARC cannot
        be written."""
        from archiver import classify
        from archiver.fetch import HostGaveUp

        url = target.url
        if self.fetcher.gave_up(url):
            raise HostGaveUp(urlsplit(url).netloc, self.settings.fetch.host_give_up)
        result = await self.fetcher.fetch(url)
        page = probe = before = None
        recalled = False  # the page is the newest capture's reading of this very payload
        if isinstance(result, Capture):
            if self.previous is not None:
                before = self._previous(url)
                page = PageMemo.recall(before, result) if before is not None else None
                recalled = page is not None
            if page is None:
                page = await self._read(result)
            probe = await self._probe_for(result)
        judgement = classify.classify(result, probe=probe, cited_url=url, page=page)
        # Where the HTTP capture is not the evidence (an app shell, a login wall with a
        # profile, a listed host), the browser's capture replaces it.
        hop_urls = tuple(hop.url for hop in result.hops)
        http_result, http_page = result, page
        browsed = await self.browsing.consider(target, result, page, judgement, probe)
        if browsed is not None and browsed.capture is not None:
            result = browsed.capture.as_capture(result.attempts)
            page, judgement = browsed.page, browsed.judgement or judgement
        if isinstance(result, Capture) and result.warc is not None:
            self.writer.write_metadata(
                url=result.final_url, concurrent_to=result.warc.record_id,
                fields=[("cited-url", url)] + [("cited-by", str(ref))
                                               for ref in target.cited_by],
                captured_at=result.captured_at)
        # A browser capture's provenance says so (and whether a profile was used); the HTTP
        # exchange it replaced keeps its own.
        shot = browsed.capture if browsed is not None else None
        kept = write_provenance(self.settings, self.writer, result, url,
                                mode="browser" if shot else "http",
                                profile="used" if shot is not None and shot.profile else None)
        replaced = http_result is not result and isinstance(http_result, Capture)
        kept_http = (write_provenance(self.settings, self.writer, http_result, url)
                     if http_result is not result else None)
        text = page.text if page is not None else None
        fingerprint = similarity = None
        # Drift means the evidence page changed; for an error page it means nothing.
        if self.compare and text and judgement.verdict.healthy:
            fingerprint, similarity = self._compare(
                before.comparable if before is not None else None, text)
        # The HTTP reading (the evidence's, or the replaced capture's beside the browser's):
        # taken from the previous capture, it is that capture's text, packed as the catalog
        # holds it, and its memo. The browser's page has no memo.
        read, read_capture = (http_page, http_result) if replaced else (page, result)
        read_packed = read_memo = None
        if recalled:
            assert before is not None
            read_packed, read_memo = before.packed, before.page
        elif read is not None and isinstance(read_capture, Capture):
            read_packed, read_memo = pack(read.text), PageMemo.remember(read, read_capture)
        packed, memo = (pack(text), None) if replaced else (read_packed, read_memo)
        http_packed, http_memo = (read_packed, read_memo) if replaced else (None, None)
        return Finished(
            target=target,
            result=_bodiless(result),
            judgement=judgement,
            text=packed,
            title=page.title if page is not None else None,
            fingerprint=fingerprint,
            compared=self.compare,
            similarity=similarity,
            hop_urls=hop_urls,
            http=_bodiless(http_result) if replaced else None,  # type: ignore[arg-type]
            http_text=http_packed,
            http_title=http_page.title if replaced and http_page is not None else None,
            page=memo,
            http_page=http_memo,
            browser=browsed.slim() if browsed is not None else None,
            kept=kept,
            kept_http=kept_http,
        )


def write_provenance(settings: Settings, writer: WarcWriter, result: FetchResult,
                     cited_url: str, memento: Memento | None = None, *, mode: str = "http",
                     profile: str | None = None) -> provenance.Kept | None:
    """Write the provenance record of ``result`` (a capture with a WARC record; ``None`` for
    failures). ``memento``: the Internet Archive copy it was fetched from (a rescue).
    ``mode`` (``http`` or ``browser``) and ``profile`` are recorded among the settings that
    shaped the capture."""
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
    fetch = settings.fetch
    shaped = provenance.capture_settings(fetch.user_agent, http2=fetch.http2, mode=mode,
                                         profile=profile)
    return provenance.write(writer, result, cited_url=cited_url, settings=shaped,
                            memento=facts)


def preload(*, tls: bool = True) -> None:
    """Import what capturing a page needs beyond the fetcher and the WARC writer (the verdict,
    the browser stage's page checks, the catalog's text packing (``pack``: some 20 ms of
    import, which each worker paid on its first answer, while the next requests waited)
    and, with ``tls``, the TLS certificate parser: ``preload_tls``), ahead of forking worker
    processes: imported once here, their pages are shared with every worker rather than each
    worker importing its own copy on its first URL. The HTTP client's own backend is the
    fetcher's to import (``fetch.preload``)."""
    from archiver import browse, classify  # noqa: F401

    _import_each("archiver.catalog", "lxml.html")
    if tls:
        preload_tls()


#: What only https needs: the certificate parser that a capture's provenance reads the
#: server's chain with (0.02-0.08 s of CPU), in steps that can be imported one at a time
#: (as a fork server does while it waits: ``shards._fork_on_request``).
TLS_MODULES = ("cryptography.hazmat.bindings._rust",
                "cryptography.hazmat.primitives.serialization", "cryptography.x509")


def preload_tls() -> None:
    """Import what only https needs beyond ``preload`` (``TLS_MODULES``). Without it, it is
    imported on the first certificate read."""
    _import_each(*TLS_MODULES)


def tls_preloaded() -> bool:
    """Whether ``preload_tls`` has nothing left to import."""
    return "cryptography.x509" in sys.modules


def _import_each(*names: str) -> None:
    import importlib

    for name in names:
        with contextlib.suppress(ImportError):  # another version may not have it: imported
            importlib.import_module(name)       # later then, as without this


@contextlib.asynccontextmanager
async def open_stage(
    settings: Settings,
    run_id: int,
    *,
    find_payload: Callable[[str], PayloadSeen | None] | None,
    on_attempt: Callable[[Attempt], None] | None = None,
    concurrency: int | None = None,
    browser_pages: int | None = None,
    recover: bool = True,
    previous: Callable[[str], PreviousRead | None] | None = None,
    compare: bool = False,
) -> AsyncIterator[CaptureStage]:
    """A capture stage with its own WARC writer, fetcher and browser stage, closed (WARC
    file finished and indexed) on exit. ``concurrency``/``browser_pages`` override the
    settings' (a worker process takes its share); ``recover`` lets the writer repair files a
    crash left open (the run's own process does it once before any worker starts);
    ``previous`` (``Catalog.previous_read``) lets it take a payload's reading from the
    URL's newest capture, and ``compare`` makes it compare each page with that capture."""
    from archiver import browse
    from archiver.fetch import Fetcher
    from archiver.warc import WarcWriter

    if concurrency is not None:
        settings = replace(settings, fetch=replace(settings.fetch, concurrency=concurrency))
    if browser_pages is not None:
        settings = replace(settings, browser=replace(settings.browser, pages=browser_pages))
    writer = WarcWriter(
        settings.archive.dir,
        root=settings.root,
        run_id=str(run_id),
        max_size=settings.archive.warc_max_size,
        prefix=settings.archive.warc_prefix,
        find_payload=find_payload,
    )
    if recover:
        writer.open()
    else:
        writer.prepare()
    try:
        async with Fetcher(settings.fetch, writer, on_attempt=on_attempt) as fetcher, \
                browse.BrowserStage(settings, writer) as browsing:
            stage = CaptureStage(settings, writer, fetcher, browsing, previous=previous,
                                 compare=compare)
            try:
                yield stage
            finally:
                await stage.stop_probes()
    finally:
        writer.close()
