"""Provenance per capture and the chain of custody, end to end against loopback servers.

A run over HTTPS writes, for every capture, a ``metadata`` record (``application/json``,
Concurrent-To the response) and a catalog row holding the same document, and one custody
entry chained to the one before.
"""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from warcio.archiveiterator import ArchiveIterator

from archiver import custody
from archiver.catalog import Catalog
from tests.test_run import ARTICLE, call, make_project, read_back
from tests.webserver import Reply, WebServer, redirect


def records_by_id(root: Path) -> dict[str, tuple[dict[str, str], bytes, Path, int, int]]:
    """Every record: id → (WARC headers, content bytes, file, offset, length)."""
    out = {}
    for path in sorted((root / "archive").glob("*.warc.gz")):
        with path.open("rb") as fh:
            it = ArchiveIterator(fh, check_digests=True)
            for record in it:
                body = record.content_stream().read()
                headers = dict(record.rec_headers.headers)
                out[headers["WARC-Record-ID"]] = (headers, body, path, it.get_record_offset(),
                                                  0)
    return out


@pytest.fixture
def secure_site(https_web: WebServer, monkeypatch: pytest.MonkeyPatch) -> WebServer:
    monkeypatch.setenv("SSL_CERT_FILE", https_web.ca_file)
    https_web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    https_web.route("/old-article", redirect("/article", 301))
    return https_web


def test_https_capture_has_provenance_in_warc_catalog_and_custody(
        tmp_path: Path, secure_site: WebServer) -> None:
    cited = secure_site.url("/old-article")
    config = make_project(tmp_path, [cited], extra='\n[provenance]\nactor = "ana@desk"\n')
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    read_back(tmp_path)  # digests verified, warcio check passes

    records = records_by_id(tmp_path)
    metas = [(h, b) for h, b, *_ in records.values()
             if h["WARC-Type"] == "metadata" and h.get("Content-Type") == "application/json"]
    assert len(metas) == 1
    headers, block = metas[0]
    doc = json.loads(block)
    response_headers, payload, _path, _, _ = records[headers["WARC-Concurrent-To"]]
    assert response_headers["WARC-Type"] == "response"
    assert payload == ARTICLE

    final = secure_site.url("/article")
    assert doc["cited_url"] == cited and doc["url"] == final
    # Not under the page's URL: it would be indexed and replayed in place of the page.
    assert headers["WARC-Target-URI"] == "urn:provenance:" + final
    assert [(h["url"], h["status"]) for h in doc["chain"]] == [(cited, 301), (final, 200)]
    assert doc["server_ip"] == "127.0.0.1"
    assert doc["payload_sha256"] == hashlib.sha256(ARTICLE).hexdigest()
    assert response_headers["WARC-Payload-Digest"] == "sha256:" + doc["payload_sha256"]
    # The response record's gzip member, exactly as stored, hashes to what the record says.
    with Catalog.open(tmp_path / "archive") as catalog:
        stored = catalog.latest_capture(cited)
        assert stored is not None and stored.warc is not None
        row = catalog.provenance(stored.warc.record_id)
    assert row is not None
    text, sha, meta_id = row
    assert json.loads(text) == doc and meta_id == headers["WARC-Record-ID"]
    assert sha == hashlib.sha256(block).hexdigest()
    with (tmp_path / stored.warc.path).open("rb") as fh:
        fh.seek(stored.warc.offset)
        member = fh.read(stored.warc.length)
    assert doc["response_record_sha256"] == hashlib.sha256(member).hexdigest()

    # TLS: the certificate the server presents, as a client independently sees it.
    tls = doc["tls"]
    assert tls["version"].startswith("TLSv1.")
    port = urlsplit(final).port
    assert port is not None
    leaf_pem = ssl.get_server_certificate(("127.0.0.1", port))
    leaf_der = ssl.PEM_cert_to_DER_cert(leaf_pem)
    assert tls["chain"][0]["sha256"] == hashlib.sha256(leaf_der).hexdigest()
    assert ssl.PEM_cert_to_DER_cert(tls["chain"][0]["pem"]) == leaf_der
    assert tls["chain_complete"] is True
    assert tls["chain"][0]["not_after"] > doc["captured_at"]
    names = {k.lower() for k, _ in doc["request_headers"]}
    assert "user-agent" in names and "host" in names
    assert doc["settings"]["mode"] == "http" and doc["settings"]["profile"] == "none"
    assert doc["archiver_version"]

    entries = list(custody.entries(tmp_path / "archive"))
    assert [(e["action"], e["subject"], e["actor"]) for e in entries] == [
        ("capture", cited, "ana@desk")]
    assert entries[0]["sha256"] == sha and entries[0]["prev"] == custody.GENESIS
    assert custody.walk(tmp_path / "archive").intact


