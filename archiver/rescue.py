"""Rescue dead links from a web archive (the Internet Archive's Wayback Machine by default).

This is the only module that talks to web archives. It answers one question per cited URL:
which archived copy is nearest to the date the document was published? ::

    cited URL ─► url_variants ─► for each variant, in order:
                                    CDX API (two small queries at most) ─► nearest()
                                    └─ if the CDX API cannot be asked: availability API
                                 ─► LookupResult(memento | None, tried, error)

Use::

    async with Rescuer(settings.rescue, user_agent=settings.fetch.user_agent) as rescuer:
        result = await rescuer.lookup(link.url, source.published)   # LookupResult

The outcome is always a value. ``LookupResult.error`` is ``None`` when the archive was asked
and answered (``memento`` is then the copy, or ``None`` for "no archived copy found"); it holds
a short reason ("timeout", "the archive answered 429 too often") when the archive could not be
asked. Nothing here raises for an archive failure.

Choosing the copy (``nearest``): only captures with status 200 count. Given the publication
date, the latest copy made on or before that day wins if it is at most ``BEFORE_WINDOW``
(365 days) older than the day: that is the page the author most probably saw. Otherwise the
copy nearest in time on either side wins, the earlier one on a tie. Without a publication
date the latest copy wins.

How the CDX API is asked (see the wayback-cdx-server README: ``closest=``/``sort=closest``,
``from=``/``to=``, ``filter=``, ``fl=``, ``limit=``): first the few captures closest to the end
of the publication day; if the closest one is from after that day, a second query bounded
with ``from``/``to`` to the window before it looks for a copy the author could have seen.
The availability API only knows "closest, either side", so when it stands in for the CDX API
the before-preference is lost; ``LookupResult.api`` says which one answered.

URL variants, in this order, duplicates dropped (the fragment is never sent: archives do not
store it): the URL as cited; with tracking parameters dropped (``TRACKING_PARAMS``,
``utm_*``, ``__cft__*``); then, on the cleaned URL, the trailing slash toggled (not for the
root or for a last segment that looks like a file), ``http``/``https`` swapped, and ``www.``
added or removed (``m.``, ``mobile.`` and ``web.`` hosts become ``www.``). The first variant
with a copy wins; a variant is only asked when every earlier one answered "nothing". The
Internet Archive folds scheme and ``www.`` into one index key, so there those two rarely find
more (``m.``/``web.`` it keeps apart); other archives may store all of them apart.

Fetching the copy into our WARCs: the pipeline should fetch ``Memento.raw_url`` (the ``id_``
form, which returns the archived bytes without the archive's banner or rewriting) with its own
Fetcher, so the bytes go through the same WARC writer as every other capture, and write a
``metadata`` record naming ``Memento.original_url`` and ``Memento.datetime``. For a local
pywb/Wayback (loopback, intranet) that fetch needs ``allow_private_networks``.

Save Page Now (``Rescuer.save_page_now``) asks the Internet Archive to capture a live page
with the user's own keys (``IA_S3_ACCESS_KEY``, ``IA_S3_SECRET_KEY``). It is off unless
``[rescue] save_page_now = true``; every outcome, including "disabled" and "keys missing",
is a ``SaveResult`` value.

Politeness: one ``httpx.AsyncClient`` per ``Rescuer`` (proxies and CA bundle from the
environment), at most ``settings.per_host`` requests in flight per archive host, retries on
timeouts, 408, 429 and 5xx with exponential backoff, and a 429/503 ``Retry-After`` honoured for
every request to that host. A wait longer than ``retry_after_cap`` is not waited out: the
lookup ends with an error value, and that host is not asked again until the wait is over.

A host that is down is not asked again for the rest of the run (``Breaker``): after
``[rescue] breaker_after`` network failures in a row (no answer: connection refused, DNS,
no route, timeout; or a request still answered 5xx after its retries) every further request
to that host ends at once with ``failure="unreachable"``, without a network attempt, so a run
against an unreachable or hanging archive pays for a few timeouts, not one per lookup. Any
other answer from the host (200, 404, an empty index) resets the count. One ``Breaker`` may be
shared by several ``Rescuer`` objects (lookups and Save Page Now in one run).
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import json
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as daytime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import tenacity

from archiver.config import RescueSettings
from archiver.errors import ConfigError
from archiver.fetch import DECODABLE, PhaseTrace, decode_body, network_failure
from archiver.hosts import address_of
from archiver.models import Memento, Verdict, isoformat, utcnow
from archiver.retry import RETRYABLE_KINDS

__all__ = [
    "BEFORE_WINDOW",
    "FAILED",
    "RATE_LIMITED",
    "TRACKING_PARAMS",
    "UNREACHABLE",
    "Breaker",
    "LookupResult",
    "Rescuer",
    "SaveResult",
    "SaveStatus",
    "Snapshot",
    "cutoff_for",
    "drop_tracking",
    "memento_for",
    "nearest",
    "offset_days",
    "parse_timestamp",
    "url_variants",
]

BEFORE_WINDOW = timedelta(days=365)

# Query parameters that only say where a click came from; archives often hold the clean URL.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid",
    "mc_cid", "mc_eid", "_ga", "_gl", "__tn__", "__xts__", "_rdc", "_rdr", "ref_src", "ref_url",
})
TRACKING_PREFIXES = ("utm_", "__cft__")
# Mobile and alternate front ends whose pages the archive mostly holds under www.
MOBILE_PREFIXES = ("m.", "mobile.", "web.")

CDX_FIELDS = "timestamp,original,statuscode,mimetype,digest"
# Rows asked per CDX query: the closest few, so a stray non-200 row cannot hide every copy.
CDX_LIMIT = 5
# Archive answers here are a few rows of JSON; anything far bigger is not an answer we want.
MAX_ANSWER = 4 * 1024 * 1024
BACKOFF_MAX = 30.0

# LookupResult.failure: what kind of trouble kept the archive from answering.
UNREACHABLE = "unreachable"
RATE_LIMITED = "rate_limited"
FAILED = "failed"

_RETRY_STATUSES_GET = frozenset({408, 429, 500, 502, 503, 504})
# A POST that reached the server may have started a capture; only retry what surely did not.
_RETRY_STATUSES_POST = frozenset({429, 503})


# ── pure parts ───────────────────────────────────────────────────────────────


def parse_timestamp(timestamp: str) -> datetime:
    """A Wayback timestamp ``YYYYMMDDhhmmss`` (UTC) as an aware ``datetime``.

    Raises ``ValueError`` for anything that is not 14 digits forming a real date and time."""
    if len(timestamp) != 14 or not (timestamp.isascii() and timestamp.isdigit()):
        raise ValueError(f"not a 14-digit Wayback timestamp: {timestamp!r}")
    return datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def cutoff_for(published: date) -> datetime:
    """The last second of the publication day, UTC: copies up to it count as "before"."""
    return datetime.combine(published, daytime(23, 59, 59), tzinfo=UTC)


@dataclass(frozen=True)
class Snapshot:
    """One capture as an archive index lists it (a CDX row, or the availability API's
    ``closest``). ``status`` is ``None`` where the index did not say (revisits show ``-``)."""

    timestamp: str
    original: str
    status: int | None = None
    mimetype: str | None = None
    digest: str | None = None

    @property
    def moment(self) -> datetime:
        return parse_timestamp(self.timestamp)


def _well_formed(snapshot: Snapshot) -> bool:
    try:
        snapshot.moment  # noqa: B018 - parsing is the check
    except ValueError:
        return False
    return True


def nearest(candidates: Iterable[Snapshot], published: date | None, *,
            window: timedelta = BEFORE_WINDOW) -> Snapshot | None:
    """The capture to cite for a document published on ``published``; ``None`` if none fits.

    Only captures with status 200 and a valid timestamp are considered. With a publication
    date: the latest capture at or before the end of that day (UTC) if it is no more than
    ``window`` before it; otherwise the capture nearest to the end of that day on either
    side, the earlier one on a tie. Without a date: the latest capture. Pure.
    """
    usable = [c for c in candidates if c.status == 200 and _well_formed(c)]
    if not usable:
        return None
    if published is None:
        return max(usable, key=lambda c: c.moment)
    cutoff = cutoff_for(published)
    seen_by_author = [c for c in usable if cutoff - window <= c.moment <= cutoff]
    if seen_by_author:
        return max(seen_by_author, key=lambda c: c.moment)
    return min(usable, key=lambda c: (abs(c.moment - cutoff), c.moment))


def _is_tracking(name: str) -> bool:
    name = unquote(name).lower()
    return name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES)


def drop_tracking(url: str) -> str:
    """``url`` without tracking parameters; the remaining ones keep their order and their
    exact encoding (re-encoding could turn the URL into one the archive never saw)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    kept = [p for p in parts.query.split("&") if p and not _is_tracking(p.split("=", 1)[0])]
    return urlunsplit(parts._replace(query="&".join(kept)))


