"""Claim support and document parsing at scale: CPU per claim and per footnote, 2,000 and 20,000.

Run: ``.venv/bin/python bench/tail_bench.py [--sizes 2000,20000] [--repeat N]
[--baseline CHECKOUT]``.

The run's serial tail reads the briefing and checks every claim against the text of the page
it cites; both must stay linear in the number of footnotes. This bench builds, in a temporary
folder, a document of N footnotes in each of the two Markdown formats (``[^N]`` footnotes and
the PDF conversion's ``<sup>N</sup>`` markers with ``N text`` note lines), whose claims are the
shipped briefing's claims in turn (names, dates, sums, articles, quotes) and whose footnotes
each cite their own URL, and times:

- ``parse``: ``read_document`` of each document (footnotes, URLs, claims, findings);
- ``support``: ``support.assess_document`` of the ``[^N]`` document, each URL's evidence a
  page text of its own: the hand-checked pages of ``tests/data/support`` and generated
  English, Russian and Kazakh news pages (``pagetext_corpus.news_page``, ~20 KB of HTML, ~13 K
  characters of text), each made distinct by its URL's number, as a run reads them from the
  catalog (reading them is not timed: ``LazyTexts`` and the catalog are measured elsewhere).

Figures are CPU time (``time.process_time``), the best of ``--repeat`` runs (default 3), in
a child process per checkout, so that word caches start cold as in a run. ``per item`` at
20,000 over that at 2,000 near 1 means linear. With ``--baseline CHECKOUT`` (another
worktree, e.g. the commit before a change), the same documents and texts are measured with
that checkout's code in the same run, and its results are checked to be identical (support
levels, facts, matched passages; footnotes, URLs, claims, findings).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import pickle, sys, time
sys.path.insert(0, {root!r})
from archiver.parse import read_document
from archiver.support import EvidenceText, assess_document

folder, repeat = {folder!r}, {repeat!r}
sizes = {sizes!r}
pool = pickle.loads(open(folder + "/texts.pickle", "rb").read())
out = {{}}
for n in sizes:
    for fmt in ("footnotes", "pdf"):
        path = f"{{folder}}/doc-{{fmt}}-{{n}}.md"
        best, doc = None, None
        for _ in range(repeat):
            start = time.process_time()
            doc = read_document(path)
            spent = time.process_time() - start
            best = spent if best is None else min(best, spent)
        out[f"parse {{fmt}} {{n}}"] = (best, len(doc.footnotes))
        if fmt == "pdf":
            continue
        texts = {{url: EvidenceText(pool[i % len(pool)] + f" ({{i}})", "html", "ours")
                 for i, url in enumerate(doc.urls)}}
        best, supports = None, None
        for _ in range(repeat):
            from archiver import support_match
            support_match._word_keys.cache_clear()
            support_match.month_of.cache_clear()
            support_match._morph()  # the dictionaries load once per process (not timed)
            start = time.process_time()
            supports = assess_document(doc, texts)
            spent = time.process_time() - start
            best = spent if best is None else min(best, spent)
        out[f"support {{n}}"] = (best, len(supports))
        # Compared as text: a pickle made by one checkout need not load right in another
        # (a record that gained __slots__ takes its state as a list, not a dict).
        with open(f"{{folder}}/result-{{n}}-{{sys.argv[1]}}.txt", "w", encoding="utf-8") as f:
            f.write(repr((doc, supports)).replace(folder, "FOLDER"))
print(repr(out))
"""

_SPECIAL = re.compile(r"([\\`*_\[\]<>#|^~$])")


def briefing_claims() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from archiver.parse import read_document

    document = read_document(ROOT / "sources" / "kazakhstan-2020.md")
    return list(dict.fromkeys(c.text for f in document.footnotes for c in f.claims))


def page_texts() -> list[str]:
    sys.path.insert(0, str(ROOT / "bench"))
    from pagetext_corpus import news_page

    from archiver.pagetext import extract

    html = "text/html; charset=utf-8"
    texts = [extract(p.read_bytes(), html).text
             for p in sorted((ROOT / "tests" / "data" / "support" / "pages").glob("*.html"))]
    for seed in range(60):
        lang = ("en", "ru", "kk")[seed % 3]
        texts.append(extract(news_page(1000 + seed, 20_000, lang, "main"), html).text)
    return texts


def write_documents(folder: Path, sizes: list[int]) -> None:
    claims = [_SPECIAL.sub(r"\\\1", c.rstrip(".")) for c in briefing_claims()]
    for n in sizes:
        body, pdf_body, notes, pdf_notes = [], [], [], []
        for i in range(1, n + 1):
            claim = claims[i % len(claims)]
            # A paragraph every ten claims, as a briefing has them.
            end = "\n\n" if i % 10 == 0 else " "
            body.append(f"{claim} (case {i}).[^{i}]{end}")
            url = f"https://news{i % 97}.example.org/{i // 97}/story-{i}.html"
            notes.append(f"[^{i}]: Report {i}, <{url}>.\n")
            if i < 10_000:  # the PDF format's markers have at most four digits
                pdf_body.append(f"{claim} (case {i}).<sup>{i}</sup>{end}")
                pdf_notes.append(f"{i} Report {i}, {url}\n")
        (folder / f"doc-footnotes-{n}.md").write_text(
            "# Briefing\n\n" + "".join(body) + "\n\n" + "".join(notes), encoding="utf-8")
        (folder / f"doc-pdf-{n}.md").write_text(
            "# Briefing\n\n" + "".join(pdf_body) + "\n\n" + "".join(pdf_notes),
            encoding="utf-8")


def measure(root: Path, folder: Path, sizes: list[int], repeat: int, tag: str
            ) -> dict[str, tuple[float, int]]:
    code = CHILD.format(root=str(root), folder=str(folder), repeat=repeat, sizes=sizes)
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", code, tag], capture_output=True, text=True,
                          env=env, check=True)
    result: dict[str, tuple[float, int]] = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    return result


def table(label: str, result: dict[str, tuple[float, int]], sizes: list[int]) -> None:
    print(f"\n{label}")
    print(f"{'what':<22}{'items':>8}{'CPU s':>10}{'per item ms':>13}{'per item vs first':>19}")
    for what in ("parse footnotes", "parse pdf", "support"):
        first = None
        for n in sizes:
            spent, items = result[f"{what} {n}"]
            per = spent / max(items, 1) * 1000
            first = per if first is None else first
            print(f"{what:<22}{items:>8}{spent:>10.3f}{per:>13.4f}{per / first:>18.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure alike")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="tail-bench-") as tmp:
        folder = Path(tmp)
        write_documents(folder, sizes)
        (folder / "texts.pickle").write_bytes(pickle.dumps(page_texts()))
        result = measure(ROOT, folder, sizes, args.repeat, "this")
        table(f"this checkout ({ROOT})", result, sizes)
        if args.baseline:
            base = measure(args.baseline.resolve(), folder, sizes, args.repeat, "base")
            table(f"baseline ({args.baseline})", base, sizes)
            for n in sizes:
                ours = (folder / f"result-{n}-this.txt").read_text(encoding="utf-8")
                theirs = (folder / f"result-{n}-base.txt").read_text(encoding="utf-8")
                same = ours == theirs
                print(f"{n}: document and support {'identical' if same else 'DIFFER'}")
        print(json.dumps({k: v[0] for k, v in result.items()}))


if __name__ == "__main__":
    main()
