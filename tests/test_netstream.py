"""The asyncio network streams (``archiver.netstream``) keep httpcore's AnyIO backend's
contract: every case runs against both, over real loopback sockets, and must raise the same
httpcore exception with the same kind of cause (``fetch.network_failure`` judges by these).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import ssl
import struct
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator

import httpcore
import pytest

from archiver import netstream
from tests.loopback import ThreadedServer

trustme = pytest.importorskip("trustme")

Connect = Callable[..., Awaitable[httpcore.AsyncNetworkStream]]


@pytest.fixture(params=["netstream", "anyio"])
def connect(request) -> Connect:
    """``connect_tcp`` of the backend under test, and of the one it must behave like."""
    if request.param == "netstream":
        return netstream.connect_tcp
    return httpcore.AnyIOBackend().connect_tcp


def causes(exc: BaseException) -> list[BaseException]:
    chain = []
    current: BaseException | None = exc
    while current is not None:
        chain.append(current)
        current = current.__cause__
    return chain


class Server(ThreadedServer):
    """A TCP server on 127.0.0.1 that runs ``behaviour(conn)`` for each connection in a
    thread (after a TLS handshake when ``tls`` is given); ``stop`` releases waiting ones."""

    def __init__(self, behaviour: Callable[[socket.socket, threading.Event], None],
                 tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        super().__init__(tls)

    def serve(self, conn: socket.socket) -> None:
        self.behaviour(conn, self.stop)


@contextlib.contextmanager
def serving(behaviour: Callable[[socket.socket, threading.Event], None],
            tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    server = Server(behaviour, tls)
    try:
        yield server
    finally:
        server.close()


def reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def wait(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


@pytest.fixture(scope="module")
def client_tls(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


# ── plain TCP ───────────────────────────────────────────────────────────────


def test_reads_what_the_peer_sends_then_empty_bytes_at_its_close(connect) -> None:
    def greet(conn: socket.socket, stop: threading.Event) -> None:
        assert conn.recv(100) == b"ping"
        conn.sendall(b"pong" * 10)
        conn.close()

    async def go() -> bytes:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        await stream.write(b"ping", timeout=5)
        received = b""
        while chunk := await stream.read(7, timeout=5):
            assert len(chunk) <= 7
            received += chunk
        assert await stream.read(7, timeout=5) == b""
        await stream.aclose()
        return received

    with serving(greet) as server:
        assert asyncio.run(go()) == b"pong" * 10


def test_a_read_with_nothing_coming_is_a_read_timeout(connect) -> None:
    async def go() -> None:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        try:
            with pytest.raises(httpcore.ReadTimeout) as caught:
                await stream.read(100, timeout=0.1)
            assert any(isinstance(c, TimeoutError) for c in causes(caught.value))
        finally:
            await stream.aclose()

    with serving(wait) as server:
        asyncio.run(go())


def test_a_reset_is_a_read_error_caused_by_the_os_error(connect) -> None:
    def reset_after_request(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(100)
        reset(conn)

    async def go() -> None:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        await stream.write(b"GET", timeout=5)
        with pytest.raises(httpcore.ReadError) as caught:
            await stream.read(100, timeout=5)
        assert isinstance(causes(caught.value)[-1], ConnectionResetError)
        with pytest.raises(httpcore.WriteError) as caught:
            await stream.write(b"more", timeout=5)
        assert isinstance(causes(caught.value)[-1], ConnectionResetError)
        await stream.aclose()

    with serving(reset_after_request) as server:
        asyncio.run(go())


def test_a_peer_that_never_reads_is_a_write_timeout(connect) -> None:
    async def go() -> None:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        try:
            with pytest.raises(httpcore.WriteTimeout) as caught:
                for _ in range(64):  # far more than the socket buffers hold
                    await stream.write(b"x" * (1 << 20), timeout=0.2)
            assert any(isinstance(c, TimeoutError) for c in causes(caught.value))
        finally:
            await stream.aclose()

    with serving(wait) as server:
        asyncio.run(go())


def test_a_read_and_a_write_can_wait_at_once(connect) -> None:
    # HTTP/2 reads and writes one connection from two tasks: neither may steal the
    # other's wake-up. The peer reads nothing for a while (the write waits to drain,
    # the read waits for data), then takes everything and answers.
    size = 16 << 20

    def slow_reader(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(0.3)
        got = 0
        while got < size:
            got += len(conn.recv(1 << 20))
        conn.sendall(b"done")
        stop.wait(30)

    async def go() -> bytes:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        try:
            reading = asyncio.create_task(stream.read(100, timeout=10))
            await asyncio.sleep(0)
            await stream.write(b"x" * size, timeout=10)
            return await reading
        finally:
            await stream.aclose()

    with serving(slow_reader) as server:
        assert asyncio.run(go()) == b"done"


def test_a_refused_connection_is_a_connect_error_caused_by_the_refusal(connect) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    async def go() -> None:
        with pytest.raises(httpcore.ConnectError) as caught:
            await connect("127.0.0.1", port, timeout=5)
        assert isinstance(causes(caught.value)[-1], ConnectionRefusedError)

    asyncio.run(go())


def test_a_connection_never_accepted_is_a_connect_timeout(connect) -> None:
    # A listening socket whose accept queue is full drops further SYNs: connect() hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)

        async def go() -> None:
            with pytest.raises(httpcore.ConnectTimeout) as caught:
                await connect("127.0.0.1", port, timeout=0.3)
            assert any(isinstance(c, TimeoutError) for c in causes(caught.value))

        asyncio.run(go())
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_extra_info_of_a_plain_connection(connect) -> None:
    def speak_later(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(100)
        conn.sendall(b"hello")
        stop.wait(30)

    async def go() -> None:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        try:
            assert stream.get_extra_info("ssl_object") is None
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
            client = stream.get_extra_info("client_addr")
            assert client[0] == "127.0.0.1" and isinstance(client[1], int)
            sock = stream.get_extra_info("socket")
            assert sock.getsockname() == client
            assert stream.get_extra_info("no such key") is None
            assert stream.get_extra_info("is_readable") is False
            await stream.write(b"go", timeout=5)
            for _ in range(100):
                if stream.get_extra_info("is_readable"):
                    break
                await asyncio.sleep(0.02)
            assert stream.get_extra_info("is_readable") is True
            assert await stream.read(100, timeout=5) == b"hello"
        finally:
            await stream.aclose()

    with serving(speak_later) as server:
        asyncio.run(go())


def test_a_server_that_closed_an_idle_connection_reads_as_readable(connect) -> None:
    # What the pool asks before reusing a kept-alive connection.
    async def go() -> None:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        try:
            for _ in range(100):
                if stream.get_extra_info("is_readable"):
                    break
                await asyncio.sleep(0.02)
            assert stream.get_extra_info("is_readable") is True
        finally:
            await stream.aclose()

    with serving(lambda conn, stop: conn.close()) as server:
        asyncio.run(go())


# ── TLS ─────────────────────────────────────────────────────────────────────


def test_start_tls_negotiates_alpn_and_reads_over_tls(connect, server_tls, client_tls) -> None:
    def echo(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(conn.recv(100).upper())
        stop.wait(30)

    async def go() -> None:
        plain = await connect("127.0.0.1", server.port, timeout=5)
        stream = await plain.start_tls(client_tls, server_hostname="localhost", timeout=5)
        try:
            tls = stream.get_extra_info("ssl_object")
            assert isinstance(tls, ssl.SSLObject)
            assert tls.selected_alpn_protocol() == "h2"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
            assert stream.get_extra_info("socket") is not None
            await stream.write(b"over tls", timeout=5)
            assert await stream.read(100, timeout=5) == b"OVER TLS"
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(100, timeout=0.1)
        finally:
            await stream.aclose()

    with serving(echo, server_tls) as server:
        asyncio.run(go())


def test_a_handshake_that_never_ends_is_a_connect_timeout(connect, client_tls) -> None:
    async def go() -> None:
        plain = await connect("127.0.0.1", server.port, timeout=5)
        with pytest.raises(httpcore.ConnectTimeout) as caught:
            await plain.start_tls(client_tls, server_hostname="localhost", timeout=0.2)
        assert any(isinstance(c, TimeoutError) for c in causes(caught.value))
        await plain.aclose()

    with serving(wait) as server:
        asyncio.run(go())


def test_an_untrusted_certificate_is_a_connect_error_caused_by_the_check(connect,
                                                                         client_tls) -> None:
    stranger = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(stranger)

    async def go() -> None:
        plain = await connect("127.0.0.1", server.port, timeout=5)
        with pytest.raises(httpcore.ConnectError) as caught:
            await plain.start_tls(client_tls, server_hostname="localhost", timeout=5)
        assert isinstance(causes(caught.value)[-1], ssl.SSLCertVerificationError)

    with serving(wait, stranger) as server:
        asyncio.run(go())


@pytest.mark.parametrize("ending", ["close", "reset"])
def test_a_peer_gone_during_the_handshake_is_a_connect_error(connect, client_tls,
                                                             ending: str) -> None:
    def hello_then_gone(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(4096)  # the ClientHello
        if ending == "reset":
            reset(conn)
        else:
            conn.close()

    async def go() -> None:
        plain = await connect("127.0.0.1", server.port, timeout=5)
        with pytest.raises(httpcore.ConnectError) as caught:
            await plain.start_tls(client_tls, server_hostname="localhost", timeout=5)
        last = causes(caught.value)[-1]
        if ending == "reset":
            assert isinstance(last, ConnectionResetError) and last.errno is not None
        else:  # the reason recorded is "...during the TLS handshake: EndOfStream"
            assert type(last).__name__ == "EndOfStream" and str(last) == ""

    with serving(hello_then_gone) as server:
        asyncio.run(go())



# ── hostile peers: a flood, and a deadline that cancels in the middle ───────

FLOOD_CAP = 64 * 1024 * 1024  # what the flooding server would send to a reader that kept up


def flood(sent: list[int]) -> Callable[[socket.socket, threading.Event], None]:
    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        chunk = b"x" * 65536
        while not stop.is_set() and sent[0] < FLOOD_CAP:
            conn.sendall(chunk)  # blocks once the client stops taking bytes
            sent[0] += len(chunk)
    return behaviour


@pytest.mark.parametrize("over", ["tcp", "tls"])
def test_a_reader_that_stops_reading_stops_a_flooding_peer(connect, server_tls, client_tls,
                                                           over: str) -> None:
    """Nothing read for a second: the stream stops taking bytes (256 KB held, then the
    socket is paused), so the peer is held back by the kernel buffers, a few MB at most,
    not the 64 MB it would send to a reader that kept up; reading again gets everything."""
    sent = [0]

    async def go() -> tuple[int, int]:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        if over == "tls":
            stream = await stream.start_tls(client_tls, server_hostname="localhost",
                                            timeout=5)
        received = len(await stream.read(65536, timeout=5))
        await asyncio.sleep(1.0)
        held_back_at = sent[0]
        while received < 8 * 1024 * 1024:
            received += len(await stream.read(65536, timeout=5))
        await stream.aclose()
        return held_back_at, received

    with serving(flood(sent), server_tls if over == "tls" else None) as server:
        held_back_at, received = asyncio.run(go())
    assert held_back_at < 24 * 1024 * 1024, held_back_at
    assert received >= 8 * 1024 * 1024



@pytest.mark.parametrize("over", ["tcp", "tls", "tls with close_notify"])
def test_a_body_held_back_then_closed_is_read_whole_before_the_end(connect, server_tls,
                                                                   client_tls, over: str) -> None:
    """A body delimited by the close, larger than what the stream holds (so the socket is
    paused while the peer closes): every byte arrives, then ``b""``. Over TLS the close
    comes with or without ``close_notify`` (servers that just close the socket are common;
    both are the end of the stream, as with anyio's ``standard_compatible=False``)."""
    size = 5 * 1024 * 1024 + 7

    def send_then_close(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(100)
        conn.sendall(b"z" * size)
        if over == "tls with close_notify":
            conn = conn.unwrap()  # type: ignore[attr-defined]
        conn.close()

    async def go() -> tuple[int, bytes]:
        stream = await connect("127.0.0.1", server.port, timeout=5)
        if over != "tcp":
            stream = await stream.start_tls(client_tls, server_hostname="localhost",
                                            timeout=5)
        await stream.write(b"go", timeout=5)
        await asyncio.sleep(0.5)  # the peer sends everything and closes meanwhile
        received = 0
        while chunk := await stream.read(65536, timeout=5):
            received += len(chunk)
        end = await stream.read(65536, timeout=5)
        await stream.aclose()
        return received, end

    with serving(send_then_close, None if over == "tcp" else server_tls) as server:
        assert asyncio.run(go()) == (size, b"")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
@pytest.mark.parametrize("stage", ["handshake", "read"])
def test_a_deadline_cancelling_a_handshake_or_a_read_leaves_no_socket_open(
        server_tls, client_tls, stage: str) -> None:
    """The fetcher's per-URL deadline is an ``asyncio.timeout`` around the exchange: when it
    cancels the handshake or a read, the socket is closed then (not when the garbage
    collector gets to it, as with the AnyIO backend's cancelled handshake) and nothing
    warns of an unclosed transport."""
    def hold(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(30)  # over plain TCP: never answers the ClientHello

    async def go() -> None:
        stream = await netstream.connect_tcp("127.0.0.1", server.port, timeout=5)
        try:
            async with asyncio.timeout(0.2):
                if stage == "handshake":
                    await stream.start_tls(client_tls, server_hostname="localhost",
                                           timeout=5)
                else:
                    tls = await stream.start_tls(client_tls, server_hostname="localhost",
                                                 timeout=5)
                    stream = tls
                    await tls.read(100, timeout=5)
        except TimeoutError:
            pass
        else:
            raise AssertionError("the deadline did not strike")
        await stream.aclose()
        await asyncio.sleep(0.05)  # the loop's callbacks that close the socket

    before = _open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with serving(hold, server_tls if stage == "read" else None) as server:
            asyncio.run(go())
        after = _open_fds()  # before any garbage collection could close a leaked socket
        gc.collect()
    assert after == before, (before, after)
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], \
        [str(w.message) for w in caught]


def test_sleep_waits() -> None:
    async def go() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await netstream.sleep(0.05)
        return loop.time() - start

    assert asyncio.run(go()) >= 0.04
