"""Reader for HTML with footnotes, as pandoc, Word and Google Docs export them.

A note is an element whose ``id`` (or ``name``) is a note anchor and that some marker links
to: pandoc ``<li id="fn3">``, Word ``<a name="_ftn3">`` inside the note's paragraph (its
``div id="ftn3"``), Google Docs ``<a id="ftnt3">`` inside the note's paragraph. A marker is a
link ``href="#…"`` to such a note, outside the notes. The marker's number is its visible
digits (``3``, ``[3]``), else the digits of the anchor. The note's own back-link (``↩``,
``[3]``) is not part of its text. Link targets (``href``) are the URLs; a superscript inside a
note that links nowhere is text, reported as ``superscript-in-note``.

HTML without such links, with bare ``<sup>N</sup>`` markers and the notes as plain
paragraphs ``N text`` (what PDF-to-HTML converters and some CMSs write, the notes at the end or
at each page end) or as the items of a final ``<ol>``: read only when the evidence is strong:
the notes are numbered 1..N in order and the markers cite exactly 1..N, first cited in that
order. Otherwise a DocumentError says the notes could not be matched. The paragraphs are read
by the PDF-Markdown rules (:mod:`archiver.parse.pdfmd`): a sum wrapped onto a new line is not a
note, a flattened marker is recovered and reported, a superscript in a note is text.

Line numbers are the HTML source lines of the marker and of the note. Body units are block
elements (``p``, ``li``, ``h1``–``h6``, ``td``, ...) outside the notes. Returns a
:class:`~archiver.parse.draft.Draft`. The parser is BeautifulSoup's ``html.parser``: pure
Python, no network, no entity expansion beyond HTML's named characters.

Nesting is bounded: elements nested more than ``MAX_DEPTH`` deep are not built (their text is
kept, as text of the element at the limit; their links are lost), and a ``too-deep`` finding
names the line where the limit was first passed. Every pass over the tree is linear in its
size, so a hostile document costs time in proportion to its length, never to length x depth.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, NavigableString, Tag
from bs4.builder._htmlparser import BeautifulSoupHTMLParser, HTMLParserTreeBuilder
from bs4.element import Comment, ProcessingInstruction

from archiver.errors import DocumentError
from archiver.lint import SEVERITY
from archiver.models import Finding
from archiver.parse import pdfmd
from archiver.parse.draft import Draft, Marker, NoteDraft, Unit
from archiver.parse.markdown import Line, inline
from archiver.parse.urls import Segment, urls_from_segments

__all__ = ["MAX_DEPTH", "read"]

FORMAT = "html"
# Word, pandoc and Google Docs exports nest a few dozen elements deep; browsers stop at 512.
MAX_DEPTH = 256
_NOTE_ID = re.compile(r"^(?:_?ftn|ftnt|fn|footnote|note|endnote|_edn|edn)[-_:]?(\d{1,4})$",
                      re.IGNORECASE)
_BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "dd", "dt",
           "blockquote", "pre", "figcaption", "caption", "div", "section", "article"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SKIP = {"script", "style", "head", "title", "template", "noscript"}
_BACKLINK = re.compile(r"^\s*(?:\[?\d{1,4}\]?|↩\ufe0e?|\u21a9\ufe0e?|\^)\s*$")


def _anchor_of(tag: Tag) -> str | None:
    for attr in ("id", "name"):
        value = tag.get(attr)
        if isinstance(value, str) and _NOTE_ID.fullmatch(value):
            return value
    return None


def _note_container(anchor: Tag) -> Tag:
    """The element holding the whole note the anchor names."""
    if anchor.name in ("li", "div", "aside", "section", "p"):
        return anchor
    parent = anchor.parent
    while parent is not None and parent.name not in ("p", "li", "div", "aside"):
        parent = parent.parent
    if parent is None:
        return anchor
    # Word wraps each note's paragraphs in <div id="ftnN">: take the div when it is there.
    grand = parent.parent
    if (parent.name == "p" and isinstance(grand, Tag) and grand.name == "div"
            and isinstance(grand_id := grand.get("id"), str) and _NOTE_ID.fullmatch(grand_id)):
        return grand
    return parent


def _marker_number(link: Tag, target_id: str) -> int:
    digits = re.findall(r"\d+", link.get_text())
    if digits:
        return int(digits[0])
    match = _NOTE_ID.fullmatch(target_id)
    return int(match.group(1)) if match else 0


class _Walker:
    """Collects plain text, markers and link segments from a subtree."""

    def __init__(self, notes: dict[str, Tag], containers: set[int]) -> None:
        self.notes = notes
        self.containers = containers
        self.parts: list[str] = []
        self.length = 0
        self.markers: list[Marker] = []
        self.segments: list[Segment] = []
        self.pending: list[str] = []
        self.superscripts: list[str] = []

    def _text(self, text: str) -> None:
        self.parts.append(text)
        self.pending.append(text)
        self.length += len(text)

    def _flush(self) -> None:
        if self.pending:
            self.segments.append(("".join(self.pending), None))
            self.pending = []

    def walk(self, node: Tag, in_note: bool = False, stop_blocks: bool = False) -> None:
        for child in node.children:
            if isinstance(child, (Comment, ProcessingInstruction)):
                continue
            if isinstance(child, NavigableString):
                self._text(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _SKIP:
                continue
            if id(child) in self.containers and not in_note:
                continue  # a note's body is not part of the text around it
            if stop_blocks and child.name in _BLOCKS and _has_block(child):
                continue
            href = child.get("href") if child.name == "a" else None
            if isinstance(href, str) and href.startswith("#") and href[1:] in self.notes:
                if not in_note:
                    line = child.sourceline or 0
                    self.markers.append(Marker(_marker_number(child, href[1:]), self.length, line))
                continue  # the marker (or a note's back-link) is not text
            if isinstance(href, str) and href.startswith("#") and in_note and _BACKLINK.match(
                    child.get_text()):
                continue  # the note's link back to its marker
            if isinstance(href, str) and not href.startswith("#"):
                self._flush()
                inner = _Walker(self.notes, self.containers)
                inner.walk(child, in_note)
                text = "".join(inner.parts)
                self.parts.append(text)
                self.length += len(text)
                self.segments.append((text, href))
                continue
            if child.name == "br":
                self._text(" ")
                continue
            if child.name == "sup" and in_note:
                self.superscripts.append(child.get_text())
                if self.parts and self.parts[-1][-1:].isalnum():
                    self._text(" ")
            if child.name in _BLOCKS and self.parts and not self.parts[-1][-1:].isspace():
                self._text(" ")
            self.walk(child, in_note, stop_blocks)

    def done(self) -> str:
        self._flush()
        return "".join(self.parts)


def _has_block(tag: Tag) -> bool:
    return tag.name in _BLOCKS


_PARAGRAPHS = {"p", *_HEADINGS}


def _body_blocks(root: Tag, skip: set[int]) -> list[Tag]:
    """Innermost block elements outside the notes (``skip``: ids of elements whose subtree is
    left out), in document order. Two linear passes: what each element contains (bottom up),
    then what each element is inside (top down), instead of walking parents and subtrees per
    element, which is quadratic in the nesting depth."""
    tags = root.find_all(True)
    holds_block: set[int] = set()  # elements with a block element somewhere below them
    for tag in reversed(tags):
        if tag.parent is not None and (tag.name in _BLOCKS or id(tag) in holds_block):
            holds_block.add(id(tag.parent))
    skipped: set[int] = set()
    in_paragraph: set[int] = set()
    blocks = []
    for tag in tags:
        parent = tag.parent
        if parent is not None and (id(parent) in in_paragraph or parent.name in _PARAGRAPHS):
            in_paragraph.add(id(tag))
        if id(tag) in skip or id(parent) in skipped:
            skipped.add(id(tag))
            continue
        if tag.name not in _BLOCKS:
            continue
        if id(tag) in holds_block and tag.name not in _PARAGRAPHS:
            continue  # a container: its inner blocks are the units
        if id(tag) in in_paragraph:
            continue
        blocks.append(tag)
    return blocks


class _NameCounts:
    """A multiset of tag names with the list methods html.parser's builder uses on its
    ``already_closed_empty_element`` (``in``, ``append``, ``remove``), each O(1). As a list,
    every end tag scanned every void element seen so far (``<br>``, ``<img>``): quadratic
    (20,000 ``<br>`` and 20,000 paragraphs took 48 s)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._counts.get(name, 0) > 0

    def append(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1

    def remove(self, name: str) -> None:
        self._counts[name] -= 1


class _Parser(BeautifulSoupHTMLParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.already_closed_empty_element = _NameCounts()  # type: ignore[assignment]


class _Builder(HTMLParserTreeBuilder):
    def feed(self, markup: Any, _parser_class: type[BeautifulSoupHTMLParser] = _Parser) -> None:
        super().feed(markup, _parser_class)


class _BoundedSoup(BeautifulSoup):
    """BeautifulSoup (``html.parser``) that builds no element deeper than ``MAX_DEPTH``.

    A start tag past the limit is dropped (a space keeps words apart) and remembered, so
    that its end tag is dropped too; its text goes to the element at the limit. ``too_deep``
    is the source line of the first dropped tag, or None."""

    def __init__(self, markup: bytes) -> None:
        self.too_deep: int | None = None
        self._dropped: list[str] = []
        self._dropped_count: dict[str, int] = {}
        super().__init__(markup, builder=_Builder())

    def handle_starttag(self, name: str, namespace: str | None, nsprefix: str | None,
                        attrs: Any, sourceline: int | None = None,
                        sourcepos: int | None = None,
                        namespaces: dict[str, str] | None = None) -> Tag | None:
        if len(self.tagStack) <= MAX_DEPTH:
            return super().handle_starttag(name, namespace, nsprefix, attrs, sourceline,
                                           sourcepos, namespaces)
        if self.too_deep is None:
            self.too_deep = sourceline or 0
        self.handle_data(" ")
        self._dropped.append(name)
        self._dropped_count[name] = self._dropped_count.get(name, 0) + 1
        return None  # html.parser's builder then treats the tag as not there

    def handle_endtag(self, name: str, nsprefix: str | None = None) -> None:
        if self._dropped_count.get(name):
            # Closes the innermost dropped tag of that name (and, as html.parser does,
            # any dropped tag left open inside it).
            while self._dropped:
                top = self._dropped.pop()
                self._dropped_count[top] -= 1
                if top == name:
                    break
            self.handle_data(" ")
            return
        depth = len(self.tagStack)
        super().handle_endtag(name, nsprefix)
        if len(self.tagStack) < depth:
            # A built element closed: every dropped tag was inside it.
            self._dropped.clear()
            self._dropped_count.clear()


def _too_deep(line: int) -> Finding:
    return Finding("too-deep", SEVERITY["too-deep"],
                   f"elements are nested more than {MAX_DEPTH} deep from line {line}; the "
                   "text below that depth is read as plain text and links there are not "
                   "seen. Export the document again (pandoc, Word, Google Docs)", None, line)


def read(data: bytes, source: str = "document") -> Draft:
    """Read HTML ``data`` into a Draft.

    Raises DocumentError (naming ``source``) only for HTML with bare ``<sup>N</sup>`` markers
    whose notes cannot be matched with confidence (see the module docstring); any other
    content gives a Draft."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = _BoundedSoup(data)
    too_deep = [_too_deep(soup.too_deep)] if soup.too_deep is not None else []
    draft = Draft(FORMAT)
    title = soup.find("title")
    if isinstance(title, Tag) and title.get_text(strip=True):
        draft.title = title.get_text(strip=True)

    targets = {a["href"][1:] for a in soup.find_all("a", href=True)
               if isinstance(a["href"], str) and a["href"].startswith("#")}
    notes: dict[str, Tag] = {}
    for tag in soup.find_all(True):
        anchor = _anchor_of(tag)
        if anchor and anchor in targets and "ref" not in anchor.lower():
            notes.setdefault(anchor, _note_container(tag))
    if not notes and _bare_sups(soup):
        plain = _read_plain_notes(soup, draft.title, source)
        plain.findings[:0] = too_deep
        return plain
    draft.findings.extend(too_deep)
    containers = {id(tag) for tag in notes.values()}
    # The notes' section (pandoc's <section class="footnotes">) is not body text either.
    for tag in notes.values():
        for parent in tag.parents:
            if isinstance(parent, Tag) and parent.name in ("section", "ol", "aside") and (
                    "footnote" in " ".join(parent.get("class") or []) or parent.name == "ol"
                    or parent.get("role") == "doc-endnotes"):
                containers.add(id(parent))

    for block in _body_blocks(soup, containers):
        walker = _Walker(notes, containers)
        walker.walk(block, stop_blocks=True)
        text = walker.done()
        kind = "heading" if block.name in _HEADINGS else ("item" if block.name == "li" else "para")
        draft.units.append(Unit(text, block.sourceline or 0, kind, walker.markers))

    seen: set[int] = set()
    for anchor_id, container in notes.items():
        if id(container) in seen:
            continue
        seen.add(id(container))
        walker = _Walker(notes, containers)
        walker.walk(container, in_note=True)
        text = walker.done()
        match = _NOTE_ID.fullmatch(anchor_id)
        number = int(match.group(1)) if match else 0
        backlinks = [a for a in container.find_all("a", href=True)
                     if isinstance(a["href"], str) and a["href"].startswith("#")]
        for link in backlinks:
            visible = re.findall(r"\d+", link.get_text())
            if visible and _BACKLINK.match(link.get_text()):
                number = int(visible[0])
                break
        note = NoteDraft(number, text, urls_from_segments(walker.segments),
                         container.sourceline or 0)
        draft.notes.append(note)
        draft.findings.extend(_superscript_findings(note, walker.superscripts))
    return draft


def _superscript_findings(note: NoteDraft, superscripts: list[str]) -> list[Finding]:
    return [Finding("superscript-in-note", SEVERITY["superscript-in-note"],
                    f"footnote {note.number} has a superscript {sup.strip()!r} in its own text; "
                    "readers will take it for a citation marker", note.number, note.line)
            for sup in superscripts if sup.strip()]


# ── bare <sup>N</sup> markers with a plain list of notes ─────────────────────

_DIGITS = re.compile(r"^\s*\d{1,4}(?:\s*,\s*\d{1,4})*\s*$")
_SPECIAL = re.compile(r"([\\`*_\[\]<>#|^~$])")
_LEAD_NUMBER = re.compile(r"^(?:\\\[)?(\d{1,4})(?:\\\])?[.)]?[ \t\u00a0]+(?=\S)")


def _is_bare_sup(tag: Tag) -> bool:
    return tag.name == "sup" and bool(_DIGITS.match(tag.get_text())) and not any(
        p.name == "a" for p in tag.parents if isinstance(p, Tag))


def _bare_sups(soup: BeautifulSoup) -> list[Tag]:
    return [tag for tag in soup.find_all("sup") if _is_bare_sup(tag)]


def _markdown(node: Tag, whole: bool = False) -> str:
    """The Markdown inline text of a block: text escaped, ``<sup>N</sup>`` kept, links as
    ``[text](<target>)``. Nested blocks are separate units, skipped unless ``whole``."""
    out: list[str] = []
    for child in node.children:
        if isinstance(child, (Comment, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            out.append(_SPECIAL.sub(r"\\\1", re.sub(r"[\r\n\t]", " ", str(child))))
            continue
        if not isinstance(child, Tag) or child.name in _SKIP:
            continue
        if child.name in _BLOCKS:
            if not whole:
                continue
            out.append(" ")
        if child.name == "br":
            out.append(" ")
        elif child.name == "sup":
            out.append(f"<sup>{_markdown(child, whole)}</sup>")
        elif child.name == "a" and isinstance(href := child.get("href"), str) and (
                href.strip() and not href.startswith("#")):
            target = re.sub(r"\s", "", href).replace(">", "%3E")
            out.append(f"[{_markdown(child, whole)}](<{target}>)")
        else:
            out.append(_markdown(child, whole))
    return "".join(out)


def _notes_list(soup: BeautifulSoup, sups: list[Tag], order: dict[int, int]) -> Tag | None:
    """The last ``<ol>`` when it comes after every bare marker outside it and has as many
    items as there are numbers cited: the notes."""
    lists = soup.find_all("ol")
    if not lists:
        return None
    last = lists[-1]
    inside = {id(t) for t in last.find_all(True)}
    outside = [sup for sup in sups if id(sup) not in inside]
    cited = {int(n) for sup in outside for n in re.findall(r"\d+", sup.get_text())}
    items = last.find_all("li", recursive=False)
    # Only a list that comes after every marker and has one item per cited number.
    if all(order[id(sup)] < order[id(last)] for sup in outside) and len(items) == len(cited):
        return last
    return None


def _read_plain_notes(soup: BeautifulSoup, title: str | None, source: str) -> Draft:
    """HTML whose markers are bare ``<sup>N</sup>`` and whose notes are paragraphs ``N text``
    (at the end or, as PDF converters leave them, at each page end) or the items of a final
    ``<ol>``. The paragraphs are read with the PDF-Markdown rules
    (:func:`archiver.parse.pdfmd.read_lines`); the result is kept only if markers and notes
    match one to one: notes numbered 1..N in order, markers citing exactly 1..N, first cited
    in that order. Otherwise raises DocumentError."""
    order = {id(tag): i for i, tag in enumerate(soup.find_all(True))}
    sups = _bare_sups(soup)
    ol = _notes_list(soup, sups, order)
    items = list(ol.find_all("li", recursive=False)) if ol is not None else []
    skip = {id(ol)} if items and ol is not None else set()
    placed: list[tuple[int, Line]] = []
    for block in _body_blocks(soup, skip):
        text = _markdown(block).strip()
        line = block.sourceline or 0
        if block.name in _HEADINGS:
            placed.append((order[id(block)], Line(line, "heading", "# " + text, text)))
        elif block.name == "li":
            placed.append((order[id(block)], Line(line, "item", "- " + text, text)))
        else:
            text = _LEAD_NUMBER.sub(lambda m: m.group(1) + " ", text)
            placed.append((order[id(block)], Line(line, "text", text, text)))
    lines: list[Line] = []
    for _, entry in sorted(placed, key=lambda pair: pair[0]):
        lines.extend((entry, Line(entry.number, "blank", "", "")))
    draft = pdfmd.read_lines(lines)
    draft.format = FORMAT
    draft.title = title or draft.title
    if items and ol is not None:
        # The items of the final list are the notes whatever their text says (a superscript
        # date in one is text), numbered as the list shows them.
        begin = ol.get("start")
        first = int(begin) if isinstance(begin, str) and begin.strip().isdecimal() else 1
        for index, item in enumerate(items):
            parsed = inline(" ".join(_markdown(item, whole=True).split()))
            note = NoteDraft(first + index, parsed.text, urls_from_segments(parsed.segments),
                             item.sourceline or 0)
            draft.notes.append(note)
            draft.findings.extend(_superscript_findings(note, parsed.superscripts))
    problem = _mismatch(draft)
    if problem:
        raise DocumentError(
            f"{source}: HTML with bare <sup>N</sup> markers and no links to its notes; they "
            f"cannot be matched with confidence ({problem}). Export with linked footnotes "
            "(#fn anchors), or as DOCX, ODT or Markdown")
    return draft


def _mismatch(draft: Draft) -> str | None:
    """Why markers and notes of a plain-notes draft do not line up, or None if they do."""
    notes = [note.number for note in draft.notes]
    if not notes:
        return ("no notes found: neither paragraphs numbered 1, 2, ... nor a final list with "
                "one item per marker number")
    if notes != list(range(1, len(notes) + 1)):
        return f"the notes are not numbered 1..{len(notes)} in order"
    first: list[int] = []
    for unit in draft.units:
        for marker in unit.markers:
            if marker.number not in first:
                first.append(marker.number)
    if first != notes:
        missing = sorted(set(notes) - set(first))
        extra = sorted(set(first) - set(notes))
        if missing or extra:
            return (f"{len(first)} distinct markers for {len(notes)} notes"
                    + (f"; no marker for note {missing[0]}" if missing else "")
                    + (f"; no note for marker {extra[0]}" if extra else ""))
        return "the markers are not first cited in the order 1, 2, ..."
    return None
