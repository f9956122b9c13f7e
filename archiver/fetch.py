"""The only network code: fetch cited URLs politely, within bounds, into the WARC writer.

``Fetcher`` wraps one ``httpx.AsyncClient`` (HTTP/1.1, and HTTP/2 where the server offers it;
TLS trust and proxies from the environment as httpx does by default). Under httpx, routes
where HTTP/2 cannot be used may be carried by aiohttp instead of httpcore (``[fetch]
transport``, ``archiver.aiotransport``): the same guard, phases, failures and records. For
each URL it:

* refuses what is not an http(s) URL (``invalid_url``) and, unless private networks are
  allowed, any host that resolves to a loopback/private/link-local/... address
  (``private_address``; see ``archiver.guard``), before every hop and again at connection;
* follows redirects itself, hop by hop (at most ``max_redirects``), archiving every hop; a
  redirect back to a URL already visited, too many redirects, or a redirect to a non-http(s)
  URL end the fetch as a ``FetchFailure`` with verdict ``invalid_url`` and a reason
  ("redirect loop: ..."), with the hops archived so far. ``invalid_url`` is used rather than
  a network verdict so that a loop never counts towards outage detection;
* retries what ``archiver.retry`` says may be cured (timeouts, drops, 408, 429, 5xx, a body
  cut by a stall or a drop), with backoff and ``Retry-After``; a 429/5xx that outlasts the
  retries is a ``Capture`` with that status and is archived (only the last attempt's answer
  is kept);
* streams the body as received (``aiter_raw``: Content-Encoding intact) into a spooled
  temporary file, up to ``max_body`` bytes (then ``truncated="length"``), within a total
  deadline per URL that covers every attempt, wait and hop (cut: ``truncated="time"``, or a
  ``timeout`` failure when no answer arrived). The deadline starts when the URL's first
  request is allowed to start, so queueing behind politeness limits does not eat it;
* decodes the final body for ``Capture.content`` incrementally, never beyond
  ``max_decoded`` bytes (a gzip bomb costs at most that much memory).

Politeness: at most ``concurrency`` requests in flight, at most ``per_host`` to one host, and
``host_interval`` seconds between request starts to one host. Waits between retries hold
no slot. After ``host_give_up`` different URLs of one host in a row timed out, that host is
given up for the rest of the run (``HostGaveUp``); a URL already being retried ends with its
timeout. One URL's own retries count once, and soft-404 probes not at all.

Every exception of an exchange is judged in one place, ``network_failure``, by the phase it
struck in (connect, TLS handshake, sending, waiting for the answer, reading the body; followed
with httpcore's ``trace`` extension, see ``PhaseTrace``), never by its class name or message.

A URL's failure is a value (``FetchFailure``), never an exception; only a failure to write
the archive (``ArchiveError``) escapes, because it stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import hashlib
import http
import http.cookiejar
import ipaddress
import logging
import os
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import IO, Any, ClassVar, Protocol, cast

import httpcore
import httpx

from archiver.config import FetchSettings
from archiver.errors import ArchiveError
from archiver.guard import (
    AddressGuard,
    AddressRefused,
    NameNotResolved,
    refusal_without_dns,
)
from archiver.hosts import HostError, canonical_url, parse_host, url_host
from archiver.models import (
    Capture,
    FetchFailure,
    FetchResult,
    Hop,
    TlsSession,
    Verdict,
    WarcRef,
    last_header,
    utcnow,
)
from archiver.netstream import GuardedBackend
from archiver.provenance import request_headers, tls_session
from archiver.retry import RetryPolicy, run_with_retries
from archiver.warc import WarcWriter

__all__ = ["Attempt", "Fetcher", "GateLeases", "HostGaveUp", "NetworkFailure", "Phase",
           "PhaseTrace", "decode_body", "network_failure"]

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SPOOL_IN_MEMORY = 256 * 1024
# Seconds a host's passed pre-check resolution stands for its next URLs.
_PRECHECK_STANDS = 10.0
_DECODE_CHUNK = 64 * 1024


#: Bodies shorter than this are written to the WARC on the event loop.
_WRITE_ON_LOOP_BYTES = 512 * 1024


@dataclass(frozen=True)
class Attempt:
    """One request attempt, for the catalog: ``outcome`` is ``"response"`` or a verdict value
    (``"timeout"``, ``"connection_error"``, ...); ``waited`` the seconds slept before it."""

    url: str
    number: int
    outcome: str
    status: int | None = None
    error: str | None = None
    waited: float = 0.0
    at: datetime = field(default_factory=utcnow)


@dataclass
class _Outcome:
    """What one attempt produced (internal; holds the open body spool)."""

    kind: str  # "response", or a Verdict value for a failure
    reason: str = ""
    status: int | None = None
    retry_after: str | None = None
    url: str = ""
    request_head: bytes = b""
    response_head: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    body: IO[bytes] | None = None
    digest: str = ""
    truncated: str | None = None
    remote_ip: str | None = None
    captured_at: datetime = field(default_factory=utcnow)
    tls: TlsSession | None = None
    # The SHA-256 of ``body`` so far, fed as it is written (the same label and form as
    # ``warc.payload_digest``).
    sha256: Any = field(default_factory=hashlib.sha256)

    def discard(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None


class _Budget:
    """The per-URL deadline, started by the first request that gets a slot."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = float("inf")

    def start(self) -> None:
        if self.deadline == float("inf"):
            self.deadline = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class HostGaveUp(Exception):
    """The fetcher gave up on the URL's host for this run (``give_up`` attempts in a row timed
    out) before this URL's request was sent: the URL was not fetched, and says nothing about
    its page. ``reason`` is for the report ("host gave up after 3 timeouts")."""

    def __init__(self, host: str, timeouts: int) -> None:
        self.host = host
        self.timeouts = timeouts
        self.reason = f"host gave up after {timeouts} timeouts"
        super().__init__(f"{host}: {self.reason}")


class _HostGate:
    """``per_host`` requests at a time to one host, starts spaced by ``interval`` seconds.

    With ``give_up`` > 0, the host is given up for the rest of the run once that many
    different URLs in a row timed out: a host that never answers would otherwise cost every
    one of its URLs the whole per-URL deadline. One URL's own retries count once (they are
    what ``retries`` promises it), and a soft-404 probe's timeout does not count (it is not a
    cited page). A request that gets a slot after that raises ``HostGaveUp``; any other
    outcome (an answer, a refusal) resets the count.
    """

    def __init__(self, per_host: int, interval: float, host: str = "", give_up: int = 0) -> None:
        self._slots = _Turns(per_host)
        self._lock = asyncio.Lock()
        self._interval = interval
        self._next_start = 0.0
        self._host = host
        self._give_up = give_up
        self._timed_out: set[str] = set()  # the URLs of the current run of timeouts

    @property
    def given_up(self) -> bool:
        return self._give_up > 0 and len(self._timed_out) >= self._give_up

    def record(self, kind: str, url: str, *, counts: bool = True) -> None:
        """Count one attempt's outcome (``"response"`` or a failure kind) for ``url``; with
        ``counts`` false (a probe), a timeout is not held against the host."""
        if self.given_up:
            return
        if kind != "timeout":
            self._timed_out.clear()
        elif counts:
            self._timed_out.add(url)

    def slot(self, *, first: bool = False) -> _Slot:
        """``async with gate.slot():`` one request's turn to this host; with ``first``, the
        turn comes before those of the requests already waiting (a soft-404 probe)."""
        return _Slot(self, first)

    async def _enter(self, first: bool = False) -> None:
        await self._slots.acquire(first)
        try:
            if self.given_up:
                raise HostGaveUp(self._host, self._give_up)
            await self._space()
        except BaseException:
            self._slots.release()
            raise

    async def _space(self) -> None:
        """Wait for this request's start, ``interval`` after the one before."""
        if self._interval > 0:
            async with self._lock:
                now = time.monotonic()
                if self._next_start > now:
                    await asyncio.sleep(self._next_start - now)
                self._next_start = max(now, self._next_start) + self._interval


