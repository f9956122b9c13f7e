"""Crash recovery of ``.open`` WARC files: never a byte of a complete record removed.

Real WARC files are written with ``WarcWriter``; the spans of their gzip members come from
the writer's own ``WarcRef``s (not from the code under test). Each file is then cut at every
member boundary and at seeded random points inside members, or damaged at random
(hypothesis), and recovered. Every file recovery closes is compared byte for byte with what
it must be, read back with warcio (digests checked) and passed through ``warcio check``.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import random
import shutil
import subprocess
import sys
import uuid
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from warcio.archiveiterator import ArchiveIterator
from warcio.checker import Checker

from archiver.warc import (
    INDEX_NAME,
    WarcWriter,
    complete_members,
    rebuild_index,
    recover,
    scan_members,
)
from tests.test_warc import WHEN, write

WARCIO = Path(sys.executable).parent / "warcio"
NAME = "archiver-20261125120001-crash-00001.warc.gz"


@dataclass(frozen=True)
class Sample:
    """A WARC file as the writer wrote it, and the (offset, length) of each gzip member."""

    data: bytes
    spans: tuple[tuple[int, int], ...]

    def complete_before(self, cut: int) -> tuple[tuple[int, int], ...]:
        """The members wholly within the first ``cut`` bytes."""
        return tuple(s for s in self.spans if s[0] + s[1] <= cut)


def body_of(size: int, kind: str, seed: int) -> bytes:
    rng = random.Random(seed)
    if kind == "random":  # incompressible: deflate stores it
        return rng.randbytes(size)
    if kind == "hex":  # compresses about 2:1
        return rng.randbytes((size + 1) // 2).hex().encode()[:size]
    return b"x" * size  # compresses about 1000:1: a small input decodes to a lot


def make_sample(folder: Path, bodies: list[bytes]) -> Sample:
    """A closed WARC file holding a warcinfo record, then one exchange per body."""
    archive = folder / "source"
    spans: list[tuple[int, int]] = []
    with WarcWriter(archive, root=folder, run_id="crash", clock=lambda: WHEN) as writer:
        for i, body in enumerate(bodies):
            exchange = write(writer, f"http://example.org/{i}", body)
            for ref in (exchange.request, exchange.response):
                spans.append((ref.offset, ref.length))
    (path,) = archive.glob("*.warc.gz")
    data = path.read_bytes()
    spans.insert(0, (0, spans[0][0]))  # the warcinfo record comes first
    assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert spans[-1][0] + spans[-1][1] == len(data)
    shutil.rmtree(archive)
    return Sample(data, tuple(spans))


def read_records(path: Path) -> list[str]:
    """The record ids in ``path``, every block and payload digest verified."""
    ids = []
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh, check_digests=True):
            record.content_stream().read()
            assert record.digest_checker.passed is not False, record.digest_checker.problems
            ids.append(record.rec_headers.get_header("WARC-Record-ID"))
    return ids


def warcio_check(files: list[Path]) -> None:
    """``warcio check`` (the command) passes on every file."""
    for i in range(0, len(files), 200):
        done = subprocess.run([str(WARCIO), "check", "-v", *map(str, files[i:i + 200])],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "digest failed" not in done.stdout


def warcio_check_in_process(path: Path) -> None:
    """What ``warcio check`` runs, without a process per call (for the fuzz test)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        failed = Checker(SimpleNamespace(inputs=[str(path)], verbose=False)).process_all()
    assert failed == 0, out.getvalue()


def recover_copy(folder: Path, data: bytes):
    """``data`` as a leftover ``.open`` file in a fresh archive folder, recovered."""
    folder.mkdir(parents=True)
    (folder / (NAME + ".open")).write_bytes(data)
    (done,) = recover(folder)
    assert not list(folder.glob("*.open"))
    return done


