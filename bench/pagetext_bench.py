"""Page text, fingerprint and classification: the current code against a frozen earlier copy.

Run: ``.venv/bin/python bench/pagetext_bench.py [--repeat N] [--check-only] [--show NAME]``.

Over the corpus of ``bench/pagetext_corpus.py`` (test fixtures, generated news pages of
5-300 KB in English, Russian and Kazakh, the capture benchmark's page, hostile bodies) it

1. checks that ``archiver.pagetext.extract`` gives the same ``PageText`` (every field, and the
   guessed language) as the frozen copy in ``bench/frozen/pagetext_old.py``, that
   ``archiver.history.text_fingerprint`` gives the same digest, and that
   ``archiver.classify.classify`` gives the same ``Judgement`` as the frozen
   ``bench/frozen/classify_old.py`` for several captures of each page (200, 200 after a
   redirect, 403, 404, with and without a soft-404 probe);
2. times each (CPU time, ``time.process_time``), old and new alternately, ``--repeat`` times
   per page, and prints per-page medians for the pages that matter most (a 20 KB news page,
   the capture benchmark's 20 KB page) and the sum over the corpus.

Exits 1 if any output differs. Extraction is timed without ``extract``'s cache.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver import classify as new_classify
from archiver import history, pagetext
from archiver.models import Capture, Hop, utcnow
from archiver.soft404 import ProbeOutcome
from bench.frozen import classify_old
from bench.frozen import pagetext_old as old
from bench.pagetext_corpus import corpus

Page = tuple[str, bytes, str | None]

# A character reference to a control character (&#1;, &#x0B;) or to U+FFFE/U+FFFF.
_CONTROL_REFERENCE = re.compile(
    rb"&#(?:0*(?:[1-8]|1[1-2]|1[4-9]|2[0-9]|3[01]|127|6553[45])(?![0-9])"
    rb"|[xX]0*(?:[1-8bcefBCEF]|1[0-9a-fA-F]|7[fF]|[fF]{3}[eEfF])(?![0-9a-fA-F]))")


def expected_difference(body: bytes, old_page: dict[str, object],
                        new_page: dict[str, object]) -> str | None:
    """Why the new reading of ``body`` differs on purpose, or ``None``: it should not."""
    if (old_page["kind"] == "binary" and old_page["text"] == "" and new_page["kind"] == "html"
            and _CONTROL_REFERENCE.search(body)):
        return ("a character reference to a control character (&#1;) made the old code's "
                "text assignment fail, so the whole page read as an empty 'binary' body; "
                "the new code reads the page and blanks the control character, as it does "
                "for raw ones")
    return None


def fields(page: object) -> dict[str, object]:
    values = dataclasses.asdict(page)  # type: ignore[call-overload]
    values["language"] = page.language
    return values


def captures(body: bytes, content_type: str | None) -> list[tuple[str, Capture]]:
    """The same body as several fetches: the rules of ``classify`` read it differently."""
    ct = (("Content-Type", content_type or ""),)

    def cap(status: int, url: str, chain: tuple[tuple[str, int], ...] = (),
            headers: tuple[tuple[str, str], ...] = ()) -> Capture:
        hops = [Hop(u, s, (("Location", url),)) for u, s in chain]
        hops.append(Hop(url, status, ct + headers))
        return Capture(url=chain[0][0] if chain else url, final_url=url, status=status,
                       hops=tuple(hops), content=body, content_type=content_type,
                       payload_digest="sha1:X", captured_at=utcnow())

    return [
        ("200", cap(200, "https://example.org/news/2020/a-story.html")),
        ("200-moved", cap(200, "https://example.org/news/2020/new.html",
                          (("https://example.org/old/story.html", 301),))),
        ("200-home", cap(200, "https://example.org/", (("https://example.org/a/1.html", 302),))),
        ("403-cf", cap(403, "https://example.org/a/2.html", headers=(("Server", "cloudflare"),))),
        ("404", cap(404, "https://example.org/a/3.html")),
        ("503", cap(503, "https://example.org/a/4.html", headers=(("Server", "ddos-guard"),))),
    ]


def check(pages: list[Page], show: str | None) -> int:
    """Compare old and new outputs on every page; print the differences; count them."""
    differences = 0
    probe_texts = [("", None)]
    for name, body, content_type in pages:
        before = old.extract(body, content_type)
        after = pagetext.extract(body, content_type)
        a, b = fields(before), fields(after)
        if show and show in name:
            print(f"== {name}\n-- old\n{a}\n-- new\n{b}")
        why = expected_difference(body, a, b) if a != b else None
        if why is not None:
            print(f"expected difference, {name}: {why}")
            print(f"   old: {a}\n   new: {b}")
        elif a != b:
            differences += 1
            keys = [k for k in a if a[k] != b[k]]
            print(f"DIFF extract {name}: {keys}")
            for key in keys:
                print(f"   old {key}: {str(a[key])[:300]!r}\n   new {key}: {str(b[key])[:300]!r}")
        fp_old, fp_new = old.text_fingerprint(before.text), history.text_fingerprint(before.text)
        if fp_old != fp_new or old.normalise_tokens(before.text) != history.normalise_tokens(
                before.text):
            differences += 1
            print(f"DIFF fingerprint {name}")
        if before.text:
            probe_texts.append((before.text, before.title))
        probe_text, probe_title = probe_texts[-2] if len(probe_texts) > 1 else ("", None)
        probes = [None,
                  ProbeOutcome(url="https://example.org/a/zz-archiver-probe-1.html", status=200,
                               final_url="https://example.org/a/zz-archiver-probe-1.html",
                               text=before.text, title=before.title),
                  ProbeOutcome(url="https://example.org/a/zz-archiver-probe-2.html", status=200,
                               final_url="https://example.org/a/zz-archiver-probe-2.html",
                               text=probe_text, title=probe_title),
                  ProbeOutcome(url="https://example.org/a/zz-archiver-probe-3.html", status=404,
                               final_url="https://example.org/a/zz-archiver-probe-3.html")]
        # The probe comparison (soft404.looks_same) costs a second or more on the largest
        # texts; it is exercised on the pages under 100 KB, on the plain 200 capture.
        for label, capture in captures(body, content_type):
            chosen = probes if label == "200" and len(body) < 100_000 else probes[:1]
            for number, probe in enumerate(chosen):
                for given in (False, True):
                    j_old = classify_old.classify(capture, probe=probe,
                                                  page=before if given else None)
                    j_new = new_classify.classify(capture, probe=probe,
                                                  page=after if given else None)
                    if j_old != j_new:
                        differences += 1
                        print(f"DIFF classify {name} {label} probe {number}: "
                              f"{j_old} != {j_new}")
    return differences


def cpu(func: Callable[[], object]) -> float:
    start = time.process_time()
    with contextlib.suppress(Exception):  # the inner function raises where extract does not
        func()
    return (time.process_time() - start) * 1000


def safe(func: Callable[[bytes, str], object], body: bytes, ct: str) -> object:
    try:
        return func(body, ct)
    except Exception:  # as extract does: a page that cannot be read has no text
        return pagetext.PageText(title=None, text="", kind="binary")


def timings(pages: list[Page], repeat: int) -> dict[str, dict[str, list[float]]]:
    """Per page: CPU milliseconds of old and new extract, fingerprint and classify."""
    extract_old = old._extract_cached.__wrapped__
    extract_new = pagetext._extract_cached.__wrapped__
    out: dict[str, dict[str, list[float]]] = {}
    for name, body, content_type in pages:
        ct = content_type or ""
        page_old, page_new = safe(extract_old, body, ct), safe(extract_new, body, ct)
        capture = captures(body, content_type)[0][1]
        samples: dict[str, list[float]] = {k: [] for k in (
            "extract_old", "extract_new", "fp_old", "fp_new", "classify_old", "classify_new")}
        jobs = {
            "extract_old": lambda b=body, t=ct: extract_old(b, t),
            "extract_new": lambda b=body, t=ct: extract_new(b, t),
            "fp_old": lambda p=page_old: old.text_fingerprint(p.text),
            "fp_new": lambda p=page_new: history.text_fingerprint(p.text),
            "classify_old": lambda c=capture, p=page_old: classify_old.classify(c, page=p),
            "classify_new": lambda c=capture, p=page_new: new_classify.classify(c, page=p),
        }
        for _ in range(repeat):
            for key, job in jobs.items():
                samples[key].append(cpu(job))
        out[name] = samples
    return out


def report(times: dict[str, dict[str, list[float]]], pages: list[Page]) -> None:
    sizes = {name: len(body) for name, body, _ in pages}
    med = {name: {k: statistics.median(v) for k, v in s.items()} for name, s in times.items()}
    print(f"\n{'page':<34} {'KB':>5}  {'extract old/new':>16}  {'fingerprint':>13}  "
          f"{'classify':>13}  {'all three old/new (ms CPU)':>26}")
    picked = [n for n in med if n.startswith(("news-main-", "news-divs-", "capture-bench"))
              and ("-20k" in n or "capture" in n)]
    picked += [n for n in med if n in ("news-main-ru-60k", "news-article-kk-300k",
                                       "deep-divs-20000", "over-parse-limit", "tiny-spans-100k")]
    for name in picked:
        m = med[name]
        total_old = m["extract_old"] + m["fp_old"] + m["classify_old"]
        total_new = m["extract_new"] + m["fp_new"] + m["classify_new"]
        print(f"{name:<34} {sizes[name] / 1000:>5.0f}  {m['extract_old']:>7.3f} "
              f"{m['extract_new']:>7.3f}  {m['fp_old']:>6.3f} {m['fp_new']:>6.3f}  "
              f"{m['classify_old']:>6.3f} "
              f"{m['classify_new']:>6.3f}  {total_old:>12.3f} {total_new:>12.3f}")
    for key in ("extract", "fp", "classify"):
        total_old = sum(m[f"{key}_old"] for m in med.values())
        total_new = sum(m[f"{key}_new"] for m in med.values())
        print(f"corpus sum of medians, {key}: old {total_old:.1f} ms, new {total_new:.1f} ms "
              f"({len(med)} pages)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--show", help="print old and new PageText of pages with this in name")
    parser.add_argument("--only", help="only pages whose name contains this")
    args = parser.parse_args()
    logging.getLogger("bs4").setLevel(logging.ERROR)  # detection's notes on bad bytes
    pages = corpus()
    if args.only:
        pages = [p for p in pages if args.only in p[0]]
    print(f"corpus: {len(pages)} pages, {sum(len(b) for _, b, _ in pages) / 1e6:.1f} MB")
    differences = check(pages, args.show)
    verdict = "identical (but for the expected differences above, if any)"
    print(f"outputs: {verdict if not differences else f'{differences} differences'}")
    if not args.check_only:
        report(timings(pages, args.repeat), pages)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