class GateLeases(Protocol):
    """The host gates of other processes, for a fetch worker (``archiver.shards``): each
    worker owns a share of the run's hosts, and a redirect can lead a worker to a host
    another one owns. Its requests there take their turns from the owner's gate, so that
    ``per_host``, ``host_interval`` and ``host_give_up`` hold for the run, not once per
    worker."""

    def owner(self, url: str) -> int | None:
        """The process that owns ``url``'s host; ``None`` for this one's own."""

    async def acquire(self, owner: int, host: str) -> int | None:
        """A turn of ``host``'s gate in ``owner``, held until ``release`` (a lease); raises
        ``HostGaveUp`` when the owner gave the host up, and returns ``None`` when the owner
        has ended (this process is then the only one left to fetch from the host)."""

    def release(self, owner: int, lease: int) -> None:
        """Give back the lease ``acquire`` returned."""

    def record(self, owner: int, host: str, kind: str, url: str, counts: bool) -> None:
        """Tell ``owner`` how a request to ``host`` ended (``_HostGate.record``): its gate
        counts it towards giving the host up, as it counts its own."""


class _LeasedGate(_HostGate):
    """The gate of a host another worker owns (``GateLeases``): a request's turn is its own
    slot here (no more than ``per_host`` from this process either), then a lease of the
    owner's gate, which spaces the starts; with the owner gone, this gate spaces them.
    The owner's gate counts each request's outcome towards giving the host up, with its
    own, so that the host is given up after ``give_up`` timeouts in a row in the run, as in
    one process (the owner refuses its turns then, and this gate from the first refusal);
    this gate counts them once the owner has ended."""

    def __init__(self, per_host: int, interval: float, host: str, give_up: int,
                 leases: GateLeases, owner: int) -> None:
        super().__init__(per_host, interval, host, give_up)
        self._leases, self._owner = leases, owner
        self._refused = False  # the owner gave the host up
        self._alone = False  # the owner has ended

    @property
    def given_up(self) -> bool:
        return self._refused or super().given_up

    def record(self, kind: str, url: str, *, counts: bool = True) -> None:
        if self._alone:
            super().record(kind, url, counts=counts)
        else:
            self._leases.record(self._owner, self._host, kind, url, counts)

    def slot(self, *, first: bool = False) -> _LeasedSlot:  # type: ignore[override]
        return _LeasedSlot(self, first)

    async def _enter_leased(self, first: bool = False) -> int | None:
        # ``first`` orders this process's own waiting requests only: the owner's gate serves
        # its leases in the order they are asked for.
        await self._slots.acquire(first)
        try:
            if self.given_up:
                raise HostGaveUp(self._host, self._give_up)
            try:
                lease = await self._leases.acquire(self._owner, self._host)
            except HostGaveUp:
                self._refused = True
                raise
            if lease is None:
                self._alone = True
                await self._space()
            return lease
        except BaseException:
            self._slots.release()
            raise

    def _leave_leased(self, lease: int | None) -> None:
        if lease is not None:
            self._leases.release(self._owner, lease)
        self._slots.release()


class _Turns:
    """``count`` turns, handed out in the order they are asked for, except that a turn asked
    for ``first`` goes before every ordinary one waiting (``asyncio.Semaphore`` has no such
    order). A released turn passes straight to the next waiter."""

    __slots__ = ("_first", "_free", "_waiting")

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._first: deque[asyncio.Future[None]] = deque()

    async def acquire(self, first: bool = False) -> None:
        if self._free > 0 and not self._waiting and not self._first:
            self._free -= 1
            return
        queue = self._first if first else self._waiting
        turn = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # given as it was cancelled: the next waiter's now
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            raise

    def release(self) -> None:
        for queue in (self._first, self._waiting):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1

    @property
    def waiting(self) -> int:
        """How many asks wait for a turn."""
        return len(self._waiting) + len(self._first)


class _Slot:
    """A host gate's slot as a plain async context manager (a generator-based one costs
    four times as much per request)."""

    __slots__ = ("_first", "_gate")

    def __init__(self, gate: _HostGate, first: bool = False) -> None:
        self._gate, self._first = gate, first

    async def __aenter__(self) -> None:
        await self._gate._enter(self._first)

    async def __aexit__(self, *exc: object) -> None:
        self._gate._slots.release()


class _LeasedSlot:
    """A turn of a ``_LeasedGate``: its own slot and the owner's lease."""

    __slots__ = ("_first", "_gate", "_lease")

    def __init__(self, gate: _LeasedGate, first: bool = False) -> None:
        self._gate, self._first = gate, first
        self._lease: int | None = None

    async def __aenter__(self) -> None:
        self._lease = await self._gate._enter_leased(self._first)

    async def __aexit__(self, *exc: object) -> None:
        self._gate._leave_leased(self._lease)


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's connection pool, but for a cancellation shield around closing no
    connection: the pool "closes" the (almost always empty) list of connections it retired
    twice per request, each time inside an anyio cancel scope that costs more than the rest
    of the bookkeeping."""

    async def _close_connections(self, closing: list[Any]) -> None:
        if closing:
            await super()._close_connections(closing)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a connection pool whose network backend is the address guard.

    httpx has no public hook for httpcore's ``network_backend``, so the pool is rebuilt with
    the same settings httpx would use plus the guarded backend.
    """

    def __init__(self, guard: AddressGuard, *, ssl_context: ssl.SSLContext, http2: bool,
                 limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, http2=http2, limits=limits)
        self._pool = _Pool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedBackend(guard),
        )


class _NoCookies(httpx.Cookies):
    """The client's shared cookies, which stay empty: cookies live per fetch (see
    Fetcher._fetch), so one site's session never leaks into another URL's requests.

    Nothing is ever taken from a response, rather than taking and then refusing each cookie
    by policy: cookielib would parse every response's headers for nothing."""

    def __init__(self) -> None:
        super().__init__(http.cookiejar.CookieJar(
            http.cookiejar.DefaultCookiePolicy(allowed_domains=[])))

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


