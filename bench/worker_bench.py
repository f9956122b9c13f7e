"""CPU per captured page in a fetch worker, without the network (run by hand, not in CI).

What a capture worker does with a page once its bytes are in, in-process and timed by stage
(``time.process_time``): read the page (``pagetext.extract``), judge it (``classify``), write
its request and response records (``WarcWriter.write_exchange``), the ``cited-by`` metadata
record (``write_metadata``) and the provenance record (``provenance.write``), and at the end
close the WARC file (``close``: rename and index). The pages are those of
``bench/speed_bench.py``'s web (20 KB news pages, every 10th URL nginx's 404 page), with
the heads nginx and httpx exchange for them.

Each figure is the best of ``--repeat`` rounds (CPU milliseconds per page). With ``--out DIR``
the outputs are kept for comparison with another checkout: record IDs and the clock are
pinned, so the WARC files, ``index.cdxj`` and ``pages.json`` (text, title, heading,
language, verdict, reason and provenance document of every page) must be byte for byte the
same when the code under test changes only its speed:

    .venv/bin/python bench/worker_bench.py --out /tmp/new
    .venv/bin/python /tmp/old-archiver/bench/worker_bench.py --out /tmp/old   # another copy
    diff -r /tmp/old /tmp/new

(The bench reads the pages from ``speed_bench``, which puts its own checkout first on
``sys.path``: run the copy of this file that lies in the checkout to be measured.)
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import itertools
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from warcio.statusandheaders import StatusAndHeadersParser

if not any(Path(p, "archiver").is_dir() for p in sys.path if p):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed_bench import _SECTIONS, page_html

import archiver.warc as warc_module
from archiver import classify, pagetext, provenance
from archiver.models import Capture, Hop
from archiver.warc import WarcWriter

PORT = 8080
NOT_FOUND = (b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
             b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
             b"</body>\r\n</html>\r\n")
STAGES = ("extract", "classify", "write_exchange", "write_metadata", "provenance")


def pages(count: int) -> list[tuple[str, int, bytes]]:
    """(url, status, body) as ``speed_bench.build_web`` makes them: 50 hosts, every 10th
    page of a host missing."""
    rng = random.Random(14)
    out = []
    for i in range(count):
        host, k = f"127.0.0.{i % 50 + 1}", i // 50
        section = rng.choice(_SECTIONS)
        path = f"/news/{k:05d}-{section.lower()}-story.html"
        url = f"http://{host}:{PORT}{path}"
        if k % 10 == 9:
            out.append((url, 404, NOT_FOUND))
        else:
            out.append((url, 200, page_html(host, path, section, 20_000, rng)))
    return out


def heads(url: str, status: int, body: bytes) -> tuple[bytes, bytes]:
    host = url.split("/")[2]
    path = "/" + url.split("/", 3)[3]
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n"
               "Accept-Encoding: gzip, deflate, br, zstd\r\nConnection: keep-alive\r\n"
               "User-Agent: archiver/0.1 (+https://example.org/archiver)\r\n\r\n").encode()
    reason = "OK" if status == 200 else "Not Found"
    response = (f"HTTP/1.1 {status} {reason}\r\nServer: nginx/1.22.1\r\n"
                "Date: Mon, 30 Nov 2026 09:00:00 GMT\r\nContent-Type: text/html\r\n"
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n"
                + ("Last-Modified: Mon, 30 Nov 2026 08:00:00 GMT\r\nETag: \"6b2a-5ec\"\r\n"
                   "Accept-Ranges: bytes\r\n" if status == 200 else "")
                + "\r\n").encode()
    return request, response


def one_round(work: Path, corpus: list[tuple[str, int, bytes]], *, keep: bool
              ) -> tuple[dict[str, float], list[dict[str, object]]]:
    """Capture every page of ``corpus`` into ``work``; CPU seconds per stage, and (with
    ``keep``) what each page gave."""
    counter = itertools.count()
    moment = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
    if keep:  # pinned record IDs (the warcinfo record's too): the same bytes on every run
        def pinned() -> str:
            return f"<urn:uuid:{uuid.UUID(int=next(counter))}>"

        warc_module._record_id = pinned
        StatusAndHeadersParser.make_warc_id = staticmethod(pinned)  # type: ignore[method-assign]
    spent = dict.fromkeys((*STAGES, "close"), 0.0)
    results: list[dict[str, object]] = []
    settings = provenance.capture_settings("archiver/0.1 (+https://example.org/archiver)")
    clock = time.process_time
    writer = WarcWriter(work / "archive", root=work, run_id="1", clock=lambda: moment)
    writer.prepare()
    # The fetcher hashes a body as it arrives and hands the digest to the writer (when the
    # writer takes it), which then hashes the body once rather than twice.
    given = "payload_sha256" in inspect.signature(WarcWriter.write_exchange).parameters
    # The capture stage reads each body once, without extract's cache (where it has one).
    uncached = {"cache": False} if "cache" in inspect.signature(pagetext.extract).parameters \
        else {}
    for url, status, body in corpus:
        request_head, response_head = heads(url, status, body)
        digest = {"payload_sha256": "sha256:" + hashlib.sha256(body).hexdigest()} if given else {}
        t0 = clock()
        page = pagetext.extract(body, "text/html", url, **uncached)
        t1 = clock()
        exchange = writer.write_exchange(
            url=url, request_head=request_head, response_head=response_head,
            body=io.BytesIO(body), remote_ip=url.split("/")[2].split(":")[0],
            captured_at=moment, **digest)
        t2 = clock()
        hop = Hop(url=url, status=status, headers=(("Content-Type", "text/html"),),
                  warc=exchange.response, revisit=exchange.revisit,
                  remote_ip=url.split("/")[2].split(":")[0],
                  request_headers=provenance.request_headers(request_head),
                  record_sha256=exchange.response_sha256)
        capture = Capture(url=url, final_url=url, status=status, hops=(hop,), content=body,
                          content_type="text/html", payload_digest=exchange.payload_digest,
                          captured_at=moment, body_bytes=len(body))
        t3 = clock()
        judgement = classify.classify(capture, cited_url=url, page=page)
        t4 = clock()
        writer.write_metadata(url=url, concurrent_to=exchange.response.record_id,
                              fields=[("cited-url", url), ("cited-by", "bench#1")],
                              captured_at=moment)
        t5 = clock()
        kept = provenance.write(writer, capture, cited_url=url, settings=settings)
        t6 = clock()
        spent["extract"] += t1 - t0
        spent["write_exchange"] += t2 - t1
        spent["classify"] += t4 - t3
        spent["write_metadata"] += t5 - t4
        spent["provenance"] += t6 - t5
        if keep:
            results.append({"url": url, "title": page.title, "text": page.text,
                            "heading": page.heading, "language": page.language,
                            "kind": page.kind, "verdict": judgement.verdict.value,
                            "reason": judgement.reason,
                            "provenance": kept.text if kept else None})
    t0 = clock()
    writer.close()
    spent["close"] = clock() - t0
    return spent, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="pages (default 500)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, help="keep the outputs here (pinned IDs)")
    parser.add_argument("--zlib", action="store_true",
                        help="gzip with zlib even where isal is importable (the bytes of a "
                             "checkout without it, for --out comparisons)")
    args = parser.parse_args()
    gzip = getattr(warc_module, "_FAST_DEFLATE", None)
    if args.zlib:
        warc_module._FAST_DEFLATE = None  # type: ignore[attr-defined]
    elif gzip is not None:
        print(f"gzip: {gzip.__name__} at the writer's level (--zlib for zlib's bytes)")
    corpus = pages(args.count)
    best: dict[str, float] = {}
    results: list[dict[str, object]] = []
    for n in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp:
            keep = args.out is not None and n == 0
            pagetext._extract_cached.cache_clear()
            spent, found = one_round(Path(tmp), corpus, keep=keep)
            if keep:
                results = found
                args.out.mkdir(parents=True, exist_ok=True)
                shutil.copytree(Path(tmp) / "archive", args.out / "archive",
                                dirs_exist_ok=True)
        for key, value in spent.items():
            best[key] = min(best.get(key, value), value)
    if args.out is not None:
        (args.out / "pages.json").write_text(
            json.dumps(results, ensure_ascii=False, indent=1), "utf-8")
    per = {k: v / args.count * 1000 for k, v in best.items()}
    print(f"{args.count} pages, best of {args.repeat} rounds, CPU ms per page:")
    for key, value in per.items():
        print(f"  {key:<15} {value:7.3f}")
    print(f"  {'all':<15} {sum(per.values()):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
