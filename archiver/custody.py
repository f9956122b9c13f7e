"""The chain of custody: an append-only, hash-chained log at ``archive/custody.jsonl``.

Each line is one JSON object (keys sorted, UTF-8)::

    {"action": "capture", "actor": "ana@laptop", "details": {...}, "prev": "<64 hex>",
     "seq": 7, "sha256": "<64 hex>", "subject": "https://example.org/page",
     "time": "2026-11-30T04:20:00Z"}

``sha256`` is the SHA-256 of what the entry concerns (a capture's provenance document, an
exported package, a verification report); ``prev`` is the SHA-256 of the previous line's
bytes (without its newline), and ``"0" * 64`` for the first. Editing, inserting or deleting
a line therefore breaks the chain at the next line. (Deleting the *last* lines cannot be
seen from the log alone: the README says so.)

Appends are crash-safe: one ``write`` of the whole line under an exclusive ``flock``, then
``fsync``. A ``kill -9`` or power cut mid-append can leave a torn last line (no newline).
It is never dropped silently: ``walk`` reports it, and the next append first ends it with
a newline and then writes a ``repair`` entry naming its line number, byte offset and
SHA-256, chained to the last whole entry, so the damage stays on record.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver.errors import ArchiveError
from archiver.models import isoformat, utcnow

__all__ = ["CUSTODY_NAME", "GENESIS", "Custody", "Finding", "Walk", "walk"]

CUSTODY_NAME = "custody.jsonl"
GENESIS = "0" * 64
ACTIONS = ("capture", "rescue", "export", "verify", "delete", "repair")


@dataclass(frozen=True)
class Finding:
    """Something wrong in the log: ``line`` (1-based) and what is wrong. ``fatal`` is False
    for a torn last line left by a crash (reported, not a sign of tampering)."""

    line: int
    problem: str
    fatal: bool = True


@dataclass(frozen=True)
class Walk:
    """The result of walking the log: entries read, the head hash, and the findings."""

    entries: int
    head: str
    findings: tuple[Finding, ...]

    @property
    def intact(self) -> bool:
        return not any(f.fatal for f in self.findings)


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _encode(entry: Mapping[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


class Custody:
    """Appends entries to ``archive_dir/custody.jsonl`` as ``actor``."""

    def __init__(self, archive_dir: Path, actor: str) -> None:
        self.path = Path(archive_dir) / CUSTODY_NAME
        self.actor = actor

    def append(self, action: str, subject: str, sha256: str,
               details: Mapping[str, Any] | None = None,
               *, at: datetime | None = None) -> dict[str, Any]:
        """Append one entry and fsync it; returns the entry. Raises ``ArchiveError`` naming
        the file when it cannot be written."""
        return self.append_many([(action, subject, sha256, details)], at=at)[0]

    def append_many(self, items: Sequence[tuple[str, str, str, Mapping[str, Any] | None]],
                    *, at: datetime | None = None) -> list[dict[str, Any]]:
        """Append one entry per (action, subject, sha256, details), chained in order, with
        one fsync for all of them (a run records a batch of captures at once); returns the
        entries. Raises ``ArchiveError`` naming the file when it cannot be written."""
        for action, *_ in items:
            if action not in ACTIONS:
                raise ValueError(f"unknown custody action {action!r}")
        if not items:
            return []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise ArchiveError(f"{self.path}: cannot open custody log: "
                               f"{exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            seq, prev, torn = _tail(fd)
            if torn is not None:
                line_no, offset, fragment = torn
                os.write(fd, b"\n")
                repair = {"seq": seq + 1, "time": isoformat(utcnow()), "actor": self.actor,
                          "action": "repair", "subject": self.path.name,
                          "sha256": _line_hash(fragment), "prev": prev,
                          "details": {"torn_line": line_no, "offset": offset,
                                      "bytes": len(fragment),
                                      "reason": "incomplete entry left by an interrupted "
                                                "write; kept as it is"}}
                line = _encode(repair)
                _write_all(fd, line + b"\n")
                seq, prev = seq + 1, _line_hash(line)
            written: list[dict[str, Any]] = []
            lines: list[bytes] = []
            when = isoformat(at or utcnow())
            for action, subject, sha256, details in items:
                entry = {"seq": seq + 1, "time": when, "actor": self.actor,
                         "action": action, "subject": subject, "sha256": sha256,
                         "prev": prev, "details": dict(details or {})}
                line = _encode(entry)
                lines.append(line + b"\n")
                seq, prev = seq + 1, _line_hash(line)
                written.append(entry)
            _write_all(fd, b"".join(lines))
            os.fsync(fd)
            return written
        except OSError as exc:
            raise ArchiveError(f"{self.path}: cannot append to custody log: "
                               f"{exc.strerror or exc}") from exc
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _tail(fd: int) -> tuple[int, str, tuple[int, int, bytes] | None]:
    """(last seq, hash of the last whole line, torn fragment or None) of the open log.

    Reads backwards from the end only as far as the last whole line needs, so an append
    costs the same however long the log is. The torn fragment's line number needs a count
    of the lines before it: that full read happens only after a crash.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS, None
    window = 4096
    while True:
        start = max(0, size - window)
        data = os.pread(fd, size - start, start)
        body_end = data.rfind(b"\n") + 1  # end of the last whole line within the window
        torn_bytes = data[body_end:]
        body = data[:body_end]
        begin = body.rfind(b"\n", 0, len(body) - 1) + 1 if body else 0
        if start == 0 or (body and begin > 0):
            break
        window *= 4
    torn = None
    if torn_bytes:
        offset = start + body_end
        line_no = os.pread(fd, offset, 0).count(b"\n") + 1
        torn = (line_no, offset, torn_bytes)
    if not body:
        return 0, GENESIS, torn
    last = body[begin:-1]
    try:
        seq = int(json.loads(last).get("seq", 0))
    except (ValueError, AttributeError):
        seq = os.pread(fd, start + body_end, 0).count(b"\n")
    return seq, _line_hash(last), torn