def check_cut(sample: Sample, cut: int, folder: Path, *, reuse: bool = False) -> Path | None:
    """Recover the first ``cut`` bytes of ``sample``: exactly the complete members must
    remain, byte for byte. Returns the closed file, if any.

    With ``reuse``, the leftover is made from what ``folder`` holds from the last call (a
    prefix of ``sample``, as asserted then), writing only the bytes that differ: a 60 MB
    record cut twenty times would otherwise cost more than a gigabyte of writes."""
    data = sample.data[:cut]
    leftover = folder / (NAME + ".open")
    previous = [p for p in (folder / NAME, folder / "quarantine" / leftover.name) if p.exists()]
    if reuse and previous:
        os.replace(previous[0], leftover)
        have = leftover.stat().st_size
        with open(leftover, "r+b") as fh:
            fh.truncate(min(have, cut))
            fh.seek(0, os.SEEK_END)
            fh.write(sample.data[have:cut])
        (done,) = recover(folder)
        assert not list(folder.glob("*.open"))
    else:
        done = recover_copy(folder, data)
    kept = sample.complete_before(cut)
    if not kept:
        assert done.action == "quarantined"
        assert (folder / "quarantine" / (NAME + ".open")).read_bytes() == data
        return None
    end = kept[-1][0] + kept[-1][1]
    assert (done.action, done.records, done.dropped_bytes, done.size) == \
        ("repaired", len(kept), cut - end, end), cut
    closed = folder / NAME
    assert closed.read_bytes() == sample.data[:end], cut
    assert len(read_records(closed)) == len(kept)
    # The repaired file is indexed: the index agrees with one built afresh (once per
    # recovery is enough for the 60 MB record, which costs seconds to index).
    if not reuse or cut == len(sample.data):
        indexed = (folder / INDEX_NAME).read_text()
        assert indexed == rebuild_index(folder).read_text()
    return closed


def cut_points(sample: Sample, inside: int, seed: int) -> list[int]:
    """Every member boundary and the bytes either side, and ``inside`` seeded random points
    inside each member."""
    rng = random.Random(seed)
    points = {0, len(sample.data)}
    for offset, length in sample.spans:
        points.update({offset - 1, offset, offset + 1, offset + length - 1})
        points.update(offset + rng.randrange(1, length) for _ in range(inside) if length > 1)
    return sorted(p for p in points if 0 <= p <= len(sample.data))


# ── the defect as reported ──────────────────────────────────────────────────


