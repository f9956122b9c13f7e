"""Local replay of the archive with pywb: the collection config and the server command.

The archive folder is used as it is (no copy): pywb reads ``archive/index.cdxj`` for lookups
and the WARC files beside it for content, so ``archive/`` replays at
``http://HOST:PORT/archive/<timestamp>/<url>`` as it looked when captured.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["pywb_command", "write_pywb_config"]

COLLECTION = "archive"


def write_pywb_config(archive_dir: Path, workdir: Path) -> Path:
    """Write a pywb ``config.yaml`` in ``workdir`` with one collection over ``archive_dir``."""
    archive = archive_dir.resolve()
    config = workdir / "config.yaml"
    # JSON strings are valid YAML scalars, so paths with spaces or colons stay intact.
    import json

    config.write_text(
        "collections:\n"
        f"  {COLLECTION}:\n"
        f"    index_paths: {json.dumps(str(archive) + os.sep)}\n"
        f"    archive_paths: {json.dumps(str(archive) + os.sep)}\n"
        "framed_replay: false\n"
        "enable_memento: true\n",
        encoding="utf-8",
    )
    return config


def pywb_command(archive_dir: Path, workdir: Path, *, host: str,
                 port: int) -> tuple[list[str], dict[str, str]]:
    """The command line (and environment) that serves ``archive_dir`` with pywb from
    ``workdir``. Raises ``FileNotFoundError`` when pywb is not installed."""
    write_pywb_config(archive_dir, workdir)
    wayback = shutil.which("wayback") or str(Path(sys.executable).parent / "wayback")
    if not Path(wayback).exists():
        raise FileNotFoundError("wayback")
    env = dict(os.environ)
    return [wayback, "-b", host, "-p", str(port)], env
