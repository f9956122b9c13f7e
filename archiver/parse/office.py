"""Readers for word-processor files with real footnotes and endnotes: DOCX and ODT (both ZIP
containers).

DOCX: body paragraphs from ``word/document.xml``; a ``w:footnoteReference`` or
``w:endnoteReference`` ``w:id`` is a marker; the notes are ``w:footnote`` elements of
``word/footnotes.xml`` and ``w:endnote`` elements of ``word/endnotes.xml`` (or wherever
``document.xml.rels`` points; separator notes skipped); hyperlink targets come from ``r:id``
through ``word/_rels/footnotes.xml.rels`` / ``endnotes.xml.rels`` (and ``document.xml.rels``
for the body), or from ``HYPERLINK`` field codes. Notes are numbered as Word displays them: in
order of first reference; a note never referenced is numbered after those and reported as an
orphan.

ODT: ``content.xml``; a ``text:note`` is marker and note at once: its ``text:note-body`` is the
text, ``text:a xlink:href`` the link targets. A footnote's number is its
``text:note-citation`` (the number shown); an endnote (``text:note-class="endnote"``) is
numbered by its order among the endnotes, as its citation is usually a roman numeral.

Footnotes and endnotes together: word processors number the two series separately (footnotes
1, 2, 3; endnotes i, ii, iii), but a Document has one series of integers. So endnotes alone are
numbered 1..N; next to footnotes they are numbered after the footnotes (footnotes 1..F,
endnotes F+1..F+E) and an info finding ``mixed-notes`` says so. Marker order is then checked
within each series (an endnote marker between footnote markers is not out of order).

Lines: there are none in these formats, so a "line" is the 1-based ordinal of the body
paragraph (for markers) or of the note (for notes).

Safety: members are read with a cap on their decompressed size (a ZIP bomb stops with a
DocumentError), XML is parsed with lxml with entity expansion and network access off.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib

from lxml import etree

from archiver.errors import DocumentError
from archiver.lint import SEVERITY
from archiver.models import Finding
from archiver.parse.draft import Draft, Marker, NoteDraft, Unit
from archiver.parse.urls import Segment, urls_from_segments

__all__ = ["MAX_MEMBER_BYTES", "read", "sniff"]

MAX_MEMBER_BYTES = 32 * 1024 * 1024

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
FO = "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
XLINK = "http://www.w3.org/1999/xlink"

_HYPERLINK_FIELD = re.compile(r'HYPERLINK\s+"([^"]+)"')


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True)


def sniff(data: bytes) -> str | None:
    """``docx``, ``odt`` or ``None`` for a ZIP container's bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "word/document.xml" in names:
                return "docx"
            if "content.xml" in names:
                if "mimetype" in names:
                    mimetype = _member(archive, "mimetype", "?", 200)
                    if b"opendocument.text" not in mimetype:
                        return None
                return "odt"
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, NotImplementedError, EOFError,
            RuntimeError, DocumentError):
        return None
    return None


def _member(archive: zipfile.ZipFile, name: str, source: str,
            limit: int | None = None) -> bytes:
    """A member's bytes, refusing more than ``limit`` (default ``MAX_MEMBER_BYTES``)
    decompressed bytes whatever the header claims."""
    limit = MAX_MEMBER_BYTES if limit is None else limit
    with archive.open(name) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise DocumentError(f"{source}: {name} inflates to more than {limit} bytes")
    return data


def _xml(archive: zipfile.ZipFile, name: str, source: str) -> etree._Element | None:
    if name not in archive.namelist():
        return None
    try:
        return etree.fromstring(_member(archive, name, source), _parser())
    except etree.XMLSyntaxError as exc:
        raise DocumentError(f"{source}: {name} is not well-formed XML ({exc})") from exc


