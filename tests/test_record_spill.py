"""A WARC record too large to gzip in memory (over 1 MiB compressed) spills into the archive's
own folder while it is compressed, not into the system's temporary folder: a small /tmp (a
container's) must not stop a run the archive has room for, and a full archive disk met while
spilling is the archive's "cannot write WARC record: disk full" (exit 3 in a run), with every
record written before it readable. Before, a full /tmp raised a bare ``OSError`` out of the
writer, not the ``ArchiveError`` the pipeline stops on.

Both folders are real tmpfs mounts (needs root and permission to mount; skipped with the
reason otherwise); the bodies are incompressible, so their members are as large as they are.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver.errors import ArchiveError
from archiver.warc import WarcWriter
from tests.tmpfs import small_tmpfs

REQUEST = b"GET /big HTTP/1.1\r\nHost: example.org\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"


def write(writer: WarcWriter, path: str, body: bytes) -> None:
    writer.write_exchange(url=f"http://example.org/{path}", request_head=REQUEST,
                          response_head=RESPONSE, body=io.BytesIO(body), remote_ip=None,
                          captured_at=datetime.now(UTC))


def payloads(archive: Path) -> dict[str, bytes]:
    """Each response's payload by target URI, every digest checked, every file checked by
    ``warcio check``."""
    out: dict[str, bytes] = {}
    for path in sorted(archive.glob("*.warc.gz")):
        done = subprocess.run([str(Path(sys.executable).parent / "warcio"), "check", "-v",
                               str(path)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh, check_digests=True):
                if record.rec_type == "response":
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    out[uri] = record.content_stream().read()
    return out


def test_a_large_record_is_written_with_a_full_system_temporary_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = os.urandom(1_500_000)
    with small_tmpfs(tmp_path / "tmp", "64k") as tiny:
        monkeypatch.setattr(tempfile, "tempdir", str(tiny))
        with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="s") as writer:
            write(writer, "big", big)
        assert not any(tiny.iterdir())
    assert payloads(tmp_path / "archive") == {"http://example.org/big": big}


def test_a_full_archive_disk_met_while_spilling_stops_with_the_archives_error(
        tmp_path: Path) -> None:
    small = os.urandom(100_000)
    with small_tmpfs(tmp_path / "archive", "1m") as archive:
        writer = WarcWriter(archive, root=tmp_path, run_id="s")
        with writer:
            write(writer, "small", small)
            with pytest.raises(ArchiveError, match=r"\.warc\.gz: cannot write WARC record: "
                                                   r"disk full"):
                write(writer, "big", os.urandom(1_500_000))
            # The writer refuses anything more, as after any failed write.
            with pytest.raises(ArchiveError, match="disk full"):
                write(writer, "after", small)
        # What was written before is whole and readable; no spill is left behind.
        assert payloads(archive) == {"http://example.org/small": small}
        assert [p.name for p in archive.iterdir()
                if not p.name.endswith((".warc.gz", ".cdxj", ".lock"))] == []
