"""The soft-404 probe: does this site answer "200 OK" for pages that do not exist?

Many sites answer every unknown address with a 200 and an error page, or with their home page.
A status code then says nothing; what tells is asking the same site for an address that
certainly does not exist and comparing the answers::

    needs_probe(capture)      is this capture worth probing? (a 2xx that is not the home page)
    probe_key(url)            (origin, directory): probe once per key and cache the outcome
    probe_url(url)            https://host/dir/zz-archiver-probe-<random>[.ext][/]
    ProbeOutcome.from_result  what the probe's fetch answered: status, final URL, text
    looks_same(a, b)          similarity of two pages' extracted text, in [0, 1]

The verdict itself is ``archiver.classify.classify(result, probe=outcome)``: a 2xx page whose
text is at least ``SAME_PAGE_THRESHOLD`` similar to a probe that also answered 2xx is a soft 404,
and so is a redirect that lands where the probe's redirect landed. A probe that answers 404 or
410 shows the site reports missing pages honestly, so the cited page is real.

This module does no I/O: the pipeline fetches ``probe_url(url)`` with its own fetcher.
Probing is by path: a site that names its documents in the query (``/document/?doc_id=N``) is
probed with a missing path in that directory, which says how the site treats unknown
addresses, not unknown ids; the not-found wording check in ``classify`` covers those.
"""

from __future__ import annotations

import difflib
import random as _random
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from archiver.models import Capture, FetchFailure, FetchResult
from archiver.pagetext import extract

__all__ = [
    "PROBE_MARKER",
    "SAME_PAGE_THRESHOLD",
    "ProbeOutcome",
    "looks_same",
    "needs_probe",
    "probe_key",
    "probe_url",
]

# Pages whose normalised text is this similar count as "the same page". Two fetches of one
# error page differ only in what normalisation removes (dates, counters, the echoed path),
# so they score ~1.0; two different articles of one site, sharing leftover boilerplate,
# score far lower. 0.9 leaves room for a rotating "latest news" line on the error page.
SAME_PAGE_THRESHOLD = 0.9

# Every probe path starts with this, so a probe is recognisable in server logs and in the
# page text that echoes it back.
PROBE_MARKER = "zz-archiver-probe-"

# An extension worth copying into the probe: a site that serves /a/123.html may route only
# *.html to its article handler.
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")


@dataclass(frozen=True)
class ProbeOutcome:
    """What the probe's fetch answered.

    ``status`` is the final HTTP status, ``None`` when the probe got no HTTP answer (then
    ``error`` says why, and the probe is no evidence either way). ``final_url`` is where its
    redirects ended; ``redirected`` whether there were any. ``text`` and ``title`` are the
    extracted page text (``archiver.pagetext``).
    """

    url: str
    status: int | None
    final_url: str | None
    text: str = ""
    title: str | None = None
    redirected: bool = False
    error: str | None = None

    @classmethod
    def from_result(cls, result: FetchResult) -> ProbeOutcome:
        """Build the outcome from the probe's ``FetchResult`` (a ``Capture`` or a
        ``FetchFailure``); never raises."""
        if isinstance(result, FetchFailure):
            return cls(url=result.url, status=None, final_url=None, error=result.reason)
        page = extract(result.content, result.content_type, result.final_url)
        return cls(
            url=result.url,
            status=result.status,
            final_url=result.final_url,
            text=page.text,
            title=page.title,
            redirected=result.redirected,
        )

    @property
    def answered_missing(self) -> bool:
        """The site said "not here" (404 or 410) for the random path: it reports missing
        pages honestly."""
        return self.status in (404, 410)

    @property
    def answered_ok(self) -> bool:
        """The site answered 2xx for an address that cannot exist."""
        return self.status is not None and 200 <= self.status < 300


def _split_path(path: str) -> tuple[str, str, bool]:
    """``(directory, last segment, trailing slash)`` of a URL path.

    ``/a/b/page.html`` → ``("/a/b/", "page.html", False)``; ``/news/story/`` →
    ``("/news/", "story", True)``: a trailing-slash address names a page, not a folder, on the
    sites that write them (WordPress and most CMSs), so its siblings live one level up.
    """
    if not path or path == "/":
        return "/", "", False
    trailing = path.endswith("/")
    body = path.rstrip("/")
    cut = body.rfind("/")
    return body[: cut + 1] or "/", body[cut + 1:], trailing


