"""The claim-to-evidence report as one frozen record, built from a document and its links.

``build_report`` joins what the other stages produced (the parsed ``Document``, one
``LinkRecord`` per distinct cited URL, the changes a scheduled check found, run-level notes)
into a ``Report`` that the renderers turn into JSON, HTML, Markdown and CSV. Paths are only
computed, never touched; the one read is of link records or claim support handed over as a
``Spool`` (a large source's, kept on disk), read back as the renderers walk them.

The report is organised the way a reader checks a briefing: one ``Entry`` per footnote, in
document order (the line of the first marker that cites it), each with the claims that cite
it and a ``LinkRecord`` for every URL it cites. A footnote that cites no URL leaves its claims
"unsupported by web evidence"; a footnote that no marker cites is still listed.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, overload

from archiver.models import (
    Change,
    Claim,
    Document,
    Footnote,
    LinkRecord,
    Source,
    Verdict,
    WarcRef,
    isoformat,
)
from archiver.spool import Spool
from archiver.support import Support

__all__ = [
    "EVIDENCE_IA",
    "EVIDENCE_KINDS",
    "EVIDENCE_NONE",
    "EVIDENCE_OURS",
    "EVIDENCE_UNKNOWN",
    "UNCHECKED",
    "UNSUPPORTED",
    "VERDICT_ORDER",
    "Entry",
    "Report",
    "Summary",
    "SupportIndex",
    "Tally",
    "build_report",
    "evidence_kind",
    "evidence_text",
    "iso",
    "memento_offset_days",
    "offset_phrase",
    "screenshot_files",
    "verdict_description",
    "verdict_key",
    "verdict_label",
]

# Pseudo-verdicts used for filtering and counting: a link that has not been checked yet, and a
# footnote that cites no URL at all.
UNCHECKED = "unchecked"
UNSUPPORTED = "unsupported"

# The order verdicts are listed in everywhere: healthy first, then what a reader can still act
# on (content problems), then dead, then failures that may be transient.
VERDICT_ORDER: tuple[str, ...] = (
    *(v.value for v in Verdict),
    UNCHECKED,
)

# Where the evidence of a failing link can still be read: a copy in our own WARCs (the
# Internet Archive's copy, fetched with --rescue-capture), only at the Internet Archive,
# nowhere (the archive was asked and has no copy), or unknown (the archive could not be
# asked: unreachable, rate-limited, or rescue disabled). Our capture of the failing URL itself
# is not counted: it shows the failure (a 404 page, a login form), not the cited content.
EVIDENCE_OURS = "ours"
EVIDENCE_IA = "internet_archive"
EVIDENCE_NONE = "none"
EVIDENCE_UNKNOWN = "unknown"
EVIDENCE_KINDS: tuple[str, ...] = (EVIDENCE_OURS, EVIDENCE_IA, EVIDENCE_NONE, EVIDENCE_UNKNOWN)

_LABELS: dict[str, str] = {
    "ok": "OK",
    "redirected": "Redirected",
    "incomplete": "Incomplete capture",
    "soft_404": "Soft 404",
    "login_wall": "Login wall",
    "parked": "Parked domain",
    "blocked": "Blocked",
    "not_found": "Not found",
    "gone": "Gone",
    "server_error": "Server error",
    "timeout": "Timeout",
    "dns_error": "DNS error",
    "connection_error": "Connection error",
    "tls_error": "TLS error",
    "invalid_url": "Invalid URL",
    "private_address": "Private address",
    UNCHECKED: "Not checked",
    UNSUPPORTED: "No URL",
}

_DESCRIPTIONS: dict[str, str] = {
    "ok": "the page answers with real content",
    "redirected": "it answers after redirects to another URL with real content",
    "incomplete": "it answers with content, but our capture was cut (deadline, stall, "
                  "connection closed early, or over the size limit): not the whole page",
    "soft_404": "it answers, but the content is an error page or the site's home page",
    "login_wall": "the content is behind a login",
    "parked": "the domain is parked or for sale",
    "blocked": "access refused (401/403/451, a bot challenge, or rate limiting)",
    "not_found": "the server says 404 Not Found",
    "gone": "the server says 410 Gone",
    "server_error": "the server kept failing (5xx)",
    "timeout": "no answer within the timeout",
    "dns_error": "the host name does not resolve",
    "connection_error": "the connection was refused or reset",
    "tls_error": "the certificate or the TLS handshake failed",
    "invalid_url": "not a fetchable http(s) URL",
    "private_address": "it points at a loopback, private or link-local address",
    UNCHECKED: "not checked yet",
    UNSUPPORTED: "the footnote cites no URL: its claims are unsupported by web evidence",
}


def verdict_key(link: LinkRecord) -> str:
    """The link's verdict as a string, ``"unchecked"`` when it has none yet."""
    # ``_value_`` is ``.value`` without the enum's descriptor (a Python call per read).
    return link.verdict._value_ if link.verdict is not None else UNCHECKED