def warc_record(block: bytes) -> bytes:
    """A minimal ``resource`` record holding ``block``."""
    head = ("WARC/1.1\r\nWARC-Type: resource\r\nWARC-Target-URI: http://example.org/r\r\n"
            f"WARC-Date: 2026-11-25T12:00:01Z\r\nWARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def test_issue_repro_large_member_then_small_ones_is_not_cut(tmp_path: Path) -> None:
    """A member decoding to more than 64 KiB, then two small ones: before the fix the end
    came out inside the file (or negative), and recovery cut complete records."""
    members = [gzip.compress(warc_record(b"x" * 100000)),
               gzip.compress(warc_record(b"first")), gzip.compress(warc_record(b"second"))]
    data = b"".join(members)
    path = tmp_path / "three.warc.gz"
    path.write_bytes(data)
    assert complete_members(path) == (3, len(data))
    done = recover_copy(tmp_path / "archive", data)
    assert (done.action, done.records, done.dropped_bytes) == ("repaired", 3, 0)
    assert (tmp_path / "archive" / NAME).read_bytes() == data


def test_issue_repro_bytes_that_are_not_warc_records_are_quarantined_whole(
        tmp_path: Path) -> None:
    """The issue's literal bytes: gzip members, but no WARC record (no Content-Length). Before
    the fix, "cannot recover WARC file: Invalid argument" or a cut; now kept untouched."""
    data = (gzip.compress(b"WARC/1.1\r\n" + b"x" * 100000)
            + gzip.compress(b"WARC/1.1\r\n" + b"y" * 10) + gzip.compress(b"WARC/1.1\r\n"))
    done = recover_copy(tmp_path / "archive", data)
    assert (done.action, done.records, done.size) == ("quarantined", 0, 0)
    assert (tmp_path / "archive" / "quarantine" / (NAME + ".open")).read_bytes() == data


def test_member_whose_output_is_held_back_at_the_end_of_input(tmp_path: Path) -> None:
    """A member that decodes to far more than one step's output limit from a few bytes: the
    last output comes after the last input, and the member must still count."""
    data = gzip.compress(warc_record(b"\0" * (5 << 20)), 9)
    assert len(data) < 10_000
    path = tmp_path / "zeros.warc.gz"
    path.write_bytes(data)
    assert complete_members(path) == (1, len(data))


# ── every size class, cut everywhere ────────────────────────────────────────

SIZES = [1, 1024, 65535, 65536, 65537, (1 << 20) - 1, 1 << 20, (1 << 20) + 1]


@pytest.mark.parametrize("kind", ["random", "hex", "same"])
@pytest.mark.parametrize("size", SIZES)
def test_cut_at_every_boundary_and_inside_members(tmp_path: Path, size: int, kind: str) -> None:
    # The large record between small ones: the shape of the reported defect.
    sample = make_sample(tmp_path, [b"<p>before</p>", body_of(size, kind, size), b"after"])
    closed = []
    for n, cut in enumerate(cut_points(sample, inside=3, seed=size)):
        path = check_cut(sample, cut, tmp_path / f"cut{n}")
        if path is not None:
            closed.append(path)
    warcio_check(closed)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["random", "same"])
def test_sixty_megabyte_record_cut_everywhere(tmp_path: Path, kind: str) -> None:
    big = 60 * 1000 * 1000
    sample = make_sample(tmp_path, [body_of(big, kind, 60), b"after"])
    cuts = cut_points(sample, inside=0, seed=60)
    rng = random.Random(61)
    big_member = max(sample.spans, key=lambda span: span[1])
    cuts += [big_member[0] + rng.randrange(1, big_member[1]) for _ in range(3)]
    for cut in sorted(set(cuts)):
        path = check_cut(sample, cut, tmp_path / "cuts", reuse=True)
        if path is not None:
            warcio_check([path])  # now: the next cut reuses the file


# ── damage in the middle ────────────────────────────────────────────────────


def test_damage_in_the_middle_keeps_every_record(tmp_path: Path) -> None:
    sample = make_sample(tmp_path, [b"one", body_of(70000, "random", 1), b"three"])
    bad = sample.spans[3]  # the second request record
    data = bytearray(sample.data)
    data[bad[0] + bad[1] // 2] ^= 0x10
    done = recover_copy(tmp_path / "archive", bytes(data))
    assert (done.action, done.records, done.found_beyond) == ("damaged", 3, 3)
    closed = tmp_path / "archive" / NAME
    assert closed.read_bytes() == sample.data[:bad[0]]
    assert done.kept == tmp_path / "archive" / "quarantine" / (NAME + ".damaged")
    assert done.kept.read_bytes() == bytes(data)  # everything, untouched
    assert len(read_records(closed)) == 3
    warcio_check([closed])


def test_zeroed_tail_after_a_power_cut_is_cut(tmp_path: Path) -> None:
    sample = make_sample(tmp_path, [b"one", b"two"])
    last = sample.spans[-1]
    data = sample.data[:last[0] + 10] + b"\0" * (last[1] - 10)
    done = recover_copy(tmp_path / "archive", data)
    assert (done.action, done.records) == ("repaired", len(sample.spans) - 1)
    assert (tmp_path / "archive" / NAME).read_bytes() == sample.data[:last[0]]


def test_scan_reports_records_found_beyond_the_damage(tmp_path: Path) -> None:
    sample = make_sample(tmp_path, [b"one", b"two"])
    path = tmp_path / "garbage.warc.gz"
    first = sample.spans[1]
    path.write_bytes(sample.data[:first[0]] + b"garbage\x1f\x8b\x08" + sample.data[first[0]:])
    scan = scan_members(path)
    assert scan.complete == sample.spans[:1]
    assert scan.damage == first[0]
    assert [s[1] for s in scan.beyond] == [s[1] for s in sample.spans[1:]]


# ── fuzz ────────────────────────────────────────────────────────────────────


@cache
def fuzz_sample() -> Sample:
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"recovery-fuzz-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        return make_sample(folder, [b"tiny", body_of(70000, "random", 2),
                                    body_of(300000, "same", 3), body_of(2000, "hex", 4)])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def damage() -> st.SearchStrategy[tuple[str, float, bytes]]:
    kinds = st.sampled_from(["truncate", "flip", "append", "zero_tail", "overwrite"])
    return st.tuples(kinds, st.floats(0, 1), st.binary(min_size=1, max_size=64))


