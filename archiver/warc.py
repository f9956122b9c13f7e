"""The only writer of ``archive/``: WARC files, their rotation and recovery, and the CDXJ index.

Files are WARC/1.1, one gzip member per record, named
``{prefix}-{YYYYmmddHHMMSS}-{run_id}-{serial:05d}.warc.gz``. Each starts with a ``warcinfo``
record. A file being written carries an extra ``.open`` suffix and holds an exclusive
``flock``; ``close()`` fsyncs it, renames it and adds its records to ``index.cdxj``.

Records are assembled in a spool first and appended to the file in one go, so the file only
ever grows by whole gzip members. What crashes can leave behind, and what happens to it:

* ``kill -9`` (or a power cut) mid-append leaves a ``.open`` file whose last member is cut.
  ``recover()`` (run by every ``run``/``check`` before it reads the catalog, and by each new
  ``WarcWriter``) finds every ``.open`` file that no live writer holds, truncates it after its
  last complete record, renames it and indexes it. A byte of a complete record is never
  removed: a file with no complete record at all (not even its ``warcinfo``) is moved to
  ``archive/quarantine/``, and a file damaged in the middle (complete records after bytes that
  are not one) is kept whole there as ``NAME.damaged``, while a copy of its records before the
  damage becomes the closed file. Captures in the catalog whose records did not survive are
  then forgotten, so that the next run fetches their URLs again.
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
import functools
import hashlib
import heapq
import io
import itertools
import json
import logging
import os
import re
import tempfile
import threading
import zlib
from base64 import b32encode
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from warcio.archiveiterator import ArchiveIterator
from warcio.recordbuilder import RecordBuilder
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser
from warcio.timeutils import iso_date_to_timestamp
from warcio.utils import BUFF_SIZE
from warcio.warcwriter import WARCWriter

from archiver import __version__, surtkey
from archiver.errors import ArchiveError
from archiver.models import WarcRef, isoformat, utcnow

log = logging.getLogger(__name__)

__all__ = [
    "INDEX_NAME",
    "Exchange",
    "IndexEntry",
    "MemberScan",
    "PayloadSeen",
    "Recovered",
    "StoredRecord",
    "WarcWriter",
    "lookup",
    "read_record",
    "rebuild_index",
    "recover",
    "redact_request_head",
    "ref_path",
    "scan_members",
]

INDEX_NAME = "index.cdxj"
OPEN_SUFFIX = ".open"
QUARANTINE = "quarantine"
REDACTED_HEADERS = frozenset({b"cookie", b"authorization", b"proxy-authorization"})
_SPOOL_IN_MEMORY = 1024 * 1024
_COPY_CHUNK = 1024 * 1024
# zlib level of the gzip members. Measured with bench/warc_bench.py (CPU per body, share of
# the raw size) on HTML of 5, 20 and 100 KB: level 9 (warcio's) costs about 0.6 ms per 20 KB
# and 6.7 ms per 100 KB for 33.9% / 29.5%; level 6 0.6 / 3.3 ms for the same sizes; level 1
# 0.2 / 1.0 ms for 37.5% / 34.1%. Level 1 is three to seven times cheaper for files about a
# tenth larger, and the CPU per URL is what limits a run (disk is not); levels 2-5 buy back
# at most half the size difference for 10-120% more CPU. Already compressed bodies (PDFs,
# images, Content-Encoding gzip/br) cost the same at every level and do not shrink.
GZIP_LEVEL = 1

# Members at ``GZIP_LEVEL`` are deflated by ISA-L (``isal``, an optional dependency: ``pip
# install isal``) when it is importable, at its level 1, else by zlib. bench/warc_bench.py on
# HTML of 20 KB: 65 µs instead of 240 µs per body, 35.5% of the raw size instead of 37.5%.
# The members are ordinary gzip members (any reader inflates them with zlib), but not the
# same bytes as zlib's: a WARC written with isal has other compressed bytes, record offsets
# and lengths in the index, and member SHA-256s in provenance records than one written
# without it, for the same records. Other levels (0, stored, for compressed bodies) are zlib's.
_FAST_DEFLATE: Any  # isal's zlib module, or None: zlib for every level (worker_bench --zlib)
try:
    from isal import isal_zlib as _FAST_DEFLATE
except ImportError:  # pragma: no cover - depends on the environment
    _FAST_DEFLATE = None


def _deflater(level: int) -> Any:
    """A compressor of one gzip member at ``level``."""
    fast = _FAST_DEFLATE
    if fast is not None and level == GZIP_LEVEL:
        return fast.compressobj(1, fast.DEFLATED, fast.MAX_WBITS + 16)
    return zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS + 16)


@dataclass(frozen=True)
class PayloadSeen:
    """A payload already archived: the record holding it, its URL and capture time."""

    record_id: str
    target_uri: str
    date: datetime


def _seen_key(digest: str) -> bytes | str:
    """``WarcWriter._seen``'s key for a payload digest: the 32 raw bytes of a
    ``sha256:<hex>`` digest (a third of the text's size), any other digest as it is."""
    if len(digest) == 71 and digest.startswith("sha256:"):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(digest[7:])
    return digest


_UUID_ID = re.compile(r"<urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-"
                      r"([0-9a-f]{12})>")


class _SeenPayload:
    """A ``PayloadSeen`` as ``WarcWriter._seen`` keeps it, one per payload of the run: a
    ``<urn:uuid:…>`` record ID as its 16 bytes, no per-instance dict."""

    __slots__ = ("date", "record_id", "target_uri")

    def __init__(self, record_id: bytes | str, target_uri: str, date: datetime) -> None:
        self.record_id = record_id
        self.target_uri = target_uri
        self.date = date

    @classmethod
    def of(cls, record_id: str, target_uri: str, date: datetime) -> _SeenPayload:
        match = _UUID_ID.fullmatch(record_id)
        return cls(bytes.fromhex("".join(match.groups())) if match else record_id,
                   target_uri, date)

    def expand(self) -> PayloadSeen:
        record_id = self.record_id
        if isinstance(record_id, bytes):
            h = record_id.hex()
            record_id = f"<urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}>"
        return PayloadSeen(record_id, self.target_uri, self.date)


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
    """What ``recover`` did with one leftover ``.open`` file (see ``recover``).

    ``path``: the closed file (the quarantined file when ``action`` is ``quarantined``);
    ``records``: the complete records it holds; ``dropped_bytes``: bytes of the leftover not
    in the closed file; ``size``: the closed file's size (0 when quarantined);
    ``found_beyond``: complete records found after damage in the middle, kept only in
    ``kept``, the untouched copy under ``quarantine/``.
    """

    path: Path
    action: str  # "repaired", "damaged" or "quarantined"
    records: int
    dropped_bytes: int
    size: int = 0
    found_beyond: int = 0
    kept: Path | None = None

    @property
    def closed_path(self) -> Path:
        """The closed file's path in the archive folder (where a quarantined file would
        have been closed): what ``WarcRef.path`` values named while it was written."""
        if self.action == "quarantined":
            return self.path.parent.parent / _final_name(self.path).name
        return self.path


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


_COMPRESSED_TYPES = re.compile(
    r"(image/(jpeg|png|gif|webp|avif|heic)|video/.*|audio/(mpeg|mp4|aac|ogg|opus|webm)"
    r"|application/(zip|gzip|x-gzip|zstd|x-xz|x-bzip2|x-7z-compressed|vnd\.rar))\s*(;.*)?",
    re.IGNORECASE | re.DOTALL)


def _compressed_already(head: StatusAndHeaders) -> bool:
    """Whether the body under ``head`` is compressed data (a ``Content-Encoding`` other
    than identity, or a media type that is always compressed): gzip cannot shrink it.
    Measured with bench/warc_bench.py on 2 MB of such bytes: 49 ms at level 1 (or 9),
    under 2 ms stored, for the same size."""
    encoding = (head.get_header("Content-Encoding") or "").strip().lower()
    if encoding not in ("", "identity"):
        return True
    return bool(_COMPRESSED_TYPES.fullmatch((head.get_header("Content-Type") or "").strip()))


def _exchange_digests(head: bytes, stream: IO[bytes],
                      payload_digest: str | None = None) -> tuple[str, str]:
    """(payload, block) digests, ``sha256:HEX``, of a response record whose HTTP head is
    ``head`` and whose payload is ``stream`` from its current position (restored): both
    hashes fed from one read of the body. The block is the head followed by the payload.
    A ``payload_digest`` already known is taken as it is (only the block is hashed)."""
    start = stream.tell()
    block = hashlib.sha256(head)
    if payload_digest is not None:
        for chunk in iter(lambda: stream.read(_COPY_CHUNK), b""):
            block.update(chunk)
        stream.seek(start)
        return payload_digest, "sha256:" + block.hexdigest()
    payload = hashlib.sha256()
    for chunk in iter(lambda: stream.read(_COPY_CHUNK), b""):
        payload.update(chunk)
        block.update(chunk)
    stream.seek(start)
    return "sha256:" + payload.hexdigest(), "sha256:" + block.hexdigest()


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


class _MemberOut:
    """Where warcio writes records (its own gzip off): each record becomes one gzip member
    at the level given to ``start``, appended to ``spool``, its SHA-256 taken (if asked)
    from the compressed bytes as they are produced (warcio flushes once at the end of every
    record)."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        self.member_sha256: list[str] = []  # one per record written, in order ("": not taken)

    def start(self, level: int, hashed: bool = True) -> None:
        """Begin the next record's member; ``hashed``: take its SHA-256."""
        self._deflate = _deflater(level)
        self._hash = hashlib.sha256() if hashed else None

    def write(self, data: bytes) -> None:
        out = self._deflate.compress(data)
        if out:
            if self._hash is not None:
                self._hash.update(out)
            self.spool.write(out)

    def flush(self) -> None:
        out = self._deflate.flush()
        self.spool.write(out)
        if self._hash is None:
            self.member_sha256.append("")
            return
        self._hash.update(out)
        self.member_sha256.append(self._hash.hexdigest())


def redact_request_head(head: bytes) -> bytes:
    """The request head with ``Cookie``/``Authorization``/``Proxy-Authorization`` values
    replaced, so that credentials never reach a WARC file."""
    lowered = head.lower()
    if b"cookie" not in lowered and b"authorization" not in lowered:
        return head  # no such header: the lines would be joined back as they were
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
    if b"transfer-encoding:" not in head.lower():  # most heads: no pattern search
        return head
    return _TRANSFER_ENCODING.sub(b"X-Archive-Orig-Transfer-Encoding:", head)


_TRANSFER_ENCODING = re.compile(rb"(?im)^transfer-encoding:")


class _RawHead(StatusAndHeaders):
    """Parsed HTTP head that keeps its original bytes: warcio would otherwise re-serialise it
    (and %-encode non-ASCII values), and the archive must hold what was received."""

    def __init__(self, raw: bytes, verbs: Sequence[str]) -> None:
        parsed = _parse_head(raw)
        if parsed is None:
            head = StatusAndHeadersParser(list(verbs), verify=False).parse(io.BytesIO(raw))
            parsed = head.statusline, head.headers, head.protocol
        super().__init__(*parsed)
        self.headers_buff = raw

    def compute_headers_buffer(self, header_filter: object = None) -> None:
        return None  # keep the bytes as received


def _parse_head(raw: bytes) -> tuple[str, list[tuple[str, str]], str] | None:
    """(statusline, headers, protocol) as warcio's ``StatusAndHeadersParser`` (unverified)
    reads them from ``raw``, in one pass over the decoded head instead of a ``readline``,
    a decode and a strip per line (a tenth of the CPU of a response record); ``None`` for a
    head that is not UTF-8 (warcio decodes those line by line) or empty.

    The same steps on the same strings: warcio's lines are the pieces between ``\n``, each
    ``rstrip``-ped (so a line of blanks ends the head), a header ``name: value`` split at the
    first colon, continuation lines (starting with a blank or tab) appended to the value,
    a line without a colon (and its continuations) dropped. tests/test_warc.py compares."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None  # warcio raises EOFError
    lines = text.split("\n")
    statusline = lines[0].rstrip()
    if not statusline:
        return "", [], ""
    count = len(lines)
    headers: list[tuple[str, str]] = []
    i = 1
    line = lines[1].rstrip() if count > 1 else ""
    while line:
        name, colon, value = line.partition(":")
        value = value.lstrip()
        i += 1
        following = lines[i].rstrip() if i < count else ""
        while following and following[0] in " \t":
            value += following
            i += 1
            following = lines[i].rstrip() if i < count else ""
        if colon:
            headers.append((name.rstrip(" \t"), value))
        line = following
    protocol, _, status = statusline.partition(" ")
    return status.strip(), headers, protocol


_RESPONSE_VERBS = ("HTTP/1.0", "HTTP/1.1")
_REQUEST_VERBS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


# ── records ──────────────────────────────────────────────────────────────────
#
# The records of a capture are built here rather than by warcio's RecordBuilder, which
# searches and rewrites its header list a dozen times per record, makes a digester per digest
# and a writer (with a gethostname call) per record: that was a third of the CPU of writing a
# 20 KB page. ``_Record`` writes what warcio's writer writes for the same record, in the same
# calls (so that each gzip member is the same byte for byte): the WARC head with its fields in
# warcio's order, the stored HTTP head, the payload in warcio's chunks, the closing CRLFs.
# tests/test_warc.py compares the two. warcio still writes the warcinfo record, and the
# exchanges whose heads it would read differently (no status line: see ``_has_status_line``).

_WARC_VERSION = "WARC/1.1"
_REVISIT_PROFILE = RecordBuilder.REVISIT_PROFILE_1_1
_WARC_TYPES: dict[str, str] = RecordBuilder.WARC_RECORDS


class _Fields:
    """A record's WARC fields in order, looked up as warcio's ``StatusAndHeaders`` does
    (the first field of that name in any case), through a table made on the first lookup."""

    __slots__ = ("_by_name", "headers")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers
        self._by_name: dict[str, str] | None = None

    def get_header(self, name: str, default_value: str | None = None) -> str | None:
        if self._by_name is None:
            self._by_name = {key.lower(): value for key, value in reversed(self.headers)}
        return self._by_name.get(name.lower(), default_value)


class _Record:
    """One record ready to write. ``fields`` are those given to warcio as
    ``warc_headers_dict``, ``digests`` the fields warcio adds after ``WARC-Type`` and
    ``WARC-Target-URI`` (digests, revisit profile); ``head`` is the stored HTTP head (``http``
    parsed) or ``b""``, ``payload`` what follows it (``None``: nothing, as for a revisit) and
    ``length`` the record's Content-Length."""

    __slots__ = ("head", "http_headers", "payload", "rec_headers", "rec_type")

    def __init__(self, uri: str, rec_type: str, fields: dict[str, str], content_type: str,
                 digests: list[tuple[str, str]], *, head: bytes, payload: IO[bytes] | None,
                 length: int, http: StatusAndHeaders | None = None) -> None:
        headers = list(fields.items())
        headers.append(("WARC-Type", rec_type))
        if uri:
            headers.append(("WARC-Target-URI", uri))
        headers += digests
        headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(length)))
        self.rec_type = rec_type
        self.rec_headers = _Fields(headers)
        self.http_headers = http
        self.head = head
        self.payload = payload

    def write(self, out: _MemberOut) -> None:
        fields = "".join([f"{name}: {value}\r\n" for name, value in self.rec_headers.headers])
        out.write(f"{_WARC_VERSION}\r\n{fields}\r\n".encode())
        if self.head:
            out.write(self.head)
        payload = self.payload
        if payload is not None:
            for chunk in iter(lambda: payload.read(BUFF_SIZE), b""):
                out.write(chunk)
        out.write(b"\r\n\r\n")
        out.flush()


