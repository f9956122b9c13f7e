"""Reader for Markdown converted from a PDF: ``<sup>N</sup>`` markers, footnote lines ``N text``.

The PDF's footnotes land wherever its pages ended: blocks of ``N text`` lines between body
paragraphs, sometimes after a ``---`` rule. What the conversion leaves behind, and how it is
read:

- A body line may start with a number without being a footnote (a sum wrapped onto a new line,
  ``2 778 000 KZT ...``). A line ``N text`` is a footnote only if ``N`` continues the sequence
  (one to five above the last footnote), or repeats a number inside a footnote block (then it
  is a duplicate), and it does not read as body text: a grouped figure (``N ddd``) or a line
  citing marker ``N`` or a later one is body text.
- A ``<sup>N</sup>`` inside a footnote's own text is not a citation (a date, say); it is kept as
  text and reported as ``superscript-in-note``.
- A marker flattened into plain digits (``the party: 45 KIBHR``, ``Article 48951`` for
  ``Article 489`` + marker 51) is recovered when the evidence is strong: footnote ``N`` has no
  ``<sup>N</sup>``, and between the markers ``N-1`` and ``N+1`` exactly one stretch of digits
  reads as ``N`` (standing alone after punctuation, or glued to the end of a longer number). It
  is reported as ``flattened-marker``; otherwise the footnote stays an orphan.
- A sentence cut by a page-end footnote block is joined again for its claim (shared logic in
  :mod:`archiver.parse.draft`).

:func:`read` returns a :class:`~archiver.parse.draft.Draft`; :func:`to_footnote_markdown`
rewrites such a file as clean Markdown with ``[^N]`` footnotes (markers recovered, cut
sentences joined, notes at the end).
"""

from __future__ import annotations

import re

from archiver.lint import SEVERITY
from archiver.models import Finding
from archiver.parse.draft import Draft, Marker, NoteDraft, Unit
from archiver.parse.markdown import SUP_MARKER, Line, classify_lines, inline
from archiver.parse.urls import urls_from_segments

__all__ = ["looks_like", "read", "read_lines", "to_footnote_markdown"]

FORMAT = "pdf-markdown"
_NOTE_LINE = re.compile(r"^\s{0,3}(\d{1,4})[ \t\u00a0]+(\S.*)$")
_SUP = re.compile(r"<sup>\s*\d{1,4}\s*</sup>", re.IGNORECASE)
_WINDOW = 5


def looks_like(text: str) -> bool:
    """A Markdown file with at least one ``<sup>N</sup>`` marker."""
    return bool(_SUP.search(text))


class _Block:
    """A body unit under construction, or a footnote, with its source lines."""

    def __init__(self, kind: str, line: Line, body: str) -> None:
        self.kind = kind
        self.lines = [line]
        self.bodies = [body]
        self.number = 0


_CITES = re.compile(r"<sup>\s*(\d{1,4})\s*</sup>", re.IGNORECASE)
_FIGURE = re.compile(r"^\d{3}\b")


def _reads_as_body(number: int, rest: str) -> bool:
    """A would-be footnote line that is really body text: it continues a grouped figure
    (``2 778 000 KZT``) or cites its own or a later marker, as only the body does."""
    if _FIGURE.match(rest):
        return True
    return any(int(cited) >= number for cited in _CITES.findall(rest))


def _blocks(lines: list[Line]) -> list[_Block]:
    blocks: list[_Block] = []
    last_note = 0
    current: _Block | None = None
    after_note = False  # the previous block was a footnote
    for line in lines:
        if line.kind in ("blank", "rule", "fence"):
            if current is not None:
                blocks.append(current)
                after_note = current.kind == "note"
                current = None
            continue
        note = _NOTE_LINE.match(line.raw) if line.kind == "text" else None
        if note:
            number = int(note.group(1))
            in_sequence = last_note < number <= last_note + _WINDOW
            repeated = number <= last_note and (after_note or (current and current.kind == "note"))
            if (in_sequence or repeated) and not _reads_as_body(number, note.group(2)):
                if current is not None:
                    blocks.append(current)
                current = _Block("note", line, note.group(2))
                current.number = number
                last_note = max(last_note, number)
                continue
        if line.kind in ("heading", "item") or current is None:
            if current is not None:
                blocks.append(current)
                after_note = current.kind == "note"
            current = _Block(line.kind if line.kind != "text" else "para", line, line.body)
        else:
            # A soft-wrapped continuation of the paragraph, list item or footnote.
            current.lines.append(line)
            current.bodies.append(line.body)
        if current.kind in ("heading",):
            blocks.append(current)
            after_note = False
            current = None
    if current is not None:
        blocks.append(current)
    return blocks