@functools.lru_cache(maxsize=4096)
def iso(moment: datetime) -> str:
    """``models.isoformat(moment)``, remembered: a report writes each link's times in every
    format, and many links share the second they were fetched or checked in, while
    ``strftime`` costs microseconds a call."""
    return isoformat(moment)


def verdict_label(key: str) -> str:
    """A short human label for a verdict key ("Not found")."""
    return _LABELS.get(key, key.replace("_", " ").capitalize())


def verdict_description(key: str) -> str:
    """What the verdict means, in a phrase (from the contract's table)."""
    return _DESCRIPTIONS.get(key, "")


def evidence_kind(link: LinkRecord) -> str | None:
    """Where a failing link's evidence survives: ``"ours"`` (a rescued copy in our WARCs),
    ``"internet_archive"`` (a memento only), ``"none"`` (looked up: no copy exists),
    ``"unknown"`` (not looked up: ``link.not_looked_up`` says why); ``None`` for a healthy or
    unchecked link, for which the question does not arise."""
    if not needs_rescue(link):
        return None
    if link.rescued is not None:
        return EVIDENCE_OURS
    if link.memento is not None:
        return EVIDENCE_IA
    if link.not_looked_up is not None:
        return EVIDENCE_UNKNOWN
    return EVIDENCE_NONE


def memento_offset_days(link: LinkRecord, published: date | None) -> float | None:
    """Signed days from ``published`` to the link's memento (negative: archived before),
    rounded to one decimal; ``None`` for a healthy or unchecked link, a link without a
    memento, or a source without a publication date. The count is ``rescue.offset_days``:
    whole calendar days (UTC), so the value is integral."""
    if not needs_rescue(link) or link.memento is None:
        return None
    # Imported here: ``archiver.rescue`` brings httpx and the fetcher, which a report
    # without a rescued copy never needs (0.1-0.2 s of a run that fetches nothing).
    from archiver.rescue import offset_days

    days = offset_days(link.memento, published)
    return None if days is None else round(days, 1)


def offset_phrase(days: float) -> str:
    """``"archived 4 days after publication"``, ``"archived 12 days before publication"``,
    ``"archived on the publication day"``."""
    if days == 0:
        return "archived on the publication day"
    size = abs(days)
    number = f"{size:g}"
    unit = "day" if size == 1 else "days"
    side = "after" if days > 0 else "before"
    return f"archived {number} {unit} {side} publication"


