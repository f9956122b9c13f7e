"""Renderers for a parsed Document: terminal text and the ``extract --format json`` shape.

Pure functions returning values; the CLI decides where they go.
"""

from __future__ import annotations

from typing import Any

from archiver.models import Document, Finding, Severity

__all__ = ["finding_json", "render_text", "to_json"]

_ORDER = (Severity.ERROR, Severity.WARNING, Severity.INFO)


def finding_json(finding: Finding) -> dict[str, Any]:
    """One finding as in CONTRACT.md, plus ``url`` and ``suggestion`` when set."""
    out: dict[str, Any] = {
        "code": finding.code,
        "severity": finding.severity.value,
        "footnote": finding.footnote,
        "line": finding.line,
        "message": finding.message,
    }
    if finding.url is not None:
        out["url"] = finding.url
    if finding.suggestion is not None:
        out["suggestion"] = finding.suggestion
    return out


def to_json(doc: Document) -> dict[str, Any]:
    """The ``extract --format json`` object: footnotes (number, text, urls, claims, line) and
    findings, plus the document's ``path`` and ``format``."""
    return {
        "path": doc.path,
        "format": doc.format,
        "footnotes": [
            {
                "number": note.number,
                "line": note.line,
                "text": note.text,
                "urls": list(note.urls),
                "claims": [{"text": claim.text, "line": claim.line} for claim in note.claims],
            }
            for note in doc.footnotes
        ],
        "findings": [finding_json(f) for f in doc.findings],
    }


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(doc: Document) -> str:
    by = {s: sum(1 for f in doc.findings if f.severity is s) for s in _ORDER}
    return (f"{doc.path}: {_count(len(doc.footnotes), 'footnote')}, "
            f"{_count(len(doc.urls), 'distinct URL')}, {_count(len(doc.claims), 'claim')} — "
            f"{_count(by[Severity.ERROR], 'error')}, {_count(by[Severity.WARNING], 'warning')}, "
            f"{by[Severity.INFO]} info")


def render_text(doc: Document, *, verbose: bool = False) -> str:
    """A summary line, then findings grouped by severity and code, each with footnote and
    line. ``verbose`` also lists every footnote with its URLs and claims."""
    lines = [_summary(doc)]
    for severity in _ORDER:
        group = [f for f in doc.findings if f.severity is severity]
        if not group:
            continue
        lines.append("")
        lines.append(f"{severity.value.upper()} ({len(group)})")
        codes: dict[str, list[Finding]] = {}
        for finding in group:
            codes.setdefault(finding.code, []).append(finding)
        for code, items in codes.items():
            lines.append(f"  {code} ({len(items)})")
            for f in items:
                where = []
                if f.footnote is not None:
                    where.append(f"footnote {f.footnote}")
                if f.line is not None:
                    where.append(f"line {f.line}")
                lines.append(f"    {', '.join(where) or 'document'}: {f.message}")
                if f.url and f.url not in f.message:
                    lines.append(f"      {f.url}")
                if f.suggestion:
                    lines.append(f"      suggestion: {f.suggestion}")
    if verbose:
        lines.append("")
        lines.append("FOOTNOTES")
        for note in doc.footnotes:
            lines.append(f"  [{note.number}] line {note.line}: {note.text}")
            for url in note.urls:
                lines.append(f"      url: {url}")
            for claim in note.claims:
                lines.append(f"      claim (line {claim.line}): {claim.text}")
    return "\n".join(lines) + "\n"
