"""Integrity checks: does the archive (or a WACZ package) still hold what was written?

``verify_archive`` checks, without trusting anything it reads:

* every record of every closed WARC file: the gzip members are whole (CRC checked), and
  each record's ``WARC-Block-Digest`` and ``WARC-Payload-Digest`` match its bytes
  (``sha256:HEX`` as written now, ``sha1:BASE32`` as written before);
* the CDXJ index against the records: each line points at a record with that URL, date,
  digest and length, and every response or revisit record has its line;
* the catalog against the records: each capture row's record has that id, URL and payload
  digest; each provenance row's WARC record holds exactly that document, and the response
  record's stored bytes still hash to the SHA-256 the provenance recorded;
* the custody log: the hash chain, and one custody entry for every provenance row with
  that row's SHA-256 (so deleting the log's last lines is found too).

``verify_wacz`` checks a package: each file's hash against ``datapackage.json``, that file's
hash against ``datapackage-digest.json``, the signature (``archiver.signing``) and the
records of the WARC files inside.

Both return a ``Verification``: the problems found (each naming file, record id, URL and
what differs) and notes (facts worth saying that are not damage, e.g. a torn custody line
left by a crash). No I/O beyond reading; ``cli``/``commands.verify`` prints and exits.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from archiver import custody
from archiver.warc import INDEX_NAME, complete_members

__all__ = ["Problem", "Verification", "verify_archive", "verify_wacz"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    """One thing that does not hold: ``where`` is a file (relative to the checked folder or
    package), ``record_id`` and ``url`` when known, ``what`` says what differs."""

    where: str
    what: str
    record_id: str = ""
    url: str = ""

    def line(self) -> str:
        parts = [self.where]
        if self.record_id:
            parts.append(self.record_id)
        if self.url:
            parts.append(self.url)
        return ": ".join([" ".join(parts), self.what])


@dataclass
class Verification:
    """What a verification found; ``ok`` when no problem. ``checked`` counts what was read."""

    subject: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "ok": self.ok,
            "checked": dict(sorted(self.checked.items())),
            "problems": [{"file": p.where, "record_id": p.record_id or None,
                          "url": p.url or None, "problem": p.what} for p in self.problems],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RecordFacts:
    """What verification learned about one record, for the index and catalog checks."""

    file: str
    offset: int
    length: int
    record_id: str
    rec_type: str
    url: str
    date: str
    payload_digest: str
    member_sha256: str
    content: bytes  # the block of metadata records (small); empty otherwise
    source_uri: str = ""  # WARC-Source-URI: where a copy from another archive came from


def check_warc(stream: IO[bytes], name: str, size: int, result: Verification) -> list[RecordFacts]:
    """Read every record of one WARC stream, recomputing its block and payload digests
    (warcio's checker, which reads ``sha256:``/``sha1:`` in hex or base32); problems go to
    ``result``. Returns the facts of each record read."""
    facts: list[RecordFacts] = []
    it = ArchiveIterator(stream, check_digests=True)
    try:
        for record in it:
            headers = record.rec_headers
            record_id = headers.get_header("WARC-Record-ID") or ""
            url = headers.get_header("WARC-Target-URI") or ""
            content = b""
            while chunk := record.raw_stream.read(_CHUNK):  # the checker hashes as read
                if record.rec_type == "metadata" and len(content) < (8 << 20):
                    content += chunk
            it.read_to_end(record)
            result.count("records")
            for problem in record.digest_checker.problems:
                result.problems.append(Problem(name, f"{problem} (the bytes changed since "
                                               "the record was written)", record_id, url))
            facts.append(RecordFacts(name, it.get_record_offset(), it.get_record_length(),
                                     record_id, record.rec_type, url,
                                     headers.get_header("WARC-Date") or "",
                                     headers.get_header("WARC-Payload-Digest") or "", "",
                                     content, headers.get_header("WARC-Source-URI") or ""))
    except (ArchiveLoadFailed, zlib.error, EOFError, ValueError, OSError) as exc:
        where = facts[-1].offset + facts[-1].length if facts else 0
        result.problems.append(Problem(name, f"unreadable after byte {where} of {size} "
                                       f"(damaged or cut): {exc}"))
    return facts


def _member_sha256(path: Path, facts: list[RecordFacts]) -> list[RecordFacts]:
    """The facts with the SHA-256 of each record's gzip member as stored."""
    out = []
    with open(path, "rb") as fh:
        for f in facts:
            fh.seek(f.offset)
            out.append(RecordFacts(f.file, f.offset, f.length, f.record_id, f.rec_type, f.url,
                                   f.date, f.payload_digest,
                                   hashlib.sha256(fh.read(f.length)).hexdigest(), f.content,
                                   f.source_uri))
    return out


# ── the archive ─────────────────────────────────────────────────────────────


def verify_archive(archive_dir: Path, root: Path, *, only_files: set[str] | None = None,
                   record_ids: set[str] | None = None) -> Verification:
    """Verify the archive folder (see the module docstring). ``root`` is the config's
    folder (catalog paths are relative to it). ``only_files`` (names relative to
    ``archive_dir``) and ``record_ids`` narrow the WARC and catalog checks to one source's
    captures; the custody chain is always walked whole."""
    archive_dir = Path(archive_dir)
    result = Verification(str(archive_dir))
    files = sorted(archive_dir.glob("*.warc.gz"))
    if only_files is not None:
        files = [f for f in files if f.name in only_files]
    by_location: dict[tuple[str, int], RecordFacts] = {}
    by_id: dict[str, RecordFacts] = {}
    for path in files:
        size = path.stat().st_size
        records, good_end = complete_members(path)
        with open(path, "rb") as fh:
            facts = check_warc(fh, path.name, size, result)
        if good_end < size and not any(p.where == path.name and "unreadable" in p.what
                                       for p in result.problems):
            result.problems.append(Problem(path.name, f"cut or damaged: {records} whole "
                                           f"record(s) end at byte {good_end} of {size}"))
        result.count("warc_files")
        for f in _member_sha256(path, facts):
            by_location[(f.file, f.offset)] = f
            by_id[f.record_id] = f
    for name in sorted(p.name for p in archive_dir.glob("*.warc.gz.open")):
        result.notes.append(f"{name}: still being written (or left by a crash); not checked")
    _check_index(archive_dir, {f.name for f in files}, by_location, result)
    _check_catalog(archive_dir, root, by_id, result, record_ids)
    return result


def _check_index(archive_dir: Path, names: set[str],
                 by_location: dict[tuple[str, int], RecordFacts], result: Verification) -> None:
    index = archive_dir / INDEX_NAME
    if not index.exists():
        if names:
            result.problems.append(Problem(INDEX_NAME, "missing"))
        return
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(index.read_text("utf-8").splitlines(), start=1):
        try:
            _key, stamp, data = line.split(" ", 2)
            entry = json.loads(data)
            name, offset = entry["filename"], int(entry["offset"])
        except (ValueError, KeyError) as exc:
            result.problems.append(Problem(INDEX_NAME, f"line {number} unreadable: {exc}"))
            continue
        if name not in names:
            if not (archive_dir / name).exists():
                result.problems.append(Problem(INDEX_NAME, f"line {number} names {name}, "
                                               "which is missing", url=entry.get("url", "")))
            continue
        result.count("index_lines")
        record = by_location.get((name, offset))
        if record is None:
            result.problems.append(Problem(INDEX_NAME, f"line {number}: no record at "
                                           f"{name} offset {offset}", url=entry.get("url", "")))
            continue
        seen.add((name, offset))
        differs = []
        if entry.get("url") != record.url:
            differs.append(f"url {entry.get('url')!r} but the record says {record.url!r}")
        if stamp != "".join(ch for ch in record.date if ch.isdigit())[:14]:
            differs.append(f"timestamp {stamp} but the record is dated {record.date}")
        if int(entry.get("length", -1)) != record.length:
            differs.append(f"length {entry.get('length')} but the record takes "
                           f"{record.length} bytes")
        if entry.get("digest") and record.payload_digest and \
                entry["digest"] != record.payload_digest and \
                entry["digest"] != record.payload_digest.split(":", 1)[-1]:
            differs.append(f"digest {entry['digest']} but the record says "
                           f"{record.payload_digest}")
        for what in differs:
            result.problems.append(Problem(INDEX_NAME, f"line {number}: {what}",
                                           record.record_id, record.url))
    for (name, offset), record in sorted(by_location.items()):
        if record.rec_type in ("response", "revisit") and (name, offset) not in seen:
            result.problems.append(Problem(name, "not in the index", record.record_id,
                                           record.url))


def _check_catalog(archive_dir: Path, root: Path, by_id: dict[str, RecordFacts],
                   result: Verification, record_ids: set[str] | None) -> None:
    path = archive_dir / "catalog.sqlite3"
    if not path.exists():
        result.notes.append("no catalog: only the WARC files and the index were checked")
        return
    # Read-only: verification must not change what it checks.
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        captures = db.execute(
            "SELECT id, url, final_url, warc_path, warc_offset, warc_length, record_id,"
            " payload_digest FROM captures WHERE record_id IS NOT NULL").fetchall()
        has_provenance = bool(db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'provenance'"
        ).fetchone())
        provenance = db.execute(
            "SELECT record_id, cited_url, metadata_id, document, sha256 FROM provenance"
        ).fetchall() if has_provenance else []
    except sqlite3.DatabaseError as exc:
        result.problems.append(Problem(path.name, f"unreadable: {exc}"))
        return
    finally:
        db.close()
    for row in captures:
        if record_ids is not None and row["record_id"] not in record_ids:
            continue
        result.count("catalog_captures")
        where = f"{path.name} capture {row['id']}"
        record = by_id.get(row["record_id"])
        if record is None:
            result.problems.append(Problem(where, f"its record is not in {row['warc_path']}",
                                           row["record_id"], row["final_url"]))
            continue
        rel = f"{archive_dir.name}/{record.file}"
        differs = []
        if row["warc_path"] not in (rel, record.file) and \
                not str(row["warc_path"]).endswith("/" + record.file):
            differs.append(f"file {row['warc_path']} but the record is in {record.file}")
        if row["warc_offset"] != record.offset or row["warc_length"] != record.length:
            differs.append(f"offset/length {row['warc_offset']}/{row['warc_length']} but the "
                           f"record is at {record.offset}/{record.length}")
        # A copy from another archive is stored under the original URL; the catalog keeps
        # the address it was copied from (its WARC-Source-URI).
        if row["final_url"] not in (record.url, record.source_uri):
            differs.append(f"url {row['final_url']!r} but the record says {record.url!r}")
        if row["payload_digest"] != record.payload_digest:
            differs.append(f"payload digest {row['payload_digest']} but the record says "
                           f"{record.payload_digest}")
        for what in differs:
            result.problems.append(Problem(where, what, row["record_id"], row["final_url"]))
    chain = custody.walk(archive_dir)
    logged: dict[str, str] = {}
    for entry in custody.entries(archive_dir):
        if entry.get("action") in ("capture", "rescue"):
            rid = (entry.get("details") or {}).get("record_id")
            if isinstance(rid, str):
                logged[rid] = str(entry.get("sha256"))
    for row in provenance:
        if record_ids is not None and row["record_id"] not in record_ids:
            continue
        result.count("provenance_records")
        where = f"{path.name} provenance"
        text: str = row["document"]
        url = row["cited_url"]
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != row["sha256"]:
            result.problems.append(Problem(where, "the document does not hash to the "
                                           "SHA-256 stored with it", row["record_id"], url))
        meta = by_id.get(row["metadata_id"] or "")
        if meta is None:
            result.problems.append(Problem(where, f"its WARC record {row['metadata_id']} is "
                                           "missing", row["record_id"], url))
        elif meta.content != text.encode("utf-8"):
            result.problems.append(Problem(meta.file, "the provenance record in the WARC "
                                           "differs from the catalog's copy",
                                           meta.record_id, url))
        try:
            doc = json.loads(text)
        except ValueError:
            result.problems.append(Problem(where, "not JSON", row["record_id"], url))
            continue
        response = by_id.get(row["record_id"])
        expected = doc.get("response_record_sha256")
        if response is not None and expected and response.member_sha256 != expected:
            result.problems.append(Problem(
                response.file, f"the stored record hashes to {response.member_sha256}, its "
                f"provenance recorded {expected} (headers or bytes changed)",
                response.record_id, response.url))
        if row["record_id"] not in logged:
            result.problems.append(Problem(custody.CUSTODY_NAME, "no custody entry for this "
                                           "capture (the log lost lines)", row["record_id"],
                                           url))
        elif logged[row["record_id"]] != row["sha256"]:
            result.problems.append(Problem(custody.CUSTODY_NAME, "the custody entry names a "
                                           "different provenance SHA-256", row["record_id"],
                                           url))
    result.count("custody_entries", chain.entries)
    for finding in chain.findings:
        if finding.fatal:
            result.problems.append(Problem(custody.CUSTODY_NAME,
                                           f"line {finding.line}: {finding.problem}"))
        else:
            result.notes.append(f"{custody.CUSTODY_NAME} line {finding.line}: "
                                f"{finding.problem}")


