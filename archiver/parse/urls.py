"""Finding the URLs a footnote cites, exactly as the author meant them.

Every reader turns a footnote into *segments*: runs of plain text, each with the link target
it carries (``href``) or ``None``. :func:`urls_from_segments` turns those into the ordered,
de-duplicated URL list of the footnote:

- a segment with an ``href`` that is a web address contributes the ``href`` (the link target is
  what the author meant; the visible text may be shortened, escaped or mangled), spelled as
  the visible text when that is the same address up to percent-encoding;
- a segment without one is scanned for bare URLs (``https://...``, ``http://...``) and for
  ``www.`` addresses, which are normalised by prefixing ``http://`` (what browsers and GitHub's
  autolinker do with an address typed without a scheme);
- trailing punctuation and unbalanced closing brackets are not part of a URL; fragments are kept;
- a URL cited twice in one footnote is listed once.

Text that evidently tries to be a web address but is broken (``htps://x``, ``http:/x``,
``https//x``) is kept as written, so that the linter can report it as ``malformed-url``
instead of it silently vanishing. Pure functions; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["clean_url", "scan_urls", "unescape_markdown", "urls_from_segments"]

Segment = tuple[str, "str | None"]

# Scheme-like prefixes an author plainly meant as a web address, including broken ones.
_CANDIDATE = re.compile(
    r"""(?ix)
    (?<![\w@/.])
    (?:
        h?tt?ps?:/{1,3}(?=[\w\[])           # http://, https://, and mangled htp:// http:/ https:///
      | https?//(?=\w)                    # missing colon
      | www\d{0,3}\.(?=\w)                # www. address without a scheme
    )
    [^\s<>"\u00a0\u201c\u201d\u00ab\u00bb]*
    """
)
_SCHEME_ONLY = re.compile(r"(?i)^[a-z]*:/*$")
_TRAILING = ".,;:!?'\u2019\u201d\"*_"
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_MD_ESCAPE = re.compile(r"\\+([!-/:-@\[-`{-~])")


def unescape_markdown(text: str) -> str:
    """Undo Markdown backslash escapes, including doubled ones (``\\\\_`` → ``_``) that
    PDF-to-Markdown conversion leaves in link texts."""
    return _MD_ESCAPE.sub(r"\1", text)


def clean_url(raw: str) -> str:
    """Strip what surrounds a URL in prose but is not part of it: trailing punctuation and
    closing brackets without a matching opener inside the URL. ``www.`` gets ``http://``."""
    url = raw.strip().strip("<>")
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])):
            url = url[:-1]
        else:
            break
    if url.lower().startswith("www"):
        url = "http://" + url
    return url


def scan_urls(text: str) -> list[str]:
    """Every URL (or broken attempt at one) in plain ``text``, in order, cleaned."""
    found = []
    for match in _CANDIDATE.finditer(text):
        url = clean_url(match.group(0))
        if url and not _SCHEME_ONLY.fullmatch(url):
            found.append(url)
    return found


def is_web_target(href: str) -> bool:
    """Whether a link target points at the web (not an in-document anchor, mailto:, ...)."""
    low = href.strip().lower()
    if not low or low.startswith(("#", "mailto:", "tel:", "javascript:", "data:")):
        return False
    return bool(_CANDIDATE.match(low)) or "://" in low or low.startswith("www.")


def urls_from_segments(segments: Iterable[Segment]) -> list[str]:
    """The footnote's URLs in the order written, each once. See the module docstring."""
    ordered: dict[str, None] = {}
    for text, href in segments:
        if href is not None and is_web_target(href):
            url = href.strip()
            shown = text.strip()
            # Writers percent-encode targets (pandoc turns [0] into %5B0%5D); when the visible
            # text is the same address, its spelling is the author's.
            if shown != url and unquote(shown) == unquote(url) and is_web_target(shown):
                url = shown
            if url.lower().startswith("www"):
                url = "http://" + url
            ordered.setdefault(url, None)
            continue
        for url in scan_urls(text):
            ordered.setdefault(url, None)
    return list(ordered)