def _unit(block: _Block) -> tuple[Unit, list[tuple[int, int]]]:
    """A body block as a Unit, plus (offset, line) starts of its source lines."""
    text_parts: list[str] = []
    markers: list[Marker] = []
    starts: list[tuple[int, int]] = []
    offset = 0
    for line, body in zip(block.lines, block.bodies, strict=True):
        if text_parts:
            text_parts.append(" ")
            offset += 1
        starts.append((offset, line.number))
        parsed = inline(body, SUP_MARKER)
        for label, at in parsed.markers:
            markers.append(Marker(int(label), offset + at, line.number))
        text_parts.append(parsed.text)
        offset += len(parsed.text)
    kind = {"para": "para", "item": "item", "heading": "heading"}.get(block.kind, "para")
    return Unit("".join(text_parts), block.lines[0].number, kind, markers), starts


def _note(block: _Block) -> tuple[NoteDraft, list[str]]:
    source = " ".join(block.bodies)
    parsed = inline(source)
    return (
        NoteDraft(block.number, parsed.text, urls_from_segments(parsed.segments),
                  block.lines[0].number),
        parsed.superscripts,
    )


def _line_at(starts: list[tuple[int, int]], offset: int) -> int:
    line = starts[0][1]
    for start, number in starts:
        if start <= offset:
            line = number
    return line


_THOUSANDS = re.compile(r"\d[ \u00a0]$")


