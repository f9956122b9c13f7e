"""A full disk stops the run with a clear error (exit 3) and leaves every closed file valid.

The archive folder is a real 512 KiB tmpfs (needs root and permission to mount; skipped with
the reason otherwise), and the pages are incompressible, so the disk fills part-way through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_run import call, make_project, read_back
from tests.tmpfs import small_tmpfs
from tests.webserver import Reply, WebServer


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "archive") as mount:
        yield mount


def test_full_disk_stops_the_run_with_exit_3(tmp_path: Path, tiny_disk: Path,
                                            web: WebServer) -> None:
    for i in range(40):
        web.route(f"/big/{i}", Reply(200, os.urandom(48 * 1024),
                                     {"Content-Type": "application/octet-stream"}))
    config = make_project(tmp_path, [web.url(f"/big/{i}") for i in range(40)])
    code, out, err = call("run", "--config", str(config))
    assert code == 3, out + err
    assert "Traceback" not in err
    assert "error:" in err and str(tiny_disk) in err
    assert any(word in err.lower() for word in ("space", "full", "disk"))
    # Whatever was closed is valid; nothing is left half-written as a closed file.
    closed = sorted(tiny_disk.glob("*.warc.gz"))
    assert closed, "the disk filled before any WARC file was closed"
    records = read_back(tmp_path)
    assert any(kind == "response" for kind, _ in records)


def test_an_index_that_cannot_be_rewritten_leaves_the_old_one_and_no_partial_file(
        tiny_disk: Path) -> None:
    from archiver.errors import ArchiveError
    from archiver.warc import INDEX_NAME, _add_to_index

    old = "org,example)/ 20260101000000 {}\n"
    (tiny_disk / INDEX_NAME).write_text(old)
    (tiny_disk / "filler").write_bytes(b"\0" * (400 * 1024))
    noted = [f"org,example)/{i:06d} 20260101000000 {{}}" for i in range(20_000)]
    warc = tiny_disk / "a.warc.gz"
    with pytest.raises(ArchiveError, match=f"{INDEX_NAME}: cannot update index"):
        _add_to_index(tiny_disk, [warc], {warc: noted})
    assert (tiny_disk / INDEX_NAME).read_text() == old
    assert not (tiny_disk / (INDEX_NAME + ".tmp")).exists()
