"""An httpx transport on aiohttp: HTTP/1.1 with aiohttp's C parser under the fetcher's client.

httpx stays the client API (requests, responses, hooks, cookies); this transport replaces
what lies under it for routes where HTTP/2 cannot be used (http:// URLs, or ``http2 =
false``), as ``[fetch] transport`` chooses (``archiver.fetch``). It keeps what the httpcore
stack (``archiver.netstream.GuardedBackend`` and its streams) keeps:

* **the address guard on every connection**, redirects included: names are resolved by
  ``AddressGuard.resolve`` (refused or unresolvable names raise its exceptions), and every
  address a connection is about to be made to (an address literal, which aiohttp does not
  resolve, included) is checked again, so the socket connects to a checked address while TLS
  uses the host name for SNI and certificate checks. Connections to a proxy are not guarded
  (the proxy may well be on a private network), as on the httpcore side;
* **phases**: the request's ``trace`` extension (``archiver.fetch.PhaseTrace``) is told the
  steps in httpcore's words: the TCP connection (``connection.connect_tcp.started``), the
  TLS handshake (``connection.start_tls.started``; aiohttp makes the TCP connection and the
  handshake in one step, so the connector here makes them in two), the request sent and the
  answer awaited, the head received. Timeouts are per phase with the request's ``timeout``
  extension: ``connect`` for the TCP connection and, again, for the TLS handshake; ``read``
  between any two reads of the head or the body;
* **exceptions**: aiohttp's are raised as httpx's (``ConnectError``, ``ConnectTimeout``,
  ``ReadError``, ``ReadTimeout``, ``RemoteProtocolError``) from the exception that happened
  (the ``OSError``, ``ssl.SSLError``, ``TimeoutError``), which is what
  ``archiver.fetch.network_failure`` reads; the guard's own refusals pass unchanged;
* **what the WARC and provenance read**: the response's headers as received (names in
  their case, in order, ``raw_headers``), its reason phrase and version, the body as it came
  over the wire (aiohttp's decompression off: Content-Encoding intact), and a
  ``network_stream`` extension answering ``get_extra_info`` for ``ssl_object``,
  ``server_addr`` and ``client_addr`` as ``archiver.netstream`` does;
* **proxies**: a transport made with ``proxy`` (an ``http://`` proxy URL) sends through it,
  CONNECT tunnels for https URLs. SOCKS and https:// proxies stay on httpcore.

aiohttp's own retry of an idempotent request on a dropped connection is off: retries are the
fetcher's (``archiver.retry``), counted and logged. A kept connection with something to read
(the server's close) is not reused, as httpcore's pool drops it.

Answers llhttp refuses before their head is handed out (h11 reads them, or fails them in
its own words) are fetched again on the route's httpcore transport (``AiohttpTransport``'s
``fallback``). Where the two still differ (a Transfer-Encoding other than chunked, which
llhttp reads and h11 refuses; obs-folded values; the wording of a body's parse error; heads
over 100 KB) is listed, as strict xfails, in ``tests/test_aiotransport_hostile.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
import socket
import ssl
import typing
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohappyeyeballs
import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import _EXC_SENTINEL
from aiohttp.http_exceptions import HttpProcessingError
from httpcore._utils import is_socket_readable
from yarl import URL

from archiver import netstream
from archiver.guard import AddressGuard, AddressRefused

__all__ = ["AiohttpPool", "AiohttpTransport"]

Trace = Callable[[str, dict[str, typing.Any]], Awaitable[None]]


class _Exchange:
    """One request as the connector sees it: its trace, and the transport of the connection
    it was given (a response whose body came with its head has released it by the time
    aiohttp returns the response)."""

    __slots__ = ("protocol", "trace", "transport", "tunnel_read", "tunnelling")

    def __init__(self, trace: Trace | None) -> None:
        self.trace = trace
        self.transport: asyncio.BaseTransport | None = None
        self.protocol: _Handler | None = None
        # While a CONNECT tunnel is being opened, and the read timeout for the proxy's
        # answer (aiohttp reads it without one).
        self.tunnelling = False
        self.tunnel_read: float | None = None


# The request being sent, seen by the connector (which aiohttp calls without it).
_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "archiver_aio_exchange", default=None)
# What httpcore's h11 layer says when the server closes before (all of) the answer.
_DISCONNECTED = "Server disconnected without sending a response."
# Response heads as large as httpcore reads (h11's limit there is 100 KB); the fetcher
# refuses heads beyond ``max_header_bytes`` itself.
_MAX_HEAD = 100 * 1024
_NO_EVENT: dict[str, typing.Any] = {}
_ALPN = ["http/1.1"]


async def _step(event: str) -> None:
    exchange = _EXCHANGE.get()
    if exchange is not None and exchange.trace is not None:
        await exchange.trace(event, _NO_EVENT)


class _GuardResolver(AbstractResolver):
    """Names resolved and checked by the guard (``AddressRefused``, ``NameNotResolved``)."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addresses = await self._guard.resolve(host, port)
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for address in addresses]

    async def close(self) -> None:
        return None


