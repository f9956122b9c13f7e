"""The custody log: hash chain, edits and deletions found, torn last line recorded."""

from __future__ import annotations

import json
from pathlib import Path

from archiver.custody import CUSTODY_NAME, GENESIS, Custody, entries, walk


def three(archive: Path) -> Path:
    log = Custody(archive, "ana@desk")
    for i in range(3):
        log.append("capture", f"https://example.org/{i}", f"{i:064x}", {"n": i})
    return archive / CUSTODY_NAME


def test_entries_chain_and_walk_intact(tmp_path: Path) -> None:
    path = three(tmp_path)
    got = list(entries(tmp_path))
    assert [e["seq"] for e in got] == [1, 2, 3]
    assert got[0]["prev"] == GENESIS
    assert path.read_bytes().endswith(b"\n")
    result = walk(tmp_path)
    assert result.intact and result.entries == 3 and not result.findings


def test_deleted_middle_line_breaks_the_chain(tmp_path: Path) -> None:
    path = three(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])
    result = walk(tmp_path)
    assert not result.intact
    assert any(f.line == 2 and "chain broken" in f.problem for f in result.findings)


def test_edited_line_breaks_the_chain(tmp_path: Path) -> None:
    path = three(tmp_path)
    text = path.read_text().replace("https://example.org/0", "https://example.org/X")
    path.write_text(text)
    result = walk(tmp_path)
    assert not result.intact and result.findings[0].line == 2


def test_torn_last_line_is_reported_then_recorded_by_the_next_append(tmp_path: Path) -> None:
    path = three(tmp_path)
    # What a kill -9 in the middle of the write leaves: part of a line, no newline.
    fragment = b'{"action":"capture","actor":"ana@de'
    with path.open("ab") as fh:
        fh.write(fragment)
    first = walk(tmp_path)
    assert first.intact  # a crash, not tampering; but it is said
    assert [(f.line, f.fatal) for f in first.findings] == [(4, False)]
    assert "torn" in first.findings[0].problem
    Custody(tmp_path, "ana@desk").append("capture", "https://example.org/3", "f" * 64)
    lines = path.read_bytes().split(b"\n")
    assert lines[3] == fragment  # kept, never dropped
    repair = json.loads(lines[4])
    assert repair["action"] == "repair" and repair["details"]["torn_line"] == 4
    assert json.loads(lines[5])["subject"] == "https://example.org/3"
    after = walk(tmp_path)
    assert after.intact and after.entries == 5
    assert [(f.line, f.fatal) for f in after.findings] == [(4, False)]
    assert "repair entry" in after.findings[0].problem


def test_a_garbage_line_in_the_middle_is_fatal(tmp_path: Path) -> None:
    path = three(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"not json\n" + lines[1] + lines[2])
    result = walk(tmp_path)
    assert not result.intact
    assert any(f.line == 2 and f.fatal for f in result.findings)


def test_long_entries_chain_correctly(tmp_path: Path) -> None:
    """Entries longer than the tail window the append reads back still chain."""
    log = Custody(tmp_path, "ana@desk")
    for i in range(4):
        log.append("export", f"package-{i}.wacz", f"{i:064x}", {"notes": "x" * 10_000 * i})
    with (tmp_path / CUSTODY_NAME).open("ab") as fh:
        fh.write(b'{"torn": "' + b"y" * 20_000)  # a long torn line, too
    log.append("verify", "archive", "f" * 64)
    result = walk(tmp_path)
    assert result.intact and result.entries == 6  # four, the repair entry, the verify
    assert [f.line for f in result.findings] == [5]
    assert [e["seq"] for e in entries(tmp_path)] == [1, 2, 3, 4, 5, 6]
