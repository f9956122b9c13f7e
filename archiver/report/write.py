"""Write a report's four files into its folder: the report package's only I/O.

Each file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a reader (or a crash) never sees a half-written report: either the old
file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from archiver.errors import ArchiveError
from archiver.models import LinkRecord
from archiver.report.model import Report, screenshot_files
from archiver.report.render_csv import render_csv_chunks
from archiver.report.render_html import render_html_chunks
from archiver.report.render_json import render_json_chunks
from archiver.report.render_md import render_md_chunks
from archiver.spool import Spool

__all__ = ["REPORT_FILES", "write_reports", "write_screenshots"]

REPORT_FILES = ("report.json", "report.html", "report.md", "links.csv")


def write_reports(report: Report, folder: Path) -> list[Path]:
    """Render ``report`` and write ``report.json``, ``report.html``, ``report.md`` and
    ``links.csv`` into ``folder`` (created if missing), atomically, UTF-8.

    Returns the paths written, in that order. Raises ``ArchiveError`` naming the file when
    the folder cannot be created or a file cannot be written; files already replaced stay
    complete.

    The four are rendered side by side, each into its temporary file as its pieces come, so
    that only a piece of each is in memory at once; when the report's link records or claim
    support are spooled to disk (``Spool``), the renderer that has read least of them goes
    next, so that they all read a chunk while it is still in the spool's memory: a chunk
    is read from disk about once per pass over the records a file's sections make (JSON
    reads the claim support after the links, Markdown the links after the claim support:
    two passes over each), rather than once per file and pass.
    """
    folder = Path(folder)
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
    targets = [folder / name for name, _ in renderers]
    _write_side_by_side(targets, [render(report) for _, render in renderers],
                        [s for s in (report.links, report.support) if isinstance(s, Spool)])
    return targets


def _write_side_by_side(targets: list[Path], texts: list[Iterator[str]],
                        spools: list[Spool[Any]]) -> None:
    """Write each of ``texts`` (pieces, in order) to its target in ``targets`` atomically,
    taking the next piece from the text whose last read of ``spools`` is furthest behind
    (the first one left, when none reads them); then move the files into place in order."""
    tmps: list[IO[str]] = []
    moved = 0
    current = targets[0]
    try:
        for target in targets:
            current = target
            tmps.append(tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below)
                "w", encoding="utf-8", newline="", dir=target.parent,
                prefix=f".{target.name}.", suffix=".tmp", delete=False))
        position = [-1] * len(texts)
        left = list(range(len(texts)))
        while left:
            at = min(left, key=position.__getitem__) if spools else left[0]
            for spool in spools:
                spool.last_read = -1
            # The file a failure is named by: the one this piece is for (a spool's own read
            # failure is an ArchiveError naming the spool's folder, and passes unchanged).
            current = targets[at]
            piece = next(texts[at], None)
            if piece is None:
                left.remove(at)
                continue
            tmps[at].write(piece)
            read = max(spool.last_read for spool in spools) if spools else -1
            if read >= 0:
                position[at] = read
        for target, tmp in zip(targets, tmps, strict=True):
            current = target
            tmp.flush()
            os.fsync(tmp.fileno())
            tmp.close()
            os.chmod(tmp.name, 0o644)
            os.replace(tmp.name, target)
            moved += 1
    except OSError as exc:
        raise ArchiveError(f"{current}: cannot write the report: {exc.strerror or exc}") \
            from exc
    finally:
        for tmp in tmps[moved:]:  # not moved into place: an error stopped the writing
            with contextlib.suppress(OSError):
                tmp.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp.name)


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