def _has_status_line(head: bytes) -> bool:
    """Whether warcio reads a status line (a first line not blank) in ``head``; without one
    it takes the head for empty and looks for an HTTP head in the payload instead."""
    end = head.find(b"\n")
    first = head if end < 0 else head[:end + 1]
    return bool(StatusAndHeadersParser.decode_header(first).rstrip())


# The records of one capture share its time: strftime once for them all.
_isoformat = functools.lru_cache(maxsize=16)(isoformat)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _new_out(size: int = 0, spill: Path | None = None) -> _MemberOut:
    """Where records of about ``size`` bytes are gzipped: memory for those that stay well
    below ``_SPOOL_IN_MEMORY`` compressed (a SpooledTemporaryFile costs several times more
    per write, and would not spill them either), else a spool that may spill to disk, in
    ``spill``: the archive's folder, where the bytes are going anyway (a small system
    temporary folder, common in containers, would stop a run the archive had room for)."""
    if size < _SPOOL_IN_MEMORY // 2:
        return _MemberOut(io.BytesIO())
    return _MemberOut(tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY,
                                                    dir=None if spill is None else str(spill)))


def _warcio_writer(out: _MemberOut) -> WARCWriter:
    return _Sha256WARCWriter(out, gzip=False, warc_version="1.1")


