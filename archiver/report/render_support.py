"""Claim support in the HTML and Markdown reports (``archiver.support``).

    support_section(report) -> str     the levels' counts, the rule and its limits (HTML)
    support_html(entry, report) -> str the block under one footnote's claims (HTML)
    support_md(report) -> str          a short Markdown section
    support_md_pieces(report)          the same section in groups of lines

Everything from the document or the web (claims, passages, URLs) is escaped; nothing here
adds a script, a style attribute or an external load, so the report's Content-Security-Policy
holds.
"""

from __future__ import annotations

from collections.abc import Iterator

from archiver.report.escape import esc, esc_often
from archiver.report.model import Entry, Report
from archiver.support import LEVEL_RULE, LEVELS, FactCheck, Support

__all__ = ["LIMITS", "support_html", "support_md", "support_md_pieces", "support_section"]

LIMITS = ("Fact matching finds names, dates, sums, figures and law articles (in Russian and "
          "Kazakh too: transliteration, case endings, month names, number formats). It does "
          "not see paraphrase or translated sentences: a page can say the same thing in other "
          "words and still be marked partial, and a page that names the same facts in "
          "another context can be marked supported. Read the passages.")

_LABELS = {"supported": "Supported", "partial": "Partial", "unsupported": "Unsupported",
           "unknown": "Unknown"}


_esc = esc


def support_section(report: Report) -> str:
    """The summary card: how many (footnote, URL) pairs at each level, the rule, the limits.
    Empty when the report has no claim support."""
    if not report.support:
        return ""
    counts = report.support_counts
    items = "".join(
        f'<li><span class="badge s-{level}">{_LABELS[level]}</span> '
        f'<span class="n">{counts.get(level, 0)}</span></li>' for level in LEVELS)
    return (
        '<section id="support" class="card" aria-labelledby="support-h">'
        '<h2 id="support-h">Does each source say what the claim says?</h2>'
        f'<ul class="support-counts">{items}</ul>'
        f'<p class="support-rule">{_esc(LEVEL_RULE)}</p>'
        f'<p class="support-limits"><strong>Limits.</strong> {_esc(LIMITS)}</p></section>'
    )


def support_html(entry: Entry, report: Report) -> str:
    """The claim with its facts marked, then per cited URL its level and, per fact, found
    or not with the passage. Empty when the footnote has no claim support."""
    mine = report.support_for(entry.number)
    if not mine:
        return ""
    first = mine[0]
    claims = "".join(f'<p class="support-claim">{_marked(text, first.facts, n)}</p>'
                     for n, text in enumerate(first.claims))
    sources = "".join(_source(s) for s in mine)
    return (f'<div class="support"><h4>Claim support</h4>{claims}'
            f'<ul class="support-sources">{sources}</ul></div>')


def _marked(text: str, checks: tuple[FactCheck, ...], claim: int) -> str:
    """The claim, escaped, with each fact in a ``<mark>`` naming its kind."""
    out, at = [], 0
    for check in sorted((c for c in checks if c.claim == claim),
                        key=lambda c: (c.fact.start, -c.fact.end)):
        fact = check.fact
        if fact.start < at or fact.end > len(text):
            continue  # overlapping or out of range: left unmarked
        out.append(_esc(text[at:fact.start]))
        need = "required" if fact.required else "not required"
        out.append(f'<mark class="fact k-{esc_often(fact.kind)}" title="{esc_often(fact.kind)} '
                   f'({need}): {esc_often(fact.rule)}">{_esc(text[fact.start:fact.end])}</mark>')
        at = fact.end
    out.append(_esc(text[at:]))
    return "".join(out)


