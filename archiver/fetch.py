"""The only network code: fetch cited URLs politely, within bounds, into the WARC writer.

``Fetcher`` wraps one ``httpx.AsyncClient`` (HTTP/1.1, and HTTP/2 where the server offers it;
TLS trust and proxies from the environment as httpx does by default). For each URL it:

* refuses what is not an http(s) URL (``invalid_url``) and, unless private networks are
  allowed, any host that resolves to a loopback/private/link-local/... address
  (``private_address``; see ``archiver.guard``), before every hop and again at connection;
* follows redirects itself, hop by hop (at most ``max_redirects``), archiving every hop; a
  redirect back to a URL already visited, too many redirects, or a redirect to a non-http(s)
  URL end the fetch as a ``FetchFailure`` with verdict ``invalid_url`` and a reason
  ("redirect loop: ..."), with the hops archived so far. ``invalid_url`` is used rather than
  a network verdict so that a loop never counts towards outage detection;
* retries what ``archiver.retry`` says may be cured (timeouts, drops, 408, 429, 5xx), with
  backoff and ``Retry-After``; a 429/5xx that outlasts the retries is a ``Capture`` with that
  status and is archived (only the last attempt's answer is kept);
* streams the body as received (``aiter_raw``: Content-Encoding intact) into a spooled
  temporary file, up to ``max_body`` bytes (then ``truncated="length"``), within a total
  deadline per URL that covers every attempt, wait and hop (cut: ``truncated="time"``, or a
  ``timeout`` failure when no answer arrived). The deadline starts when the URL's first
  request is allowed to start, so queueing behind politeness limits does not eat it;
* decodes the final body for ``Capture.content`` incrementally, never beyond
  ``max_decoded`` bytes (a gzip bomb costs at most that much memory).

Politeness: at most ``concurrency`` requests in flight, at most ``per_host`` to one host, and
``host_interval`` seconds between request starts to one host. Waits between retries hold
no slot.

A URL's failure is a value (``FetchFailure``), never an exception; only a failure to write
the archive (``ArchiveError``) escapes, because it stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http
import http.cookiejar
import ipaddress
import logging
import ssl
import tempfile
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any, cast

import httpcore
import httpx

from archiver.config import FetchSettings
from archiver.guard import (
    AddressGuard,
    AddressRefused,
    GuardedBackend,
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
    utcnow,
)
from archiver.provenance import request_headers, tls_session
from archiver.retry import RetryPolicy, run_with_retries
from archiver.warc import WarcWriter

__all__ = ["Attempt", "Fetcher", "decode_body"]

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SPOOL_IN_MEMORY = 256 * 1024
_DECODE_CHUNK = 64 * 1024


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


class _HostGate:
    """``per_host`` requests at a time to one host, starts spaced by ``interval`` seconds."""

    def __init__(self, per_host: int, interval: float) -> None:
        self._slots = asyncio.Semaphore(per_host)
        self._lock = asyncio.Lock()
        self._interval = interval
        self._next_start = 0.0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            if self._interval > 0:
                async with self._lock:
                    now = time.monotonic()
                    if self._next_start > now:
                        await asyncio.sleep(self._next_start - now)
                    self._next_start = max(now, self._next_start) + self._interval
            yield


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a connection pool whose network backend is the address guard.

    httpx has no public hook for httpcore's ``network_backend``, so the pool is rebuilt with
    the same settings httpx would use plus the guarded backend.
    """

    def __init__(self, guard: AddressGuard, *, ssl_context: ssl.SSLContext, http2: bool,
                 limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, http2=http2, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedBackend(guard),
        )


