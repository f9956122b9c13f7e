"""What tells one version of the code behind a kept result from another: the digest of its
bytes and of the versions of what it consults.

Results kept in the catalog to be taken again rather than made again (claim support:
``support_store.rules``; how a payload was read: ``pagetext.rules``) are keyed by such a
digest, not by a hand-bumped number, so that no change to the code can forget to set them
aside.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from importlib.util import find_spec
from pathlib import Path

__all__ = ["code_digest"]


def code_digest(head: str, files: Iterable[Path],
                installed: Iterable[tuple[str, str]] = ()) -> str:
    """The BLAKE2b digest (16 bytes, in hex) of ``head``, then of the bytes of each of
    ``files`` and of each file ``installed`` names (a package and a path inside it, found
    without importing the package), each after a NUL. A file that cannot be read (its
    package is not installed) counts as ``-``: as much a part of the code."""
    digest = hashlib.blake2b(head.encode(), digest_size=16)
    paths = list(files)
    for package, part in installed:
        spec = find_spec(package)
        folder = Path(spec.origin).parent if spec is not None and spec.origin else None
        paths.append(folder / part if folder else Path())
    for path in paths:
        try:
            digest.update(b"\0" + path.read_bytes())
        except OSError:
            digest.update(b"\0-")
    return digest.hexdigest()
