"""bench/speed_bench.py --quick runs end to end on a real nginx web: its figures parse, the
archiver's verdicts match the web, nothing beats the physical limit, and nginx is stopped.

Skipped only when nginx or its echo module is absent (.ci/run installs both)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
    pytest.mark.skipif(not ECHO_MODULE.exists(), reason="the nginx echo module is not installed"),
]


def _bench_processes() -> list[str]:
    """Command lines of running processes that belong to a speed-bench work folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "speed-bench-" in line and "nginx" in line:
                found.append(line)
    return found


@pytest.mark.timeout(300)
def test_quick_run_figures_parse_and_verdicts_match_the_web(tmp_path: Path) -> None:
    figures_file = tmp_path / "figures.json"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "speed_bench.py"), "--quick", "--no-wget",
         "--json", str(figures_file)],
        capture_output=True, text=True, timeout=280, env=env, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr

    figures = json.loads(figures_file.read_text())
    assert figures["machine"]["nproc"] >= 1
    assert (figures["per_host"], figures["concurrency"], figures["nginx_workers"]) == (2, 128, 1)
    latency = figures["scenarios"]["latency"]
    assert (latency["settings"]["urls"], latency["settings"]["hosts"]) == (200, 5)
    assert latency["missing"] == 20

    ours = latency["runs"]["archiver"]
    # Every 10th page of each host is missing: 180 pages answer, 20 are nginx's 404.
    assert ours["counts"] == {"ok": 180, "not_found": 20}
    # 40 URLs and one soft-404 probe per host, 2 at a time, 100 ms each: 21 rounds.
    assert ours["requests"] == 205
    assert ours["limit"] == pytest.approx(2.1)
    # Nothing beats the physical limit: the latency really was served.
    assert ours["wall"] >= ours["limit"]
    assert ours["cpu"] > 0 and ours["peak_pss"] > 10e6 and ours["peak_rss"] > 10e6
    assert ours["processes"] >= 1

    if "lychee" in latency["runs"]:
        theirs = latency["runs"]["lychee"]
        assert theirs["counts"] == {"ok": 180, "error": 20}
        assert theirs["wall"] >= theirs["limit"] == pytest.approx(2.0)

    assert {t["text"] for t in latency["targets"]} >= {
        "archiver wall <= 1.2x the physical limit"}
    assert all(isinstance(t["passed"], bool) for t in latency["targets"])
    assert "archiver" in done.stdout and "target:" in done.stdout

    # The web is gone: nginx stopped, the work folder removed.
    assert not list(tmp_path.glob("speed-bench-*"))
    assert _bench_processes() == []
