"""Write a report's four files into its folder: the report package's only I/O.

Each file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a reader (or a crash) never sees a half-written report: either the old
file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from archiver.errors import ArchiveError
from archiver.report.model import Report
from archiver.report.render_csv import render_csv
from archiver.report.render_html import render_html
from archiver.report.render_json import render_json
from archiver.report.render_md import render_md

__all__ = ["REPORT_FILES", "write_reports"]

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
        ("report.json", render_json),
        ("report.html", render_html),
        ("report.md", render_md),
        # The csv module already writes \r\n; newline="" below keeps it from doubling.
        ("links.csv", render_csv),
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


def _write_atomic(target: Path, text: str) -> None:
    tmp_name = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", newline="", dir=target.parent,
            prefix=f".{target.name}.", suffix=".tmp", delete=False,
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(text)
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
