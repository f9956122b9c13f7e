"""SHA-256 digests in new WARC records; SHA-1 records written before stay readable."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver.models import WarcRef
from archiver.warc import WarcWriter, lookup, read_record
from tests.test_warc import WHEN, assert_valid_warcs, read_warc, write


def test_new_records_carry_sha256_hex_digests_that_warcio_checks(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    body = b"<html>evidence</html>"
    with WarcWriter(archive, root=tmp_path, run_id="d1", clock=lambda: WHEN) as writer:
        first = write(writer, "http://example.org/a", body)
        again = write(writer, "http://example.org/b", body)
    (path,) = assert_valid_warcs(archive)
    expected = "sha256:" + hashlib.sha256(body).hexdigest()
    assert first.payload_digest == expected
    assert again.revisit  # deduplication still finds the payload by its (new) digest
    records = read_warc(path)
    for kind, headers, _http, _payload in records:
        assert headers["WARC-Block-Digest"].startswith("sha256:"), kind
        assert len(headers["WARC-Block-Digest"]) == len("sha256:") + 64
    response = next(r for r in records if r[0] == "response")
    assert response[1]["WARC-Payload-Digest"] == expected
    # The index carries the same digest, so pywb/ReplayWeb.page deduplicate on it.
    assert [e.digest for e in lookup(archive, "http://example.org/a")] == [expected]


def test_sha1_records_written_before_stay_readable(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    old = archive / "old.warc.gz"
    with open(old, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)  # warcio's default: sha1 base32
        head = StatusAndHeaders("200 OK", [("Content-Type", "text/plain")], protocol="HTTP/1.1")
        record = writer.create_warc_record("http://example.org/old", "response",
                                           payload=io.BytesIO(b"old body"), http_headers=head)
        writer.write_record(record)
    (only,) = read_warc(old)
    assert only[1]["WARC-Payload-Digest"].startswith("sha1:")
    size = old.stat().st_size
    stored = read_record(tmp_path, WarcRef("archive/old.warc.gz", 0, size,
                                           only[1]["WARC-Record-ID"]))
    assert stored.payload == b"old body"


def test_same_payload_written_at_once_from_threads_is_stored_once(tmp_path: Path) -> None:
    """The fetcher writes from worker threads: two answers with the same bytes arriving
    together must still give one response and revisits, not two responses."""
    import threading

    archive = tmp_path / "archive"
    body = b"x" * (4 << 20)  # large enough that hashing it lets other threads run
    barrier = threading.Barrier(6)
    exchanges = []

    with WarcWriter(archive, root=tmp_path, run_id="race", clock=lambda: WHEN) as writer:
        def one(i: int) -> None:
            barrier.wait()
            exchanges.append(write(writer, f"http://example.org/{i}", body))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(e.revisit for e in exchanges) == [False] + [True] * 5
    kinds = [r[0] for r in read_warc(next(archive.glob("*.warc.gz")))]
    assert kinds.count("response") == 1 and kinds.count("revisit") == 5
