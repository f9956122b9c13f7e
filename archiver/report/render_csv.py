"""``Report`` → ``links.csv``: one row per footnote-URL pair, for spreadsheets.

A URL cited by three footnotes gives three rows; a footnote that cites no URL gives none (its
claims are listed as unsupported in the other formats). ``evidence`` and
``memento_offset_days`` (the last two columns) are empty for healthy and unchecked links;
``evidence`` is ``unknown`` for a failing link the archive could not be asked about.
Cells that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return) are prefixed with an apostrophe, since URLs, titles and claims
come from untrusted documents and web pages; numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from archiver.models import isoformat
from archiver.report.model import Report, evidence_kind, memento_offset_days
from archiver.safetext import escape_controls

__all__ = ["CSV_COLUMNS", "render_csv", "safe_cell"]

CSV_COLUMNS: tuple[str, ...] = (
    "source", "footnote", "url", "verdict", "reason", "http_status", "final_url", "state",
    "captured_at", "warc", "offset", "length", "record_id", "memento_url", "memento_datetime",
    "claim", "evidence", "memento_offset_days",
)

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_CLAIM_CHARS = 200


def safe_cell(value: Any) -> str:
    """A cell's text, empty for ``None``, apostrophe-prefixed if it could start a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = escape_controls(str(value))
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def render_csv(report: Report) -> str:
    """The report's citations as CSV text (header row first, ``\\r\\n`` line ends as RFC 4180)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    lookup = {link.url: link for link in report.links}
    for entry in report.entries:
        claim = " / ".join(c.text for c in entry.claims)
        if len(claim) > _CLAIM_CHARS:
            claim = claim[: _CLAIM_CHARS - 1].rstrip() + "…"
        for url in entry.footnote.urls:
            link = lookup[url]
            capture, memento = link.capture, link.memento
            row = (
                report.source.id, entry.number, link.url,
                link.verdict.value if link.verdict is not None else "unchecked",
                link.reason, link.http_status, link.final_url,
                link.state.value if link.state is not None else None,
                isoformat(link.captured_at) if link.captured_at else None,
                capture.path if capture else None,
                capture.offset if capture else None,
                capture.length if capture else None,
                capture.record_id if capture else None,
                memento.url if memento else None,
                isoformat(memento.datetime) if memento else None,
                claim,
                evidence_kind(link),
                memento_offset_days(link, report.source.published),
            )
            writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
