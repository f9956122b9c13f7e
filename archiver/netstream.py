"""The fetcher's network streams on plain asyncio: httpcore's network backend without anyio.

httpcore reaches the network through a backend (``connect_tcp``, ``sleep``) and the streams
it returns (``read``, ``write``, ``aclose``, ``start_tls``, ``get_extra_info``). Its default
asyncio backend goes through anyio, whose stream wrappers, cancel scopes and per-read
pause/resume of the socket were a tenth of the client stack's CPU. ``connect_tcp`` here
opens an ``asyncio.Protocol`` with its own buffer; each wait (for data, for the write buffer
to drain) is one future with one timer handle, not a task or a cancel scope.

The contract is httpcore's AnyIO backend's, exception for exception, because
``archiver.fetch.network_failure`` judges failures by phase and by these classes:

* ``connect_tcp``: a timeout is ``httpcore.ConnectTimeout``, an ``OSError`` (refused,
  unreachable) ``httpcore.ConnectError``;
* ``read(max_bytes, timeout)``: at most ``max_bytes``; ``b""`` once the peer has closed (a
  close in the middle of a body is h11's to report, as before); a timeout is
  ``httpcore.ReadTimeout``, a reset or a closed stream ``httpcore.ReadError``;
* ``write(buffer, timeout)``: returns once the transport's buffer is below its high-water
  mark; ``httpcore.WriteTimeout`` / ``httpcore.WriteError`` likewise;
* ``start_tls(ssl_context, server_hostname, timeout)``: ``loop.start_tls``; a handshake that
  does not finish in ``timeout`` is ``httpcore.ConnectTimeout``, a TLS failure (certificate,
  alert) or the peer closing ``httpcore.ConnectError`` (a close without a reset from
  ``EndOfStream``, as anyio words it); the stream is closed on failure;
* ``aclose()``: closes without a TLS ``close_notify`` (as anyio's TLS stream with
  ``standard_compatible=False``), so a closed connection never waits on its peer.

Each mapped exception is raised ``from`` what happened (the ``OSError``, ``ssl.SSLError`` or
``TimeoutError``). ``get_extra_info`` answers ``"ssl_object"`` (the ``ssl.SSLObject``, whose
``selected_alpn_protocol()`` decides HTTP/2), ``"client_addr"`` and ``"server_addr"`` (as
``(host, port)``, an IPv6 scope joined with ``%``), ``"socket"`` and ``"is_readable"`` (data
or end of stream waiting, so that the pool drops a connection the server has closed), and
``None`` for anything else.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import typing

import httpcore
from httpcore._utils import is_socket_readable

from archiver.guard import AddressGuard, AddressRefused

__all__ = ["AsyncioStream", "EndOfStream", "connect_tcp", "sleep"]

# Stop reading from the socket while this much is held unread; resume below it.
_HIGH_WATER = 256 * 1024


class EndOfStream(ConnectionError):
    """The peer closed the connection before the TLS handshake finished (the name and the
    empty message are anyio's, so the reasons recorded for such failures stay the same)."""


class _Protocol(asyncio.Protocol):
    """Receives into a queue of chunks and wakes the waiting reader and the waiting writer
    (HTTP/2 reads and writes one connection from two tasks at once)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.held = 0
        self.reading_paused = False
        self.eof = False
        self.lost = False
        self.error: Exception | None = None  # what the connection was lost to
        self.write_paused = False
        self.reader: asyncio.Future[bool] | None = None
        self.writer: asyncio.Future[bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.held += len(data)
        if self.held > _HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        if self.reader is not None:
            _wake(self.reader)

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.reader is not None:
            _wake(self.reader)
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self.write_paused = False
        for waiter in (self.reader, self.writer):
            if waiter is not None:
                _wake(waiter)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writer is not None:
            _wake(self.writer)

    async def readable(self, timeout: float | None) -> bool:
        """Wait for data, the end of the stream or its loss; ``False`` if ``timeout``
        passed first."""
        waiter = self.reader = self._loop.create_future()
        try:
            return await _wait(self._loop, waiter, timeout)
        finally:
            self.reader = None

    async def drained(self, timeout: float | None) -> bool:
        """Wait for the write buffer to drain or the stream's loss; ``False`` if
        ``timeout`` passed first."""
        waiter = self.writer = self._loop.create_future()
        try:
            return await _wait(self._loop, waiter, timeout)
        finally:
            self.writer = None


async def _wait(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[bool],
                timeout: float | None) -> bool:
    if timeout is None:
        return await waiter
    timer = loop.call_later(timeout, _expire, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


def _wake(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection (plain, or TLS after ``start_tls``): see the module's contract."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol,
                 raw: asyncio.Transport | None = None) -> None:
        self._transport = transport
        self._protocol = protocol
        self._raw = raw  # the TCP transport under a TLS one
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks:
            if self._closed:
                raise httpcore.ReadError("the stream is closed")
            while not protocol.chunks and not protocol.eof and not protocol.lost:
                if not await protocol.readable(timeout):
                    error = TimeoutError()
                    raise httpcore.ReadTimeout(error) from error
            if not protocol.chunks:
                if protocol.error is not None:
                    raise httpcore.ReadError(protocol.error) from protocol.error
                return b""
        chunk = protocol.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            protocol.chunks.appendleft(rest)
        protocol.held -= len(chunk)
        if protocol.reading_paused and protocol.held <= _HIGH_WATER // 2 \
                and not protocol.lost:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if self._closed:
            raise httpcore.WriteError("the stream is closed")
        if protocol.error is not None:
            raise httpcore.WriteError(protocol.error) from protocol.error
        try:
            self._transport.write(buffer)
        except RuntimeError as exc:  # the transport is closing
            raise httpcore.WriteError(exc) from exc
        while protocol.write_paused:
            if not await protocol.drained(timeout):
                error = TimeoutError()
                raise httpcore.WriteTimeout(error) from error
            if protocol.error is not None:
                raise httpcore.WriteError(protocol.error) from protocol.error

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._raw is not None or self._transport.get_write_buffer_size():
            # TLS: no close_notify, no wait for the peer's. Unsent bytes (a peer that
            # stopped reading): dropped, or the socket would stay open until it reads.
            self._transport.abort()
        else:
            self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        tls = await handshake(loop, self._transport, protocol, ssl_context, server_hostname,
                              timeout)
        protocol.transport = tls
        return AsyncioStream(tls, protocol, raw=self._transport)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":
            protocol = self._protocol
            if protocol.chunks or protocol.eof or protocol.lost:
                return True
            return is_socket_readable(self._transport.get_extra_info("socket"))
        return transport_info(self._transport, info)


async def handshake(loop: asyncio.AbstractEventLoop, transport: asyncio.Transport,
                    protocol: asyncio.BaseProtocol, ssl_context: ssl.SSLContext,
                    server_hostname: str | None, timeout: float | None) -> asyncio.Transport:
    """TLS over the connected ``transport`` within ``timeout``: the TLS transport, or
    httpcore's ``ConnectTimeout`` / ``ConnectError`` (from what happened); the connection is
    aborted (not closed gracefully) on any failure, cancellation included."""
    try:
        async with asyncio.timeout(timeout):
            # The handshake timeout is a backstop behind the deadline above, which
            # expires first and reads as a timeout (asyncio's own reads as an abort).
            tls = await loop.start_tls(
                transport, protocol, ssl_context, server_hostname=server_hostname,
                ssl_handshake_timeout=None if timeout is None else timeout + 1.0)
    except TimeoutError as exc:
        transport.abort()
        raise httpcore.ConnectTimeout(exc) from exc
    except ConnectionResetError as exc:
        transport.abort()
        # asyncio's word for "the peer closed in the middle of the handshake" is a bare
        # ConnectionResetError; a reset proper carries its errno and message.
        error: Exception = exc if exc.args else EndOfStream()
        raise httpcore.ConnectError(error) from error
    except (OSError, ssl.SSLError) as exc:
        transport.abort()
        raise httpcore.ConnectError(exc) from exc
    except BaseException:
        transport.abort()
        raise
    if tls is None:  # the transport was closing: not expected after a connect
        transport.abort()
        error = ConnectionResetError("the connection closed before TLS started")
        raise httpcore.ConnectError(error) from error
    return typing.cast(asyncio.Transport, tls)


def transport_info(transport: asyncio.BaseTransport, info: str) -> typing.Any:
    """What a ``network_stream`` extension answers about the connection ``transport``
    carries (``ssl_object``, ``client_addr``, ``server_addr``, ``socket``), or ``None``."""
    if info == "ssl_object":
        return transport.get_extra_info("ssl_object")
    if info == "client_addr":
        return _address(transport.get_extra_info("sockname"))
    if info == "server_addr":
        return _address(transport.get_extra_info("peername"))
    if info == "socket":
        return transport.get_extra_info("socket")
    return None


def _address(sockaddr: typing.Any) -> typing.Any:
    """``(host, port)`` as anyio gives it: an IPv6 4-tuple loses its flow info, and a
    non-zero scope is joined to the host with ``%``."""
    if isinstance(sockaddr, tuple) and len(sockaddr) == 4:
        host, port, _flowinfo, scope = sockaddr
        return (f"{host.split('%')[0]}%{scope}", port) if scope else (host, port)
    return sockaddr


async def connect_tcp(
    host: str,
    port: int,
    timeout: float | None = None,
    local_address: str | None = None,
    socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
) -> AsyncioStream:
    """A TCP connection to ``host`` (an address the caller has checked) on ``port``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, protocol = await loop.create_connection(
                lambda: _Protocol(loop), host, port,
                local_addr=None if local_address is None else (local_address, 0))
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(exc) from exc
    except OSError as exc:
        raise httpcore.ConnectError(exc) from exc
    if socket_options:
        sock = transport.get_extra_info("socket")
        for option in socket_options:
            sock.setsockopt(*option)
    return AsyncioStream(transport, protocol)


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks, then connects to the checked address.

    httpcore hands ``connect_tcp`` the URL's host; the TLS layer later receives the same host
    for SNI, so pinning the address here keeps certificate checks on the name. The streams
    are ``archiver.netstream``'s (plain asyncio, httpcore's AnyIO backend's exceptions).
    """

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(f"{path}: unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await sleep(seconds)