class _Handler(ResponseHandler):
    """aiohttp's connection protocol, closing as ``archiver.netstream`` closes: over TLS
    without a ``close_notify`` (a graceful TLS close waits for the peer's, and a peer that
    stopped answering would keep the socket open), and at once when unsent bytes remain.

    It keeps the error the connection was lost with (``lost``: a reset mid-body is told as
    the reset, as httpcore tells it), and a body that the parser finds malformed part way
    (a bad chunk size) fails its reader at once: aiohttp would leave the reader waiting
    (no read timeout either) until the run's deadline."""

    lost: BaseException | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc
        super().connection_lost(exc)

    def set_response_params(self, **params: typing.Any) -> None:
        exchange = _EXCHANGE.get()
        tunnel = exchange is not None and exchange.tunnelling and \
            params.get("read_timeout") is None and exchange.tunnel_read is not None
        if tunnel:
            assert exchange is not None
            params["read_timeout"] = exchange.tunnel_read
        super().set_response_params(**params)
        if tunnel:  # the CONNECT was sent already: the clock starts now
            self.start_timeout()

    def set_exception(self, exc: BaseException,
                      exc_cause: BaseException = _EXC_SENTINEL) -> None:
        payload = self._payload
        if isinstance(exc, HttpProcessingError) and payload is not None \
                and not payload.is_eof() and payload.exception() is None:
            error = aiohttp.ClientPayloadError(exc.message)
            error.__cause__ = exc
            payload.set_exception(error)
        super().set_exception(exc, exc_cause)

    def close(self) -> None:
        transport = self.transport
        if transport is not None and (transport.get_extra_info("ssl_object") is not None
                                      or transport.get_write_buffer_size()):
            self.abort()
        else:
            super().close()


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector with the guard at every connection, the TCP connection and the
    TLS handshake made (and timed, and reported to the trace) one after the other, and
    failures raised as httpx's exceptions."""

    def __init__(self, guard: AddressGuard | None, ssl_context: ssl.SSLContext) -> None:
        super().__init__(
            ssl=ssl_context,
            limit=0,
            limit_per_host=0,
            keepalive_timeout=5.0,
            # Every new connection resolves (and checks) its host again, as GuardedBackend.
            use_dns_cache=False,
            resolver=_GuardResolver(guard) if guard is not None else None,
        )
        self._guard = guard
        self._factory = functools.partial(_Handler, loop=self._loop)  # type: ignore[assignment]

    async def _get(self, key: typing.Any, traces: typing.Any) -> typing.Any:
        # An idle connection with something to read (the server's close that the event loop
        # has not handled yet, or bytes nobody asked for) is not reused: httpcore's pool
        # drops it the same way (``netstream``'s ``is_readable``).
        while True:
            connection = await super()._get(key, traces)
            if connection is None:
                return None
            transport = connection.transport
            if transport is not None and not transport.is_closing() and not \
                    is_socket_readable(transport.get_extra_info("socket")):
                return connection
            connection.close()

    async def connect(self, req: typing.Any, traces: typing.Any,
                      timeout: aiohttp.ClientTimeout) -> typing.Any:
        connection = await super().connect(req, traces, timeout)
        exchange = _EXCHANGE.get()
        if exchange is not None:
            exchange.transport = connection.transport
            protocol = connection.protocol
            exchange.protocol = protocol if isinstance(protocol, _Handler) else None
            if exchange.trace is not None:
                # aiohttp writes a request without a body at once (into the socket's
                # buffer): from here on, a failure strikes once the request may have been
                # received.
                await exchange.trace("http11.send_request_headers.started", _NO_EVENT)
                await exchange.trace("http11.receive_response_headers.started", _NO_EVENT)
        return connection

    async def _wrap_create_connection(  # type: ignore[override]
        self,
        *args: typing.Any,
        addr_infos: list[typing.Any],
        req: typing.Any,
        timeout: aiohttp.ClientTimeout,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: typing.Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        guard = self._guard
        if guard is not None:
            host = req.url.raw_host or ""
            for info in addr_infos:
                address, port = info[4][0], info[4][1]
                why = guard.refusal(host, str(address), int(port))
                if why is not None:
                    raise AddressRefused(why)
        await _step("connection.connect_tcp.started")
        limit = timeout.sock_connect
        try:
            async with asyncio.timeout(limit):
                sock = await aiohappyeyeballs.start_connection(
                    addr_infos=addr_infos, loop=self._loop)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        factory = args[0]
        try:
            transport, protocol = await self._loop.create_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise
        context = kwargs.get("ssl")
        if not context:
            exchange = _EXCHANGE.get()
            if exchange is not None and exchange.tunnelling:
                # To a proxy, for a CONNECT: its steps, as httpcore reports them.
                await _step("http11.send_request_headers.started")
                await _step("http11.receive_response_headers.started")
            return transport, protocol
        await _step("connection.start_tls.started")
        tls = await _start_tls(self._loop, transport, protocol, context,
                               kwargs.get("server_hostname"), limit)
        protocol.connection_made(tls)
        return tls, protocol

    async def _create_proxy_connection(  # type: ignore[override]
        self, req: typing.Any, traces: typing.Any, timeout: aiohttp.ClientTimeout,
    ) -> tuple[asyncio.BaseTransport, ResponseHandler]:
        exchange = _EXCHANGE.get()
        if exchange is None or not req.is_ssl():
            return await super()._create_proxy_connection(req, traces, timeout)
        # A CONNECT tunnel: the proxy's answer read within the read timeout, refused as
        # httpcore refuses it.
        exchange.tunnelling, exchange.tunnel_read = True, timeout.sock_read
        try:
            return await super()._create_proxy_connection(req, traces, timeout)
        except aiohttp.ClientHttpProxyError as exc:
            await _step("http11.receive_response_headers.complete")
            raise httpx.ProxyError(f"{exc.status} {exc.message}") from None
        finally:
            exchange.tunnelling, exchange.tunnel_read = False, None

    async def _start_tls_connection(  # type: ignore[override]
        self,
        underlying_transport: asyncio.Transport,
        req: typing.Any,
        timeout: aiohttp.ClientTimeout,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
    ) -> tuple[asyncio.BaseTransport, ResponseHandler]:
        # TLS to the site through a proxy's CONNECT tunnel.
        await _step("http11.receive_response_headers.complete")
        await _step("connection.start_tls.started")
        protocol = self._factory()
        context = self._get_ssl_context(req)
        assert context is not None
        tls = await _start_tls(self._loop, underlying_transport, protocol, context,
                               req.server_hostname or req.host, timeout.sock_connect)
        protocol.connection_made(tls)
        return tls, protocol


async def _start_tls(loop: asyncio.AbstractEventLoop, transport: asyncio.Transport,
                     protocol: asyncio.BaseProtocol, context: ssl.SSLContext,
                     server_hostname: str | None, limit: float | None) -> asyncio.Transport:
    """``archiver.netstream.handshake`` with its outcomes as httpx's exceptions (a timeout
    ``ConnectTimeout``, a TLS failure or the peer's close ``ConnectError``)."""
    # The protocols httpcore offers on an HTTP/1.1-only route (it sets them on the shared
    # context before every handshake too): the same ClientHello on either transport.
    context.set_alpn_protocols(_ALPN)
    try:
        return await netstream.handshake(loop, transport, protocol, context, server_hostname,
                                         limit)
    except httpcore.ConnectTimeout as exc:
        raise httpx.ConnectTimeout(str(exc)) from exc.__cause__
    except httpcore.ConnectError as exc:
        raise httpx.ConnectError(str(exc)) from exc.__cause__


def _mapped(exc: Exception) -> Exception:
    """aiohttp's exception after the connection was made, as httpx's (raised from
    ``_origin(exc)``), worded as httpcore words the same event where the two agree on it."""
    origin = _origin(exc)
    if isinstance(exc, httpx.HTTPError | AddressRefused):
        return exc
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError is one
        return httpx.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(origin))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(_DISCONNECTED)
    if isinstance(origin, OSError):  # a reset, before or in the middle of the body
        return httpx.ReadError(str(origin))
    if isinstance(exc, aiohttp.ClientPayloadError):
        text = _message(exc)
        cut = _RECEIVED.search(text)
        if cut is not None:
            return httpx.RemoteProtocolError(
                f"{_INCOMPLETE} (received {cut[1]} bytes, expected {cut[2]})")
        if "transfer length" in text:
            return httpx.RemoteProtocolError(f"{_INCOMPLETE} (incomplete chunked read)")
        return httpx.RemoteProtocolError(text)
    if isinstance(exc, aiohttp.ClientError):  # a malformed head, a line too long, ...
        return httpx.RemoteProtocolError(_message(exc))
    return exc


