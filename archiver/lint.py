"""The editor's pre-publication check: structure and URL syntax, no network.

:func:`structure_findings` looks at markers and footnote definitions (what a reader saw);
:func:`lint` looks at a :class:`~archiver.models.Document`'s footnotes and their URLs. The
readers call both, so ``archiver extract`` and ``archiver lint`` report the same findings.

Severities, chosen for what an editor must do before publication:

===================== ======== ==============================================================
code                  severity why
===================== ======== ==============================================================
missing-footnote      error    a marker points at nothing: the claim has no stated source
no-footnotes          warning  the document was read, but has no footnotes or endnotes at all
                               (notes typed as plain text, or the wrong file)
duplicate-footnote    error    two notes share a number; readers cannot tell which is meant
malformed-url         error    the address cannot be followed at all
orphan-footnote       warning  a note nothing cites: a lost marker or a leftover note
flattened-marker      warning  a marker the conversion turned into plain digits (``party: 45``,
                               ``Article 48951``); recovered, but the source needs fixing
numbering-gap         warning  numbers are skipped: usually a note deleted without renumbering
footnote-order        warning  notes or markers out of sequence
superscript-in-note   warning  a superscript inside a note's own text (a date, say) that readers
                               will take for a citation marker
tracking-parameter    warning  ``fbclid``, ``utm_*``, ``__cft__``, ... leak where the link was
                               copied from and can expire; the clean URL is suggested
login-only            warning  Facebook and Instagram show the evidence only to logged-in
                               readers; cite an archived copy as well
empty-text-fragment   warning  ``#:~:text=`` with nothing to highlight: a copy-paste leftover
private-address       info     the host is a loopback, private or other non-public address
                               (``127.0.0.1``, ``10.0.0.1``, ``localhost``, also spelled
                               ``2130706433``): readers elsewhere cannot open it, and
                               ``archiver run`` refuses it unless allow_private_networks is on.
                               Info, not a warning: intranet and test documents cite such hosts
                               on purpose
too-deep              warning  HTML nested more than 256 elements deep: the text below is
                               read as plain text, links there are not seen
plain-http            info     not encrypted; often an https address exists
duplicate-url         info     the URL is cited by an earlier footnote too (one archived copy
                               serves both)
no-url                info     the note cites no URL (fine for explanatory notes)
mixed-notes           info     footnotes and endnotes in one document: endnotes are numbered
                               after the footnotes here, not i, ii, ... as the word processor
                               shows them
===================== ======== ==============================================================

Hosts are read as browsers read them (``archiver.hosts``): an IPv4 address in any notation
is a valid host, and so is an IPv6 literal; a host browsers refuse (``1.2.3.4.5``) is
malformed. Pure functions; no I/O; never raise on content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote, urlsplit

from archiver.guard import forbidden_reason
from archiver.hosts import Host, HostError, parse_host, url_host
from archiver.models import Document, Finding, Severity

__all__ = ["SEVERITY", "clean_tracking", "lint", "sort_findings", "structure_findings"]

SEVERITY: dict[str, Severity] = {
    "missing-footnote": Severity.ERROR,
    "duplicate-footnote": Severity.ERROR,
    "malformed-url": Severity.ERROR,
    "no-footnotes": Severity.WARNING,
    "orphan-footnote": Severity.WARNING,
    "flattened-marker": Severity.WARNING,
    "numbering-gap": Severity.WARNING,
    "footnote-order": Severity.WARNING,
    "superscript-in-note": Severity.WARNING,
    "tracking-parameter": Severity.WARNING,
    "login-only": Severity.WARNING,
    "empty-text-fragment": Severity.WARNING,
    "private-address": Severity.INFO,
    "too-deep": Severity.WARNING,
    "plain-http": Severity.INFO,
    "duplicate-url": Severity.INFO,
    "no-url": Severity.INFO,
    "mixed-notes": Severity.INFO,
}

# Query keys that only track where a link was clicked or copied, compared after dropping
# underscores and an index suffix so that mangled forms (``_cft__[0]``) are caught too.
_TRACKING = {
    "fbclid": "fbclid",
    "gclid": "gclid",
    "dclid": "dclid",
    "msclkid": "msclkid",
    "yclid": "yclid",
    "igshid": "igshid",
    "mccid": "mc_cid",
    "mceid": "mc_eid",
    "cft": "__cft__",
    "tn": "__tn__",
    "xts": "__xts__",
    "rdc": "_rdc",
    "rdr": "_rdr",
    "hcref": "hc_ref",
    "fref": "fref",
}
_INDEX = re.compile(r"\[\d*\]$")
# A domain an editor means: dotted labels and a top-level label of two or more characters
# (``https://nodot/`` is a typo far more often than an intranet name), or localhost.
_WHITE = re.compile(r"\s")  # what str.isspace calls white space
_DOMAIN = re.compile(r"(?:[\w-]+\.)+[\w-]{2,}|localhost", re.IGNORECASE)
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _make(code: str, message: str, footnote: int | None, line: int | None,
          url: str | None = None, suggestion: str | None = None) -> Finding:
    return Finding(code, SEVERITY[code], message, footnote, line, url, suggestion)


#: The most numbers a gap in the numbering lists one by one; a longer run is one finding.
GAP_RUN = 1000


def structure_findings(markers: Sequence[tuple[int, int]],
                       notes: Sequence[tuple[int, int]]) -> list[Finding]:
    """Numbering findings from ``markers`` and ``notes``, each a ``(number, line)`` pair in
    document order: missing, orphan and duplicate footnotes, gaps, order breaks."""
    findings: list[Finding] = []
    defined: dict[int, int] = {}
    for number, line in notes:
        if number in defined:
            findings.append(_make(
                "duplicate-footnote",
                f"footnote {number} is defined again (first at line {defined[number]})",
                number, line))
        else:
            defined[number] = line
    cited: dict[int, int] = {}
    for number, line in markers:
        cited.setdefault(number, line)
    for number, line in cited.items():
        if number not in defined:
            findings.append(_make(
                "missing-footnote", f"marker {number} has no footnote", number, line))
    for number, line in defined.items():
        if number not in cited:
            findings.append(_make(
                "orphan-footnote", f"footnote {number} is not cited by any marker",
                number, line))
    # The numbers between those used, from 1: each skipped one, or a long run as one (a
    # label such as [^20201028] skips twenty million numbers).
    previous_number = 0
    for number in sorted({*defined, *cited}):
        if number > previous_number + 1 + GAP_RUN:
            findings.append(_make(
                "numbering-gap", f"footnote numbering skips {previous_number + 1} to "
                f"{number - 1} ({number - 1 - previous_number} numbers)", None, None))
        else:
            for skipped in range(previous_number + 1, number):
                findings.append(_make(
                    "numbering-gap", f"footnote numbering skips {skipped}", None, None))
        previous_number = max(previous_number, number)
    previous = None
    for number, line in notes:
        if previous is not None and number < previous:
            findings.append(_make(
                "footnote-order", f"footnote {number} comes after footnote {previous}",
                number, line))
        previous = number
    highest = 0
    for number, line in cited.items():
        if number < highest:
            findings.append(_make(
                "footnote-order", f"marker {number} is first cited after marker {highest}",
                number, line))
        highest = max(highest, number)
    return findings


def _split_query(query: str) -> list[str]:
    return [part for part in query.split("&") if part] if query else []


def _tracking_key(part: str) -> str | None:
    key = unquote(part.split("=", 1)[0])
    if key.lower().startswith("utm_"):
        return key
    squeezed = _INDEX.sub("", key).replace("_", "").lower()
    return key if squeezed in _TRACKING else None


def clean_tracking(url: str) -> tuple[str, list[str]]:
    """``url`` without its tracking parameters, and the keys removed (as written)."""
    base, hash_, fragment = url.partition("#")
    path, _question, query = base.partition("?")
    kept, removed = [], []
    for part in _split_query(query):
        key = _tracking_key(part)
        if key is None:
            kept.append(part)
        else:
            removed.append(key)
    clean = path + ("?" + "&".join(kept) if kept else "") + (hash_ + fragment)
    return (clean if removed else url), removed


def _malformed(url: str) -> str | None:
    if _WHITE.search(url):
        return "contains white space"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
        raw = url_host(url)
    except ValueError as exc:
        return f"cannot be parsed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "does not start with http:// or https://"
    if not url.lower().startswith(("http://", "https://")):
        return "needs two slashes after the scheme"
    if not raw:
        return "has no host name"
    host = _host(raw)
    if host is None or (host.address is None and not _DOMAIN.fullmatch(host.name)):
        return f"host name {raw!r} is not valid"
    return None


# A document cites many URLs on few hosts: each host is read (and judged) once, as the
# fetch guard's browser-like parsing is the dearest part of checking a URL.
@functools.lru_cache(maxsize=4096)
def _host(raw: str) -> Host | None:
    try:
        return parse_host(raw)
    except HostError:
        return None


@functools.lru_cache(maxsize=4096)
def _private_message(raw: str) -> str | None:
    """The private-address finding's message for host ``raw`` (as written in a well-formed
    URL), or ``None`` for a public host. One string per host, shared by its findings: a
    document citing 100,000 pages of one intranet host holds the message once."""
    note = _host_note(raw)
    if note is None:
        return None
    return (f"{note}: readers elsewhere cannot open it, and archiver run refuses it unless "
            "allow_private_networks is on")


def _host_note(raw: str) -> str | None:
    host = _host(raw)
    if host is None:
        return None
    written = "" if raw.lower() in (host.name, host.text) else f" (written {raw})"
    if host.address is not None:
        why = forbidden_reason(host.address)
        if why is None:
            return None
        article = "an" if why[0].lower() in "aeiou" else "a"
        return f"{host.name}{written} is {article} {why} address"
    if host.name in _LOOPBACK_NAMES or host.name.endswith(".localhost"):
        return f"{host.name}{written} is this computer"
    return None


def _login_note(host: str, path: str) -> str | None:
    host = host.lower().removeprefix("www.")
    if host.endswith("instagram.com"):
        return "Instagram shows posts only to logged-in readers"
    if host.endswith(("facebook.com", "fb.com", "fb.watch")):
        if path.lower().startswith("/groups/"):
            return "Facebook group posts can be read only by logged-in members"
        return "Facebook asks readers to log in before showing this"
    return None


# A URL of the plainest shape: a lower-case http or https scheme, a host part without user
# info or brackets, a path or nothing, no query, no fragment, no white space. Whether such a
# URL is malformed (and why), whether its host is private and its host name depend on the
# part before its path alone, so they are judged once per host, not once per URL: a
# document cites thousands of pages of a few hosts.
_PLAIN = re.compile(r"(https?)://([^/?#@\[\]\\\s]*)(/[^?#\s]*)?")


@functools.lru_cache(maxsize=4096)
def _plain_host(head: str) -> tuple[str | None, str | None, str]:
    """``(problem, private-address message, host name)`` shared by the plain URLs that
    start with ``head`` (``scheme://host:port``): what :func:`_url_findings` would find."""
    problem = _malformed(head)
    if problem is not None:
        return problem, None, ""
    return None, _private_message(url_host(head)), urlsplit(head).hostname or ""


@functools.lru_cache(maxsize=16)
def _login_message(note: str) -> str:
    return f"{note}; cite an archived copy too"


def _url_findings(number: int, line: int, url: str) -> list[Finding]:
    plain = _PLAIN.fullmatch(url)
    if plain is not None:
        return _plain_findings(number, line, url, plain)
    problem = _malformed(url)
    if problem is not None:
        return [_make("malformed-url", f"{url} {problem}", number, line, url)]
    found = []
    clean, removed = clean_tracking(url)
    if removed:
        names = ", ".join(removed)
        known = set(_TRACKING.values())
        mangled = [k for k in removed
                   if not k.lower().startswith("utm_") and _INDEX.sub("", k) not in known]
        detail = ""
        if mangled:
            canonical = _TRACKING[_INDEX.sub("", mangled[0]).replace("_", "").lower()]
            detail = f" ({mangled[0]} looks like a mangled {canonical})"
        found.append(_make("tracking-parameter",
                           f"tracking parameter{'s' if len(removed) > 1 else ''} {names}{detail}",
                           number, line, url, clean))
    parts = urlsplit(url)
    fragment = unquote(parts.fragment)
    if fragment.startswith(":~:") and not fragment.split("text=", 1)[-1].strip(",-&"):
        found.append(_make("empty-text-fragment",
                           "the text fragment #:~:text= highlights nothing",
                           number, line, url, url.partition("#")[0]))
    private = _private_message(url_host(url))
    if private:
        found.append(_make("private-address", private, number, line, url))
    note = _login_note(parts.hostname or "", parts.path)
    if note:
        found.append(_make("login-only", _login_message(note), number, line, url))
    if parts.scheme.lower() == "http":
        found.append(_make("plain-http", _PLAIN_HTTP, number, line, url,
                           "https://" + url[len("http://"):]))
    return found


_PLAIN_HTTP = "plain http link; check whether https works"


def _plain_findings(number: int, line: int, url: str, plain: re.Match[str]) -> list[Finding]:
    """:func:`_url_findings` of a URL of the plain shape (``_PLAIN``): the same findings,
    with what depends on the host judged once per host. Without a query or fragment, such a
    URL has no tracking parameter and no empty text fragment."""
    problem, private, hostname = _plain_host(url[:plain.end(2)])
    if problem is not None:
        return [_make("malformed-url", f"{url} {problem}", number, line, url)]
    found = []
    if private:
        found.append(_make("private-address", private, number, line, url))
    note = _login_note(hostname, plain.group(3) or "")
    if note:
        found.append(_make("login-only", _login_message(note), number, line, url))
    if plain.group(1) == "http":
        found.append(_make("plain-http", _PLAIN_HTTP, number, line, url,
                           "https://" + url[len("http://"):]))
    return found


def lint(doc: Document) -> tuple[Finding, ...]:
    """URL-level findings for every footnote of ``doc``: no-url, malformed-url, tracking
    parameters, login-only platforms, plain http, empty text fragments, URLs cited again."""
    findings: list[Finding] = []
    if not doc.footnotes:
        findings.append(_make("no-footnotes", "no footnotes or endnotes found: nothing here "
                              "cites a source the archiver can check", None, None))
    first_citer: dict[str, int] = {}
    for note in doc.footnotes:
        if not note.urls:
            findings.append(_make("no-url", f"footnote {note.number} cites no URL",
                                  note.number, note.line))
        for url in note.urls:
            findings.extend(_url_findings(note.number, note.line, url))
            earlier = first_citer.setdefault(url, note.number)
            if earlier != note.number:
                findings.append(_make("duplicate-url", f"same URL as footnote {earlier}",
                                      note.number, note.line, url))
    return tuple(findings)


_NEGATIVE_RANK = {severity: -severity.rank for severity in Severity}


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Document order: by line (whole-document findings first), then severity, then code
    (then footnote and URL)."""
    # One stable sort per key, least significant first: the same order as one sort by the
    # tuple of keys, without a key tuple per finding alive at once (18 MB at 200,000).
    ordered = list(findings)
    ordered.sort(key=lambda f: f.url or "")
    ordered.sort(key=lambda f: f.footnote or 0)
    ordered.sort(key=lambda f: f.code)
    ordered.sort(key=lambda f: _NEGATIVE_RANK[f.severity])
    ordered.sort(key=lambda f: -1 if f.line is None else f.line)
    return tuple(ordered)