def _toggle_slash(url: str) -> str | None:
    parts = urlsplit(url)
    path = parts.path
    if path in ("", "/"):
        return None
    if path.endswith("/"):
        return urlunsplit(parts._replace(path=path.rstrip("/") or "/"))
    if "." in path.rsplit("/", 1)[-1]:
        return None  # looks like a file (report.pdf): a slash would name another resource
    return urlunsplit(parts._replace(path=path + "/"))


def _toggle_scheme(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="http" if parts.scheme == "https" else "https"))


def _is_ip(host: str) -> bool:
    # Any notation a browser reads as an address (127.1, 2130706433), not only dotted quads.
    return address_of(host) is not None


def _toggle_www(url: str) -> str | None:
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    host, colon, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if _is_ip(host) or "." not in host:
        return None
    lowered = host.lower()
    if lowered.startswith("www."):
        host = host[4:]
    elif lowered.startswith(MOBILE_PREFIXES) and lowered.count(".") >= 2:
        host = "www." + host.split(".", 1)[1]  # m.facebook.com is www.facebook.com's twin
    else:
        host = "www." + host
    netloc = (userinfo + "@" if userinfo else "") + host + colon + port
    return urlunsplit(parts._replace(netloc=netloc))


def url_variants(url: str) -> tuple[str, ...]:
    """The forms of ``url`` to ask the archive for, in the order they are tried (see the
    module docstring); the first is ``url`` without its fragment. Pure."""
    cited = urlunsplit(urlsplit(url)._replace(fragment=""))
    cleaned = drop_tracking(cited)
    order = [cited, cleaned, _toggle_slash(cleaned), _toggle_scheme(cleaned), _toggle_www(cleaned)]
    out: list[str] = []
    for variant in order:
        if variant is not None and variant not in out:
            out.append(variant)
    return tuple(out)


