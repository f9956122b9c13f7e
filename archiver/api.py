"""The Python API for scripts and researchers' notebooks, and the code behind ``show``::

    from archiver import open_archive

    with open_archive("sources.toml") as archive:
        for citation in archive.citations("kazakhstan-2020"):
            print(citation.footnote, citation.url, citation.verdict)
            for capture in citation.captures:
                print(capture.captured_at, capture.status, capture.text()[:200])

Everything here reads; nothing fetches or writes. A capture's bytes come from the WARC record
that the catalog points at, so they are exactly what was archived.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archiver.catalog import CATALOG_NAME, Catalog
from archiver.config import Settings, load_settings
from archiver.errors import NotArchivedError, UsageError
from archiver.models import Claim, Memento, Verdict, WarcRef

__all__ = ["Archive", "ArchivedCapture", "Citation", "nearest", "open_archive", "parse_ref",
           "parse_when"]

# ``payload()`` and ``text()`` undo Content-Encoding up to this size, so a decompression
# bomb costs at most this much memory; ``payload_chunks()`` (``show --raw``) has no cap and
# holds one chunk at a time.
_MAX_DECODED = 64 * 1024 * 1024

_FOOTNOTE_REF = re.compile(r"([a-z0-9-]+)#(\d+)")
# Anything shaped like SOURCE_ID#SOMETHING that is not a URL: a footnote reference gone wrong.
_FOOTNOTE_LIKE = re.compile(r"^[^:/\s]*#")


@dataclass(frozen=True)
class ArchivedCapture:
    """One archived response. ``payload()``/``text()``/``headers()`` read the WARC record.

    ``warc`` is the record written when this capture was taken (a ``revisit`` when the
    payload had been archived before); ``payload_ref`` is the ``response`` record holding the
    bytes. ``origin`` is ``"live"`` for our own fetch of the cited URL, or
    ``"internet-archive"`` for a Wayback memento we copied into our WARCs, whose original
    archiving time is ``memento_datetime``.
    """

    url: str
    final_url: str
    status: int | None
    captured_at: datetime
    warc: WarcRef
    payload_ref: WarcRef
    content_type: str | None
    verdict: Verdict | None
    root: Path
    title: str | None = None
    origin: str = "live"
    memento_datetime: datetime | None = None
    reason: str = ""

    @property
    def dated(self) -> datetime:
        """The moment this copy shows the page as it was: a memento's own datetime for an
        Internet Archive copy (not when we fetched it), else when we captured it. ``--at``
        and the listing go by this date."""
        return self.memento_datetime or self.captured_at

    @property
    def shows_page(self) -> bool:
        """Whether this copy holds the evidence: our capture judged healthy (``ok`` or
        ``redirected``), or, where there is no verdict for it (an Internet Archive copy, a
        capture whose run recorded none), a 2xx answer."""
        if self.verdict is not None:
            return self.verdict.healthy
        return self.status is not None and 200 <= self.status < 300
    # A browser capture (archiver.browse): its screenshot and rendered-text records.
    mode: str = "http"
    screenshot_ref: WarcRef | None = None
    text_ref: WarcRef | None = None
    profile: bool = False

    def _record(self) -> tuple[Any, list[tuple[str, str]], bytes]:
        from archiver.warc import read_record

        return read_record(self.root, self.payload_ref)

    def headers(self) -> list[tuple[str, str]]:
        """The archived HTTP response headers of this capture, in order, as received.

        Read from ``warc`` (a revisit keeps its own answer's headers), not from
        ``payload_ref``, which may be another URL's response of another date."""
        from archiver.warc import read_record

        return list(read_record(self.root, self.warc).http_headers)

    def raw_payload(self) -> bytes:
        """The HTTP body exactly as it came over the wire (Content-Encoding intact)."""
        return self._record()[2]

    def payload(self) -> bytes:
        """The body with its Content-Encoding undone: the document itself (a PDF, a page)."""
        _, headers, body = self._record()
        from archiver.fetch import decode_body

        encoding = next((v for k, v in headers if k.lower() == "content-encoding"), None)
        if not encoding:
            return body
        import io

        return decode_body(io.BytesIO(body), encoding, _MAX_DECODED)

    def payload_chunks(self) -> Iterator[bytes]:
        """``payload()`` in bounded chunks, uncapped: a body of any decoded size is written
        without being held in memory."""
        _, headers, body = self._record()
        from archiver.fetch import decoded_chunks

        encoding = next((v for k, v in headers if k.lower() == "content-encoding"), None)
        if not encoding:
            yield body
            return
        import io

        yield from decoded_chunks(io.BytesIO(body), encoding)

    def screenshot(self) -> bytes | None:
        """A browser capture's full-page screenshot (PNG bytes); ``None`` for HTTP captures."""
        from archiver.warc import read_record

        return read_record(self.root, self.screenshot_ref).payload \
            if self.screenshot_ref else None

    def text(self) -> str:
        """The readable text of the archived page: main content, not navigation. For a
        browser capture, the text as rendered for a reader (its ``urn:text:`` record)."""
        from archiver.pagetext import extract

        if self.text_ref is not None:
            from archiver.warc import read_record

            return read_record(self.root, self.text_ref).payload.decode("utf-8", "replace")
        return extract(self.payload(), self.content_type, self.final_url).text


@dataclass(frozen=True)
class Citation:
    """One footnote-URL pair of a source, with what the archive knows about the URL."""

    source: str
    footnote: int
    url: str
    claims: tuple[Claim, ...]
    verdict: Verdict | None
    reason: str
    captures: tuple[ArchivedCapture, ...]


def parse_when(text: str) -> datetime:
    """``2026-01-01`` or an ISO time → an aware UTC datetime; ``UsageError`` otherwise."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at: expected a date like 2026-01-01, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _page_key(url: str) -> str:
    """What identifies the page a URL asks for: no fragment, scheme and host in lower case,
    no default port (``HTTP://Example.org:80/a#b`` and ``http://example.org/a`` agree)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def parse_ref(ref: str) -> tuple[str, int] | str:
    """``SOURCE_ID#N`` → ``(SOURCE_ID, N)``; an absolute http(s) URL → itself. Anything else
    (``kazakhstan-2020#abc``, ``#3``, ``not a url``) raises ``UsageError``."""
    match = _FOOTNOTE_REF.fullmatch(ref)
    if match:
        return match.group(1), int(match.group(2))
    if _FOOTNOTE_LIKE.match(ref):
        raise UsageError(f"{ref!r}: not a footnote reference; expected SOURCE_ID#N with N a "
                         "footnote number, e.g. kazakhstan-2020#14")
    try:
        parts = urlsplit(ref)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or any(ch.isspace() for ch in ref):
        raise UsageError(f"{ref!r}: not a URL or a footnote reference; expected an http(s) "
                         "URL or SOURCE_ID#N, e.g. kazakhstan-2020#14")
    return ref


class Archive:
    """Read access to an archive described by a config file.

    Opening never creates anything: without an archive folder or catalog the archive is
    empty (``exists`` is false) and every capture list is empty."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exists = (settings.archive.dir / CATALOG_NAME).is_file()
        self.catalog: Catalog | None = (Catalog.open(settings.archive.dir) if self.exists
                                        else None)

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def captures(self, url: str, *, rescued: bool = True) -> list[ArchivedCapture]:
        """Every capture of ``url``, newest first by its own date (``dated``): our own
        fetches (``warc`` is the record of that fetch, ``payload_ref`` the record holding the
        bytes) and, with ``rescued``, the Internet Archive copies we stored. Each of our
        captures carries the verdict of the run that took it."""
        if self.catalog is None:
            return []
        judged: dict[int, tuple[Verdict, str]] = {}
        for result in self.catalog.results(url):  # newest first: keep each run's last word
            judged.setdefault(result.run_id, (result.verdict, result.reason))
        found = self._stored(url, url, judged=judged)
        if rescued:
            for lookup in self.catalog.mementos(url):
                memento = lookup.memento
                if memento is None or not memento.raw_url:
                    continue
                for capture in self._stored(memento.raw_url, url, judged={}):
                    found.append(replace(capture, origin="internet-archive",
                                         memento_datetime=memento.datetime))
        unique = {(c.warc.path, c.warc.offset): c for c in found}
        # By each copy's own date (a memento's datetime, not when we fetched it), as show
        # lists them.
        return sorted(unique.values(), key=lambda c: c.dated, reverse=True)

    def mementos(self, url: str) -> list[Memento]:
        """The Internet Archive copies of ``url`` that lookups found, stored in our WARCs or
        not, oldest first (one per memento address)."""
        if self.catalog is None:
            return []
        found = {lookup.memento.url: lookup.memento for lookup in self.catalog.mementos(url)
                 if lookup.memento is not None}
        return sorted(found.values(), key=lambda m: m.datetime)

    def _stored(self, fetched_url: str, cited_url: str, *,
                judged: dict[int, tuple[Verdict, str]]) -> list[ArchivedCapture]:
        assert self.catalog is not None
        found = []
        for stored in self.catalog.captures(fetched_url):
            record, payload = stored.warc, stored.payload
            if record is not None and payload is None and stored.revisit:
                payload = self._original_of(record)
            if record is None or payload is None:
                continue  # nothing written, or a revisit whose bytes are nowhere: unreadable
            verdict, reason = judged.get(stored.run_id, (None, ""))
            found.append(
                ArchivedCapture(
                    url=cited_url,
                    final_url=stored.final_url or fetched_url,
                    status=stored.status,
                    captured_at=stored.captured_at,
                    warc=record,
                    payload_ref=payload,
                    content_type=stored.content_type,
                    verdict=verdict,
                    root=self.settings.root,
                    title=stored.title,
                    reason=reason,
                )
            )
            browser = self.catalog.browser_capture(stored.id)
            if browser is not None and browser.mode == "browser":
                found[-1] = replace(found[-1], mode="browser", screenshot_ref=browser.screenshot,
                                    text_ref=browser.text_record, profile=browser.profile)
        return found

    def _original_of(self, revisit: WarcRef) -> WarcRef | None:
        """The response record a revisit refers to, found through the CDXJ index when the
        catalog does not know it (its row lost, e.g. to a crash between the WARC write and
        the catalog): the record of ``WARC-Refers-To-Target-URI`` with the same payload
        digest and ``WARC-Refers-To`` as its id. ``None`` if it is not there."""
        from archiver.errors import ArchiveError
        from archiver.warc import lookup, read_record

        archive_dir = self.settings.archive.dir
        try:
            head = dict(read_record(self.settings.root, revisit).warc_headers)
            target, digest = head.get("WARC-Refers-To-Target-URI"), head.get("WARC-Payload-Digest")
            if not target or not digest:
                return None
            for entry in lookup(archive_dir, target):
                if entry.digest != digest or entry.mime == "warc/revisit":
                    continue
                path = (archive_dir / entry.filename).resolve()
                try:
                    rel = path.relative_to(self.settings.root.resolve()).as_posix()
                except ValueError:
                    rel = path.as_posix()
                found = WarcRef(rel, entry.offset, entry.length, "")
                record_id = dict(read_record(self.settings.root, found).warc_headers).get(
                    "WARC-Record-ID", "")
                if record_id and record_id == head.get("WARC-Refers-To", record_id):
                    return WarcRef(rel, entry.offset, entry.length, record_id)
        except ArchiveError:
            return None
        return None

    def _as_cited(self, url: str) -> list[str]:
        """``url`` as the archive knows it: itself when it was cited or captured as written;
        else the cited URLs that differ from it only in what does not change the page asked
        for (the ``#fragment``, the case of scheme and host, a default port), as a reader
        copies a link from the address bar; else ``url`` itself."""
        if self.catalog is None or self.catalog.captures(url):
            return [url]
        known = {row.url for row in self.catalog.citations()} | self.catalog.captured_urls()
        if url in known:
            return [url]
        key = _page_key(url)
        same = sorted(u for u in known if _page_key(u) == key)
        return same or [url]

    def cites(self, url: str) -> bool:
        """Whether a source in the catalog cites ``url`` (or a capture of it exists)."""
        if self.catalog is None:
            return False
        return bool(self.catalog.cited_by(url)) or bool(self.catalog.captures(url))

    def urls_of(self, ref: str) -> list[str]:
        """A reference → URLs: ``SOURCE_ID#N`` gives footnote N's URLs, an http(s) URL is
        itself. Raises ``UsageError`` for a malformed reference, an unknown footnote, and
        ``ConfigError`` (also exit 2) for an unknown source."""
        parsed = parse_ref(ref)
        if isinstance(parsed, str):
            return self._as_cited(parsed)
        from archiver.parse import read_document

        source_id, number = parsed
        source = self.settings.source(source_id)
        note = read_document(source.path).footnote(number)
        if note is None:
            raise UsageError(f"{ref}: {source.id} has no footnote {number}")
        if not note.urls:
            raise NotArchivedError(f"{ref}: footnote {note.number} cites no URL")
        return list(note.urls)

    def citations(self, source_id: str) -> Iterator[Citation]:
        """Every footnote-URL pair of a source, in footnote order."""
        from archiver.parse import read_document

        source = self.settings.source(source_id)
        doc = read_document(source.path)
        for note in doc.footnotes:
            for url in note.urls:
                last = self.catalog.last_result(url) if self.catalog is not None else None
                yield Citation(
                    source=source_id,
                    footnote=note.number,
                    url=url,
                    claims=note.claims,
                    verdict=last.verdict if last else None,
                    reason=last.reason if last else "not checked yet",
                    captures=tuple(self.captures(url)),
                )


def open_archive(config: str | Path = "sources.toml") -> Archive:
    """Open the archive described by ``config`` for reading."""
    return Archive(load_settings(config))


def nearest(captures: list[ArchivedCapture], when: datetime) -> ArchivedCapture:
    """The copy whose own date (``dated``: a memento's datetime, else our capture time) is
    closest to ``when`` (ties: the earlier one)."""
    return min(captures, key=lambda c: (abs((c.dated - when).total_seconds()), c.dated))
