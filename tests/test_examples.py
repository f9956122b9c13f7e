"""Every example in every command's ``--help`` and in README.md's code blocks runs, and exits
as documented.

The examples are parsed out of the help texts and the README (nothing is listed by hand)
and run in a prepared project, in-process or, when they use the shell (pipes, redirections),
by ``bash -o pipefail``: a ``sources.toml`` in the working folder (so the examples' default
config path is used as written), a source ``kazakhstan-2020`` whose footnotes 1 (two PDFs)
and 14 (an article) cite pages on a loopback web server, an archive built from that web by
``archiver run``, the documents the examples name (``draft.md``, ``a.md``, ``b.docx``, ...),
and a loopback Wayback Machine for the rescue. ``archiver`` on the PATH runs this checkout.
The documented exit code is the ``(exit N)`` of an example's comment, else 0. ``serve``
examples must answer HTTP on their port; they are then stopped.
"""

from __future__ import annotations

import io
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from archiver.cli import build_parser, main
from tests.parse_helpers import pandoc
from tests.test_run import ARTICLE, read_back
from tests.wayback_server import WaybackServer
from tests.webserver import Reply, WebServer

REPO = Path(__file__).resolve().parent.parent
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
# An invocation inside a line: "archiver", "./.venv/bin/archiver", "ExecStart=/x/archiver".
INVOCATION = re.compile(r"(?:^|(?<=[\s/=]))archiver\s+(?=[a-z-])(.*)$")
DOCUMENTED_EXIT = re.compile(r"\(exit (\d+)\)")


def _examples_of(help_text: str) -> list[str]:
    lines = help_text.split("examples:", 1)[1].splitlines() if "examples:" in help_text else []
    return [line.strip() for line in lines if line.strip().startswith("archiver ")]


def help_examples() -> list[tuple[str, str]]:
    """(where, line) for every example of the top-level help and each command's help."""
    parser = build_parser()
    found = [("archiver --help", line) for line in _examples_of(parser.format_help())]
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert commands
    for name in commands:
        out = io.StringIO()
        with redirect_stdout(out):
            assert main([name, "--help"], stdout=out) == 0
        examples = _examples_of(out.getvalue())
        assert examples, f"archiver {name} --help has no examples"
        found += [(f"archiver {name} --help", line) for line in examples]
    return found


def readme_examples() -> list[tuple[str, str]]:
    """(where, line) for every line of a README shell/cron/ini/yaml block invoking archiver."""
    text = (REPO / "README.md").read_text("utf-8")
    found = []
    for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
        if lang not in ("sh", "shell", "bash", "console", "cron", "ini", "yaml"):
            continue
        for line in block.splitlines():
            match = INVOCATION.search(line)
            if match:
                found.append((f"README.md ({lang})", "archiver " + match.group(1)))
    return found


def python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text("utf-8")
    return [b for b in re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
            if "archiver" in b]


def command_of(line: str) -> tuple[str, int]:
    """The shell command to run and its documented exit code. A trailing ``# comment`` and
    a ``|| fallback`` (cron's) are cut: the test asserts archiver's own exit code."""
    code = DOCUMENTED_EXIT.search(line)
    command = re.split(r"\s#\s|\s#$", line, maxsplit=1)[0]
    command = command.split(" || ", 1)[0].strip()
    return command, int(code.group(1)) if code else 0


EXAMPLES = help_examples() + readme_examples()


