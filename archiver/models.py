"""The records that flow between the archiver's stages.

Every stage is a function over these frozen values; none of them does I/O. The pipeline::

    Source ─► parse ─► Document(footnotes, claims, findings)
                          │
                          ▼
              plan: Target (URL → citing footnotes)
                          │
                       fetch ─► FetchResult = Capture | FetchFailure
                          │
          ┌───────────────┼────────────────┐
          ▼               ▼                ▼
      WarcRef         Judgement         Memento
      (warc)          (classify)        (rescue)
          └───────────────┼────────────────┘
                          ▼
                  LinkRecord ─► Report

Times are timezone-aware UTC ``datetime`` values; they are rendered as ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

__all__ = [
    "Capture",
    "Change",
    "ChangeKind",
    "Claim",
    "Document",
    "FetchFailure",
    "FetchResult",
    "Finding",
    "Footnote",
    "FootnoteRef",
    "Hop",
    "Judgement",
    "LinkRecord",
    "LinkState",
    "Memento",
    "Severity",
    "Source",
    "Target",
    "TlsCertificate",
    "TlsSession",
    "Verdict",
    "WarcRef",
    "isoformat",
    "last_header",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, UTC, to the second (WARC dates and reports carry seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


def isoformat(moment: datetime) -> str:
    """``2026-11-25T12:00:01Z``: the one way the archiver writes a time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ── documents ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Source:
    """One document listed in ``sources.toml``; ``path`` is absolute."""

    id: str
    path: str
    title: str | None = None
    published: date | None = None


class Severity(enum.StrEnum):
    """How much a finding matters; ``lint --strict`` fails on warnings too."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something an editor should hear about a document.

    ``footnote`` and ``line`` (1-based, in the document as read) are ``None`` where the finding
    concerns the whole document. ``suggestion`` carries a concrete fix where one exists (the
    clean URL for a tracking parameter, for instance).
    """

    code: str
    severity: Severity
    message: str
    footnote: int | None = None
    line: int | None = None
    url: str | None = None
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """The body text that carries one footnote marker.

    ``text`` is the whole sentence (or sentences) around the marker, as plain text without
    markup or markers, joined across a page-end footnote block. ``line`` is the marker's line.
    """

    footnote: int
    text: str
    line: int


@dataclass(frozen=True, slots=True)
class Footnote:
    """One footnote: its number, plain text, URLs in the order written, and its markers' claims.

    ``urls`` are exactly as the author meant them: escapes undone, link targets preferred over
    link texts, no trailing punctuation, fragments kept, each listed once.
    """

    number: int
    text: str
    urls: tuple[str, ...]
    line: int
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True)
class Document:
    """What a reader makes of one file. ``format`` names the reader that understood it."""

    path: str
    format: str
    footnotes: tuple[Footnote, ...]
    findings: tuple[Finding, ...] = ()
    title: str | None = None

    def footnote(self, number: int) -> Footnote | None:
        for note in self.footnotes:
            if note.number == number:
                return note
        return None

    @property
    def claims(self) -> tuple[Claim, ...]:
        """Every marker's claim, in document order."""
        found = [claim for note in self.footnotes for claim in note.claims]
        return tuple(sorted(found, key=lambda c: (c.line, c.footnote)))

    @property
    def urls(self) -> tuple[str, ...]:
        """Distinct cited URLs in order of first citation."""
        return tuple(self.citing)

    @functools.cached_property
    def citing(self) -> dict[str, tuple[int, ...]]:
        """URL → the numbers of the footnotes that cite it, in order of first citation.
        Computed once: reports look it up for every URL of briefings with thousands."""
        found: dict[str, list[int]] = {}
        for note in self.footnotes:
            for url in note.urls:
                numbers = found.setdefault(url, [])
                if note.number not in numbers:
                    numbers.append(note.number)
        return {url: tuple(numbers) for url, numbers in found.items()}


# ── capture ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True, order=True, slots=True)
class FootnoteRef:
    """Footnote ``number`` of source ``source``: ``kazakhstan-2020#14``."""

    source: str
    number: int

    def __str__(self) -> str:
        return f"{self.source}#{self.number}"

    def __reduce__(self) -> tuple[type[FootnoteRef], tuple[str, int]]:
        # Pickled by its fields, a plain tuple: quicker than a slotted dataclass's
        # ``__getstate__`` (a Python call per ref a run sends to its worker processes).
        # Slotted: 100,000 targets and their refs take 18 MB instead of 26 MB.
        return FootnoteRef, (self.source, self.number)