def evidence_text(link: LinkRecord, published: date | None) -> str | None:
    """The failing link's evidence in a sentence for a reader, ``None`` where
    ``evidence_kind`` is ``None``: ``"Internet Archive copy from 2020-10-28 (archived 4 days
    before publication)"``, with ``", stored in our WARC"`` for a rescued copy,
    ``"No archived copy found"``, or ``"Not looked up: the Internet Archive could not be
    reached"`` (the reason is ``link.not_looked_up``)."""
    kind = evidence_kind(link)
    if kind is None:
        return None
    if kind == EVIDENCE_UNKNOWN:
        return f"Not looked up: {link.not_looked_up}"
    if link.memento is None:
        # A rescued copy always comes from a memento; without one there is nothing to date.
        return "Copy stored in our WARC" if kind == EVIDENCE_OURS else "No archived copy found"
    day = link.memento.datetime.astimezone(UTC).date().isoformat()
    text = f"Internet Archive copy from {day}"
    if kind == EVIDENCE_OURS:
        text += ", stored in our WARC"
    days = memento_offset_days(link, published)
    if days is not None:
        text += f" ({offset_phrase(days)})"
    return text


@dataclass(frozen=True)
class Entry:
    """One footnote of the report with the claims that cite it and the links it cites.

    ``anchor`` is the HTML id (``fn-N``; ``fn-N-2`` for a second footnote with the same number).
    ``line`` is where the entry sits in document order: its first claim's line, or the
    footnote's own line when no marker cites it.
    """

    footnote: Footnote
    links: tuple[LinkRecord, ...]
    anchor: str
    line: int

    @property
    def number(self) -> int:
        return self.footnote.number

    @property
    def claims(self) -> tuple[Claim, ...]:
        return self.footnote.claims

    @property
    def unsupported(self) -> bool:
        """The footnote cites no URL, so its claims have no web evidence."""
        return not self.footnote.urls

    @property
    def orphan(self) -> bool:
        """No marker in the body cites this footnote."""
        return not self.footnote.claims

    @property
    def keys(self) -> tuple[str, ...]:
        """The distinct verdict keys of its links (``("unsupported",)`` without URLs)."""
        if self.unsupported:
            return (UNSUPPORTED,)
        seen: dict[str, None] = {}
        for link in self.links:
            seen.setdefault(verdict_key(link), None)
        return tuple(seen)


@dataclass(frozen=True)
class Summary:
    """The report's headline figures.

    ``by_verdict`` counts distinct URLs per verdict key, in ``VERDICT_ORDER``, only keys that
    occur. ``no_copy`` counts links that are not healthy and that the archive was asked about
    and has no copy of: the evidence may be lost (links not looked up are not counted: that
    is not known). ``evidence`` counts the failing links by ``evidence_kind``, every key of
    ``EVIDENCE_KINDS`` in that order (``none`` equals ``no_copy``).
    """

    claims: int
    footnotes: int
    urls: int
    citations: int
    healthy: int
    failing: int
    unchecked: int
    captured: int
    mementos: int
    rescued: int
    no_copy: int
    unsupported_claims: int
    unsupported_footnotes: int
    orphan_footnotes: int
    by_verdict: tuple[tuple[str, int], ...]
    evidence: tuple[tuple[str, int], ...] = tuple((k, 0) for k in EVIDENCE_KINDS)

    def count(self, key: str) -> int:
        return dict(self.by_verdict).get(key, 0)

    def evidence_count(self, kind: str) -> int:
        return dict(self.evidence).get(kind, 0)


