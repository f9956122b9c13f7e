"""A thread-per-connection TCP server on loopback, for tests that speak raw bytes (hostile
HTTP servers, a CONNECT proxy, a recorder of request heads)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from types import TracebackType


class ThreadedServer:
    """Listens on 127.0.0.1, port 0 (``port``), and serves each connection it accepts with
    ``serve(conn)`` in a thread of its own, after a TLS handshake when ``tls`` is given.
    ``connections`` counts the connections accepted. ``close`` sets ``stop`` (servers that
    stall wait on it) and closes the listening socket and every connection.

    Subclasses set their own attributes before calling ``__init__``, which starts accepting.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self._conns: list[socket.socket] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def url(self, path: str = "/page") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:  # a client that goes away (or fails the handshake) ends its thread quietly
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                self._conns.append(conn)
            self.serve(conn)
        except OSError:  # ssl.SSLError included
            pass

    def close(self) -> None:
        self.stop.set()
        # Closing a listening socket does not wake a thread blocked in accept() on Linux:
        # the thread would keep the port listening, and once the descriptor's number is
        # reused by another test's server, its next accept() would take that server's
        # connections. shutdown() wakes it (EINVAL); it ends before the socket is closed.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(timeout=5)
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> ThreadedServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