def read(data: bytes, kind: str, source: str) -> Draft:
    """Read a DOCX or ODT container into a Draft.

    Raises DocumentError for a broken container (not a ZIP, truncated, bomb, bad XML)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _read_docx(archive, source) if kind == "docx" else _read_odt(archive, source)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError,
            NotImplementedError, RuntimeError, ValueError, KeyError) as exc:
        raise DocumentError(f"{source}: broken {kind.upper()} container ({exc})") from exc


# ── DOCX ─────────────────────────────────────────────────────────────────────


def _rels(archive: zipfile.ZipFile, part: str, source: str) -> dict[str, str]:
    folder, _, name = part.rpartition("/")
    root = _xml(archive, f"{folder}/_rels/{name}.rels", source)
    if root is None:
        return {}
    return {rel.get("Id", ""): rel.get("Target", "")
            for rel in root.iter(f"{{{PKG_REL}}}Relationship")}


def _all_text(element: etree._Element) -> str:
    """All the text of ``element``. Not ``.text``: an entity reference lxml leaves unexpanded
    (entities are never resolved, see ``_parser``) is a child node, and ``.text`` stops at it,
    dropping the rest (with any URL). The reference stays as written (``&name;``), as in the
    ODT reader."""
    return "".join(element.itertext())


class _DocxText:
    """Plain text, markers and link segments of a DOCX paragraph."""

    def __init__(self, rels: dict[str, str]) -> None:
        self.rels = rels
        self.parts: list[str] = []
        self.length = 0
        self.refs: list[tuple[str, str, int]] = []  # ("footnote"|"endnote", id, offset)
        self.segments: list[Segment] = []
        self.pending: list[str] = []
        self.superscripts: list[str] = []
        self.field: str | None = None  # target of an open HYPERLINK field
        self.field_text: list[str] = []
        self.in_field_result = False

    def text(self, value: str) -> None:
        self.parts.append(value)
        self.length += len(value)
        if self.in_field_result:
            self.field_text.append(value)
        else:
            self.pending.append(value)

    def flush(self) -> None:
        if self.pending:
            self.segments.append(("".join(self.pending), None))
            self.pending = []

    def walk(self, element: etree._Element, href: str | None = None) -> None:
        for child in element:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag == f"{{{W}}}hyperlink":
                target = self.rels.get(child.get(f"{{{R}}}id", ""), "")
                if target:
                    self.flush()
                    start = len(self.parts)
                    self.walk(child, target)
                    self.segments.append(("".join(self.parts[start:]), target))
                    self.pending = []  # the link's text is the link's, not plain text too
                else:
                    self.walk(child, href)
            elif tag == f"{{{W}}}fldSimple":
                found = _HYPERLINK_FIELD.search(child.get(f"{{{W}}}instr", ""))
                if found:
                    self.flush()
                    start = len(self.parts)
                    self.walk(child, found.group(1))
                    self.segments.append(("".join(self.parts[start:]), found.group(1)))
                    self.pending = []
                else:
                    self.walk(child, href)
            elif tag == f"{{{W}}}r":
                self.run(child)
            elif tag in (f"{{{W}}}del", f"{{{W}}}moveFrom"):
                continue  # deleted text in tracked changes
            else:
                self.walk(child, href)

    def run(self, run: etree._Element) -> None:
        superscript = run.find(f"{{{W}}}rPr/{{{W}}}vertAlign")
        is_sup = superscript is not None and superscript.get(f"{{{W}}}val") == "superscript"
        for child in run:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag == f"{{{W}}}t":
                value = _all_text(child)
                if is_sup and value.strip():
                    self.superscripts.append(value)
                    if self.parts and self.parts[-1][-1:].isalnum():
                        self.text(" ")
                self.text(value)
            elif tag == f"{{{W}}}tab" or tag in (f"{{{W}}}br", f"{{{W}}}cr"):
                self.text(" ")
            elif tag in (f"{{{W}}}footnoteReference", f"{{{W}}}endnoteReference"):
                kind = "footnote" if tag.endswith("footnoteReference") else "endnote"
                self.refs.append((kind, child.get(f"{{{W}}}id", ""), self.length))
            elif tag == f"{{{W}}}fldChar":
                kind = child.get(f"{{{W}}}fldCharType")
                if kind == "separate" and self.field:
                    self.flush()
                    self.in_field_result = True
                    self.field_text = []
                elif kind == "end":
                    if self.in_field_result and self.field:
                        self.segments.append(("".join(self.field_text), self.field))
                    self.in_field_result = False
                    self.field = None
            elif tag == f"{{{W}}}instrText":
                found = _HYPERLINK_FIELD.search(_all_text(child))
                if found:
                    self.field = found.group(1)

    def done(self) -> str:
        self.flush()
        return "".join(self.parts)


def _style_kind(paragraph: etree._Element) -> str:
    style = paragraph.find(f"{{{W}}}pPr/{{{W}}}pStyle")
    name = (style.get(f"{{{W}}}val", "") if style is not None else "").lower()
    if name.startswith(("heading", "title")):
        return "heading"
    if paragraph.find(f"{{{W}}}pPr/{{{W}}}numPr") is not None or "list" in name:
        return "item"
    return "para"


_NOTE_PART_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"


def _note_part(archive: zipfile.ZipFile, kind: str, source: str) -> str:
    """The part holding the document's ``kind`` notes (``footnote`` or ``endnote``): where
    ``document.xml.rels`` says, else Word's usual ``word/{kind}s.xml``."""
    root = _xml(archive, "word/_rels/document.xml.rels", source)
    if root is not None:
        for rel in root.iter(f"{{{PKG_REL}}}Relationship"):
            if rel.get("Type", "") == f"{_NOTE_PART_TYPE}{kind}s" and rel.get("Target"):
                target = rel.get("Target", "").lstrip("/")
                return target if target.startswith("word/") else f"word/{target}"
    return f"word/{kind}s.xml"


