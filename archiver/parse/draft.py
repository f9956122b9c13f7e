"""What every reader produces before it becomes a :class:`~archiver.models.Document`.

Readers differ only in how they find body text, markers and footnotes; everything after that
is shared here: joining a sentence cut by a page-end footnote block, picking each marker's
claim, numbering checks (via :mod:`archiver.lint`) and the URL-level check. So every format
yields the same kind of Document, and ``extract`` and ``lint`` see the same findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from archiver import lint
from archiver.models import Claim, Document, Finding, Footnote
from archiver.parse.sentences import claim_span, ends_open, normalise_space, sentence_spans

__all__ = ["Draft", "Marker", "NoteDraft", "Unit", "assemble"]


@dataclass(slots=True)
class Marker:
    """A footnote marker in the body: its number, offset in the unit's plain text, line."""

    number: int
    offset: int
    line: int


@dataclass(slots=True)
class Unit:
    """A block of body text (a paragraph, list item or heading) as plain text with markers.

    ``kind`` is ``"para"``, ``"item"`` or ``"heading"``; only a ``"para"`` can continue the
    block before it (a sentence cut by a page-end footnote block continues as a paragraph)."""

    text: str
    line: int
    kind: str = "para"
    markers: list[Marker] = field(default_factory=list)


@dataclass(slots=True)
class NoteDraft:
    """A footnote definition: number, plain text, URLs in order, line of the definition."""

    number: int
    text: str
    urls: list[str]
    line: int


@dataclass
class Draft:
    """A reader's result: body units in order, footnote definitions in order, any findings
    only the reader can see (flattened markers, for instance)."""

    format: str
    units: list[Unit] = field(default_factory=list)
    notes: list[NoteDraft] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    title: str | None = None
    #: The numbers of each separately numbered series (footnotes, endnotes) when there is more
    #: than one; marker and note order is checked within a series only.
    series: list[set[int]] = field(default_factory=list)


_CONTINUES = re.compile(r"^[\"'\u201c\u2018(]?[a-z0-9\u00e0-\u024f\u0430-\u045f]")


def _continues(previous: Unit, text: str, unit: Unit) -> bool:
    """Whether ``unit`` continues ``previous`` (whose text so far is ``text``)."""
    return (
        previous.kind != "heading"
        and unit.kind == "para"
        and ends_open(text)
        and bool(_CONTINUES.match(unit.text.lstrip()))
    )


class _Text:
    """A joined unit's text as pieces, joined once at the end: joining each block onto an
    ever longer string would copy it again for every block (quadratic when a whole
    document runs on, block after block, as a list of notes without full stops does)."""

    def __init__(self, text: str) -> None:
        self.pieces = [text]
        self.length = len(text)

    def rstrip(self) -> None:
        while self.pieces and not self.pieces[-1].strip():
            self.length -= len(self.pieces.pop())
        if self.pieces:
            last = self.pieces[-1]
            self.pieces[-1] = last.rstrip()
            self.length -= len(last) - len(self.pieces[-1])

    def tail(self) -> str:
        """The text from its last piece with anything but white space, closing quotes and
        brackets in it: all ``ends_open`` looks at."""
        for i in range(len(self.pieces) - 1, -1, -1):
            if any(ch not in _CLOSERS and not ch.isspace() for ch in self.pieces[i]):
                return "".join(self.pieces[i:])
        return "".join(self.pieces)

    def add(self, text: str) -> None:
        self.pieces.append(text)
        self.length += len(text)


_CLOSERS = "\"'\u201d\u2019)]*_"


def join_units(units: list[Unit]) -> list[Unit]:
    """Merge a block with the one before it when the sentence runs on across the break: the
    earlier block stops without closing punctuation and the later one starts in lower case
    (or with a figure, as a sum of money wrapped onto a new line does)."""
    joined: list[Unit] = []
    texts: list[_Text] = []
    for unit in units:
        if not unit.text.strip() and not unit.markers:
            continue
        if joined and _continues(joined[-1], texts[-1].tail(), unit):
            previous, text = joined[-1], texts[-1]
            text.rstrip()
            shift = text.length + 1
            text.add(" ")
            text.add(unit.text.lstrip())
            lead = len(unit.text) - len(unit.text.lstrip())
            previous.markers.extend(
                Marker(m.number, max(0, m.offset - lead) + shift, m.line) for m in unit.markers
            )
            continue
        joined.append(Unit(unit.text, unit.line, unit.kind, list(unit.markers)))
        texts.append(_Text(unit.text))
    for unit, text in zip(joined, texts, strict=True):
        if len(text.pieces) > 1:
            unit.text = "".join(text.pieces)
    return joined


def _structure(draft: Draft, markers: list[Marker]) -> list[Finding]:
    """Numbering findings; with several series (footnotes and endnotes), order is judged
    within each series, as each has its own sequence in the source document."""
    pairs = [(m.number, m.line) for m in markers]
    notes = [(n.number, n.line) for n in draft.notes]
    found = lint.structure_findings(pairs, notes)
    if len(draft.series) < 2:
        return found
    found = [f for f in found if f.code != "footnote-order"]
    for numbers in draft.series:
        found.extend(f for f in lint.structure_findings(
            [p for p in pairs if p[0] in numbers], [n for n in notes if n[0] in numbers])
            if f.code == "footnote-order")
    return found


def _claims(units: list[Unit], markers: list[Marker]) -> dict[int, list[Claim]]:
    """Each footnote number's claims, in marker order; every marker is added to
    ``markers``. (A function of its own: the sentence spans of the last unit are freed when
    it returns, not kept to the end of :func:`assemble`.)"""
    claims: dict[int, list[Claim]] = {}
    for unit in join_units(units):
        spans = sentence_spans(unit.text)
        sentences: dict[tuple[int, int], str] = {}  # markers in one sentence share its text
        for marker in unit.markers:
            markers.append(marker)
            span = claim_span(unit.text, marker.offset, spans)
            text = sentences.get(span)
            if text is None:
                text = sentences[span] = normalise_space(unit.text[span[0]:span[1]])
            claims.setdefault(marker.number, []).append(Claim(marker.number, text, marker.line))
    return claims


def assemble(draft: Draft, path: str) -> Document:
    """Turn a reader's draft into the Document: claims per marker, structural findings, URL
    findings. Never raises on content; every oddity becomes a finding.

    The draft is used up: its units and notes are emptied once turned into claims and
    footnotes, so that a long document's draft is not kept alongside its Document."""
    markers: list[Marker] = []
    claims = _claims(draft.units, markers)
    draft.units = []
    footnotes: list[Footnote] = []
    seen: set[int] = set()
    for note in draft.notes:
        # A duplicate definition keeps the first one's place; the finding says so.
        if note.number in seen:
            continue
        seen.add(note.number)
        footnotes.append(
            Footnote(
                number=note.number,
                text=normalise_space(note.text),
                urls=tuple(note.urls),
                line=note.line,
                claims=tuple(claims.get(note.number, ())),
            )
        )
    # What follows peaks with the Document and its findings alive: what made them goes.
    del claims, seen
    structural = _structure(draft, markers)
    del markers
    draft.notes = []
    doc = Document(path=path, format=draft.format, footnotes=tuple(footnotes), title=draft.title)
    findings = [*draft.findings, *structural, *lint.lint(doc)]
    return Document(
        path=path,
        format=draft.format,
        footnotes=doc.footnotes,
        findings=lint.sort_findings(findings),
        title=draft.title,
    )