def _refuse_all_cookies() -> http.cookiejar.CookieJar:
    # The client's shared jar must stay empty: cookies live per fetch (see Fetcher._fetch),
    # so one site's session never leaks into another URL's requests.
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


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
        self.guard = guard or AddressGuard(allow_private=settings.allow_private_networks)
        self._policy = RetryPolicy(
            retries=settings.retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            retry_after_cap=settings.retry_after_cap,
        )
        self._hosts: dict[str, _HostGate] = {}
        self._global: asyncio.Semaphore | None = None
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._ssl_context: ssl.SSLContext | None = None

    async def __aenter__(self) -> Fetcher:
        self._ssl_context = httpx.create_ssl_context(trust_env=True)
        self._global = asyncio.Semaphore(self.settings.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    def _client_for(self, host: str) -> httpx.AsyncClient:
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
                proxy = proxy_for(f"{scheme}://{host}/")
                if proxy is not None:
                    mounts[f"{scheme}://"] = httpx.AsyncHTTPTransport(
                        proxy=proxy, verify=self._ssl_context, http2=settings.http2,
                        limits=limits)
            client = self._clients[host] = httpx.AsyncClient(
                transport=transport,
                mounts=mounts,
                trust_env=True,
                http2=settings.http2,
                limits=limits,
                follow_redirects=False,
                timeout=httpx.Timeout(settings.timeout),
                headers={"User-Agent": settings.user_agent},
                cookies=_refuse_all_cookies(),
                event_hooks={"response": [_keep_raw_headers]},
            )
        return client

    # ── public ───────────────────────────────────────────────────────────────

    async def fetch(self, url: str) -> FetchResult:
        """Fetch ``url`` (following and archiving redirects). Never raises for the URL's
        failure; raises ``ArchiveError`` only when the archive cannot be written."""
        return await self._fetch(url, archive=True, policy=self._policy)

    async def probe(self, url: str) -> FetchResult:
        """Like ``fetch`` with the same bounds and guard, but not archived and not retried."""
        return await self._fetch(url, archive=False, policy=replace(self._policy, retries=0))

    async def fetch_all(
        self,
        urls: Iterable[str],
        on_result: Callable[[str, FetchResult], None] | None = None,
    ) -> dict[str, FetchResult]:
        """Fetch every distinct URL concurrently under the politeness limits; ``on_result``
        is called as each finishes. Returns url → result. An ``ArchiveError`` cancels the
        rest and propagates."""
        results: dict[str, FetchResult] = {}

        async def one(url: str) -> None:
            result = await self.fetch(url)
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
            refusal = await self._precheck(current)
            if refusal is not None:
                verdict, reason = refusal
                return FetchFailure(url, verdict, reason, attempts=attempts, hops=tuple(hops))
            visited.append(current)

            def attempt(number: int, target: str = current) -> Any:
                return self._attempt(target, jar, budget)

            def report(number: int, outcome: _Outcome, waited: float,
                       target: str = current) -> None:
                if self.on_attempt is not None:
                    self.on_attempt(Attempt(
                        url=target, number=number, outcome=outcome.kind, status=outcome.status,
                        error=outcome.reason or None, waited=waited,
                        at=outcome.captured_at))

            outcome, count = await run_with_retries(
                attempt, policy, deadline=lambda: budget.deadline, on_outcome=report,
                cleanup=_Outcome.discard,
            )
            attempts += count
            if outcome.kind != "response":
                return FetchFailure(url, Verdict(outcome.kind), outcome.reason,
                                    attempts=attempts, hops=tuple(hops))
            try:
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
        headers = dict((k.lower(), v) for k, v in outcome.headers)
        content = b""
        if outcome.body is not None:
            content = decode_body(outcome.body, headers.get("content-encoding"),
                                  self.settings.max_decoded)
        return Capture(
            url=url,
            final_url=outcome.url,
            status=outcome.status or 0,
            hops=tuple(hops),
            content=content,
            content_type=headers.get("content-type"),
            payload_digest=outcome.digest,
            captured_at=outcome.captured_at,
            attempts=attempts,
            truncated=outcome.truncated,
            elapsed=time.monotonic() - started,
        )

    async def _archive(self, outcome: _Outcome) -> Hop:
        if self.writer is None or outcome.body is None:
            return _hop(outcome, None, False)
        writer, body = self.writer, outcome.body
        exchange = await asyncio.to_thread(
            writer.write_exchange,
            url=outcome.url,
            request_head=outcome.request_head,
            response_head=outcome.response_head,
            body=body,
            remote_ip=outcome.remote_ip,
            captured_at=outcome.captured_at,
            truncated=outcome.truncated,
        )
        outcome.digest = exchange.payload_digest
        return _hop(outcome, exchange.response, exchange.revisit, exchange.response_sha256)

    async def _precheck(self, url: str) -> tuple[Verdict, str] | None:
        """The guard's verdict on ``url``'s host before any request (see ``archiver.guard``).
        Through a proxy the name is not resolved here: the proxy resolves it (a researcher
        may reach a geo-blocked site only that way), so only literal addresses and loopback
        names can be refused. ``url`` has its host in the parsed form (``_fetchable``), the
        one the request is sent to."""
        if self.guard.allow_private:
            return None
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if proxy_for(url) is not None:
            why = refusal_without_dns(self.guard, parsed.host, port)
            return (Verdict.PRIVATE_ADDRESS, why) if why is not None else None
        try:
            await asyncio.wait_for(self.guard.resolve(parsed.host, port),
                                   timeout=self.settings.timeout)
        except AddressRefused as exc:
            return Verdict.PRIVATE_ADDRESS, exc.reason
        except NameNotResolved as exc:
            return Verdict.DNS_ERROR, exc.reason
        except TimeoutError:
            return Verdict.DNS_ERROR, f"{parsed.host}: name resolution timed out"
        return None

    # ── one attempt ──────────────────────────────────────────────────────────

    def _gate(self, host: str) -> _HostGate:
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = _HostGate(self.settings.per_host,
                                                 self.settings.host_interval)
        return gate

    async def _attempt(self, url: str, jar: httpx.Cookies, budget: _Budget) -> _Outcome:
        assert self._global is not None, "use 'async with Fetcher'"
        client = self._client_for(httpx.URL(url).host)
        request = client.build_request("GET", url)
        jar.set_cookie_header(request)
        outcome: _Outcome | None = None
        response: httpx.Response | None = None
        async with self._gate(request.url.host).slot(), self._global:
            budget.start()
            remaining = budget.remaining()
            if remaining <= 0:
                return _Outcome("timeout", url=url,
                                reason=f"deadline of {budget.seconds:g}s spent")
            try:
                async with asyncio.timeout(remaining):
                    response = await client.send(request, stream=True)
                    outcome = self._begin(request, response)
                    if outcome.kind == "response":
                        jar.extract_cookies(response)
                        await self._read_body(response, outcome)
            except TimeoutError:
                if outcome is None:
                    return _Outcome("timeout", url=url, reason=(
                        f"no answer within the deadline of {budget.seconds:g}s"))
                outcome.truncated = "time"
            except Exception as exc:  # a URL's failure is a value
                if outcome is None or outcome.kind != "response":
                    return _failure(url, exc)
                outcome.truncated = "time" if isinstance(exc, httpx.TimeoutException) \
                    else "disconnect"
            finally:
                if response is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(5):
                            await response.aclose()
        assert outcome is not None
        if outcome.body is not None:
            outcome.digest = _digest_of(outcome.body)
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
            retry_after=response.headers.get("retry-after"),
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
        room = self.settings.max_body
        async for chunk in response.aiter_raw():
            if len(chunk) > room:
                outcome.body.write(chunk[:room])
                outcome.truncated = "length"
                return
            outcome.body.write(chunk)
            room -= len(chunk)


# ── helpers ─────────────────────────────────────────────────────────────────


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTP_PROXY``, ``HTTPS_PROXY``,
    ``ALL_PROXY``, lower case too), unless ``NO_PROXY`` exempts its host; else ``None``.
    ``NO_PROXY`` is matched against the host as parsed (``archiver.hosts``), so
    ``NO_PROXY=127.0.0.1`` also covers ``http://2130706433/``. IPv6 literal hosts never use a
    proxy (see below)."""
    proxies = urllib.request.getproxies_environment()
    try:
        scheme = httpx.URL(url).scheme
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
    if not isinstance(url, str) or not url.strip():
        return "empty URL"
    if any(c in url for c in "\r\n\t "):
        return f"{url!r}: contains whitespace"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        return f"{url!r}: cannot be parsed ({exc})"
    if parsed.scheme not in ("http", "https"):
        return f"{url!r}: not an http(s) URL"
    if not parsed.host:
        return f"{url!r}: no host"
    return None


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
    try:
        return str(httpx.URL(base).join(location.strip())).split("#", 1)[0]
    except (httpx.InvalidURL, ValueError, TypeError):
        return None


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
    body.seek(0)
    sha = hashlib.sha256()  # the same label and form as warc.payload_digest
    for chunk in iter(lambda: body.read(1 << 20), b""):
        sha.update(chunk)
    body.seek(0)
    return "sha256:" + sha.hexdigest()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _failure(url: str, exc: Exception) -> _Outcome:
    """Translate an exception from one attempt into a failure outcome (one place)."""
    chain = list(_chain(exc))
    if isinstance(exc, AddressRefused):
        return _Outcome("private_address", url=url, reason=exc.reason)
    if isinstance(exc, NameNotResolved):
        return _Outcome("dns_error", url=url, reason=exc.reason)
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain):
        detail = next(e for e in chain if isinstance(e, ssl.SSLError | ssl.CertificateError))
        return _Outcome("tls_error", url=url, reason=f"TLS failed: {_short(detail)}")
    if isinstance(exc, httpx.TimeoutException):
        return _Outcome("timeout", url=url, reason=f"{type(exc).__name__}: no answer within "
                                                   "the timeout")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return _Outcome("invalid_url", url=url, reason=_short(exc))
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(e, ConnectionRefusedError) for e in chain):
            return _Outcome("connection_error", url=url, reason="connection refused")
        return _Outcome("connection_error", url=url, reason=f"cannot connect: {_short(exc)}")
    if isinstance(exc, httpx.TransportError | OSError):
        return _Outcome("connection_error", url=url, reason=f"connection dropped: {_short(exc)}")
    log.warning("unexpected error fetching %s", url, exc_info=exc)
    return _Outcome("connection_error", url=url,
                    reason=f"unexpected {type(exc).__name__}: {_short(exc)}")


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
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    raw.seek(0)
    stream: Iterator[bytes] = iter(lambda: raw.read(_DECODE_CHUNK), b"")
    for coding in reversed(codings):
        stage = _STAGES.get(coding)
        if stage is None:
            return b""
        stream = stage(stream)
    out = bytearray()
    try:
        for piece in stream:
            out += piece[: cap - len(out)]
            if len(out) >= cap:
                break
    except Exception as exc:  # each codec has its own error class
        log.debug("decoding stopped: %s", exc)
    finally:
        raw.seek(0)
    return bytes(out)


def _zlib_stage(wbits: int) -> Callable[[Iterator[bytes]], Iterator[bytes]]:
    def stage(upstream: Iterator[bytes]) -> Iterator[bytes]:
        decomp = zlib.decompressobj(wbits)
        for data in upstream:
            while data:
                yield decomp.decompress(data, _DECODE_CHUNK)
                if decomp.eof:
                    # gzip may hold several members; start again on what follows.
                    data = decomp.unused_data
                    decomp = zlib.decompressobj(wbits)
                else:
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