def apply(data: bytes, how: tuple[str, float, bytes]) -> tuple[bytes, int]:
    """``data`` damaged as ``how`` says, and the offset of the first byte changed."""
    kind, where, extra = how
    at = min(int(where * len(data)), max(len(data) - 1, 0))
    if kind == "truncate":
        return data[:at], at
    if kind == "flip":
        if not data:
            return data, 0
        return data[:at] + bytes([data[at] ^ (1 << (extra[0] % 8))]) + data[at + 1:], at
    if kind == "append":
        return data + extra, len(data)
    if kind == "zero_tail":
        return data[:at] + b"\0" * (len(data) - at), at
    return data[:at] + extra + data[at + len(extra):], at


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hows=st.lists(damage(), min_size=1, max_size=3))
def test_fuzz_recovery_never_loses_a_complete_record(tmp_path_factory, hows) -> None:
    sample = fuzz_sample()
    data, first = sample.data, len(sample.data)
    for how in hows:
        data, at = apply(data, how)
        first = min(first, at)
    first = min(first, len(data))
    must_keep = sample.complete_before(first)
    folder = tmp_path_factory.mktemp("fuzz")
    done = recover_copy(folder / "archive", data)
    closed = folder / "archive" / NAME
    if done.action == "quarantined":
        assert not must_keep
        assert done.path.read_bytes() == data  # moved, not touched
        return
    content = closed.read_bytes()
    # Nothing invented, and every complete record before the first damage is there.
    assert data.startswith(content)
    if must_keep:
        end = must_keep[-1][0] + must_keep[-1][1]
        assert content[:end] == sample.data[:end]
    assert done.records >= len(must_keep)
    assert len(read_records(closed)) == done.records
    assert done.size == len(content)
    warcio_check_in_process(closed)
    if done.action == "damaged":
        assert done.kept is not None and done.kept.read_bytes() == data
    else:
        assert done.action == "repaired" and done.dropped_bytes == len(data) - len(content)
    shutil.rmtree(folder)


def test_fuzz_damage_helper_marks_the_first_changed_byte() -> None:
    """The fuzz test's bookkeeping: the offset ``apply`` gives is where the bytes differ."""
    data = bytes(range(200))
    for how in [("truncate", 0.5, b"x"), ("flip", 0.25, b"\x03"), ("append", 0.1, b"zz"),
                ("zero_tail", 0.75, b"x"), ("overwrite", 0.5, b"\xff\xfe")]:
        damaged, at = apply(data, how)
        assert damaged[:at] == data[:at]
        assert damaged[at:at + 1] != data[at:at + 1]


def test_truncated_gzip_trailer_is_not_a_complete_member(tmp_path: Path) -> None:
    """zlib verifies the CRC and length trailer: a member missing its last byte, or with a
    wrong CRC, does not count even though its record decoded whole."""
    record = gzip.compress(warc_record(b"payload"))
    wrong_crc = record[:-8] + (zlib.crc32(b"other") & 0xFFFFFFFF).to_bytes(4, "little") \
        + record[-4:]
    for data in (record[:-1], wrong_crc):
        path = tmp_path / "one.warc.gz"
        path.write_bytes(data)
        assert complete_members(path) == (0, 0)