class _Client(httpx.AsyncClient):
    """httpx's client whose own cookies are always ``_NoCookies``, and that sends the
    fetcher's requests straight to their route's transport (``send_direct``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._no_cookies = _NoCookies()
        self._routes: dict[str, httpx.AsyncBaseTransport] = {}
        self._heads: dict[bytes, httpx.Headers] = {}

    def get_request(self, url: httpx.URL, extensions: dict[str, Any]) -> httpx.Request:
        """``httpx.Request("GET", url, headers=self.headers, extensions=extensions)``: the
        same request (``Host`` first, then the client's headers, an empty body read), from
        the headers prepared once per host and port rather than normalised and copied twice
        for every request (a fifth of the request's own CPU before it is sent)."""
        netloc = url.netloc
        head = self._heads.get(netloc)
        if head is None:
            if "host" in self.headers:  # httpx keeps a Host given, where it was given
                return httpx.Request("GET", url, headers=self.headers, extensions=extensions)
            head = self._heads[netloc] = httpx.Headers([(b"Host", netloc), *self.headers.raw])
        request = httpx.Request("GET", url, headers=head, stream=httpx.ByteStream(b""),
                                extensions=extensions)
        request.read()
        return request

    async def send_direct(self, request: httpx.Request) -> httpx.Response:
        """What ``send(request, stream=True)`` does for a fetcher's request, without the
        layers that do nothing for it: no auth flow (unless the URL carries credentials:
        those take httpx's own path, which sends them), no redirect loop (the fetcher
        follows redirects itself, from the raw headers read here instead of by a hook), no
        timing wrapper around the body. The transport is the one ``send`` would choose (the
        mounts depend only on the scheme: the client serves one host). Errors carry their
        request, and the request is logged, as ``send`` does."""
        url = request.url
        if url.userinfo:
            return await self.send(request, stream=True)
        transport = self._routes.get(url.scheme)
        if transport is None:
            transport = self._routes[url.scheme] = self._transport_for_url(url)
        try:
            response = await transport.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request
            raise
        response.request = request
        _HTTPX_LOG.info('HTTP Request: %s %s "%s %d %s"', request.method, url,
                        response.http_version, response.status_code, response.reason_phrase)
        return response

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise TypeError("the fetcher's clients keep no cookies: they live per fetch")


_HTTPX_LOG = logging.getLogger("httpx")  # where httpx's client logs each request
_SSL_CONTEXTS: dict[tuple[object, ...], ssl.SSLContext] = {}


def shared_ssl_context() -> ssl.SSLContext:
    """The TLS settings the fetchers of this process use (the system's CA certificates, or
    those ``SSL_CERT_FILE``/``SSL_CERT_DIR`` name, as httpx reads them), made once per
    setting of those variables. Made before worker processes are forked, its certificate
    store (a megabyte and more) is shared with them rather than loaded again by each.
    Nothing changes a context after it is made; a certificate file changed since is read
    again."""
    cafile = os.environ.get("SSL_CERT_FILE")
    try:
        changed = os.stat(cafile).st_mtime_ns if cafile else None
    except OSError:
        changed = None
    key = (cafile, changed, os.environ.get("SSL_CERT_DIR"))
    context = _SSL_CONTEXTS.get(key)
    if context is None:
        context = _SSL_CONTEXTS[key] = httpx.create_ssl_context(trust_env=True)
    return context


class Fetcher:
    """Fetch URLs into ``FetchResult`` values, archiving every exchange through ``writer``.

    Use as ``async with Fetcher(settings, writer) as fetcher``. ``on_attempt`` is called for
    every attempt. ``guard`` replaces the address rules derived from
    ``settings.allow_private_networks`` (tests admit their own server with
    ``AddressGuard.allowing``).
    """

    def __init__(
        self,
        settings: FetchSettings,
        writer: WarcWriter | None = None,
        *,
        on_attempt: Callable[[Attempt], None] | None = None,
        guard: AddressGuard | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.on_attempt = on_attempt
        #: Set in a fetch worker: the gates of the hosts other workers own.
        self.leases: GateLeases | None = None
        self.guard = guard or AddressGuard(allow_private=settings.allow_private_networks)
        self._policy = RetryPolicy(
            retries=settings.retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            retry_after_cap=settings.retry_after_cap,
        )
        self._hosts: dict[str, _HostGate] = {}
        self._global: asyncio.Semaphore | None = None
        self._clients: dict[str, _Client] = {}
        self._ssl_context: ssl.SSLContext | None = None
        # The environment's proxies, read once: scanning os.environ for every request costs
        # more than the rest of the pre-check.
        self._proxies = urllib.request.getproxies_environment()
        # (host, port) → until when its last pre-check resolution stands (see _precheck).
        self._resolved: dict[tuple[str, int], float] = {}
        self._aiohttp: Any = None  # archiver.aiotransport.AiohttpPool, made when first used

    async def __aenter__(self) -> Fetcher:
        self._ssl_context = shared_ssl_context()
        self._global = asyncio.Semaphore(self.settings.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()
        pool, self._aiohttp = self._aiohttp, None
        if pool is not None:
            await pool.aclose()

    def _aiohttp_route(self, scheme: str, proxy: str | None,
                       fallback: httpx.AsyncBaseTransport, *, owns_fallback: bool
                       ) -> httpx.AsyncBaseTransport | None:
        """The aiohttp transport for ``scheme`` URLs (through ``proxy``, when the environment
        names one), or ``None`` where httpcore carries them: the setting says so, HTTP/2 may
        be used (https with ``http2``), or the proxy is not an http:// one (SOCKS).
        ``fallback`` is the httpcore transport of the route, for the answers aiohttp's
        parser refuses (``AiohttpTransport``)."""
        if _transport_of(self.settings) != "aiohttp":
            return None
        if scheme == "https" and self.settings.http2:
            return None
        if proxy is not None and not proxy.lower().startswith("http://"):
            return None
        _import_aiohttp()
        from archiver.aiotransport import AiohttpPool, AiohttpTransport

        if self._aiohttp is None:
            assert self._ssl_context is not None
            self._aiohttp = AiohttpPool(self.guard, self._ssl_context)
        return AiohttpTransport(self._aiohttp, proxy, fallback=fallback,
                                owns_fallback=owns_fallback)

    def _client_for(self, host: str) -> _Client:
        """One client (and connection pool) per host.

        httpcore's pool rescans every connection for every queued request; one shared pool
        for dozens of hosts costs milliseconds of CPU per request, a pool per host does not.
        """
        client = self._clients.get(host)
        if client is None:
            if self._ssl_context is None:
                raise RuntimeError("use Fetcher inside 'async with'")
            settings = self.settings
            limits = httpx.Limits(max_connections=None,
                                  max_keepalive_connections=settings.per_host,
                                  keepalive_expiry=5.0)
            transport = _GuardedTransport(self.guard, ssl_context=self._ssl_context,
                                          http2=settings.http2, limits=limits)
            # httpx ignores the environment's proxies when given a transport, so they are
            # mounted here: a proxied route connects to the proxy (which may well be on a
            # private network), not to the checked address of the site.
            mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
            for scheme in ("http", "https"):
                proxy = proxy_for(f"{scheme}://{host}/", self._proxies)
                route: httpx.AsyncBaseTransport = transport if proxy is None else \
                    httpx.AsyncHTTPTransport(proxy=proxy, verify=self._ssl_context,
                                             http2=settings.http2, limits=limits)
                aio = self._aiohttp_route(scheme, proxy, route,
                                          owns_fallback=route is not transport)
                if aio is not None:
                    mounts[f"{scheme}://"] = aio
                elif proxy is not None:
                    mounts[f"{scheme}://"] = route
            client = self._clients[host] = _Client(
                transport=transport,
                mounts=mounts,
                trust_env=True,
                http2=settings.http2,
                limits=limits,
                follow_redirects=False,
                timeout=httpx.Timeout(settings.timeout),
                headers={"User-Agent": settings.user_agent},
                event_hooks={"response": [_keep_raw_headers]},
            )
        return client

    # ── public ───────────────────────────────────────────────────────────────

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url`` (following and archiving redirects). Never raises for the URL's
        failure; raises ``ArchiveError`` when the archive cannot be written, and
        ``HostGaveUp`` when the host was given up for this run before the URL's request was
        sent (the URL was not fetched: no verdict)."""
        return await self._fetch(url, archive=True, policy=self._policy)

    async def probe(self, url: str) -> FetchResult:
        """Like ``fetch`` with the same bounds and guard, but not archived and not retried,
        and ahead of the fetches waiting for the host: every page of its directory fetched
        already waits for its answer to be judged."""
        return await self._fetch(url, archive=False, policy=replace(self._policy, retries=0))

    async def fetch_all(
        self,
        urls: Iterable[str],
        on_result: Callable[[str, FetchResult], None] | None = None,
    ) -> dict[str, FetchResult]:
        """Fetch every distinct URL concurrently under the politeness limits; ``on_result``
        is called as each finishes. Returns url → result; a URL not fetched because its host
        was given up (``HostGaveUp``) is left out. An ``ArchiveError`` cancels the rest and
        propagates."""
        results: dict[str, FetchResult] = {}

        async def one(url: str) -> None:
            try:
                result = await self.fetch(url)
            except HostGaveUp:
                return
            results[url] = result
            if on_result is not None:
                on_result(url, result)

        tasks = [asyncio.ensure_future(one(url)) for url in dict.fromkeys(urls)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return results

    # ── one URL ──────────────────────────────────────────────────────────────

    async def _fetch(self, url: str, *, archive: bool, policy: RetryPolicy) -> FetchResult:
        started = time.monotonic()
        fetchable, problem = _fetchable(url)
        if fetchable is None:
            return FetchFailure(url, Verdict.INVALID_URL, problem or url, attempts=0)
        current = fetchable.split("#", 1)[0]
        budget = _Budget(self.settings.deadline)
        jar = httpx.Cookies()
        hops: list[Hop] = []
        visited: list[str] = []
        attempts = 0
        while True:
            parsed = _parse(current)  # for the guard, gate and request
            gate = self._gate(_gate_key(parsed), current)
            refusal = await self._precheck(current, parsed)
            if refusal is not None:
                verdict, reason = refusal
                return FetchFailure(url, verdict, reason, attempts=attempts, hops=tuple(hops))
            visited.append(current)

            def attempt(number: int, target: str = current, parsed: httpx.URL = parsed,
                        gate: _HostGate = gate) -> Any:
                return self._attempt(target, parsed, gate, jar, budget, first=not archive)

            def report(number: int, outcome: _Outcome, waited: float,
                       target: str = current, gate: _HostGate = gate) -> None:
                gate.record(outcome.kind, target, counts=archive)
                if self.on_attempt is not None:
                    self.on_attempt(Attempt(
                        url=target, number=number, outcome=outcome.kind, status=outcome.status,
                        error=outcome.reason or None, waited=waited,
                        at=outcome.captured_at))

            outcome, count = await run_with_retries(
                attempt, policy, deadline=partial(_hop_deadline, gate, budget),
                on_outcome=report,
                cleanup=_Outcome.discard,
            )
            attempts += count
            if outcome.kind != "response":
                return FetchFailure(url, Verdict(outcome.kind), outcome.reason,
                                    attempts=attempts, hops=tuple(hops))
            try:
                # The turn this request gave back may have gone to a request waiting for
                # the host: let it be sent before this answer is archived and judged (a
                # millisecond of CPU or more on the event loop). When many answers come at
                # once, each next request would otherwise wait for all of them.
                for _ in range(_TURNS_TO_SEND):
                    await asyncio.sleep(0)
                hop = await self._archive(outcome) if archive else _hop(outcome, None, False)
                hops.append(hop)
                location = dict((k.lower(), v) for k, v in outcome.headers).get("location")
                if outcome.status in REDIRECT_STATUSES and location:
                    joined = _next_url(outcome.url, location)
                    target, _ = _fetchable(joined) if joined is not None else (None, None)
                    stop: str | None = None
                    if target is None:
                        stop = f"redirect to a URL that cannot be fetched: {location!r}"
                    elif target in visited:
                        stop = "redirect loop: " + " → ".join([*visited, target])
                    elif len(hops) > self.settings.max_redirects:
                        stop = f"more than {self.settings.max_redirects} redirects"
                    if stop is not None:
                        return FetchFailure(url, Verdict.INVALID_URL, stop,
                                            attempts=attempts, hops=tuple(hops))
                    assert target is not None
                    current = target
                    continue
                return self._capture(url, outcome, hops, attempts, started)
            finally:
                outcome.discard()

    def _capture(self, url: str, outcome: _Outcome, hops: list[Hop], attempts: int,
                 started: float) -> Capture:
        content = b""
        size = 0
        if outcome.body is not None:
            # The coding Capture.content_coding names (the page memo is keyed by it).
            content = decode_body(outcome.body, last_header(outcome.headers,
                                                            "content-encoding"),
                                  self.settings.max_decoded)
            size = outcome.body.seek(0, 2)
            outcome.body.seek(0)
        return Capture(
            url=url,
            final_url=outcome.url,
            status=outcome.status or 0,
            hops=tuple(hops),
            content=content,
            content_type=last_header(outcome.headers, "content-type"),
            payload_digest=outcome.digest,
            captured_at=outcome.captured_at,
            attempts=attempts,
            truncated=outcome.truncated,
            elapsed=time.monotonic() - started,
            body_bytes=size,
        )

    async def _archive(self, outcome: _Outcome) -> Hop:
        if self.writer is None or outcome.body is None:
            return _hop(outcome, None, False)
        writer, body = self.writer, outcome.body
        write = functools.partial(
            writer.write_exchange,
            url=outcome.url,
            request_head=outcome.request_head,
            response_head=outcome.response_head,
            body=body,
            remote_ip=outcome.remote_ip,
            captured_at=outcome.captured_at,
            truncated=outcome.truncated,
            # Hashed as it arrived (``_read_body``), when the read ended cleanly (a write that
            # failed half way would leave the spool and the hash apart).
            payload_sha256=outcome.digest if outcome.truncated is None and outcome.digest
            else None,
        )
        # A page is written on the event loop (a thread hop would cost more than the write);
        # a large body in a worker thread, where compressing it does not hold other fetches.
        size = body.seek(0, 2)
        body.seek(0)
        exchange = write() if size < _WRITE_ON_LOOP_BYTES else await asyncio.to_thread(write)
        outcome.digest = exchange.payload_digest
        return _hop(outcome, exchange.response, exchange.revisit, exchange.response_sha256)

    async def _precheck(self, url: str,
                        parsed: httpx.URL | None = None) -> tuple[Verdict, str] | None:
        """The guard's verdict on ``url``'s host before any request (see ``archiver.guard``).
        Through a proxy the name is not resolved here: the proxy resolves it (a researcher
        may reach a geo-blocked site only that way), so only literal addresses and loopback
        names can be refused. ``url`` has its host in the parsed form (``_fetchable``), the
        one the request is sent to; ``parsed`` is ``url`` parsed, when the caller has it."""
        if self.guard.allow_private:
            return None
        if parsed is None:
            parsed = _parse(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if proxy_for(url, self._proxies) is not None:
            why = refusal_without_dns(self.guard, parsed.host, port)
            return (Verdict.PRIVATE_ADDRESS, why) if why is not None else None
        # A name whose addresses all passed a moment ago is not resolved again for every URL
        # (a thread hop each): the pre-check only words refusals early, and the connection
        # itself is always made to an address the guard has just checked (GuardedBackend).
        key = (parsed.host, port)
        if self._resolved.get(key, 0.0) > time.monotonic():
            return None
        try:
            # A timeout scope rather than wait_for: no task per URL (an address literal is
            # checked without awaiting anything).
            async with asyncio.timeout(self.settings.timeout):
                await self.guard.resolve(parsed.host, port)
        except AddressRefused as exc:
            return Verdict.PRIVATE_ADDRESS, exc.reason
        except NameNotResolved as exc:
            return Verdict.DNS_ERROR, exc.reason
        except TimeoutError:
            return Verdict.DNS_ERROR, f"{parsed.host}: name resolution timed out"
        self._resolved[key] = time.monotonic() + _PRECHECK_STANDS
        return None

    # ── one attempt ──────────────────────────────────────────────────────────

    def _gate(self, host: str, url: str) -> _HostGate:
        """The gate of ``host`` (a name, with ``:port`` when the URL names one: servers on one
        address are told apart, as outage detection does), the host of ``url``; leased from
        the worker that owns it, if another does (``leases``)."""
        gate = self._hosts.get(host)
        if gate is None:
            owner = self.leases.owner(url) if self.leases is not None else None
            if owner is None:
                return self._own_gate(host)
            assert self.leases is not None
            settings = self.settings
            gate = self._hosts[host] = _LeasedGate(settings.per_host, settings.host_interval,
                                                   host, settings.host_give_up, self.leases,
                                                   owner)
        return gate

    def _own_gate(self, host: str) -> _HostGate:
        """The gate of ``host``, one of this process's own hosts (made when first asked)."""
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate(self.settings.per_host,
                                                 self.settings.host_interval, host,
                                                 self.settings.host_give_up)
        return gate

    def lend(self, host: str) -> _Slot:
        """A turn of the gate of ``host``, one of this process's own hosts, for a request
        another worker makes (``GateLeases.acquire``)."""
        return self._own_gate(host).slot()

    def record_lent(self, host: str, kind: str, url: str, counts: bool) -> None:
        """Count how a request another worker made with a turn of ``host``'s gate (``lend``)
        ended, as for a request of this process's own (``GateLeases.record``)."""
        gate = self._hosts.get(host)
        if gate is not None:
            gate.record(kind, url, counts=counts)

    def decided_offline(self, url: str) -> bool:
        """True when ``fetch(url)`` ends before any network use: not a fetchable http(s) URL,
        or a host the guard refuses by its literal address or loopback name."""
        plain = plain_host_port(url)
        if plain is None:
            parsed, problem = _parsed(url)
            if problem is not None:
                return True
            assert parsed is not None
            plain = parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)
        if self.guard.allow_private:
            return False
        return refusal_without_dns(self.guard, *plain) is not None

    def gave_up(self, url: str) -> bool:
        """True when ``url``'s host was given up for this run (see ``HostGaveUp``)."""
        try:
            return self._gate(_gate_key(_parse(url)), url).given_up
        except (httpx.InvalidURL, ValueError, TypeError):
            return False

    async def _attempt(self, url: str, target: httpx.URL, gate: _HostGate, jar: httpx.Cookies,
                       budget: _Budget, *, first: bool = False) -> _Outcome:
        """One request for ``url`` (``target`` is it parsed) through ``gate`` (``first``:
        ahead of the requests waiting there, ``_HostGate.slot``)."""
        assert self._global is not None, "use 'async with Fetcher'"
        client = self._client_for(target.host)
        trace = PhaseTrace()
        # What client.build_request makes of this request, without merging an empty base
        # URL, query, cookie jar and header update into copies of the client's for each one.
        request = client.get_request(target, {"trace": trace,
                                              "timeout": client.timeout.as_dict()})
        if jar:  # cookielib is slow even with nothing to add
            jar.set_cookie_header(request)
        outcome: _Outcome | None = None
        response: httpx.Response | None = None
        async with gate.slot(first=first), self._global:
            budget.start()
            remaining = budget.remaining()
            if remaining <= 0:
                return _Outcome("timeout", url=url,
                                reason=f"deadline of {budget.seconds:g}s spent")
            deadline = asyncio.timeout(remaining)
            try:
                async with deadline:
                    response = await client.send_direct(request)
                    outcome = self._begin(request, response)
                    if outcome.kind == "response":
                        if "set-cookie" in response.headers:
                            jar.extract_cookies(response)
                        await self._read_body(response, outcome)
            except ArchiveError:
                # Our disk, not the URL's failure: it stops the run.
                if outcome is not None:
                    outcome.discard()
                raise
            except Exception as exc:  # a URL's failure is a value
                limit = (f"the deadline of {budget.seconds:g}s" if deadline.expired()
                         else f"{self.settings.timeout:g}s")
                failure = network_failure(exc, trace.phase, limit=limit)
                if outcome is None or outcome.kind != "response":
                    return _Outcome(failure.verdict.value, url=url, reason=failure.reason)
                # The head arrived: what was received is kept, marked as cut (WARC-Truncated);
                # the reason goes to the attempt log, which says why the answer was retried.
                outcome.truncated = "time" if failure.verdict is Verdict.TIMEOUT \
                    else "disconnect"
                outcome.reason = failure.reason if not deadline.expired() else (
                    f"the body did not finish within the deadline of {budget.seconds:g}s")
            except BaseException:
                # Cancelled (the run's deadline, Ctrl-C) after the head: nobody will read
                # the body spooled so far; its file is closed now, not by the collector.
                if outcome is not None:
                    outcome.discard()
                raise
            finally:
                if response is not None and not response.is_closed:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(5):
                            await response.aclose()
        assert outcome is not None
        if outcome.body is not None:
            outcome.digest = "sha256:" + outcome.sha256.hexdigest()
        return outcome

    def _begin(self, request: httpx.Request, response: httpx.Response) -> _Outcome:
        """The outcome for a response whose head has arrived (body not read yet)."""
        url = str(request.url)
        head = _response_head(response)
        if len(head) > self.settings.max_header_bytes:
            return _Outcome("connection_error", url=url, status=response.status_code,
                            reason=f"response headers larger than "
                                   f"{self.settings.max_header_bytes} bytes")
        headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in _raw_headers(response))
        return _Outcome(
            "response",
            url=url,
            status=response.status_code,
            # httpx's lookup decodes every header to choose an encoding: only when needed.
            retry_after=response.headers.get("retry-after")
            if any(k.lower() == "retry-after" for k, _ in headers) else None,
            request_head=_request_head(request),
            response_head=head,
            headers=headers,
            body=tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY),
            remote_ip=_remote_ip(response),
            # Read now, while the connection that carried this answer is still open.
            tls=tls_session(response.extensions.get("network_stream")),
        )

    async def _read_body(self, response: httpx.Response, outcome: _Outcome) -> None:
        assert outcome.body is not None
        body, sha256 = outcome.body, outcome.sha256  # hashed as written: read once
        room = self.settings.max_body
        # The transport's stream as ``aiter_raw`` reads it (the chunks as they came; a
        # failure carries its request), closed at the end as ``aiter_raw`` closes it.
        response.is_stream_consumed = True
        try:
            async for chunk in response.stream:  # type: ignore[union-attr]
                if len(chunk) > room:
                    _spool(body, chunk[:room])
                    sha256.update(chunk[:room])
                    outcome.truncated = "length"
                    return
                _spool(body, chunk)
                sha256.update(chunk)
                room -= len(chunk)
        except httpx.RequestError as exc:
            exc.request = response.request
            raise
        await response.aclose()


# ── helpers ─────────────────────────────────────────────────────────────────

#: Turns of the event loop an answer waits, once its request has given back its turn of the
#: host's gate, before it is archived and judged: what the request that takes the turn needs
#: to be written to its socket (the gate, the connection pool, the transport's writer). The
#: speed benchmark's nginx log (2,000 URLs at 100 ms): each host's requests took 2.41 s with
#: none, 2.23 with two, 2.19 with four, 2.20 with six (the limit is 2.1).
_TURNS_TO_SEND = 4


def _spool(body: IO[bytes], data: bytes) -> None:
    """``body.write(data)``; a body past ``_SPOOL_IN_MEMORY`` goes to the system's temporary
    folder, and that folder full is ``ArchiveError`` naming it (our disk, not the URL's
    failure: read as one, it made every long page "cut (connection closed)")."""
    try:
        body.write(data)
    except OSError as exc:
        raise ArchiveError(f"{tempfile.gettempdir()}: cannot hold a page's body while it is "
                           f"read: {exc.strerror or exc}") from exc


# ``httpx.URL(url)``, remembered for the last URLs: one URL is read by the pre-check of
# ``_fetchable``, the host gate, the proxy rule and the request (httpx's parser looks at every
# character in Python). URL objects never change; a URL httpx refuses raises every time.
_parse: Callable[[str], httpx.URL] = functools.lru_cache(maxsize=512)(httpx.URL)


#: What ``[fetch] transport = "auto"`` means in this version (see docs/SCALING.md).
AUTO_TRANSPORT = "aiohttp"


#: What httpcore's connection pool needs beyond the fetcher's own imports (its locks and
#: cancel scopes are anyio's), in an order they can be imported one at a time. Requests on
#: the aiohttp transport never reach it.
HTTPCORE_BACKEND = ("sniffio", "anyio._backends._asyncio", "anyio.streams.tls",
                    "anyio.to_thread")


def preload(settings: FetchSettings, *, tls: bool = True) -> None:
    """Import what the fetcher's transport needs now (before worker processes are forked:
    aiohttp's import loads two certificate stores, a quarter of a second of CPU, which the
    workers then share rather than each paying for it). httpcore's backend is imported only
    where the settings send requests through httpcore from the first (its transport, or
    https with HTTP/2 when ``tls`` says there are https URLs); elsewhere only an answer
    aiohttp's parser refuses or a SOCKS proxy needs it, and it is imported then."""
    transport = _transport_of(settings)
    if transport == "aiohttp":
        _import_aiohttp()
        import archiver.aiotransport  # noqa: F401
    if transport != "aiohttp" or (tls and settings.http2):
        import importlib

        for name in HTTPCORE_BACKEND:
            with contextlib.suppress(ImportError):  # another version may not have it
                importlib.import_module(name)


#: A CA file and folder that cannot exist (``/dev/null`` is no folder): no certificate read.
_NO_CA_STORE = os.path.join(os.devnull, "none")


def _import_aiohttp() -> None:
    """Import aiohttp without reading the CA store for its own two default TLS contexts.

    ``aiohttp.connector`` makes them at its import, each loading the system's certificates
    (0.1 s of CPU in all, on the fork server's way to forking the workers). The fetcher never
    uses them: its ``AiohttpPool`` hands its connector ``shared_ssl_context()``, which every
    connection then takes (aiohttp falls back to its defaults only for a request made with
    ``ssl=True``/``False`` on a connector made without a context). Imported with the OpenSSL
    variables naming no store, those defaults trust no certificate: if anything ever used
    the verifying one, its handshakes would fail, never pass unchecked. The environment is
    the process's: changed only while this is the process's one thread (else imported as
    is)."""
    if "aiohttp.connector" in sys.modules or threading.active_count() > 1:
        return
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    try:
        os.environ.update(dict.fromkeys(saved, _NO_CA_STORE))
        import aiohttp.connector  # noqa: F401
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _transport_of(settings: FetchSettings) -> str:
    """``settings.transport`` with ``"auto"`` resolved: ``"httpcore"`` or ``"aiohttp"``."""
    transport = settings.transport
    return AUTO_TRANSPORT if transport == "auto" else transport


def _hop_deadline(gate: _HostGate, budget: _Budget) -> float:
    """The retry loop's deadline: the URL's, or "now" once the host is given up (a URL being
    retried then ends with the timeout it had)."""
    return -1.0 if gate.given_up else budget.deadline


def _gate_key(url: httpx.URL) -> str:
    return f"{url.host}:{url.port}" if url.port else url.host


def gate_key(url: str) -> str:
    """The key of ``url``'s politeness gate (its host and port), or ``""`` for a URL that
    does not parse: what ``archiver.shards`` splits a run's URLs by."""
    try:
        return _gate_key(_parse(url))
    except (httpx.InvalidURL, ValueError, TypeError):
        return ""


def proxy_for(url: str, proxies: dict[str, str] | None = None) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, lower case too), unless ``NO_PROXY`` exempts its host; else ``None``.
    ``NO_PROXY`` is matched against the host as parsed (``archiver.hosts``), so
    ``NO_PROXY=127.0.0.1`` also covers ``http://2130706433/``. IPv6 literal hosts never use a
    proxy (see below). ``proxies`` is ``urllib.request.getproxies_environment()`` read
    earlier (the fetcher reads it once); by default the environment is read now."""
    if proxies is None:
        proxies = urllib.request.getproxies_environment()
    if not proxies:
        return None
    try:
        scheme = _parse(url).scheme
        if not (proxies.get(scheme) or proxies.get("all")):
            return None
        parsed = parse_host(url_host(url))
    except (httpx.InvalidURL, ValueError):
        return None
    if isinstance(parsed.address, ipaddress.IPv6Address):
        # httpcore writes an IPv6 host into the proxy's request line without brackets
        # (GET http://2606:4700::1111/), which a proxy may read as host 2606, port 4700: such
        # hosts go direct, where the guard checks the very address connected to.
        return None
    host = parsed.name
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy:
        return None
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if "no" in proxies and bypass(host, proxies):
        return None
    return proxy


def _invalid(url: str) -> str | None:
    """Why ``url`` is not a fetchable http(s) URL, or ``None``."""
    return _parsed(url)[1]


# The common spelling of a URL: "http" or "https" in lower case, a host of ASCII letters,
# digits, dots and hyphens, an optional port, then nothing but unreserved characters,
# sub-delimiters, "%", ":", "@", "/", "?" and "#". httpx parses such a URL without complaint
# (but for the cases ``plain_host_port`` leaves to it), to the same scheme, the host in
# lower case and the same port; tests/test_fetch_offline.py compares the two.
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9.\-]+)(?::([0-9]{1,5}))?"
                        r"(?:[/?#][A-Za-z0-9\-._~!$&'()*+,;=%:@/?#]*)?")
_IPV4_STYLE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_MAX_PLAIN = 4096


def plain_host_port(url: str) -> tuple[str, int] | None:
    """``url``'s host (lower case) and port (the scheme's default if none) as httpx would
    parse them, read without httpx when ``url`` is spelled the common way (an http(s) URL
    that httpx parses); ``None`` for any other spelling (then ask httpx: ``_parsed``)."""
    if len(url) > _MAX_PLAIN:
        return None
    match = _PLAIN_URL.fullmatch(url)
    if match is None:
        return None
    scheme, host, digits = match.groups()
    host = host.lower()
    if "xn--" in host:  # httpx decodes IDNA labels (and may refuse them)
        return None
    if _IPV4_STYLE.fullmatch(host):  # httpx checks an address of this shape
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return None
    default = 443 if scheme == "https" else 80
    if not digits:
        return host, default
    port = int(digits)
    if port > 65535:
        return None
    return host, port or default


def _parsed(url: str) -> tuple[httpx.URL | None, str | None]:
    """``(url parsed, None)`` for a fetchable http(s) URL, else ``(None, why not)``."""
    if not isinstance(url, str) or not url.strip():
        return None, "empty URL"
    if any(c in url for c in "\r\n\t "):
        return None, f"{url!r}: contains whitespace"
    try:
        parsed = _parse(url)
        # The host is decoded (IDNA) when read, and that can fail too (``xn--localhost``).
        scheme, host = parsed.scheme, parsed.host
    except (httpx.InvalidURL, ValueError, TypeError) as exc:  # UnicodeError is a ValueError
        return None, f"{url!r}: cannot be parsed ({exc})"
    if scheme not in ("http", "https"):
        return None, f"{url!r}: not an http(s) URL"
    if not host:
        return None, f"{url!r}: no host"
    return parsed, None


def _fetchable(url: str) -> tuple[str | None, str | None]:
    """``(url with its host as browsers read it, None)``, or ``(None, why it cannot be
    fetched)``. Every guard decision and the request itself use the returned form, so a host
    spelled ``0x7f.1`` is both checked and fetched as ``127.0.0.1``."""
    try:
        canonical = canonical_url(url)
    except ValueError as exc:  # HostError included
        # httpx's reading of the URL names most problems best (scheme, port, ...).
        why = "not a valid host name" if isinstance(exc, HostError) else "cannot be parsed"
        return None, _invalid(url) or f"{url!r}: {why} ({exc})"
    # httpx may refuse what browsers read (fullwidth digits), so it judges the parsed form.
    problem = _invalid(canonical)
    return (None, problem) if problem is not None else (canonical, None)


def _next_url(base: str, location: str) -> str | None:
    """Where a redirect's ``Location`` leads from ``base``, joined as text: the next hop's
    ``_fetchable`` then reads its host as browsers do (``0177.0.0.1`` is ``127.0.0.1``, and
    refused as such, not rejected as unparseable). Backslashes count as slashes, as browsers
    read them in http(s) URLs. ``None`` when it cannot be joined."""
    from urllib.parse import urljoin

    try:
        joined = urljoin(base, location.strip().replace("\\", "/"))
    except ValueError:
        return None
    return joined.split("#", 1)[0] or None


def _hop(outcome: _Outcome, warc: WarcRef | None, revisit: bool,
         record_sha256: str | None = None) -> Hop:
    return Hop(url=outcome.url, status=outcome.status or 0, headers=outcome.headers,
               warc=warc, revisit=revisit, remote_ip=outcome.remote_ip, tls=outcome.tls,
               request_headers=request_headers(outcome.request_head),
               record_sha256=record_sha256)


def _request_head(request: httpx.Request) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in request.headers.raw]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _response_head(response: httpx.Response) -> bytes:
    # WARC readers parse HTTP/1.x heads only: HTTP/2 answers get an HTTP/1.1 status line.
    protocol = b"HTTP/1.0" if response.http_version == "HTTP/1.0" else b"HTTP/1.1"
    reason = response.extensions.get("reason_phrase") or b""
    if not reason:
        try:
            reason = http.HTTPStatus(response.status_code).phrase.encode("ascii")
        except ValueError:
            reason = b""
    status = protocol + b" " + str(response.status_code).encode("ascii")
    lines = [status + (b" " + reason if reason else b"")]
    lines += [name + b": " + value for name, value in _raw_headers(response)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


_RAW_HEADERS = "archiver.raw_headers"


async def _keep_raw_headers(response: httpx.Response) -> None:
    """Response hook: keep the headers as received, then hide ``Location`` from httpx.

    httpx builds the next request of a redirect even when not following it, and raises on a
    ``Location`` it cannot parse (``mailto:``, garbage), which would lose the whole answer.
    Redirects are followed by the fetcher from the kept copy instead.
    """
    response.extensions[_RAW_HEADERS] = list(response.headers.raw)
    if "location" in response.headers:
        del response.headers["location"]


def _raw_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return response.extensions.get(_RAW_HEADERS) or list(response.headers.raw)


def _remote_ip(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    try:
        address = stream.get_extra_info("server_addr") if stream is not None else None
    except Exception:  # informative only
        return None
    return str(address[0]) if address else None


def _digest_of(body: IO[bytes]) -> str:
    """The SHA-256 of a whole spooled body (for bodies not hashed as they were written)."""
    body.seek(0)
    sha = hashlib.sha256()  # the same label and form as warc.payload_digest
    for chunk in iter(lambda: body.read(1 << 20), b""):
        sha.update(chunk)
    body.seek(0)
    return "sha256:" + sha.hexdigest()


class Phase(enum.StrEnum):
    """How far one HTTP exchange got, in order. A failure is judged by the phase it struck
    in, never by the exception's class name or message (see ``network_failure``)."""

    CONNECT = "connect"  # name resolution and TCP connection (or waiting for a pooled one)
    TLS = "tls"  # the TLS handshake
    REQUEST = "request"  # sending the request
    WAITING = "waiting"  # request sent, the response head not (completely) received
    BODY = "body"  # the response head arrived, reading the body

    @property
    def sent(self) -> bool:
        """Whether the server may have received the request (a POST must not be resent)."""
        return self in (Phase.REQUEST, Phase.WAITING, Phase.BODY)


