"""Files the user names are read bounded, and names are validated whole.

A document or config path that leads to ``/dev/zero`` (directly or through a symlink), a FIFO
or a directory is refused at once with exit 2 and a message naming the path; nothing reads
without bound or blocks. The commands run in a subprocess with a memory cap and a timeout, so
a regression fails the test instead of taking the machine down.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archiver.config import load_settings
from archiver.errors import ConfigError, DocumentError
from archiver.inputs import read_regular_file

MEMORY_CAP = 1 << 30


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP * 2, MEMORY_CAP * 2))


def archiver(*argv: str, cwd: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    try:
        done = subprocess.run([sys.executable, "-m", "archiver", *argv], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=30,
                              preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"archiver {' '.join(argv)} still running after 30 s")
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.fixture
def hostile_paths(tmp_path: Path) -> dict[str, Path]:
    zero_link = tmp_path / "brief.md"
    zero_link.symlink_to("/dev/zero")
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.md"
    folder.mkdir()
    return {"device": Path("/dev/zero"), "symlink to a device": zero_link, "FIFO": fifo,
            "directory": folder}


@pytest.mark.parametrize("kind", ["device", "symlink to a device", "FIFO", "directory"])
def test_extract_refuses_what_is_not_a_regular_file(tmp_path: Path, hostile_paths, kind) -> None:
    path = hostile_paths[kind]
    code, err, seconds = archiver("extract", str(path), cwd=tmp_path)
    assert code == 2, err
    assert str(path) in err and "not a document file" in err and "Traceback" not in err
    assert seconds < 20


@pytest.mark.parametrize("kind", ["device", "symlink to a device", "FIFO"])
def test_config_that_is_not_a_regular_file_exits_2(tmp_path: Path, hostile_paths, kind) -> None:
    path = hostile_paths[kind]
    code, err, _ = archiver("lint", "--config", str(path), cwd=tmp_path)
    assert code == 2, err
    assert str(path) in err and "not a config file" in err and "Traceback" not in err


def test_source_document_that_is_a_device_is_named(tmp_path: Path, hostile_paths) -> None:
    (tmp_path / "sources.toml").write_text('[[sources]]\nid = "brief"\npath = "brief.md"\n',
                                          encoding="utf-8")
    code, err, _ = archiver("lint", cwd=tmp_path)
    # Sources are resolved when the config is read, so the message names the device.
    assert code == 2 and "/dev/zero: is a character device" in err, err


def test_reads_at_most_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 101)
    with pytest.raises(DocumentError, match=f"{big}: 101 bytes is more than the 100"):
        read_regular_file(big, limit=100, what="document", error=DocumentError)
    assert read_regular_file(big, limit=101, what="document", error=DocumentError) == b"x" * 101
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", limit=100, what="document", error=DocumentError)


@pytest.mark.parametrize("source_id", ["ok\n", "ok\r\n", "\nok", "o k", "OK", ""])
def test_source_id_must_match_whole(tmp_path: Path, source_id: str) -> None:
    config = tmp_path / "sources.toml"
    escaped = source_id.replace("\n", "\\n").replace("\r", "\\r")
    config.write_text(f'[[sources]]\nid = "{escaped}"\npath = "brief.md"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\[1\]\.id"):
        load_settings(config)


def test_source_id_with_a_newline_creates_no_report_folder(tmp_path: Path) -> None:
    (tmp_path / "brief.md").write_text("Claim.[^1]\n\n[^1]: See <https://example.org/>.\n",
                                       encoding="utf-8")
    (tmp_path / "sources.toml").write_text(
        '[[sources]]\nid = "ok\\n"\npath = "brief.md"\n', encoding="utf-8")
    code, err, _ = archiver("report", cwd=tmp_path)
    assert code == 2 and "sources.toml" in err and "id" in err, err
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
