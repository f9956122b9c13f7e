"""The only writer of ``archive/``: WARC files, their rotation and recovery, and the CDXJ index.

Files are WARC/1.1, one gzip member per record, named
``{prefix}-{YYYYmmddHHMMSS}-{run_id}-{serial:05d}.warc.gz``. Each starts with a ``warcinfo``
record. A file being written carries an extra ``.open`` suffix and holds an exclusive
``flock``; ``close()`` fsyncs it, renames it and adds its records to ``index.cdxj``.

Records are assembled in a spool first and appended to the file in one go, so the file only
ever grows by whole gzip members. What crashes can leave behind, and what happens to it:

* ``kill -9`` (or a power cut) mid-append leaves a ``.open`` file whose last member is cut.
  The next ``WarcWriter`` on the folder (or ``recover()``) finds every ``.open`` file that no
  live writer holds, truncates it after its last complete member, renames it and indexes it.
  A file with no complete record at all (not even its ``warcinfo``) is moved to
  ``archive/quarantine/`` rather than deleted, so nothing is destroyed silently.
* A full disk (or any write error): the half-written member is cut off again, the file is
  closed and renamed (it is valid), and ``ArchiveError`` names it. The writer refuses further
  writes.

Responses are stored as they came over the wire: the status line and headers as received
(HTTP/2 answers are written with an ``HTTP/1.1`` status line, as other crawlers do, since WARC
readers only parse HTTP/1.x heads) and the body exactly as sent, ``Content-Encoding`` intact.
One exception, because the HTTP client removes chunked framing before the body is seen: a
``Transfer-Encoding`` header is stored as ``X-Archive-Orig-Transfer-Encoding`` so that the
stored head agrees with the stored (de-chunked) body for every reader.

A payload seen before (in this run, or earlier through ``find_payload``) is written as a
``revisit`` record (identical-payload-digest profile) that points at the original.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import tempfile
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, NamedTuple

from cdxj_indexer.main import CDXJIndexer, write_cdx_index
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser
from warcio.warcwriter import WARCWriter

from archiver import __version__
from archiver.errors import ArchiveError
from archiver.models import WarcRef, isoformat, utcnow

__all__ = [
    "INDEX_NAME",
    "Exchange",
    "IndexEntry",
    "PayloadSeen",
    "Recovered",
    "StoredRecord",
    "WarcWriter",
    "lookup",
    "read_record",
    "rebuild_index",
    "recover",
    "redact_request_head",
]

INDEX_NAME = "index.cdxj"
OPEN_SUFFIX = ".open"
QUARANTINE = "quarantine"
REDACTED_HEADERS = frozenset({b"cookie", b"authorization", b"proxy-authorization"})
_SPOOL_IN_MEMORY = 1024 * 1024
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class PayloadSeen:
    """A payload already archived: the record holding it, its URL and capture time."""

    record_id: str
    target_uri: str
    date: datetime


@dataclass(frozen=True)
class Exchange:
    """The records written for one HTTP exchange. ``response`` is a revisit when ``revisit``."""

    request: WarcRef
    response: WarcRef
    payload_digest: str
    revisit: bool
    response_sha256: str = ""  # SHA-256 (hex) of the response record's gzip member


@dataclass(frozen=True)
class IndexEntry:
    """One line of ``index.cdxj``; ``filename`` is relative to the archive folder."""

    urlkey: str
    timestamp: str
    url: str
    mime: str
    status: int | None
    digest: str
    length: int
    offset: int
    filename: str


class StoredRecord(NamedTuple):
    """A record read back: WARC headers, HTTP headers (empty if none), raw payload bytes."""

    warc_headers: list[tuple[str, str]]
    http_headers: list[tuple[str, str]]
    payload: bytes


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` did with one leftover ``.open`` file."""

    path: Path
    action: str  # "repaired" or "quarantined"
    records: int
    dropped_bytes: int


def payload_digest(stream: IO[bytes]) -> str:
    """``sha256:HEX`` of the stream from its current position (restored afterwards).

    SHA-256 in lowercase hex, as Browsertrix writes it (and as ``sha256sum`` prints it, so an
    investigator can compare by hand); warcio, pywb and cdxj-indexer accept it. Records
    written before carry ``sha1:BASE32`` and stay readable: readers parse the label."""
    start = stream.tell()
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(_COPY_CHUNK), b""):
        digest.update(chunk)
    stream.seek(start)
    return "sha256:" + digest.hexdigest()


