"""Sentences of body text, and the claim a footnote marker supports.

A claim is the whole sentence that carries the marker, wherever in the sentence the marker
sits. A marker placed right after the sentence's full stop (``...civil society.<sup>2</sup>``)
belongs to the sentence before it; so does one separated from the stop by a space
(``...had closed. <sup>50</sup>``).

Sentence ends are ``.``, ``!``, ``?`` or ``…`` (plus any closing quotes or brackets) followed by
white space and something that can start a sentence. Common abbreviations (``e.g.``, ``No.``,
``Art.``, initials) do not end a sentence. Pure functions; no I/O.
"""

from __future__ import annotations

import bisect
import math
import re

__all__ = ["claim_at", "claim_span", "ends_open", "normalise_space", "sentence_spans"]

_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+[\"'\u201c\u2018(\[\w\u00ab*-])")
_ABBREVIATIONS = frozenset((
    "e.g", "i.e", "etc", "vs", "no", "nos", "art", "arts", "para", "paras", "p", "pp", "mr",
    "mrs", "ms", "dr", "prof", "st", "jr", "sr", "cf", "ca", "approx", "fig", "figs", "vol",
    "ed", "eds", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
))
_SPACE = re.compile(r"\s+")
_OPEN_END = re.compile(r"[.!?\u2026:;][\"'\u201d\u2019)\]*_]*\s*$")


# White space that normalise_space would change inside a text: a run of two or more, or one
# that is not a plain space (a no-break space, a tab, a newline, ...).
_UNUSUAL_SPACE = re.compile(r"\s\s|[^\S ]")


def normalise_space(text: str) -> str:
    """Collapse runs of white space (including no-break spaces) to one space, trimmed."""
    if _UNUSUAL_SPACE.search(text) is None:
        return text.strip()  # single plain spaces only: nothing to collapse
    return _SPACE.sub(" ", text.replace("\u00a0", " ")).strip()


def _is_abbreviation(text: str, stop: int) -> bool:
    word_start = stop
    while word_start > 0 and (text[word_start - 1].isalpha() or text[word_start - 1] == "."):
        word_start -= 1
    word = text[word_start:stop].lower().rstrip(".")
    if not word:
        return False
    # A single capital letter followed by a stop is an initial ("J. Smith").
    return word in _ABBREVIATIONS or (len(word) == 1 and text[word_start].isupper())


class _Quotes:
    """Where ``text``'s quotation marks are, to tell in O(log n) whether a stretch leaves a
    quotation open that closes later: a full stop inside quoted speech does not end the
    sentence that quotes it. (Counting the marks in each stretch again would make a
    paragraph with one unclosed quotation quadratic: the stretch grows to its end.)"""

    def __init__(self, text: str) -> None:
        self.straight = _positions(text, '"')
        self.opening = _positions(text, "\u201c")
        self.closing = _positions(text, "\u201d")

    def inside(self, start: int, end: int) -> bool:
        """Whether ``text[start:end]`` leaves a quotation open that closes after ``end``."""
        straight = _between(self.straight, start, end)
        if straight % 2 == 1 and self.straight and self.straight[-1] >= end:
            return True
        return (_between(self.opening, start, end) > _between(self.closing, start, end)
                and bool(self.closing) and self.closing[-1] >= end)


def _positions(text: str, mark: str) -> list[int]:
    out = []
    at = text.find(mark)
    while at != -1:
        out.append(at)
        at = text.find(mark, at + 1)
    return out


def _between(positions: list[int], start: int, end: int) -> int:
    return bisect.bisect_left(positions, end) - bisect.bisect_left(positions, start)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every sentence in ``text``; ``end`` is just after the closing
    punctuation. Together they cover every non-space character."""
    spans = []
    start = 0
    quotes: _Quotes | None = None
    for match in _END.finditer(text):
        single_stop = match.group(0).rstrip("\"'\u201d\u2019)]") == "."
        if single_stop and _is_abbreviation(text, match.start()):
            continue
        end = match.end()
        quotes = quotes or _Quotes(text)
        if quotes.inside(start, end):
            continue
        spans.append((start, end))
        start = end
        while start < len(text) and text[start].isspace():
            start += 1
    if start < len(text) and text[start:].strip():
        spans.append((start, len(text)))
    return spans or [(0, len(text))]


def claim_at(text: str, offset: int, spans: list[tuple[int, int]] | None = None) -> str:
    """The sentence of ``text`` that carries a marker at ``offset`` (markers already removed
    from ``text``), as normalised plain text."""
    spans = spans if spans is not None else sentence_spans(text)
    start, end = claim_span(text, offset, spans)
    return normalise_space(text[start:end])


def claim_span(text: str, offset: int, spans: list[tuple[int, int]]) -> tuple[int, int]:
    """The span (of ``spans``, or the whole text) of the sentence that carries a marker at
    ``offset``: markers in one sentence share it, so its text is normalised once."""
    probe = offset
    # A marker after white space that follows a sentence end belongs to that sentence.
    while probe > 0 and text[probe - 1].isspace():
        probe -= 1
    # Spans are in order and do not overlap: the last one starting at or before the probe
    # holds it, unless the one before ends exactly there (then that one, as a scan from the
    # first span would find). A bisection keeps a paragraph of many markers linear.
    at = bisect.bisect_right(spans, (probe, math.inf)) - 1
    if at < 0:
        return 0, len(text)
    if at > 0 and spans[at - 1][1] >= probe:
        at -= 1
    return spans[at]


def ends_open(text: str) -> bool:
    """Whether ``text`` stops mid-sentence (no closing punctuation at its end), as a
    paragraph cut by a page break does."""
    stripped = text.rstrip()
    return bool(stripped) and not _OPEN_END.search(stripped)