_INCOMPLETE = "peer closed connection without sending complete message body"
_RECEIVED = re.compile(r"received (\d+) of (\d+) bytes")


def _message(exc: BaseException) -> str:
    """The first line of an aiohttp message, without its ``400, message:`` prefix."""
    text = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    found = re.match(r"\d+, message:\s*", text)
    if found is not None:
        text = text[found.end():]
    text = text.strip().split("\n", 1)[0].strip().rstrip(":")
    return text or type(exc).__name__


def _origin(exc: BaseException) -> BaseException | None:
    """What aiohttp wrapped (the OSError, the SSL error), or ``None``: raised from it, the
    httpx exception reads as what happened, not as aiohttp's wrapper."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return exc.certificate_error
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error
    if isinstance(exc, aiohttp.ClientOSError):
        return exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    cause = exc.__cause__
    if isinstance(exc, aiohttp.ClientError):
        return cause if isinstance(cause, OSError) else None
    return exc


class _NetworkStream:
    """The ``network_stream`` extension: what ``archiver.provenance`` and the fetcher read
    of the connection that carried a response (kept after the connection is released)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport

    def get_extra_info(self, info: str) -> typing.Any:
        transport = self._transport
        return None if transport is None else netstream.transport_info(transport, info)


class _Body(httpx.AsyncByteStream):
    """The response body as received (Content-Encoding intact), chunk by chunk."""

    def __init__(self, response: aiohttp.ClientResponse, protocol: _Handler | None) -> None:
        self._response = response
        self._protocol = protocol
        self._read_to_end = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    self._read_to_end = True
                    return
                yield chunk
        except Exception as exc:
            lost = self._protocol.lost if self._protocol is not None else None
            if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(lost, OSError):
                # The connection was reset mid-body: told as the reset, as httpcore does.
                raise httpx.ReadError(str(lost)) from lost
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from _origin(exc)

    async def aclose(self) -> None:
        response = self._response
        # Only a body its reader took to the end gives the connection back (``_Response``).
        if self._read_to_end and response.content.at_eof():
            response.release()  # the connection goes back to the pool
            return
        response.close()  # not read to its end: the connection cannot be reused