# ── the catalog agrees with the repaired files ──────────────────────────────


def archived_project(tmp_path: Path, web) -> tuple[Path, list[str], dict[str, bytes]]:
    """A project whose six cited pages were archived by one run, in one WARC file."""
    from tests.test_run import call, make_project
    from tests.webserver import Reply

    pages = {f"/page/{i}": (f"<html><head><title>Page {i}</title></head><body><main>"
                            f"<p>Evidence number {i}: {'words ' * 200}</p></main></body>"
                            "</html>").encode() for i in range(6)}
    for path, body in pages.items():
        web.route(path, Reply(200, body, {"Content-Type": "text/html"}))
    urls = [web.url(path) for path in pages]
    config = make_project(tmp_path, urls)
    assert call("run", "--config", str(config))[0] == 0
    return config, urls, pages


def reopen(path: Path, data: bytes) -> None:
    """Put ``path`` back as a leftover ``.open`` file holding ``data``."""
    path.unlink()
    path.with_name(path.name + ".open").write_bytes(data)


def assert_catalog_agrees(tmp_path: Path, urls: list[str], pages: dict[str, bytes],
                          port: int) -> None:
    """One readable capture per URL, every capture inside its file, payload as served."""
    from archiver.catalog import Catalog
    from archiver.warc import read_record

    with Catalog.open(tmp_path / "archive") as catalog:
        for url in urls:
            (capture,) = catalog.captures(url)
            assert capture.warc is not None
            ref = capture.warc
            assert ref.offset + ref.length <= (tmp_path / ref.path).stat().st_size
            assert read_record(tmp_path, ref).payload == pages[url.split(str(port), 1)[1]]


