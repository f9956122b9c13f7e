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
from collections import OrderedDict
from collections.abc import Iterator
from datetime import date
from typing import Any

from archiver.models import LinkRecord
from archiver.report.model import Report, evidence_kind, iso, memento_offset_days
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


def _text_cell(text: str) -> str:
    """``safe_cell`` of a ``str``."""
    if not text.isprintable():  # false for every control character (and a few others)
        text = escape_controls(text)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def render_csv(report: Report) -> str:
    """The report's citations as CSV text (header row first, ``\\r\\n`` line ends as RFC 4180)."""
    return "".join(render_csv_chunks(report))


def render_csv_chunks(report: Report) -> Iterator[str]:
    """``render_csv``'s text in pieces of about ``_CHUNK_ROWS`` rows, so that a report of
    many thousand citations is never held whole. The rows are those ``csv.writer`` writes
    (``_csv_field``), each cell quoted once for all the rows it is in."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    lines = [out.getvalue()]
    source = _csv_field(safe_cell(report.source.id))
    published = report.source.published
    # The cells that depend on the link alone, made once per link (a URL several footnotes
    # cite gives several rows), for the links made last only (first made, first dropped):
    # the footnotes citing one URL are mostly near each other, and a miss only makes them
    # again.
    made: OrderedDict[str, tuple[str, str]] = OrderedDict()
    for entry in report.entries:
        claim = " / ".join(c.text for c in entry.claims)
        if len(claim) > _CLAIM_CHARS:
            claim = claim[: _CLAIM_CHARS - 1].rstrip() + "…"
        claim_cell = _csv_field(_text_cell(claim))
        head = source + "," + _csv_field(safe_cell(entry.number)) + ","
        for url, link in zip(entry.footnote.urls, entry.links, strict=True):
            cells = made.get(url)
            if cells is None:
                cells = made[url] = _link_cells(link, published)
                if len(made) > _CELLS_KEPT:
                    made.popitem(last=False)
            lines.append(head + cells[0] + claim_cell + cells[1])
            if len(lines) >= _CHUNK_ROWS:
                yield "".join(lines)
                lines = []
    yield "".join(lines)


_CHUNK_ROWS = 256
#: Links whose cells ``render_csv_chunks`` keeps made.
_CELLS_KEPT = 4096


def _csv_field(cell: str) -> str:
    """``cell`` as ``csv.writer`` (the excel dialect) writes it in a row: in double quotes,
    its own doubled, when it holds one, a comma, a CR or a LF."""
    if '"' in cell:
        return '"' + cell.replace('"', '""') + '"'
    if "," in cell or "\n" in cell or "\r" in cell:
        return '"' + cell + '"'
    return cell


def _link_cells(link: LinkRecord, published: date | None) -> tuple[str, str]:
    """The fields of ``link``'s rows from ``url`` to ``memento_datetime`` (each followed by
    a comma), and the last two (the line end after them)."""
    capture, memento = link.capture, link.memento
    row = (
        link.url,
        link.verdict._value_ if link.verdict is not None else "unchecked",
        link.reason, link.http_status, link.final_url,
        link.state._value_ if link.state is not None else None,
        iso(link.captured_at) if link.captured_at else None,
        capture.path if capture else None,
        capture.offset if capture else None,
        capture.length if capture else None,
        capture.record_id if capture else None,
        memento.url if memento else None,
        iso(memento.datetime) if memento else None,
    )
    tail = (evidence_kind(link), memento_offset_days(link, published))
    cells = [_csv_field(_text_cell(cell) if type(cell) is str else safe_cell(cell))
             for cell in row]
    return ("".join(cell + "," for cell in cells),
            "," + _csv_field(safe_cell(tail[0])) + "," + _csv_field(safe_cell(tail[1])) + "\r\n")
