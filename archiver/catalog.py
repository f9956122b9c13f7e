"""The archive's catalog: an embedded SQLite database at ``archive/catalog.sqlite3``.

The only code that touches the database. It records runs, every fetch attempt, the captures
(where each response record lives in the WARC files), every check's verdict (the history that
``archiver.history`` turns into a link's state), the citations, and cached Wayback lookups.

How it stays sound:

* WAL journal with ``synchronous=NORMAL``: readers (``archiver show``, reports) never wait for a
  writer, and a process killed at any moment leaves the database consistent (a kill -9 loses at
  most the transaction in flight; a power cut may lose the last few commits, never corrupt).
* Every write is one transaction (``BEGIN IMMEDIATE``); ``Catalog.transaction()`` groups several.
  An exception inside rolls back everything written inside.
* Foreign keys are enforced; the schema carries its version in ``schema_version`` and is brought
  forward by the ``_MIGRATIONS`` list on open. A catalog from a newer archiver is refused.
* ``Catalog.lock()`` takes an exclusive ``fcntl.flock`` on ``archive/.lock`` for a whole run or
  check: a second run on the same archive refuses at once with ``ArchiveLockedError`` (or waits
  ``wait`` seconds). The kernel drops the lock when its holder dies, even by kill -9, so a crash
  never leaves a stale lock; a run left "running" by a crash reads as "interrupted".

Times go in as timezone-aware datetimes (naive ones are a ``ValueError``: a bug, not input) and
come out as UTC datetimes. SQLite failures (disk full, a file that is not a database, a catalog
from a newer version) raise ``ArchiveError`` naming the catalog file.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import fcntl
import functools
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from archiver import __version__
from archiver.config import CheckSettings
from archiver.errors import ArchiveError, ArchiveLockedError
from archiver.history import (
    NEVER_DEAD,
    NOT_A_NETWORK_TEST,
    LinkStatus,
    Streak,
    status_of,
)
from archiver.models import (
    Capture,
    Footnote,
    FootnoteRef,
    Judgement,
    Memento,
    Verdict,
    WarcRef,
    isoformat,
    utcnow,
)
from archiver.warc import PayloadSeen

__all__ = [
    "CATALOG_NAME",
    "LOCK_NAME",
    "SCHEMA_VERSION",
    "AttemptRow",
    "CachedLookup",
    "Catalog",
    "CitationRow",
    "LookupFailure",
    "PackedText",
    "PreviousRead",
    "RunRow",
    "StoredBrowser",
    "StoredCapture",
    "StoredResult",
    "archive_lock",
]

CATALOG_NAME = "catalog.sqlite3"
LOCK_NAME = ".lock"

RUN_KINDS = ("run", "check", "rescue")
RUN_STATUSES = ("ok", "interrupted", "failed")

# ── schema ───────────────────────────────────────────────────────────────────
# Each entry brings the schema from version N-1 to N. Append, never edit a shipped entry.

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            id          INTEGER PRIMARY KEY,
            kind        TEXT NOT NULL CHECK (kind IN ('run', 'check', 'rescue')),
            started_at  TEXT NOT NULL,
            finished_at TEXT,
            status      TEXT NOT NULL
                        CHECK (status IN ('running', 'ok', 'interrupted', 'failed')),
            sources     TEXT NOT NULL,
            summary     TEXT,
            offline     INTEGER NOT NULL DEFAULT 0,
            pid         INTEGER NOT NULL,
            host        TEXT NOT NULL,
            version     TEXT NOT NULL
        )""",
        """CREATE TABLE attempts (
            id      INTEGER PRIMARY KEY,
            run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            url     TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            status  INTEGER,
            error   TEXT,
            waited  REAL NOT NULL DEFAULT 0,
            at      TEXT NOT NULL
        )""",
        "CREATE INDEX attempts_by_url ON attempts (url, at)",
        "CREATE INDEX attempts_by_run ON attempts (run_id)",
        # Extracted text, keyed by payload digest: a revisit's text is the original's.
        """CREATE TABLE texts (
            digest TEXT PRIMARY KEY,
            text   BLOB NOT NULL
        )""",
        """CREATE TABLE captures (
            id             INTEGER PRIMARY KEY,
            run_id         INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            url            TEXT NOT NULL,
            final_url      TEXT NOT NULL,
            status         INTEGER NOT NULL,
            warc_path      TEXT,
            warc_offset    INTEGER,
            warc_length    INTEGER,
            record_id      TEXT,
            payload_digest TEXT NOT NULL,
            captured_at    TEXT NOT NULL,
            content_type   TEXT,
            fingerprint    TEXT,
            revisit        INTEGER NOT NULL DEFAULT 0,
            title          TEXT,
            truncated      TEXT,
            attempts       INTEGER NOT NULL DEFAULT 1,
            CHECK ((warc_path IS NULL) = (record_id IS NULL))
        )""",
        "CREATE INDEX captures_by_url ON captures (url, captured_at)",
        "CREATE INDEX captures_by_final_url ON captures (final_url, captured_at)",
        "CREATE INDEX captures_by_digest ON captures (payload_digest, revisit, captured_at)",
        """CREATE TABLE results (
            id          INTEGER PRIMARY KEY,
            run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            url         TEXT NOT NULL,
            verdict     TEXT NOT NULL,
            reason      TEXT NOT NULL DEFAULT '',
            http_status INTEGER,
            final_url   TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            checked_at  TEXT NOT NULL,
            outage      INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX results_by_url ON results (url, checked_at)",
        "CREATE INDEX results_by_run ON results (run_id)",
        """CREATE TABLE citations (
            source_id TEXT NOT NULL,
            footnote  INTEGER NOT NULL,
            position  INTEGER NOT NULL,
            url       TEXT NOT NULL,
            PRIMARY KEY (source_id, footnote, url)
        )""",
        "CREATE INDEX citations_by_url ON citations (url)",
        # ``near`` is the date the lookup aimed at ('' for none): sources citing one URL with
        # different publication dates want different nearest copies.
        """CREATE TABLE mementos (
            url              TEXT NOT NULL,
            near             TEXT NOT NULL DEFAULT '',
            looked_up_at     TEXT NOT NULL,
            found            INTEGER NOT NULL,
            memento_url      TEXT,
            memento_datetime TEXT,
            original_url     TEXT,
            raw_url          TEXT,
            status           INTEGER,
            PRIMARY KEY (url, near)
        )""",
    ),
    # 2: Save Page Now submissions, so a weekly check does not submit a live link again.
    (
        """CREATE TABLE saves (
            id           INTEGER PRIMARY KEY,
            url          TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            status       TEXT NOT NULL,
            job_id       TEXT,
            message      TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX saves_url ON saves (url, requested_at)",
    ),
    # 3: Wayback lookups that could not be made (archive unreachable, rate-limited). Kept
    # apart from ``mementos`` so that a failure is never read as "no copy" and never
    # replaces an answer; a later answer for the same (url, near) removes it.
    (
        """CREATE TABLE lookup_failures (
            url       TEXT NOT NULL,
            near      TEXT NOT NULL DEFAULT '',
            failed_at TEXT NOT NULL,
            kind      TEXT NOT NULL,
            error     TEXT NOT NULL DEFAULT '',
            requests  INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (url, near)
        )""",
    ),
    # 4: browser captures (archiver.browse): how each capture was made, its screenshot and
    # rendered-text records, and the rendered text itself (the ``texts`` table is keyed by
    # the document's payload digest, which an app shell shares with every route of its app).
    # A capture that wanted the browser and could not have it is recorded with mode 'http'
    # and ``lost`` saying why, so the report can name it.
    (
        """CREATE TABLE browser_captures (
            capture_id     INTEGER PRIMARY KEY REFERENCES captures (id) ON DELETE CASCADE,
            mode           TEXT NOT NULL CHECK (mode IN ('browser', 'http')),
            wanted         TEXT NOT NULL DEFAULT '',
            lost           TEXT,
            profile        INTEGER NOT NULL DEFAULT 0,
            shot_path      TEXT,
            shot_offset    INTEGER,
            shot_length    INTEGER,
            shot_record_id TEXT,
            text_path      TEXT,
            text_offset    INTEGER,
            text_length    INTEGER,
            text_record_id TEXT,
            text           BLOB
        )""",
    ),
    # 5: claim support levels per run, per (source, footnote, URL): ``check`` compares with
    # the previous one to report a page that no longer holds the claim's facts. ``found``
    # is a JSON list of the facts (as the claim words them) the page held.
    (
        """CREATE TABLE support_levels (
            run_id   INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            source   TEXT NOT NULL,
            footnote INTEGER NOT NULL,
            url      TEXT NOT NULL,
            level    TEXT NOT NULL
                     CHECK (level IN ('supported', 'partial', 'unsupported', 'unknown')),
            found    TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (source, footnote, url, run_id)
        )""",
    ),
    # 6: provenance of each capture (archiver.provenance), keyed by its response record.
    (
        """CREATE TABLE provenance (
            record_id   TEXT PRIMARY KEY,
            cited_url   TEXT NOT NULL,
            metadata_id TEXT,
            document    TEXT NOT NULL,
            sha256      TEXT NOT NULL
        )""",
    ),
    # 7: claim support judged before (archiver.support_store), by the judging code's digest,
    # the packed text's digest, the kind it was read as and the claims' digest: reused for
    # the same text and claims rather than judged again; ``used``: the day (YYYY-MM-DD) a
    # run last judged or took it. A cache: its rows may be deleted.
    (
        """CREATE TABLE judged_supports (
            rules  TEXT NOT NULL,
            text   TEXT NOT NULL,
            kind   TEXT NOT NULL,
            claims TEXT NOT NULL,
            judged TEXT NOT NULL,
            used   TEXT NOT NULL,
            PRIMARY KEY (rules, text, kind, claims)
        ) WITHOUT ROWID""",
        "CREATE INDEX judged_supports_by_use ON judged_supports (used)",
    ),
    # 8: how the capture stage read a capture's payload (``capturing.PageMemo``: the reading
    # rules' digest, the Content-Encoding, the packed text's digest and the page's other
    # fields), so that a re-fetch of the same payload is not read again. NULL where it was
    # not kept (a browser's capture, a PDF, a capture recorded before version 8).
    (
        "ALTER TABLE captures ADD COLUMN page TEXT",
    ),
)