class PhaseTrace:
    """httpcore's ``trace`` extension for one request, following its phase: pass it as
    ``extensions={"trace": tracker}`` and read ``phase`` when an exception arrives.

    httpcore announces each step (``connection.connect_tcp.started``,
    ``connection.start_tls.started``, ``http11.send_request_headers.started``,
    ``http2.receive_response_headers.complete``, ...); through a proxy the steps of the
    CONNECT tunnel pass by first, and the request's own steps overwrite them.
    """

    _STEPS: ClassVar[dict[str, Phase]] = {
        "connect_tcp.started": Phase.CONNECT,
        "start_tls.started": Phase.TLS,
        "send_connection_init.started": Phase.REQUEST,
        "send_request_headers.started": Phase.REQUEST,
        "receive_response_headers.started": Phase.WAITING,
        "receive_response_headers.complete": Phase.BODY,
        "receive_response_body.started": Phase.BODY,
    }

    def __init__(self) -> None:
        self.phase = Phase.CONNECT
        # False until httpcore reports a step: a transport that does not trace (a test's
        # mock) leaves the phase unknown, and a caller must then assume the worst.
        self.traced = False

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.traced = True
        phase = self._STEPS.get(event.split(".", 1)[-1])
        if phase is not None:
            self.phase = phase


