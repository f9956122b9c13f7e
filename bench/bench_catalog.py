"""Figures for the catalog and the history rules; run by hand, not in CI.

    .venv/bin/python bench/bench_catalog.py [--urls 10000]

Prints: catalog writes per second (a capture, a result and two attempts per URL, each call its
own transaction, as a run records them), per-URL reads (latest_capture, link_status,
is_captured), the catalog's size, and text_similarity timings on ~100 KB texts.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.catalog import Catalog
from archiver.config import CheckSettings
from archiver.history import text_similarity
from archiver.models import Capture, Hop, Judgement, Verdict, WarcRef


def letters(rng: random.Random) -> str:
    """A made-up word (no digits: ``normalise_tokens`` drops words with digits)."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))


def words(rng: random.Random, vocabulary: list[str], count: int) -> list[str]:
    return [rng.choice(vocabulary) for _ in range(count)]


def bench_catalog(urls: int) -> None:
    rng = random.Random(1)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    vocabulary = [letters(rng) for _ in range(5000)]
    text = " ".join(rng.choice(vocabulary) for _ in range(3000))
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "archive"
        with Catalog.open(archive) as catalog, catalog.lock():
            run_id = catalog.begin_run("run", ["bench"])
            started = time.perf_counter()
            for i in range(urls):
                url = f"https://host{i % 300}.example/page/{i}"
                at = now + timedelta(seconds=i)
                for attempt in (1, 2):
                    catalog.record_attempt(run_id, url, attempt, "ok", status=200, error=None,
                                           waited=0.0, at=at)
                ref = WarcRef("archive/bench.warc.gz", i * 1000, 1000, f"<urn:uuid:{i}>")
                capture = Capture(url=url, final_url=url, status=200,
                                  hops=(Hop(url, 200, (), warc=ref),), content=b"",
                                  content_type="text/html", payload_digest=f"sha1:{i}",
                                  captured_at=at)
                catalog.record_capture(run_id, capture, text=text, title="t")
                catalog.record_result(run_id, url, Judgement(Verdict.OK, "ok"), http_status=200,
                                      final_url=url, attempts=2, checked_at=at)
            elapsed = time.perf_counter() - started
            catalog.finish_run(run_id, status="ok", summary={"urls": urls})
            print(f"writes: {urls} URLs x 4 transactions in {elapsed:.2f} s = "
                  f"{urls / elapsed:,.0f} URLs/s ({elapsed / urls * 1e6:.0f} us per URL)")

            sample = [f"https://host{i % 300}.example/page/{i}"
                      for i in rng.sample(range(urls), min(urls, 2000))]
            settings = CheckSettings()
            for name, call in (
                ("latest_capture", catalog.latest_capture),
                ("link_status", lambda u: catalog.link_status(u, settings)),
                ("is_captured", catalog.is_captured),
            ):
                started = time.perf_counter()
                for url in sample:
                    call(url)
                per = (time.perf_counter() - started) / len(sample)
                print(f"read: {name:<15} {per * 1e6:8.0f} us per URL")
            started = time.perf_counter()
            captured = catalog.captured_urls()
            print(f"read: captured_urls() for {len(captured)} URLs in "
                  f"{(time.perf_counter() - started) * 1e3:.0f} ms")
        size = sum(p.stat().st_size for p in archive.iterdir())
        print(f"catalog size: {size / 1e6:.1f} MB ({size / urls / 1e3:.1f} KB per URL, "
              f"3,000-word text stored compressed)")


def bench_similarity() -> None:
    rng = random.Random(2)
    vocabulary = [letters(rng) for _ in range(4000)]
    vocabulary += ["the", "of", "and", "to", "in"] * 300  # stop words, as in prose
    base = words(rng, vocabulary, 16_000)  # ~100 KB of text
    edited = list(base)
    for index in rng.sample(range(len(base)), 160):
        edited[index] = "changed"
    repetitive = [rng.choice(["the", "of", "and", "to", "in"]) for _ in range(16_000)]
    twice_edited = list(repetitive)
    twice_edited[100] = twice_edited[15_900] = "changed"
    cases = [
        ("identical", base, list(base)),
        ("1% of words changed", base, edited),
        ("a paragraph inserted", base, base[:8000] + words(rng, vocabulary, 200) + base[8000:]),
        ("unrelated page", base, words(rng, vocabulary, 16_000)),
        ("5 words repeated, 2 changed", repetitive, twice_edited),
    ]
    print(f"text_similarity on ~{len(' '.join(base)) / 1e3:.0f} KB texts (16,000 words):")
    for name, a_words, b_words in cases:
        a, b = " ".join(a_words), " ".join(b_words)
        started = time.perf_counter()
        score = text_similarity(a, b)
        took = (time.perf_counter() - started) * 1e3
        print(f"  {name:<28} similarity {score:.4f} in {took:6.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=10_000)
    args = parser.parse_args()
    bench_catalog(args.urls)
    bench_similarity()


if __name__ == "__main__":
    main()
