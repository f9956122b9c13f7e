"""The parsed documents of a large run kept on disk while it fetches.

    shelf = Shelf(directory)
    targets = shelf.put(outcomes, targets)   # the documents leave memory
    ...                                      # fetch (the workers fork here)
    shelf.restore(outcomes)                  # the documents come back, equal

A document of 100,000 footnotes is some 85 MB of small objects in the run's process, and
nothing reads it while the URLs are fetched: only the targets (``plan_targets``) and the
catalog's citations, both made before. Held there, it was shared with the worker processes
forked for fetching and half copied anyway: each URL the run's process looks up writes to
its string's page, and those strings sit among the document's objects. So the shelf writes
the documents, a few thousand footnotes at a time, to an unlinked temporary file and drops
them; it writes the targets too and makes them again once the documents are gone, so that
nothing of the parse keeps its memory, which the allocator then gives back to the system
(``_give_back``) before the workers are forked. After fetching, the documents are read back,
equal to what was parsed (``tests/test_docshelf.py``).

The file is unlinked from the start: a run killed while fetching leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import pickle
import tempfile
from collections.abc import Iterator, MutableSequence, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from archiver.errors import ArchiveError
from archiver.models import Claim, Document, Finding, Footnote, FootnoteRef, Target

if TYPE_CHECKING:
    from archiver.pipeline import SourceOutcome

__all__ = ["CHUNK", "Shelf"]

#: Footnotes, findings or targets per pickled chunk: what is held at once while writing or
#: reading (a few hundred KB), and large enough for pickle to be quick per item.
CHUNK = 4096


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _note_state(note: Footnote) -> tuple[Any, ...]:
    return (note.number, note.text, note.urls, note.line,
            tuple((c.footnote, c.text, c.line) for c in note.claims))


def _finding_state(f: Finding) -> tuple[Any, ...]:
    return (f.code, f.severity, f.message, f.footnote, f.line, f.url, f.suggestion)


class Shelf:
    """Documents (and a run's targets) written to an unlinked temporary file in
    ``directory`` (the run's reports folder: a disk it must be able to write, where a
    RAM-backed /tmp would keep them in memory after all)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._file: IO[bytes] | None = None
        # Per shelved outcome: its index in the list, the document's fields, and the
        # (offset, length) spans of its footnotes' and findings' chunks.
        self._shelved: list[tuple[int, tuple[str, str, str | None],
                                  list[tuple[int, int]], list[tuple[int, int]]]] = []

    def _write(self, items: list[Any]) -> tuple[int, int]:
        assert self._file is not None
        blob = pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
        offset = self._file.tell()
        self._file.write(blob)
        return offset, len(blob)

    def _read(self, span: tuple[int, int]) -> Any:
        """The items written at ``span``. Raises ``ArchiveError`` naming the folder when
        they cannot be read back whole (an I/O error, or the file cut short or changed)."""
        assert self._file is not None
        try:
            self._file.seek(span[0])
            blob = self._file.read(span[1])
            if len(blob) != span[1]:
                raise EOFError(f"{len(blob)} of {span[1]} bytes at offset {span[0]}")
            return pickle.loads(blob)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ArchiveError(f"{self._directory}: cannot read the run's temporary "
                               f"records: {detail}") from exc

    def put(self, outcomes: MutableSequence[SourceOutcome],
            targets: list[Target]) -> list[Target]:
        """Write every document of ``outcomes`` and replace it there with ``None`` (in
        place: the caller's list is the one that held them); empty ``targets`` (the caller's
        list) and return them made again, equal. Nothing else may hold a document or a
        target. Raises ``ArchiveError`` naming the folder when the file cannot be written."""
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(  # noqa: SIM115 (closed by restore)
                prefix=".archiver-documents-", dir=self._directory)
            for index, outcome in enumerate(outcomes):
                doc = outcome.document
                if doc is None:
                    continue
                notes = [self._write([_note_state(n) for n in part])
                         for part in _chunks(doc.footnotes)]
                findings = [self._write([_finding_state(f) for f in part])
                            for part in _chunks(doc.findings)]
                self._shelved.append((index, (doc.path, doc.format, doc.title), notes, findings))
                del doc
                outcomes[index] = replace(outcome, document=None)
            spans = [self._write([(t.url, tuple((r.source, r.number) for r in t.cited_by))
                                  for t in part]) for part in _chunks(targets)]
            self._file.flush()
        except OSError as exc:
            self.close()
            raise ArchiveError(f"{self._directory}: cannot write the run's temporary "
                               f"records: {exc.strerror or exc}") from exc
        targets.clear()
        _give_back()
        try:
            return [Target(url, tuple(FootnoteRef(*r) for r in cited_by))
                    for span in spans for url, cited_by in self._read(span)]
        except ArchiveError:
            self.close()
            raise

    def restore(self, outcomes: MutableSequence[SourceOutcome]) -> None:
        """Put each document back into ``outcomes`` (equal to the one shelved), and close
        the file."""
        try:
            for index, (path, fmt, title), notes, findings in self._shelved:
                footnotes = tuple(
                    Footnote(number, text, urls, line, tuple(Claim(*c) for c in claims))
                    for span in notes for number, text, urls, line, claims in self._read(span))
                found = tuple(Finding(*f) for span in findings for f in self._read(span))
                outcomes[index] = replace(outcomes[index], document=Document(
                    path, fmt, footnotes, found, title))
        finally:
            self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _give_back() -> None:
    """Return the memory just freed to the system: Python's allocator unmaps its arenas
    once they are empty; the C allocator keeps what it freed until asked (glibc)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