def test_capture_whose_record_was_cut_is_forgotten_and_fetched_again(tmp_path: Path,
                                                                     web) -> None:
    """A power cut can lose the end of a file after its captures were committed: the catalog
    must not keep pointing there. The capture is forgotten, its URL fetched again."""
    import json

    from archiver.catalog import Catalog
    from tests.test_run import call, read_back

    config, urls, pages = archived_project(tmp_path, web)
    with Catalog.open(tmp_path / "archive") as catalog:
        last = max((c for url in urls for c in catalog.captures(url)),
                   key=lambda c: c.warc.offset if c.warc else -1)
    assert last.warc is not None
    path = tmp_path / last.warc.path
    reopen(path, path.read_bytes()[:last.warc.offset + last.warc.length // 2])
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    lost = last.url.split(str(web.port), 1)[1]
    assert {p: web.hits[p] for p in pages} == {p: 2 if p == lost else 1 for p in pages}
    assert_catalog_agrees(tmp_path, urls, pages, web.port)
    read_back(tmp_path)
    notes = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())["notes"]
    assert any(path.name in note and "unfinished record removed" in note for note in notes)
    assert any(last.url in note and "fetched again" in note for note in notes)


def test_damage_in_the_middle_of_a_run_file_is_quarantined_whole(tmp_path: Path,
                                                                 web) -> None:
    from archiver.catalog import Catalog
    from tests.test_run import call, read_back

    config, urls, pages = archived_project(tmp_path, web)
    with Catalog.open(tmp_path / "archive") as catalog:
        refs = sorted((c.warc.offset, c.warc.length, c.warc.path, c.url)
                      for url in urls for c in catalog.captures(url) if c.warc)
    offset, length, rel, middle_url = refs[2]
    path = tmp_path / rel
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x01
    reopen(path, bytes(data))
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    # The file as found is kept whole; the records before the damage stay where they were.
    assert (tmp_path / "archive" / "quarantine" / (path.name + ".damaged")).read_bytes() \
        == bytes(data)
    assert path.read_bytes() == bytes(data[:path.stat().st_size])
    refetched = {u.split(str(web.port), 1)[1] for _, _, _, u in refs[2:]}
    assert {p: web.hits[p] for p in pages} == {p: 2 if p in refetched else 1 for p in pages}
    assert middle_url in {u for _, _, _, u in refs[2:]}
    assert_catalog_agrees(tmp_path, urls, pages, web.port)
    read_back(tmp_path)


# ── the same accounting elsewhere: the fetcher's streaming decoder ──────────


@pytest.mark.parametrize("wbits", [-15, 15, 31])
def test_decode_body_keeps_output_zlib_held_back_at_the_end(wbits: int) -> None:
    """Raw deflate has no trailer: its last match can be decoded after the last input byte
    is consumed, when a step's output limit was hit. Before the fix, bodies just over 64 KiB
    lost up to 258 bytes at their end (and so did their text)."""
    from archiver.fetch import _DECODE_CHUNK, decode_body

    coding = {-15: "deflate", 15: "deflate", 31: "gzip"}[wbits]
    for n in range(_DECODE_CHUNK - 300, _DECODE_CHUNK + 300):
        body = b"a" * n
        packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
        raw = packer.compress(body) + packer.flush()
        assert decode_body(io.BytesIO(raw), coding, 10 * n) == body, n
    # Several gzip members, one over the step limit: each decoded whole, in order.
    body = [b"x" * 100_000, b"second", b"y" * 70_000]
    raw = b"".join(gzip.compress(part) for part in body)
    assert decode_body(io.BytesIO(raw), "gzip", 1 << 20) == b"".join(body)


def test_quarantine_never_replaces_what_it_holds(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    first, second = b"\x1f\x8b\x08 first", b"\x1f\x8b\x08 second"
    for data in (first, second):
        archive.mkdir(exist_ok=True)
        (archive / (NAME + ".open")).write_bytes(data)
        (done,) = recover(archive)
        assert done.action == "quarantined" and done.path.read_bytes() == data
    assert sorted(p.name for p in (archive / "quarantine").iterdir()) == \
        [NAME + ".open", NAME + ".open.1"]


def test_a_record_without_its_mandatory_fields_is_not_taken_as_complete(
        tmp_path: Path) -> None:
    """A response record with no WARC-Target-URI (nor id nor date) decodes and has its
    length, but this archive never wrote it and the CDXJ indexer fails on it: it is damage
    at the tail, cut off, and the records before it are kept and indexed."""
    good = [gzip.compress(warc_record(b"first")), gzip.compress(warc_record(b"second"))]
    odd = gzip.compress(b"WARC/1.1\r\nWARC-Type: response\r\nContent-Length: 5\r\n\r\n"
                        b"hello\r\n\r\n")
    done = recover_copy(tmp_path / "archive", b"".join([*good, odd]))
    assert (done.action, done.records) == ("repaired", 2)
    assert done.dropped_bytes == len(odd)
    index = (tmp_path / "archive" / INDEX_NAME).read_text("utf-8").splitlines()
    assert len(index) == 2


def test_a_closed_file_the_indexer_cannot_read_is_left_out_not_fatal(tmp_path: Path) -> None:
    """A closed WARC file holding such a record (copied in by hand, say) no longer makes
    every index update fail: it is left out of the index, the others are indexed."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "good.warc.gz").write_bytes(gzip.compress(warc_record(b"fine")))
    (archive / "odd.warc.gz").write_bytes(gzip.compress(
        b"WARC/1.1\r\nWARC-Type: response\r\nContent-Length: 5\r\n\r\nhello\r\n\r\n"))
    rebuild_index(archive)
    lines = (archive / INDEX_NAME).read_text("utf-8").splitlines()
    assert len(lines) == 1 and "good.warc.gz" in lines[0]
