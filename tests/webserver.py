"""A real HTTP/HTTPS server on loopback for the tests: port 0, routes as Python functions.

Every network test runs against this (never a mock transport, never the internet)::

    def test_something(web):                       # fixture from conftest.py
        web.route("/a", lambda req: Reply(200, b"hello", {"Content-Type": "text/plain"}))
        web.route("/old", redirect("/a"))
        url = web.url("/a")                        # http://127.0.0.1:PORT/a

A handler receives the ``Request`` and returns a ``Reply``; for hostile behaviour it may
instead take over the socket (``req.handler.wfile`` / ``req.handler.connection``) and return
``None``: a reset, a hang, a byte-a-second drip. ``web.hits`` counts requests per path.

``https_web`` is the same server behind TLS with a ``trustme`` CA; ``https_web.ca_file`` is the
CA bundle to trust (pass it as ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import collections
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["Reply", "Request", "WebServer", "drip", "hang", "redirect", "reset"]


@dataclass
class Request:
    method: str
    path: str  # path with query, as sent
    headers: dict[str, str]
    body: bytes
    handler: BaseHTTPRequestHandler
    host: str = ""


@dataclass
class Reply:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    # Seconds to wait before sending anything (a slow server).
    delay: float = 0.0


Handler = Callable[[Request], "Reply | None"]


def redirect(location: str, status: int = 302) -> Handler:
    return lambda req: Reply(status, b"", {"Location": location})


def reset(req: Request) -> None:
    """Close the connection with a TCP RST and no answer."""
    sock = req.handler.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    req.handler.close_connection = True


def hang(seconds: float) -> Handler:
    """Accept the request, then say nothing for ``seconds``."""

    def handler(req: Request) -> None:
        time.sleep(seconds)
        req.handler.close_connection = True

    return handler


def drip(total: int, interval: float, status: int = 200) -> Handler:
    """Send headers, then one byte every ``interval`` seconds, ``total`` bytes in all."""

    def handler(req: Request) -> None:
        w = req.handler.wfile
        try:
            w.write(f"HTTP/1.1 {status} OK\r\nContent-Length: {total}\r\n"
                    "Content-Type: text/html\r\n\r\n".encode())
            w.flush()
            for _ in range(total):
                time.sleep(interval)
                w.write(b"x")
                w.flush()
        except OSError:
            pass
        req.handler.close_connection = True

    return handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path_only = urlsplit(self.path).path
        owner = self.server.owner
        owner.hits[path_only] += 1
        owner.requests.append((self.command, self.path, dict(self.headers.items())))
        req = Request(self.command, self.path, dict(self.headers.items()), body, self,
                      host=self.headers.get("Host", ""))
        handler = owner.routes.get(self.path) or owner.routes.get(path_only) or owner.fallback
        if handler is None:
            reply: Reply | None = Reply(404, b"<html><body><h1>404 Not Found</h1></body></html>",
                                        {"Content-Type": "text/html"})
        else:
            reply = handler(req)
        if reply is None:
            return
        if reply.delay:
            time.sleep(reply.delay)
        headers = list(reply.headers.items()) if isinstance(reply.headers, dict) else reply.headers
        names = {k.lower() for k, _ in headers}
        try:
            self.send_response(reply.status)
            for k, v in headers:
                self.send_header(k, v)
            if isinstance(reply.body, bytes | bytearray):
                if "content-length" not in names:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)
            else:
                if "content-length" not in names:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in reply.body:
                    if "content-length" in names:
                        self.wfile.write(chunk)
                    else:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                if "content-length" not in names:
                    self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_HEAD = do_PUT = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: WebServer

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up (a cancelled run, a deadline) is expected here, not news.
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class WebServer:
    """A threaded HTTP(S) server on ``host``:0. Use as a context manager or call ``close()``."""

    def __init__(self, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None,
                 ca_file: str | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.fallback: Handler | None = None
        self.hits: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.ca_file = ca_file
        self._server = _Server((host, 0), _Handler)
        self._server.owner = self
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context else "http"
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def route(self, path: str, handler: Handler | Reply) -> None:
        """Serve ``path`` (with or without its query) by ``handler`` or a fixed ``Reply``."""
        if isinstance(handler, Reply):
            fixed = handler
            self.routes[path] = lambda req: fixed
        else:
            self.routes[path] = handler

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