@dataclass(frozen=True)
class Report:
    """Everything the renderers need about one source, frozen (``links`` and ``support``
    may be a ``Spool``: read from its file, which must stay open while the report is used).

    ``source_path`` is the document's path relative to the config's folder (``/``
    separators). ``archive_base`` is the relative path from the report's folder back to the
    config's folder (``../../`` for ``reports/SOURCE_ID/``), prefixed to a ``WarcRef.path`` to
    link a capture from the HTML report. ``run`` holds run metadata (JSON-safe values).
    """

    source: Source
    source_path: str
    document: Document
    links: Sequence[LinkRecord]
    entries: Sequence[Entry]
    summary: Summary
    generated_at: datetime
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    run: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    archive_base: str = "../../"
    # Claim support per (footnote, URL), from ``archiver.support`` (empty: not judged).
    support: Sequence[Support] = ()
    # The links that need rescue (``needs_rescue``), in order, when known without reading
    # ``links`` again (``build_report`` with a ``Tally``); ``None``: found in ``links``.
    attention: Sequence[LinkRecord] | None = None
    # ``support`` indexed as it was made (``build_report``'s ``support_index``): the index
    # below without a pass over the supports.
    support_index: SupportIndex | None = field(default=None, compare=False, repr=False)

    @property
    def title(self) -> str:
        return self.source.title or self.document.title or self.source.id

    def link(self, url: str) -> LinkRecord | None:
        at = self._link_positions.get(url)
        return None if at is None else self.links[at]

    def support_for(self, footnote: int) -> list[Support]:
        """The claim support of footnote ``footnote``, one per cited URL, in order."""
        at = self._support_positions[0].get(footnote)
        if at is None:
            return []
        support = self.support
        return [support[n] for n in at]

    @property
    def support_counts(self) -> Mapping[str, int]:
        """How many (footnote, URL) pairs have each support level (levels that occur)."""
        return self._support_positions[1]

    # Indexes built once: the renderers look up every entry's links and support, and a scan
    # per entry would make a report of N footnotes cost N². Positions, not the records: the
    # records may be in a ``Spool`` on disk.
    @functools.cached_property
    def _link_positions(self) -> dict[str, int]:
        if self._document_order:
            return {url: n for n, url in enumerate(self.document.urls)}
        found: dict[str, int] = {}
        for n, link in enumerate(self.links):
            found.setdefault(link.url, n)
        return found

    @functools.cached_property
    def _document_order(self) -> bool:
        """``links`` are the document's URLs in order, one each (as ``build_report`` makes
        them from a ``Spool``): the document's own URL list then indexes them."""
        return isinstance(self.links, Spool)

    @functools.cached_property
    def _support_positions(self) -> tuple[dict[int, range | list[int]], Counter[str]]:
        """Each footnote number's supports (their positions: a range when they follow each
        other, as ``assess_document`` makes them) and the count of each level, in one pass
        (none when a ``SupportIndex`` was made with them)."""
        index = self.support_index
        if index is not None and index.size == len(self.support):
            return index.found, index.counts
        index = SupportIndex()
        for support in self.support:
            index.add(support)
        return index.found, index.counts


class SupportIndex:
    """``Report``'s index of its claim support, made one support at a time as they are
    judged (``add`` each in order, or pass them through ``each``), so that a report of
    spooled supports need not read them all back for it: each footnote number's positions
    and the count of each level."""

    def __init__(self) -> None:
        self.found: dict[int, range | list[int]] = {}
        self.counts: Counter[str] = Counter()
        self.size = 0

    def add(self, support: Support) -> None:
        n = self.size
        self.size = n + 1
        self.counts[support.level] += 1
        found = self.found
        at = found.get(support.footnote)
        if at is None:
            found[support.footnote] = range(n, n + 1)
        elif isinstance(at, range) and at.stop == n:
            found[support.footnote] = range(at.start, n + 1)
        else:
            found[support.footnote] = [*at, n]

    def each(self, supports: Iterable[Support]) -> Iterator[Support]:
        """``supports``, each added as it passes."""
        for support in supports:
            self.add(support)
            yield support


class Tally:
    """What ``build_report`` reads from a ``Spool`` of link records, counted as the records
    are made (``add`` each, in order) so that it need not read them back: the summary's
    figures, whether they are ``document``'s URLs in order (each with its footnotes), and
    the links that need rescue (kept: the caller holds them anyway, e.g. for the terminal)."""

    def __init__(self, document: Document) -> None:
        self._urls = document.urls
        self.counts = _Counts()
        self.in_order = True
        self.attention: list[LinkRecord] = []

    def add(self, link: LinkRecord) -> None:
        counts = self.counts
        if self.in_order:
            n = counts.urls
            if n >= len(self._urls) or link.url != self._urls[n] or not link.footnotes:
                self.in_order = False
        counts.add(link, keep=True)
        if needs_rescue(link):
            self.attention.append(link)


