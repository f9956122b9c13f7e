"""What claim support costs: per footnote, and against the CPU of a whole run.

Run: ``.venv/bin/python bench/support_bench.py [--repeat N] [--no-run]``.

1. Per footnote: every claim of the shipped briefing that cites a URL is checked
   (``support.assess``: facts, index, lookups) against page texts of three sizes: a short
   news item (~1 KB, the hand-checked pages of ``tests/data/support``), a long article
   (~30 KB) and a report (~300 KB, a PDF's worth). Each text is a new ``Evidence`` per
   footnote, as in a run; the analyser's word caches are cleared before each size ("cold")
   and the figure is also given warm. The one-off load of the Russian dictionaries is timed
   apart.
2. A whole run: the briefing's 93 claims, each citing a page on a loopback server (the
   hand-checked pages in turn, as written and padded with 30 KB of article text), through
   ``archiver run`` in a child process, twice: as shipped, and with claim support off. The
   is compared: the check must not double the run's CPU time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archiver import support_match  # noqa: E402
from archiver.pagetext import extract  # noqa: E402
from archiver.parse import read_document  # noqa: E402
from archiver.support import EvidenceText, assess  # noqa: E402

PAGES = ROOT / "tests" / "data" / "support" / "pages"

CHILD = """
import sys
sys.path.insert(0, {root!r})
if {off!r}:
    import archiver.support as s
    s.assess_document = lambda document, texts: ()
    s.evidence_texts = lambda *args: {{}}
from archiver.cli import main
sys.exit(main(["run", "--config", {config!r}]))
"""


def page_texts() -> list[str]:
    return [extract(p.read_bytes(), "text/html; charset=utf-8").text
            for p in sorted(PAGES.glob("*.html"))]


def per_footnote(repeat: int) -> None:
    document = read_document(ROOT / "sources" / "kazakhstan-2020.md")
    pairs = [(f.number, url, tuple(c.text for c in f.claims))
             for f in document.footnotes if f.claims for url in f.urls]
    texts = page_texts()
    joined = "\n".join(texts)
    sizes = {"short (hand-checked pages)": texts,
             "article ~30 KB": [(joined * 4)[:30_000]],
             "report ~300 KB": [(joined * 40)[:300_000]]}
    start = time.process_time()
    support_match._morph()
    print(f"loading the Russian dictionaries (once per process): "
          f"{(time.process_time() - start) * 1000:.0f} ms CPU")
    print(f"{len(pairs)} (footnote, URL) pairs of the shipped briefing")
    for label, pool in sizes.items():
        for state in ("cold", "warm"):
            if state == "cold":
                support_match._word_keys.cache_clear()
                support_match.month_of.cache_clear()
            samples = []
            for _ in range(repeat if state == "warm" else 1):
                start = time.process_time()
                for i, (number, url, claims) in enumerate(pairs):
                    text = pool[i % len(pool)]
                    assess(number, url, claims, EvidenceText(text, "html", "ours"))
                samples.append((time.process_time() - start) / len(pairs) * 1000)
            size = statistics.fmean(len(t) for t in pool)
            print(f"  {label:<28} {state}: {statistics.median(samples):7.2f} ms per footnote "
                  f"(text {size / 1000:.1f} K chars)")


def whole_run(pad_kb: int, runs: int) -> None:
    import html

    from tests.webserver import Reply, WebServer

    document = read_document(ROOT / "sources" / "kazakhstan-2020.md")
    claims = [(f.number, f.claims[0].text) for f in document.footnotes if f.claims]
    pages = sorted(PAGES.glob("*.html"))
    # Padding: more article text (the other pages' paragraphs) to make long pages.
    filler = "".join(f"<p>{html.escape(t)}</p>" for t in page_texts())
    padding = (filler * (1 + pad_kb * 1000 // max(1, len(filler))))[:pad_kb * 1000]
    padding = padding[:padding.rfind("</p>") + 4] if pad_kb else ""
    with WebServer() as web, tempfile.TemporaryDirectory() as tmp:
        for i, page in enumerate(pages):
            body = page.read_bytes().replace(b"</article>",
                                             padding.encode("utf-8") + b"</article>")
            web.route(f"/p{i}", Reply(200, body, {"Content-Type": "text/html; charset=utf-8"}))
        samples: dict[bool, list[float]] = {False: [], True: []}
        for attempt, off in enumerate([False, True] * runs):
            root = Path(tmp) / f"{'off' if off else 'on'}-{attempt}"
            (root / "sources").mkdir(parents=True)
            body = "\n\n".join(f"{text}[^{n}]" for n, text in claims)
            notes = "\n".join(f"[^{n}]: <{web.url(f'/p{i % len(pages)}')}?fn={n}>"
                              for i, (n, _) in enumerate(claims))
            (root / "sources" / "brief.md").write_text(f"# Brief\n\n{body}\n\n{notes}\n",
                                                      encoding="utf-8")
            config = root / "sources.toml"
            config.write_text(
                '[[sources]]\nid = "brief"\npath = "sources/brief.md"\n\n'
                "[fetch]\ntimeout = 5\nretries = 1\nallow_private_networks = true\n"
                "host_interval = 0\n\n[rescue]\nenabled = false\n", encoding="utf-8")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", CHILD.format(root=str(ROOT), off=off,
                                                    config=str(config))],
                capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - wall
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert done.returncode in (0, 1), done.stdout + done.stderr
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            samples[off].append(cpu)
            print(f"  archiver run, {len(claims)} claims, pages +{pad_kb} KB, claim support "
                  f"{'off' if off else 'on '}: {cpu:.2f} s CPU, {wall:.2f} s wall")
        results = {off: statistics.median(cpus) for off, cpus in samples.items()}
    extra = results[False] - results[True]
    print(f"  medians over {runs} pairs: {results[False]:.2f} s on, {results[True]:.2f} s off")
    print(f"  claim support adds {extra:.2f} s CPU to the run: "
          f"{extra / results[True] * 100:.0f}% ({extra / len(claims) * 1000:.1f} ms per "
          f"footnote, dictionaries included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions (default 5)")
    parser.add_argument("--runs", type=int, default=3,
                        help="whole runs with and without claim support, alternated (default 3)")
    parser.add_argument("--no-run", action="store_true", help="skip the whole-run comparison")
    parser.add_argument("--pad", type=int, nargs="*", default=[0, 30],
                        help="whole runs with pages padded by this many KB of article text "
                             "(default: 0 30)")
    args = parser.parse_args()
    per_footnote(args.repeat)
    if not args.no_run:
        print("whole run (child processes, CPU = user + system):")
        for pad in args.pad:
            whole_run(pad, args.runs)


if __name__ == "__main__":
    main()
