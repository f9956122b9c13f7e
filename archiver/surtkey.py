"""SURT keys of the CDXJ index: exactly what ``cdxj-indexer`` (and so pywb) computes with
``surt.surt(url)``, for less CPU.

``surt.surt`` parses the whole URL, canonicalises every part and reverses the host on every
call (30-60 us per URL in CPython), while the URLs of one run share a few hosts. For the
plain URLs a capture writes (``http``/``https`` with an authority and no whitespace, and
the ``urn:`` URIs of provenance records) the key is built here from parts. When a host is
left after canonicalisation, ``surt.surt``'s key is the host part (the host reversed, the
port unless it is the scheme's default, the user info dropped), ``)``, the path and ``?``
with the query unless it comes out empty, each canonicalised on its own (the fragment is
dropped); so:

* the part before ``)``, which depends only on the scheme and the authority (host, port,
  user info), is ``surt.surt`` of ``SCHEME://AUTHORITY/`` minus its ``)/``, remembered per
  (scheme, authority);
* the path and the query go through the same canonicalisation steps of the ``surt``
  package that ``surt.surt`` runs on them, each skipped where it provably changes nothing
  (no ``%`` to decode, no dot or empty segment, nothing to escape, no ``(`` for a path
  session ID).

Everything else (and anything that raises on the way) goes to ``surt.surt`` itself, through
``cdxj-indexer``'s own wrapper. ``tests/test_surtkey.py`` compares both on generated and
hand-written URLs. The ``surt`` package is imported on first use (it takes a while, see
``warc._indexer``). One difference that is not in the keys: ``surt`` asks the resolver about
hosts shaped like numeric IPv4 forms that ``inet_aton`` refuses (``999.1.1.1``); here that
happens once per host rather than once per URL.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["preload", "url_key"]

# "http" or "https", "://", an authority, then what follows it (path, query, fragment), with
# no ASCII whitespace anywhere: ``surt`` strips it at both ends and removes tabs and line
# breaks, which only its own parser does right.
_HTTP = re.compile(rb"(https?)://([^/?#\s]*)([^?#\s]*)(?:\?([^#\s]*))?(?:#\S*)?")
_URN = re.compile(rb"urn:([^/?#\s][^?#\s]*)(?:\?([^#\s]*))?(?:#\S*)?")
# ``surt`` collapses "http://https://..." to its last scheme: such an authority is left to it.
_REPEATED_SCHEME = frozenset({b"http:", b"https:"})
# What ``escapeOnce`` (``quote_from_bytes`` with its safe set) leaves unchanged.
_ESCAPES = re.compile(rb"[^A-Za-z0-9_.\-~!\"$&'()*+,/:;<=>?@\[\\\]^`{|}]")


class _Steps:
    """The canonicalisation steps of the ``surt`` package that ``surt.surt`` applies."""

    def __init__(self) -> None:
        _import_surt()
        import surt
        import surt.GoogleURLCanonicalizer as google
        import surt.IAURLCanonicalizer as ia
        import surt.URLRegexTransformer as transform

        self.surt: Callable[[bytes], bytes] = surt.surt
        self.unescape: Callable[[bytes], bytes] = google.unescapeRepeatedly
        self.normalize_path: Callable[[bytes], bytes] = google.normalizePath
        self.escape: Callable[[bytes], bytes] = google.escapeOnce
        self.minimal_escape: Callable[[bytes], bytes] = google.minimalEscape
        self.strip_path_session: Callable[[bytes], bytes] = transform.stripPathSessionID
        self.strip_query_session: Callable[[bytes], bytes] = transform.stripQuerySessionID
        self.reorder_query: Callable[[bytes], bytes] = ia.alphaReorderQuery


class _Deferred(types.ModuleType):
    """Stands for a module not imported yet: imported (for real, into ``sys.modules``) when
    an attribute of it is first read, and the attribute read from it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's questions: not a use of the module
            raise AttributeError(name)
        module = importlib.import_module(self.__name__)
        if module is self:  # read while ``_import_surt`` still imports ``surt``
            raise AttributeError(name)
        return getattr(module, name)


