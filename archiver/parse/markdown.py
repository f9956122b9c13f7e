"""Markdown inline and block helpers shared by the two Markdown readers.

:func:`inline` turns one stretch of Markdown into plain text, the footnote markers in it (with
their offsets in that plain text) and link *segments* for :mod:`archiver.parse.urls`.
Markup is dropped (``**``, ``*``, tags, link brackets), escapes are undone, link texts are
kept as text while their targets are kept as the URL. :func:`blocks` splits a Markdown file
into lines classified as blank, rule, heading, list item, fence or text. Pure; no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from archiver.parse.urls import Segment, unescape_markdown

__all__ = ["Inline", "Line", "classify_lines", "inline"]

SUP_MARKER = r"<sup>\s*(?P<sup>\d{1,4}(?:\s*,\s*\d{1,4})*)\s*</sup>"
CARET_MARKER = r"\[\^(?P<caret>[^\]\s]{1,40})\]"

_TOKEN = re.compile(
    r"""
      (?P<link>!?\[(?P<ltext>(?:\\.|[^\[\]\\]|\[(?:\\.|[^\[\]\\])*\])*)\]\()
    | <(?P<auto>(?:https?://|www\.)[^\s<>]*)>
    | (?P<tag></?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>)
    | (?P<star>\*{1,3})
    | (?P<esc>\\+[!-/:-@\[-`{-~])
    """,
    re.VERBOSE,
)


@dataclass(slots=True)
class Inline:
    """Plain text of a Markdown stretch, its markers ``(label, offset)`` and URL segments."""

    text: str = ""
    markers: list[tuple[str, int]] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    superscripts: list[str] = field(default_factory=list)


def _link_target(source: str, start: int) -> tuple[str, int]:
    """Read a link destination starting at ``start`` (just after ``(``); returns the target
    and the index after the closing ``)``. Parentheses inside the target must balance."""
    i = start
    while i < len(source) and source[i] in " \t":
        i += 1
    if i < len(source) and source[i] == "<":
        end = source.find(">", i)
        if end != -1:
            close = source.find(")", end)
            return source[i + 1:end], (close + 1 if close != -1 else end + 1)
    depth = 0
    j = i
    while j < len(source):
        ch = source[j]
        if ch == "\\" and j + 1 < len(source):
            j += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        elif ch.isspace():
            break
        j += 1
    target = source[i:j]
    close = source.find(")", j)
    if close == -1:
        return target, len(source)
    return target, close + 1


@functools.lru_cache(maxsize=16)
def _with_marker(marker: str) -> re.Pattern[str]:
    return re.compile(f"(?P<marker>{marker})|{_TOKEN.pattern}", re.VERBOSE)


_LABEL_SPLIT = re.compile(r"\s*,\s*")
# Every alternative of _TOKEN, and of the two markers, starts with one of these characters.
# Finding the next one and trying the pattern there is several times faster than the
# pattern's own search, which tries each alternative at every position of plain prose.
_STARTS = re.compile(r"[\[!<*\\]")
_FIRST_CHARACTERS = (None, SUP_MARKER, CARET_MARKER)


@functools.lru_cache(maxsize=16)
def _searcher(pattern: re.Pattern[str]) -> Callable[[str, int], re.Match[str] | None]:
    """``pattern.search``, for patterns whose every match starts at a ``_STARTS`` character."""
    find = _STARTS.search
    match = pattern.match

    def search(source: str, pos: int) -> re.Match[str] | None:
        while (start := find(source, pos)) is not None:
            found = match(source, start.start())
            if found is not None:
                return found
            pos = start.start() + 1
        return None

    return search


def inline(source: str, marker: str | None = None) -> Inline:
    """Plain text, markers and URL segments of ``source``. ``marker`` is a regex with a named
    group ``sup`` or ``caret`` that recognises footnote markers; without it, ``<sup>N</sup>``
    is kept as text (inside a footnote, a superscript is not a citation)."""
    out = Inline()
    segments = out.segments
    markers = out.markers
    parts: list[str] = []
    length = 0
    pending: list[str] = []  # plain text not yet assigned to a segment

    if marker is None:
        pattern, label_group = _TOKEN, ""
    else:
        pattern = _with_marker(marker)
        label_group = "sup" if "sup" in pattern.groupindex else "caret"
    search = _searcher(pattern) if marker in _FIRST_CHARACTERS else pattern.search
    lowered: str | None = None
    pos = 0
    end = len(source)
    # Every alternative of the pattern is one named group that cannot match empty, so the
    # match's last group names the alternative that matched.
    while pos <= end:
        match = search(source, pos)
        if match is None:
            text = source[pos:]
            parts.append(text)
            pending.append(text)
            length += len(text)
            break
        text = source[pos:match.start()]
        parts.append(text)
        pending.append(text)
        length += len(text)
        kind = match.lastgroup
        if kind == "marker":
            labels = (match.group(label_group) or "").strip()
            if "," in labels:
                for label in _LABEL_SPLIT.split(labels):
                    markers.append((label, length))
            else:
                markers.append((labels, length))
            pos = match.end()
        elif kind == "link":
            text = unescape_markdown(match.group("ltext") or "")
            target, pos = _link_target(source, match.end())
            if pending:
                segments.append(("".join(pending), None))
                pending.clear()
            inner = inline(text)
            parts.append(inner.text)
            length += len(inner.text)
            segments.append((inner.text, unescape_markdown(target)))
        elif kind == "auto":
            url = match.group("auto")
            if pending:
                segments.append(("".join(pending), None))
                pending.clear()
            parts.append(url)
            length += len(url)
            segments.append((url, url))
            pos = match.end()
        elif kind == "tag":
            tag = match.group("tag").lower()
            if tag.startswith("<sup"):
                # Lowered once per call: a paragraph of many superscripts stays linear.
                lowered = source.lower() if lowered is None else lowered
                close = lowered.find("</sup>", match.end())
                if close != -1:
                    out.superscripts.append(source[match.end():close])
                # A superscript glued to a word reads as a separate word in plain text.
                if parts and parts[-1][-1:].isalnum():
                    parts.append(" ")
                    pending.append(" ")
                    length += 1
            elif tag.startswith("<br"):
                parts.append(" ")
                pending.append(" ")
                length += 1
            pos = match.end()
        elif kind == "esc":
            # A run of backslashes escapes the character after it (PDF conversions double
            # them): that character, a backslash itself when the run is all backslashes.
            text = match.group(0)[-1]
            parts.append(text)
            pending.append(text)
            length += 1
            pos = match.end()
        else:  # emphasis stars vanish
            pos = match.end()
        if pos >= end:
            break
    if pending:
        segments.append(("".join(pending), None))
    out.text = "".join(parts)
    return out


@dataclass(slots=True)
class Line:
    """One source line: ``kind`` is blank, rule, heading, item, fence or text; ``body`` is
    the line without its heading hashes or list bullet."""

    number: int
    kind: str
    raw: str
    body: str


_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def classify_lines(text: str) -> list[Line]:
    """Every line of ``text`` (1-based numbers), classified. Lines inside fenced code blocks
    are ``fence`` lines: they carry no markers or footnotes."""
    lines = []
    in_fence = False
    for number, raw in enumerate(text.split("\n"), start=1):
        if _FENCE.match(raw):
            in_fence = not in_fence
            lines.append(Line(number, "fence", raw, ""))
            continue
        if in_fence:
            lines.append(Line(number, "fence", raw, ""))
        elif not raw.strip():
            lines.append(Line(number, "blank", raw, ""))
        elif _RULE.match(raw):
            lines.append(Line(number, "rule", raw, ""))
        elif heading := _HEADING.match(raw):
            lines.append(Line(number, "heading", raw, heading.group(2)))
        elif item := _ITEM.match(raw):
            lines.append(Line(number, "item", raw, item.group(1)))
        else:
            lines.append(Line(number, "text", raw, raw.strip()))
    return lines
