"""``archiver serve`` as a user runs it: a real subprocess serving a real archive with pywb.

It replays captures at the address its help and its output name; SIGTERM, SIGHUP, Ctrl-C and
even ``kill -9`` of it leave no pywb behind; a busy or impossible port is one line, exit 2.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_run import ARTICLE, call, make_project
from tests.webserver import Reply, WebServer

pytest.importorskip("pywb")

REPO = Path(__file__).resolve().parent.parent
HTML = {"Content-Type": "text/html; charset=utf-8"}
LINUX = sys.platform.startswith("linux")


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A project whose archive holds one capture of a page; (config, the page's URL)."""
    root = tmp_path_factory.mktemp("served")
    with WebServer() as web:
        web.route("/a", Reply(200, ARTICLE, HTML))
        config = make_project(root, [web.url("/a")])
        code, out, err = call("run", "--config", str(config))
        assert code == 0, out + err
        yield config, web.url("/a")


def start(config: Path, *args: str, nohup: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def signals() -> None:
        # Ctrl-C's default action, even when the test runner ignores SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN if nohup else signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-m", "archiver", "serve", "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=signals)


def read_line(proc: subprocess.Popen[str], timeout: float = 90) -> str:
    """The next line ``proc`` prints (read in a thread: a pipe read has no timeout)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()),  # type: ignore[union-attr]
                     daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"archiver serve printed nothing in {timeout} s") from None
    assert line, f"archiver serve ended: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}"
    return line


def get(url: str) -> tuple[int, bytes]:
    # No proxy: the replay is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as answer:
        return answer.status, answer.read()


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        return [int(p) for p in fh.read().split()]


def gone(pid: int, timeout: float = 10) -> bool:
    """True once ``pid`` has exited (reaped, or a zombie waiting for its new parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not LINUX, reason="reads the process tree from /proc")
@pytest.mark.parametrize(("sig", "said"), [(signal.SIGTERM, "server stopped (SIGTERM)"),
                                           (signal.SIGHUP, "server stopped (SIGHUP)"),
                                           (signal.SIGINT, "server stopped (Ctrl-C)")])
def test_serve_replays_then_stops_pywb_with_it(archived: tuple[Path, str], sig: int,
                                               said: str) -> None:
    config, page = archived
    proc = start(config, "--port", "0")
    try:
        first = read_line(proc)
        match = re.match(r"serving \S+ at (http://127\.0\.0\.1:(\d+)/archive/) \(Ctrl-C", first)
        assert match, first
        base, port = match[1], int(match[2])
        example = read_line(proc)
        assert f"{base}<timestamp>/<url>" in example, example

        # The address the help names replays the capture: the archived bytes (id_), and the
        # rewritten page; the example printed opens too.
        help_text = call("serve", "--help")[1]
        assert "http://HOST:PORT/archive/TIMESTAMP/URL" in help_text
        assert get(f"{base}2030id_/{page}") == (200, ARTICLE)
        status, body = get(f"{base}2026/{page}")
        assert status == 200 and b"upheld the conviction" in body
        status, body = get(example.rsplit("e.g. ", 1)[1].strip())
        assert status == 200 and b"upheld the conviction" in body

        (pywb,) = children(proc.pid)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + err
        assert out.strip().splitlines()[-1] == said
        assert "Traceback" not in err and "interrupted" not in out + err, out + err
        # The parent reaped pywb: its pid is gone and the port answers no more.
        with pytest.raises(ProcessLookupError):
            os.kill(pywb, 0)
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not LINUX, reason="reads the process tree from /proc")
def test_pywb_dies_when_serve_is_killed(archived: tuple[Path, str]) -> None:
    """kill -9 gives the parent no chance to clean up: pywb must still go with it."""
    config, _ = archived
    proc = start(config, "--port", "0")
    try:
        read_line(proc)
        (pywb,) = children(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        assert gone(pywb), "pywb still runs after its parent was killed"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_under_nohup_survives_sighup(archived: tuple[Path, str]) -> None:
    config, page = archived
    proc = start(config, "--port", "0", nohup=True)
    try:
        base = read_line(proc).split(" at ", 1)[1].split(" ", 1)[0]
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None, "a SIGHUP ignored on purpose stopped the server"
        assert get(f"{base}2030id_/{page}") == (200, ARTICLE)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and out.strip().endswith("server stopped (SIGTERM)")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_busy_port_is_one_line_naming_it(archived: tuple[Path, str]) -> None:
    config, _ = archived
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proc = start(config, "--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    assert err.startswith(f"error: port {port} on 127.0.0.1 is already in use")
    assert len(err.splitlines()) == 1 and out == "", err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_impossible_port_is_a_usage_error(archived: tuple[Path, str], port: str) -> None:
    config, _ = archived
    proc = start(config, "--port", port)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, out + err
    first = err.splitlines()[0]
    assert first.startswith("error: archiver serve: argument --port: ") and port in first, err
    assert "Traceback" not in err
    assert out == ""


def test_nothing_archived_yet_is_said(tmp_path: Path) -> None:
    config = make_project(tmp_path, ["https://example.org/a"])
    code, out, err = call("serve", "--config", str(config), "--port", "0")
    assert code == 2 and out == ""
    assert err == (f"error: {tmp_path / 'archive'}: nothing archived yet "
                   "(run 'archiver run' first)\n")


@pytest.mark.parametrize("host", ["192.0.2.1", "nosuch.invalid"])
def test_host_not_of_this_machine_is_one_line(archived: tuple[Path, str], host: str) -> None:
    config, _ = archived
    code, out, err = call("serve", "--config", str(config), "--host", host, "--port", "0")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and host in err and len(err.splitlines()) == 1, err