def _source(support: Support) -> str:
    evidence = ""
    if support.origin:
        where = {"ours": "our capture", "internet_archive": "the Internet Archive copy",
                 "browser": "the browser's text"}.get(support.origin, support.origin)
        evidence = f" <span class=\"support-from\">read from {esc_often(where)} " \
                   f"({esc_often(support.text_kind)})</span>"
    level = esc_often(support.level)
    rows = "".join(_fact_row(c) for c in support.facts)
    table = (f'<table class="facts"><thead><tr><th scope="col">Fact</th>'
             f'<th scope="col">Kind</th><th scope="col">On the page</th></tr></thead>'
             f"<tbody>{rows}</tbody></table>") if support.facts else ""
    return (f'<li class="support-source" data-support="{level}">'
            f'<span class="badge s-{level}">{_LABELS.get(support.level, "")}'
            f'</span> <span class="url">{_esc(support.url)}</span>{evidence}'
            f'<p class="support-reason">{esc_often(support.reason)}</p>{table}</li>')


def _fact_row(check: FactCheck) -> str:
    mark = "found" if check.found else "missing"
    symbol = "✓" if check.found else "✗"
    need = "" if check.fact.required else ' <span class="optional">(not required)</span>'
    if check.found and check.passage:
        shown = _passage(check.passage, check.matched)
        cell = f'<q class="passage">{shown}</q>'
        if check.how:
            cell += f' <span class="how">{_esc(check.how)}</span>'
    else:
        cell = f'<span class="how">{_esc(check.how or "not on the page")}</span>'
    return (f'<tr class="f-{mark}"><td><span class="sym" aria-label="{mark}">{symbol}</span> '
            f"{_esc(check.fact.text)}{need}</td><td>{esc_often(check.fact.kind)}</td>"
            f"<td>{cell}</td></tr>")


def _passage(passage: str, matched: str | None) -> str:
    """The passage, escaped, with the matched words marked (first occurrence)."""
    if matched and matched in passage:
        at = passage.index(matched)
        return (_esc(passage[:at]) + f"<mark>{_esc(matched)}</mark>"
                + _esc(passage[at + len(matched):]))
    return _esc(passage)


def support_md(report: Report) -> str:
    """A short Markdown section: counts per level, then every (footnote, URL) that is not
    supported with the facts it misses. Empty without claim support."""
    return "".join("\n".join(piece) + "\n" for piece in support_md_pieces(report))


#: Lines per piece of ``support_md_pieces``.
_MD_PIECE_LINES = 1000


def support_md_pieces(report: Report) -> Iterator[list[str]]:
    """``support_md``'s lines in groups (each group joined by newlines and ending in one),
    so that the section of a report of many thousand links is never held whole."""
    piece: list[str] = []
    blank: list[str] = []  # whitespace-only lines: kept only if a line with text follows
    for line in _support_md_lines(report):
        if line is None:  # another _MD_PIECE_SUPPORTS supports read: a piece ends here
            if len(piece) > 1:
                last = piece.pop()
                yield piece
                piece = [last]
        elif line.strip():
            piece += blank
            blank = []
            piece.append(line)
            if len(piece) > _MD_PIECE_LINES:
                last = piece.pop()  # held back: it may be the section's last line
                yield piece
                piece = [last]
        else:
            blank.append(line)
    if piece:
        piece[-1] = piece[-1].rstrip()
        yield piece


#: Supports read per piece of ``support_md_pieces`` at most, however few lines they make:
#: a piece reads no more than a chunk or so of supports spooled to disk (``report.write``
#: moves the renderers along together by the chunks they read).
_MD_PIECE_SUPPORTS = 128


def _support_md_lines(report: Report) -> Iterator[str | None]:
    """The section's lines, and ``None`` after every ``_MD_PIECE_SUPPORTS`` supports read."""
    from archiver.report.render_md import md_text as _md

    if not report.support:
        return
    counts = report.support_counts
    yield from ["## Claim support", "",
                " · ".join(f"{_LABELS[level]}: {counts.get(level, 0)}" for level in LEVELS), "",
                _md(LEVEL_RULE), "", _md(LIMITS), ""]
    for n, support in enumerate(report.support, 1):
        if n % _MD_PIECE_SUPPORTS == 0:
            yield None
        if support.level == "supported":
            continue
        missing = ", ".join(c.fact.text for c in support.missing)
        detail = f": missing {missing}" if missing and support.level != "unknown" else \
            f": {support.reason}"
        yield f"- fn {support.footnote} {_md(support.url)} — **{support.level}**{_md(detail)}"