def _import_surt() -> None:
    """``import surt``, without importing ``tldextract``: ``surt.handyurl`` imports it at
    its top, for two methods of its own (the public suffix and subdomain of a host) that
    neither ``surt.surt`` nor the steps above call, and ``tldextract`` brings ``requests``,
    ``urllib3``, ``filelock`` and more: 0.15 s of CPU, most of ``surt``'s import, on the fork
    server's way to forking the workers (``archiver.shards``). ``surt.handyurl`` gets a
    ``_Deferred`` module instead, which imports the real one if those methods are ever
    called."""
    if "surt.handyurl" in sys.modules or "tldextract" in sys.modules:
        return  # imported already, or nothing to spare
    stand_in = _Deferred("tldextract")
    sys.modules["tldextract"] = stand_in
    try:
        import surt  # noqa: F401
    finally:
        if sys.modules.get("tldextract") is stand_in:
            del sys.modules["tldextract"]  # the next ``import tldextract`` is the real one


@functools.cache
def _steps() -> _Steps:
    return _Steps()


def preload() -> None:
    """Import ``surt`` now (ahead of forking workers) rather than on the first key."""
    _steps()


def _slow(url: str) -> str:
    """``cdxj-indexer``'s own key: ``surt.surt(url)``, or ``url`` when that raises."""
    import cdxj_indexer.main

    key: Any = cdxj_indexer.main.CDXJIndexer.get_url_key(None, url)  # type: ignore[arg-type]
    return str(key)


def url_key(url: str) -> str:
    """The SURT key of ``url`` as ``cdxj-indexer`` writes it (``surt.surt(url)``, or the
    URL itself when ``surt`` fails on it). Never raises."""
    try:
        key = _fast(url)
    except Exception:  # whatever surt would make of it, it decides below
        key = None
    return _slow(url) if key is None else key


def _fast(url: str) -> str | None:
    """The key built from parts, or ``None`` for a URL left to ``surt.surt``."""
    raw = url.encode("utf-8")
    match = _HTTP.fullmatch(raw)
    if match is not None:
        scheme, authority, path, query = match.groups()
        head = _host_part(scheme, authority)
        if head is None:
            return None
        key = head + _path(path, normalize=True)
        return (key + _query(query) if query else key).decode("utf-8")
    match = _URN.fullmatch(raw)
    if match is not None:
        path, query = match.groups()
        key = b"urn:" + _path(path, normalize=False)
        return (key + _query(query) if query else key).decode("utf-8")
    return None


@functools.lru_cache(maxsize=4096)
def _host_part(scheme: bytes, authority: bytes) -> bytes | None:
    """The key up to and including ``)``; ``None`` when the canonical host is empty (the
    key then has no host part and the path is not normalised) or ``surt`` fails on it."""
    if authority in _REPEATED_SCHEME:
        return None
    try:
        key = _steps().surt(scheme + b"://" + authority + b"/")
    except Exception:
        return None
    if not key.endswith(b")/"):
        return None
    return key[:-1]


def _path(path: bytes, *, normalize: bool) -> bytes:
    """``surt``'s path steps: unescape repeatedly, normalise dot and empty segments (URLs
    with a host only), escape once, lower-case, strip a path session ID, drop a trailing
    slash."""
    if b"%" in path:
        path = _steps().unescape(path)
    if normalize and (not path.startswith(b"/") or b"/." in path or b"//" in path):
        path = _steps().normalize_path(path)
    if _ESCAPES.search(path):
        path = _steps().escape(path)
    path = path.lower()
    if b"(" in path:
        path = _steps().strip_path_session(path)
    if len(path) > 1 and path.endswith(b"/"):
        path = path[:-1]
    return path


def _query(query: bytes) -> bytes:
    """``?`` and ``surt``'s query, or nothing when it comes out empty."""
    steps = _steps()
    query = steps.minimal_escape(query)
    query = steps.strip_query_session(query).lower()
    query = steps.reorder_query(query)
    return b"?" + query if query else b""
