"""A page's body is spooled to the system's temporary folder past 256 KiB while it is read:
when that folder is full (a small /tmp in a container), the run stops with a clear error
(exit 3) naming it, as for a full archive disk. It was taken for the site closing the
connection: every long page judged ``incomplete`` ("body cut at 65536 of N bytes
(connection closed)") and a cut capture kept, on either transport, exit 0.

The temporary folder is a real 64 KiB tmpfs (needs root and permission to mount; skipped
with the reason otherwise)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from archiver.catalog import Catalog
from tests.test_run import call, make_project
from tests.tmpfs import small_tmpfs
from tests.webserver import Reply, WebServer

pytestmark = pytest.mark.usefixtures("fetch_transport")


def test_a_full_temporary_folder_stops_the_run_not_the_page(
        tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    page = b"<html><body>" + b"<p>A paragraph of a long report.</p>" * 20_000 + b"</body></html>"
    web.route("/long", Reply(200, page, {"Content-Type": "text/html"}))
    config = make_project(tmp_path, [web.url("/long")])
    with small_tmpfs(tmp_path / "tmp", "64k") as tiny:
        # The system's temporary folder of this process and of the workers it forks.
        monkeypatch.setattr(tempfile, "tempdir", str(tiny))
        code, out, err = call("run", "--config", str(config))
    assert code == 3, out + err
    assert "Traceback" not in err
    assert f"error: {tiny}" in err, err
    assert "space" in err.lower(), err
    with Catalog.open(tmp_path / "archive") as catalog:
        last = catalog.last_result(web.url("/long"))
    assert last is None or last.verdict.value != "incomplete", last
