"""HTML escaping and the http(s) test for the HTML report, made for many thousand calls.

``esc`` gives exactly ``html.escape(escape_controls(str(value)), quote=True)`` (``""`` for
``None``), but returns a text with nothing to escape (most URLs, titles, digests) as it is;
``esc_often`` remembers the texts that recur from link to link (reasons, WARC file names,
verdict keys, levels). ``is_web`` answers as ``urlsplit`` for a plain ASCII http(s) URL without
parsing it.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from urllib.parse import urlsplit

from archiver.safetext import UNSAFE, escape_controls

__all__ = ["esc", "esc_often", "is_web"]

#: The characters ``escape_controls`` changes (with its default ``keep``).
_CONTROLS = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(UNSAFE)
                                     if chr(c) not in "\t\n") + "]")


def esc(value: object) -> str:
    """Text (or an attribute value) made safe for HTML: control characters made visible
    (``escape_controls``), then ``& < > " '`` escaped."""
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    # isprintable() is false for every character escape_controls changes (and for a few
    # more: tab, newline, other spaces), and is much cheaper than the search.
    if not text.isprintable() and _CONTROLS.search(text) is not None:
        text = escape_controls(text)
    if "&" in text or "<" in text or ">" in text or '"' in text or "'" in text:
        return html.escape(text, quote=True)
    return text


#: ``esc``, remembered, for values that recur from link to link.
esc_often = lru_cache(maxsize=1024, typed=True)(esc)

# What makes urlsplit do more than split an ASCII URL: brackets (IPv6 hosts, checked), and
# tab, CR and LF (removed).
_SPLIT_SPECIAL = re.compile(r"[\[\]\t\r\n]")


def is_web(url: str) -> bool:
    """The URL is http(s) with a host part: ``urlsplit``'s scheme is http or https and its
    netloc is not empty (``False`` where urlsplit raises)."""
    if url.isascii() and _SPLIT_SPECIAL.search(url) is None:
        if url.startswith("http://"):
            return len(url) > 7 and url[7] not in "/?#"
        if url.startswith("https://"):
            return len(url) > 8 and url[8] not in "/?#"
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