def walk(archive_dir: Path) -> Walk:
    """Check every line of the log: valid JSON, ``prev`` equal to the SHA-256 of the line
    before, ``seq`` counting up by one. A missing log is an empty, intact chain."""
    path = Path(archive_dir) / CUSTODY_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Walk(0, GENESIS, ())
    except OSError as exc:
        return Walk(0, GENESIS, (Finding(0, f"cannot read: {exc.strerror or exc}"),))
    findings: list[Finding] = []
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    prev = GENESIS
    expected_seq = 1
    entries = 0
    repaired: dict[int, str] = {}  # line number → fragment hash, from repair entries
    torn_lines: dict[int, str] = {}
    for number, line in enumerate(raw_lines, start=1):
        last = number == len(raw_lines) and not data.endswith(b"\n")
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError:
            if last:
                findings.append(Finding(number, "torn last entry (an interrupted write); "
                                        "the next append records it", fatal=False))
            else:
                torn_lines[number] = _line_hash(line)
            continue
        entries += 1
        if entry.get("prev") != prev:
            findings.append(Finding(number, f"chain broken: prev is {entry.get('prev')!r}, "
                                    f"the entry before hashes to {prev} (a line was edited, "
                                    "inserted or deleted before this one)"))
        if entry.get("seq") != expected_seq:
            findings.append(Finding(number, f"sequence broken: seq {entry.get('seq')!r}, "
                                    f"expected {expected_seq}"))
        if entry.get("action") == "repair":
            details = entry.get("details") or {}
            with contextlib.suppress(TypeError, ValueError):
                repaired[int(details.get("torn_line", ""))] = str(entry.get("sha256"))
        prev = _line_hash(line)
        seq = entry.get("seq")
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
    for number, digest in sorted(torn_lines.items()):
        if repaired.get(number) == digest:
            findings.append(Finding(number, "torn entry from an interrupted write, recorded "
                                    "by a repair entry", fatal=False))
        else:
            findings.append(Finding(number, "not a JSON entry (edited or damaged)"))
    findings.sort(key=lambda f: f.line)
    return Walk(entries, prev, tuple(findings))


def entries(archive_dir: Path) -> Iterator[dict[str, Any]]:
    """Every whole entry of the log, in order (for reports and tests)."""
    path = Path(archive_dir) / CUSTODY_NAME
    if not path.exists():
        return
    for line in path.read_bytes().split(b"\n"):
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                yield entry
