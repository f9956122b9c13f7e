"""WARC writing benchmark (run by hand, not in CI): CPU per record and file size.

Two parts, both in CPU time (``time.process_time``), so that other load on the machine
matters less than for wall time; each figure is the best of ``--repeat`` rounds.

1. ``levels``: gzip (zlib) alone, levels 1..9, on the bodies below: CPU per body and the
   compressed size as a share of the raw size. With ``isal`` importable (``pip install
   isal``; not a dependency), its levels 0..3 are shown too. This is what the writer's
   level was chosen from (see ``GZIP_LEVEL`` in ``archiver/warc.py``).
2. ``writer``: ``WarcWriter.write_exchange`` (request + response records, gzip, digests,
   append to the file) per exchange, then ``close()`` (rename and index) per record, and the
   WARC file's size per exchange.
3. ``keys`` (only when asked for): the SURT key of an index line, ``warc.url_key`` against
   ``surt.surt`` (cdxj-indexer's own call), CPU per key.

Bodies: ``html`` is HTML built from a fixed vocabulary of 2,000 words drawn with a Zipf-like
law (it compresses to about 30-35%, as real pages do); ``filler`` is the repetitive page the
capture benchmark serves (about 1%); ``pdf`` is a PDF-like body of Flate-compressed streams
between short text objects (it barely compresses, as real PDFs do not); in the writer part
also ``html.gz`` (the HTML sent with ``Content-Encoding: gzip``) and ``jpeg`` (2 MB of
entropy-coded bytes, ``image/jpeg``), which the writer stores without deflating them
again. Every body differs
from the others of its kind, so no record becomes a revisit.

    .venv/bin/python bench/warc_bench.py                  # both parts
    .venv/bin/python bench/warc_bench.py writer --count 400
    .venv/bin/python bench/warc_bench.py keys --repeat 5
    PYTHONPATH=/tmp/old-archiver .venv/bin/python bench/warc_bench.py writer   # another copy
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import random
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

if not any(Path(p, "archiver").is_dir() for p in sys.path if p):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import archiver.warc as warc_module
from archiver.warc import WarcWriter

REQUEST = b"GET /page HTTP/1.1\r\nHost: example.org\r\nUser-Agent: archiver-bench\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Server: nginx\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n")
PDF_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n"
GZIP_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                 b"Vary: Accept-Encoding\r\n\r\n")
IMAGE_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n"
SIZES = {"5K": 5_000, "20K": 20_000, "100K": 100_000}
PDF_SIZE = 2_000_000


def _words(rng: random.Random) -> list[str]:
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [len(letters) - i for i in range(len(letters))]
    return ["".join(rng.choices(letters, weights, k=rng.randint(2, 10))) for _ in range(2000)]


def html_body(size: int, seed: int) -> bytes:
    """``size`` bytes of HTML: paragraphs of Zipf-distributed words, links, some markup."""
    rng = random.Random(seed)
    words = _words(random.Random(1))
    weights = [1 / (rank + 1) for rank in range(len(words))]
    parts = [f"<!doctype html><html><head><title>Page {seed}</title></head><body>"]
    total = len(parts[0])
    while total < size:
        text = " ".join(rng.choices(words, weights, k=rng.randint(30, 120)))
        href = "/".join(rng.choices(words, weights, k=3))
        chunk = f'<p class="text">{text} <a href="https://example.org/{href}">more</a></p>\n'
        parts.append(chunk)
        total += len(chunk)
    return "".join(parts).encode()[:size]


def filler_body(size: int, seed: int) -> bytes:
    """The capture benchmark's page: a title, then one repeated paragraph."""
    filler = (b"<p>" + b"synthetic evidence " * 64 + b"</p>\n") * (size // 1219 + 1)
    return (b"<html><body><h1>/page/%d</h1>" % seed + filler)[:size]


def pdf_body(size: int, seed: int) -> bytes:
    """A PDF-like body: text objects between Flate streams (random bytes, as compressed
    streams look), ``size`` bytes."""
    rng = random.Random(seed)
    parts = [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"]
    total, n = len(parts[0]), 1
    while total < size:
        stream = rng.randbytes(rng.randint(4_000, 60_000))
        obj = (b"%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n" % (n, len(stream))
               + stream + b"\nendstream\nendobj\n")
        parts.append(obj)
        total += len(obj)
        n += 1
    return b"".join(parts)[:size]


def gzipped_html_body(size: int, seed: int) -> bytes:
    """HTML as a server sends it with ``Content-Encoding: gzip``, ``size`` bytes before."""
    return gzip.compress(html_body(size, seed), 6)


def image_body(size: int, seed: int) -> bytes:
    """Bytes that look like a JPEG's: a header, then entropy-coded (random) data."""
    return b"\xff\xd8\xff\xe0" + random.Random(seed).randbytes(size - 4)


def bodies(kind: str, size: int, count: int) -> list[bytes]:
    make = {"html": html_body, "filler": filler_body, "pdf": pdf_body,
            "html.gz": gzipped_html_body, "image": image_body}[kind]
    return [make(size, seed) for seed in range(count)]


def best_cpu(run: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


# ── part 1: gzip levels ─────────────────────────────────────────────────────


def _gzip(level: int) -> Callable[[bytes], bytes]:
    def compress(data: bytes) -> bytes:
        c = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS + 16)
        return c.compress(data) + c.flush()
    return compress


def _isal(level: int) -> Callable[[bytes], bytes] | None:
    try:
        from isal import isal_zlib  # type: ignore[import-not-found]
    except ImportError:
        return None

    def compress(data: bytes) -> bytes:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, isal_zlib.MAX_WBITS + 16)
        return bytes(c.compress(data) + c.flush())
    return compress


def levels(count: int, repeat: int) -> None:
    cases = [(f"html {k}", bodies("html", s, count)) for k, s in SIZES.items()]
    cases.append(("filler 20K", bodies("filler", 20_000, count)))
    cases.append(("pdf 2M", bodies("pdf", PDF_SIZE, max(2, count // 20))))
    coders: list[tuple[str, Callable[[bytes], bytes]]] = [
        (f"zlib {n}", _gzip(n)) for n in range(10)]
    for n in range(4):
        coder = _isal(n)
        if coder is not None:
            coders.append((f"isal {n}", coder))
    print("gzip alone: CPU µs per body / compressed share of the raw size")
    print(f"{'':>8}" + "".join(f"{name:>20}" for name, _ in cases))
    for label, coder in coders:
        cells = []
        for _, data in cases:
            cpu = best_cpu(lambda d=data, c=coder: [c(b) for b in d] and None, repeat)  # type: ignore[misc]
            share = sum(len(coder(b)) for b in data) / sum(len(b) for b in data)
            cells.append(f"{cpu / len(data) * 1e6:9.0f} µs {share:6.1%}")
        print(f"{label:>8}" + "".join(f"{c:>20}" for c in cells))
    print()


# ── part 2: the writer ──────────────────────────────────────────────────────


def _writer(folder: Path, level: int | None) -> WarcWriter:
    kwargs = {}
    if level is not None:
        if "gzip_level" not in inspect.signature(WarcWriter).parameters:
            raise SystemExit("this archiver's WarcWriter has no gzip_level")
        kwargs["gzip_level"] = level
    return WarcWriter(folder, root=folder, run_id="bench", **kwargs)  # type: ignore[arg-type]


def writer(count: int, repeat: int, level: int | None) -> None:
    import io

    cases = [(f"html {k}", bodies("html", s, count), RESPONSE) for k, s in SIZES.items()]
    cases.append(("filler 20K", bodies("filler", 20_000, count), RESPONSE))
    cases.append(("pdf 2M", bodies("pdf", PDF_SIZE, max(2, count // 20)), PDF_RESPONSE))
    cases.append(("html.gz 20K", bodies("html.gz", 20_000, count), GZIP_RESPONSE))
    cases.append(("jpeg 2M", bodies("image", PDF_SIZE, max(2, count // 20)), IMAGE_RESPONSE))
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    shown = level if level is not None else getattr(warc_module, "GZIP_LEVEL", 9)
    print(f"WarcWriter ({warc_module.__file__}), gzip level {shown}: CPU per exchange "
          "(request + response records), close() per exchange, WARC bytes per exchange")
    for label, data, head in cases:
        write_cpu = close_cpu = float("inf")
        size = 0
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                w = _writer(Path(tmp), level)
                w.open()
                streams = [io.BytesIO(b) for b in data]
                start = time.process_time()
                for i, body in enumerate(streams):
                    w.write_exchange(url=f"http://example.org/page/{i}", request_head=REQUEST,
                                     response_head=head, body=body, remote_ip="127.0.0.1",
                                     captured_at=moment)
                middle = time.process_time()
                w.close()
                end = time.process_time()
                write_cpu = min(write_cpu, middle - start)
                close_cpu = min(close_cpu, end - middle)
                size = sum(p.stat().st_size for p in Path(tmp).glob("*.warc.gz"))
        n = len(data)
        raw = sum(len(b) for b in data) / n
        print(f"  {label:>11}: write {write_cpu / n * 1e3:7.3f} ms, "
              f"close {close_cpu / n * 1e3:6.3f} ms, {size / n:10.0f} B per exchange "
              f"({size / n / raw:6.1%} of the body)")
    print()


# ── part 3: index keys ──────────────────────────────────────────────────────


def keys(count: int, repeat: int) -> None:
    """CPU per SURT key of an index line: ``warc.url_key`` (what the writer uses) and
    ``surt.surt`` (what cdxj-indexer calls) on the URLs of speed_bench's web, their
    provenance records' ``urn:provenance:`` URIs and the briefing's URLs."""
    import surt

    from archiver.parse import read_document
    from archiver.warc import url_key

    web = [f"http://127.0.0.{i % 50 + 1}:8080/news/{i // 50:05d}-world-story.html"
           for i in range(count)]
    briefing = [url for note in read_document(
        Path(__file__).resolve().parent.parent / "sources" / "kazakhstan-2020.md").footnotes
        for url in note.urls]
    cases = [("speed_bench web", web), ("urn:provenance:", [f"urn:provenance:{u}" for u in web]),
             ("briefing", briefing * max(1, count // len(briefing)))]
    print(f"index keys ({url_key.__module__}): CPU µs per key, best of {repeat}")
    for label, urls in cases:
        ours = best_cpu(lambda u=urls: [url_key(x) for x in u] and None, repeat)
        theirs = best_cpu(lambda u=urls: [surt.surt(x) for x in u] and None, repeat)
        print(f"  {label:>16}: url_key {ours / len(urls) * 1e6:6.2f} µs, "
              f"surt.surt {theirs / len(urls) * 1e6:6.2f} µs ({len(urls)} URLs)")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("part", nargs="?", choices=("levels", "writer", "keys", "both"),
                        default="both")
    parser.add_argument("--count", type=int, default=200, help="bodies per size")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best counts")
    parser.add_argument("--level", type=int, help="the writer's gzip level (default: its own)")
    args = parser.parse_args()
    if args.part in ("levels", "both"):
        levels(args.count, args.repeat)
    if args.part in ("writer", "both"):
        writer(args.count, args.repeat, args.level)
    if args.part == "keys":
        keys(max(args.count, 2000), args.repeat)


if __name__ == "__main__":
    main()
