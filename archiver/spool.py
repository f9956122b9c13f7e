"""A long sequence of records kept on disk, a chunk in memory at a time.

    spool = Spool(records)          # or Spool() and spool.append(record) / spool.extend(...)
    len(spool), spool[n], iter(spool)

A run over a document of 100,000 footnotes makes as many link records and claim supports;
held at once they are most of what the run's process grows by after fetching. A ``Spool``
holds the first few thousand in memory; past that it pickles them, ``chunk`` at a time,
into an unlinked temporary file and reads a chunk back
when asked for one of its items, keeping the ``kept`` most recently read chunks: reading in
order (what the renderers do) unpickles each chunk once. The items must pickle; they come
back equal, not identical (frozen records, so nothing can tell them apart but ``is``).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar, overload

from archiver.errors import ArchiveError

__all__ = ["CHUNK", "HELD", "Spool"]

T = TypeVar("T")

#: Items per pickled chunk: large enough for pickle to be quick per item, small enough that
#: a few chunks in memory are nothing next to the whole.
CHUNK = 512
#: Items held in memory before any is written: a spool of a few thousand costs nothing more
#: than a list (pickled and read back, each item costs some 20-50 µs more per reading).
HELD = 4096

#: ``os.pread`` where the system has it (not Windows).
_pread = getattr(os, "pread", None)


class Spool(Sequence[T]):
    """Items appended in order, held in memory up to ``held`` of them (default ``HELD``),
    and past that stored in pickled chunks of ``chunk`` items (default ``CHUNK``) in a
    temporary file, the ``kept`` most recently read chunks in memory; a ``Sequence`` of
    them."""

    def __init__(self, items: Iterable[T] = (), *, chunk: int | None = None,
                 kept: int = 4, held: int | None = None,
                 directory: Path | None = None) -> None:
        # Defaults read when made: tests make them small.
        chunk = CHUNK if chunk is None else chunk
        held = HELD if held is None else held
        if chunk < 1 or kept < 1 or held < 0:
            raise ValueError("chunk and kept must be at least 1, held at least 0")
        self._chunk, self._kept, self._held = chunk, kept, max(held, chunk)
        # Where the file goes (default: the system's temporary folder). The run passes its
        # reports folder: a disk it must be able to write, where a RAM-backed /tmp would
        # hold the "spooled" records in memory after all.
        self._directory = directory
        self._file: IO[bytes] | None = None
        self._spans: list[tuple[int, int]] = []  # each written chunk's (offset, length)
        self._pending: list[T] = []  # the items not written (the last chunk, once any is)
        self._cache: OrderedDict[int, list[T]] = OrderedDict()
        #: The number of the chunk last read from the file or the cache (-1: none yet), for a
        #: caller that moves several readers along together (``report.write``).
        self.last_read = -1
        self.extend(items)

    def append(self, item: T) -> None:
        self._pending.append(item)
        if len(self._pending) >= (self._chunk if self._spans else self._held):
            self._flush()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def _flush(self) -> None:
        """Write the pending items' whole chunks. Raises ``ArchiveError`` naming the folder
        when the file cannot be made or written (a full disk)."""
        try:
            if self._file is None:
                if self._directory is not None:
                    self._directory.mkdir(parents=True, exist_ok=True)
                # Held open for the spool's life (closed by close() or when collected).
                self._file = tempfile.TemporaryFile(  # noqa: SIM115
                    prefix=".archiver-spool-", dir=self._directory)
            self._file.seek(0, 2)
            pending, size = self._pending, self._chunk
            whole = len(pending) - len(pending) % size
            for start in range(0, whole, size):
                blob = pickle.dumps(pending[start:start + size], pickle.HIGHEST_PROTOCOL)
                offset = self._file.tell()
                self._file.write(blob)
                self._spans.append((offset, len(blob)))
            self._file.flush()
        except OSError as exc:
            raise ArchiveError(f"{self._where()}: cannot write the run's temporary records: "
                               f"{exc.strerror or exc}") from exc
        self._pending = pending[whole:]

    def _where(self) -> Path:
        """The folder the spool's file is in, for error messages."""
        return self._directory or Path(tempfile.gettempdir())

    def _read(self, number: int) -> list[T]:
        """Chunk ``number`` (written), from the cache or the file. Raises ``ArchiveError``
        naming the folder when the file cannot be read back whole (an I/O error, or the file
        cut short or changed under the run): the records are lost, and nothing built from
        them would be complete."""
        self.last_read = number
        cache = self._cache
        items = cache.get(number)
        if items is not None:
            cache.move_to_end(number)
            return items
        assert self._file is not None
        offset, length = self._spans[number]
        try:
            if _pread is not None:
                # At its offset, leaving the file's position alone: a process forked to read
                # the spool too (``report.write``) shares that position with this one.
                blob = _pread(self._file.fileno(), length, offset)
            else:
                self._file.seek(offset)
                blob = self._file.read(length)
            if len(blob) != length:
                raise EOFError(f"chunk {number}: {len(blob)} of {length} bytes")
            items = pickle.loads(blob)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ArchiveError(f"{self._where()}: cannot read the run's temporary records "
                               f"back: {detail}") from exc
        cache[number] = items
        if len(cache) > self._kept:
            cache.popitem(last=False)
        return items

    def __len__(self) -> int:
        return len(self._spans) * self._chunk + len(self._pending)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            return [self[n] for n in range(*index.indices(len(self)))]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("spool index out of range")
        number, at = divmod(index, self._chunk)
        if number >= len(self._spans):
            return self._pending[index - len(self._spans) * self._chunk]
        return self._read(number)[at]

    def __iter__(self) -> Iterator[T]:
        # Chunk by chunk, through the cache: a reader that looks items up by index while it
        # iterates (the renderers) finds the current chunk there.
        for number in range(len(self._spans)):
            yield from self._read(number)
        yield from list(self._pending)

    def handoff(self) -> tuple[int, tuple[tuple[int, int], ...], int, bytes]:
        """What ``Spool.reader`` needs to read this spool's items in another process: its
        file's descriptor (-1 when none is written; to be passed on open, e.g. in
        ``subprocess.Popen``'s ``pass_fds``), the written chunks' spans, the chunk size, and
        the items not written, pickled. The spool must not grow while the other reads."""
        return (-1 if self._file is None else self._file.fileno(), tuple(self._spans),
                self._chunk, pickle.dumps(self._pending, pickle.HIGHEST_PROTOCOL))

    @classmethod
    def reader(cls, fd: int, spans: Sequence[tuple[int, int]], chunk: int, pending: bytes,
               *, kept: int = 4) -> Spool[Any]:
        """The spool that ``handoff`` gave, read from ``fd`` (this process's descriptor of
        its file, closed with the spool; -1: none), at offsets (its position is shared with
        the spool it came from)."""
        spool: Spool[Any] = cls(chunk=chunk, kept=kept, held=0)
        if fd >= 0:
            spool._file = open(fd, "rb", closefd=True)  # noqa: SIM115 (closed by close())
        spool._spans = list(spans)
        spool._pending = pickle.loads(pending)
        return spool

    def close(self) -> None:
        """Drop the file and every item (the spool is empty after)."""
        if self._file is not None:
            self._file.close()
        self._file, self._spans, self._pending = None, [], []
        self._cache.clear()

    def __repr__(self) -> str:
        return f"Spool({len(self)} items, {len(self._spans)} chunk(s) on disk)"
