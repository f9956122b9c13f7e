"""Packaging: a plain ``pip install .`` (no extras) runs every core command, and the
Makefile's ``run`` and ``test`` install what each needs.

``test_plain_install_runs_every_core_command`` really installs the package into a fresh
virtualenv (pip reaches the package index, its cache makes it faster) and drives the installed
``archiver`` against a loopback web server.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import BRIEFING
from tests.test_run import ARTICLE, make_project
from tests.webserver import Reply, WebServer

REPO = Path(__file__).resolve().parent.parent
HTML = {"Content-Type": "text/html; charset=utf-8"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _norm(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])


def _third_party_imports() -> dict[str, list[str]]:
    """Top-level module → where the package imports it, for every module outside the standard
    library and the package itself (lazy imports inside functions included)."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "archiver").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "archiver":
                    found.setdefault(top, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


# Optional extras the package imports itself, each only where its absence is handled and
# tested: the browser (``archiver.browse`` says "not available" once and keeps the HTTP path;
# tests/test_browse.py::test_without_playwright_the_browser_is_unavailable); ISA-L's gzip
# (``archiver.warc`` and ``archiver.capturing.pack`` fall back to zlib; tests/test_warc.py
# and tests/test_fast_paths.py test both ways).
IMPORTED_EXTRAS = {"browser", "fast"}


def test_every_imported_module_is_a_core_dependency() -> None:
    """A module the package imports must come with a plain install: no import of an
    optional extra's module (those run as ``python -m`` children after a check), except the
    extras in ``IMPORTED_EXTRAS``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    core |= {_requirement_name(r) for extra in IMPORTED_EXTRAS
             for r in project["optional-dependencies"][extra]}
    optional = {_requirement_name(r) for extra in IMPORTED_EXTRAS
                for r in project["optional-dependencies"][extra]}
    providers = metadata.packages_distributions()
    missing = []
    for module, where in sorted(_third_party_imports().items()):
        dists = {_norm(d) for d in providers.get(module, [])}
        if not dists and _norm(module) in optional:
            continue  # an imported extra not installed here: its absence is handled
        assert dists, f"{module} (imported at {where[0]}) is not installed at all"
        if not dists & core:
            missing.append(f"{module} (from {sorted(dists)}, imported at {', '.join(where)})")
    assert not missing, "imported but not a core dependency: " + "; ".join(missing)


# ── the Makefile ─────────────────────────────────────────────────────────────


def _make_dry_run(target: str, venv_dir: Path) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run([make, "-n", "-C", str(REPO), target, f"VENV={venv_dir}"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _installs(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if "pip install" in line]


def test_make_run_installs_the_package_without_the_test_extra(tmp_path: Path) -> None:
    installs = _installs(_make_dry_run("run", tmp_path / "venv"))
    assert installs, "make run installs nothing on a fresh machine"
    assert not any("[test]" in line for line in installs), installs
    assert any(line.rstrip().endswith(("-e .", "install .", "'.'")) for line in installs), \
        installs


def test_make_test_installs_the_test_extra_even_after_make_run(tmp_path: Path) -> None:
    venv_dir = tmp_path / "venv"
    assert any("[test]" in line for line in _installs(_make_dry_run("test", venv_dir)))
    # As `make run` leaves it: a venv and the run stamp, newer than pyproject.toml.
    (venv_dir / "bin").mkdir(parents=True)
    (venv_dir / "bin" / "python").write_text("")
    run_commands = _make_dry_run("run", venv_dir)
    for stamp in re.findall(r"touch (\S+)", run_commands):
        Path(stamp if os.path.isabs(stamp) else REPO / stamp).touch()
    assert not _installs(_make_dry_run("run", venv_dir)), "make run reinstalls every time"
    assert any("[test]" in line for line in _installs(_make_dry_run("test", venv_dir))), \
        "make test skips the test toolchain after make run"


def test_ci_script_installs_chromium_and_runs_make_test() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in script
    assert "apt-get install" in script and "chromium" in script
    assert script.rstrip().splitlines()[-1].strip() == "make test"


def test_ci_script_installs_a_pinned_replaywebpage_before_make_test() -> None:
    """tests/test_wacz_replay.py needs node_modules/replaywebpage; .ci/run fetches a pinned
    version from npm (and Debian's npm when missing), and git ignores node_modules."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    pinned = re.search(r"^REPLAYWEBPAGE_VERSION=(\d+\.\d+\.\d+)$", script, re.MULTILINE)
    assert pinned, "the ReplayWeb.page version is not pinned"
    assert re.search(r"npm (pack|install) .*\$REPLAYWEBPAGE", script)
    assert "node_modules/replaywebpage" in script
    assert "apt-get install" in script and "nodejs npm" in script
    assert script.index("node_modules/replaywebpage") < script.rindex("make test")
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q",
                              "node_modules/replaywebpage/sw.js"], timeout=30)
    assert ignored.returncode == 0, "node_modules is not git-ignored"