def _clean_original(original: str) -> str:
    """Old CDX rows say ``http://www.example.org:80/``; the default port is noise."""
    parts = urlsplit(original)
    default = {"http": ":80", "https": ":443"}.get(parts.scheme)
    if default and parts.netloc.endswith(default):
        return urlunsplit(parts._replace(netloc=parts.netloc[: -len(default)]))
    return original


def memento_for(snapshot: Snapshot, replay_base: str) -> Memento:
    """The ``Memento`` for ``snapshot``: ``url`` is ``{replay_base}/{timestamp}/{original}``
    (the archive's replay page), ``raw_url`` the ``id_`` form (the archived bytes as captured).
    Raises ``ValueError`` if the snapshot's timestamp is not valid."""
    base = replay_base.rstrip("/")
    original = _clean_original(snapshot.original)
    return Memento(
        url=f"{base}/{snapshot.timestamp}/{original}",
        datetime=snapshot.moment,
        original_url=original,
        raw_url=f"{base}/{snapshot.timestamp}id_/{original}",
        status=snapshot.status,
    )


def offset_days(memento: Memento, published: date | None) -> int | None:
    """Days from the publication date to the copy (negative: made before); ``None`` without
    a date. For the report's "how far is the copy from the citation"."""
    if published is None:
        return None
    return (memento.datetime.astimezone(UTC).date() - published).days