def probe_key(url: str) -> tuple[str, str]:
    """``(origin, directory)`` of ``url``: probe once per key and reuse the outcome.

    ``origin`` is ``scheme://host[:port]`` lowercased (default ports dropped); ``directory``
    is as in ``probe_url``. Never raises; an unparsable URL gives ``("", "/")``.
    """
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "", "/"
    scheme = parts.scheme.lower()
    if ":" in host:  # an IPv6 literal, which hostname returns without its brackets
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    directory, _, _ = _split_path(parts.path)
    return f"{scheme}://{host}" if host else "", directory


def probe_url(url: str, *, rng: _random.Random | None = None) -> str:
    """A random address on ``url``'s host, in its directory, that certainly does not exist.

    The last path segment is replaced by ``zz-archiver-probe-<16 hex>``, keeping the
    segment's extension (``.html``, ``.php``, ``.pdf``) and a trailing slash if the URL has
    them, so the probe reaches the same handler the page did. Query and fragment are dropped.
    ``rng`` makes the token reproducible in tests. Never raises.
    """
    rng = rng or _random.Random()
    token = f"{PROBE_MARKER}{rng.getrandbits(64):016x}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    directory, last, trailing = _split_path(parts.path)
    found = _EXTENSION.search(last)
    name = token + (found.group(0) if found else "") + ("/" if trailing else "")
    return urlunsplit((parts.scheme, parts.netloc, directory + name, "", ""))


def _is_site_root(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.path in ("", "/") and not parts.query


def needs_probe(capture: FetchResult) -> bool:
    """Whether to probe the site for this capture: its final answer is 2xx and it is not the
    site's home page (a home page is what soft-404 sites answer with, so comparing a cited
    home page against the probe would call it a soft 404). Failures and other statuses have
    their verdict already."""
    if not isinstance(capture, Capture):
        return False
    if not 200 <= capture.status < 300:
        return False
    return not (_is_site_root(capture.final_url) or _is_site_root(capture.url))


def worth_probing(url: str) -> bool:
    """Whether a cited ``url`` may need a probe once fetched (http(s), not a site's home
    page), so the probe can be sent before the answer is known. ``needs_probe`` decides on
    the actual capture."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return False
    return scheme in ("http", "https") and not _is_site_root(url)


# ── comparing pages ──────────────────────────────────────────────────────────

# A word that is (part of) an address: a URL, a www. name or a path.
_URLISH = ("http://", "https://", "www.", "/")
_PROBE_TOKEN = re.compile(re.escape(PROBE_MARKER) + r"\w*", re.I)
_WORD = re.compile(r"\w+", re.U)
_DIGITS = re.compile(r"\d+")
_MONTHS = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"январ[ьяе]|феврал[ьяе]|марта?|апрел[ьяе]|ма[йяе]|июн[ьяе]|июл[ьяе]|августа?|"
    r"сентябр[ьяе]|октябр[ьяе]|ноябр[ьяе]|декабр[ьяе]|"
    r"понедельник|вторник|среда|четверг|пятница|суббота|воскресенье)\b",
    re.I,
)
# Enough tokens to tell two pages apart; SequenceMatcher is quadratic in the worst case.
_MAX_TOKENS = 3000


def _tokens(text: str) -> list[str]:
    text = _PROBE_TOKEN.sub(" ", text.lower())
    # Error pages echo the address asked for; the cited page and the probe asked for
    # different ones. Dropped word by word: a regex over the whole text would scan every
    # long run of non-space characters once per start position (quadratic; a page of one
    # 60,000-character word took minutes).
    text = " ".join(w for w in text.split() if not any(mark in w for mark in _URLISH))
    text = _MONTHS.sub(" ", text)
    text = _DIGITS.sub("0", text)
    words = _WORD.findall(text)
    return [w for w in words if w != "0"][:_MAX_TOKENS]


def looks_same(page_text: str, probe_text: str) -> float:
    """How alike two pages' extracted texts are, from 0.0 (nothing shared) to 1.0 (the same
    words in the same order), ignoring case, whitespace, numbers (dates, counters, ids),
    month and weekday names, URLs and paths (error pages echo the address asked for).

    A page with no words gives 0.0: an empty text is no evidence that two pages are one
    (script-rendered sites send the same empty shell for every address). At or above
    ``SAME_PAGE_THRESHOLD`` the pages are treated as one. Never raises.
    """
    a = _tokens(page_text or "")
    b = _tokens(probe_text or "")
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    # quick_ratio (shared words, order ignored) bounds ratio from above and is linear; when
    # even the bound is low the pages are plainly different and the exact figure is not
    # worth the quadratic worst case.
    bound = matcher.quick_ratio()
    if bound < 0.5:
        return round(bound, 4)
    return round(matcher.ratio(), 4)