def _exchange_by_warcio(out: _MemberOut, url: str, request_headers: dict[str, str],
                        response_headers: dict[str, str], head: _RawHead,
                        request_http: _RawHead, request_body: bytes, body: IO[bytes],
                        length: int, seen: PayloadSeen | None, digest: str,
                        block_digest: str) -> list[ArcWarcRecord]:
    """The records of an exchange built by warcio (see above)."""
    writer = _warcio_writer(out)
    request = writer.create_warc_record(
        url, "request", payload=io.BytesIO(request_body), length=len(request_body),
        warc_headers_dict=request_headers, http_headers=request_http)
    if seen is not None:
        response = writer.create_revisit_record(
            url, digest, seen.target_uri, _isoformat(seen.date),
            http_headers=head, warc_headers_dict=response_headers)
    else:
        response = writer.create_warc_record(
            url, "response", payload=body, length=length,
            warc_headers_dict=response_headers, http_headers=head)
        # Where warcio would add it when writing (same header order).
        response.rec_headers.add_header("WARC-Block-Digest", block_digest)
    return [request, response]


class _Sink:
    """Append-only access to one file descriptor; the seam where write errors appear."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        return os.write(self.fd, data)

    def append(self, stream: IO[bytes]) -> None:
        if isinstance(stream, io.BytesIO):  # a spool in memory: its bytes in one go
            self._write_all(stream.getvalue())
            return
        stream.seek(0)
        for chunk in iter(lambda: stream.read(_COPY_CHUNK), b""):
            self._write_all(chunk)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
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
        gzip_level: int = GZIP_LEVEL,
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
        # This run's payloads, compactly (see ``_seen_key``, ``_SeenPayload``): one entry per
        # distinct payload written, kept until the writer closes.
        self._seen: dict[bytes | str, _SeenPayload] = {}
        self._sink: _Sink | None = None
        self._serial = 0
        self._broken: str | None = None
        self._lock = threading.Lock()
        self.member_sha256: list[str] = []  # of the last append's records (under lock; see _append)
        self.gzip_level = gzip_level
        self._index_spill: IO[str] | None = None  # see _start_file
        self._sink_ref = self._sink_name = ""  # the current file's WarcRef.path and name
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

    def prepare(self) -> None:
        """Create the folder, leaving leftovers alone (another writer of the same run, in a
        worker process, may be writing them); use instead of ``open``."""
        try:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"{self.archive_dir}: cannot create archive folder: "
                               f"{exc.strerror or exc}") from exc

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
        request_body: bytes = b"",
        payload_sha256: str | None = None,
    ) -> Exchange:
        """Write the request and response (or revisit) records of one exchange.

        ``body`` is read from its current position to the end; ``request_body`` is what the
        request sent (a browser page's POST). ``payload_sha256``, when the caller hashed the
        whole body as it arrived, is its ``sha256:HEX`` digest: the body is then hashed once
        here (for the block digest) instead of twice. Raises ``ArchiveError`` when the file
        cannot be written.
        """
        body.seek(0, os.SEEK_END)
        end = body.tell()
        body.seek(0)
        length = end
        head = _RawHead(_wire_head(response_head), _RESPONSE_VERBS)
        # The body is read here, once, for both digests; warcio then finds them set.
        digest, block_digest = _exchange_digests(head.headers_buff, body, payload_sha256)
        date = _isoformat(captured_at)
        request_id, response_id = _record_id(), _record_id()
        seen = None
        # A memento from another archive is stored as pywb stores it: WARC-Target-URI the
        # original URL, WARC-Date the memento's datetime, WARC-Source-URI the address it was
        # copied from, WARC-Creation-Date when we copied it. Replay tools then list it
        # under the cited URL at its own date. Never deduplicated (either way).
        source = None
        origin = self.from_archive(url, response_head) if self.from_archive else None
        if origin is not None:
            source, url, date = url, origin[0], _isoformat(origin[1])
        dedupable = truncated is None and length > 0 and source is None
        seen_key = _seen_key(digest)
        if dedupable and seen_key not in self._seen and self.find_payload is not None:
            seen = self.find_payload(digest)  # earlier runs: no race with this writer

        request_raw = _wire_head(redact_request_head(request_head))
        with self._lock:
            # This run's payloads are looked up under the lock: two threads writing the same
            # bytes at once would otherwise both find nothing and both store them.
            if dedupable:
                here = self._seen.get(seen_key)
                seen = here.expand() if here is not None else seen
            out = self._record_out(length + len(request_body) + 4096)
            request_headers = {
                "WARC-Record-ID": request_id,
                "WARC-Date": date,
                "WARC-Concurrent-To": response_id,
            }
            if source is not None:
                request_headers["WARC-Source-URI"] = source
                request_headers["WARC-Creation-Date"] = _isoformat(captured_at)
            response_headers = {"WARC-Record-ID": response_id, "WARC-Date": date,
                                "WARC-Concurrent-To": request_id}
            if remote_ip:
                response_headers["WARC-IP-Address"] = remote_ip
            if source is not None:
                response_headers["WARC-Source-URI"] = source
                response_headers["WARC-Creation-Date"] = _isoformat(captured_at)
            if seen is not None:
                response_headers["WARC-Refers-To"] = seen.record_id
            else:
                response_headers["WARC-Payload-Digest"] = digest
                if truncated:
                    response_headers["WARC-Truncated"] = truncated
            records: list[ArcWarcRecord | _Record]
            if head and _has_status_line(request_raw):
                request_block = hashlib.sha256(request_raw)
                request_block.update(request_body)
                request = _Record(
                    url, "request", request_headers, "application/http; msgtype=request",
                    [("WARC-Payload-Digest", _sha256(request_body)),
                     ("WARC-Block-Digest", "sha256:" + request_block.hexdigest())],
                    head=request_raw, payload=io.BytesIO(request_body),
                    length=len(request_raw) + len(request_body))
                if seen is not None:
                    response = _Record(
                        url, "revisit", response_headers, "application/http; msgtype=response",
                        [("WARC-Profile", _REVISIT_PROFILE),
                         ("WARC-Refers-To-Target-URI", seen.target_uri),
                         ("WARC-Refers-To-Date", _isoformat(seen.date)),
                         ("WARC-Payload-Digest", digest),
                         ("WARC-Block-Digest", _sha256(head.headers_buff))],
                        http=head, head=head.headers_buff, payload=None,
                        length=len(head.headers_buff))
                else:
                    response = _Record(
                        url, "response", response_headers, "application/http; msgtype=response",
                        [("WARC-Block-Digest", block_digest)],
                        http=head, head=head.headers_buff, payload=body,
                        length=len(head.headers_buff) + length)
                records = [request, response]
            else:
                records = _exchange_by_warcio(
                    out, url, request_headers, response_headers, head,
                    _RawHead(request_raw, _REQUEST_VERBS), request_body, body, length, seen,
                    digest, block_digest)
            # A body compressed already is stored in the member as is (deflate's stored
            # blocks): deflating it again costs as much CPU as text and saves nothing.
            level = 0 if seen is None and _compressed_already(head) else self.gzip_level
            offsets = self._append(out, records, [self.gzip_level, level], hashed=True)
            request_ref = self._ref(request_id, *offsets[0])
            response_ref = self._ref(response_id, *offsets[1])
            response_sha256 = self.member_sha256[1]
            if seen is None and truncated is None and length > 0 and source is None:
                self._seen[seen_key] = _SeenPayload.of(response_id, url, captured_at)
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
        return self._write_one(url, "metadata", "application/warc-fields", block,
                               concurrent_to=concurrent_to, captured_at=captured_at)

    def write_resource(
        self,
        *,
        uri: str,
        content_type: str,
        data: bytes,
        concurrent_to: str | None,
        captured_at: datetime,
    ) -> WarcRef:
        """A ``resource`` record holding ``data`` as is: a browser capture's screenshot
        (``urn:screenshot:URL``, ``image/png``) or rendered text (``urn:text:URL``), as
        Browsertrix and pywb name them. Raises ``ArchiveError`` when it cannot be written."""
        return self._write_one(uri, "resource", content_type, data,
                               concurrent_to=concurrent_to, captured_at=captured_at)

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
        return self._write_one(url, "metadata", "application/json", block,
                               concurrent_to=concurrent_to, captured_at=captured_at)

    def _write_one(self, uri: str, record_type: str, content_type: str, block: bytes, *,
                   concurrent_to: str | None, captured_at: datetime) -> WarcRef:
        """One record of ``record_type`` holding ``block`` as is (metadata and resource
        records), Concurrent-To ``concurrent_to`` when given."""
        record_id = _record_id()
        headers = {"WARC-Record-ID": record_id, "WARC-Date": _isoformat(captured_at)}
        if concurrent_to:
            headers["WARC-Concurrent-To"] = concurrent_to
        digest = _sha256(block)
        # As warcio builds it: no HTTP head, the block's digest as payload and block digest,
        # the content type warcio would give an empty one.
        record = _Record(
            uri, record_type, headers,
            content_type or _WARC_TYPES.get(record_type, "application/warc-record"),
            [("WARC-Payload-Digest", digest), ("WARC-Block-Digest", digest)],
            head=b"", payload=io.BytesIO(block), length=len(block))
        with self._lock:
            out = self._record_out(len(block) + 1024)
            (offset, size), = self._append(out, [record])
            return self._ref(record_id, offset, size)

    # ── internals (callers hold self._lock) ──────────────────────────────────

    def _record_out(self, size: int) -> _MemberOut:
        """Where records of about ``size`` bytes in all are gzipped before they are
        appended to the current file (opened or rotated here)."""
        if self._broken:
            raise ArchiveError(self._broken)
        if self._sink is not None and self._sink.size >= self.max_size:
            self._finish()
        if self._sink is None:
            self._start_file()
        return _new_out(size, self.archive_dir)

    def _append(self, out: _MemberOut, records: Sequence[ArcWarcRecord | _Record],
                levels: Sequence[int] = (), *, hashed: bool = False) -> list[tuple[int, int]]:
        """Gzip ``records`` into the spool (one member each, at ``levels`` or else the
        writer's level), append them to the file, and note their index lines. ``hashed``:
        take each member's SHA-256 (``member_sha256``; only an exchange's response needs
        it, for its provenance record)."""
        assert self._sink is not None
        base = self._sink.size
        spans: list[tuple[int, int]] = []
        with out.spool as spool:
            try:
                for i, record in enumerate(records):
                    start = spool.tell()
                    out.start(levels[i] if i < len(levels) else self.gzip_level, hashed)
                    if isinstance(record, _Record):
                        record.write(out)
                    else:
                        _warcio_writer(out).write_record(record)
                    spans.append((base + start, spool.tell() - start))
                # The SHA-256 of each gzip member exactly as stored, for provenance records.
                self.member_sha256 = out.member_sha256
                self._sink.append(spool)
            except OSError as exc:
                # The spool of a large record spills into the archive's folder: either
                # write failing is the archive's disk (nothing appended yet, or cut back).
                self._fail(base, exc)
        self._note_index(records, spans)
        return spans

    def _note_index(self, records: Sequence[ArcWarcRecord | _Record],
                    spans: Sequence[tuple[int, int]]) -> None:
        """Add the index lines of records just appended to the current file's spill (see
        ``_finish``); on any doubt, let ``_finish`` index the file by reading it instead."""
        spill = self._index_spill
        if spill is None:
            return
        name = self._sink_name
        try:
            for record, (offset, length) in zip(records, spans, strict=True):
                line = _index_line(record, name, offset, length)
                if line is _UNSURE:
                    raise ValueError(f"record {offset} of {name}: index it by reading")
                if line:
                    spill.write(line + "\n")
        except (OSError, ValueError) as exc:
            log.debug("%s: index lines will be read from the file: %s", name, exc)
            self._drop_spill()

    def _drop_spill(self) -> None:
        spill, self._index_spill = self._index_spill, None
        if spill is not None:
            with contextlib.suppress(OSError):
                spill.close()

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
        return WarcRef(path=self._sink_ref, offset=offset, length=length, record_id=record_id)

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
        # Named once per file: resolving the path for every record cost more than the gzip.
        self._sink_ref = ref_path(_final_name(path), self.root)
        self._sink_name = name
        self._drop_spill()
        # The index lines of this file, written as its records are (an unnamed temporary
        # file: nothing is left behind by a crash, and memory stays flat however large the
        # file grows). Without it the file is indexed by reading it when closed.
        try:
            self._index_spill = tempfile.TemporaryFile(  # noqa: SIM115
                "w+", encoding="utf-8", dir=self.archive_dir)
        except OSError as exc:
            log.debug("%s: no index spill, the file will be read when closed: %s", path, exc)
        out = _new_out()
        writer = _warcio_writer(out)
        info = {
            "software": f"archiver/{__version__}",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/"
                          "specifications/warc-format/warc-1.1/",
            "isPartOf": self.prefix,
            "run-id": self.run_id,
            "created": _isoformat(self.clock()),
        }
        record = writer.create_warcinfo_record(name, info)
        record.rec_headers.replace_header("WARC-Date", info["created"])
        self._append(out, [record])

    def _finish(self) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        final = _final_name(sink.path)
        lines = self._spilled_lines()
        try:
            self._close_and_index(sink, final, lines)
        finally:
            if lines is not None:
                lines.close()

    def _close_and_index(self, sink: _Sink, final: Path, lines: _SortedLines | None) -> None:
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
        # The lines noted while writing are those the indexer gives when reading the file
        # (tests/test_warc.py compares them); only without them is the file read again.
        _add_to_index(self.archive_dir, [final], None if lines is None else {final: lines})

    def _spilled_lines(self) -> _SortedLines | None:
        spill = self._index_spill
        if spill is None:
            return None
        try:
            return _SortedLines(spill, self.archive_dir)
        except OSError:
            return None
        finally:
            self._drop_spill()


#: Index lines sorted in memory at once (about 1.5 MB of them); a WARC file with more has
#: them sorted in runs, each in a temporary file, then merged.
_SORT_CHUNK = 4096


class _SortedLines:
    """The lines of ``spill`` (as ``splitlines`` gives them), sorted, in memory that does not
    grow with their number: every ``_SORT_CHUNK`` lines sorted into a temporary file in
    ``where``, the rest kept. Iterable again and again; ``close`` removes the files."""

    def __init__(self, spill: IO[str], where: Path) -> None:
        self._runs: list[IO[str]] = []
        chunk: list[str] = []
        try:
            spill.seek(0)
            for read in spill:
                chunk.extend(read.splitlines())
                if len(chunk) >= _SORT_CHUNK:
                    chunk.sort()
                    run = tempfile.TemporaryFile(  # noqa: SIM115 (closed by close)
                        "w+", encoding="utf-8", newline="\n", dir=where)
                    self._runs.append(run)
                    # No line holds a line break any more: each reads back as written.
                    run.writelines(line + "\n" for line in chunk)
                    run.flush()  # a full disk tells here, where the file can be read instead
                    chunk = []
        except BaseException:
            self.close()
            raise
        chunk.sort()
        self._rest = chunk

    def __iter__(self) -> Iterator[str]:
        if not self._runs:
            return iter(self._rest)
        runs = []
        for run in self._runs:
            run.seek(0)
            runs.append(line[:-1] for line in run)
        return heapq.merge(self._rest, *runs)

    def close(self) -> None:
        for run in self._runs:
            with contextlib.suppress(OSError):
                run.close()
        self._runs = []


def _record_id() -> str:
    """``<urn:uuid:…>`` of a random (version 4) UUID, as ``uuid.uuid4()`` makes it, without
    building a ``UUID`` object (four per capture)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"<urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}>"


