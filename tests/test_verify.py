"""``archiver verify``: exit 0 on an untouched archive, 1 naming the damage after each kind
of tampering, 2 on bad usage. Archives are made by real runs against a loopback server."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from archiver.catalog import Catalog
from tests.test_run import ARTICLE, call, make_project
from tests.webserver import Reply, WebServer

OTHER = b"<html><head><title>Second</title></head><body><p>Another page.</p></body></html>"


@pytest.fixture
def archived(tmp_path: Path, web: WebServer) -> tuple[Path, Path]:
    """A project whose run archived two pages; returns (config, archive folder)."""
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    web.route("/second", Reply(200, OTHER, {"Content-Type": "text/html"}))
    config = make_project(tmp_path, [web.url("/article"), web.url("/second")])
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    return config, tmp_path / "archive"


def verify(config: Path, *extra: str) -> tuple[int, dict]:
    code, out, err = call("verify", "--config", str(config), "--format", "json", *extra)
    return code, json.loads(out) if out.strip() else {"stderr": err}


def article_record(archive: Path) -> tuple[Path, int, int, str]:
    """(file, offset, length, record id) of the article's response record."""
    with Catalog.open(archive) as catalog:
        captures = [c for c in catalog.captures(catalog.citations()[0].url)]
    ref = captures[0].warc
    assert ref is not None
    return archive.parent / ref.path, ref.offset, ref.length, ref.record_id


def rewrite_member(path: Path, offset: int, length: int, change) -> None:
    """Replace one gzip member with ``change(decompressed record)``, recompressed."""
    data = path.read_bytes()
    record = gzip.decompress(data[offset:offset + length])
    new = gzip.compress(change(record))
    path.write_bytes(data[:offset] + new + data[offset + length:])


def problems(result: dict) -> str:
    return "\n".join(json.dumps(p) for p in result["problems"])


def test_untouched_archive_verifies_and_the_check_is_logged(archived) -> None:
    config, archive = archived
    code, result = verify(config)
    assert code == 0, result
    assert result["ok"] and result["checked"]["records"] >= 8
    assert result["checked"]["provenance_records"] == 2
    assert result["checked"]["catalog_captures"] == 2
    code, out, _ = call("verify", "--config", str(config))
    assert code == 0 and "all intact" in out
    lines = (archive / "custody.jsonl").read_text().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["capture", "capture", "verify",
                                                              "verify"]


def test_flipped_payload_byte_is_named(archived) -> None:
    config, archive = archived
    path, offset, length, record_id = article_record(archive)
    rewrite_member(path, offset, length,
                   lambda r: r.replace(b"upheld the conviction", b"upheld the convictiom"))
    code, result = verify(config)
    assert code == 1
    text = problems(result)
    assert "payload digest failed" in text and record_id in text
    assert path.name in text and "/article" in text


def test_flipped_byte_in_the_compressed_file_is_named(archived) -> None:
    config, archive = archived
    path, offset, length, _ = article_record(archive)
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, result = verify(config)
    assert code == 1
    assert path.name in problems(result)


def test_flipped_byte_in_a_record_header_is_named(archived) -> None:
    config, archive = archived
    path, offset, length, record_id = article_record(archive)

    def redate(record: bytes) -> bytes:
        head, sep, rest = record.partition(b"\r\n\r\n")
        # One digit of the WARC-Date: not covered by any WARC digest.
        i = head.index(b"WARC-Date: ") + len(b"WARC-Date: ") + 3
        flipped = b"0" if head[i:i + 1] != b"0" else b"1"
        return head[:i] + flipped + head[i + 1:] + sep + rest

    rewrite_member(path, offset, length, redate)
    code, result = verify(config)
    assert code == 1
    text = problems(result)
    assert record_id in text
    assert "provenance recorded" in text  # the stored record no longer hashes the same
    assert "timestamp" in text  # and the index disagrees with the record


def test_truncated_warc_is_named(archived) -> None:
    config, archive = archived
    path, *_ = article_record(archive)
    path.write_bytes(path.read_bytes()[:-200])
    code, result = verify(config)
    assert code == 1
    assert any(p["file"] == path.name and ("cut" in p["problem"] or "unreadable"
                                           in p["problem"]) for p in result["problems"])


def test_edited_catalog_row_is_named(archived) -> None:
    config, archive = archived
    _, _, _, record_id = article_record(archive)
    db = sqlite3.connect(archive / "catalog.sqlite3")
    db.execute("UPDATE captures SET final_url = 'http://example.org/forged' "
               "WHERE record_id = ?", (record_id,))
    db.commit()
    db.close()
    code, result = verify(config)
    assert code == 1
    text = problems(result)
    assert "forged" in text and record_id in text and "catalog" in text


def test_deleted_custody_line_is_named(archived) -> None:
    config, archive = archived
    log = archive / "custody.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[1:]))
    code, result = verify(config)
    assert code == 1
    assert "chain broken" in problems(result)
    assert "no custody entry" in problems(result)


def test_deleted_last_custody_line_is_found_through_the_catalog(archived) -> None:
    config, archive = archived
    log = archive / "custody.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))
    code, result = verify(config)
    assert code == 1 and "no custody entry" in problems(result)


def test_usage_errors_exit_2(archived, tmp_path: Path) -> None:
    config, _ = archived
    code, _, err = call("verify", "--config", str(config), str(tmp_path / "nope.wacz"))
    assert code == 2 and "nope.wacz" in err
    code, _, err = call("verify", "--config", str(config), "--source", "unknown")
    assert code == 2 and "unknown" in err


def test_source_scope_verifies_its_captures(archived) -> None:
    config, _ = archived
    code, result = verify(config, "--source", "brief")
    assert code == 0, result
    assert result["checked"]["catalog_captures"] == 2