def build_report(
    source: Source,
    document: Document,
    links: Sequence[LinkRecord],
    *,
    generated_at: datetime,
    changes: Sequence[Change] = (),
    notes: Sequence[str] = (),
    run: Mapping[str, Any] | None = None,
    root: Path | None = None,
    report_dir: Path | None = None,
    support: Sequence[Support] = (),
    tally: Tally | None = None,
    support_index: SupportIndex | None = None,
) -> Report:
    """Join a parsed document and its link records into a ``Report``.

    ``links`` holds one record per distinct cited URL, in any order; a URL the document cites
    that has no record yet gets one with ``verdict=None`` (shown as "not checked"), so nothing
    the briefing cites is dropped; a record without ``footnotes`` gets the citing ones.
    Records for URLs the document does not cite are kept at the end. ``root`` is the config's
    folder: ``Source.path`` is made relative to it (left as given when ``root`` is ``None`` or
    the document lies outside it). ``report_dir`` is the folder
    the report files will be written to; with ``root`` it sets ``archive_base`` so that the
    HTML links to captures resolve (default ``../../``, right for ``reports/SOURCE_ID/``).
    ``run`` values are made JSON-safe (dates as ISO strings, other objects as ``str``).
    Paths are compared lexically (no symlink resolution, no file access); the only reads are
    of ``links`` or ``support`` given as a ``Spool``; raises nothing for well-typed input.
    ``tally``: ``links`` (a ``Spool``) counted as they were made, and ``support_index``:
    ``support`` indexed as it was made; either spares a pass over records on disk (the same
    report either way).
    """
    summary = None
    attention = None
    link_seq: Sequence[LinkRecord]
    if isinstance(links, Spool) and tally is not None and tally.in_order \
            and tally.counts.urls == len(links) == len(document.urls):
        counts = tally.counts
        link_seq = links
        summary = _summary(document, counts)
        attention = tuple(tally.attention)
    elif isinstance(links, Spool):
        # Streamed (``archiver run`` and ``report``): the records stay on disk when they are
        # the document's URLs in order, each with its footnotes, as the pipeline makes them.
        counts = _Counts()
        in_order = len(links) == len(document.urls)
        if in_order:
            for link, url in zip(links, document.urls, strict=True):
                if link.url != url or not link.footnotes:
                    in_order = False
                    break
                counts.add(link, keep=True)
        if in_order:
            link_seq = links
            summary = _summary(document, counts)
    if summary is None:
        link_seq = _ordered(document, links)
        counts = _Counts()
        for link in link_seq:
            counts.add(link)
        summary = _summary(document, counts)
    if isinstance(link_seq, Spool):
        entries: Sequence[Entry] = _Entries(
            document, link_seq, {url: n for n, url in enumerate(document.urls)},
            counts.kept)
    else:
        entries = tuple(_Entries(document, link_seq,
                                 {link.url: n for n, link in enumerate(link_seq)}))
    return Report(
        source=source,
        source_path=_relative(source.path, root),
        document=document,
        links=link_seq,
        entries=entries,
        summary=summary,
        generated_at=generated_at,
        changes=tuple(changes),
        notes=tuple(note for note in notes if note.strip()),
        run=MappingProxyType({str(k): _json_safe(v) for k, v in (run or {}).items()}),
        archive_base=_archive_base(root, report_dir),
        support=support if isinstance(support, Spool) else tuple(support),
        attention=attention,
        support_index=support_index,
    )


