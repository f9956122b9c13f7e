"""Write a report's four files into its folder: the report package's only I/O.

Each file is written to a temporary file in the same folder and moved into place with
``os.replace``, so a reader (or a crash) never sees a half-written report: either the old
file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from archiver.errors import ArchiveError
from archiver.models import LinkRecord
from archiver.report.model import Report, screenshot_files
from archiver.report.render_csv import render_csv_chunks
from archiver.report.render_html import render_html_chunks
from archiver.report.render_json import (
    SECTIONS,
    Section,
    render_json_around,
    render_json_chunks,
    section_pieces,
)
from archiver.report.render_md import render_md_chunks
from archiver.spool import HELD, Spool

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

    A report of ``TWO_AT`` to ``TWO_UP_TO`` links is rendered by two processes at once where
    the system can fork (``_write_in_two``): the same bytes, in about half the wall time on a
    machine with a second core free. Past ``TWO_UP_TO``, with its link records spooled, a
    helper process writes report.json's link records and claim support while this one
    renders the other files (``_Helper``), and report.json is written last, around them.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiveError(f"{folder}: cannot create the report folder: {exc.strerror or exc}") \
            from exc
    targets = [folder / name for name, _ in _RENDERERS]
    spools = [s for s in (report.links, report.support) if isinstance(s, Spool)]
    tmps: list[IO[str]] = []
    moved = 0
    current = targets[0]
    helper = None
    try:
        for target in targets:
            current = target
            tmps.append(_temporary(target))
        if TWO_AT <= len(report.links) <= TWO_UP_TO and hasattr(os, "fork"):
            _write_in_two(report, targets, tmps, spools)
        elif len(report.links) > TWO_UP_TO and (helper := _Helper.start(report, folder)):
            _write_side_by_side(targets[1:], tmps[1:],
                                [render(report) for _, render in _RENDERERS[1:]], spools)
            _write_json_around(report, targets[0], tmps[0], helper)
        else:
            _write_side_by_side(targets, tmps, [render(report) for _, render in _RENDERERS],
                                spools)
        for target, tmp in zip(targets, tmps, strict=True):
            current = target
            os.chmod(tmp.name, 0o644)
            os.replace(tmp.name, target)
            moved += 1
    except _Failed as failed:
        error = failed.error
        raise ArchiveError(f"{failed.target}: cannot write the report: "
                           f"{error.strerror or error}") from error
    except OSError as exc:
        raise ArchiveError(f"{current}: cannot write the report: {exc.strerror or exc}") \
            from exc
    finally:
        if helper is not None:
            helper.close()
        for tmp in tmps[moved:]:  # not moved into place: an error stopped the writing
            with contextlib.suppress(OSError):
                tmp.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp.name)
    return targets


_RENDERERS: tuple[tuple[str, Callable[[Report], Iterator[str]]], ...] = (
    ("report.json", render_json_chunks),
    ("report.html", render_html_chunks),
    ("report.md", render_md_chunks),
    # Its rows end in \r\n, as the csv module writes them; newline="" in _temporary keeps
    # it from doubling.
    ("links.csv", render_csv_chunks),
)

#: Links from which a report's files are rendered by two processes (``_write_in_two``):
#: below, a fork (a few ms) costs more than the half of the rendering it saves. Up to
#: ``TWO_UP_TO``: past it, the run keeps its records on disk to stay small (``Spool``), and a
#: second process would copy whatever of the first one's memory it reads (the document's
#: footnotes and claims, tens of MB at 100,000 links): reading an object writes its
#: reference count, and a page either process writes to after the fork is then held twice,
#: whichever of the two renders from it.
TWO_AT = 256
TWO_UP_TO = HELD
#: The files the forked process renders, by position in ``_RENDERERS``: HTML and Markdown,
#: about as long to render as JSON and CSV (``bench/report_bench.py`` at 2,000 links: 81 ms
#: against 82 ms, on a machine where it was 84 against 113 ms before report.json and
#: links.csv wrote their records field by field).
_FORKED = (1, 2)


class _Failed(Exception):
    """Writing ``target`` failed with ``error``."""

    def __init__(self, target: Path, error: OSError) -> None:
        super().__init__(target, error)
        self.target, self.error = target, error


def _temporary(target: Path) -> IO[str]:
    """A temporary file beside ``target``, left on disk when closed (moved into place)."""
    return tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", dir=target.parent,
        prefix=f".{target.name}.", suffix=".tmp", delete=False)


def _write_in_two(report: Report, targets: list[Path], tmps: list[IO[str]],
                  spools: list[Spool[Any]]) -> None:
    """Fill ``tmps`` (``_write_side_by_side``) with the files of ``_FORKED`` rendered in a
    forked process and the others in this one, at the same time. The child only renders and
    writes its files (it shares no other file with this process but the spools, which it
    reads at offsets: ``Spool``); when it fails in any way (it exits 1), its files are
    rendered again here, into new temporary files, so that an error is raised here as
    without the fork. Raises ``_Failed`` as ``_write_side_by_side`` does."""
    import signal

    from archiver.shards import die_with_parent

    ours = [n for n in range(len(targets)) if n not in _FORKED]
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: nothing it raises may unwind into the caller's code
        code = 1
        try:
            die_with_parent(parent)  # a run killed (kill -9) takes its renderer with it
            with contextlib.suppress(ValueError):  # (only the main thread may set them)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.set_wakeup_fd(-1)
            _write_side_by_side([targets[n] for n in _FORKED], [tmps[n] for n in _FORKED],
                                [_RENDERERS[n][1](report) for n in _FORKED], spools)
            code = 0
        finally:
            os._exit(code)
    reaped = False
    started = time.monotonic()
    try:
        _write_side_by_side([targets[n] for n in ours], [tmps[n] for n in ours],
                            [_RENDERERS[n][1](report) for n in ours], spools)
        status = _reaped(pid, max(_HELPER_PATIENCE_MIN,
                                  _HELPER_PATIENCE * (time.monotonic() - started)))
        reaped = True
    finally:
        if not reaped:  # this process failed: the child's files are not wanted
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
    for n in _FORKED:
        # Closed here without a byte written by this process: the child wrote through
        # its own copy of the descriptor.
        tmps[n].close()
    if status is None or os.waitstatus_to_exitcode(status) != 0:
        again = []
        for n in _FORKED:
            with contextlib.suppress(OSError):
                os.unlink(tmps[n].name)
            tmps[n] = _temporary(targets[n])
            again.append(n)
        _write_side_by_side([targets[n] for n in again], [tmps[n] for n in again],
                            [_RENDERERS[n][1](report) for n in again], spools)


def _reaped(pid: int, patience: float) -> int | None:
    """The wait status of child ``pid`` once it has ended; ``None`` when it has not ended
    within ``patience`` seconds (a child stopped or stuck), after it is killed and reaped."""
    import select
    import signal

    deadline = time.monotonic() + patience
    try:  # Linux: a descriptor readable when the child ends, waited for with a timeout
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = -1
    try:
        pause = 0.001
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if handle >= 0:
                select.select([handle], [], [], left)
            else:  # elsewhere, polled: a few milliseconds late at most
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.005)
    finally:
        if handle >= 0:
            os.close(handle)


class _Helper:
    """A fresh Python process writing report.json's ``SECTIONS`` of a report whose link
    records (and claim support) are spooled, each into an unlinked temporary file, while
    this process renders the other files. Not a fork: it shares no memory with this process
    (a fork would hold the document twice, ``TWO_UP_TO``), only the spools' files, which
    it reads at offsets (``Spool.handoff``); it costs a new interpreter and its imports
    (~0.15 s of CPU) and holds ~35-40 MB (PSS), whatever the report's size (at 20,000 and
    at 100,000 links alike). It dies with this process (``die_with_parent``).
    Whatever goes wrong in it, this process writes the sections itself (``section``)."""

    def __init__(self, sections: dict[str, Spool[Any]], files: dict[str, IO[bytes]],
                 process: subprocess.Popen[bytes]) -> None:
        self.sections, self._files, self._process = sections, files, process
        self._done: bool | None = None
        self._started = time.monotonic()

    @classmethod
    def start(cls, report: Report, folder: Path) -> _Helper | None:
        """The helper for ``report``'s sections, started; ``None`` where the link records
        are not spooled or no process can be started (the caller writes them itself)."""
        records: dict[str, Sequence[Any]] = {"links": report.links, "support": report.support}
        sections: dict[str, Spool[Any]] = {}
        for name in SECTIONS:
            spooled = records[name]
            if isinstance(spooled, Spool):
                sections[name] = spooled
        if "links" not in sections or os.name != "posix" or not sys.executable:
            return None
        files: dict[str, IO[bytes]] = {}
        try:
            for name in sections:
                files[name] = tempfile.TemporaryFile(  # noqa: SIM115 (closed by close())
                    dir=folder, prefix=f".{name}-")
            handoffs = {name: spool.handoff() for name, spool in sections.items()}
            job = {"parent": os.getpid(), "path": sys.path,
                   "published": report.source.published,
                   "sections": {name: (handoffs[name], files[name].fileno())
                                for name in sections}}
            passed = [fd for fd, *_ in handoffs.values() if fd >= 0]
            process = subprocess.Popen(
                [sys.executable, "-c", _HELPER_MAIN], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=[*passed, *(f.fileno() for f in files.values())])
        except OSError:
            for file in files.values():
                file.close()
            return None
        helper = cls(sections, files, process)
        try:
            assert process.stdin is not None
            with process.stdin:
                pickle.dump(job, process.stdin, pickle.HIGHEST_PROTOCOL)
        except OSError:  # it died before reading its job: ``section`` writes them here
            pass
        return helper

    def section(self, name: str) -> IO[bytes] | None:
        """Section ``name``'s text (UTF-8, from its start), once the helper has written it
        (waiting for it); ``None`` when it failed in any way, or has not finished within
        ``_HELPER_PATIENCE`` times as long as this process has worked beside it (at least
        ``_HELPER_PATIENCE_MIN`` seconds): a helper stopped or stuck is then killed, and its
        sections are written here, so that a run never waits on it for ever."""
        if self._done is None:
            worked = time.monotonic() - self._started
            try:
                code = self._process.wait(max(_HELPER_PATIENCE_MIN, _HELPER_PATIENCE * worked))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    self._process.kill()
                self._process.wait()
                code = -1
            self._done = code == 0
        if not self._done:
            return None
        file = self._files[name]
        file.seek(0)
        return file

    def close(self) -> None:
        """Stop the helper if it still runs, and drop its files."""
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.kill()
            self._process.wait()
        for file in self._files.values():
            file.close()


#: How long ``_Helper.section`` waits for the helper: its share of the work is about half
#: of this process's (10.7 s against 4.7 s of CPU at 100,000 links), so four times as long
#: as this process has worked beside it is ample on a busy machine; at least half a minute.
_HELPER_PATIENCE = 4.0
_HELPER_PATIENCE_MIN = 30.0

# The helper's program: the job comes pickled on stdin; the archiver is imported from where
# this process found it.
_HELPER_MAIN = """\
import pickle, sys
job = pickle.load(sys.stdin.buffer)
sys.path[:0] = job["path"]
from archiver.report.write import _helper_main
_helper_main(job)
"""


def _helper_main(job: dict[str, Any]) -> None:
    """The helper (``_Helper``): write each section of ``job`` into its file."""
    import signal

    from archiver.shards import die_with_parent

    die_with_parent(job["parent"])  # a run killed (kill -9) takes its helper with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's
    for name, (handoff, fd) in job["sections"].items():
        spool = Spool.reader(*handoff, kept=1)  # read in order, each chunk once
        with open(fd, "w", encoding="utf-8", newline="") as out:
            for piece in section_pieces(name, spool, job["published"]):
                out.write(piece)
        spool.close()


def _write_json_around(report: Report, target: Path, tmp: IO[str], helper: _Helper) -> None:
    """Write report.json into ``tmp`` (for ``target``, named in an error) around the
    sections ``helper`` writes, copied in as they come (written here when it failed); then
    flush, sync and close it. Raises ``_Failed``."""
    try:
        for piece in render_json_around(report, frozenset(helper.sections)):
            if not isinstance(piece, Section):
                tmp.write(piece)
                continue
            written = helper.section(piece)
            if written is None:
                for text in section_pieces(piece, helper.sections[piece],
                                           report.source.published):
                    tmp.write(text)
                continue
            tmp.flush()
            shutil.copyfileobj(written, tmp.buffer, 1 << 20)  # type: ignore[attr-defined]
        tmp.flush()
        os.fsync(tmp.fileno())
        tmp.close()
    except OSError as exc:
        raise _Failed(target, exc) from exc


def _write_side_by_side(targets: list[Path], tmps: list[IO[str]], texts: list[Iterator[str]],
                        spools: list[Spool[Any]]) -> None:
    """Write each of ``texts`` (pieces, in order) to its file in ``tmps`` (for its target
    in ``targets``, named in an error), taking the next piece from the text whose last read
    of ``spools`` is furthest behind (the first one left, when none reads them); then flush,
    sync and close the files. Raises ``_Failed`` (the target, the ``OSError``)."""
    current = targets[0]
    try:
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
    except OSError as exc:
        raise _Failed(current, exc) from exc


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
