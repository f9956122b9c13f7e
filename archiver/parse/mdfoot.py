"""Reader for Markdown footnotes: ``[^N]`` markers and ``[^N]: text`` definitions.

A definition runs on over the lines that follow it when they are indented (pandoc and
CommonMark extensions use four spaces) or directly continue it (lazy continuation); a blank
line followed by an indented line continues it too. Numeric labels keep their number;
other labels (``[^note]``) are numbered in order of first reference, after the highest
numeric label, as renderers display them. Returns a :class:`~archiver.parse.draft.Draft`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TypeVar

from archiver.parse.draft import Draft, Marker, NoteDraft, Unit
from archiver.parse.markdown import CARET_MARKER, Line, classify_lines, inline
from archiver.parse.urls import urls_from_segments

__all__ = ["looks_like", "read"]

FORMAT = "markdown-footnotes"
_T = TypeVar("_T")
_DEFINITION = re.compile(r"^\s{0,3}\[\^([^\]\s]{1,40})\]:[ \t]?(.*)$")


def looks_like(text: str) -> bool:
    """A Markdown file with at least one ``[^label]:`` definition or ``[^N]`` marker."""
    return bool(re.search(r"(?m)^\s{0,3}\[\^[^\]\s]{1,40}\]:", text)) or bool(
        re.search(r"\[\^\d{1,4}\]", text))


class _Numbers:
    """Label → footnote number. A number is one ``int`` object however often it is used: a
    footnote's number and its markers' claims share it."""

    def __init__(self, labels: Iterable[str]) -> None:
        self.next = max((int(label) for label in labels if label.isdecimal()), default=0) + 1
        self.map: dict[str, int] = {}
        self.numbers: dict[int, int] = {}

    def __call__(self, label: str) -> int:
        if label.isdecimal():
            number = int(label)
            return self.numbers.setdefault(number, number)
        if label not in self.map:
            self.map[label] = self.next
            self.next += 1
        return self.map[label]


def _drain(blocks: list[_T]) -> Iterator[_T]:
    """The blocks in order, each released from the list once taken: the lines of a long
    document's blocks are freed as its units and notes are made, not kept to the end."""
    blocks.reverse()
    while blocks:
        yield blocks.pop()


def read(text: str) -> Draft:
    """Read Markdown with ``[^N]`` footnotes into a Draft. Never raises on content."""
    lines = classify_lines(text.replace("\r\n", "\n").replace("\r", "\n"))
    draft = Draft(FORMAT)
    body: list[tuple[str, list[Line]]] = []  # (kind, lines) per body block
    notes: list[tuple[str, list[Line]]] = []
    current: tuple[str, list[Line]] | None = None
    in_note = False
    gap = False
    for line in lines:
        definition = _DEFINITION.match(line.raw) if line.kind != "fence" else None
        if definition:
            current = ("note:" + definition.group(1), [line])
            notes.append(current)
            in_note, gap = True, False
            continue
        if in_note and line.kind != "fence":
            indented = line.raw.startswith(("    ", "\t"))
            if line.kind == "blank":
                gap = True
                continue
            if indented or (not gap and line.kind == "text"):
                assert current is not None
                current[1].append(line)
                gap = False
                continue
            in_note = False
        if line.kind in ("blank", "rule", "fence"):
            current = None
            continue
        if line.kind in ("heading", "item") or current is None or current[0].startswith("note"):
            current = (line.kind if line.kind != "text" else "para", [line])
            body.append(current)
            if line.kind == "heading":
                current = None
        else:
            current[1].append(line)

    del lines, current
    labels = re.finditer(CARET_MARKER.replace("?P<caret>", ""), text)
    number = _Numbers(m.group(1) for m in labels)
    for kind, block in _drain(body):
        parts: list[str] = []
        markers: list[Marker] = []
        offset = 0
        for line in block:
            source = line.body if line is block[0] else line.raw.strip()
            if parts:
                parts.append(" ")
                offset += 1
            parsed = inline(source, CARET_MARKER)
            markers.extend(Marker(number(label), offset + at, line.number)
                           for label, at in parsed.markers)
            parts.append(parsed.text)
            offset += len(parsed.text)
        draft.units.append(Unit("".join(parts), block[0].number, kind, markers))
        if kind == "heading" and draft.title is None and block[0].raw.lstrip().startswith("# "):
            draft.title = draft.units[-1].text.strip()
    for kind, block in _drain(notes):
        first = _DEFINITION.match(block[0].raw)
        assert first is not None
        source = " ".join([first.group(2), *(line.raw.strip() for line in block[1:])])
        parsed = inline(source, CARET_MARKER)
        draft.notes.append(NoteDraft(number(kind[len("note:"):]), parsed.text,
                                     urls_from_segments(parsed.segments), block[0].number))
    return draft