# ── results ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class LookupResult:
    """What a lookup found for ``url``.

    ``memento`` is the chosen copy or ``None``. ``tried`` lists the URL variants asked, in
    order. ``error`` is ``None`` when the archive answered (so ``memento is None`` means "no
    archived copy found") and a short reason when it could not be asked. ``api`` names the
    index that answered last ("cdx" or "availability"); ``requests`` counts HTTP requests made
    (0 when the lookup was not made at all, e.g. the host's ``Breaker`` was open).
    ``failure`` says what kind of trouble ``error`` is: ``UNREACHABLE`` (no answer, or 5xx
    after the retries, or the host already given up on), ``RATE_LIMITED`` (429, or a
    ``Retry-After`` longer than this run waits) or ``FAILED`` (anything else: an answer not
    understood, a URL that is not http(s)); ``None`` when ``error`` is. A result with an
    error is never "no copy": the archive was not asked, or did not say.
    ``as_dict``/``from_dict`` give a JSON-ready form for the catalog's cache.
    """

    url: str
    memento: Memento | None
    tried: tuple[str, ...] = ()
    error: str | None = None
    api: str | None = None
    requests: int = 0
    looked_up_at: datetime = field(default_factory=utcnow)
    failure: str | None = None

    @property
    def found(self) -> bool:
        return self.memento is not None

    def as_dict(self) -> dict[str, Any]:
        m = self.memento
        return {
            "url": self.url,
            "memento": None if m is None else {
                "url": m.url, "datetime": isoformat(m.datetime), "original_url": m.original_url,
                "raw_url": m.raw_url, "status": m.status,
            },
            "tried": list(self.tried),
            "error": self.error,
            "api": self.api,
            "requests": self.requests,
            "looked_up_at": isoformat(self.looked_up_at),
            "failure": self.failure,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LookupResult:
        """The inverse of ``as_dict``; raises ``KeyError``/``ValueError`` on a damaged entry."""
        m = data.get("memento")
        memento = None if m is None else Memento(
            url=m["url"], datetime=_parse_iso(m["datetime"]), original_url=m["original_url"],
            raw_url=m.get("raw_url"), status=m.get("status"),
        )
        return cls(
            url=data["url"], memento=memento, tried=tuple(data.get("tried", ())),
            error=data.get("error"), api=data.get("api"), requests=int(data.get("requests", 0)),
            looked_up_at=_parse_iso(data["looked_up_at"]), failure=data.get("failure"),
        )


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class SaveStatus(StrEnum):
    """Where a Save Page Now request stands."""

    DISABLED = "disabled"  # [rescue] save_page_now is off
    KEYS_MISSING = "keys_missing"  # IA_S3_ACCESS_KEY / IA_S3_SECRET_KEY not set
    SUBMITTED = "submitted"  # accepted; job_id names the capture job
    PENDING = "pending"  # the job is still running
    SUCCESS = "success"  # captured; memento is the new copy
    REFUSED = "refused"  # the archive said no (bad keys, a blocked URL, a daily limit...)
    FAILED = "failed"  # the archive could not be asked (timeout, 429 too often, ...)


@dataclass(frozen=True)
class SaveResult:
    """The outcome of ``save_page_now`` or ``save_status``; ``message`` is short and human
    and never contains the keys."""

    url: str
    status: SaveStatus
    job_id: str | None = None
    message: str = ""
    memento: Memento | None = None
    # FAILED because the archive could not be reached (or was given up on in this run):
    # the caller should stop submitting rather than try every remaining URL.
    unreachable: bool = False


# ── the network edge ─────────────────────────────────────────────────────────


# Failures that say the archive host itself is out of reach, whatever the request.
_HOST_DOWN = frozenset({Verdict.TIMEOUT, Verdict.CONNECTION_ERROR, Verdict.DNS_ERROR,
                        Verdict.TLS_ERROR})


@dataclass(frozen=True)
class _Answer:
    """One HTTP attempt, as a value: an answer, or why there was none."""

    status: int | None
    body: bytes = b""
    retry_after: float | None = None
    failure: str | None = None  # "timeout", "connection failed: ..." when status is None
    sent: bool = True  # False when the request surely never reached the server
    retryable: bool = True
    given_up: bool = False  # not attempted: the host's Breaker is open
    # The host could not be reached (DNS, refused, reset, timeout, TLS): never retried for
    # DNS or TLS, but counted by the Breaker all the same.
    down: bool = False

    @property
    def network_failure(self) -> bool:
        """No HTTP answer for a reason of the network (refused, DNS, timeout, a dropped
        connection): what a ``Breaker`` counts. Non-retryable failures (an answer too large,
        a bad API URL) are the request's fault, not the host's."""
        return (self.status is None and (self.retryable or self.down)
                and not self.given_up)

    @property
    def kind(self) -> str | None:
        """``LookupResult.failure`` for this answer; ``None`` for a 2xx answer."""
        if self.status is None:
            return UNREACHABLE if self.given_up or self.network_failure else FAILED
        if 200 <= self.status < 300:
            return None
        if self.status == 429 or self.retry_after is not None:
            return RATE_LIMITED
        return UNREACHABLE if self.status >= 500 else FAILED


@dataclass(frozen=True)
class _Problem:
    """Why an archive query gave no usable answer: a short text and its ``kind``."""

    text: str
    kind: str


class Breaker:
    """Gives up on an archive host that is down, for the rest of a run.

    ``failed(host, reason)`` counts a network failure (see ``_Answer.network_failure``, or
    5xx after the retries); after ``threshold`` of them in a row the host is down
    (``is_open``) and stays down: nothing more is sent to it by any ``Rescuer`` sharing this
    breaker. ``answered(host)`` (any other HTTP answer) resets the count. There is no
    half-open retry: a run is short, and the next run asks again. Used from one event loop
    at a time (several ``asyncio.run`` in turn are fine).
    """

    def __init__(self, threshold: int = 3) -> None:
        if threshold < 1:
            raise ValueError(f"a breaker threshold must be at least 1, got {threshold}")
        self.threshold = threshold
        self._streak: dict[str, int] = {}
        self._down: dict[str, str] = {}

    def is_open(self, host: str) -> bool:
        return host in self._down

    def reason(self, host: str) -> str | None:
        """The last failure before ``host`` was given up on; ``None`` while it is asked."""
        return self._down.get(host)

    @property
    def down(self) -> tuple[str, ...]:
        """The hosts given up on, in the order they went down."""
        return tuple(self._down)

    def failed(self, host: str, reason: str) -> None:
        if host in self._down:
            return
        self._streak[host] = self._streak.get(host, 0) + 1
        if self._streak[host] >= self.threshold:
            self._down[host] = reason

    def answered(self, host: str) -> None:
        if host not in self._down:
            self._streak[host] = 0


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    # ASCII digits only (RFC 9110's DIGIT): str.isdigit holds for '²' too, which float
    # refuses; such a value falls through to the date, which it is not either.
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    address = address_of(host)
    return address is not None and address.is_loopback


def _check_api_url(name: str, value: str) -> None:
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        raise ConfigError(f"[rescue] {name}: expected an http(s) URL, got {value!r}")


class Rescuer:
    """Looks cited URLs up in a web archive; an async context manager owning its client.

    ``Rescuer(settings, user_agent=..., transport=None)``; ``transport`` replaces the network
    (tests of pure logic only). Keyword knobs: ``backoff`` is the first backoff wait in
    seconds, doubling per retry up to 30 s (``None``: 1 s, or 0 when the environment sets
    ``ARCHIVER_TESTING=1``; 0 turns backoff sleeps off, ``Retry-After`` is still honoured);
    ``retry_after_cap`` is the longest ``Retry-After`` waited out; ``spn_interval`` the least
    time between two Save Page Now submissions; ``before_window`` the window of ``nearest``;
    ``breaker`` the ``Breaker`` to share with the run's other ``Rescuer`` objects (default:
    a new one giving up after ``settings.breaker_after`` failures).
    An API base in ``settings`` that is not an http(s) URL raises ``ConfigError`` naming the
    key. Using a method outside ``async with`` raises ``RuntimeError`` (a programming error).
    """

    def __init__(self, settings: RescueSettings, *, user_agent: str,
                 transport: httpx.AsyncBaseTransport | None = None,
                 backoff: float | None = None, retry_after_cap: float = 60.0,
                 spn_interval: float = 5.0, before_window: timedelta = BEFORE_WINDOW,
                 breaker: Breaker | None = None) -> None:
        for name in ("availability_api", "cdx_api", "replay_base", "spn_api"):
            _check_api_url(name, getattr(settings, name))
        self.settings = settings
        self._user_agent = user_agent
        self._transport = transport
        if backoff is None:
            backoff = 0.0 if os.environ.get("ARCHIVER_TESTING") == "1" else 1.0
        self._backoff = backoff
        self._retry_after_cap = retry_after_cap
        self._spn_interval = spn_interval
        self._window = before_window
        self._client: httpx.AsyncClient | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._paused_until: dict[str, float] = {}
        self._refused_until: dict[str, float] = {}
        self._spn_lock: asyncio.Lock | None = None
        self._spn_next = 0.0
        self.breaker = breaker if breaker is not None else Breaker(settings.breaker_after)

    async def __aenter__(self) -> Rescuer:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout),
            headers={"User-Agent": self._user_agent, "Accept": "application/json"},
            follow_redirects=True,
            max_redirects=5,
            trust_env=True,
            transport=self._transport,
        )
        self._spn_lock = asyncio.Lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ── lookups ──────────────────────────────────────────────────────────────

    async def lookup(self, url: str, published: date | None) -> LookupResult:
        """The archived copy of ``url`` nearest to ``published`` (see the module docstring).

        Never raises for archive or URL trouble: a URL that is not http(s), or an archive that
        could not be asked after the retries, gives a result with ``error`` set.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return LookupResult(url, None, error=f"not an http(s) URL: {url!r}", failure=FAILED)
        tally: list[int] = []
        tried: list[str] = []
        cdx_error: _Problem | None = None
        for variant in url_variants(url):
            tried.append(variant)
            if cdx_error is None:
                found, cdx_error = await self._ask_cdx(variant, published, tally)
                if cdx_error is None:
                    if found is not None:
                        return self._result(url, found, tried, "cdx", tally)
                    continue
            # The CDX API could not be asked: the availability API stands in for the rest.
            found, error = await self._ask_availability(variant, published, tally)
            if error is not None:
                both = error.text if error.text == cdx_error.text else \
                    f"CDX API: {cdx_error.text}; availability API: {error.text}"
                # The stand-in's trouble decides: it was the last chance to get an answer.
                return LookupResult(url, None, tuple(tried), error=both, requests=len(tally),
                                    failure=error.kind)
            if found is not None:
                return self._result(url, found, tried, "availability", tally)
        api = "availability" if cdx_error else "cdx"
        return LookupResult(url, None, tuple(tried), api=api, requests=len(tally))

    def _result(self, url: str, found: Snapshot, tried: list[str], api: str,
                tally: list[int]) -> LookupResult:
        return LookupResult(url, memento_for(found, self.settings.replay_base), tuple(tried),
                            api=api, requests=len(tally))

    async def _ask_cdx(self, variant: str, published: date | None,
                       tally: list[int]) -> tuple[Snapshot | None, _Problem | None]:
        target = cutoff_for(published) if published else utcnow()
        rows, error = await self._cdx_query(variant, _timestamp(target), None, tally)
        if error is not None:
            return None, error
        best = nearest(rows, published, window=self._window)
        if published is not None and best is not None and best.moment > target:
            # The closest copy postdates the document; look for one the author could have seen.
            window = (_timestamp(target - self._window), _timestamp(target))
            before, error = await self._cdx_query(variant, _timestamp(target), window, tally)
            if error is not None:
                return None, error
            best = nearest([*rows, *before], published, window=self._window)
        return best, None

    async def _cdx_query(self, variant: str, closest: str, window: tuple[str, str] | None,
                         tally: list[int]) -> tuple[list[Snapshot], _Problem | None]:
        params: list[tuple[str, str]] = [
            ("url", variant), ("output", "json"), ("fl", CDX_FIELDS),
            ("filter", "statuscode:200"), ("closest", closest), ("sort", "closest"),
            ("limit", str(CDX_LIMIT)),
        ]
        if window is not None:
            params += [("from", window[0]), ("to", window[1])]
        answer = await self._send("GET", self.settings.cdx_api, tally, params=params)
        if (error := self._failure(answer)) is not None:
            return [], _Problem(error, answer.kind or FAILED)
        try:
            return _parse_cdx(answer.body), None
        except ValueError as exc:
            return [], _Problem(f"the CDX answer was not understood ({exc})", FAILED)

    async def _ask_availability(self, variant: str, published: date | None,
                                tally: list[int]) -> tuple[Snapshot | None, _Problem | None]:
        params = [("url", variant)]
        if published is not None:
            params.append(("timestamp", published.strftime("%Y%m%d")))
        answer = await self._send("GET", self.settings.availability_api, tally, params=params)
        if (error := self._failure(answer)) is not None:
            return None, _Problem(error, answer.kind or FAILED)
        try:
            snapshot = _parse_availability(answer.body, variant)
        except ValueError as exc:
            return None, _Problem(f"the availability answer was not understood ({exc})", FAILED)
        return nearest([snapshot] if snapshot else [], published, window=self._window), None

    # ── Save Page Now ────────────────────────────────────────────────────────

    def _spn_auth(self, url: str) -> tuple[dict[str, str] | None, SaveResult | None]:
        if not self.settings.save_page_now:
            return None, SaveResult(url, SaveStatus.DISABLED,
                                    message="Save Page Now is off ([rescue] save_page_now)")
        access = os.environ.get("IA_S3_ACCESS_KEY", "").strip()
        secret = os.environ.get("IA_S3_SECRET_KEY", "").strip()
        if not access or not secret:
            return None, SaveResult(
                url, SaveStatus.KEYS_MISSING,
                message="set IA_S3_ACCESS_KEY and IA_S3_SECRET_KEY "
                        "(your keys from https://archive.org/account/s3.php)")
        api = urlsplit(self.settings.spn_api)
        if api.scheme != "https" and not _is_loopback(api.hostname or ""):
            return None, SaveResult(
                url, SaveStatus.REFUSED,
                message=f"not sending access keys over plain HTTP to {self.settings.spn_api}")
        return {"Authorization": f"LOW {access}:{secret}"}, None

    async def save_page_now(self, url: str) -> SaveResult:
        """Ask the archive to capture ``url`` now (SPN2). Returns ``SUBMITTED`` with the job
        id, or why not (``DISABLED``, ``KEYS_MISSING``, ``REFUSED``, ``FAILED``; ``FAILED``
        with ``unreachable`` when the host is down or given up on, at once and unsent, by the
        ``Breaker``); never raises for archive trouble. Submissions are sent one at a time,
        ``spn_interval`` apart."""
        headers, refusal = self._spn_auth(url)
        if refusal is not None or headers is None:
            return refusal or SaveResult(url, SaveStatus.FAILED)
        if self._spn_lock is None:
            raise RuntimeError("use Rescuer inside 'async with'")
        loop = asyncio.get_running_loop()
        host = urlsplit(self.settings.spn_api).netloc
        async with self._spn_lock:
            if self.breaker.is_open(host):  # no pause before a request that is not sent
                answer = self._given_up(host)
            else:
                await asyncio.sleep(max(0.0, self._spn_next - loop.time()))
                answer = await self._send("POST", self.settings.spn_api, [],
                                          data={"url": url, "skip_first_archive": "1"},
                                          headers=headers)
                self._spn_next = loop.time() + self._spn_interval
        return _save_result(url, answer, self._failure(answer))

    async def save_status(self, job_id: str, url: str = "") -> SaveResult:
        """Where the Save Page Now job ``job_id`` stands: ``PENDING``, ``SUCCESS`` (with the
        new copy as ``memento``), ``REFUSED`` (the job failed), or ``FAILED`` (not asked)."""
        headers, refusal = self._spn_auth(url)
        if refusal is not None or headers is None:
            return refusal or SaveResult(url, SaveStatus.FAILED)
        status_url = f"{self.settings.spn_api.rstrip('/')}/status/{quote(job_id, safe='')}"
        answer = await self._send("GET", status_url, [], headers=headers)
        if (error := self._failure(answer)) is not None:
            return _save_result(url, answer, error, job_id)
        try:
            data = json.loads(answer.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return SaveResult(url, SaveStatus.FAILED, job_id, "the status answer was not a "
                                                              "JSON object")
        state = str(data.get("status", ""))
        original = str(data.get("original_url") or url)
        if state == "success":
            snapshot = Snapshot(str(data.get("timestamp", "")), original, 200)
            memento = memento_for(snapshot, self.settings.replay_base) \
                if _well_formed(snapshot) else None
            return SaveResult(original, SaveStatus.SUCCESS, job_id, "captured", memento)
        if state == "pending":
            return SaveResult(original, SaveStatus.PENDING, job_id, "capture in progress")
        reason = data.get("message") or data.get("status_ext") or f"status {state!r}"
        return SaveResult(original, SaveStatus.REFUSED, job_id, str(reason))

    # ── HTTP with retries ────────────────────────────────────────────────────

    def _failure(self, answer: _Answer) -> str | None:
        """``None`` for a 2xx answer, else the reason the archive could not be asked."""
        if answer.status is None:
            return answer.failure or "no answer"
        if 200 <= answer.status < 300:
            return None
        cap = self._retry_after_cap
        if answer.retry_after is not None and answer.retry_after > cap:
            return (f"the archive answered {answer.status} and asked to wait "
                    f"{answer.retry_after:.0f} s (more than the {cap:.0f} s waited out)")
        if answer.status == 429 or answer.status >= 500:
            return f"the archive answered {answer.status} too often"
        return f"the archive answered {answer.status}"

    async def _send(self, method: str, url: str, tally: list[int], *,
                    params: list[tuple[str, str]] | None = None,
                    data: Mapping[str, str] | None = None,
                    headers: Mapping[str, str] | None = None) -> _Answer:
        """One request with the retry policy; the final attempt's ``_Answer``."""
        statuses = _RETRY_STATUSES_POST if method == "POST" else _RETRY_STATUSES_GET

        def should_retry(answer: _Answer) -> bool:
            if answer.status is None:
                return answer.retryable and (method != "POST" or not answer.sent)
            if answer.retry_after is not None and answer.retry_after > self._retry_after_cap:
                return False
            return answer.status in statuses

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_result(should_retry),
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
            sleep=asyncio.sleep,
        )
        host = urlsplit(url).netloc

        async def counted(*args: Any) -> _Answer:
            answer = await self._attempt(*args)
            if answer.network_failure:  # each attempt: a dead host fails every one of them
                self.breaker.failed(host, answer.failure or "no answer")
            return answer

        answer: _Answer = await retrying(counted, method, url, tally, params, data, headers)
        if answer.status is not None:
            if answer.status >= 500:  # only once the retries are spent: 503s come and go
                self.breaker.failed(host, f"the archive answered {answer.status}")
            else:
                self.breaker.answered(host)
        return answer

    def _given_up(self, host: str) -> _Answer:
        return _Answer(None, failure=f"not asked: {host} could not be reached "
                                     f"{self.breaker.threshold} times in a row in this run "
                                     f"(last: {self.breaker.reason(host)})",
                       sent=False, retryable=False, given_up=True)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        answer = state.outcome.result() if state.outcome else None  # type: ignore[union-attr]
        if isinstance(answer, _Answer) and answer.retry_after is not None:
            return answer.retry_after
        if self._backoff <= 0:
            return 0.0
        ceiling = min(BACKOFF_MAX, self._backoff * 2 ** (state.attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter keeps parallel lookups apart

    async def _attempt(self, method: str, url: str, tally: list[int],
                       params: list[tuple[str, str]] | None,
                       data: Mapping[str, str] | None,
                       headers: Mapping[str, str] | None) -> _Answer:
        if self._client is None:
            raise RuntimeError("use Rescuer inside 'async with'")
        host = urlsplit(url).netloc
        loop = asyncio.get_running_loop()
        slot = self._slots.setdefault(host, asyncio.Semaphore(max(1, self.settings.per_host)))
        async with slot:
            # Checked inside the slot: a request queued behind a 429 must see its Retry-After.
            refused_for = self._refused_until.get(host, 0.0) - loop.time()
            if refused_for > 0:
                # The host asked for a longer wait than this run gives it: not asked till then.
                return _Answer(429, retry_after=refused_for, sent=False)
            if self.breaker.is_open(host):  # it went down while this request waited its turn
                return self._given_up(host)
            # A Retry-After from this host holds back every request to it, not only the retry.
            await asyncio.sleep(max(0.0, self._paused_until.get(host, 0.0) - loop.time()))
            tally.append(1)
            trace = PhaseTrace()
            try:
                # httpx's timeout bounds each read; this bounds a whole slow-drip answer.
                async with asyncio.timeout(self.settings.timeout * 2):
                    query = tuple(params) if params else None
                    async with self._client.stream(method, url, params=query, data=data,
                                                   headers=headers,
                                                   extensions={"trace": trace}) as response:
                        body, unusable = await _read_answer(response)
                        if unusable is not None:
                            return _Answer(None, failure=unusable, retryable=False)
            except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                # Judged like the fetcher's failures: by phase, not by class name.
                found = network_failure(exc, trace.phase, limit=f"{self.settings.timeout:g}s")
                if found.verdict is Verdict.INVALID_URL:  # a bad API base in the settings
                    return _Answer(None, failure=f"invalid archive URL: {found.reason}",
                                   retryable=False, sent=False)
                failure = found.reason
                if found.verdict is Verdict.TIMEOUT:
                    failure = "timeout"
                elif found.verdict in (Verdict.CONNECTION_ERROR, Verdict.DNS_ERROR):
                    failure = f"connection failed: {found.reason}"
                return _Answer(None, failure=failure,
                               sent=trace.phase.sent if trace.traced else True,
                               retryable=found.verdict.value in RETRYABLE_KINDS,
                               down=found.verdict in _HOST_DOWN)
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = _retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > self._retry_after_cap:
                self._refused_until[host] = loop.time() + retry_after
            elif retry_after is not None:
                pause = loop.time() + retry_after
                self._paused_until[host] = max(self._paused_until.get(host, 0.0), pause)
        return _Answer(response.status_code, bytes(body), retry_after)


async def _read_answer(response: httpx.Response) -> tuple[bytes, str | None]:
    """The answer's body with its Content-Encoding undone, or why it cannot be used.

    The bytes are read as sent (``aiter_raw``) up to ``MAX_ANSWER``, then decoded by the
    fetcher's ``decode_body`` to at most ``MAX_ANSWER`` bytes: a small compressed answer that
    expands enormously (a 13 KB brotli answer can expand to gigabytes) costs at most that
    much memory and is refused, never decoded whole.
    """
    raw = io.BytesIO()
    async for chunk in response.aiter_raw():
        if raw.tell() + len(chunk) > MAX_ANSWER:
            return b"", f"the archive's answer was larger than {_size(MAX_ANSWER)}"
        raw.write(chunk)
    sent = raw.tell()
    coding = response.headers.get("content-encoding")
    codings = [c.strip().lower() for c in (coding or "").split(",") if c.strip()]
    if any(c not in DECODABLE for c in codings):
        # As httpx does: an unknown coding is taken as sent (then parsed, or not understood).
        return raw.getvalue(), None
    body = decode_body(raw, coding, MAX_ANSWER + 1)
    if len(body) > MAX_ANSWER:
        return b"", (f"the archive's answer was larger than {_size(MAX_ANSWER)} once "
                     f"decoded (Content-Encoding: {coding}; {_size(sent)} as sent)")
    return body, None


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 2**10:.1f} KiB"


# ── answer parsing (pure) ────────────────────────────────────────────────────


def _json_message(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message = data.get("message") or data.get("status_ext")
    return str(message) if message else None


def _save_result(url: str, answer: _Answer, error: str | None,
                 job_id: str | None = None) -> SaveResult:
    """A Save Page Now answer as a ``SaveResult``. The archive's refusals (bad keys, a
    blocked URL, an error JSON with HTTP 200) are ``REFUSED``; not getting an answer, or
    429/5xx outlasting the retries, is ``FAILED``."""
    if error is None:
        try:
            data = json.loads(answer.body)
        except ValueError:
            return SaveResult(url, SaveStatus.FAILED, job_id, "the Save Page Now answer was "
                                                              "not JSON")
        if isinstance(data, dict) and data.get("job_id"):
            return SaveResult(url, SaveStatus.SUBMITTED, str(data["job_id"]),
                              str(data.get("message") or "submitted"))
        reason = _json_message(answer.body) or "the answer named no job"
        return SaveResult(url, SaveStatus.REFUSED, job_id, reason)
    status = answer.status
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        detail = _json_message(answer.body)
        return SaveResult(url, SaveStatus.REFUSED, job_id,
                          f"{error}: {detail}" if detail else error)
    return SaveResult(url, SaveStatus.FAILED, job_id, error,
                      unreachable=answer.kind == UNREACHABLE)




def _status(text: str) -> int | None:
    """An answer's status code, or ``None`` when the row's is not one (``str.isdigit``
    alone takes "²" for a digit, and ``int`` then fails on the whole answer)."""
    return int(text) if text.isascii() and text.isdigit() else None


def _parse_cdx(body: bytes) -> list[Snapshot]:
    """Rows of a CDX ``output=json`` answer: a header row of field names, then one row per
    capture. An empty body or ``[]`` means no captures. Raises ``ValueError`` if malformed."""
    if not body.strip():
        return []
    data = json.loads(body)
    if not isinstance(data, list):
        raise ValueError("expected a JSON array")
    if not data:
        return []
    header = data[0]
    if not isinstance(header, list) or "timestamp" not in header or "original" not in header:
        raise ValueError("no header row naming timestamp and original")
    if not all(isinstance(name, str) for name in header):
        raise ValueError("the header row holds something other than field names")
    snapshots = []
    for row in data[1:]:
        if not isinstance(row, list) or len(row) != len(header):
            continue  # a resume key or a blank separator row
        cells = dict(zip(header, row, strict=True))
        status = str(cells.get("statuscode", ""))
        snapshots.append(Snapshot(
            timestamp=str(cells["timestamp"]),
            original=str(cells["original"]),
            status=_status(status),
            mimetype=cells.get("mimetype"),
            digest=cells.get("digest"),
        ))
    return snapshots


def _parse_availability(body: bytes, variant: str) -> Snapshot | None:
    """The ``closest`` snapshot of an availability API answer, or ``None``.

    The original URL is read from the snapshot's replay URL (``.../web/TIMESTAMP/ORIGINAL``)
    when it has that shape, else taken to be ``variant``. Raises ``ValueError`` if malformed."""
    data = json.loads(body)
    snapshots = data.get("archived_snapshots") if isinstance(data, dict) else None
    if not isinstance(snapshots, dict):
        raise ValueError("expected an object with 'archived_snapshots'")
    closest = snapshots.get("closest")
    if not closest:
        return None
    if not isinstance(closest, dict):
        raise ValueError("'closest' is not an object")
    if not closest.get("available", True):
        return None
    timestamp = str(closest.get("timestamp", ""))
    status = str(closest.get("status", ""))
    original = variant
    marker = f"/{timestamp}/"
    replay = str(closest.get("url", ""))
    if timestamp and marker in replay:
        original = replay.split(marker, 1)[1] or variant
    return Snapshot(timestamp, original, _status(status))