def test_the_examples_were_found() -> None:
    wheres = {where for where, _ in EXAMPLES}
    assert {"archiver --help", "archiver show --help", "archiver run --help"} <= wheres
    assert any(w.startswith("README.md") for w in wheres)
    assert python_blocks()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("examples")
    with WebServer() as web, WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        web.route("/covid.pdf", Reply(200, PDF, {"Content-Type": "application/pdf"}))
        web.route("/impact.pdf", Reply(200, PDF + b"2", {"Content-Type": "application/pdf"}))
        web.route("/a/30723868.html", Reply(200, ARTICLE,
                                            {"Content-Type": "text/html; charset=utf-8"}))
        base = f"http://localhost:{web.port}"
        (root / "sources").mkdir()
        (root / "sources" / "kazakhstan-2020.md").write_text(
            "# Key concerns\n\nThe pandemic restricted rights.[^1] The court upheld the "
            "conviction.[^14]\n\n"
            f"[^1]: See <{base}/covid.pdf> and <{base}/impact.pdf>.\n"
            f"[^14]: See (in Russian): <{base}/a/30723868.html>\n", encoding="utf-8")
        rescue = wayback.settings()
        (root / "sources.toml").write_text(
            '[[sources]]\nid = "kazakhstan-2020"\npath = "sources/kazakhstan-2020.md"\n'
            "published = 2020-11-01\n\n"
            "[fetch]\ntimeout = 5\nretries = 1\nallow_private_networks = true\nhost_interval = 0\n"
            "backoff_base = 0.01\nbackoff_max = 0.05\n\n"
            "[rescue]\n" + "".join(f'{key} = "{getattr(rescue, key)}"\n' for key in
                                   ("availability_api", "cdx_api", "replay_base")),
            encoding="utf-8")
        clean = "# A note\n\nA claim.[^1]\n\n[^1]: See <https://example.org/report>.\n"
        (root / "a.md").write_text(clean, encoding="utf-8")
        (root / "draft.md").write_text(  # a warning: lint --strict exits 1
            clean.replace("/report", "/report?utm_source=newsletter"), encoding="utf-8")
        for name in ("b.docx", "draft.docx", "briefing.docx"):
            pandoc(clean, "docx", root / name)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        (bin_dir / "archiver").write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -m archiver "$@"\n', encoding="utf-8")
        (bin_dir / "archiver").chmod(0o755)
        cwd = Path.cwd()
        os.chdir(root)
        try:
            assert main(["run", "--quiet"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
        finally:
            os.chdir(cwd)
        yield root
    read_back(root)  # what the examples wrote (run, check, --refresh) is valid WARC


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    env.pop("ARCHIVER_DEBUG", None)
    return env


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _serve(root: Path, command: str) -> None:
    port_match = re.search(r"--port\s+(\d+)", command)
    port = int(port_match.group(1)) if port_match else 8080
    if _port_taken(port):
        pytest.skip(f"port {port} is already in use on this machine")
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=root, env=_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        if port == 0:  # any free port: the one taken is in the first line serve prints
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            first = proc.stdout.readline().decode() if ready else ""
            served = re.search(r"serving .* at http://[^:/]+:(\d+)/", first)
            assert served, f"{command}: printed {first!r}"
            port = int(served.group(1))
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    assert s.recv(12).startswith(b"HTTP/1."), command
                    return
            time.sleep(0.3)
        _, err = proc.communicate(timeout=5) if proc.poll() is not None else (b"", b"")
        pytest.fail(f"{command}: never answered on port {port}: {err.decode()[-500:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.mark.parametrize(("where", "line"), EXAMPLES,
                         ids=[f"{w}: {line}" for w, line in EXAMPLES])
def test_example_runs_and_exits_as_documented(project: Path, where: str, line: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    command, expected = command_of(line)
    if command.startswith("archiver serve"):
        _serve(project, command)
        return
    if not re.search(r"[|<>;&`$]", command):  # no shell needed: in-process, much faster
        monkeypatch.chdir(project)
        out, err = io.StringIO(), io.StringIO()
        code = main(shlex.split(command)[1:], stdout=out, stderr=err)
        assert code == expected, (f"{where}: {line}\nexit {code}, documented {expected}\n"
                                  f"stdout: {out.getvalue()[-800:]}\n"
                                  f"stderr: {err.getvalue()[-800:]}")
        return
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=project,
                          env=_env(project), capture_output=True, timeout=180)
    assert done.returncode == expected, (
        f"{where}: {line}\nexit {done.returncode}, documented {expected}\n"
        f"stdout: {done.stdout.decode(errors='replace')[-800:]}\n"
        f"stderr: {done.stderr.decode(errors='replace')[-800:]}")
    assert b"Traceback" not in done.stderr


def test_readme_python_example_runs(project: Path) -> None:
    for block in python_blocks():
        out = io.StringIO()
        cwd = Path.cwd()
        os.chdir(project)
        try:
            with redirect_stdout(out):
                exec(compile(block, "README.md", "exec"), {})
        finally:
            os.chdir(cwd)
        printed = out.getvalue().splitlines()
        # The API example prints each citation (footnote, URL, verdict, reason) of the source.
        assert any(re.match(r"1 http://localhost:\d+/covid\.pdf ok ", row) for row in printed)
        assert any(re.match(r"14 http://localhost:\d+/a/30723868\.html ok ", row)
                   for row in printed), printed