@dataclass(frozen=True)
class NetworkFailure:
    """What went wrong with one exchange: ``verdict`` (a network-level verdict,
    ``invalid_url`` or ``private_address``), a short human ``reason`` and the ``phase``."""

    verdict: Verdict
    reason: str
    phase: Phase


_TIMEOUTS = {
    Phase.CONNECT: "no connection within {limit}",
    Phase.TLS: "the TLS handshake did not finish within {limit}",
    Phase.REQUEST: "the request could not be sent within {limit}",
    Phase.WAITING: "no answer within {limit} (the request was sent)",
    Phase.BODY: "the body stalled: nothing more within {limit}",
}
_DROPS = {
    Phase.CONNECT: "cannot connect",
    Phase.TLS: "the connection was closed during the TLS handshake",
    Phase.REQUEST: "the connection was closed while the request was sent",
    Phase.WAITING: "the connection was closed before an answer",
    Phase.BODY: "the connection was closed in the middle of the body",
}
# Not failures of TLS itself: "no data yet" (left as the context of a timeout by the TLS
# layer), and the peer closing or vanishing, which is a dropped connection.
_NOT_TLS = (ssl.SSLWantReadError, ssl.SSLWantWriteError, ssl.SSLZeroReturnError,
            ssl.SSLEOFError, ssl.SSLSyscallError)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it was raised from, wrapper by wrapper: ``__cause__``, or the
    exception a wrapper was built around (httpcore wraps with ``ConnectError(exc)`` and its
    pool re-raises ``from None``), and each member of an exception group.

    ``__context__`` is deliberately not followed: it is whatever was being handled when
    ``exc`` was raised, not its cause. A read timeout over TLS has an ``SSLWantReadError``
    there ("The operation did not complete (read)"), which once made it a ``tls_error``.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        wrapped = current.args[0] if current.args else None
        if current.__cause__ is not None:
            pending.append(current.__cause__)
        elif isinstance(wrapped, BaseException):
            pending.append(wrapped)