def _candidates(text: str, lo: int, hi: int, number: int) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` in ``text[lo:hi]`` where the digits of ``number`` look like a
    flattened marker."""
    digits = str(number)
    found = []
    for match in re.finditer(r"\d+", text[lo:hi]):
        start, end = lo + match.start(), lo + match.end()
        run = match.group(0)
        before, after = text[max(0, start - 2):start], text[end:end + 4]
        if _THOUSANDS.search(before) or re.match(r"[ \u00a0]\d{3}\b|[.,]\d", after):
            continue  # part of a grouped or decimal figure
        if run == digits:
            stands_alone = re.search(r"[.,;:)\]\"\u201d\u2019][ \u00a0]?$|[^\W\d]$", before)
            ends_well = not after or re.match(r"[ \u00a0]+[A-Z\u0410-\u042f]|[.,;:)]|$", after)
            if stands_alone and ends_well:
                found.append((start, end))
        elif len(run) > len(digits) + 1 and run.endswith(digits):
            found.append((end - len(digits), end))
    return found


def _recover(units: list[tuple[Unit, list[tuple[int, int]]]], notes: list[NoteDraft],
             findings: list[Finding]) -> None:
    cited = {m.number for unit, _ in units for m in unit.markers}
    for note in notes:
        if note.number in cited:
            continue
        positions = {m.number: (i, m.offset) for i, (unit, _) in enumerate(units)
                     for m in unit.markers}
        before = max((n for n in positions if n < note.number), default=None)
        after = min((n for n in positions if n > note.number), default=None)
        if before is None or after is None or before != note.number - 1:
            continue
        first, first_at = positions[before]
        last, last_at = positions[after]
        hits: list[tuple[int, tuple[int, int]]] = []
        for index in range(first, last + 1):
            unit = units[index][0]
            lo = first_at if index == first else 0
            hi = last_at if index == last else len(unit.text)
            hits.extend((index, span) for span in _candidates(unit.text, lo, hi, note.number))
        if len(hits) != 1:
            continue
        index, (start, end) = hits[0]
        unit, starts = units[index]
        left = unit.text.rfind(" ", 0, max(0, start - 16)) + 1
        right = unit.text.find(" ", min(len(unit.text), end + 8))
        context = unit.text[left:right if right != -1 else len(unit.text)]
        unit.text = unit.text[:start] + unit.text[end:]
        for marker in unit.markers:
            if marker.offset >= end:
                marker.offset -= end - start
        line = _line_at(starts, start)
        unit.markers.append(Marker(note.number, start, line))
        unit.markers.sort(key=lambda m: m.offset)
        for i, (offset, number) in enumerate(starts):
            if offset > start:
                starts[i] = (offset - (end - start), number)
        cited.add(note.number)
        cut = start - left
        fixed = context[:cut] + f"<sup>{note.number}</sup>" + context[cut + end - start:]
        findings.append(Finding(
            "flattened-marker", SEVERITY["flattened-marker"],
            f"marker {note.number} was flattened into plain digits (\"{context.strip()}\"); "
            f"read as a citation of footnote {note.number}",
            note.number, line, None, fixed.strip()))


def read(text: str) -> Draft:
    """Read the PDF-Markdown ``text`` into a Draft. Never raises on content."""
    return read_lines(classify_lines(text.replace("\r\n", "\n").replace("\r", "\n")))


def read_lines(lines: list[Line]) -> Draft:
    """Read already classified lines (a ``text`` line's ``raw`` and ``body`` are Markdown
    inline text) into a Draft: the same rules as :func:`read`, for readers that find blocks
    of another format holding PDF-style ``N text`` notes. Never raises on content."""
    draft = Draft(FORMAT)
    units: list[tuple[Unit, list[tuple[int, int]]]] = []
    for block in _blocks(lines):
        if block.kind == "note":
            note, sups = _note(block)
            draft.notes.append(note)
            for sup in sups:
                draft.findings.append(Finding(
                    "superscript-in-note", SEVERITY["superscript-in-note"],
                    f"footnote {note.number} has a superscript {sup.strip()!r} in its own "
                    f"text; readers will take it for a citation marker", note.number, note.line))
        else:
            units.append(_unit(block))
            if block.kind == "heading" and draft.title is None and block.lines[0].raw.lstrip(
                    ).startswith("# "):
                draft.title = units[-1][0].text.strip()
    _recover(units, draft.notes, draft.findings)
    draft.units = [unit for unit, _ in units]
    return draft


def to_footnote_markdown(text: str) -> str:
    """Rewrite a PDF-Markdown briefing as Markdown with ``[^N]`` footnotes: body paragraphs in
    order (markers recovered, sentences cut by a page-end block joined), then every footnote
    as ``[^N]: text`` with its links as ``<url>`` autolinks or ``[text](url)`` links."""
    from archiver.parse.draft import join_units

    draft = read(text)
    out: list[str] = []
    for unit in join_units(draft.units):
        pieces, cut = [], 0
        for marker in sorted(unit.markers, key=lambda m: m.offset):
            pieces.append(_escape(unit.text[cut:marker.offset]) + f"[^{marker.number}]")
            cut = marker.offset
        pieces.append(_escape(unit.text[cut:]))
        body = " ".join("".join(pieces).split())
        prefix = {"heading": "## ", "item": "- "}.get(unit.kind, "")
        out.append(prefix + body)
    for note in draft.notes:
        out.append(f"[^{note.number}]: {_note_markdown(note)}")
    return "\n\n".join(out) + "\n"


_SPECIAL = re.compile(r"([\\`*_\[\]<>#|^~$])")


def _escape(text: str) -> str:
    """Plain text made safe to read back as Markdown (every special character escaped)."""
    return _SPECIAL.sub(r"\\\1", text)


def _note_markdown(note: NoteDraft) -> str:
    """A footnote's plain text, escaped, with each URL written as an autolink in its place."""
    text = " ".join(note.text.split())
    out, cut = [], 0
    for url in note.urls:
        shown = url[len("http://"):] if url.startswith("http://www") and url not in text else url
        at = text.find(shown, cut)
        if at == -1:
            out.append(_escape(text[cut:]) + f" <{url}>")
            cut = len(text)
            continue
        out.append(_escape(text[cut:at]) + f"<{url}>")
        cut = at + len(shown)
    out.append(_escape(text[cut:]))
    return "".join(out)
