"""Write a report's four files into its folder: the report package's only I/O.

Each file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a reader (or a crash) never sees a half-written report: either the old
file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from archiver.errors import ArchiveError
from archiver.models import LinkRecord
from archiver.report.model import Report, screenshot_files
from archiver.report.render_csv import render_csv_chunks
from archiver.report.render_html import render_html_chunks
from archiver.report.render_json import render_json_chunks
from archiver.report.render_md import render_md_chunks

__all__ = ["REPORT_FILES", "write_reports", "write_screenshots"]

REPORT_FILES = ("report.json", "report.html", "report.md", "links.csv")


def write_reports(report: Report, folder: Path) -> list[Path]:
    """Render ``report`` and write ``report.json``, ``report.html``, ``report.md`` and
    ``links.csv`` into ``folder`` (created if missing), atomically, UTF-8.

    Returns the paths written, in that order. Raises ``ArchiveError`` naming the file when
    the folder cannot be created or a file cannot be written; files already replaced stay
    complete.
    """
    folder = Path(folder)
    # Rendered one at a time, so that only one file's text is in memory at once.
    renderers = (
        ("report.json", render_json_chunks),
        ("report.html", render_html_chunks),
        ("report.md", render_md_chunks),
        # The csv module already writes \r\n; newline="" below keeps it from doubling.
        ("links.csv", render_csv_chunks),
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"{folder}: cannot create the report folder: {exc.strerror or exc}") \
            from exc
    written = []
    for name, render in renderers:
        target = folder / name
        _write_atomic(target, render(report))
        written.append(target)
    return written


# The thumbnail is the top of the page, this many pixels tall (a screen and a bit).
THUMBNAIL_ROWS = 1200


def write_screenshots(links: Iterable[LinkRecord], folder: Path,
                      root: Path) -> list[Path]:
    """Write each browser capture's screenshot (read from its WARC record under ``root``)
    and its top as a thumbnail into ``folder/screenshots/``, where ``report.html`` shows
    them, so the report opens offline. Files already there are kept (same record, same
    bytes). Raises ``ArchiveError`` when a record cannot be read or a file written."""
    from archiver.warc import read_record

    written = []
    for link in links:
        if link.screenshot is None:
            continue
        # Imported for the first screenshot: with it come httpx and the fetcher, which a
        # report without browser captures never needs.
        from archiver.browse import crop_png

        full, top = (folder / name for name in screenshot_files(link.screenshot))
        if full.exists() and top.exists():
            continue
        png = read_record(root, link.screenshot).payload
        try:
            full.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"{full.parent}: cannot create the folder: "
                               f"{exc.strerror or exc}") from exc
        _write_atomic(full, png)
        _write_atomic(top, crop_png(png, THUMBNAIL_ROWS))
        written += [full, top]
    return written


def _write_atomic(target: Path, text: str | bytes | Iterable[str]) -> None:
    """Write ``text`` (or its pieces, in order) to ``target`` atomically."""
    tmp_name = None
    try:
        with tempfile.NamedTemporaryFile(
            "wb" if isinstance(text, bytes) else "w",
            encoding=None if isinstance(text, bytes) else "utf-8",
            newline=None if isinstance(text, bytes) else "", dir=target.parent,
            prefix=f".{target.name}.", suffix=".tmp", delete=False,
        ) as tmp:
            tmp_name = tmp.name
            if isinstance(text, str | bytes):
                tmp.write(text)
            else:
                for piece in text:
                    tmp.write(piece)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except OSError as exc:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        raise ArchiveError(f"{target}: cannot write the report: {exc.strerror or exc}") \
            from exc