@dataclass(frozen=True, slots=True)
class Target:
    """One distinct URL to fetch, with every footnote that cites it."""

    url: str
    cited_by: tuple[FootnoteRef, ...] = ()

    def __reduce__(self) -> tuple[type[Target], tuple[str, tuple[FootnoteRef, ...]]]:
        # As FootnoteRef's: the run sends every target to a worker process and keeps it.
        return Target, (self.url, self.cited_by)


@dataclass(frozen=True)
class WarcRef:
    """Where a record lives: ``path`` relative to the config's folder, byte offset and length
    of the (gzipped) record in that file, and its ``WARC-Record-ID``."""

    path: str
    offset: int
    length: int
    record_id: str


@dataclass(frozen=True)
class TlsCertificate:
    """One certificate as the server presented it: DER bytes (for PEM output), its SHA-256
    fingerprint (hex of the DER), subject, issuer and validity as the certificate states."""

    der: bytes
    sha256: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class TlsSession:
    """The TLS session of one HTTPS exchange. ``chain`` is the certificate chain as presented
    on that connection, leaf first; ``chain_complete`` is False when only the leaf could be
    read (``note`` says why)."""

    version: str
    cipher: str
    chain: tuple[TlsCertificate, ...]
    chain_complete: bool = True
    note: str = ""


@dataclass(frozen=True)
class Hop:
    """One HTTP exchange of a fetch: a redirect hop or the final answer.

    ``headers`` are the response headers as received (name, value) in order. ``warc`` is the
    response (or revisit) record written for this hop, ``None`` if it could not be written.
    """

    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    warc: WarcRef | None = None
    revisit: bool = False
    # Provenance of the exchange (see archiver.provenance): the server's address, the TLS
    # session, the request headers as sent (credentials redacted) and the SHA-256 of the
    # stored response record (its gzip member as written).
    remote_ip: str | None = None
    tls: TlsSession | None = None
    request_headers: tuple[tuple[str, str], ...] = ()
    record_sha256: str | None = None


@dataclass(frozen=True)
class Capture:
    """A fetch that got an HTTP answer (any status) after following redirects.

    ``hops`` holds every exchange in order; the last is the final answer. ``content`` is the
    decoded body (Content-Encoding undone) up to the decompression cap, for judging and text
    extraction; the WARC holds the raw bytes. ``truncated`` is the ``WARC-Truncated`` reason
    (``"length"``: over ``max_body``; ``"time"``: the deadline or a stall; ``"disconnect"``:
    the connection closed early, e.g. before its ``Content-Length``) when the body was cut;
    ``body_bytes`` is how many body bytes were received (as sent, before decoding).
    """

    url: str
    final_url: str
    status: int
    hops: tuple[Hop, ...]
    content: bytes
    content_type: str | None
    payload_digest: str
    captured_at: datetime
    attempts: int = 1
    truncated: str | None = None
    elapsed: float = 0.0
    body_bytes: int = 0

    @property
    def warc(self) -> WarcRef | None:
        return self.hops[-1].warc if self.hops else None

    @property
    def redirected(self) -> bool:
        return len(self.hops) > 1

    def header(self, name: str) -> str | None:
        """The final response's header ``name`` (case-insensitive), first value."""
        wanted = name.lower()
        for key, value in self.hops[-1].headers if self.hops else ():
            if key.lower() == wanted:
                return value
        return None

    @property
    def content_coding(self) -> str | None:
        """The Content-Encoding ``content`` was decoded by: the final response's last such
        header, as the fetcher reads it (``last_header``)."""
        return last_header(self.hops[-1].headers, "content-encoding") if self.hops else None


