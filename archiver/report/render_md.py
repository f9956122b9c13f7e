"""``Report`` → ``report.md``, for pasting into an issue tracker or an email.

Layout: a one-line summary first (what someone skimming a notification reads), run notes,
counts by verdict and by evidence recovered, what changed since the last check, links that
need attention, then every footnote in document order with its claims, URLs, verdicts,
archived copies and, for failing links, whether the evidence was recovered. Text from the
document or the web is escaped so that it cannot turn into markup, links or HTML where the
Markdown is rendered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from archiver.models import Change, LinkRecord, isoformat
from archiver.report.escape import is_web
from archiver.report.model import (
    CHANGE_LABELS,
    EVIDENCE_IA,
    EVIDENCE_NONE,
    EVIDENCE_OURS,
    EVIDENCE_UNKNOWN,
    Entry,
    Report,
    evidence_kind,
    evidence_text,
    iso,
    needs_rescue,
    verdict_key,
    verdict_label,
)
from archiver.report.render_support import support_md_pieces
from archiver.safetext import escape_controls

__all__ = ["md_text", "render_md"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_MD_LEADING = re.compile(r"^([#+\-=]|\d+(?=[.)]))")


def md_text(text: str) -> str:
    """Plain text made inert in Markdown: inline specials (and HTML's ``<``) backslash-escaped,
    newlines folded and a leading block marker escaped, so that a value cannot open a tag,
    a link, a heading or a list."""
    text = " ".join(text.split())
    if _MD_SPECIAL.search(text) is not None:
        text = _MD_SPECIAL.sub(_backslashed, text)
    found = _MD_LEADING.match(text)
    if found is None:
        return text
    if found.group(1).isdigit():  # "1." starts an ordered list: escape the dot
        end = found.end()
        return text[:end] + "\\" + text[end:]
    return "\\" + text


def _backslashed(found: re.Match[str]) -> str:
    return "\\" + found.group(1)


_SPACE_OR_ANGLE = re.compile(r"[\s<>]")


def _md_url(url: str) -> str:
    """A URL as an autolink when it is a plain http(s) URL, otherwise as inert text."""
    if "\n" not in url and is_web(url) and _SPACE_OR_ANGLE.search(url) is None:
        return f"<{url}>"
    return md_text(url)


def render_md(report: Report) -> str:
    """The report as GitHub-flavoured Markdown text, ending in a newline."""
    return "".join(render_md_chunks(report))


def render_md_chunks(report: Report) -> Iterator[str]:
    """``render_md``'s text in pieces (the summary and sections, then one per footnote), so
    that a report of many thousand footnotes is never held whole."""
    pending = ""  # the blank lines ending the text so far: written only if text follows
    for piece in _md_pieces(report):
        # Control characters from documents and pages made visible (terminal escapes, bidi).
        # isprintable() is false for every character escape_controls changes (and for a few
        # more: tab, other spaces) and costs less than its search: where every line is
        # printable, there is nothing to change.
        text = "\n".join(piece)
        if not all(map(str.isprintable, piece)):
            text = escape_controls(text)
        body = text.rstrip("\n")
        if body:
            yield pending + body + "\n"
            pending = "\n" * (len(text) - len(body))
        else:  # nothing but line ends: held like the others, with the piece's own
            pending += "\n" * (len(text) + 1)


def _md_pieces(report: Report) -> Iterator[list[str]]:
    """The report's lines, in groups: each group is joined by newlines and ends in one."""
    s = report.summary
    lines: list[str] = []
    counts = ", ".join(f"{n} {verdict_label(k).lower()}" for k, n in s.by_verdict)
    lines.append(
        f"**{md_text(report.source.id)}**: {s.claims} claims, {s.footnotes} footnotes, "
        f"{s.urls} URLs ({counts or 'none'}); {s.healthy} healthy, {s.failing} failing"
        + (f", {s.unchecked} not checked" if s.unchecked else "")
        + f"; {s.no_copy} failing without an archived copy."
    )
    lines.append("")
    lines.append(f"# Link report: {md_text(report.title)}")
    lines.append("")
    lines.append(f"Source `{_code(report.source_path)}`"
                 + (f", published {report.source.published.isoformat()}"
                    if report.source.published else "")
                 + f". Generated {isoformat(report.generated_at)}.")
    lines.append("")
    for note in report.notes:
        lines.append(f"> **Note:** {md_text(note)}")
        lines.append("")

    lines.append("| Verdict | URLs |")
    lines.append("|---|---:|")
    for key, n in s.by_verdict:
        lines.append(f"| {verdict_label(key)} | {n} |")
    lines.append("")
    lines.append(f"Captured: {s.captured} · Internet Archive copies: {s.mementos} · "
                 f"Claims unsupported by web evidence: {s.unsupported_claims} · "
                 f"Footnotes no marker cites: {s.orphan_footnotes}")
    lines.append("")
    if s.failing:
        lines.append(f"Evidence recovered for the {s.failing} failing links: "
                     f"ours (Internet Archive copy stored in our WARC): "
                     f"{s.evidence_count(EVIDENCE_OURS)} · Internet Archive only: "
                     f"{s.evidence_count(EVIDENCE_IA)} · none (no archived copy found): "
                     f"{s.evidence_count(EVIDENCE_NONE)} · not looked up (archive not "
                     f"reached, or rescue disabled): {s.evidence_count(EVIDENCE_UNKNOWN)}")
        lines.append("")

    if report.changes:
        lines.append("## What changed since the last check")
        lines.append("")
        news = [c for c in report.changes if c.kind.value != "still_failing"]
        still = [c for c in report.changes if c.kind.value == "still_failing"]
        for change in news:
            lines.append(_change_line(change))
        if not news:
            lines.append("No link changed since the last check.")
        if still:
            lines.append("")
            lines.append(f"Still failing ({len(still)}):")
            lines.append("")
            for change in still:
                lines.append(_change_line(change))
        lines.append("")

    # s.failing: the links that need rescue (checked, not healthy), listed as they come.
    if s.failing:
        lines.append("## Links that need attention")
        lines.append("")
        # Known without reading the links again when the report was built from a tally.
        attention = (report.attention if report.attention is not None
                     else (link for link in report.links if needs_rescue(link)))
        for link in attention:
            notes = ", ".join(str(n) for n in link.footnotes)
            lines.append(f"- {_md_url(link.url)} (footnote {notes}): {_verdict(link)}; "
                         + _copies(link, report) + "; " + _evidence(link, report))
        lines.append("")

    if report.support:  # the claim support section, in pieces, then a blank line
        yield lines
        yield from support_md_pieces(report)
        lines = [""]

    lines.append("## Footnotes")
    lines.append("")
    yield lines
    for entry in report.entries:
        yield _entry(entry, report)


def _entry(entry: Entry, report: Report) -> list[str]:
    out = [f"### Footnote {entry.number}", ""]
    if entry.orphan:
        out.append("_No marker in the text cites this footnote._")
        out.append("")
    for claim in entry.claims:
        out.append(f"> {md_text(claim.text)} (line {claim.line})")
        out.append("")
    out.append(f"Footnote: {md_text(entry.footnote.text)}")
    out.append("")
    if entry.unsupported:
        out.append("**Unsupported by web evidence**: the footnote cites no URL.")
        out.append("")
        return out
    for link in entry.links:
        out.append(f"- {_md_url(link.url)}: {_verdict(link)}")
        out.append(f"  - Archived: {_copies(link, report)}")
        if evidence_kind(link) is not None:
            phrase = _evidence(link, report)
            out.append(f"  - {phrase[:1].upper()}{phrase[1:]}")
    out.append("")
    return out


def _verdict(link: LinkRecord) -> str:
    text = f"**{verdict_label(verdict_key(link))}**"
    details = []
    if link.http_status is not None:
        details.append(f"HTTP {link.http_status}")
    if link.reason:
        details.append(md_text(link.reason))
    if details:
        text += f" ({'; '.join(details)})"
    if link.final_url and link.final_url != link.url:
        text += f" → {_md_url(link.final_url)}"
    return text


def _copies(link: LinkRecord, report: Report) -> str:
    parts = []
    if link.capture is not None:
        when = f" at {iso(link.captured_at)}" if link.captured_at else ""
        parts.append(f"captured{when} in `{_code(link.capture.path)}` "
                     f"(record `{_code(link.capture.record_id)}`, "
                     f"offset {link.capture.offset})")
    if link.screenshot is not None:
        parts.append("captured in a browser" + (" with a logged-in profile" if link.profile
                                                 else "")
                     + f", screenshot record `{_code(link.screenshot.record_id)}`")
    elif link.browser_lost:
        parts.append(f"not captured in a browser: {link.browser_lost}")
    if link.memento is not None:
        parts.append(f"Internet Archive {iso(link.memento.datetime)}: "
                     f"{_md_url(link.memento.url)}")
    if link.rescued is not None:
        parts.append(f"rescued copy in `{_code(link.rescued.path)}`")
    if not parts:
        parts.append("no capture yet")
    return "; ".join(parts)


def _evidence(link: LinkRecord, report: Report) -> str:
    """Whether a failing link's evidence was recovered, in a phrase."""
    if evidence_kind(link) == EVIDENCE_NONE:
        return "evidence: **no archived copy found**"
    if evidence_kind(link) == EVIDENCE_UNKNOWN:
        return f"evidence: **{md_text(evidence_text(link, report.source.published) or '')}**"
    return f"evidence recovered: {md_text(evidence_text(link, report.source.published) or '')}"


def _change_line(change: Change) -> str:
    label = CHANGE_LABELS.get(change.kind.value, change.kind.value)
    now = verdict_label(change.verdict.value) if change.verdict else "not checked"
    text = f"- **{label}**: {_md_url(change.url)}"
    if change.footnotes:
        text += f" (footnote {', '.join(str(n) for n in change.footnotes)})"
    if change.previous_verdict is not None:
        text += f": {verdict_label(change.previous_verdict.value)} → {now}"
    else:
        text += f": {now}"
    if change.since is not None:
        text += f", since {isoformat(change.since)}"
    if change.similarity is not None:
        text += f", text {change.similarity:.0%} similar"
    if change.reason:
        text += f" ({md_text(change.reason)})"
    return text


def _code(text: str) -> str:
    # Inside a code span only backticks matter; drop them rather than fight the fence rules.
    return " ".join(text.replace("`", "'").split())
