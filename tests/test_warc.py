"""The WARC writer: records, revisits, rotation, crash recovery, disk full, index, replay.

Every file written here is read back with warcio (digests checked) and ``warcio check``.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator

from archiver.errors import ArchiveError
from archiver.warc import (
    INDEX_NAME,
    PayloadSeen,
    WarcWriter,
    _Sink,
    complete_members,
    lookup,
    read_record,
    rebuild_index,
    recover,
)

REPO = Path(__file__).resolve().parent.parent
WARCIO = Path(sys.executable).parent / "warcio"  # the interpreter's own environment
WHEN = datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC)


def read_warc(path: Path) -> list:
    """Every record of ``path`` as (type, warc headers dict, http headers, raw payload),
    with block and payload digests verified."""
    out = []
    with open(path, "rb") as fh:
        it = ArchiveIterator(fh, check_digests=True)
        for record in it:
            payload = record.raw_stream.read()
            assert record.digest_checker.passed is not False, record.digest_checker.problems
            out.append((record.rec_type, dict(record.rec_headers.headers), record.http_headers,
                        payload))
    return out


def assert_valid_warcs(folder: Path) -> list[Path]:
    """Every closed WARC under ``folder`` passes ArchiveIterator(check_digests) and
    ``warcio check``; none is left ``.open``. Returns the files."""
    files = sorted(folder.glob("*.warc.gz"))
    assert files, f"no WARC files in {folder}"
    assert not list(folder.glob("*.open")), "a WARC file was left open"
    for path in files:
        records = read_warc(path)
        assert records[0][0] == "warcinfo", f"{path.name}: first record is not warcinfo"
    done = subprocess.run([str(WARCIO), "check", "-v", *map(str, files)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "digest failed" not in done.stdout
    return files


REQUEST = (b"GET /page HTTP/1.1\r\nHost: example.org\r\nUser-Agent: archiver-test\r\n"
           b"Cookie: session=SECRET-COOKIE\r\nAuthorization: Bearer SECRET-TOKEN\r\n"
           b"Proxy-Authorization: Basic SECRET-PROXY\r\n\r\n")


def response_head(body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n")


def write(writer: WarcWriter, url: str, body: bytes, **kw):
    return writer.write_exchange(url=url, request_head=REQUEST,
                                 response_head=kw.pop("head", response_head(body)),
                                 body=io.BytesIO(body), remote_ip="192.0.2.1",
                                 captured_at=kw.pop("captured_at", WHEN), **kw)


def test_exchange_records_are_linked_exact_and_redacted(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    body = gzip.compress(b"<html>evidence</html>")
    head = response_head(body, b"Content-Encoding: gzip\r\nX-Odd: caf\xe9\r\n")
    with WarcWriter(archive, root=tmp_path, run_id="r1", clock=lambda: WHEN) as writer:
        exchange = write(writer, "http://example.org/page", body, head=head)
        meta = writer.write_metadata(url="http://example.org/page",
                                     concurrent_to=exchange.response.record_id,
                                     fields=[("cited-by", "kazakhstan-2020#14")],
                                     captured_at=WHEN)
    (path,) = assert_valid_warcs(archive)
    assert path.name == "archiver-20261125120001-r1-00001.warc.gz"
    assert exchange.response.path == f"archive/{path.name}"
    kinds = [r[0] for r in read_warc(path)]
    assert kinds == ["warcinfo", "request", "response", "metadata"]
    info, request, response, metadata = read_warc(path)
    assert b"software: archiver/" in info[3] and b"run-id: r1" in info[3]
    assert info[1]["WARC-Filename"] == path.name
    assert request[1]["WARC-Concurrent-To"] == exchange.response.record_id
    assert response[1]["WARC-Concurrent-To"] == exchange.request.record_id
    assert response[1]["WARC-IP-Address"] == "192.0.2.1"
    assert response[1]["WARC-Payload-Digest"] == exchange.payload_digest
    # The body is stored exactly as received, Content-Encoding intact.
    assert response[3] == body
    raw = path.read_bytes()
    whole = gzip.decompress(raw)
    assert head in whole  # the head bytes as given, non-ASCII included
    for secret in (b"SECRET-COOKIE", b"SECRET-TOKEN", b"SECRET-PROXY"):
        assert secret not in whole
    assert b"Cookie: [redacted]" in whole and b"Authorization: [redacted]" in whole
    assert metadata[1]["WARC-Concurrent-To"] == exchange.response.record_id
    assert metadata[3] == b"cited-by: kazakhstan-2020#14\r\n"
    assert meta.record_id == metadata[1]["WARC-Record-ID"]
    # WarcRef offsets and lengths point at exactly one gzip member each.
    stored = read_record(tmp_path, exchange.response)
    assert stored.payload == body
    assert ("Content-Encoding", "gzip") in stored.http_headers
    chunk = raw[exchange.response.offset: exchange.response.offset + exchange.response.length]
    assert gzip.decompress(chunk).startswith(b"WARC/1.1\r\n")


def test_transfer_encoding_header_is_renamed_because_body_is_dechunked(tmp_path: Path) -> None:
    body = b"hello world"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
    with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="te") as writer:
        exchange = write(writer, "http://example.org/te", body, head=head)
    assert_valid_warcs(tmp_path / "archive")
    stored = read_record(tmp_path, exchange.response)
    assert ("X-Archive-Orig-Transfer-Encoding", "chunked") in stored.http_headers
    assert stored.payload == body


def test_identical_payload_becomes_revisit_in_run_and_across_runs(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with WarcWriter(archive, root=tmp_path, run_id="one") as writer:
        first = write(writer, "http://example.org/a", b"same payload")
        second = write(writer, "http://example.org/b", b"same payload")
        other = write(writer, "http://example.org/c", b"different")
    assert not first.revisit and second.revisit and not other.revisit
    assert first.payload_digest == second.payload_digest
    seen = PayloadSeen(first.response.record_id, "http://example.org/a", WHEN)
    asked: list[str] = []

    def find(digest: str) -> PayloadSeen | None:
        asked.append(digest)
        return seen if digest == first.payload_digest else None

    with WarcWriter(archive, root=tmp_path, run_id="two", find_payload=find) as writer:
        third = write(writer, "http://example.org/a", b"same payload")
    assert third.revisit and asked == [first.payload_digest]
    assert_valid_warcs(archive)
    stored = read_record(tmp_path, third.response)
    headers = dict(stored.warc_headers)
    assert headers["WARC-Type"] == "revisit"
    assert headers["WARC-Profile"].endswith("/revisit/identical-payload-digest")
    assert headers["WARC-Refers-To-Target-URI"] == "http://example.org/a"
    assert headers["WARC-Refers-To-Date"] == "2026-11-25T12:00:01Z"
    assert headers["WARC-Refers-To"] == first.response.record_id
    assert stored.payload == b""


def test_truncated_payload_is_marked_and_never_deduplicated(tmp_path: Path) -> None:
    with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="t") as writer:
        a = write(writer, "http://example.org/a", b"partial", truncated="length")
        b = write(writer, "http://example.org/b", b"partial", truncated="length")
    assert not a.revisit and not b.revisit
    assert_valid_warcs(tmp_path / "archive")
    assert dict(read_record(tmp_path, a.response).warc_headers)["WARC-Truncated"] == "length"


def test_rotation_at_max_size_and_index(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    refs = []
    with WarcWriter(archive, root=tmp_path, run_id="rot", max_size=4000) as writer:
        for i in range(12):
            refs.append(write(writer, f"http://example.org/{i}", os.urandom(900)))
    files = assert_valid_warcs(archive)
    assert len(files) >= 3
    assert [f.name[-13:] for f in files][:3] == ["00001.warc.gz", "00002.warc.gz",
                                                 "00003.warc.gz"]
    for f in files:
        assert f.stat().st_size < 4000 + 2 * 1200  # rotated before growing far past the limit
    lines = (archive / INDEX_NAME).read_text().splitlines()
    assert lines == sorted(lines) and len(lines) == 12
    for i, exchange in enumerate(refs):
        (entry,) = lookup(archive, f"http://example.org/{i}")
        assert f"archive/{entry.filename}" == exchange.response.path
        assert (entry.offset, entry.length) == (exchange.response.offset,
                                               exchange.response.length)
        assert entry.status == 200 and entry.digest == exchange.payload_digest
    before = (archive / INDEX_NAME).read_text()
    (archive / INDEX_NAME).unlink()
    assert rebuild_index(archive).read_text() == before


def test_index_of_a_new_file_merged_into_the_index_on_disk(tmp_path: Path) -> None:
    """Each closed file's lines join the index as it is read (sorted, lines of other files
    kept, its own replaced); an index out of order on disk comes out sorted all the same."""
    archive = tmp_path / "archive"
    with WarcWriter(archive, root=tmp_path, run_id="one") as writer:
        for i in range(0, 12, 2):
            write(writer, f"http://example.org/{i}", b"first %d" % i)
    first = (archive / INDEX_NAME).read_text().splitlines()
    assert len(first) == 6
    with WarcWriter(archive, root=tmp_path, run_id="two") as writer:
        for i in range(1, 12, 2):
            write(writer, f"http://example.org/{i}", b"second %d" % i)
    merged = (archive / INDEX_NAME).read_text().splitlines()
    assert len(merged) == 12 and merged == sorted(merged) and set(first) < set(merged)
    (archive / INDEX_NAME).unlink()
    assert rebuild_index(archive).read_text().splitlines() == merged

    # Out of order (written by another tool): the index stays whole and sorted.
    (archive / INDEX_NAME).write_text("\n".join(reversed(merged)) + "\n")
    with WarcWriter(archive, root=tmp_path, run_id="three") as writer:
        write(writer, "http://example.org/last", b"third")
    lines = (archive / INDEX_NAME).read_text().splitlines()
    assert lines == sorted(lines) and len(lines) == 13 and set(merged) < set(lines)


def test_index_lines_sorted_in_runs_equal_the_index_read_from_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file with more index lines than are sorted in memory at once: sorted in runs on
    disk and merged, the same index as reading the file gives, and no run file left."""
    import archiver.warc as warc

    monkeypatch.setattr(warc, "_SORT_CHUNK", 3)
    archive = tmp_path / "archive"
    with WarcWriter(archive, root=tmp_path, run_id="runs") as writer:
        for i in (7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6):
            write(writer, f"http://example.org/{i}", b"page %d" % i)
    noted = (archive / INDEX_NAME).read_text()
    assert len(noted.splitlines()) == 12
    (archive / INDEX_NAME).unlink()
    assert rebuild_index(archive).read_text() == noted
    assert sorted(p.name for p in archive.iterdir() if not p.name.endswith(".warc.gz")) \
        == sorted([INDEX_NAME, INDEX_NAME + ".lock"])