SCHEMA_VERSION = len(_MIGRATIONS)


# ── records ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class RunRow:
    """One ``run``/``check``/``rescue``. ``status`` is ``running``, ``ok``, ``interrupted`` or
    ``failed``; a run whose process died before ``finish_run`` reads as ``interrupted``."""

    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    sources: tuple[str, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)
    offline: bool = False
    pid: int = 0
    version: str = ""


@dataclass(frozen=True)
class AttemptRow:
    """One fetch attempt of a URL (attempt numbers start at 1)."""

    run_id: int
    url: str
    attempt: int
    outcome: str
    status: int | None
    error: str | None
    waited: float
    at: datetime


@dataclass(frozen=True)
class ResultIn:
    """One verdict to record (``record_results``), as ``record_result`` takes it."""

    run_id: int
    url: str
    judgement: Judgement
    http_status: int | None
    final_url: str | None
    attempts: int
    checked_at: datetime
    outage: bool = False


#: One capture to record (``record_captures``): the capture, its text (or the text as
#: ``pack_text`` made it), its title and its text's fingerprint, and optionally how its
#: payload was read (``capturing.PageMemo``, as JSON).
CaptureIn = (tuple[Capture, str | bytes | None, str | None, str | None]
             | tuple[Capture, str | bytes | None, str | None, str | None, str | None])


@dataclass(frozen=True)
class PreviousRead:
    """The newest capture of a URL as the capture stage meets a re-fetch of it
    (``Catalog.previous_read``): its ``payload_digest`` and ``content_type``, its text as
    the catalog keeps it (``packed``: the first text read from that payload), its
    ``fingerprint``, the text a browser rendered of it (``rendered``, if any) and how its
    own payload was read (``page``: ``capturing.PageMemo`` as JSON; ``None`` when not
    kept). The text is unpacked only when asked for."""

    payload_digest: str
    content_type: str | None
    packed: bytes | None
    fingerprint: str | None
    rendered: str | None
    page: str | None

    @functools.cached_property
    def utf8(self) -> bytes | None:
        """``packed`` inflated: the text's UTF-8; ``None`` when there is none or it is
        damaged (as if none were kept: the page is read afresh)."""
        if self.packed is None:
            return None
        try:
            return PackedText(self.packed).inflated()
        except zlib.error:
            return None

    @functools.cached_property
    def text(self) -> str | None:
        """``utf8`` decoded; ``None`` as there, or when it is not UTF-8."""
        try:
            return self.utf8.decode("utf-8") if self.utf8 is not None else None
        except UnicodeDecodeError:
            return None

    @property
    def comparable(self) -> tuple[str, str | None] | None:
        """The text the capture is compared by, and that text's stored
        ``history.text_fingerprint`` when it is known to be of that very text: its
        browser-rendered text if it has one (no fingerprint: the row's is of the text recorded
        with the capture), else the text extracted from its payload with its fingerprint;
        ``None`` when it has no text."""
        if self.rendered is not None:
            return self.rendered, None
        text = self.text
        return (text, self.fingerprint) if text is not None else None


@dataclass(frozen=True)
class StoredCapture:
    """A capture as the catalog holds it.

    ``warc`` is the record written for this fetch (a ``response``, or a ``revisit`` when
    ``revisit``); ``payload`` is the record that holds the payload bytes: ``warc`` itself for a
    response, the original response for a revisit (``None`` if that original is unknown).
    ``text`` is the extracted text, when one was recorded for this payload.
    """

    id: int
    run_id: int
    url: str
    final_url: str
    status: int
    warc: WarcRef | None
    payload: WarcRef | None
    payload_digest: str
    captured_at: datetime
    content_type: str | None
    revisit: bool
    title: str | None
    fingerprint: str | None
    truncated: str | None
    attempts: int
    text: str | None = None


@dataclass(frozen=True)
class StoredBrowser:
    """How a capture was made (``mode``: ``"browser"`` or ``"http"``), for captures that
    went to the browser or wanted to: ``wanted`` says why the browser was chosen, ``lost``
    why it could not be used; ``screenshot``/``text_record`` are the resource records and
    ``text`` the rendered text of a browser capture; ``profile``: a logged-in profile."""

    capture_id: int
    mode: str
    wanted: str
    lost: str | None
    profile: bool
    screenshot: WarcRef | None
    text_record: WarcRef | None
    text: str | None


@dataclass(frozen=True)
class StoredResult:
    """One link's verdict in one run or check (``outage``: recorded during an outage, so it
    changes nothing in the link's history)."""

    run_id: int
    url: str
    verdict: Verdict
    reason: str
    http_status: int | None
    final_url: str | None
    attempts: int
    checked_at: datetime
    outage: bool = False


def _blob(value: object) -> bytes | None:
    """A packed text as read from the catalog: ``None`` for anything but a blob (a text
    column written by other hands), which every reader then takes for no text kept rather
    than fail on (a blob that does not unpack is ``PackedText``'s to report)."""
    return value if isinstance(value, bytes) else None


def pack_text(text: str, deflate: Any = zlib, level: int = 1) -> bytes:
    """A page text as the ``texts`` table keeps it: UTF-8, zlib level 1 (fast; page texts
    shrink to about a third). ``deflate``: the module that compresses (``zlib``, or isal's
    ``isal_zlib``: the same format in other bytes), at ``level`` of that module."""
    return bytes(deflate.compress(text.encode("utf-8"), level))


@dataclass(frozen=True)
class PackedText:
    """A text as the catalog keeps it (``pack_text``: page texts and browser-rendered texts),
    unpacked only as far as a reader needs: a report's excerpt needs the first few hundred
    characters of a page, and unpacking a whole page text costs several times that."""

    blob: bytes

    def text(self) -> str:
        """The whole text. Raises ``zlib.error`` or ``UnicodeDecodeError`` for a damaged
        blob."""
        return self.inflated().decode("utf-8")

    def inflated(self) -> bytes:
        """The whole text's UTF-8 bytes (zlib lets go of the GIL meanwhile: a thread may do
        it). Raises ``zlib.error`` for a damaged blob."""
        return zlib.decompress(self.blob)

    def text_up_to(self, size: int) -> str | None:
        """The whole text if its UTF-8 takes at most ``size`` bytes, unpacking no more than
        ``size + 1`` of them (a text of millions of characters that repeat packs small);
        ``None`` when it is longer, or not a whole stream. Raises ``zlib.error`` or
        ``UnicodeDecodeError`` for a damaged blob."""
        inflate = zlib.decompressobj()
        raw = inflate.decompress(self.blob, size + 1)
        if len(raw) > size or not inflate.eof or inflate.unused_data:
            return None
        return raw.decode("utf-8")

    def head(self, chars: int) -> tuple[str, bool]:
        """The text's first ``chars`` characters (all of it when shorter) and whether that
        is the whole text, unpacking at most ``4 * chars + 4`` bytes of it (UTF-8 takes at
        most four bytes a character). Fails as ``text`` does for a damaged blob."""
        limit = 4 * max(chars, 0) + 4
        inflate = zlib.decompressobj()
        raw = inflate.decompress(self.blob, limit)
        if len(raw) < limit:  # the output was not cut: this is the whole text
            if not inflate.eof:
                return self.text(), True  # a truncated stream: raises as text() does
            text = raw.decode("utf-8")
            return text[:chars], len(text) <= chars
        # ``limit`` bytes hold at least chars + 1 whole characters; a character cut at the
        # end is left out (an incremental decoder keeps it back).
        head = codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
        return head[:chars], False