def test_plain_http_capture_records_no_tls(tmp_path: Path, web: WebServer) -> None:
    web.route("/page", Reply(200, b"<html><title>t</title>plain</html>",
                             {"Content-Type": "text/html"}))
    config = make_project(tmp_path, [web.url("/page")])
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    read_back(tmp_path)
    docs = [json.loads(b) for h, b, *_ in records_by_id(tmp_path).values()
            if h.get("Content-Type") == "application/json"]
    assert len(docs) == 1 and docs[0]["tls"] is None
    assert docs[0]["kind"] == "http"
    [entry] = custody.entries(tmp_path / "archive")
    assert "@" in entry["actor"]  # user@host when the config names no actor


def test_show_provenance_and_report_carry_the_digests(tmp_path: Path,
                                                      secure_site: WebServer) -> None:
    cited = secure_site.url("/article")
    config = make_project(tmp_path, [cited])
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    code, out, err = call("show", cited, "--provenance", "--config", str(config),
                          "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    doc = shown["provenance"]
    assert doc["payload_sha256"] == hashlib.sha256(ARTICLE).hexdigest()
    assert doc["tls"]["chain"][0]["pem"].startswith("-----BEGIN CERTIFICATE-----")
    code, text, err = call("show", cited, "--provenance", "--config", str(config))
    assert code == 0, err
    assert doc["payload_sha256"] in text and doc["tls"]["chain"][0]["sha256"] in text
    assert "BEGIN CERTIFICATE" in text and "request headers sent" in text
    assert "127.0.0.1" in text

    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    [link] = report["links"]
    glance = link["provenance"]
    assert glance["payload_sha256"] == doc["payload_sha256"]
    assert glance["record_sha256"] == doc["response_record_sha256"]
    assert glance["certificate_sha256"] == doc["tls"]["chain"][0]["sha256"]
    assert glance["server_ip"] == "127.0.0.1" and glance["captured_at"] == doc["captured_at"]
    html = (tmp_path / "reports" / "brief" / "report.html").read_text()
    assert doc["payload_sha256"] in html and doc["tls"]["chain"][0]["sha256"] in html


def test_rescued_copy_is_stored_under_the_original_url_and_date(tmp_path: Path,
                                                                web: WebServer) -> None:
    from archiver import open_archive
    from tests.wayback_server import WaybackServer

    dead = web.url("/removed-article")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        settings = wayback.settings()
        extra = "".join(f'{key} = "{getattr(settings, key)}"\n'
                        for key in ("availability_api", "cdx_api", "replay_base"))
        config = make_project(tmp_path, [dead], rescue=True, extra=extra)
        code, out, err = call("run", "--config", str(config), "--rescue-capture")
        assert code == 0, out + err
    read_back(tmp_path)
    records = records_by_id(tmp_path)
    copies = [h for h, *_ in records.values()
              if h["WARC-Type"] == "response" and "WARC-Source-URI" in h]
    assert len(copies) == 1
    copy = copies[0]
    assert copy["WARC-Target-URI"] == dead
    assert copy["WARC-Date"] == "2020-10-28T09:30:12Z"
    assert copy["WARC-Source-URI"] == f"{settings.replay_base}/20201028093012id_/{dead}"
    assert copy["WARC-Creation-Date"].startswith("20")
    assert not copy["WARC-Creation-Date"].startswith("2020-10-28")
    # Replay tools find it under the cited URL at the memento's date (the index says so).
    index = (tmp_path / "archive" / "index.cdxj").read_text()
    assert f'"url": "{dead}"' in index and " 20201028093012 " in index
    docs = [json.loads(b) for h, b, *_ in records.values()
            if h.get("Content-Type") == "application/json"
            and h["WARC-Concurrent-To"] == copy["WARC-Record-ID"]]
    assert len(docs) == 1
    doc = docs[0]
    assert doc["kind"] == "rescued" and doc["cited_url"] == dead
    assert doc["memento"]["captured_by"] == "Internet Archive"
    assert doc["memento"]["memento_datetime"].startswith("2020-10-28T09:30:12")
    assert doc["payload_sha256"] == hashlib.sha256(ARTICLE).hexdigest()
    assert [e["action"] for e in custody.entries(tmp_path / "archive")] == ["capture",
                                                                             "rescue"]
    # Reading it back through the API and `show` still works, and everything verifies.
    with open_archive(config) as archive:
        rescued = [c for c in archive.captures(dead) if c.origin == "internet-archive"]
        assert len(rescued) == 1 and rescued[0].payload() == ARTICLE
    code, out, _ = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 0 and "upheld the conviction" in out
    code, out, _ = call("verify", "--config", str(config))
    assert code == 0, out
    # The package lists it under the cited URL at the memento's date.
    import zipfile

    target = tmp_path / "rescued.wacz"
    code, out, err = call("export", "--wacz", "--config", str(config), "-o", str(target))
    assert code == 0, out + err
    with zipfile.ZipFile(target) as wacz:
        pages = [json.loads(line) for line in
                 wacz.read("pages/pages.jsonl").decode().splitlines()[1:]]
    assert [(p["url"], p["ts"]) for p in pages] == [(dead, "2020-10-28T09:30:12Z")]


def test_a_live_page_is_never_a_revisit_of_a_rescued_copy(tmp_path: Path,
                                                          web: WebServer) -> None:
    from tests.wayback_server import WaybackServer

    dead = web.url("/removed-article")
    with WebServer() as archive_host:
        wayback = WaybackServer(archive_host)
        wayback.add(dead, "20201028093012", body=ARTICLE)
        settings = wayback.settings()
        extra = "".join(f'{key} = "{getattr(settings, key)}"\n'
                        for key in ("availability_api", "cdx_api", "replay_base"))
        config = make_project(tmp_path, [dead], rescue=True, extra=extra)
        assert call("run", "--config", str(config), "--rescue-capture")[0] == 0
        # Later the same bytes are cited live: their record must not point at the copy,
        # whose record is stored under another URL and date than the catalog row's.
        web.route("/mirror", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
        make_project(tmp_path, [dead, web.url("/mirror")], rescue=True, extra=extra)
        assert call("run", "--config", str(config))[0] == 0
    read_back(tmp_path)
    records = records_by_id(tmp_path)
    mirror = [h for h, *_ in records.values()
              if h.get("WARC-Target-URI") == web.url("/mirror")
              and h["WARC-Type"] in ("response", "revisit")]
    assert [h["WARC-Type"] for h in mirror] == ["response"]
    code, out, _ = call("verify", "--config", str(config))
    assert code == 0, out


@pytest.mark.parametrize("shape", ["http", "https", "rescued"])
def test_written_provenance_is_the_canonical_encoding_of_its_document(tmp_path: Path,
                                                                        shape: str) -> None:
    """The record's bytes (and the catalog's text) are ``encode(document(...))``, sorted
    keys at every level, for every shape of document: redirects, a TLS chain, a memento."""
    import io
    from datetime import UTC, datetime

    from archiver import provenance
    from archiver.models import Capture, Hop, TlsCertificate, TlsSession
    from archiver.warc import WarcWriter

    moment = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
    tls = TlsSession("TLSv1.3", "TLS_AES_128_GCM_SHA256", tuple(
        TlsCertificate(der=bytes([n]) * 40, sha256=f"{n:02x}" * 32, subject=f"CN=ü{n}",
                       issuer="CN=Issuer, O=\"Quote\"", not_before=moment,
                       not_after=datetime(2027, 1, 1, 12, 0, 0, tzinfo=UTC))
        for n in range(2)), chain_complete=False, note="leaf only")
    url, final = "http://example.org/a?q=ж", "https://example.org/b"
    with WarcWriter(tmp_path / "archive", root=tmp_path, run_id="1") as writer:
        exchange = writer.write_exchange(
            url=final, request_head=b"GET /b HTTP/1.1\r\nHost: example.org\r\n\r\n",
            response_head=b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
            body=io.BytesIO(b"<p>page</p>"), remote_ip="192.0.2.1", captured_at=moment)
        hops = (Hop(url=url, status=301, headers=(), remote_ip="192.0.2.1"),
                Hop(url=final, status=200, headers=(), warc=exchange.response,
                    remote_ip="192.0.2.2", tls=tls if shape == "https" else None,
                    request_headers=(("Host", "example.org"), ("Cookie", "[redacted]")),
                    record_sha256=exchange.response_sha256))
        capture = Capture(url=url, final_url=final, status=200, hops=hops, content=b"",
                          content_type="text/html", payload_digest=exchange.payload_digest,
                          captured_at=moment, body_bytes=11)
        memento = ((("memento_url", "https://web.archive.org/web/2020/" + url),
                     ("captured_by", "Internet Archive"), ("archive", "IA"))
                   if shape == "rescued" else ())
        settings = provenance.capture_settings("archiver/0.1 (+https://example.org)",
                                               mode="browser", profile="used")
        kept = provenance.write(writer, capture, cited_url=url, settings=settings,
                                memento=memento)
    doc = provenance.document(provenance.for_capture(capture, cited_url=url,
                                                     settings=settings, memento=memento))
    assert kept is not None
    assert kept.text.encode("utf-8") == provenance.encode(doc)
    assert kept.sha256 == provenance.document_sha256(json.loads(kept.text))
    written = records_by_id(tmp_path)[kept.metadata_id][1]
    assert written == provenance.encode(doc)