def _docx_notes(archive: zipfile.ZipFile, kind: str,
                source: str) -> list[tuple[str, _DocxText]]:
    """Every real note of ``kind`` in part order: its id and its walked text (separators and
    continuation notices skipped)."""
    part = _note_part(archive, kind, source)
    root = _xml(archive, part, source)
    if root is None:
        return []
    rels = _rels(archive, part, source)
    notes = []
    for note in root.iter(f"{{{W}}}{kind}"):
        if note.get(f"{{{W}}}type") in ("separator", "continuationSeparator",
                                        "continuationNotice"):
            continue
        walker = _DocxText(rels)
        for paragraph in note.iter(f"{{{W}}}p"):
            if walker.parts:
                walker.text(" ")
            walker.walk(paragraph)
        walker.done()
        notes.append((note.get(f"{{{W}}}id", ""), walker))
    return notes


def _number(order: dict[str, int], ids: list[str], start: int) -> dict[str, int]:
    """Numbers for one series of notes: ``start`` + order of first reference, then notes never
    referenced in part order (they become orphans)."""
    numbers = {note_id: start + n for note_id, n in order.items()}
    for note_id in ids:
        if note_id not in numbers:
            numbers[note_id] = start + len(numbers) + 1
    return numbers


def _mixed_finding(footnotes: int, endnotes: int) -> Finding:
    return Finding(
        "mixed-notes", SEVERITY["mixed-notes"],
        f"the document has both footnotes and endnotes; the word processor numbers them "
        f"separately (endnotes i, ii, ... by default), here footnotes are 1-{footnotes} and "
        f"endnotes follow as {footnotes + 1}-{footnotes + endnotes}")


