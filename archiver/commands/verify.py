"""``archiver verify`` and ``archiver keygen``: integrity checks and signing keys.

``verify`` with no path checks the archive folder named by the config (``archiver.verify``);
with ``PATH.wacz`` it checks that package. Exit 0 when everything holds, 1 on any mismatch
(each printed as ``FAIL file record-id url: what differs``), 2 on bad usage. A verification
of the archive is itself entered in the custody log.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.config import load_settings
from archiver.errors import ArchiverError, UsageError

if TYPE_CHECKING:
    from archiver.cli import Output
    from archiver.verify import Verification

__all__ = ["keygen", "verify"]


def verify(config: Path, *, sources: list[str] | None, wacz: str | None, fmt: str,
           io: Output) -> int:
    """Verify the archive (optionally only ``sources``' captures) or the WACZ ``wacz``."""
    from archiver import custody, provenance
    from archiver.verify import verify_archive, verify_wacz

    if wacz is not None:
        path = Path(wacz)
        if sources:
            raise UsageError("--source applies to the archive; a WACZ is checked whole")
        if not path.is_file():
            raise UsageError(f"{path}: no such WACZ file")
        result = verify_wacz(path)
        _print(result, fmt, io)
        return 0 if result.ok else 1

    settings = load_settings(config)
    archive_dir = settings.archive.dir
    if not archive_dir.is_dir():
        raise UsageError(f"{archive_dir}: no archive folder yet (run 'archiver run' first)")
    only_files = record_ids = None
    if sources:
        only_files, record_ids = _source_scope(settings, sources)
    result = verify_archive(archive_dir, settings.root, only_files=only_files,
                            record_ids=record_ids)
    report = json.dumps(result.as_json(), sort_keys=True).encode("utf-8")
    try:
        custody.Custody(archive_dir, settings.provenance.actor or provenance.default_actor()) \
            .append("verify", settings.relative(archive_dir), hashlib.sha256(report).hexdigest(),
                    {"ok": result.ok, "problems": len(result.problems),
                     "sources": sources or []})
    except ArchiverError as exc:  # a read-only copy can still be verified
        result.notes.append(f"verification not entered in the custody log: {exc}")
    _print(result, fmt, io)
    return 0 if result.ok else 1


def _source_scope(settings: object, sources: list[str]) -> tuple[set[str], set[str]]:
    """The WARC file names and record ids of the captures ``sources`` cite."""
    from archiver.catalog import Catalog
    from archiver.config import Settings

    assert isinstance(settings, Settings)
    files: set[str] = set()
    ids: set[str] = set()
    with Catalog.open(settings.archive.dir) as catalog:
        for source_id in sources:
            settings.source(source_id)  # ConfigError (exit 2) for an unknown id
            for citation in catalog.citations(source_id):
                for capture in catalog.captures(citation.url):
                    for ref in (capture.warc, capture.payload):
                        if ref is not None:
                            files.add(Path(ref.path).name)
                            ids.add(ref.record_id)
    return files, ids


def _print(result: Verification, fmt: str, io: Output) -> None:
    if fmt == "json":
        io.json(result.as_json())
        return
    counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in
                       sorted(result.checked.items()))
    io.print(f"verified {result.subject}: {counts or 'nothing to check'}")
    for problem in result.problems:
        io.print("FAIL " + problem.line())
    for note in result.notes:
        io.print("note: " + note)
    io.print("all intact" if result.ok else f"{len(result.problems)} problem(s) found")


def keygen(config: Path, *, output: str | None, io: Output, curve: str = "P-256") -> int:
    """Write a new signing key (never overwriting); print where and its fingerprint."""
    from archiver.signing import generate_key

    if output:
        path = Path(output)
    else:
        try:
            settings = load_settings(config)
            path = settings.root / settings.provenance.signing_key
        except ArchiverError:
            path = Path(config).resolve().parent / "signing-key.pem"
    fingerprint = generate_key(path, curve)
    io.print(f"wrote {path} (ECDSA {curve} private key, readable by you only)")
    io.print(f"public key fingerprint: {fingerprint}")
    io.print("keep the key secret and publish the fingerprint where readers of your "
             "packages can find it")
    return 0