def _ordered(document: Document, links: Sequence[LinkRecord]) -> tuple[LinkRecord, ...]:
    """One record per URL of ``document`` in its order (the given one, its footnotes filled
    in, or a record not checked yet), then the records of URLs it does not cite."""
    by_url: dict[str, LinkRecord] = {}
    for link in links:
        by_url.setdefault(link.url, link)
    ordered: list[LinkRecord] = []
    for url in document.urls:
        citing = document.citing[url]
        given = by_url.pop(url, None)
        if given is None:
            given = LinkRecord(url=url, footnotes=citing, verdict=None)
        elif not given.footnotes:
            given = replace(given, footnotes=citing)
        ordered.append(given)
    ordered.extend(by_url.values())
    return tuple(ordered)


class _Entries(Sequence[Entry]):
    """The report's entries in document order, each made when asked for: an ``Entry`` holds
    its links, which a report of a ``Spool`` of links keeps on disk. ``where`` maps each URL
    to the position of its record in ``links``."""

    def __init__(self, document: Document, links: Sequence[LinkRecord],
                 where: Mapping[str, int], keys: bytearray | None = None) -> None:
        self._footnotes = document.footnotes
        self._links, self._where = links, where
        # Each link's verdict key (its index in VERDICT_ORDER), by position: an entry's keys
        # without reading its links.
        self._keys = keys
        # Anchors of repeated numbers only (fn-N-2, ...): the others are fn-N.
        used: dict[int, int] = {}
        self._anchors: dict[int, str] = {}
        lines = []
        for n, note in enumerate(self._footnotes):
            used[note.number] = used.get(note.number, 0) + 1
            if used[note.number] > 1:
                self._anchors[n] = f"fn-{note.number}-{used[note.number]}"
            lines.append(_line(note))
        # Document order is the order a reader meets the claims; ties (a footnote cited twice
        # on one line) keep the footnotes' own order because sorted() is stable.
        self._order = sorted(range(len(lines)), key=lines.__getitem__)

    def __len__(self) -> int:
        return len(self._order)

    def _entry(self, n: int) -> Entry:
        note = self._footnotes[n]
        where, links = self._where, self._links
        return Entry(footnote=note, links=tuple(links[where[u]] for u in note.urls),
                     anchor=self._anchors.get(n) or f"fn-{note.number}", line=_line(note))

    @overload
    def __getitem__(self, index: int) -> Entry: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...

    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        if isinstance(index, slice):
            return [self._entry(n) for n in self._order[index]]
        return self._entry(self._order[index])

    def __iter__(self) -> Iterator[Entry]:
        for n in self._order:
            yield self._entry(n)

    def footnotes(self) -> Iterator[Footnote]:
        """Each entry's footnote, in the entries' order."""
        footnotes = self._footnotes
        for n in self._order:
            yield footnotes[n]

    def keys(self) -> Iterator[tuple[str, ...]]:
        """Each entry's ``Entry.keys``, in order."""
        if self._keys is None:
            for entry in self:
                yield entry.keys
            return
        codes, where = self._keys, self._where
        for note in self.footnotes():
            if not note.urls:
                yield (UNSUPPORTED,)
            else:
                yield tuple(dict.fromkeys(VERDICT_ORDER[codes[where[u]]] for u in note.urls))


def entry_footnotes(report: Report) -> Iterator[Footnote]:
    """The footnote of each of ``report``'s entries, in order, without making the entries
    (and reading their links)."""
    if isinstance(report.entries, _Entries):
        return report.entries.footnotes()
    return (entry.footnote for entry in report.entries)


def entry_keys(report: Report) -> Iterator[tuple[str, ...]]:
    """``Entry.keys`` of each of ``report``'s entries, in order, from the links' verdicts
    noted when the report was built where it can."""
    if isinstance(report.entries, _Entries):
        return report.entries.keys()
    return (entry.keys for entry in report.entries)


def _line(note: Footnote) -> int:
    return min((c.line for c in note.claims), default=note.line)