class _Response(aiohttp.ClientResponse):
    """aiohttp's response, but its connection goes back to the pool only when ``_Body``
    says so (the body read to its end), not as soon as the body's last byte arrives:
    httpcore reuses a connection only once the response on it was read, and a response the
    fetcher refused (a head too large) on a connection the server is closing would
    otherwise be followed by a request on it that fails as a reset."""

    def _response_eof(self) -> None:
        return None


class AiohttpPool:
    """The aiohttp sessions of one fetcher: one for direct routes (guarded), one per proxy.
    Made on first use inside the event loop; ``aclose`` closes every connection."""

    def __init__(self, guard: AddressGuard, ssl_context: ssl.SSLContext) -> None:
        self._guard = guard
        self._ssl_context = ssl_context
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def session(self, proxy: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(proxy)
        if session is None:
            connector = _Connector(self._guard if proxy is None else None, self._ssl_context)
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                response_class=_Response,
                auto_decompress=False,
                max_line_size=_MAX_HEAD,
                max_field_size=_MAX_HEAD,
                max_headers=_MAX_HEAD // 4,  # as many as fit in that many bytes
                timeout=aiohttp.ClientTimeout(total=None),
            )
            # Retries are the fetcher's, counted and logged.
            session._retry_connection = False
            self._sessions[proxy] = session
        return session

    def timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=connect, sock_read=read)
        return timeout

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport sending through ``pool``'s session for ``proxy`` (``None``:
    direct). Closing it closes nothing of the pool (it is its fetcher's); it closes
    ``fallback`` when it owns it (``owns_fallback``).

    ``fallback`` is the httpcore transport of the same route. aiohttp's parser (llhttp) is
    stricter than h11 and refuses answers that h11 reads and browsers show: a Content-Length
    repeated with the same value, a Content-Length beside ``Transfer-Encoding: chunked``,
    bytes after a complete answer in the same packet (a 204 with a body, a Content-Length
    shorter than what was sent), a malformed status or header line. A page answered that way
    is alive, and a verdict of ``connection_error`` would call it dead. So when llhttp
    refuses an answer before its head is handed out, the request is made again on
    ``fallback``, whose reading is the reference: the server sees the request twice, and
    the verdict, reason and records are httpcore's. ``transport`` changes the CPU cost of a
    run, not its results."""

    def __init__(self, pool: AiohttpPool, proxy: str | None = None, *,
                 fallback: httpx.AsyncBaseTransport | None = None,
                 owns_fallback: bool = False) -> None:
        self._pool = pool
        self._fallback = fallback
        self._owns_fallback = owns_fallback
        self._proxy: URL | None = None
        self._proxy_auth: str | None = None
        if proxy is not None:
            # Credentials in the proxy's URL are sent to it, as httpx sends them (aiohttp
            # reads them only from the environment).
            url = URL(proxy)
            if url.user is not None or url.password is not None:
                self._proxy_auth = aiohttp.encode_basic_auth(url.user or "",
                                                             url.password or "")
                url = url.with_user(None)
            self._proxy = url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = self._pool
        session = pool.session(None if self._proxy is None else str(self._proxy))
        timeouts = request.extensions.get("timeout") or {}
        timeout = pool.timeout(timeouts.get("connect"), timeouts.get("read"))
        headers = [(name.decode("latin-1"), value.decode("latin-1"))
                   for name, value in request.headers.raw]
        proxy_headers = None
        if self._proxy_auth is not None:
            if request.url.scheme == "https":  # for the CONNECT request
                proxy_headers = {"Proxy-Authorization": self._proxy_auth}
            else:  # a forwarded request carries it itself
                headers.append(("Proxy-Authorization", self._proxy_auth))
        data = await request.aread() if request.method not in ("GET", "HEAD") else None
        trace = request.extensions.get("trace")
        exchange = _Exchange(trace)
        token = _EXCHANGE.set(exchange)
        refused = False
        target = URL(str(request.url), encoded=True)
        if request.url.userinfo:
            # Credentials in the URL reach the server as httpx's client sent them (its
            # Authorization header), never from the URL, as over httpcore: aiohttp refuses
            # a URL with credentials beside an Authorization header.
            target = target.with_user(None)
        try:
            response = await session.request(
                request.method, target, headers=headers,
                data=data or None, allow_redirects=False, timeout=timeout,
                proxy=self._proxy, proxy_headers=proxy_headers)
        except Exception as exc:
            if self._fallback is None or not refused_by_parser(exc):
                mapped = _mapped(exc)
                if mapped is exc:
                    raise
                raise mapped from _origin(exc)
            refused = True
        finally:
            _EXCHANGE.reset(token)
        if refused:
            assert self._fallback is not None
            return await self._fallback.handle_async_request(request)
        if trace is not None:
            await trace("http11.receive_response_headers.complete", _NO_EVENT)
        version = response.version
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response, exchange.protocol),
            extensions={
                "http_version": b"HTTP/1.0" if version is not None and version.minor == 0
                and version.major == 1 else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("utf-8", "surrogateescape"),
                "network_stream": _NetworkStream(exchange.transport),
            },
            request=request,
        )

    async def aclose(self) -> None:
        if self._fallback is not None and self._owns_fallback:
            await self._fallback.aclose()


def refused_by_parser(exc: BaseException) -> bool:
    """Whether ``exc`` (from sending a request) is llhttp refusing the answer's head (or
    what came with it in one packet), rather than the network failing."""
    return isinstance(exc, aiohttp.ClientResponseError) \
        and isinstance(exc.__cause__, HttpProcessingError)