def network_failure(exc: BaseException, phase: Phase, *, limit: str) -> NetworkFailure:
    """The one mapping from an exception of one exchange to a verdict and reason.

    Decided by what happened, in this order: the address guard's refusals; URLs httpx cannot
    send; a timeout (in any phase, including a TLS handshake that never finishes: the server
    said nothing about TLS, it did not answer; retried); a TLS failure proper (a certificate
    or protocol alert); a name that does not resolve; a refused connection; else the
    connection dropped, worded by phase. ``limit`` words the time limit ("10s", "the deadline
    of 60s"). The fetcher, its probes and the Internet Archive client all use this.
    """
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, AddressRefused):
            return NetworkFailure(Verdict.PRIVATE_ADDRESS, cause.reason, phase)
        if isinstance(cause, NameNotResolved):
            return NetworkFailure(Verdict.DNS_ERROR, cause.reason, phase)
        if isinstance(cause, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return NetworkFailure(Verdict.INVALID_URL, _short(cause), phase)
    if any(isinstance(c, TimeoutError | httpx.TimeoutException | httpcore.TimeoutException)
           for c in causes):
        return NetworkFailure(Verdict.TIMEOUT, _TIMEOUTS[phase].format(limit=limit), phase)
    tls = next((c for c in causes if isinstance(c, ssl.CertificateError)
                or (isinstance(c, ssl.SSLError) and not isinstance(c, _NOT_TLS))), None)
    if tls is not None:
        what = "TLS handshake failed" if phase is Phase.TLS else "TLS failed"
        return NetworkFailure(Verdict.TLS_ERROR, f"{what}: {_short(tls)}", phase)
    if phase is Phase.CONNECT:
        for cause in causes:
            if isinstance(cause, socket.gaierror):
                return NetworkFailure(Verdict.DNS_ERROR, f"name does not resolve: {_short(cause)}",
                                      phase)
            if isinstance(cause, ConnectionRefusedError):
                return NetworkFailure(Verdict.CONNECTION_ERROR, "connection refused", phase)
    detail = _short(causes[-1])
    if not isinstance(exc, httpx.TransportError | httpcore.NetworkError
                      | httpcore.ProtocolError | OSError):
        log.warning("unexpected error in phase %s", phase, exc_info=exc)
        detail = f"unexpected {type(exc).__name__}: {_short(exc)}"
    return NetworkFailure(Verdict.CONNECTION_ERROR, f"{_DROPS[phase]}: {detail}", phase)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ── bounded decoding ────────────────────────────────────────────────────────


def decode_body(raw: IO[bytes], content_encoding: str | None, cap: int) -> bytes:
    """The body with its ``Content-Encoding`` undone, at most ``cap`` bytes.

    Decoding is incremental and every step's output is bounded, so a small compressed body
    that expands enormously costs at most ``cap`` bytes of memory. Unknown codings give
    ``b""`` (nothing can be judged); a corrupt or cut stream gives what decoded before the
    damage.
    """
    if cap >= 0 and (not content_encoding or content_encoding.strip().lower() == "identity"):
        # Nothing to undo: the bytes as they are, read at once rather than piece by piece.
        try:
            raw.seek(0)
            return raw.read(cap)
        except Exception as exc:  # as decoded_chunks does: what could be read (nothing)
            log.debug("reading the body stopped: %s", exc)
            return b""
        finally:
            raw.seek(0)
    out = bytearray()
    for piece in decoded_chunks(raw, content_encoding):
        out += piece[: cap - len(out)]
        if len(out) >= cap:
            break
    return bytes(out)


def decoded_chunks(raw: IO[bytes], content_encoding: str | None) -> Iterator[bytes]:
    """The body with its ``Content-Encoding`` undone, as bounded chunks (for writing a body
    of any decoded size without holding it: ``show --raw``). Unknown codings give nothing; a
    corrupt or cut stream ends where the damage begins."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    raw.seek(0)
    stream: Iterator[bytes] = iter(lambda: raw.read(_DECODE_CHUNK), b"")
    for coding in reversed(codings):
        stage = _STAGES.get(coding)
        if stage is None:
            return
        stream = stage(stream)
    try:
        yield from stream
    except Exception as exc:  # each codec has its own error class
        log.debug("decoding stopped: %s", exc)
    finally:
        raw.seek(0)


def _zlib_stage(wbits: int) -> Callable[[Iterator[bytes]], Iterator[bytes]]:
    def stage(upstream: Iterator[bytes]) -> Iterator[bytes]:
        decomp = zlib.decompressobj(wbits)
        for data in upstream:
            held = False  # output bounded by _DECODE_CHUNK: zlib may still hold some back
            while data or held:
                out = decomp.decompress(data, _DECODE_CHUNK)
                yield out
                held = len(out) == _DECODE_CHUNK
                if decomp.eof:
                    # gzip may hold several members; start again on what follows.
                    data = decomp.unused_data
                    decomp = zlib.decompressobj(wbits)
                    held = False
                else:
                    # Not at the end: only here is unconsumed_tail the input left over.
                    data = decomp.unconsumed_tail
    return stage


def _deflate_stage(upstream: Iterator[bytes]) -> Iterator[bytes]:
    # "deflate" should be zlib-wrapped, but many servers send raw deflate.
    first = next(upstream, b"")
    wbits = 15
    try:
        zlib.decompressobj(15).decompress(first[:64], 1)
    except zlib.error:
        wbits = -15
    yield from _zlib_stage(wbits)(_prepend(first, upstream))


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _brotli_stage(upstream: Iterator[bytes]) -> Iterator[bytes]:
    import brotli

    decomp = brotli.Decompressor()
    if hasattr(decomp, "can_accept_more_data"):
        # Brotli >= 1.2: each step's output can be bounded exactly.
        for data in upstream:
            yield decomp.process(data, output_buffer_limit=_DECODE_CHUNK)
            while not decomp.can_accept_more_data():
                yield decomp.process(b"", output_buffer_limit=_DECODE_CHUNK)
        return
    # brotlipy/brotlicffi (pywb pulls in brotlipy, which shadows Brotli's module): no output
    # bound, so feed small pieces; one piece expands to a few MB at most in practice.
    step = getattr(decomp, "decompress", None) or decomp.process
    for data in upstream:
        for i in range(0, len(data), 64):
            yield step(data[i:i + 64])


class _IterReader:
    def __init__(self, upstream: Iterator[bytes]) -> None:
        self._upstream = upstream
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            try:
                self._buffer = next(self._upstream)
            except StopIteration:
                return b""
        size = len(self._buffer) if size < 0 else size
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        return piece


def _zstd_stage(upstream: Iterator[bytes]) -> Iterator[bytes]:
    import zstandard

    source = cast(IO[bytes], _IterReader(upstream))  # it has the read() that zstd calls
    reader = zstandard.ZstdDecompressor().stream_reader(source,
                                                        read_across_frames=True)
    while True:
        piece = reader.read(_DECODE_CHUNK)
        if not piece:
            return
        yield piece


_STAGES: dict[str, Callable[[Iterator[bytes]], Iterator[bytes]]] = {
    "gzip": _zlib_stage(31),
    "x-gzip": _zlib_stage(31),
    "deflate": _deflate_stage,
    "br": _brotli_stage,
    "zstd": _zstd_stage,
}
# The Content-Encodings ``decode_body`` undoes; it gives b"" for any other.
DECODABLE = frozenset(_STAGES) | {"identity"}
