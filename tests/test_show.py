"""Which WARC record a link points at, and ``archiver show``, against real loopback servers.

The contract (``CONTRACT.md``, "capture"): a link's ``capture`` is the record whose
``WARC-Target-URI`` is the URL fetched (its ``response``, or its ``revisit`` when the payload
was already archived), and ``capture.payload`` is the record holding the bytes. Each test
reads the records back with warcio at the offsets the tool names.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from tests.test_run import ARTICLE, call, make_project, read_back
from tests.webserver import Reply, WebServer

HTML = {"Content-Type": "text/html; charset=utf-8"}


def record_at(root: Path, ref: dict[str, Any]) -> tuple[Any, bytes]:
    """The WARC record at ``ref`` (warc, offset, length, record_id) and its raw payload."""
    with (root / ref["warc"]).open("rb") as fh:
        fh.seek(ref["offset"])
        data = fh.read(ref["length"])
    record = next(iter(ArchiveIterator(io.BytesIO(data), check_digests=True)))
    body = record.raw_stream.read()
    assert record.rec_headers.get_header("WARC-Record-ID") == ref["record_id"]
    return record, body


def links_of(root: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((root / "reports" / "brief" / "report.json").read_text("utf-8"))
    return {link["url"]: link for link in report["links"]}


def raw(config: Path, ref: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "archiver", "show", ref, "--raw",
                           "--config", str(config), *extra], capture_output=True, timeout=60)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_capture_of_a_deduplicated_payload_is_this_urls_revisit(tmp_path: Path,
                                                                 web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, {**HTML, "X-Page": "a"}))
    web.route("/b", Reply(200, ARTICLE, {**HTML, "X-Page": "b"}))
    urls = [web.url("/a"), web.url("/b")]
    config = make_project(tmp_path, urls)
    assert call("run", "--config", str(config))[0] == 0
    read_back(tmp_path)

    links = links_of(tmp_path)
    kinds = []
    for url in urls:
        capture = links[url]["capture"]
        record, _ = record_at(tmp_path, capture)
        assert record.rec_headers.get_header("WARC-Target-URI") == url
        assert record.rec_headers.get_header("WARC-Date") == capture["captured_at"]
        payload, payload_body = record_at(tmp_path, capture["payload"])
        assert payload.rec_type == "response" and payload_body == ARTICLE
        kinds.append(record.rec_type)
        if record.rec_type == "revisit":
            assert record.rec_headers.get_header("WARC-Refers-To") == \
                capture["payload"]["record_id"]
            assert payload.rec_headers.get_header("WARC-Target-URI") != url
            assert record.rec_headers.get_header("WARC-Refers-To-Target-URI") == \
                payload.rec_headers.get_header("WARC-Target-URI")
        else:
            assert capture["payload"] == {k: capture[k] for k in
                                          ("warc", "offset", "length", "record_id")}
    assert sorted(kinds) == ["response", "revisit"]

    for ref, page in (("brief#1", "a"), ("brief#2", "b")):
        done = raw(config, ref)
        assert done.returncode == 0, done.stderr
        assert sha(done.stdout) == sha(ARTICLE)
        # The headers are this URL's answer, not those of the record holding the bytes.
        code, out, _ = call("show", ref, "--headers", "--config", str(config))
        assert code == 0 and f"X-Page: {page}" in out, out


def test_unchanged_page_rechecked_points_at_its_revisit(tmp_path: Path, web: WebServer) -> None:
    web.route("/a", Reply(200, ARTICLE, HTML))
    url = web.url("/a")
    config = make_project(tmp_path, [url])
    assert call("run", "--config", str(config))[0] == 0
    first = links_of(tmp_path)[url]["capture"]
    assert call("check", "--config", str(config))[0] == 0
    read_back(tmp_path)

    capture = links_of(tmp_path)[url]["capture"]
    record, _ = record_at(tmp_path, capture)
    assert record.rec_type == "revisit"
    assert record.rec_headers.get_header("WARC-Target-URI") == url
    assert record.rec_headers.get_header("WARC-Refers-To") == first["record_id"]
    assert capture["captured_at"] == record.rec_headers.get_header("WARC-Date")
    assert capture["captured_at"] != first["captured_at"] or capture["offset"] != first["offset"]
    assert capture["payload"]["record_id"] == first["record_id"]
    payload, body = record_at(tmp_path, capture["payload"])
    assert payload.rec_type == "response" and body == ARTICLE

    done = raw(config, url)
    assert done.returncode == 0 and sha(done.stdout) == sha(ARTICLE)
    code, out, _ = call("show", url, "--format", "json", "--config", str(config))
    assert code == 0
    newest = json.loads(out)[url][0]
    assert newest["record_id"] == capture["record_id"]
    assert newest["payload"]["record_id"] == first["record_id"]
