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

from archiver.catalog import Catalog
from archiver.config import Settings, load_settings
from archiver.errors import NotArchivedError, UsageError
from archiver.models import Claim, Verdict, WarcRef

__all__ = ["Archive", "ArchivedCapture", "Citation", "open_archive", "parse_when"]

# ``show --raw`` and ``text()`` undo Content-Encoding up to this size (a bomb stays bounded).
_MAX_DECODED = 512 * 1024 * 1024

_FOOTNOTE_REF = re.compile(r"^([a-z0-9-]+)#(\d+)$")


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
    # A browser capture (archiver.browse): its screenshot and rendered-text records.
    mode: str = "http"
    screenshot_ref: WarcRef | None = None
    text_ref: WarcRef | None = None
    profile: bool = False

    def _record(self) -> tuple[Any, list[tuple[str, str]], bytes]:
        from archiver.warc import read_record

        return read_record(self.root, self.payload_ref)

    def headers(self) -> list[tuple[str, str]]:
        """The archived HTTP response headers, in order, as received."""
        return list(self._record()[1])

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


class Archive:
    """Read access to an archive described by a config file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog.open(settings.archive.dir)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def captures(self, url: str, *, rescued: bool = True) -> list[ArchivedCapture]:
        """Every capture of ``url``, newest first: our own fetches (revisits resolved to the
        stored payload) and, with ``rescued``, the Internet Archive copies we stored."""
        last = self.catalog.last_result(url)
        found = self._stored(url, url, verdict=last.verdict if last else None)
        if rescued:
            for lookup in self.catalog.mementos(url):
                memento = lookup.memento
                if memento is None or not memento.raw_url:
                    continue
                for capture in self._stored(memento.raw_url, url, verdict=None):
                    found.append(replace(capture, origin="internet-archive",
                                         memento_datetime=memento.datetime))
        unique = {(c.warc.path, c.warc.offset): c for c in found}
        return sorted(unique.values(), key=lambda c: c.captured_at, reverse=True)

    def _stored(self, fetched_url: str, cited_url: str, *,
                verdict: Verdict | None) -> list[ArchivedCapture]:
        found = []
        for stored in self.catalog.captures(fetched_url):
            record = stored.warc or stored.payload
            payload = stored.payload or stored.warc
            if record is None or payload is None:
                continue
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
                )
            )
            browser = self.catalog.browser_capture(stored.id)
            if browser is not None and browser.mode == "browser":
                found[-1] = replace(found[-1], mode="browser", screenshot_ref=browser.screenshot,
                                    text_ref=browser.text_record, profile=browser.profile)
        return found

    def urls_of(self, ref: str) -> list[str]:
        """A reference → URLs: ``SOURCE_ID#N`` gives footnote N's URLs, anything else is a
        URL. Raises ``UsageError`` for an unknown source or footnote."""
        match = _FOOTNOTE_REF.match(ref)
        if not match:
            return [ref]
        from archiver.parse import read_document

        source = self.settings.source(match.group(1))
        note = read_document(source.path).footnote(int(match.group(2)))
        if note is None:
            raise UsageError(f"{ref}: {source.id} has no footnote {match.group(2)}")
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
                last = self.catalog.last_result(url)
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
    """The capture closest in time to ``when`` (ties: the earlier one)."""
    return min(captures, key=lambda c: (abs((c.captured_at - when).total_seconds()),
                                        c.captured_at))