class _Sha256Digester:
    """warcio's digester interface (``update``, ``str``) giving ``sha256:HEX``."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def __str__(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class _Sha256WARCWriter(WARCWriter):
    """warcio's writer with SHA-256 block (and payload) digests instead of SHA-1."""

    @staticmethod
    def _create_digester() -> _Sha256Digester:  # type: ignore[override]
        return _Sha256Digester()


def redact_request_head(head: bytes) -> bytes:
    """The request head with ``Cookie``/``Authorization``/``Proxy-Authorization`` values
    replaced, so that credentials never reach a WARC file."""
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines[1:], start=1):
        name, sep, _ = line.partition(b":")
        if sep and name.strip().lower() in REDACTED_HEADERS:
            lines[i] = name + b": [redacted]"
    return b"\r\n".join(lines)


def _wire_head(head: bytes) -> bytes:
    """Rename ``Transfer-Encoding`` (see the module docstring) and ensure the blank line."""
    if not head.endswith(b"\r\n\r\n"):
        head = head.rstrip(b"\r\n") + b"\r\n\r\n"
    return re.sub(rb"(?im)^transfer-encoding:", b"X-Archive-Orig-Transfer-Encoding:", head)


class _RawHead(StatusAndHeaders):
    """Parsed HTTP head that keeps its original bytes: warcio would otherwise re-serialise it
    (and %-encode non-ASCII values), and the archive must hold what was received."""

    def __init__(self, raw: bytes, verbs: Sequence[str]) -> None:
        parsed = StatusAndHeadersParser(list(verbs), verify=False).parse(io.BytesIO(raw))
        super().__init__(parsed.statusline, parsed.headers, parsed.protocol)
        self.headers_buff = raw

    def compute_headers_buffer(self, header_filter: object = None) -> None:
        return None  # keep the bytes as received


_RESPONSE_VERBS = ("HTTP/1.0", "HTTP/1.1")
_REQUEST_VERBS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