def _read_docx(archive: zipfile.ZipFile, source: str) -> Draft:
    draft = Draft("docx")
    document = _xml(archive, "word/document.xml", source)
    if document is None:
        raise DocumentError(f"{source}: DOCX without word/document.xml")
    body_rels = _rels(archive, "word/document.xml", source)
    order: dict[str, dict[str, int]] = {"footnote": {}, "endnote": {}}
    pending: list[tuple[Unit, list[tuple[str, str, int]]]] = []
    body = document.find(f"{{{W}}}body")
    paragraphs = body.iter(f"{{{W}}}p") if body is not None else iter(())
    for ordinal, paragraph in enumerate(paragraphs, start=1):
        walker = _DocxText(body_rels)
        walker.walk(paragraph)
        text = walker.done()
        for kind, note_id, _ in walker.refs:
            order[kind].setdefault(note_id, len(order[kind]) + 1)
        pending.append((Unit(text, ordinal, _style_kind(paragraph)), walker.refs))

    footnotes = _docx_notes(archive, "footnote", source)
    endnotes = _docx_notes(archive, "endnote", source)
    numbers = {"footnote": _number(order["footnote"], [i for i, _ in footnotes], 0)}
    # Endnotes alone are numbered 1..N; after footnotes they continue the footnotes' numbers
    # (the model has one integer series; see the module docstring).
    numbers["endnote"] = _number(order["endnote"], [i for i, _ in endnotes],
                                 len(numbers["footnote"]))
    if numbers["footnote"] and numbers["endnote"]:
        draft.findings.append(_mixed_finding(len(numbers["footnote"]), len(numbers["endnote"])))
        draft.series = [set(numbers["footnote"].values()), set(numbers["endnote"].values())]

    for unit, refs in pending:
        unit.markers = [Marker(numbers[kind][note_id], offset, unit.line)
                        for kind, note_id, offset in refs]
        draft.units.append(unit)
    ordinal = 0
    for kind, notes in (("footnote", footnotes), ("endnote", endnotes)):
        for note_id, walker in notes:
            ordinal += 1
            number = numbers[kind][note_id]
            draft.notes.append(NoteDraft(number, "".join(walker.parts),
                                         urls_from_segments(walker.segments), ordinal))
            _superscript_findings(draft, number, ordinal, walker.superscripts)
    draft.notes.sort(key=lambda n: n.number)
    return draft


def _superscript_findings(draft: Draft, number: int, line: int, sups: list[str]) -> None:
    for sup in sups:
        if sup.strip():
            draft.findings.append(Finding(
                "superscript-in-note", SEVERITY["superscript-in-note"],
                f"footnote {number} has a superscript {sup.strip()!r} in its own text; readers "
                "will take it for a citation marker", number, line))


# ── ODT ──────────────────────────────────────────────────────────────────────


class _OdtText:
    """Plain text, notes and link segments of an ODT paragraph."""

    def __init__(self, superscript_styles: set[str]) -> None:
        self.sup_styles = superscript_styles
        self.parts: list[str] = []
        self.length = 0
        self.notes: list[tuple[etree._Element, int]] = []
        self.segments: list[Segment] = []
        self.pending: list[str] = []
        self.superscripts: list[str] = []

    def text(self, value: str) -> None:
        self.parts.append(value)
        self.pending.append(value)
        self.length += len(value)

    def flush(self) -> None:
        if self.pending:
            self.segments.append(("".join(self.pending), None))
            self.pending = []

    def walk(self, element: etree._Element) -> None:
        if element.text:
            self.text(element.text)
        for child in element:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag == f"{{{TEXT}}}note":
                self.notes.append((child, self.length))
            elif tag == f"{{{TEXT}}}a":
                href = child.get(f"{{{XLINK}}}href", "")
                self.flush()
                start = len(self.parts)
                self.walk(child)
                self.segments.append(("".join(self.parts[start:]), href))
                self.pending = []  # the link's text is the link's, not plain text too
            elif tag == f"{{{TEXT}}}s":
                count = child.get(f"{{{TEXT}}}c", "1")
                self.text(" " * (int(count) if count.isdecimal() and int(count) < 100 else 1))
            elif tag in (f"{{{TEXT}}}tab", f"{{{TEXT}}}line-break"):
                self.text(" ")
            elif tag == f"{{{TEXT}}}span" and child.get(f"{{{TEXT}}}style-name") in self.sup_styles:
                value = "".join(child.itertext())
                if value.strip():
                    self.superscripts.append(value)
                    if self.parts and self.parts[-1][-1:].isalnum():
                        self.text(" ")
                self.walk(child)
            else:
                self.walk(child)
            if child.tail:
                self.text(child.tail)

    def done(self) -> str:
        self.flush()
        return "".join(self.parts)