def last_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The last value of header ``name`` (case-insensitive) among ``headers``: the one the
    fetcher reads a body by (Content-Type, Content-Encoding), as a dict of them keeps it."""
    wanted, found = name.lower(), None
    for key, value in headers:
        if key.lower() == wanted:
            found = value
    return found


class Verdict(enum.StrEnum):
    """A link's health; the contract's table in ``CONTRACT.md`` says what each means."""

    OK = "ok"
    REDIRECTED = "redirected"
    # It answers with content, but our capture of it is cut (WARC-Truncated): what we hold
    # is not the whole page, so it is not called healthy and an archived copy is looked for.
    INCOMPLETE = "incomplete"
    SOFT_404 = "soft_404"
    LOGIN_WALL = "login_wall"
    PARKED = "parked"
    BLOCKED = "blocked"
    NOT_FOUND = "not_found"
    GONE = "gone"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    INVALID_URL = "invalid_url"
    PRIVATE_ADDRESS = "private_address"

    @property
    def healthy(self) -> bool:
        """The evidence is still readable at the cited address (``ok`` or ``redirected``)."""
        return self in (Verdict.OK, Verdict.REDIRECTED)

    @property
    def network_level(self) -> bool:
        """A failure before any HTTP answer: these are what an outage looks like."""
        return self in (
            Verdict.TIMEOUT,
            Verdict.DNS_ERROR,
            Verdict.CONNECTION_ERROR,
            Verdict.TLS_ERROR,
        )


@dataclass(frozen=True)
class FetchFailure:
    """A fetch that got no usable HTTP answer. ``verdict`` is one of the network-level
    verdicts, ``invalid_url`` or ``private_address``; ``reason`` is short and human.
    ``hops`` holds the redirects followed before the failure, if any."""

    url: str
    verdict: Verdict
    reason: str
    attempts: int = 1
    hops: tuple[Hop, ...] = ()
    failed_at: datetime = field(default_factory=utcnow)


FetchResult = Capture | FetchFailure


@dataclass(frozen=True)
class Judgement:
    """The verdict on one fetch, with a short human reason
    ("redirected to the site's home page")."""

    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class Memento:
    """An archived copy in a web archive (the Internet Archive by default).

    ``url`` is the replay URL, ``raw_url`` the ``id_`` form that returns the original bytes.
    """

    url: str
    datetime: datetime
    original_url: str
    raw_url: str | None = None
    status: int | None = None


class LinkState(enum.StrEnum):
    """A link's state over time, across scheduled checks."""

    OK = "ok"
    FAILING = "failing"  # failed, but not yet on enough checks spread over time
    DEAD = "dead"


@dataclass(frozen=True)
class LinkRecord:
    """Everything the report says about one distinct cited URL.

    ``capture`` is the record whose ``WARC-Target-URI`` is the URL fetched for this link (its
    ``response``, or its ``revisit`` when the payload was already archived), dated
    ``captured_at``; ``capture_payload`` is the record holding the bytes (``capture`` itself
    for a response). Never another URL's record.
    """

    url: str
    footnotes: tuple[int, ...]
    verdict: Verdict | None
    reason: str = ""
    http_status: int | None = None
    final_url: str | None = None
    attempts: int = 0
    capture: WarcRef | None = None
    captured_at: datetime | None = None
    memento: Memento | None = None
    state: LinkState | None = None
    failing_since: datetime | None = None
    title: str | None = None
    excerpt: str | None = None
    checked_at: datetime | None = None
    rescued: WarcRef | None = None
    # Why the web archive was not asked about this failing link ("rescue is disabled", "the
    # Internet Archive could not be reached"); None when it was asked, or need not be.
    not_looked_up: str | None = None
    capture_payload: WarcRef | None = None
    # The captured payload's digest (``WARC-Payload-Digest``, e.g. ``sha1:…``), for citing.
    payload_digest: str | None = None
    # The WARC-Truncated reason of our latest capture ("length", "time", "disconnect"), or
    # None when it holds the whole body.
    truncated: str | None = None
    # How the capture was made ("http" or "browser"; None without a capture), the browser
    # capture's screenshot record, whether a logged-in profile was used, and why a link that
    # wanted the browser kept its HTTP capture only (Chromium missing, the page failed).
    capture_mode: str | None = None
    screenshot: WarcRef | None = None
    profile: bool = False
    browser_lost: str | None = None
    # The capture's provenance at a glance (archiver.provenance.glance): time, server IP,
    # certificate subject and fingerprint, SHA-256 of payload and record; () if none.
    provenance: tuple[tuple[str, str | None], ...] = ()


class ChangeKind(enum.StrEnum):
    """What a scheduled check found different from the previous one."""

    NEWLY_FAILING = "newly_failing"  # healthy last time, failing now
    NEWLY_DEAD = "newly_dead"  # failing long enough to be declared dead
    STILL_FAILING = "still_failing"
    RECOVERED = "recovered"  # failing or dead last time, healthy now
    DRIFTED = "drifted"  # healthy both times, but the text changed
    SUPPORT_DROPPED = "support_dropped"  # the page holds fewer of a claim's facts than before


@dataclass(frozen=True)
class Change:
    """One line of "what changed since the last check"."""

    url: str
    kind: ChangeKind
    verdict: Verdict | None
    previous_verdict: Verdict | None = None
    since: datetime | None = None
    similarity: float | None = None
    reason: str = ""
    footnotes: tuple[int, ...] = ()
