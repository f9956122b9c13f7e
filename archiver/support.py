"""Claim support: does the cited page say what the claim says?

    evidence_texts(catalog, root, links) -> {url: EvidenceText | None}      (reads; the edge)
    assess_document(document, texts) -> tuple[Support, ...]                (pure)
    each_support(document, texts) -> Iterator[Support]                      (the same, lazily)
    assess(footnote, url, claims, evidence) -> Support                     (pure)
    level_of(checks, evidence) -> (level, reason)                          (pure)
    record_levels(catalog, run_id, source_id, supports, compare) -> [Change]

For each (footnote, cited URL) the claims citing the footnote are cut into facts
(``support_facts``), each fact is looked for in the text of the capture the report cites for
that URL (``support_match``), and the level follows from which facts were found.

The evidence text is "a text, and its kind, for a (footnote, URL)": our capture's text
when the link is healthy, the rescued Internet Archive copy's text when it is not (no
copy: no text). Whatever produced it (a fetch, a rescue, a browser's rendered text), the
text is what ``pagetext.extract`` reads from the archived payload.

The rule (``level_of``), shown in every report with the facts behind it:

- ``unknown``: there is no readable text (no capture of the cited content, a failing link
  without a rescued copy, a scanned PDF or an image), or the claim has no checkable fact.
  A page we could not read is never called unsupported.
- The *required* facts are the claim's people, dates with a month, sums (not the author's
  conversions), figures and law articles. Organisations and places (named in English in the
  claim), bare years, conversions and quotes are looked for and shown, but do not count
  against the page; a quote that is found counts for it.
- ``supported``: every required fact is found.
- ``partial``: some are found and some are not (the page names the people but gives another
  date or sum, or another article).
- ``unsupported``: none is found (a page on another subject).
- A claim with no required fact is ``supported`` when one of its quotes is on the page,
  else ``unknown``: an English institution's name or a year alone cannot tell one page
  from another.

Paraphrase and translation of whole sentences are out of reach: fact matching sees names,
figures, dates and articles, not what a sentence says about them.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.support_facts import Fact, claim_facts
from archiver.support_match import Evidence

if TYPE_CHECKING:
    from archiver.catalog import Catalog, StoredCapture
    from archiver.models import Change, Document, LinkRecord, Verdict

__all__ = [
    "LEVELS",
    "LEVEL_RULE",
    "EvidenceText",
    "FactCheck",
    "Support",
    "assess",
    "assess_document",
    "each_support",
    "evidence_texts",
    "level_of",
    "record_levels",
    "support_json",
]

log = logging.getLogger(__name__)

LEVELS: tuple[str, ...] = ("supported", "partial", "unsupported", "unknown")
# Higher is better; unknown has no rank (it is not a judgement on the page).
_RANK = {"supported": 3, "partial": 2, "unsupported": 1}
# Less readable text than this is no text (an image's alt, an empty shell).
MIN_TEXT = 20

LEVEL_RULE = (
    "supported: every required fact of the claim (people, dates, sums, figures, law "
    "articles) is on the cited page; partial: some are, some are not; unsupported: none is; "
    "unknown: no readable text (or no checkable fact). Organisations and places named in "
    "English, quotes, bare years and currency conversions are shown but not required. "
    "Fact matching does not see paraphrase or translated sentences."
)


@dataclass(frozen=True)
class EvidenceText:
    """The text a (footnote, URL) is checked against. ``kind``: ``html``, ``pdf``, ``text``
    or ``rendered`` (a browser's text); ``origin``: ``ours`` (our capture of the cited URL),
    ``internet_archive`` (the rescued copy) or ``browser``."""

    text: str
    kind: str
    origin: str


@dataclass(frozen=True)
class FactCheck:
    """One fact of a claim and whether the page holds it. ``claim`` indexes the footnote's
    claims (the fact's span is in that claim's text)."""

    fact: Fact
    claim: int
    found: bool
    passage: str | None = None
    matched: str | None = None
    how: str = ""


@dataclass(frozen=True)
class Support:
    """The support level of one (footnote, URL), with every fact behind it.

    ``reason`` says why in a sentence; ``origin`` / ``text_kind`` say which text was read
    (``None`` when there was none)."""

    footnote: int
    url: str
    level: str
    reason: str
    claims: tuple[str, ...]
    facts: tuple[FactCheck, ...]
    origin: str | None = None
    text_kind: str | None = None

    @property
    def missing(self) -> tuple[FactCheck, ...]:
        return tuple(c for c in self.facts if not c.found and c.fact.required)


def level_of(checks: Sequence[FactCheck], evidence: EvidenceText | None) -> tuple[str, str]:
    """The level and its reason from the fact checks (see the module's rule). Pure."""
    if evidence is None or len(evidence.text.strip()) < MIN_TEXT:
        return "unknown", "no readable text of the cited content"
    basis = [c for c in checks if c.fact.required]
    quotes = [c for c in checks if c.fact.kind == "quote" and c.found]
    if not basis and not quotes:
        return "unknown", ("the claim has no distinctive fact to check (a name, a date, a "
                           "sum, a figure or a law article)")
    found = [c for c in basis if c.found] + quotes
    missing = [c for c in basis if not c.found]
    if not missing:
        if not basis:
            return "supported", "the quoted words are on the page"
        if len(basis) == 1:
            return "supported", "the required fact is on the page"
        return "supported", f"all {len(basis)} required facts are on the page"
    if not found:
        return "unsupported", "none of the claim's facts is on the page"
    names = ", ".join(c.fact.text for c in missing)
    return "partial", f"{len(found)} found, missing: {names}"


def assess(footnote: int, url: str, claims: Sequence[str],
           evidence: EvidenceText | None, *, index: Evidence | None = None) -> Support:
    """Check every fact of ``claims`` against ``evidence``. ``index``: an ``Evidence`` of
    the same text, to share between footnotes citing one URL. Pure; never raises."""
    if evidence is not None and index is None:
        index = Evidence(evidence.text)
    checks = []
    for n, claim in enumerate(claims):
        for fact in claim_facts(claim):
            if index is None:
                checks.append(FactCheck(fact, n, False))
                continue
            match = index.find(fact)
            checks.append(FactCheck(fact, n, match.found, match.passage, match.matched,
                                    match.how))
    level, reason = level_of(checks, evidence)
    return Support(footnote, url, level, reason, tuple(claims), tuple(checks),
                   evidence.origin if evidence else None,
                   evidence.kind if evidence else None)


def assess_document(document: Document,
                    texts: Mapping[str | tuple[int, str], EvidenceText | None]
                    ) -> tuple[Support, ...]:
    """One ``Support`` per (footnote, URL) of ``document``, footnotes in order, URLs as
    written. ``texts`` gives the evidence by URL, or by (footnote, URL) where one footnote's
    text differs (the pair wins). A footnote no claim cites is left out (there is nothing to
    support)."""
    return tuple(each_support(document, texts))


def each_support(document: Document,
                 texts: Mapping[str | tuple[int, str], EvidenceText | None],
                 *, judged: Callable[[int, str], Support | None] | None = None,
                 ) -> Iterator[Support]:
    """``assess_document``'s supports, made one at a time as they are asked for.
    ``judged(footnote, url)``: the support of that pair ``assess`` made already on the very
    text ``texts`` gives it (the caller vouches for that), else ``None``: it is used as is,
    its text not asked for."""
    # One index per URL, however many footnotes cite it; the most recently used ones only, so
    # that a document of many thousand URLs does not hold every page's index at once (the
    # footnotes citing one URL are mostly near each other; a miss only builds it again).
    indexes: OrderedDict[str, Evidence] = OrderedDict()
    for footnote in document.footnotes:
        claims = tuple(dict.fromkeys(c.text for c in footnote.claims))
        if not claims:
            continue
        for url in footnote.urls:
            if judged is not None and (done := judged(footnote.number, url)) is not None:
                yield done
                continue
            pair = (footnote.number, url)
            evidence = texts[pair] if pair in texts else texts.get(url)
            index = None
            if evidence is not None:
                key = url if pair not in texts else f"{footnote.number} {url}"
                index = indexes.get(key)
                if index is None:
                    index = indexes[key] = Evidence(evidence.text)
                    if len(indexes) > _INDEXES_KEPT:
                        indexes.popitem(last=False)
                else:
                    indexes.move_to_end(key)
            yield assess(footnote.number, url, claims, evidence, index=index)


TextsBy = dict[str | tuple[int, str], EvidenceText | None]
#: Page indexes (and texts) kept at once while a document's claims are checked.
_INDEXES_KEPT = 256


def evidence_texts(catalog: Catalog, root: Path, links: Sequence[LinkRecord]) -> TextsBy:
    """The text each link's report cites: our latest capture when the link is healthy, the
    rescued Internet Archive copy when it is not, else ``None``. The text is the one the
    catalog recorded at capture time (``pagetext.extract`` of the payload), or, when none
    was recorded, read again from the WARC. A missing WARC gives ``None``, not an error."""
    return {link.url: _evidence_of(catalog, root, link) for link in links}


class LazyTexts(Mapping[str | tuple[int, str], "EvidenceText | None"]):
    """``evidence_texts`` read from the catalog as ``assess_document`` asks for them, the
    most recent few kept: the same answers without every cited page's text in memory.

    A miss reads the texts of the links that follow it too (``assess_document`` asks in the
    order the document cites them, which is the links' order), a batch at a time with a
    few queries for all of them (``Catalog.latest_captures``) rather than several per link.
    """

    def __init__(self, catalog: Catalog, root: Path, links: Sequence[LinkRecord],
                 kept: int = _INDEXES_KEPT, *, urls: Sequence[str] | None = None) -> None:
        self._catalog, self._root, self._kept = catalog, root, kept
        # Positions, not the records: ``links`` may be a ``Spool`` on disk (read in order,
        # a chunk at a time). A URL listed twice is its last record's. ``urls``: each link's
        # URL, in order, when the caller has them (a pass over the spool saved).
        self._links = links
        self._position = {url: n for n, url in enumerate(
            urls if urls is not None else (link.url for link in links))}
        # Half the texts kept, so that a batch read does not push out the ones in use.
        self._batch = max(1, kept // 2)
        self._recent: OrderedDict[str, EvidenceText | None] = OrderedDict()

    def __getitem__(self, key: str | tuple[int, str]) -> EvidenceText | None:
        if not isinstance(key, str) or key not in self._position:
            raise KeyError(key)
        recent = self._recent
        if key in recent:
            recent.move_to_end(key)
            return recent[key]
        start = self._position[key]
        links, position = self._links, self._position
        batch = []
        for n in range(start, min(start + self._batch, len(links))):
            link = links[n]
            if position[link.url] == n and (link.url == key or link.url not in recent):
                batch.append(link)
        texts = _evidence_many(self._catalog, self._root, batch)
        for link in reversed(batch):  # the one asked for last: the most recently used
            recent[link.url] = texts[link.url]
            recent.move_to_end(link.url)
        while len(recent) > self._kept:
            recent.popitem(last=False)
        return recent[key]

    def position(self, url: str) -> int:
        """The position of ``url``'s link (its last, if listed twice); ``KeyError`` if none."""
        return self._position[url]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._position

    def __iter__(self) -> Iterator[str | tuple[int, str]]:
        return iter(self._position)

    def __len__(self) -> int:
        return len(self._position)


def _evidence_many(catalog: Catalog, root: Path, links: Sequence[LinkRecord],
                   ) -> dict[str, EvidenceText | None]:
    """``_evidence_of`` each of ``links``, by URL, their captures read in one bulk read."""
    wanted: dict[str, None] = {}
    for link in links:
        if link.verdict is not None and link.verdict.healthy:
            wanted[link.url] = None
        elif link.rescued is not None and link.memento is not None and link.memento.raw_url:
            wanted[link.memento.raw_url] = None
    stored = catalog.latest_captures(list(wanted)) if wanted else {}
    texts: dict[str, EvidenceText | None] = {}
    for link in links:
        text = None
        if link.verdict is not None and link.verdict.healthy:
            capture, browser = stored.get(link.url, (None, None))
            if browser is not None and browser.mode == "browser" and browser.text:
                text = EvidenceText(browser.text, "rendered", "browser")
            elif capture is not None:
                text = _text_of(capture, root, "ours")
        elif link.rescued is not None and link.memento is not None and link.memento.raw_url:
            capture, _ = stored.get(link.memento.raw_url, (None, None))
            if capture is not None:
                text = _text_of(capture, root, "internet_archive")
        texts[link.url] = text
    return texts


def _evidence_of(catalog: Catalog, root: Path, link: LinkRecord) -> EvidenceText | None:
    stored = None
    origin = "ours"
    if link.verdict is not None and link.verdict.healthy:
        stored = catalog.latest_capture(link.url)
    elif link.rescued is not None and link.memento is not None and link.memento.raw_url:
        stored = catalog.latest_capture(link.memento.raw_url)
        origin = "internet_archive"
    rendered = _rendered_text(catalog, stored) if origin == "ours" else None
    if rendered is not None:
        return EvidenceText(rendered, "rendered", "browser")
    return _text_of(stored, root, origin) if stored is not None else None


def _rendered_text(catalog: Catalog, stored: StoredCapture | None) -> str | None:
    """A browser capture's rendered text (what a reader saw, ``urn:text:``), else ``None``."""
    if stored is None:
        return None
    browser = catalog.browser_capture(stored.id)
    if browser is None or browser.mode != "browser" or not browser.text:
        return None
    return browser.text


def text_kind(content_type: str | None) -> str:
    """The ``EvidenceText.kind`` of a capture's stored text, by its content type."""
    content_type = (content_type or "").lower()
    return "pdf" if "pdf" in content_type else "html" if "html" in content_type else "text"


def _text_of(stored: StoredCapture, root: Path, origin: str) -> EvidenceText | None:
    kind = text_kind(stored.content_type)
    if stored.text is not None:
        return EvidenceText(stored.text, kind, origin)
    ref = stored.payload or stored.warc
    if ref is None:
        return None
    from archiver.errors import ArchiverError
    from archiver.fetch import decode_body
    from archiver.pagetext import extract
    from archiver.warc import read_record

    try:
        record = read_record(root, ref)
        body = record[2]
        encoding = next((v for k, v in record[1] if k.lower() == "content-encoding"), None)
        if encoding:
            body = decode_body(io.BytesIO(body), encoding, 64 * 1024 * 1024)
    except (ArchiverError, OSError, ValueError) as exc:
        log.warning("%s: the capture could not be read for claim support: %s", ref.path, exc)
        return None
    page = extract(body, stored.content_type, stored.final_url)
    return EvidenceText(page.text, page.kind if page.kind != "binary" else kind, origin)


def record_levels(catalog: Catalog, run_id: int, source_id: str,
                  supports: Iterable[Support], *, compare: bool,
                  verdicts: Mapping[str, Verdict | None] | None = None) -> list[Change]:
    """Store this run's levels; with ``compare``, a ``support_dropped`` change for every
    (footnote, URL) whose level is lower than at the last run that judged it, naming the
    facts the page no longer holds (``verdicts``: each URL's current verdict, shown with
    the change). ``unknown`` now or then is no drop: a failing link is reported by its own
    change."""
    from archiver.models import Change, ChangeKind

    changes: list[Change] = []
    rows = []
    each = iter(supports)
    # The last levels are read a chunk of supports at a time: a query per support was
    # thousands of queries in a check of a long document.
    while chunk := list(itertools.islice(each, _LAST_LEVELS_AT_ONCE)):
        last = catalog.last_supports(
            source_id, [(s.footnote, s.url) for s in chunk if s.level in _RANK]) \
            if compare else {}
        for judged in chunk:
            found = [c.fact.text for c in judged.facts if c.found]
            before = last.get((judged.footnote, judged.url))
            if before is not None and judged.level in _RANK and before[0] in _RANK \
                    and _RANK[judged.level] < _RANK[before[0]]:
                now_found = set(found)
                lost = [f for f in before[1] if f not in now_found]
                what = ", ".join(lost) if lost else "some of the claim's facts"
                changes.append(Change(
                    url=judged.url, kind=ChangeKind.SUPPORT_DROPPED,
                    verdict=(verdicts or {}).get(judged.url),
                    reason=f"footnote {judged.footnote}: {before[0]} → {judged.level}: "
                           f"the page no longer mentions {what}",
                    footnotes=(judged.footnote,)))
            rows.append((judged.footnote, judged.url, judged.level, json.dumps(found)))
    catalog.record_support(run_id, source_id, rows)
    return changes


#: Supports whose last levels ``record_levels`` reads in one query.
_LAST_LEVELS_AT_ONCE = 512


def support_json(support: Support) -> dict[str, object]:
    """One ``report.json`` ``support`` entry: ``footnote``, ``url``, ``level`` and ``facts``
    (``text``, ``kind``, ``found``, ``passage``) as CONTRACT.md fixes them, plus ``reason``,
    ``evidence`` (``origin``, ``kind`` of the text read), and per fact ``required``,
    ``value``, ``claim`` (index into the footnote's claims), ``start``/``end`` (its span in
    that claim), ``rule`` (how it was extracted), ``matched`` and ``how`` (how it was found,
    or what the page has instead)."""
    return {
        "footnote": support.footnote,
        "url": support.url,
        "level": support.level,
        "reason": support.reason,
        "evidence": ({"origin": support.origin, "kind": support.text_kind}
                     if support.origin else None),
        "facts": [
            {"text": c.fact.text, "kind": c.fact.kind, "found": c.found,
             "passage": c.passage, "required": c.fact.required, "value": c.fact.value,
             "claim": c.claim, "start": c.fact.start, "end": c.fact.end,
             "rule": c.fact.rule, "matched": c.matched, "how": c.how}
            for c in support.facts
        ],
    }