#: The kept supports of a JSON list of [text, kind, claims] keys (parameters: the list, the
#: rules), each found by its primary key.
_KEYED_SUPPORTS = (
    " FROM json_each(?) w CROSS JOIN judged_supports j ON j.rules = ?"
    " AND j.text = json_extract(w.value, '$[0]') AND j.kind = json_extract(w.value, '$[1]')"
    " AND j.claims = json_extract(w.value, '$[2]')")


#: Later than any time the catalog holds (``_ts``'s form): no cutoff.
_NO_END = "9999-12-31T23:59:59.999999+00:00"
#: URLs per query of ``Catalog.link_statuses``.
_STATES_AT_ONCE = 512


def _wanted(urls: Sequence[str]) -> str:
    """``urls``, each once, as the JSON list the bulk reads take (``json_each``): a read
    that writes nothing, where a temporary table of them cost an insert per URL."""
    return json.dumps(list(dict.fromkeys(urls)))


@dataclass(frozen=True)
class LinkFacts:
    """What the catalog holds on one cited URL, read for many URLs at once (``link_facts``):
    its newest verdict that is not an outage's (``last``, whenever it was checked), what
    its state at the moment asked for is made from (``streak``: ``history.status_of`` gives
    the state), the newest capture
    whose payload the archive holds (``latest_capture``), how it was made (``browser``), its
    provenance row (``provenance``) and the cached lookup aimed at the date asked for
    (``lookup``). The capture's text is left packed: ``capture.text`` and ``browser.text``
    are ``None``, and ``text`` is the text the link is read by, the browser-rendered one
    when the capture has it, else the one extracted from its payload."""

    last: StoredResult | None = None
    streak: Streak = field(default_factory=Streak)
    capture: StoredCapture | None = None
    browser: StoredBrowser | None = None
    provenance: tuple[str, str, str | None] | None = None
    lookup: CachedLookup | None = None
    text: PackedText | None = None


@dataclass(frozen=True)
class CitationRow:
    source_id: str
    footnote: int
    url: str


@dataclass(frozen=True)
class LookupFailure:
    """The newest lookup of ``url`` (aimed at ``near``) that could not be made: ``kind`` is
    ``rescue.LookupResult.failure`` ("unreachable", "rate_limited", "failed"), ``error`` the
    detail, ``requests`` how many HTTP requests it sent (0: not attempted at all)."""

    url: str
    failed_at: datetime
    kind: str
    error: str
    requests: int
    near: date | None = None


@dataclass(frozen=True)
class CachedLookup:
    """A cached Wayback lookup: ``memento`` is ``None`` when none was found."""

    url: str
    looked_up_at: datetime
    memento: Memento | None
    near: date | None = None


# ── helpers ──────────────────────────────────────────────────────────────────


def _ts(moment: datetime) -> str:
    """A sortable UTC text form (fixed width, microseconds kept)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the catalog stores timezone-aware times")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"cannot store {type(value).__name__} in a run summary")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(path: Path) -> tuple[int | None, str]:
    """The pid and start time the lock holder wrote into the lock file."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except OSError:
        return None, "?"
    pid = int(words[0]) if words and words[0].isascii() and words[0].isdigit() else None
    started = words[1] if len(words) > 1 else "?"
    return pid, started