class _Counts:
    """The figures of the summary that come from the links, counted in one pass."""

    def __init__(self) -> None:
        self.urls = self.healthy = self.captured = self.mementos = self.rescued = 0
        self.verdicts: dict[str, int] = {}
        self.evidence: dict[str | None, int] = {}
        self.kept = bytearray()  # with ``keep``: each link's verdict key, as its index

    def add(self, link: LinkRecord, *, keep: bool = False) -> None:
        self.urls += 1
        key = verdict_key(link)
        if keep:
            self.kept.append(_KEY_INDEX[key])
        self.verdicts[key] = self.verdicts.get(key, 0) + 1
        if link.verdict is not None and link.verdict.healthy:
            self.healthy += 1
        self.captured += link.capture is not None
        self.mementos += link.memento is not None
        self.rescued += link.rescued is not None
        kind = evidence_kind(link)
        self.evidence[kind] = self.evidence.get(kind, 0) + 1


_KEY_INDEX = {key: n for n, key in enumerate(VERDICT_ORDER)}


def _summary(document: Document, counts: _Counts) -> Summary:
    footnotes = document.footnotes
    unchecked = counts.verdicts.get(UNCHECKED, 0)
    return Summary(
        claims=len(document.claims),
        footnotes=len(footnotes),
        urls=counts.urls,
        citations=sum(len(note.urls) for note in footnotes),
        healthy=counts.healthy,
        failing=counts.urls - counts.healthy - unchecked,
        unchecked=unchecked,
        captured=counts.captured,
        mementos=counts.mementos,
        rescued=counts.rescued,
        no_copy=counts.evidence.get(EVIDENCE_NONE, 0),
        # An entry is unsupported when its footnote cites no URL, an orphan when no marker
        # cites it: the entries are the footnotes in another order.
        unsupported_claims=sum(len(note.claims) for note in footnotes if not note.urls),
        unsupported_footnotes=sum(1 for note in footnotes if not note.urls),
        orphan_footnotes=sum(1 for note in footnotes if not note.claims),
        by_verdict=tuple((k, counts.verdicts[k]) for k in VERDICT_ORDER if k in counts.verdicts),
        evidence=tuple((k, counts.evidence.get(k, 0)) for k in EVIDENCE_KINDS),
    )


def screenshot_files(ref: WarcRef) -> tuple[str, str]:
    """Where a browser capture's screenshot is written next to the report (relative to the
    report's folder): the full page, and its top as a thumbnail. Named by the record, so a
    rebuilt report rewrites the same files."""
    import hashlib

    name = hashlib.sha256(ref.record_id.encode()).hexdigest()[:20]
    return f"screenshots/{name}.png", f"screenshots/{name}-top.png"


def needs_rescue(link: LinkRecord) -> bool:
    """The link was checked and the cited page no longer shows the evidence."""
    return link.verdict is not None and not link.verdict.healthy


def has_rescue(link: LinkRecord) -> bool:
    """Some other archived copy exists: an Internet Archive memento or a rescued capture."""
    return link.memento is not None or link.rescued is not None


def _relative(path: str, root: Path | None) -> str:
    if root is None:
        return PurePath(path).as_posix()
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return PurePath(path).as_posix()


def _archive_base(root: Path | None, report_dir: Path | None) -> str:
    if root is None or report_dir is None:
        return "../../"
    rel = os.path.relpath(os.path.abspath(root), os.path.abspath(report_dir))
    rel = PurePath(rel).as_posix()
    return "" if rel == "." else rel.rstrip("/") + "/"


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _json_safe(value.value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return str(value)


# What each kind of change is called, in every renderer and in the terminal.
CHANGE_LABELS = {
    "newly_failing": "Newly failing",
    "newly_dead": "Now dead",
    "still_failing": "Still failing",
    "recovered": "Recovered",
    "drifted": "Content changed",
    "support_dropped": "Claim support dropped",
}