# ── a real install without extras ────────────────────────────────────────────


def _run(exe: Path, *args: str, cwd: Path, env: dict[str, str],
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_plain_install_runs_every_core_command(tmp_path: Path) -> None:
    """``pip install .`` into a fresh venv, no extras; then every command the installed
    ``archiver`` has. Core commands work; ``export --wacz`` and ``serve`` say in one line
    which extra to install."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # A copy of the sources, so the build leaves nothing in the repository.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "archive", "reports", "tests",
        ".*_cache", "bench", "docs"))
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(source)],
                          env=env, capture_output=True, text=True, timeout=780)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]

    # Nothing from the extras came along (the point of the test).
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], env=env,
                            capture_output=True, text=True, timeout=60)
    installed = {_norm(p["name"]) for p in json.loads(listed.stdout)}
    assert "archiver" in installed
    assert not installed & {"pywb", "wacz", "pytest", "playwright"}, installed

    archiver = env_dir / "bin" / "archiver"
    project = tmp_path / "project"
    project.mkdir()
    with WebServer() as web:
        web.route("/a", Reply(200, ARTICLE, HTML))
        config = make_project(project, [web.url("/a"), web.url("/missing")])
        shutil.copy(BRIEFING, project / "sources")  # extract and lint read the shipped one
        where = _run(python, "-c", "import archiver; print(archiver.__file__)", cwd=project,
                     env=env)
        assert str(env_dir) in where.stdout, where.stdout + where.stderr

        steps: list[tuple[tuple[str, ...], int]] = [
            (("--help",), 0),
            (("extract", "sources/kazakhstan-2020.md", "--format", "json"), 0),
            (("lint", "sources/kazakhstan-2020.md"), 0),
            (("run", "--no-rescue"), 0),
            (("check", "--no-rescue", "--fail-on", "none"), 0),
            (("report",), 0),
            (("show", web.url("/a"), "--text"), 0),
            (("show", "brief#2"), 0),
        ]
        for args, expected in steps:
            done = _run(archiver, *args, cwd=project, env=env)
            output = done.stdout + done.stderr
            assert done.returncode == expected, f"archiver {' '.join(args)}: {output}"
            assert "Traceback" not in output and "internal error" not in output, output
        assert json.loads((project / "reports" / "brief" / "report.json").read_text(
            encoding="utf-8"))["links"][0]["verdict"] == "ok"
        shown = _run(archiver, "show", web.url("/a"), "--raw", cwd=project, env=env)
        assert shown.returncode == 0 and shown.stdout == ARTICLE.decode()

    assert config.exists()
    for args, name in ((("export", "--wacz"), "archiver export --wacz needs wacz"),
                       (("serve", "--port", "0"), "archiver serve needs pywb")):
        done = _run(archiver, *args, cwd=project, env=env, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr == f"error: {name}: pip install 'archiver[replay]'\n", done.stderr
        assert done.stdout == ""