def _superscript_styles(*roots: etree._Element | None) -> set[str]:
    names = set()
    for root in roots:
        if root is None:
            continue
        for style in root.iter(f"{{{STYLE}}}style"):
            props = style.find(f"{{{STYLE}}}text-properties")
            position = props.get(f"{{{STYLE}}}text-position", "") if props is not None else ""
            first = position.split()[0] if position.split() else ""
            raised = first.rstrip("%").lstrip("+")
            if first == "super" or (raised.isdecimal() and int(raised) > 0):
                names.add(style.get(f"{{{STYLE}}}name", ""))
    return names


def _read_odt(archive: zipfile.ZipFile, source: str) -> Draft:
    draft = Draft("odt")
    content = _xml(archive, "content.xml", source)
    if content is None:
        raise DocumentError(f"{source}: ODT without content.xml")
    sup_styles = _superscript_styles(content, _xml(archive, "styles.xml", source))
    text_root = content.find(f"{{{OFFICE}}}body/{{{OFFICE}}}text")
    if text_root is None:
        return draft
    # Notes are numbered once all are seen: endnotes follow the footnotes (see the docstring).
    found: list[tuple[Unit, int, str, str, NoteDraft, list[str]]] = []
    note_count = 0
    ordinal = 0
    for element in text_root.iter(f"{{{TEXT}}}p", f"{{{TEXT}}}h"):
        if any(a.tag == f"{{{TEXT}}}note-body" for a in element.iterancestors()):
            continue  # a note's paragraph: read with its note
        if any(a.tag in (f"{{{TEXT}}}p", f"{{{TEXT}}}h") for a in element.iterancestors()):
            continue
        ordinal += 1
        walker = _OdtText(sup_styles)
        walker.walk(element)
        text = walker.done()
        kind = "heading" if element.tag == f"{{{TEXT}}}h" else (
            "item" if any(a.tag == f"{{{TEXT}}}list-item" for a in element.iterancestors())
            else "para")
        unit = Unit(text, ordinal, kind)
        for note, offset in walker.notes:
            note_count += 1
            klass = "endnote" if note.get(f"{{{TEXT}}}note-class") == "endnote" else "footnote"
            citation = note.find(f"{{{TEXT}}}note-citation")
            label = (citation.get(f"{{{TEXT}}}label") or "".join(citation.itertext())
                     if citation is not None else "")
            note_walker = _OdtText(sup_styles)
            body = note.find(f"{{{TEXT}}}note-body")
            if body is not None:
                for paragraph in body:
                    if note_walker.parts:
                        note_walker.text(" ")
                    note_walker.walk(paragraph)
            note_text = note_walker.done()
            draft_note = NoteDraft(0, note_text, urls_from_segments(note_walker.segments),
                                   note_count)
            found.append((unit, offset, klass, label or "", draft_note,
                          note_walker.superscripts))
        draft.units.append(unit)

    footnote_numbers: list[int] = []
    for _, _, klass, label, _, _ in found:
        if klass == "footnote":
            digits = re.findall(r"\d+", label)
            footnote_numbers.append(int(digits[0]) if digits else len(footnote_numbers) + 1)
    # Endnote citations are roman numerals by default; their order is what counts.
    after = max(footnote_numbers, default=0)
    endnotes = 0
    numbered = iter(footnote_numbers)
    for unit, offset, klass, _, note, sups in found:
        if klass == "footnote":
            note.number = next(numbered)
        else:
            endnotes += 1
            note.number = after + endnotes
        unit.markers.append(Marker(note.number, offset, unit.line))
        draft.notes.append(note)
        _superscript_findings(draft, note.number, note.line, sups)
    # The footnotes in document order, then the endnotes (as the two series are printed).
    draft.notes.sort(key=lambda n: n.number > after)
    if footnote_numbers and endnotes:
        draft.findings.append(_mixed_finding(after, endnotes))
        draft.series = [set(footnote_numbers),
                        set(range(after + 1, after + endnotes + 1))]
    return draft