def disk_full_after(budget: int):
    """A ``_Sink.write`` that lets ``budget`` bytes through, then writes part of a buffer and
    fails like a full disk."""
    left = [budget]

    def write(sink: _Sink, data) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), left[0])
        left[0] -= n
        return os.write(sink.fd, data[:n])

    return write


def test_index_noted_while_writing_equals_the_index_read_from_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing a file does not read it again: the lines noted as its records were written
    are exactly those the indexer gives when it reads the same file, for every kind of
    record and head the writer stores (including heads the indexer treats specially)."""
    import archiver.warc as warc_module

    archive = tmp_path / "archive"
    read_back: list[list[Path]] = []
    real_index_lines = warc_module._index_lines

    def spy(folder: Path, files):
        read_back.append(list(files))
        return real_index_lines(folder, files)

    monkeypatch.setattr(warc_module, "_index_lines", spy)
    heads = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Type: TEXT/Plain ;q=1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type:\r\n\r\n",  # empty value
        b"HTTP/1.1 204\r\nServer: x\r\n\r\n",  # no reason, no type
        b"HTTP/1.0 301 Moved\r\nLocation: /b\r\nX-Odd: caf\xe9\r\n\r\n",  # not UTF-8
        b"HTTP/1.1 200 OK\r\ncontent-type:  application/pdf\r\n",  # no blank line
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html;\r\n charset=x\r\n\r\n",  # folded
    ]
    with WarcWriter(archive, root=tmp_path, run_id="idx", clock=lambda: WHEN,
                    max_size=4000) as writer:
        writer.from_archive = lambda url, head: (
            ("http://example.org/cited", WHEN) if "web.archive.org" in url else None)
        for i, head in enumerate(heads):
            body = f"body {i} ".encode() * (i * 40 + 1)
            ex = write(writer, f"http://example.org/{i}?q=a b&z=1", body, head=head)
            write(writer, f"https://example.org/again/{i}", body, head=head)  # a revisit
            writer.write_metadata(url=f"http://example.org/{i}",
                                  concurrent_to=ex.response.record_id,
                                  fields=[("cited-by", f"doc#{i}")], captured_at=WHEN)
            writer.write_json_metadata(url=f"urn:provenance:http://example.org/{i}",
                                       concurrent_to=ex.response.record_id,
                                       block=json.dumps({"n": i}).encode(), captured_at=WHEN)
        write(writer, "http://example.org/cut", b"partial", truncated="length")
        write(writer, "https://web.archive.org/web/2020/http://example.org/cited", b"memento")
        write(writer, "http://xn--caf-dma.example/\u00e9t\u00e9", b"unicode target")
        writer.write_resource(uri="urn:screenshot:http://example.org/0",
                              content_type="image/png", data=b"\x89PNG fake",
                              concurrent_to=None, captured_at=WHEN)
        writer.write_resource(uri="urn:text:http://example.org/0",
                              content_type="text/plain; charset=utf-8", data=b"text",
                              concurrent_to=None, captured_at=WHEN)
    files = assert_valid_warcs(archive)
    assert len(files) > 3, "rotation should have closed several files"
    assert read_back == [], "closing a file read it back to index it"
    noted = (archive / INDEX_NAME).read_text()
    assert noted == rebuild_index(archive).read_text()
    lines = noted.splitlines()
    # Response, revisit and non-warc-fields metadata/resource records; the metadata records
    # of cited-by fields are not indexed.
    assert len(lines) == len(heads) * 3 + 3 + 2
    assert any('"mime": "warc/revisit"' in line for line in lines)
    assert any('"url": "urn:screenshot:http://example.org/0"' in line for line in lines)
    # The spilled lines lived in an unnamed file: nothing else is left in the folder.
    assert {p.name for p in archive.iterdir()} == {f.name for f in files} | {
        INDEX_NAME, INDEX_NAME + ".lock"}


def _every_kind_of_record(folder: Path, root: Path) -> None:
    """Write one of each record the writer makes (heads of every shape, revisits, a POST
    body, a cut body, a memento, compressed bodies, metadata, resources), rotating files."""
    heads = [
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Type: TEXT/Plain ;q=1\r\n\r\n",
        b"HTTP/1.1 204\r\nServer: x\r\n\r\n",
        b"HTTP/1.0 301 Moved\r\nLocation: /b\r\nX-Odd: caf\xe9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type:  application/pdf\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html;\r\n charset=x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n",
    ]
    with WarcWriter(folder, root=root, run_id="same", clock=lambda: WHEN,
                    max_size=6000) as writer:
        writer.from_archive = lambda url, head: (
            ("http://example.org/cited", WHEN) if "web.archive.org" in url else None)
        for i, head in enumerate(heads):
            body = f"body {i} \u00e9 ".encode() * (i * 900 + 1)  # up to several warcio chunks
            ex = write(writer, f"http://example.org/{i}?q=a b&z=1", body, head=head)
            write(writer, f"https://example.org/again/{i}", body, head=head)  # a revisit
            writer.write_metadata(url=f"http://example.org/{i}",
                                  concurrent_to=ex.response.record_id,
                                  fields=[("cited-by", f"doc#{i}"), ("note", "a\r\nb")],
                                  captured_at=WHEN)
            writer.write_json_metadata(url=f"urn:provenance:http://example.org/{i}",
                                       concurrent_to=ex.response.record_id,
                                       block=json.dumps({"n": i}).encode(), captured_at=WHEN)
        write(writer, "http://example.org/cut", b"partial", truncated="length")
        write(writer, "http://example.org/empty", b"")
        write(writer, "https://web.archive.org/web/2020/http://example.org/cited", b"memento")
        write(writer, "http://xn--caf-dma.example/\u00e9t\u00e9", b"unicode target")
        writer.write_exchange(url="http://example.org/form", request_body=b"q=claim&x=1",
                              request_head=b"POST /form HTTP/1.1\r\nHost: example.org\r\n"
                                           b"Content-Length: 11\r\n\r\n",
                              response_head=response_head(b"ok"), body=io.BytesIO(b"ok"),
                              remote_ip=None, captured_at=WHEN)
        writer.write_metadata(url="http://example.org/x", concurrent_to="", fields=[],
                              captured_at=WHEN)
        for content_type in ("image/png", "text/plain; charset=utf-8", ""):
            writer.write_resource(uri="urn:screenshot:http://example.org/0",
                                  content_type=content_type, data=b"\x89PNG fake",
                                  concurrent_to=None, captured_at=WHEN)
        writer.write_resource(uri="", content_type="text/plain", data=b"",
                              concurrent_to="<urn:uuid:x>", captured_at=WHEN)


def test_records_are_those_warcio_builds_byte_for_byte(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer builds its records itself (warcio's RecordBuilder was a third of the cost
    of writing a page); what it writes is exactly what warcio writes for the same records:
    the same WARC files, byte for byte, and the same index, with record IDs pinned."""
    import itertools
    import uuid

    from warcio.statusandheaders import StatusAndHeadersParser

    import archiver.warc as warc_module

    def pin_ids() -> None:
        counter = itertools.count()

        def pinned() -> str:
            return f"<urn:uuid:{uuid.UUID(int=next(counter))}>"

        monkeypatch.setattr(warc_module, "_record_id", pinned)
        monkeypatch.setattr(StatusAndHeadersParser, "make_warc_id", staticmethod(pinned))

    pin_ids()
    _every_kind_of_record(tmp_path / "ours", tmp_path)

    # The same records made by warcio, as the writer made them before it built its own.
    def write_one_by_warcio(self, uri, record_type, content_type, block, *, concurrent_to,
                            captured_at):
        record_id = warc_module._record_id()
        headers = {"WARC-Record-ID": record_id,
                   "WARC-Date": warc_module.isoformat(captured_at)}
        if concurrent_to:
            headers["WARC-Concurrent-To"] = concurrent_to
        with self._lock:
            out = self._record_out(len(block))
            record = warc_module._warcio_writer(out).create_warc_record(
                uri, record_type, payload=io.BytesIO(block), length=len(block),
                warc_content_type=content_type, warc_headers_dict=headers)
            (offset, size), = self._append(out, [record])
            return self._ref(record_id, offset, size)

    monkeypatch.setattr(warc_module, "_has_status_line", lambda head: False)
    monkeypatch.setattr(WarcWriter, "_write_one", write_one_by_warcio)
    pin_ids()
    _every_kind_of_record(tmp_path / "warcio", tmp_path)

    ours = sorted((tmp_path / "ours").glob("*.warc.gz"))
    theirs = sorted((tmp_path / "warcio").glob("*.warc.gz"))
    assert len(ours) > 3, "rotation should have closed several files"
    assert [p.name for p in ours] == [p.name for p in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.read_bytes() == reference.read_bytes(), mine.name
    assert (tmp_path / "ours" / INDEX_NAME).read_text() == (
        tmp_path / "warcio" / INDEX_NAME).read_text()
    assert_valid_warcs(tmp_path / "ours")


def test_compressed_body_is_stored_in_its_member_without_deflating_it_again(
        tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    text = b"<p>evidence of the claim</p>" * 200
    encoded = gzip.compress(text)
    with WarcWriter(archive, root=tmp_path, run_id="st", clock=lambda: WHEN) as writer:
        plain = write(writer, "http://example.org/plain", text)
        packed = write(writer, "http://example.org/packed", encoded,
                       head=response_head(encoded, b"Content-Encoding: gzip\r\n"))
        jpeg = write(writer, "http://example.org/photo", b"\xff\xd8\xff" + os.urandom(5000),
                     head=b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n")
    (path,) = assert_valid_warcs(archive)
    data = path.read_bytes()

    def block_type(ref) -> int:
        member = data[ref.offset:ref.offset + ref.length]
        assert member[:3] == b"\x1f\x8b\x08" and member[3] == 0  # gzip, no optional fields
        return (member[10] >> 1) & 3  # the first deflate block's BTYPE: 0 is stored

    assert block_type(plain.response) != 0
    assert block_type(packed.response) == 0 and block_type(jpeg.response) == 0
    assert block_type(packed.request) != 0  # only the response body's member is stored
    assert read_record(tmp_path, packed.response).payload == encoded


def test_disk_full_raises_archive_error_and_leaves_valid_files(tmp_path: Path,
                                                               monkeypatch) -> None:
    archive = tmp_path / "archive"
    with WarcWriter(archive, root=tmp_path, run_id="full", max_size=3000) as writer:
        for i in range(4):
            write(writer, f"http://example.org/{i}", os.urandom(1000))
        monkeypatch.setattr(_Sink, "write", disk_full_after(1500))
        with pytest.raises(ArchiveError) as caught:
            for i in range(4, 40):
                write(writer, f"http://example.org/{i}", os.urandom(1000))
        assert "disk full" in str(caught.value) and ".warc.gz" in str(caught.value)
        with pytest.raises(ArchiveError):
            write(writer, "http://example.org/after", b"x")  # the writer stays stopped
        monkeypatch.undo()
    files = assert_valid_warcs(archive)
    assert len(files) >= 2
    # The file being written when the disk filled was cut back to whole records.
    for f in files:
        records, end = complete_members(f)
        assert end == f.stat().st_size and records >= 1


WRITER_SCRIPT = textwrap.dedent("""
    import io, os, sys
    from pathlib import Path
    from archiver.warc import WarcWriter
    archive = Path(sys.argv[1])
    writer = WarcWriter(archive, root=archive.parent, run_id="crash", max_size=20000)
    writer.open()
    i = 0
    while True:
        writer.write_exchange(url=f"http://example.org/{i}",
                              request_head=b"GET / HTTP/1.1\\r\\nHost: example.org\\r\\n\\r\\n",
                              response_head=b"HTTP/1.1 200 OK\\r\\n\\r\\n",
                              body=io.BytesIO(os.urandom(3000)), remote_ip=None,
                              captured_at=__import__("archiver.models").models.utcnow())
        i += 1
        if i == 30:
            print("ready", flush=True)
""")


def test_kill_9_mid_write_then_recovery(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(archive)], cwd=REPO,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    leftovers = list(archive.glob("*.warc.gz.open"))
    # Usually the kill lands inside a file; it may also land between a rotation's close and
    # the next file's first write, which leaves no open file at all.
    assert len(leftovers) <= 1
    closed_before = sorted(archive.glob("*.warc.gz"))
    assert closed_before, "rotation should have closed files before the kill"
    if leftovers:
        # End the leftover in a cut record, as a crash mid-append would leave it.
        with open(leftovers[0], "ab") as fh:
            fh.write(gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\n" + b"x" * 500)[:-40])
    with WarcWriter(archive, root=tmp_path, run_id="next") as writer:
        assert len(writer.recovered) == len(leftovers)
        # A kill before the new file's warcinfo was complete leaves nothing to repair: such a
        # file is quarantined. Otherwise it is cut back to its last whole record.
        repaired = [r for r in writer.recovered if r.action == "repaired"]
        assert all(r.dropped_bytes > 0 and r.records >= 1 for r in repaired)
        write(writer, "http://example.org/after", b"after the crash")
    files = assert_valid_warcs(archive)
    assert len(files) == len(closed_before) + len(repaired) + 1
    # Every repaired record is indexed: the index agrees with a fresh rebuild.
    index = (archive / INDEX_NAME).read_text()
    assert index == rebuild_index(archive).read_text()
    assert lookup(archive, "http://example.org/0")


def test_open_file_without_a_complete_record_is_quarantined(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    junk = archive / "archiver-20260101000000-x-00001.warc.gz.open"
    junk.write_bytes(gzip.compress(b"WARC/1.1\r\n" + b"y" * 100)[:20])
    done = recover(archive)
    assert [(d.action, d.records) for d in done] == [("quarantined", 0)]
    assert (archive / "quarantine" / junk.name).exists() and not junk.exists()


def test_open_file_held_by_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    with WarcWriter(archive, root=tmp_path, run_id="live") as writer:
        write(writer, "http://example.org/x", b"live")
        assert writer.current_path is not None and writer.current_path.exists()
        assert recover(archive) == []
        assert writer.current_path.exists()
    assert_valid_warcs(archive)


def test_bad_run_id_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="run id"):
        WarcWriter(tmp_path, root=tmp_path, run_id="../escape")


def test_read_record_names_the_file_when_missing(tmp_path: Path) -> None:
    from archiver.models import WarcRef

    with pytest.raises(ArchiveError, match=r"nope\.warc\.gz"):
        read_record(tmp_path, WarcRef("archive/nope.warc.gz", 0, 10, "<urn:uuid:x>"))


def test_pywb_replays_the_archive_folder(tmp_path: Path) -> None:
    """pywb, pointed at archive/ and its index.cdxj, replays captures and revisits."""
    pytest.importorskip("pywb")
    archive = tmp_path / "archive"
    body = gzip.compress(b"<html><body>the cited evidence</body></html>")
    head = response_head(body, b"Content-Encoding: gzip\r\n")
    with WarcWriter(archive, root=tmp_path, run_id="replay") as writer:
        write(writer, "http://example.org/page", body, head=head)
        write(writer, "http://example.org/copy", body, head=head,
              captured_at=datetime(2026, 11, 25, 12, 0, 5, tzinfo=UTC))
    assert_valid_warcs(archive)
    (tmp_path / "config.yaml").write_text(json.dumps({"collections": {"cite": {
        "index_paths": str(archive / INDEX_NAME), "archive_paths": str(archive) + "/"}}}))
    script = textwrap.dedent(f"""
        from pywb.apps.frontendapp import FrontEndApp
        from werkzeug.test import Client
        client = Client(FrontEndApp(config_file={str(tmp_path / 'config.yaml')!r}))
        for url in ("http://example.org/page", "http://example.org/copy"):
            r = client.get("/cite/2026id_/" + url)
            print(r.status_code, r.data.decode())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line[:3].isdigit()]
    assert lines == ["200 <html><body>the cited evidence</body></html>"] * 2, \
        done.stdout + done.stderr


_HEADS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n", b"HTTP/1.1 200\r\n\r\n", b"HTTP/1.1\r\n\r\n",
    b"HTTP/1.1  204  \r\n\r\n",
    b"HTTP/1.0 301 Moved\r\nLocation: /b\r\nX-Odd: caf\xe9\r\n\r\n",  # not UTF-8
    b"HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9 \xe2\x80\x94\r\n\r\n",  # UTF-8
    b"HTTP/1.1 200 OK\r\ncontent-type:  application/pdf\r\n",  # no blank line
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html",  # no line end at all
    b"HTTP/1.1 200 OK\nContent-Type: a\nServer: b\n\n",  # bare LF
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html;\r\n charset=x\r\n\tq=1\r\n\r\n",  # folded
    b"HTTP/1.1 200 OK\r\nX-Empty:\r\n folded\r\n\r\n",  # folded onto an empty value
    b"HTTP/1.1 200 OK\r\n folded first\r\nA: b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNo colon here\r\n more\r\nA: b\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA : b \t\r\nB\t:\t c\r\n:empty name\r\nC:d:e\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\r\n   \r\nAfter: blank-ish line\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nBody: not a header\r\n",
    b"HTTP/1.1 200 OK\r\nA: \xc2\xa0b\xc2\xa0\r\nB: \xe3\x80\x80\r\n\r\n",  # Unicode blanks
    b"HTTP/1.1 200 OK\x85\r\nA: b\x0b\r\nC: d\x0c\r\n\r\n", b"HTTP/1.1 200 OK\rA: b\r\n\r\n",
    b"\r\n\r\n", b"\r\nHTTP/1.1 200 OK\r\n\r\n", b" \r\n", b"x",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"http/1.1 200 ok\r\nA: b\r\n\r\n", b"HTTP/2 200\r\nA: b\r\n\r\n",
]


def _warcio_head(raw: bytes) -> tuple[str, list[tuple[str, str]], str]:
    from warcio.statusandheaders import StatusAndHeadersParser

    parsed = StatusAndHeadersParser(["HTTP/1.0", "HTTP/1.1"], verify=False).parse(
        io.BytesIO(raw))
    return parsed.statusline, parsed.headers, parsed.protocol


def _check_head(raw: bytes) -> None:
    from archiver.warc import _RESPONSE_VERBS, _parse_head, _RawHead

    expected = _warcio_head(raw)
    mine = _parse_head(raw)
    if mine is not None:
        assert mine == expected, raw
    head = _RawHead(raw, _RESPONSE_VERBS)
    assert (head.statusline, head.headers, head.protocol) == expected, raw
    assert head.headers_buff == raw


def test_response_heads_are_parsed_as_warcio_parses_them() -> None:
    """The writer reads a stored head in one pass (``_parse_head``) and gets what warcio's
    parser (the indexer's reader) gets, field by field; heads that are not UTF-8 are left
    to warcio."""
    for raw in _HEADS:
        _check_head(raw)
    from archiver.warc import _parse_head

    assert _parse_head(_HEADS[5]) is None  # not UTF-8: warcio's own line-by-line decoding
    assert _parse_head(_HEADS[0]) is not None


_HEAD_PIECES = [
    "HTTP/1.1", "HTTP/1.0", "200", "OK", " ", "  ", "\t", ":", "::", "\r\n", "\n", "\r",
    "\r\n ", "\r\n\t", "\r\n\r\n", "Content-Type", "text/html", "X", "caf\u00e9", "\u00a0",
    "\u3000", "\x85", "\x0b", "\x1c", "a;b=c",
]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_HEAD_PIECES) | st.text(max_size=4), max_size=30),
       st.booleans())
def test_generated_heads_are_parsed_as_warcio_parses_them(pieces: list[str],
                                                          latin1: bool) -> None:
    text = "HTTP/1.1 200 OK\r\n" + "".join(pieces) + "\r\n\r\n"
    raw = text.encode("latin-1", "replace") if latin1 else text.encode("utf-8", "surrogatepass")
    _check_head(raw)


def test_payload_digest_given_by_the_caller_writes_the_same_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetcher that hashed the body as it arrived passes its digest; the body is then not
    hashed a second time, and the files are byte for byte those written without it."""
    import hashlib
    import itertools
    import uuid

    from warcio.statusandheaders import StatusAndHeadersParser

    import archiver.warc as warc_module

    bodies = [b"", b"x", b"<html>evidence</html>" * 500, b"\x89PNG" + bytes(range(256)) * 90]
    for name, give in (("computed", False), ("given", True)):
        counter = itertools.count()

        def pinned(c: itertools.count = counter) -> str:
            return f"<urn:uuid:{uuid.UUID(int=next(c))}>"

        monkeypatch.setattr(warc_module, "_record_id", pinned)
        monkeypatch.setattr(StatusAndHeadersParser, "make_warc_id", staticmethod(pinned))
        with WarcWriter(tmp_path / name, root=tmp_path, run_id="d", clock=lambda: WHEN) as w:
            for i, body in enumerate(bodies):
                digest = "sha256:" + hashlib.sha256(body).hexdigest() if give else None
                exchange = write(w, f"http://example.org/{i}", body, payload_sha256=digest)
                assert exchange.payload_digest == "sha256:" + hashlib.sha256(body).hexdigest()
    computed = sorted((tmp_path / "computed").glob("*.warc.gz"))
    given = sorted((tmp_path / "given").glob("*.warc.gz"))
    assert [p.read_bytes() for p in computed] == [p.read_bytes() for p in given]
    assert_valid_warcs(tmp_path / "given")


@pytest.mark.parametrize("fast", [False, True], ids=["zlib", "isal"])
def test_members_are_the_same_records_with_or_without_isal(tmp_path: Path, monkeypatch,
                                                           fast: bool) -> None:
    """With ``isal`` importable the writer's members at its level are ISA-L's deflate: other
    compressed bytes than zlib's, the same records inflated (any gzip reader), and the
    stored members of compressed bodies unchanged. Without it, zlib's bytes."""
    import itertools
    import zlib

    import archiver.warc as warc_module

    if fast:
        isal_zlib = pytest.importorskip("isal.isal_zlib")
    files = {}
    page = b"<html><body>" + "Свидетельство по делу № 14. ".encode() * 300 + b"</body></html>"
    encoded = gzip.compress(page)
    for name, deflate in (("zlib", None), ("fast", isal_zlib if fast else None)):
        ids = itertools.count()
        monkeypatch.setattr(warc_module, "_record_id",
                            lambda ids=ids: f"<urn:uuid:00000000-0000-0000-0000-{next(ids):012d}>")
        monkeypatch.setattr(warc_module, "_FAST_DEFLATE", deflate)
        archive = tmp_path / name / "archive"
        with WarcWriter(archive, root=tmp_path / name, run_id="gz", clock=lambda: WHEN) as w:
            exchange = write(w, "http://example.org/page", page)
            packed = write(w, "http://example.org/packed", encoded,
                           head=response_head(encoded, b"Content-Encoding: gzip\r\n"))
            w.write_metadata(url="http://example.org/page",
                             concurrent_to=exchange.response.record_id,
                             fields=[("cited-by", "doc#1")], captured_at=WHEN)
        (path,) = assert_valid_warcs(archive)
        data = path.read_bytes()
        member = data[exchange.response.offset:exchange.response.offset
                      + exchange.response.length]
        stored = data[packed.response.offset:packed.response.offset + packed.response.length]
        # From the first exchange on (the warcinfo record has an ID of its own).
        files[name] = (gzip.decompress(data[exchange.request.offset:]), member, stored)
        assert read_record(tmp_path / name, exchange.response).payload == page
    assert files["zlib"][0] == files["fast"][0]  # the same records
    assert files["zlib"][2] == files["fast"][2]  # a compressed body's member: zlib's, stored
    deflate = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS + 16)
    inflated = gzip.decompress(files["zlib"][1])
    assert files["zlib"][1] == deflate.compress(inflated) + deflate.flush()
    assert (files["fast"][1] != files["zlib"][1]) is fast


def test_response_record_sha256_is_that_of_its_stored_member(tmp_path: Path) -> None:
    """An exchange's ``response_sha256`` is the SHA-256 of the response's gzip member as
    stored, also after metadata records (whose members are not hashed) and for a head
    warcio reads (no status line)."""
    import hashlib

    moment = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
    with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="1") as writer:
        exchanges = []
        for n, status_line in enumerate([b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 404 Not Found\r\n",
                                         b""]):
            url = f"http://example.org/{n}"
            exchanges.append(writer.write_exchange(
                url=url, request_head=b"GET /%d HTTP/1.1\r\nHost: example.org\r\n\r\n" % n,
                response_head=status_line + b"Content-Type: text/html\r\n\r\n",
                body=io.BytesIO(b"<p>page %d</p>" % n * 50), remote_ip="192.0.2.1",
                captured_at=moment))
            writer.write_metadata(url=url, concurrent_to=exchanges[-1].response.record_id,
                                  fields=[("cited-by", "doc#1")], captured_at=moment)
            writer.write_json_metadata(url="urn:provenance:" + url,
                                       concurrent_to=exchanges[-1].response.record_id,
                                       block=b'{"n":%d}' % n, captured_at=moment)
    for exchange in exchanges:
        ref = exchange.response
        data = (tmp_path / ref.path).read_bytes()[ref.offset:ref.offset + ref.length]
        assert exchange.response_sha256 == hashlib.sha256(data).hexdigest()


_NAMES = st.one_of(st.from_regex(r"archiver-\d{14}-\d{1,3}-\d{5}\.warc\.gz", fullmatch=True),
                   st.text(max_size=30))
_VALUES = st.one_of(st.text(max_size=20), st.integers(), st.none())


@settings(max_examples=400, deadline=None)
@given(name=st.one_of(_NAMES, st.integers(), st.none()),
       before=st.dictionaries(st.sampled_from(["url", "mime", "digest", "offset", "x"]),
                              _VALUES, max_size=4),
       after=st.dictionaries(st.sampled_from(["status", "length", "y"]), _VALUES, max_size=2),
       ascii_only=st.booleans(), separators=st.sampled_from([None, (",", ":"), (", ", ": ")]))
def test_an_index_line_s_file_name_is_read_as_json_reads_it(
        name: object, before: dict[str, object], after: dict[str, object], ascii_only: bool,
        separators: tuple[str, str] | None) -> None:
    """``_line_filename`` takes the name from the line's end without parsing it where it
    can: whatever the writer (key order, spacing, escapes, a name with quotes or
    backslashes, no name), it answers what parsing the JSON answers."""
    from archiver.warc import _line_filename

    for fields in ({**before, "filename": name}, {**before, "filename": name, **after},
                   dict(before)):
        line = "com,example)/ 20260101000000 " + json.dumps(
            fields, ensure_ascii=ascii_only, separators=separators)
        parsed = json.loads(line.split(" ", 2)[2]).get("filename")
        assert _line_filename(line) == (parsed if isinstance(parsed, str) else None)
    for broken in ("", "com,example)/", "a b [1]", 'a b {"filename": "x.warc.gz"',
                   'a b "filename": "x.warc.gz"}', 'a {"filename": "x.warc.gz"}',
                   'a b c {"filename": "x.warc.gz"}', '{"filename": "x.warc.gz"}'):
        assert _line_filename(broken) is None, broken


@settings(max_examples=300, deadline=None)
@given(kept=st.lists(st.text(alphabet="abc", max_size=3)),
       added=st.lists(st.text(alphabet="abc", max_size=3)), as_list=st.booleans())
def test_lines_added_to_the_index_are_merged_as_heapq_merges_them(
        kept: list[str], added: list[str], as_list: bool) -> None:
    """``_merged`` (the index's lines and a file's few) gives what ``heapq.merge`` gives,
    equal lines included, whether the kept lines come as a list or a generator."""
    import heapq

    from archiver.warc import _merged

    kept.sort()
    added.sort()
    source = list(kept) if as_list else (line for line in kept)
    assert list(_merged(source, iter(added))) == list(heapq.merge(kept, added))
