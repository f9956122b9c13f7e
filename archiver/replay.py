"""Local replay of the archive with pywb (``archiver serve``), and the check for the optional
extras that ``serve`` and the WACZ export need.

The archive folder is used as it is (no copy): pywb reads ``archive/index.cdxj`` for lookups
and the WARC files beside it for content, so ``archive/`` replays at
``http://HOST:PORT/archive/<timestamp>/<url>`` as it looked when captured (the nearest capture
to ``<timestamp>``, which may be partial: ``2026`` or ``20261130``).

``PywbServer`` owns the listening socket: it binds HOST:PORT itself (so a busy port is one
clear error before pywb starts, and port 0 picks a free port it can name) and hands the socket
to a pywb child process. The child dies with the parent however the parent ends: the parent
stops it on exit, Linux kills it when the parent dies (``PR_SET_PDEATHSIG``, even after
``kill -9``), and elsewhere it exits when its stdin pipe from the parent closes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from archiver.errors import ArchiverError, SetupError

__all__ = ["COLLECTION", "REPLAY_EXTRA", "PywbServer", "require_extra", "write_pywb_config"]

COLLECTION = "archive"
# The one line that tells a user how to get the optional parts (serve, WACZ export).
REPLAY_EXTRA = "pip install 'archiver[replay]'"

# pywb takes a few seconds to import and load; a slow machine gets more than that.
_START_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1

# The child: pywb's own WSGI app and gevent server (as its `wayback` command builds them),
# serving the socket the parent bound and passed as fd argv[1]. gevent's monkey patching must
# come before any other import.
_CHILD = """\
from gevent.monkey import patch_all
patch_all()
import os, socket, sys
import gevent
from gevent.pywsgi import WSGIServer
from gevent.socket import wait_read
from pywb.apps.frontendapp import FrontEndApp
from pywb.utils.geventserver import RequestURIWSGIHandler

def exit_with_parent():
    # stdin is a pipe only the parent writes to; end of file means the parent is gone
    wait_read(0)
    os._exit(0)

gevent.spawn(exit_with_parent)
listener = socket.socket(fileno=int(sys.argv[1]))
app = FrontEndApp(config_file=sys.argv[2])
WSGIServer(listener, app, handler_class=RequestURIWSGIHandler, log=None).serve_forever()
"""


def require_extra(module: str, what: str) -> None:
    """Raise ``SetupError`` saying which extra to install when ``module`` (from the
    ``replay`` extra) cannot be imported by this Python."""
    if importlib.util.find_spec(module) is None:
        raise SetupError(f"{what} needs {module}: {REPLAY_EXTRA}")


def write_pywb_config(archive_dir: Path, workdir: Path) -> Path:
    """Write a pywb ``config.yaml`` in ``workdir`` with one collection over ``archive_dir``."""
    archive = archive_dir.resolve()
    config = workdir / "config.yaml"
    # JSON strings are valid YAML scalars, so paths with spaces or colons stay intact.
    config.write_text(
        "collections:\n"
        f"  {COLLECTION}:\n"
        f"    index_paths: {json.dumps(str(archive) + os.sep)}\n"
        f"    archive_paths: {json.dumps(str(archive) + os.sep)}\n"
        "framed_replay: false\n"
        "enable_memento: true\n",
        encoding="utf-8",
    )
    return config


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port). Raises ``SetupError``
    naming the port or host when it cannot be had (in use, privileged, not this machine's)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SetupError(f"--host {host}: not an address to listen on ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    try:
        # create_server sets SO_REUSEADDR, so only a listening socket makes the port busy
        # (not connections of an earlier server still in TIME_WAIT).
        return socket.create_server(address, family=family, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise SetupError(f"port {port} on {host} is already in use (by another server?); "
                             "pick another with --port") from None
        if exc.errno == errno.EACCES:
            raise SetupError(f"port {port} on {host}: permission denied (ports below 1024 "
                             "need privileges); pick another with --port") from None
        # create_server appends the address to strerror; the plain reason reads better
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SetupError(f"cannot listen on {host} port {port}: {reason}") from None


def _die_with_parent(libc: ctypes.CDLL | None, parent: int) -> None:
    """Run in the child between fork and exec: ask Linux to kill it when the parent dies,
    and exit at once if the parent died before that request was made."""
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


class PywbServer:
    """pywb replaying ``archive_dir`` on ``host``:``port`` from the scratch folder ``workdir``,
    as a context manager: entering binds the port, starts pywb and waits until it answers;
    leaving stops it. ``url`` is the collection's address, ``pid`` the child's."""

    def __init__(self, archive_dir: Path, workdir: Path, *, host: str, port: int) -> None:
        self.archive_dir = archive_dir
        self.workdir = workdir
        self.host = host
        self.port = port
        self.url = ""
        self._child: subprocess.Popen[bytes] | None = None
        self._log = workdir / "pywb.log"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    def __enter__(self) -> PywbServer:
        config = write_pywb_config(self.archive_dir, self.workdir)
        listener = listen(self.host, self.port)
        try:
            self.port = listener.getsockname()[1]
            self.url = f"http://{_url_host(self.host)}:{self.port}/{COLLECTION}/"
            libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
            parent = os.getpid()
            with self._log.open("wb") as log:
                self._child = subprocess.Popen(
                    [sys.executable, "-c", _CHILD, str(listener.fileno()), str(config)],
                    cwd=self.workdir, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                    stderr=log, pass_fds=(listener.fileno(),),
                    # its own session: Ctrl-C in the terminal reaches only this process,
                    # which stops the child itself
                    start_new_session=True,
                    preexec_fn=lambda: _die_with_parent(libc, parent),
                )
        finally:
            listener.close()  # the child holds its own copy
        try:
            self._wait_until_ready(listener.family)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def wait(self) -> int:
        """Block until the child exits (it does not on its own); return its exit code."""
        assert self._child is not None
        return self._child.wait()

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 5 s) and reap it."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if child.stdin is not None:
            child.stdin.close()

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self._log.read_text(encoding="utf-8", errors="replace").strip()
            if lines:
                return lines.splitlines()[-1]
        return "no output"

    def _wait_until_ready(self, family: int) -> None:
        """Return once pywb answers an HTTP request; raise ``SetupError`` if it exits first."""
        assert self._child is not None
        loopback = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        target = self.host if self.host not in ("", "0.0.0.0", "::") else loopback
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            code = self._child.poll()
            if code is not None:
                raise SetupError(f"pywb exited while starting (exit {code}): "
                                 f"{self.last_log_line()}")
            # The socket already accepts connections (the backlog); an HTTP answer means
            # pywb has loaded and serves.
            conn = http.client.HTTPConnection(target, self.port, timeout=2)
            try:
                conn.request("HEAD", "/")
                conn.getresponse()
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                conn.close()
        raise ArchiverError(f"pywb did not answer within {_START_TIMEOUT:.0f} s: "
                            f"{self.last_log_line()}")


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