# ── WACZ ────────────────────────────────────────────────────────────────────


def _hash_member(z: zipfile.ZipFile, name: str, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with z.open(name) as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return f"{algo}:{h.hexdigest()}"


def verify_wacz(path: Path) -> Verification:
    """Verify a WACZ package (see the module docstring)."""
    from archiver import signing

    result = Verification(str(path))
    try:
        z = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        result.problems.append(Problem(path.name, f"not a readable WACZ (zip): {exc}"))
        return result
    with z:
        names = set(z.namelist())
        for required in ("datapackage.json", "datapackage-digest.json"):
            if required not in names:
                result.problems.append(Problem(required, "missing from the package"))
        if result.problems:
            return result
        try:
            package_bytes = z.read("datapackage.json")
            package = json.loads(package_bytes)
            digest = json.loads(z.read("datapackage-digest.json"))
        except (ValueError, zipfile.BadZipFile, zlib.error) as exc:
            result.problems.append(Problem("datapackage.json", f"unreadable: {exc}"))
            return result
        for resource in package.get("resources", []):
            name = resource.get("path", "")
            result.count("files")
            if name not in names:
                result.problems.append(Problem(name, "listed in datapackage.json, missing"))
                continue
            want = str(resource.get("hash", ""))
            algo = want.split(":", 1)[0] if ":" in want else "sha256"
            try:
                got = _hash_member(z, name, algo)
            except (zipfile.BadZipFile, zlib.error, ValueError) as exc:
                result.problems.append(Problem(name, f"unreadable: {exc}"))
                continue
            if got != want:
                result.problems.append(Problem(name, f"hash {got} but datapackage.json "
                                               f"says {want}"))
        package_hash = "sha256:" + hashlib.sha256(package_bytes).hexdigest()
        if digest.get("hash") != package_hash:
            result.problems.append(Problem("datapackage-digest.json", f"hash "
                                           f"{digest.get('hash')} but datapackage.json "
                                           f"hashes to {package_hash}"))
        signed = digest.get("signedData")
        if signed:
            for what in signing.check_signed_data(signed, package_hash,
                                                  created=package.get("created")):
                result.problems.append(Problem("datapackage-digest.json", what))
            result.count("signatures")
            result.notes.extend(signing.describe(signed))
        else:
            result.notes.append("the package is not signed")
        stamp = digest.get("timestamp")
        if isinstance(stamp, dict):
            problems, said = signing.verify_timestamp(
                stamp, str(digest.get("hash", "")).encode("utf-8"))
            for what in problems:
                result.problems.append(Problem("datapackage-digest.json", what))
            if said:
                result.notes.append(said)
            result.count("timestamps")
        for name in sorted(n for n in names if n.endswith((".warc.gz", ".warc"))):
            data = z.read(name)
            check_warc(io.BytesIO(data), name, len(data), result)
            result.count("warc_files")
    return result


def problems_text(result: Verification) -> Iterator[str]:
    for problem in result.problems:
        yield "FAIL " + problem.line()