class _Sink:
    """Append-only access to one file descriptor; the seam where write errors appear."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        return os.write(self.fd, data)

    def append(self, stream: IO[bytes]) -> None:
        stream.seek(0)
        for chunk in iter(lambda: stream.read(_COPY_CHUNK), b""):
            view = memoryview(chunk)
            while view:
                written = self.write(view)
                self.size += written
                view = view[written:]

    def cut(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        self.size = size

    def close(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class WarcWriter:
    """Writes captures into rotating WARC files under ``archive_dir``; use as a context manager.

    ``root`` is the config's folder: ``WarcRef.path`` values are relative to it.
    ``find_payload(digest)`` tells the writer about payloads archived by earlier runs (the
    pipeline answers it from the catalog). ``clock`` gives the time used in file names and the
    ``warcinfo`` record. Opening the writer first recovers leftover ``.open`` files.
    Thread-safe: calls are serialised by a lock, so the fetcher may write from worker threads.
    """

    def __init__(
        self,
        archive_dir: Path,
        *,
        root: Path,
        run_id: str,
        max_size: int = 1 << 30,
        prefix: str = "archiver",
        find_payload: Callable[[str], PayloadSeen | None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", run_id):
            raise ArchiveError(f"run id {run_id!r}: only letters, digits, '.', '_' and '-'")
        self.archive_dir = Path(archive_dir)
        self.root = Path(root)
        self.run_id = run_id
        self.max_size = max_size
        self.prefix = prefix
        self.find_payload = find_payload
        self.clock = clock
        self.recovered: list[Recovered] = []
        self.closed_files: list[Path] = []
        self._seen: dict[str, PayloadSeen] = {}
        self._sink: _Sink | None = None
        self._serial = 0
        self._broken: str | None = None
        self._lock = threading.Lock()
        self.member_sha256: list[str] = []  # of the records of the last append (under lock)
        # Tells a memento copied from another web archive (url, response head) → (original
        # URL, memento datetime); such records are stored as pywb stores them (see
        # write_exchange). Set by the caller that copies mementos.
        self.from_archive: Callable[[str, bytes], tuple[str, datetime] | None] | None = None

    # ── lifecycle ────────────────────────────────────────────────────────────

    def __enter__(self) -> WarcWriter:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the folder and recover leftovers; the first file opens on the first write."""
        try:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"{self.archive_dir}: cannot create archive folder: "
                               f"{exc.strerror or exc}") from exc
        self.recovered = recover(self.archive_dir)

    def close(self) -> None:
        """Finish the current file: fsync, rename without ``.open``, index it."""
        with self._lock:
            self._finish()

    @property
    def current_path(self) -> Path | None:
        return self._sink.path if self._sink else None

    # ── records ──────────────────────────────────────────────────────────────

    def write_exchange(
        self,
        *,
        url: str,
        request_head: bytes,
        response_head: bytes,
        body: IO[bytes],
        remote_ip: str | None,
        captured_at: datetime,
        truncated: str | None = None,
    ) -> Exchange:
        """Write the request and response (or revisit) records of one exchange.

        ``body`` is read from its current position to the end. Raises ``ArchiveError`` when
        the file cannot be written.
        """
        body.seek(0, os.SEEK_END)
        end = body.tell()
        body.seek(0)
        length = end
        digest = payload_digest(body)
        date = isoformat(captured_at)
        request_id, response_id = _record_id(), _record_id()
        seen = None
        # A memento from another archive is stored as pywb stores it: WARC-Target-URI the
        # original URL, WARC-Date the memento's datetime, WARC-Source-URI the address it was
        # copied from, WARC-Creation-Date when we copied it. Replay tools then list it
        # under the cited URL at its own date. Never deduplicated (either way).
        source = None
        origin = self.from_archive(url, response_head) if self.from_archive else None
        if origin is not None:
            source, url, date = url, origin[0], isoformat(origin[1])
        if truncated is None and length > 0 and source is None:
            seen = self._seen.get(digest)
            if seen is None and self.find_payload is not None:
                seen = self.find_payload(digest)

        with self._lock:
            writer, spool = self._record_writer()
            request_headers = {
                "WARC-Record-ID": request_id,
                "WARC-Date": date,
                "WARC-Concurrent-To": response_id,
            }
            if source is not None:
                request_headers["WARC-Source-URI"] = source
                request_headers["WARC-Creation-Date"] = isoformat(captured_at)
            request = writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""), length=0,
                warc_headers_dict=request_headers,
                http_headers=_RawHead(_wire_head(redact_request_head(request_head)),
                                      _REQUEST_VERBS),
            )
            response_headers = {"WARC-Record-ID": response_id, "WARC-Date": date,
                                "WARC-Concurrent-To": request_id}
            if remote_ip:
                response_headers["WARC-IP-Address"] = remote_ip
            if source is not None:
                response_headers["WARC-Source-URI"] = source
                response_headers["WARC-Creation-Date"] = isoformat(captured_at)
            head = _RawHead(_wire_head(response_head), _RESPONSE_VERBS)
            if seen is not None:
                response_headers["WARC-Refers-To"] = seen.record_id
                response = writer.create_revisit_record(
                    url, digest, seen.target_uri, isoformat(seen.date),
                    http_headers=head, warc_headers_dict=response_headers,
                )
            else:
                response_headers["WARC-Payload-Digest"] = digest
                if truncated:
                    response_headers["WARC-Truncated"] = truncated
                response = writer.create_warc_record(
                    url, "response", payload=body, length=length,
                    warc_headers_dict=response_headers, http_headers=head,
                )
            offsets = self._append(spool, writer, [request, response])
            request_ref = self._ref(request_id, *offsets[0])
            response_ref = self._ref(response_id, *offsets[1])
            response_sha256 = self.member_sha256[1]
            if seen is None and truncated is None and length > 0 and source is None:
                self._seen[digest] = PayloadSeen(response_id, url, captured_at)
        return Exchange(request_ref, response_ref, digest, seen is not None, response_sha256)

    def write_metadata(
        self,
        *,
        url: str,
        concurrent_to: str,
        fields: Sequence[tuple[str, str]],
        captured_at: datetime,
    ) -> WarcRef:
        """A ``metadata`` record (``application/warc-fields``) about the record
        ``concurrent_to``, e.g. ``[("cited-by", "kazakhstan-2020#14")]``."""
        block = "".join(f"{_field(k)}: {_field(v)}\r\n" for k, v in fields).encode("utf-8")
        record_id = _record_id()
        with self._lock:
            writer, spool = self._record_writer()
            record = writer.create_warc_record(
                url, "metadata", payload=io.BytesIO(block), length=len(block),
                warc_content_type="application/warc-fields",
                warc_headers_dict={"WARC-Record-ID": record_id,
                                   "WARC-Date": isoformat(captured_at),
                                   "WARC-Concurrent-To": concurrent_to},
            )
            (offset, size), = self._append(spool, writer, [record])
            return self._ref(record_id, offset, size)

    def write_json_metadata(
        self,
        *,
        url: str,
        concurrent_to: str,
        block: bytes,
        captured_at: datetime,
    ) -> WarcRef:
        """A ``metadata`` record (``application/json``) holding ``block`` about the record
        ``concurrent_to``: the capture's provenance document."""
        record_id = _record_id()
        with self._lock:
            writer, spool = self._record_writer()
            record = writer.create_warc_record(
                url, "metadata", payload=io.BytesIO(block), length=len(block),
                warc_content_type="application/json",
                warc_headers_dict={"WARC-Record-ID": record_id,
                                   "WARC-Date": isoformat(captured_at),
                                   "WARC-Concurrent-To": concurrent_to},
            )
            (offset, size), = self._append(spool, writer, [record])
            return self._ref(record_id, offset, size)

    # ── internals (callers hold self._lock) ──────────────────────────────────

    def _record_writer(self) -> tuple[WARCWriter, IO[bytes]]:
        if self._broken:
            raise ArchiveError(self._broken)
        if self._sink is not None and self._sink.size >= self.max_size:
            self._finish()
        if self._sink is None:
            self._start_file()
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        return _Sha256WARCWriter(spool, gzip=True, warc_version="1.1"), spool

    def _append(self, spool: IO[bytes], writer: WARCWriter,
                records: Sequence[object]) -> list[tuple[int, int]]:
        """Gzip ``records`` into ``spool`` (one member each), then append them to the file."""
        assert self._sink is not None
        base = self._sink.size
        spans: list[tuple[int, int]] = []
        self.member_sha256 = []
        with spool:
            for record in records:
                start = spool.tell()
                writer.write_record(record)
                spans.append((base + start, spool.tell() - start))
                # The SHA-256 of the gzip member exactly as stored, for provenance records.
                spool.seek(start)
                self.member_sha256.append(hashlib.sha256(spool.read()).hexdigest())
            try:
                self._sink.append(spool)
            except OSError as exc:
                self._fail(base, exc)
        return spans

    def _fail(self, good_size: int, exc: OSError) -> None:
        """Cut the half-written member, close the (valid) file, refuse further writes."""
        sink = self._sink
        assert sink is not None
        what = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        message = f"{_final_name(sink.path)}: cannot write WARC record: {what}"
        with contextlib.suppress(OSError):
            sink.cut(good_size)
        try:
            self._finish()
        except ArchiveError:
            self._sink = None
        self._broken = message
        raise ArchiveError(message) from exc

    def _ref(self, record_id: str, offset: int, length: int) -> WarcRef:
        assert self._sink is not None
        final = _final_name(self._sink.path)
        try:
            rel = final.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            rel = final.as_posix()
        return WarcRef(path=rel, offset=offset, length=length, record_id=record_id)

    def _start_file(self) -> None:
        stamp = _timestamp(self.clock())
        while True:
            self._serial += 1
            name = f"{self.prefix}-{stamp}-{self.run_id}-{self._serial:05d}.warc.gz"
            path = self.archive_dir / (name + OPEN_SUFFIX)
            if (self.archive_dir / name).exists():
                continue
            try:
                sink = _Sink(path)
            except FileExistsError:
                continue
            except OSError as exc:
                raise ArchiveError(f"{path}: cannot create WARC file: "
                                   f"{exc.strerror or exc}") from exc
            break
        fcntl.flock(sink.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._sink = sink
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        writer = _Sha256WARCWriter(spool, gzip=True, warc_version="1.1")
        info = {
            "software": f"archiver/{__version__}",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/"
                          "specifications/warc-format/warc-1.1/",
            "isPartOf": self.prefix,
            "run-id": self.run_id,
            "created": isoformat(self.clock()),
        }
        record = writer.create_warcinfo_record(name, info)
        record.rec_headers.replace_header("WARC-Date", info["created"])
        self._append(spool, writer, [record])

    def _finish(self) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        final = _final_name(sink.path)
        try:
            sink.close()
            if sink.size == 0:
                # Not even the warcinfo record made it (disk full at the start): no file.
                os.unlink(sink.path)
                return
            os.rename(sink.path, final)
            _fsync_dir(self.archive_dir)
        except OSError as exc:
            raise ArchiveError(f"{sink.path}: cannot close WARC file: "
                               f"{exc.strerror or exc}") from exc
        self.closed_files.append(final)
        _add_to_index(self.archive_dir, [final])


def _record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def _field(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _final_name(path: Path) -> Path:
    name = path.name
    return path.with_name(name[: -len(OPEN_SUFFIX)]) if name.endswith(OPEN_SUFFIX) else path


# ── recovery ────────────────────────────────────────────────────────────────


def complete_members(path: Path) -> tuple[int, int]:
    """(records, bytes): how many whole gzip members, each holding a WARC record, the file
    starts with, and where the last of them ends. Reads in bounded pieces; the gzip CRC of
    every member is checked by zlib."""
    records = good_end = offset = 0
    with open(path, "rb") as fh:
        pending = b""
        while True:
            decomp = zlib.decompressobj(wbits=31)
            head = b""
            try:
                while not decomp.eof:
                    if not pending:
                        pending = fh.read(_COPY_CHUNK)
                        if not pending:
                            return records, good_end
                    out = decomp.decompress(pending, 65536)
                    if len(head) < 5:
                        head += out[:5]
                    used = len(pending) - len(decomp.unconsumed_tail) - len(decomp.unused_data)
                    offset += used
                    pending = decomp.unused_data if decomp.eof else decomp.unconsumed_tail
            except zlib.error:
                return records, good_end
            if not head.startswith(b"WARC/"):
                return records, good_end
            records += 1
            good_end = offset


def recover(archive_dir: Path) -> list[Recovered]:
    """Repair or quarantine every ``*.warc.gz.open`` file in ``archive_dir`` that no live
    writer holds (see the module docstring), and index closed files the index lacks (a crash
    between a file's rename and its indexing). Returns what was done to ``.open`` files."""
    done: list[Recovered] = []
    repaired: list[Path] = []
    for path in sorted(Path(archive_dir).glob(f"*.warc.gz{OPEN_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            size = os.fstat(fd).st_size
            records, good_end = complete_members(path)
            if records == 0:
                target = Path(archive_dir) / QUARANTINE / path.name
                target.parent.mkdir(exist_ok=True)
                os.rename(path, target)
                done.append(Recovered(target, "quarantined", 0, size))
                continue
            os.ftruncate(fd, good_end)
            os.fsync(fd)
            final = _final_name(path)
            os.rename(path, final)
            repaired.append(final)
            done.append(Recovered(final, "repaired", records, size - good_end))
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot recover WARC file: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
    if repaired:
        _fsync_dir(Path(archive_dir))
    # A crash between a file's rename and its indexing leaves a closed file out of the index.
    indexed = _indexed_files(Path(archive_dir))
    missing = [f for f in sorted(Path(archive_dir).glob("*.warc.gz")) if f.name not in indexed]
    if missing:
        _add_to_index(Path(archive_dir), missing)
    return done


def _indexed_files(archive_dir: Path) -> set[str]:
    index = archive_dir / INDEX_NAME
    if not index.exists():
        return set()
    with open(index, encoding="utf-8") as fh:
        return {name for name in map(_line_filename, fh) if name}


# ── index ───────────────────────────────────────────────────────────────────


def _index_lines(archive_dir: Path, files: Sequence[Path]) -> list[str]:
    out = io.StringIO()
    write_cdx_index(out, [str(f) for f in files], {"sort": False, "dir_root": str(archive_dir)})
    return [line for line in out.getvalue().splitlines() if line and not line.startswith("!")]


@contextlib.contextmanager
def _index_lock(archive_dir: Path) -> Iterator[None]:
    with open(archive_dir / (INDEX_NAME + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _write_index(archive_dir: Path, lines: list[str]) -> Path:
    target = archive_dir / INDEX_NAME
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


def _add_to_index(archive_dir: Path, files: Sequence[Path]) -> None:
    try:
        new = _index_lines(archive_dir, files)
        with _index_lock(archive_dir):
            index = archive_dir / INDEX_NAME
            old = index.read_text("utf-8").splitlines() if index.exists() else []
            names = {f.relative_to(archive_dir).as_posix() for f in files}
            # Re-indexing a file replaces its lines rather than doubling them.
            kept = [line for line in old if _line_filename(line) not in names]
            _write_index(archive_dir, sorted(kept + new))
    except OSError as exc:
        raise ArchiveError(f"{archive_dir / INDEX_NAME}: cannot update index: "
                           f"{exc.strerror or exc}") from exc


def _line_filename(line: str) -> str | None:
    try:
        return json.loads(line.split(" ", 2)[2]).get("filename")
    except (IndexError, ValueError):
        return None


def rebuild_index(archive_dir: Path) -> Path:
    """Index every closed ``*.warc.gz`` directly in ``archive_dir`` afresh; returns the
    index path. Raises ``ArchiveError`` when it cannot be written."""
    archive_dir = Path(archive_dir)
    files = sorted(archive_dir.glob("*.warc.gz"))
    try:
        lines = sorted(_index_lines(archive_dir, files)) if files else []
        with _index_lock(archive_dir):
            return _write_index(archive_dir, lines)
    except OSError as exc:
        raise ArchiveError(f"{archive_dir / INDEX_NAME}: cannot rebuild index: "
                           f"{exc.strerror or exc}") from exc


def url_key(url: str) -> str:
    """The SURT key the index sorts by (the same function the indexer uses)."""
    return CDXJIndexer.get_url_key(None, url)  # type: ignore[arg-type]


def lookup(archive_dir: Path, url: str) -> list[IndexEntry]:
    """Every indexed capture of ``url`` (response and revisit records), oldest first."""
    index = Path(archive_dir) / INDEX_NAME
    if not index.exists():
        return []
    lines = index.read_text("utf-8").splitlines()
    key = url_key(url.split("#", 1)[0])
    entries: list[IndexEntry] = []
    start = bisect.bisect_left(lines, key + " ")
    for line in lines[start:]:
        urlkey, timestamp, data = line.split(" ", 2)
        if urlkey != key:
            break
        fields = json.loads(data)
        status = fields.get("status")
        entries.append(IndexEntry(
            urlkey=urlkey, timestamp=timestamp, url=fields.get("url", ""),
            mime=fields.get("mime", ""),
            status=int(status) if status not in (None, "", "-") else None,
            digest=fields.get("digest", ""), length=int(fields["length"]),
            offset=int(fields["offset"]), filename=fields["filename"],
        ))
    return entries


def read_record(root: Path, ref: WarcRef) -> StoredRecord:
    """The record at ``ref`` (path relative to ``root``): its WARC headers, HTTP headers
    and raw payload bytes (``Content-Encoding`` not undone). Raises ``ArchiveError`` when the
    file is missing or the bytes there are not a WARC record."""
    path = Path(root) / ref.path
    try:
        with open(path, "rb") as fh:
            fh.seek(ref.offset)
            data = fh.read(ref.length)
        record = next(iter(ArchiveIterator(io.BytesIO(data))))
        http = record.http_headers.headers if record.http_headers else []
        payload = record.raw_stream.read()
        return StoredRecord(list(record.rec_headers.headers), list(http), payload)
    except (OSError, StopIteration, ValueError, zlib.error) as exc:
        raise ArchiveError(f"{path}: no readable WARC record at offset {ref.offset}: "
                           f"{exc}") from exc