def _field(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def ref_path(path: Path, root: Path) -> str:
    """How ``WarcRef.path`` names the WARC file ``path``: relative to ``root`` when inside."""
    return _ref_path(Path(path), Path(root))


@functools.lru_cache(maxsize=64)
def _ref_path(path: Path, root: Path) -> str:
    # Cached: every record of a file names the same file, and resolving both paths costs
    # a dozen system calls.
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _final_name(path: Path) -> Path:
    name = path.name
    return path.with_name(name[: -len(OPEN_SUFFIX)]) if name.endswith(OPEN_SUFFIX) else path


# ── recovery ────────────────────────────────────────────────────────────────


_SCAN_CHUNK = 1024 * 1024  # compressed bytes read at a time
_SCAN_OUT = 1024 * 1024  # decoded bytes produced at most per step
_MAX_WARC_HEAD = 1024 * 1024  # a WARC header block longer than this is not one of ours
_GZIP_MAGIC = b"\x1f\x8b\x08"
_END_OF_RECORD = b"\r\n\r\n"
_BLOCK_DIGESTS = frozenset({"md5", "sha1", "sha224", "sha256", "sha384", "sha512"})


@dataclass(frozen=True)
class MemberScan:
    """What ``scan_members`` found in a WARC file, as (offset, length) spans of gzip members.

    ``complete``: the members, from the start of the file, that each hold one complete WARC
    record; ``damage``: where the first byte that is not part of one lies (``None`` when the
    file ends cleanly after the last); ``beyond``: complete records found after the damage
    (empty for a torn tail, the common case after a crash).
    """

    size: int
    complete: tuple[tuple[int, int], ...]
    damage: int | None
    beyond: tuple[tuple[int, int], ...] = ()

    @property
    def records(self) -> int:
        return len(self.complete)

    @property
    def good_end(self) -> int:
        """The end of the last complete record before the damage (0 if none)."""
        return self.complete[-1][0] + self.complete[-1][1] if self.complete else 0


# WARC record types that must carry a WARC-Target-URI (WARC 1.1, section 5.7).
_TARGETED_TYPES = frozenset({b"response", b"request", b"revisit", b"resource", b"conversion",
                             b"continuation"})


class _RecordCheck:
    """Checks, as decoded bytes stream in, that they form exactly one complete WARC record:
    a ``WARC/1.x`` header block with a ``Content-Length``, that many block bytes (matching
    ``WARC-Block-Digest`` when it names an algorithm hashlib knows), then CRLF CRLF."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.length: int | None = None
        self.seen = 0
        self.trailer = b""
        self.hasher: hashlib._Hash | None = None
        self.expected = ""
        self.ok = True
        self.fields: dict[bytes, bytes] = {}

    def feed(self, data: bytes) -> bool:
        """Take the next decoded bytes; ``False`` once they cannot be one complete record."""
        if not self.ok or not data:
            return self.ok
        if self.length is None:
            searched = max(0, len(self.head) - 3)
            self.head += data
            if self.head[:5] != b"WARC/"[: len(self.head)]:
                self.ok = False
                return False
            end = self.head.find(b"\r\n\r\n", searched)
            if end < 0:
                self.ok = len(self.head) <= _MAX_WARC_HEAD
                return self.ok
            data = bytes(self.head[end + 4:])
            self.ok = self._parse_head(bytes(self.head[:end]))
            if not self.ok:
                return False
        assert self.length is not None
        need = self.length - self.seen
        if need > 0:
            block = data[:need]
            self.seen += len(block)
            if self.hasher is not None:
                self.hasher.update(block)
            data = data[need:]
        if data:
            self.trailer += data
            self.ok = _END_OF_RECORD.startswith(self.trailer)
        return self.ok

    def _parse_head(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        if not re.fullmatch(rb"WARC/1\.[01]", lines[0]):
            return False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                return False
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                if not value.isdigit():
                    return False
                self.length = int(value)
            elif name in (b"warc-type", b"warc-record-id", b"warc-date", b"warc-target-uri"):
                self.fields[name] = value
            elif name == b"warc-block-digest":
                algorithm, _, expected = value.decode("latin-1").partition(":")
                algorithm = algorithm.lower().replace("-", "")
                if algorithm in _BLOCK_DIGESTS:
                    self.hasher, self.expected = hashlib.new(algorithm), expected
        # The fields WARC 1.1 makes mandatory (section 5), and a target for the record types
        # that must name one: a record without them is not one this archive wrote, and
        # readers (the CDXJ indexer among them) fail on it.
        if self.length is None or not {b"warc-type", b"warc-record-id", b"warc-date"} \
                <= self.fields.keys():
            return False
        return (self.fields[b"warc-type"] not in _TARGETED_TYPES
                or bool(self.fields.get(b"warc-target-uri")))

    def complete(self) -> bool:
        if not (self.ok and self.length is not None and self.seen == self.length
                and self.trailer == _END_OF_RECORD):
            return False
        if self.hasher is None:
            return True
        raw = self.hasher.digest()
        return self.expected.upper() == b32encode(raw).decode("ascii") \
            or self.expected.lower() == raw.hex()


def _member_end(fh: IO[bytes], start: int) -> int | None:
    """Where the gzip member starting at ``start`` ends, if it decodes (zlib checks the CRC
    and length trailer) to one complete WARC record; ``None`` otherwise.

    Streams: at most ``_SCAN_CHUNK`` compressed and ``_SCAN_OUT`` decoded bytes are held.
    Offsets come from the input actually consumed: ``unconsumed_tail`` is trusted only while
    the member goes on, ``unused_data`` only once it has ended (at the end, Python 3.11 leaves
    the leftover input in both, and counting both put the end before the start).
    """
    fh.seek(start)
    decomp = zlib.decompressobj(wbits=31)
    check = _RecordCheck()
    buf = b""
    buf_start = start  # file offset of buf[0]
    pending = False  # zlib may hold decoded output back when the last step hit _SCAN_OUT
    # A small first read: after damage, many candidates may fail within their first bytes.
    size = _SCAN_CHUNK // 16
    while True:
        if not buf and not pending:
            buf = fh.read(size)
            size = _SCAN_CHUNK
            if not buf:
                return None  # the file ends inside the member
        try:
            out = decomp.decompress(buf, _SCAN_OUT)
        except zlib.error:
            return None
        pending = len(out) == _SCAN_OUT
        if not check.feed(out):
            return None
        if decomp.eof:
            end = buf_start + len(buf) - len(decomp.unused_data)
            return end if check.complete() else None
        tail = decomp.unconsumed_tail
        buf_start += len(buf) - len(tail)
        buf = tail


def _find_magic(fh: IO[bytes], start: int) -> int | None:
    """The offset of the first gzip member header at or after ``start``, or ``None``."""
    overlap = len(_GZIP_MAGIC) - 1
    position = start
    fh.seek(start)
    carry = b""
    while True:
        chunk = fh.read(_SCAN_CHUNK)
        if not chunk:
            return None
        data = carry + chunk
        found = data.find(_GZIP_MAGIC)
        if found >= 0:
            return position - len(carry) + found
        carry = data[-overlap:]
        position += len(chunk)


def scan_members(path: Path) -> MemberScan:
    """Walk the gzip members of the WARC file at ``path`` (see ``MemberScan``).

    A member counts only if it decodes with a good CRC and length AND holds exactly one
    complete WARC record. After the first member that does not, the rest of the file is
    searched for further complete records, so that damage in the middle is told apart from a
    torn tail. Raises ``OSError`` when the file cannot be read.
    """
    size = os.stat(path).st_size
    complete: list[tuple[int, int]] = []
    beyond: list[tuple[int, int]] = []
    with open(path, "rb") as fh:
        position = 0
        while position < size:
            end = _member_end(fh, position)
            if end is None:
                break
            complete.append((position, end - position))
            position = end
        if position >= size:
            return MemberScan(size, tuple(complete), None)
        damage = position
        candidate = _find_magic(fh, damage + 1)
        while candidate is not None:
            end = _member_end(fh, candidate)
            if end is not None:
                beyond.append((candidate, end - candidate))
                candidate = end if end < size else None
                if candidate is not None:
                    continue
                break
            candidate = _find_magic(fh, candidate + 1)
    return MemberScan(size, tuple(complete), damage, tuple(beyond))


def complete_members(path: Path) -> tuple[int, int]:
    """(records, bytes): how many complete WARC records, one gzip member each, the file
    starts with, and where the last of them ends (see ``scan_members``)."""
    scan = scan_members(path)
    return scan.records, scan.good_end


def recover(archive_dir: Path) -> list[Recovered]:
    """Repair or quarantine every ``*.warc.gz.open`` file in ``archive_dir`` that no live
    writer holds, and index closed files the index lacks (a crash between a file's rename and
    its indexing). Returns what was done to ``.open`` files. Never removes a byte of a
    complete record:

    * ``repaired``: complete records, then a torn tail (a crash mid-append) or bytes that hold
      no complete record (zeros after a power cut, garbage): the tail is cut off and the file
      closed under its final name.
    * ``damaged``: complete records, then bytes that are not one, then complete records again.
      The file is left exactly as found under ``quarantine/NAME.damaged``, and a copy of its
      records before the damage becomes the closed file (so their offsets stay right). The
      records after the damage stay only in the quarantined copy.
    * ``quarantined``: not one complete record at the start (not even the ``warcinfo``): the
      whole file moves to ``quarantine/``.

    ``Recovered.size`` is the closed file's size: a catalog entry pointing past it has lost
    its record (``Catalog.forget_lost_captures``). Raises ``ArchiveError`` naming the file
    when one cannot be read, cut, copied or renamed.
    """
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
            outcome = _recover_one(Path(archive_dir), path, fd)
            done.append(outcome)
            if outcome.action != "quarantined":
                repaired.append(outcome.path)
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot recover WARC file: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
    if done:
        _fsync_dir(Path(archive_dir))
    if repaired:
        _add_to_index(Path(archive_dir), repaired)  # replaces any lines already there
    # A crash between a file's rename and its indexing leaves a closed file out of the index.
    indexed = _indexed_files(Path(archive_dir))
    missing = [f for f in sorted(Path(archive_dir).glob("*.warc.gz")) if f.name not in indexed]
    if missing:
        _add_to_index(Path(archive_dir), missing)
    return done


def _recover_one(archive_dir: Path, path: Path, fd: int) -> Recovered:
    """Recover one ``.open`` file, held locked through ``fd`` (see ``recover``)."""
    scan = scan_members(path)
    final = _final_name(path)
    quarantine = archive_dir / QUARANTINE
    if scan.records == 0:
        quarantine.mkdir(exist_ok=True)
        target = _unused(quarantine / path.name)
        os.rename(path, target)
        return Recovered(target, "quarantined", 0, scan.size, size=0,
                         found_beyond=len(scan.beyond))
    if not scan.beyond:
        # A torn tail: nothing complete comes after the last complete record.
        os.ftruncate(fd, scan.good_end)
        os.fsync(fd)
        os.rename(path, final)
        return Recovered(final, "repaired", scan.records, scan.size - scan.good_end,
                         size=scan.good_end)
    # Damage in the middle: keep the file whole, and close a copy of what precedes it.
    quarantine.mkdir(exist_ok=True)
    kept = _unused(quarantine / (final.name + ".damaged"))
    partial = path.with_name(path.name + ".partial")
    with open(path, "rb") as src, open(partial, "wb") as dst:
        left = scan.good_end
        while left:
            chunk = src.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError(errno.EIO, "file shrank while being recovered")
            dst.write(chunk)
            left -= len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    # In this order, a crash in between leaves the .open file to be recovered again.
    os.rename(partial, final)
    os.rename(path, kept)
    return Recovered(final, "damaged", scan.records, scan.size - scan.good_end,
                     size=scan.good_end, found_beyond=len(scan.beyond), kept=kept)


def _unused(path: Path) -> Path:
    """``path``, or ``path.1``, ``path.2``...: whichever does not exist yet (quarantine keeps
    everything, so nothing there is ever replaced)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _indexed_files(archive_dir: Path) -> set[str]:
    index = archive_dir / INDEX_NAME
    if not index.exists():
        return set()
    with open(index, encoding="utf-8") as fh:
        return {name for read in fh for line in read.splitlines()
                if (name := _line_filename(line))}


# ── index ───────────────────────────────────────────────────────────────────


def _index_lines(archive_dir: Path, files: Sequence[Path]) -> list[str]:
    """The CDXJ lines of ``files``, file by file: a file the indexer cannot read (a record
    this archive did not write) is left out of the index with a warning, so it cannot stop
    every later run; ``archiver verify`` names it."""
    lines: list[str] = []
    for file in files:
        out = io.StringIO()
        try:
            _indexer().write_cdx_index(out, [str(file)],
                                       {"sort": False, "dir_root": str(archive_dir)})
        except OSError:
            raise
        except Exception as exc:  # the indexer's own errors on a malformed record
            log.warning("%s: left out of the index: %s: %s", file, type(exc).__name__, exc)
            continue
        lines += [line for line in out.getvalue().splitlines()
                  if line and not line.startswith("!")]
    return lines


@contextlib.contextmanager
def _index_lock(archive_dir: Path) -> Iterator[None]:
    with open(archive_dir / (INDEX_NAME + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _write_index(archive_dir: Path, lines: Iterable[str]) -> Path:
    target = archive_dir / INDEX_NAME
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            # Joined a few thousand at a time: the index grows with every run, and a write
            # call per line was most of the time spent writing it.
            each = iter(lines)
            while chunk := list(itertools.islice(each, 4096)):
                chunk.append("")
                fh.write("\n".join(chunk))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        # A full disk leaves the old index whole; the part written would only hold space.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def _add_to_index(archive_dir: Path, files: Sequence[Path],
                  known: dict[Path, Iterable[str]] | None = None) -> None:
    """Put the lines of ``files`` in the index: those in ``known`` (noted as the file was
    written; sorted, and iterable more than once), the others read from the file."""
    known = known or {}
    try:
        unknown = [f for f in files if f not in known]
        new = _index_lines(archive_dir, unknown) if unknown else []
        new.sort()
        noted = [known[f] for f in files if f in known]
        with _index_lock(archive_dir):
            index = archive_dir / INDEX_NAME
            names = {f.relative_to(archive_dir).as_posix() for f in files}
            # Re-indexing a file replaces its lines rather than doubling them. The index on
            # disk is sorted: merged with the new lines as it is read, it is never held in
            # memory whole (it grows with the archive, and every worker process adds to it).
            try:
                _write_index(archive_dir, _merged(_kept_lines(index, names),
                                                  heapq.merge(new, *noted)))
            except _Unsorted:  # not as this module writes it: sorted here, all at once
                old = index.read_text("utf-8").splitlines()
                kept = [line for line in old if _line_filename(line) not in names]
                _write_index(archive_dir, sorted(
                    [*kept, *new, *(line for lines in noted for line in lines)]))
    except OSError as exc:
        raise ArchiveError(f"{archive_dir / INDEX_NAME}: cannot update index: "
                           f"{exc.strerror or exc}") from exc


def _merged(kept: Iterable[str], added: Iterable[str]) -> Iterator[str]:
    """``kept`` and ``added`` (each sorted) as one sorted run, as ``heapq.merge(kept,
    added)`` gives it (a line of ``kept`` before an equal one of ``added``), with one
    comparison per line kept; both read lazily (a file's lines may be many)."""
    kept, added = iter(kept), iter(added)
    head = next(added, None)
    if head is None:
        yield from kept
        return
    for line in kept:
        while head < line:
            yield head
            head = next(added, None)
            if head is None:
                yield line
                yield from kept
                return
        yield line
    yield head
    yield from added


class _Unsorted(Exception):
    """The index file's lines are not in order."""


def _kept_lines(index: Path, names: set[str]) -> Iterator[str]:
    """The lines of ``index`` (none if there is none yet), as ``splitlines`` gives them,
    except those of the files ``names``; raises ``_Unsorted`` at a line that sorts before
    the one kept before it."""
    try:
        fh = open(index, encoding="utf-8")  # noqa: SIM115 (closed below, read lazily)
    except FileNotFoundError:
        return
    # A line whose text holds none of the names is none of theirs, without reading its
    # name: one substring search per line, where most lines are other files' (every run's).
    # Only for names JSON writes as they are (this module's file names are).
    plain = all(_PLAIN_NAME.fullmatch(name) for name in names)
    with fh:
        last = ""
        for read in fh:
            for line in read.splitlines():
                if (not plain or any(name in line for name in names)) \
                        and _line_filename(line) in names:
                    continue
                if line < last:
                    raise _Unsorted
                last = line
                yield line


_INDEXED_TYPES = frozenset({"response", "revisit", "resource", "metadata"})
_HTTP_TYPES = frozenset({"response", "revisit"})
_MIME_END = re.compile(r"[;\s]")
_UNSURE = "?"  # _index_line's answer when only reading the file can tell


def _index_line(record: ArcWarcRecord | _Record, filename: str, offset: int,
                length: int) -> str | None:
    """The line ``cdxj-indexer`` (as ``_index_lines`` runs it) writes for ``record``, just
    written as the gzip member at ``offset``, ``length`` bytes long, of ``filename``;
    ``None`` for a record it leaves out, ``_UNSURE`` when only reading the file can tell.

    It follows the indexer step by step, from the same parsed headers: its reader parses the
    stored HTTP head with the parser ``_RawHead`` used on the same bytes, and the WARC head
    as warcio wrote it from ``record.rec_headers``. Fields: url, mime, status, digest,
    length, offset, filename, those without a value left out."""
    kind = record.rec_type
    warc = record.rec_headers
    if kind not in _INDEXED_TYPES:
        return None
    if kind in ("resource", "metadata") \
            and warc.get_header("Content-Type") == "application/warc-fields":
        return None
    url = warc.get_header("WARC-Target-URI")
    date = warc.get_header("WARC-Date")
    digest = warc.get_header("WARC-Payload-Digest")
    if not url or not date or not digest or url != url.strip():
        return _UNSURE  # the reader would strip or compute something: let it
    # As the reader corrects a target (warcio's _ensure_target_uri_format).
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1]
    url = url.replace(" ", "%20")
    http: StatusAndHeaders | None = None
    if kind in _HTTP_TYPES and url.startswith(("http:", "https:")):
        http = record.http_headers
        if not isinstance(http, _RawHead):
            return _UNSURE
    mime: str | None
    if kind == "revisit":
        mime = "warc/revisit"
    elif kind == "response":
        mime = http.get_header("Content-Type") if http else None
    else:
        mime = warc.get_header("Content-Type")
    if mime:
        mime = _MIME_END.split(mime, 1)[0].strip()
    fields: dict[str, str] = {"url": url}
    if mime is not None:
        fields["mime"] = mime
    if http:
        fields["status"] = http.get_statuscode()
    fields |= {"digest": digest, "length": str(length), "offset": str(offset),
               "filename": filename}
    # json.dumps(fields), written out: every value is a string.
    data = ", ".join([f"{_json_string(k)}: {_json_string(v)}" for k, v in fields.items()])
    return f"{url_key(url)} {_timestamp_of(date)} {{{data}}}"


_json_string = json.encoder.encode_basestring_ascii  # what json.dumps quotes strings with


@functools.lru_cache(maxsize=64)
def _timestamp_of(date: str) -> str:
    # The records of one capture share their date.
    return str(iso_date_to_timestamp(date))


def _line_filename(line: str) -> str | None:
    """The ``filename`` of an index line; ``None`` if it has none or is not one."""
    # Every run reads every line of the index at least twice (``_indexed_files`` at its
    # start, ``_kept_lines`` as each WARC file joins it), and the index grows by every
    # capture of every run: the name is taken from the line's end where it is the JSON
    # object's last member, as this module and the indexer write it, without parsing the
    # line. That is exact for a JSON line: a name without quotes or backslashes closed by
    # the line's last characters, '"}', is the value of the last member, and the key before
    # it, preceded by "{" or ", ", is that member's. Anything else is parsed.
    parts = line.split(" ", 2)
    if len(parts) < 3:
        return None
    body = parts[2]
    at = body.rfind(_FILENAME_KEY)
    if body.startswith("{") and body.endswith('"}') and at > 0 \
            and (body[at - 1] == "{" or body[at - 2:at] == ", "):
        name = body[at + len(_FILENAME_KEY):-2]
        if '"' not in name and "\\" not in name:
            return name
    try:
        found = json.loads(body).get("filename")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


_FILENAME_KEY = '"filename": "'
# A file name that JSON holds as it is (no character it escapes).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._/-]+")


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
    """The SURT key the index sorts by: the indexer's own (``surt.surt``), built from
    remembered per-host parts where that is provably the same (``archiver.surtkey``)."""
    return surtkey.url_key(url)


def preload() -> None:
    """Import what writing records needs, ahead of forking writers: the ``surt`` package
    that index lines' keys are built with. ``cdxj-indexer`` itself (``_indexer``: another
    0.12 s, mostly ``pyamf`` and ``pkg_resources``) is left to the rare writer that needs
    it: one indexing a file it did not write or a record it cannot index from its headers
    alone, or a key for a URL ``archiver.surtkey`` leaves to ``surt.surt``."""
    surtkey.preload()


def _indexer() -> Any:
    """``cdxj_indexer.main``, imported on first use: with its dependencies (surt,
    tldextract, requests, pkg_resources) it takes longer to import than the rest of the
    archiver, and most commands never index."""
    import cdxj_indexer.main

    return cdxj_indexer.main


def index_lines(archive_dir: Path) -> list[str]:
    """The sorted lines of the archive's ``index.cdxj`` (none if there is no index yet), for
    many ``lookup`` calls on one read."""
    index = Path(archive_dir) / INDEX_NAME
    if not index.exists():
        return []
    return index.read_text("utf-8").splitlines()


def lookup(archive_dir: Path, url: str, *, lines: list[str] | None = None) -> list[IndexEntry]:
    """Every indexed capture of ``url`` (response and revisit records), oldest first.
    ``lines`` is the index as ``index_lines`` read it; without it, the index is read."""
    if lines is None:
        lines = index_lines(archive_dir)
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
