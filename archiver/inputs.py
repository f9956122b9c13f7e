"""Reading a file the user named (a document, the config): bounded, regular files only.

``stat()`` before ``read_bytes()`` is not a bound: ``/dev/zero`` (or a symlink to it) says
size 0 and never ends, a FIFO blocks the open and the read forever, and a file can grow
between the two calls. :func:`read_regular_file` opens without blocking, checks the opened
file itself (``fstat``: a regular file after symlinks are resolved), and reads at most
``limit + 1`` bytes, so memory and time are bounded whatever the path points at.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from archiver.errors import ArchiverError

__all__ = ["read_regular_file"]

_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | Path, *, limit: int, what: str,
                      error: type[ArchiverError]) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` bytes.

    Raises ``error`` (an :class:`ArchiverError` subclass; its exit code is the caller's
    choice) naming ``path`` when it is not a regular file (directory, FIFO, device, socket)
    or holds more than ``limit`` bytes; ``what`` names the file in that message ("document",
    "config file"). Never blocks on a FIFO and never reads more than ``limit + 1`` bytes.
    ``OSError`` (missing file, no permission) propagates for the caller to word.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: is {_kind(info.st_mode)}, not a {what} file; name a regular "
                        "file")
        if info.st_size > limit:
            raise error(f"{path}: {info.st_size} bytes is more than the {limit} a {what} may "
                        "have")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # the file grew while being read
            raise error(f"{path}: more than the {limit} bytes a {what} may have")
        return b"".join(chunks)
    finally:
        os.close(fd)