@contextlib.contextmanager
def archive_lock(archive_dir: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the exclusive lock of ``archive_dir`` (``archive_dir/.lock``) for the block.

    Refuses at once (or after ``wait`` seconds of polling) with ``ArchiveLockedError`` naming
    the holder's pid and start time. Uses ``flock``: the kernel releases it when the holder's
    process ends in any way. The lock belongs to this open file, so taking it twice, even in
    one process, refuses too.
    """
    archive_dir = Path(archive_dir)
    path = archive_dir / LOCK_NAME
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot open the archive lock: {exc.strerror}") from exc
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ArchiveError(f"{path}: cannot lock the archive: {exc.strerror}") from exc
                if time.monotonic() >= deadline:
                    pid, started = _read_holder(path)
                    who = f"pid {pid}" if pid is not None else "pid unknown"
                    raise ArchiveLockedError(
                        f"{archive_dir}/ is in use by another run ({who}, started {started})"
                    ) from None
                time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {isoformat(utcnow())}\n".encode(), 0)
        try:
            yield
        finally:
            # Emptied on a clean release, so a pid left in the file means its run died.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ── the catalog ──────────────────────────────────────────────────────────────


class Catalog:
    """The archive's SQLite catalog. Open with ``Catalog.open(archive_dir)``; use as a context
    manager or call ``close()``. One instance may be shared by threads (calls are serialised)."""

    def __init__(self, archive_dir: Path, connection: sqlite3.Connection) -> None:
        self.dir = archive_dir
        self.path = archive_dir / CATALOG_NAME
        self._db = connection
        self._mutex = threading.RLock()
        self._depth = 0
        self._locked = False
        self._open_runs: set[int] = set()
        self._host = socket.gethostname()

    # ── opening ──

    @classmethod
    def open(cls, archive_dir: Path | str) -> Catalog:
        """Open (creating the folder, database and schema if needed) the catalog of
        ``archive_dir``. Raises ``ArchiveError`` if the folder cannot be created, the file is
        not a SQLite database, or it was written by a newer archiver."""
        archive_dir = Path(archive_dir)
        path = archive_dir / CATALOG_NAME
        try:
            archive_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"{archive_dir}: cannot create the archive folder: "
                               f"{exc.strerror or exc}") from exc
        try:
            db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ArchiveError(f"{path}: cannot open the catalog: {exc}") from exc
        catalog = cls(archive_dir, db)
        try:
            with catalog._errors("open"):
                db.execute("PRAGMA journal_mode=WAL").fetchone()
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA foreign_keys=ON")
                catalog._migrate()
        except BaseException:
            db.close()
            raise
        return catalog

    @classmethod
    def open_reader(cls, archive_dir: Path | str) -> Catalog:
        """A read-only view of an existing catalog (a worker process of a run asks it
        which payloads earlier runs archived); it never migrates or writes. Raises
        ``ArchiveError`` when the catalog cannot be opened."""
        archive_dir = Path(archive_dir)
        path = archive_dir / CATALOG_NAME
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0,
                                 isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ArchiveError(f"{path}: cannot open the catalog: {exc}") from exc
        return cls(archive_dir, db)

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._errors("read"):
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, archiver TEXT NOT NULL)"
        )
        with self.transaction():
            # Read inside the write transaction: two processes opening a fresh folder at
            # once must not both apply the same step.
            row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
            current = int(row[0] or 0)
            if current > SCHEMA_VERSION:
                raise ArchiveError(
                    f"{self.path}: the catalog has schema version {current}, newer than this "
                    f"archiver understands ({SCHEMA_VERSION}); upgrade the archiver"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version - 1]:
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (version, _ts(utcnow()), __version__),
                )

    # ── transactions and errors ──

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.ProgrammingError:
            raise  # a bug in the caller (a value SQLite cannot store), not a broken archive
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "not a database" in message or "malformed" in message:
                raise ArchiveError(f"{self.path}: not a usable catalog ({message})") from exc
            raise ArchiveError(f"{self.path}: cannot {doing} the catalog: {message}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them are committed at the end of the block, or none if it
        raises. Nested blocks join the outermost one."""
        with self._mutex:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self._errors("write"):
                self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                with self._errors("write"):
                    self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self.transaction(), self._errors("write"):
            yield self._db

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._mutex, self._errors("read"):
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    # ── the archive lock ──

    @contextlib.contextmanager
    def lock(self, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the archive's exclusive lock for a whole run or check (see ``archive_lock``).

        On taking it, runs that an earlier process left "running" are marked "interrupted":
        with the lock held, nobody else can be running.
        """
        with archive_lock(self.dir, wait=wait):
            self._locked = True
            try:
                with self._write() as db:
                    db.execute(
                        "UPDATE runs SET status = 'interrupted' WHERE status = 'running'"
                        " AND NOT (pid = ? AND host = ? AND id IN (SELECT value FROM"
                        " json_each(?)))",
                        (os.getpid(), self._host, json.dumps(sorted(self._open_runs))),
                    )
                yield
            finally:
                self._locked = False

    # ── runs ──

    def begin_run(self, kind: str, source_ids: Sequence[str]) -> int:
        """Record the start of a run (``kind``: run, check or rescue); returns its id."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO runs (kind, started_at, status, sources, pid, host, version)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (kind, _ts(utcnow()), json.dumps(list(source_ids)), os.getpid(), self._host,
                 __version__),
            )
            run_id = int(cursor.lastrowid or 0)
        self._open_runs.add(run_id)
        return run_id

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        summary: Mapping[str, Any],
        offline: bool = False,
    ) -> None:
        """Record the end of run ``run_id`` with ``status`` ok, interrupted or failed and a
        JSON-serialisable ``summary`` (datetimes, dates, enums, sets and paths are converted)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {RUN_STATUSES}, got {status!r}")
        text = json.dumps(dict(summary), default=_json_default, sort_keys=True)
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ?, offline = ?"
                " WHERE id = ?",
                (_ts(utcnow()), status, text, int(offline), run_id),
            )
            if cursor.rowcount != 1:
                raise ValueError(f"no run with id {run_id}")
        self._open_runs.discard(run_id)

    def _is_live(self, pid: int, host: str, run_id: int) -> bool:
        """Whether a run stored as "running" is still running."""
        if pid == os.getpid() and host == self._host:
            return run_id in self._open_runs
        if host != self._host or not _pid_alive(pid):
            return False
        # A live pid could be a recycled one; the run is live only if that pid holds the lock
        # now (the lock file is emptied on every clean release).
        holder, _ = _read_holder(self.dir / LOCK_NAME)
        return holder == pid

    def _run_row(self, row: sqlite3.Row) -> RunRow:
        status = row["status"]
        if status == "running" and not self._is_live(row["pid"], row["host"], row["id"]):
            status = "interrupted"
        return RunRow(
            id=row["id"],
            kind=row["kind"],
            started_at=_dt(row["started_at"]) or utcnow(),
            finished_at=_dt(row["finished_at"]),
            status=status,
            sources=tuple(json.loads(row["sources"])),
            summary=json.loads(row["summary"]) if row["summary"] else {},
            offline=bool(row["offline"]),
            pid=row["pid"],
            version=row["version"],
        )

    def runs(self, limit: int = 20, *, kind: str | None = None) -> list[RunRow]:
        """The newest ``limit`` runs (of ``kind``, if given), newest first."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._read(
            f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [self._run_row(row) for row in rows]

    def run(self, run_id: int) -> RunRow | None:
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._run_row(rows[0]) if rows else None

    # ── citations ──

    def record_citations(self, source_id: str, footnotes: Sequence[Footnote]) -> None:
        """Replace the citations of ``source_id`` with the URLs of ``footnotes``."""
        with self._write() as db:
            db.execute("DELETE FROM citations WHERE source_id = ?", (source_id,))
            db.executemany(
                "INSERT OR IGNORE INTO citations (source_id, footnote, position, url)"
                " VALUES (?, ?, ?, ?)",
                # A generator: a list would hold a row per URL at once (10 MB at 100,000).
                (
                    (source_id, note.number, position, url)
                    for note in footnotes
                    for position, url in enumerate(note.urls)
                ),
            )

    def citations(self, source_id: str | None = None) -> list[CitationRow]:
        """Citations (of one source, or all), by source, footnote and order in the footnote."""
        where, params = ("WHERE source_id = ?", (source_id,)) if source_id else ("", ())
        rows = self._read(
            f"SELECT source_id, footnote, url FROM citations {where}"
            " ORDER BY source_id, footnote, position",
            params,
        )
        return [CitationRow(r["source_id"], r["footnote"], r["url"]) for r in rows]

    def footnote_urls(self, source_id: str, number: int) -> list[str]:
        """The URLs footnote ``number`` of ``source_id`` cites, in the order written."""
        rows = self._read(
            "SELECT url FROM citations WHERE source_id = ? AND footnote = ? ORDER BY position",
            (source_id, number),
        )
        return [r["url"] for r in rows]

    def cited_by(self, url: str) -> list[FootnoteRef]:
        """Every footnote that cites ``url``."""
        rows = self._read(
            "SELECT source_id, footnote FROM citations WHERE url = ? ORDER BY source_id, footnote",
            (url,),
        )
        return [FootnoteRef(r["source_id"], r["footnote"]) for r in rows]

    # ── fetch attempts ──

    def record_attempt(
        self,
        run_id: int,
        url: str,
        attempt: int,
        outcome: str,
        *,
        status: int | None,
        error: str | None,
        waited: float,
        at: datetime,
    ) -> None:
        """Record one attempt to fetch ``url`` (``outcome``: a verdict name, "retry", ...)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO attempts (run_id, url, attempt, outcome, status, error, waited, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, url, attempt, outcome, status, error, float(waited), _ts(at)),
            )

    def record_attempts(self, rows: Iterable[AttemptRow]) -> None:
        """``record_attempt`` of each of ``rows``, in order, in one statement."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO attempts (run_id, url, attempt, outcome, status, error, waited, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.run_id, r.url, r.attempt, r.outcome, r.status, r.error, float(r.waited),
                  _ts(r.at)) for r in rows],
            )

    def attempts(self, url: str, run_id: int | None = None) -> list[AttemptRow]:
        """Attempts at ``url`` (in one run, if given), oldest first."""
        sql = "SELECT * FROM attempts WHERE url = ?"
        params: list[Any] = [url]
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        rows = self._read(sql + " ORDER BY at, id", params)
        return [
            AttemptRow(r["run_id"], r["url"], r["attempt"], r["outcome"], r["status"],
                       r["error"], r["waited"], _dt(r["at"]) or utcnow())
            for r in rows
        ]

    # ── captures ──

    def record_capture(
        self, run_id: int, capture: Capture, *, text: str | bytes | None, title: str | None,
        fingerprint: str | None = None,
    ) -> int:
        """Record the final response of ``capture`` (its WARC record is ``capture.warc``; a
        revisit when ``capture.hops[-1].revisit``) with its extracted ``text`` (or that text
        as ``pack_text`` made it, by a process that had the time) and ``title``.
        ``fingerprint`` is ``history.text_fingerprint(text)`` where the capture stage computed
        it (a capture compared with the previous one, as ``check`` does); the next comparison
        then needs no tokenising when nothing changed. Returns the capture's id."""
        return self.record_captures(run_id, [(capture, text, title, fingerprint)])[0]

    def record_captures(self, run_id: int, captures: Sequence[CaptureIn]) -> list[int]:
        """``record_capture`` of each of ``captures`` (capture, text, title, fingerprint), in
        order, the texts in one statement; returns the captures' ids."""
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO texts (digest, text) VALUES (?, ?)",
                [(capture.payload_digest, text if isinstance(text, bytes) else pack_text(text))
                 for capture, text, *_ in captures if text is not None],
            )
            ids = []
            for capture, _, title, fingerprint, *memo in captures:
                ref = capture.warc
                revisit = bool(capture.hops and capture.hops[-1].revisit)
                cursor = db.execute(
                    "INSERT INTO captures (run_id, url, final_url, status, warc_path,"
                    " warc_offset, warc_length, record_id, payload_digest, captured_at,"
                    " content_type, fingerprint, revisit, title, truncated, attempts, page)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id, capture.url, capture.final_url, capture.status,
                        ref.path if ref else None, ref.offset if ref else None,
                        ref.length if ref else None, ref.record_id if ref else None,
                        capture.payload_digest, _ts(capture.captured_at),
                        capture.content_type, fingerprint, int(revisit), title,
                        capture.truncated, capture.attempts, memo[0] if memo else None,
                    ),
                )
                ids.append(int(cursor.lastrowid or 0))
            return ids

    def record_browser(
        self, capture_id: int, *, mode: str, wanted: str, lost: str | None = None,
        profile: bool = False, screenshot: WarcRef | None = None,
        text_record: WarcRef | None = None, text: str | None = None,
    ) -> None:
        """Record how capture ``capture_id`` was made (see ``StoredBrowser``)."""
        def ref(r: WarcRef | None) -> tuple[Any, ...]:
            return (r.path, r.offset, r.length, r.record_id) if r else (None,) * 4

        blob = zlib.compress(text.encode("utf-8"), 1) if text is not None else None
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO browser_captures VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (capture_id, mode, wanted, lost, int(profile), *ref(screenshot),
                 *ref(text_record), blob),
            )

    def link_facts(self, urls: Sequence[str], *, near: date | None = None,
                   until: datetime | None = None) -> dict[str, LinkFacts]:
        """``LinkFacts`` of each of ``urls`` (with the cached lookup aimed at ``near``, and
        the streak of its results checked at or before ``until``; its newest verdict is
        the newest whenever checked), in a few queries for all
        of them rather than several per URL: the same answers as ``last_result``,
        ``link_streaks``, ``latest_capture``, ``browser_capture``, ``provenance`` and
        ``get_memento``. A URL the catalog knows nothing of gets empty facts."""
        wanted = _wanted(urls)
        with self._mutex, self._errors("read"):
            last = self._last_results(wanted)
            streaks = self._link_streaks(wanted, until)
            captures, browsers = self._newest_packed(wanted)
            # Those of the captures chosen, not of every capture of the URLs.
            provenance = {row["record_id"]: (row["document"], row["sha256"],
                                             row["metadata_id"]) for row in self._rows(
                "SELECT p.record_id, p.document, p.sha256, p.metadata_id FROM json_each(?) w"
                " CROSS JOIN provenance p ON p.record_id = w.value", (json.dumps(
                    [c.warc.record_id for c, _ in captures.values() if c.warc is not None]),))}
            lookups = {row["url"]: self._cached_lookup(row) for row in self._rows(
                "SELECT m.* FROM json_each(?) w CROSS JOIN mementos m ON m.url = w.value"
                " WHERE m.near = ?", (wanted, near.isoformat() if near else ""))}
        facts = {}
        for url in urls:
            packed = captures.get(url)
            browser = prov = text = None
            if packed is None:
                # No capture of its own: one that ended on it after redirects, if any (a
                # rare case: its text is read whole and packed again).
                capture = self.latest_capture(url)
                if capture is not None:
                    browser = self.browser_capture(capture.id)
                    prov = self.provenance(capture.warc.record_id) if capture.warc else None
                    plain = browser.text if browser and browser.text is not None else \
                        capture.text
                    text = PackedText(pack_text(plain)) if plain is not None else None
                    capture = replace(capture, text=None)
                    browser = replace(browser, text=None) if browser else None
            else:
                capture, blob = packed
                browser, browser_blob = browsers.get(capture.id, (None, None))
                prov = provenance.get(capture.warc.record_id) if capture.warc else None
                blob = browser_blob if browser_blob is not None else blob
                text = PackedText(blob) if blob is not None else None
            facts[url] = LinkFacts(last=last.get(url), streak=streaks.get(url, Streak()),
                                   capture=capture,
                                   browser=browser, provenance=prov, lookup=lookups.get(url),
                                   text=text)
        return facts

    def latest_captures(self, urls: Sequence[str],
                        ) -> dict[str, tuple[StoredCapture, StoredBrowser | None]]:
        """``latest_capture`` of each of ``urls`` with its ``browser_capture``, in a few
        queries for all of them; a URL with no capture is left out."""
        with self._mutex, self._errors("read"):
            captures, browsers = self._newest_captures(_wanted(urls))
        found: dict[str, tuple[StoredCapture, StoredBrowser | None]] = {}
        for url in urls:
            capture = captures.get(url)
            if capture is not None:
                found[url] = (capture, browsers.get(capture.id))
                continue
            # No capture of its own: one that ended on it after redirects, if any.
            capture = self.latest_capture(url)
            if capture is not None:
                found[url] = (capture, self.browser_capture(capture.id))
        return found

    def _newest_captures(self, wanted: str,
                         ) -> tuple[dict[str, StoredCapture], dict[int, StoredBrowser]]:
        """The newest capture by each cited URL of ``wanted`` (``_wanted``) whose payload is
        held, as ``latest_capture`` chooses it, and the browser rows of their captures by
        capture id (the caller holds the mutex)."""
        captures: dict[str, StoredCapture] = {}
        for row in self._rows(self._NEWEST_WANTED, (wanted,)):
            captures[row["url"]] = self._stored_capture(row)
        browsers = {row["capture_id"]: self._stored_browser(row) for row in self._rows(
            self._BROWSERS_OF, (json.dumps([c.id for c in captures.values()]),))}
        return captures, browsers

    def _newest_packed(self, wanted: str,
                       ) -> tuple[dict[str, tuple[StoredCapture, bytes | None]],
                                  dict[int, tuple[StoredBrowser, bytes | None]]]:
        """``_newest_captures``, each capture and browser row without its text and paired
        with the text's packed blob (``None`` when it has none)."""
        captures = {
            row["url"]: (self._stored_capture(row, unpack=False), _blob(row["text_blob"]))
            for row in self._rows(self._NEWEST_WANTED, (wanted,))}
        return captures, {
            row["capture_id"]: (self._stored_browser(row, unpack=False), _blob(row["text"]))
            for row in self._rows(self._BROWSERS_OF, (
                json.dumps([c.id for c, _ in captures.values()]),))}

    # The browser rows of a JSON list of capture ids.
    _BROWSERS_OF = ("SELECT b.* FROM json_each(?) w"
                    " CROSS JOIN browser_captures b ON b.capture_id = w.value")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """``_read`` for callers already holding the mutex."""
        cursor = self._db.execute(sql, params)
        cursor.row_factory = sqlite3.Row
        return cursor.fetchall()

    def previous_read(self, url: str) -> PreviousRead | None:
        """The newest capture of ``url`` (``latest_capture``) as the capture stage meets a
        re-fetch of it: the text to compare a page with, and how its payload was read (its
        packed text and ``page`` memo, for a payload fetched again); ``None`` when there is
        no capture."""
        with self._mutex, self._errors("read"):
            row = self._latest_row(url)
            if row is None:
                return None
            browser = self._rows("SELECT * FROM browser_captures WHERE capture_id = ?",
                                 (row["id"],))
        rendered = self._stored_browser(browser[0]) if browser else None
        blob, page = row["text_blob"], row["page"]
        return PreviousRead(
            payload_digest=row["payload_digest"], content_type=row["content_type"],
            packed=_blob(blob),
            fingerprint=row["fingerprint"],
            rendered=rendered.text if rendered is not None else None,
            page=page if isinstance(page, str) else None)

    def browser_capture(self, capture_id: int) -> StoredBrowser | None:
        """How capture ``capture_id`` was made, if it went to (or wanted) the browser."""
        rows = self._read("SELECT * FROM browser_captures WHERE capture_id = ?",
                          (capture_id,))
        return self._stored_browser(rows[0]) if rows else None

    @staticmethod
    def _stored_browser(r: sqlite3.Row, unpack: bool = True) -> StoredBrowser:
        def ref(prefix: str) -> WarcRef | None:
            if r[f"{prefix}_record_id"] is None:
                return None
            return WarcRef(r[f"{prefix}_path"], r[f"{prefix}_offset"], r[f"{prefix}_length"],
                           r[f"{prefix}_record_id"])

        blob = _blob(r["text"])
        return StoredBrowser(
            capture_id=r["capture_id"], mode=r["mode"], wanted=r["wanted"], lost=r["lost"],
            profile=bool(r["profile"]), screenshot=ref("shot"), text_record=ref("text"),
            text=zlib.decompress(blob).decode("utf-8") if blob is not None and unpack
            else None,
        )

    # The original of a revisit: the oldest response record with the same payload.
    # ``revisit = 0``, not ``NOT revisit``: only an equality lets SQLite seek
    # ``captures_by_digest`` (payload_digest, revisit, captured_at) to the oldest original;
    # ``NOT revisit`` read and sorted every capture of the payload for each row, quadratic
    # where thousands of pages share one (an error page served for every missing URL).
    _CAPTURE_SELECT = """
        SELECT c.*, t.text AS text_blob,
               o.warc_path AS o_path, o.warc_offset AS o_offset, o.warc_length AS o_length,
               o.record_id AS o_record_id
        FROM captures c
        LEFT JOIN texts t ON t.digest = c.payload_digest
        LEFT JOIN captures o ON c.revisit AND o.id = (
            SELECT id FROM captures
            WHERE payload_digest = c.payload_digest AND revisit = 0 AND record_id IS NOT NULL
            ORDER BY captured_at, id LIMIT 1)
    """

    # ``latest_capture`` of every URL of a ``_wanted`` list. The bulk reads name the wanted
    # URLs first, with CROSS JOIN (SQLite then keeps that order): otherwise SQLite may scan
    # every capture (or result) of the catalog, its text joined, for each batch of URLs.
    # Each URL's newest is found by walking its index entries (url, captured_at, and the
    # rowid) back from the end to the first capture whose payload is held: a step or two
    # however many captures nightly checks have added (a window over them read every one,
    # its text joined).
    _NEWEST_WANTED = _CAPTURE_SELECT.replace(
        "FROM captures c\n",
        "FROM json_each(?) w CROSS JOIN captures c ON c.id = ("
        "SELECT x.id FROM captures x WHERE x.url = w.value AND x.record_id IS NOT NULL"
        " AND (NOT x.revisit OR EXISTS (SELECT 1 FROM captures y"
        " WHERE y.payload_digest = x.payload_digest AND y.revisit = 0"
        " AND y.record_id IS NOT NULL))"
        " ORDER BY x.captured_at DESC, x.id DESC LIMIT 1)\n")

    @staticmethod
    def _stored_capture(row: sqlite3.Row, unpack: bool = True) -> StoredCapture:
        """The capture of ``row`` (``_CAPTURE_SELECT``); ``unpack``: with its text (else
        ``text`` is ``None``)."""
        # WARC paths interned: a report's thousands of records name a few files.
        warc = (
            WarcRef(sys.intern(row["warc_path"]), row["warc_offset"], row["warc_length"],
                    row["record_id"])
            if row["record_id"] is not None
            else None
        )
        if not row["revisit"]:
            payload = warc
        elif row["o_record_id"] is not None:
            payload = WarcRef(sys.intern(row["o_path"]), row["o_offset"], row["o_length"],
                              row["o_record_id"])
        else:
            payload = None
        blob = _blob(row["text_blob"])
        return StoredCapture(
            id=row["id"],
            run_id=row["run_id"],
            url=row["url"],
            final_url=row["final_url"],
            status=row["status"],
            warc=warc,
            payload=payload,
            payload_digest=row["payload_digest"],
            captured_at=_dt(row["captured_at"]) or utcnow(),
            content_type=row["content_type"],
            revisit=bool(row["revisit"]),
            title=row["title"],
            fingerprint=row["fingerprint"],
            truncated=row["truncated"],
            attempts=row["attempts"],
            text=zlib.decompress(blob).decode("utf-8") if blob is not None and unpack
            else None,
        )

    def captures(self, url: str) -> list[StoredCapture]:
        """Every capture of the cited ``url``, newest first."""
        rows = self._read(
            self._CAPTURE_SELECT + " WHERE c.url = ? ORDER BY c.captured_at DESC, c.id DESC",
            (url,),
        )
        return [self._stored_capture(row) for row in rows]

    def latest_capture(self, url: str) -> StoredCapture | None:
        """The newest capture of ``url`` whose payload the archive holds (a revisit counts when
        its original is known: ``payload`` then points at it); ``None`` if there is none.
        Looks at the cited URL first, then at captures that ended on ``url`` after redirects."""
        with self._mutex, self._errors("read"):
            row = self._latest_row(url)
        return self._stored_capture(row) if row is not None else None

    def _latest_row(self, url: str) -> sqlite3.Row | None:
        """``latest_capture``'s row (``_CAPTURE_SELECT``), for a caller holding the mutex."""
        for column in ("url", "final_url"):
            rows = self._rows(
                self._CAPTURE_SELECT
                + f" WHERE c.{column} = ? AND c.record_id IS NOT NULL"
                " AND (NOT c.revisit OR o.record_id IS NOT NULL)"
                " ORDER BY c.captured_at DESC, c.id DESC LIMIT 1",
                (url,),
            )
            if rows:
                return rows[0]
        return None

    def capture(self, capture_id: int) -> StoredCapture | None:
        rows = self._read(self._CAPTURE_SELECT + " WHERE c.id = ?", (capture_id,))
        return self._stored_capture(rows[0]) if rows else None

    def is_captured(self, url: str) -> bool:
        """Whether ``url`` has a capture written to a WARC in any run (for resuming)."""
        rows = self._read(
            "SELECT 1 FROM captures WHERE url = ? AND record_id IS NOT NULL LIMIT 1", (url,)
        )
        return bool(rows)

    def captured(self, urls: Sequence[str]) -> set[str]:
        """Those of ``urls`` with a capture written to a WARC (``is_captured`` of many)."""
        # EXISTS stops at the URL's first such capture, however many it has.
        rows = self._read(
            "SELECT w.value AS url FROM json_each(?) w WHERE EXISTS (SELECT 1 FROM captures c"
            " WHERE c.url = w.value AND c.record_id IS NOT NULL)", (_wanted(urls),))
        return {r["url"] for r in rows}

    def captured_urls(self) -> set[str]:
        """Every cited URL with a capture written to a WARC (``is_captured`` in bulk)."""
        rows = self._read("SELECT DISTINCT url FROM captures WHERE record_id IS NOT NULL")
        return {r["url"] for r in rows}

    def record_provenance(self, record_id: str, cited_url: str, document: str,
                          sha256: str, metadata_id: str | None) -> None:
        """Keep the provenance ``document`` (JSON text, SHA-256 ``sha256``) of the capture
        whose response record is ``record_id``; ``metadata_id`` is its WARC record."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO provenance (record_id, cited_url, metadata_id, document,"
                " sha256) VALUES (?, ?, ?, ?, ?)",
                (record_id, cited_url, metadata_id, document, sha256))

    def record_provenances(self, rows: Iterable[tuple[str, str, str, str, str | None]],
                           ) -> None:
        """``record_provenance`` of each of ``rows`` (record_id, cited_url, document, sha256,
        metadata_id), in order, in one statement."""
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO provenance (record_id, cited_url, document, sha256,"
                " metadata_id) VALUES (?, ?, ?, ?, ?)", list(rows))

    def provenance(self, record_id: str) -> tuple[str, str, str | None] | None:
        """(document, sha256, metadata record id) of the capture ``record_id``, or None."""
        rows = self._read("SELECT document, sha256, metadata_id FROM provenance"
                          " WHERE record_id = ?", (record_id,))
        return (rows[0]["document"], rows[0]["sha256"], rows[0]["metadata_id"]) if rows \
            else None

    def has_payloads(self) -> bool:
        """Whether any response record is catalogued: a payload ``find_payload`` could find
        (an archive's first run starts with none)."""
        return bool(self._read(
            "SELECT 1 FROM captures WHERE revisit = 0 AND record_id IS NOT NULL LIMIT 1"))

    def find_payload(self, digest: str) -> PayloadSeen | None:
        """The first response record that archived a payload with ``digest`` (for writing a
        revisit); ``None`` if the payload was never archived. Copies from another archive
        are left out: their records are stored under another URL and date than the catalog
        row's, which a revisit's WARC-Refers-To-Target-URI/-Date would then misname."""
        # The provenance of each candidate is looked up by its key: a "NOT IN (SELECT ...)"
        # over every rescued copy was evaluated once per call, a scan of the whole table per
        # payload written, quadratic in the size of the archive.
        rows = self._read(
            "SELECT c.record_id, c.final_url, c.captured_at FROM captures c"
            " WHERE c.payload_digest = ? AND c.revisit = 0 AND c.record_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM provenance p WHERE p.record_id = c.record_id"
            "  AND json_extract(p.document, '$.kind') = 'rescued')"
            " ORDER BY c.captured_at, c.id LIMIT 1",
            (digest,),
        )
        if not rows:
            return None
        row = rows[0]
        return PayloadSeen(
            record_id=row["record_id"],
            target_uri=row["final_url"],
            date=_dt(row["captured_at"]) or utcnow(),
        )

    def forget_lost_captures(self, warc_path: str, size: int) -> list[str]:
        """Delete the captures whose record in ``warc_path`` (as stored in ``WarcRef.path``)
        does not lie wholly within its first ``size`` bytes: crash recovery cut it off or
        quarantined the file (``size`` 0), and a capture must never point at bytes that are
        not there. Returns the cited URLs concerned, sorted, once each: having no capture, they
        are fetched again by the next run. Their verdicts stay (the link was judged)."""
        with self._write() as db:
            rows = db.execute(
                "SELECT DISTINCT url FROM captures WHERE warc_path = ?"
                " AND warc_offset + warc_length > ? ORDER BY url",
                (warc_path, size),
            ).fetchall()
            db.execute(
                "DELETE FROM captures WHERE warc_path = ? AND warc_offset + warc_length > ?",
                (warc_path, size),
            )
        return [row[0] for row in rows]

    # ── results (the history) ──

    def record_result(
        self,
        run_id: int,
        url: str,
        judgement: Judgement,
        *,
        http_status: int | None,
        final_url: str | None,
        attempts: int,
        checked_at: datetime,
        outage: bool = False,
    ) -> None:
        """Record ``url``'s verdict in run ``run_id`` (``outage``: the check was an outage, so
        this result changes nothing in the link's state)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO results (run_id, url, verdict, reason, http_status, final_url,"
                " attempts, checked_at, outage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, url, Verdict(judgement.verdict).value, judgement.reason, http_status,
                 final_url, attempts, _ts(checked_at), int(outage)),
            )

    def record_results(self, rows: Iterable[ResultIn]) -> None:
        """``record_result`` of each of ``rows``, in order, in one statement."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO results (run_id, url, verdict, reason, http_status, final_url,"
                " attempts, checked_at, outage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.run_id, r.url, Verdict(r.judgement.verdict).value, r.judgement.reason,
                  r.http_status, r.final_url, r.attempts, _ts(r.checked_at), int(r.outage))
                 for r in rows],
            )

    def mark_outage(self, run_id: int) -> int:
        """Mark the results of run ``run_id`` as recorded during an outage (so they change
        no link's state); results are written as each URL finishes, and whether the whole
        check was an outage is known only at its end. Results reached without using the
        network (``invalid_url``, ``private_address``: see ``history.NOT_A_NETWORK_TEST``)
        are left as they are: a refusal is a refusal whatever the network's state. Returns
        how many were marked."""
        kept = sorted(v.value for v in NOT_A_NETWORK_TEST)
        with self._write() as db:
            return db.execute(
                "UPDATE results SET outage = 1 WHERE run_id = ? AND verdict NOT IN"
                f" ({', '.join('?' for _ in kept)})",
                (run_id, *kept)).rowcount

    def _verdict(self, value: str, url: str) -> Verdict:
        try:
            return Verdict(value)
        except ValueError as exc:
            raise ArchiveError(
                f"{self.path}: unknown verdict {value!r} for {url}"
                " (written by a newer archiver?)"
            ) from exc

    def _stored_result(self, row: sqlite3.Row) -> StoredResult:
        return StoredResult(
            run_id=row["run_id"],
            url=row["url"],
            verdict=self._verdict(row["verdict"], row["url"]),
            reason=row["reason"],
            http_status=row["http_status"],
            final_url=row["final_url"],
            attempts=row["attempts"],
            checked_at=_dt(row["checked_at"]) or utcnow(),
            outage=bool(row["outage"]),
        )

    def results(self, url: str) -> list[StoredResult]:
        """Every recorded verdict of ``url``, newest first (outage results included)."""
        rows = self._read(
            "SELECT * FROM results WHERE url = ? ORDER BY checked_at DESC, id DESC", (url,)
        )
        return [self._stored_result(row) for row in rows]

    def last_result(self, url: str, *, include_outage: bool = False) -> StoredResult | None:
        """The newest verdict of ``url`` (by default, not one recorded during an outage)."""
        where = "" if include_outage else " AND NOT outage"
        rows = self._read(
            f"SELECT * FROM results WHERE url = ?{where}"
            " ORDER BY checked_at DESC, id DESC LIMIT 1",
            (url,),
        )
        return self._stored_result(rows[0]) if rows else None

    def last_results(self, urls: Sequence[str]) -> dict[str, StoredResult]:
        """``last_result`` of each of ``urls`` (outage results left out), in one query; a URL
        with no result is left out."""
        # The newest row of each URL found by walking its index entries (url, checked_at,
        # and the rowid) from the end: one step per URL however long its history, where a
        # window over the history read every row of it.
        with self._mutex, self._errors("read"):
            return self._last_results(_wanted(urls))

    def _last_results(self, wanted: str) -> dict[str, StoredResult]:
        """``last_results`` of ``wanted`` (``_wanted``); the caller holds the mutex."""
        return {row["url"]: self._stored_result(row) for row in self._rows(
            "SELECT r.* FROM json_each(?) w CROSS JOIN results r ON r.id = ("
            "SELECT x.id FROM results x WHERE x.url = w.value AND NOT x.outage"
            " ORDER BY x.checked_at DESC, x.id DESC LIMIT 1)", (wanted,))}

    #: Each URL's ``history.Streak`` as of a moment (?2): its newest result that is not an
    #: outage's (n), its newest healthy one (ok), both found by walking the URL's index
    #: entries (url, checked_at, and the rowid) back from that moment, and the failures
    #: after ok in (checked_at, id) order, the order ``streak_of`` keeps, summed up: an
    #: index range from ok's time on, so a link's history before it is never read.
    _STREAKS = (
        "SELECT w.value AS url, n.verdict AS newest, n.checked_at AS newest_at,"
        " ok.checked_at AS last_ok, COUNT(r.id) AS failures,"
        " MIN(r.checked_at) AS failing_since,"
        " TOTAL(r.verdict NOT IN ({never})) AS evidence,"
        " MIN(CASE WHEN r.verdict NOT IN ({never}) THEN r.checked_at END) AS evidence_first,"
        " MAX(CASE WHEN r.verdict NOT IN ({never}) THEN r.checked_at END) AS evidence_last,"
        " MIN(CASE WHEN r.verdict NOT IN ({known}) THEN r.verdict END) AS unknown"
        " FROM json_each(?1) w"
        " LEFT JOIN results n ON n.id = (SELECT x.id FROM results x WHERE x.url = w.value"
        " AND x.checked_at <= ?2 AND NOT x.outage ORDER BY x.checked_at DESC, x.id DESC"
        " LIMIT 1)"
        " LEFT JOIN results ok ON ok.id = (SELECT h.id FROM results h WHERE h.url = w.value"
        " AND h.checked_at <= ?2 AND NOT h.outage AND h.verdict IN ({healthy})"
        " ORDER BY h.checked_at DESC, h.id DESC LIMIT 1)"
        " LEFT JOIN results r ON r.url = w.value AND r.checked_at <= ?2"
        " AND r.checked_at >= COALESCE(ok.checked_at, '') AND NOT r.outage"
        " AND (ok.id IS NULL OR (r.checked_at, r.id) > (ok.checked_at, ok.id))"
        " GROUP BY w.value"
    ).format(never=", ".join(f"'{v.value}'" for v in sorted(NEVER_DEAD)),
             healthy=", ".join(f"'{v.value}'" for v in Verdict if v.healthy),
             known=", ".join(f"'{v.value}'" for v in Verdict))

    def link_streaks(self, urls: Sequence[str], until: datetime | None = None,
                     ) -> dict[str, Streak]:
        """The ``history.Streak`` of each of ``urls``' results checked at or before ``until``
        (default: all), as ``history.streak_of`` makes it of the whole history, summed up by
        the catalog: a nightly check adds a result per link, and a link's cost stays the
        same after a year of checks, a link failing all along included. A URL without
        results gets an empty one. A verdict this archiver does not know (a newer one's) among
        the results read raises ``ArchiveError``, as ``results`` does."""
        with self._mutex, self._errors("read"):
            return self._link_streaks(_wanted(urls), until)

    def _link_streaks(self, wanted: str, until: datetime | None) -> dict[str, Streak]:
        """``link_streaks`` of ``wanted`` (``_wanted``); the caller holds the mutex."""
        found = {}
        cutoff = _ts(until) if until is not None else _NO_END
        for row in self._rows(self._STREAKS, (wanted, cutoff)):
            if row["unknown"] is not None:  # a failure of a kind this archiver cannot judge
                self._verdict(row["unknown"], row["url"])
            newest = row["newest"]
            found[row["url"]] = Streak() if newest is None else Streak(
                newest=self._verdict(newest, row["url"]),
                newest_at=_dt(row["newest_at"]),
                last_ok=_dt(row["last_ok"]),
                failures=row["failures"],
                failing_since=_dt(row["failing_since"]),
                evidence=int(row["evidence"]),
                evidence_first=_dt(row["evidence_first"]),
                evidence_last=_dt(row["evidence_last"]),
            )
        return found

    def run_results(self, run_id: int) -> list[StoredResult]:
        """The verdicts recorded in one run, in the order recorded."""
        rows = self._read("SELECT * FROM results WHERE run_id = ? ORDER BY id", (run_id,))
        return [self._stored_result(row) for row in rows]

    def link_status(
        self, url: str, settings: CheckSettings, now: datetime | None = None
    ) -> LinkStatus:
        """``url``'s state from its history (``history.link_status``), counting only results
        checked at or before ``now`` (default: all)."""
        return self.link_statuses([url], settings, now)[url]

    def link_statuses(self, urls: Sequence[str], settings: CheckSettings,
                      now: datetime | None = None) -> dict[str, LinkStatus]:
        """``link_status`` of each of ``urls``, read ``_STATES_AT_ONCE`` URLs a query."""
        statuses: dict[str, LinkStatus] = {}
        for start in range(0, len(urls), _STATES_AT_ONCE):
            chunk = urls[start:start + _STATES_AT_ONCE]
            found = self.link_streaks(chunk, now)
            for url in chunk:
                statuses[url] = status_of(found.get(url, Streak()), settings)
        return statuses

    # ── Wayback lookups ──

    def get_memento(self, url: str, *, near: date | None = None) -> CachedLookup | None:
        """The cached lookup of ``url`` (aimed at ``near``); ``None`` if never looked up."""
        rows = self._read(
            "SELECT * FROM mementos WHERE url = ? AND near = ?",
            (url, near.isoformat() if near else ""),
        )
        return self._cached_lookup(rows[0]) if rows else None

    def mementos(self, url: str) -> list[CachedLookup]:
        """Every cached lookup of ``url``, whatever date it aimed at (for ``show``)."""
        rows = self._read("SELECT * FROM mementos WHERE url = ? ORDER BY near", (url,))
        return [self._cached_lookup(row) for row in rows]

    def _cached_lookup(self, row: sqlite3.Row) -> CachedLookup:
        memento = None
        if row["found"]:
            memento = Memento(
                url=row["memento_url"],
                datetime=_dt(row["memento_datetime"]) or utcnow(),
                original_url=row["original_url"],
                raw_url=row["raw_url"],
                status=row["status"],
            )
        return CachedLookup(
            url=row["url"],
            looked_up_at=_dt(row["looked_up_at"]) or utcnow(),
            memento=memento,
            near=date.fromisoformat(row["near"]) if row["near"] else None,
        )

    def record_save(self, url: str, status: str, *, job_id: str | None, message: str,
                    at: datetime) -> None:
        """Record a Save Page Now request for ``url`` and how it stands."""
        with self._write() as db:
            db.execute(
                "INSERT INTO saves (url, requested_at, status, job_id, message)"
                " VALUES (?, ?, ?, ?, ?)",
                (url, _ts(at), status, job_id, message),
            )

    def last_save(self, url: str) -> tuple[str, datetime] | None:
        """``(status, requested_at)`` of the newest Save Page Now request for ``url``."""
        rows = self._read(
            "SELECT status, requested_at FROM saves WHERE url = ?"
            " ORDER BY requested_at DESC, id DESC LIMIT 1",
            (url,),
        )
        if not rows:
            return None
        return rows[0]["status"], _dt(rows[0]["requested_at"]) or utcnow()

    def put_memento(
        self,
        url: str,
        memento: Memento | None,
        looked_up_at: datetime,
        *,
        near: date | None = None,
    ) -> None:
        """Cache the lookup of ``url`` (``memento`` ``None``: none found), replacing any
        earlier one for the same ``near`` date."""
        values = (
            url, near.isoformat() if near else "", _ts(looked_up_at), int(memento is not None),
            memento.url if memento else None,
            _ts(memento.datetime) if memento else None,
            memento.original_url if memento else None,
            memento.raw_url if memento else None,
            memento.status if memento else None,
        )
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO mementos (url, near, looked_up_at, found, memento_url,"
                " memento_datetime, original_url, raw_url, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            db.execute("DELETE FROM lookup_failures WHERE url = ? AND near = ?",
                       (url, values[1]))

    def put_lookup_failure(self, url: str, kind: str, error: str, failed_at: datetime, *,
                           requests: int = 0, near: date | None = None) -> None:
        """Record that the lookup of ``url`` (aimed at ``near``) could not be made. It is not
        a cached answer: ``get_memento`` does not see it, so the next run asks again, and a
        cached answer for the same date is kept."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO lookup_failures (url, near, failed_at, kind, error,"
                " requests) VALUES (?, ?, ?, ?, ?, ?)",
                (url, near.isoformat() if near else "", _ts(failed_at), kind, error, requests),
            )

    def lookup_failure(self, url: str, *, near: date | None = None) -> LookupFailure | None:
        """The recorded failure of the newest lookup of ``url`` aimed at ``near``; ``None``
        when the newest lookup was answered, or none was ever tried."""
        rows = self._read("SELECT * FROM lookup_failures WHERE url = ? AND near = ?",
                          (url, near.isoformat() if near else ""))
        if not rows:
            return None
        row = rows[0]
        return LookupFailure(url=row["url"], failed_at=_dt(row["failed_at"]) or utcnow(),
                             kind=row["kind"], error=row["error"], requests=row["requests"],
                             near=date.fromisoformat(row["near"]) if row["near"] else None)

    def record_support(self, run_id: int, source_id: str,
                       rows: Sequence[tuple[int, str, str, str]]) -> None:
        """Store run ``run_id``'s claim support levels for ``source_id``: rows of
        (footnote, url, level, found facts as a JSON list). A second call for the same run
        replaces the rows it repeats."""
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO support_levels (run_id, source, footnote, url, level,"
                " found) VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, source_id, n, url, level, found) for n, url, level, found in rows],
            )

    def judged_supports(self, rules: str, keys: Iterable[tuple[str, str, str]]
                        ) -> dict[tuple[str, str, str], tuple[str, str]]:
        """The supports kept by ``keep_supports`` under ``rules`` for ``keys`` (text digest,
        kind, claims digest), by key: each as ``support_store.encode`` wrote it, with the
        day it was last used. Keys not kept are left out."""
        wanted = json.dumps(list(dict.fromkeys(keys)))
        if wanted == "[]":
            return {}
        rows = self._read("SELECT j.text, j.kind, j.claims, j.judged, j.used"
                          + _KEYED_SUPPORTS, (wanted, rules))
        return {(row[0], row[1], row[2]): (row[3], row[4]) for row in rows}

    def has_supports(self, rules: str, keys: Sequence[tuple[str, str, str]]) -> bool:
        """Whether a support is kept under ``rules`` for every one of ``keys`` (text digest,
        kind, claims digest)."""
        distinct = list(dict.fromkeys(keys))
        if not distinct:
            return True
        rows = self._read("SELECT count(*)" + _KEYED_SUPPORTS, (json.dumps(distinct), rules))
        return int(rows[0][0]) == len(distinct)

    def keeps_supports(self, rules: str) -> bool:
        """Whether any support judged by the code of digest ``rules`` is kept."""
        return bool(self._read("SELECT 1 FROM judged_supports WHERE rules = ? LIMIT 1",
                               (rules,)))

    def keep_supports(self, rules: str, rows: Iterable[tuple[str, str, str, str]], *,
                      used: str, touched: Iterable[tuple[str, str, str]] = (),
                      forget_before: str | None = None) -> None:
        """Keep claim supports judged by the code of digest ``rules``: rows of (text digest,
        kind, claims digest, the support as ``support_store.encode`` wrote it), used on day
        ``used`` (YYYY-MM-DD); a row kept already is marked used that day, as are the keys
        ``touched`` (supports taken from the catalog). Deletes the rows of any other rules
        (judged by other code, never to be read again) and, with ``forget_before``, those
        last used before that day."""
        with self._write() as db:
            db.execute("DELETE FROM judged_supports WHERE rules < ? OR rules > ?",
                       (rules, rules))
            db.executemany(
                "INSERT INTO judged_supports (rules, text, kind, claims, judged, used)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (rules, text, kind, claims)"
                " DO UPDATE SET used = excluded.used", [(rules, *row, used) for row in rows])
            db.executemany(
                "UPDATE judged_supports SET used = ? WHERE rules = ? AND text = ? AND kind = ?"
                " AND claims = ?", [(used, rules, *key) for key in touched])
            if forget_before is not None:  # after the uses above are marked
                db.execute("DELETE FROM judged_supports WHERE used < ?", (forget_before,))

    def last_support(self, source_id: str, footnote: int, url: str
                     ) -> tuple[str, list[str]] | None:
        """The newest stored (level, found facts) of a (source, footnote, URL), ``None`` if
        no run stored one. Call before recording the current run's."""
        return self.last_supports(source_id, [(footnote, url)]).get((footnote, url))

    def last_supports(self, source_id: str, keys: Iterable[tuple[int, str]],
                      ) -> dict[tuple[int, str], tuple[str, list[str]]]:
        """``last_support`` of each (footnote, URL) of ``keys``, in one query for all: by
        key, those some run stored."""
        wanted = json.dumps([[n, url] for n, url in dict.fromkeys(keys)])
        if wanted == "[]":
            return {}
        rows = self._read(
            "SELECT s.footnote, s.url, s.level, s.found FROM json_each(?) w"
            " CROSS JOIN support_levels s ON s.source = ?"
            " AND s.footnote = json_extract(w.value, '$[0]')"
            " AND s.url = json_extract(w.value, '$[1]')"
            " AND s.run_id = (SELECT max(l.run_id) FROM support_levels l WHERE"
            " l.source = s.source AND l.footnote = s.footnote AND l.url = s.url)",
            (wanted, source_id))
        return {(row["footnote"], row["url"]): (row["level"], list(json.loads(row["found"])))
                for row in rows}
