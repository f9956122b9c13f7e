"""What writing a source's reports costs: report.json, report.html, report.md and links.csv.

Run: ``.venv/bin/python bench/report_bench.py [--links N ...] [--repeat R] [--spooled]
[--baseline CHECKOUT]``.

Builds one synthetic report per size N (default 2,000 and 20,000 links) with
``archiver.report.build_report``, outside the timing: N footnotes, each with a claim citing
one URL (every 10th a second, shared URL too), 90% ``ok`` and 10% ``not_found`` (a third of
those with an Internet Archive memento, some rescued into our WARCs, some not looked up), a
capture with provenance, a page title and excerpt in English or Russian, claim support with
facts (found with a passage, or missing), a few changes and findings. Then times, in CPU
seconds of this process (``time.process_time``), each renderer alone (text in memory) and
``write_reports`` (the four files written atomically into a temporary folder, with their
fsyncs), R times each; prints the best and the median, and ms per link.

``--spooled``: the report's link records and claim support spooled to disk as the pipeline
keeps a source of over 4,096 links (``archiver.spool``, every chunk written), counted and
indexed as they are spooled where the checkout can; times ``build_report`` and
``write_reports`` and counts the chunks each reads back from disk.

``--baseline CHECKOUT`` runs the same measurement on another checkout of the archiver (an
earlier commit, e.g. ``git worktree add /tmp/base HEAD~3``) in a child process, on the same
synthetic report, and checks that both wrote the same bytes in the four files (``--no-check``
skips that). Timings are CPU time, but other load on the machine still inflates them:
compare figures of the same run.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FILES = ("report.json", "report.html", "report.md", "links.csv")
GENERATED = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)

_EN = ("The company confirmed that talks with regulators were continuing this week. "
       "Independent auditors found discrepancies in the accounts of two regional agencies. "
       "The agency's annual review lists forty recommendations, half of them adopted.")
_RU = ("Суд Алматы оштрафовал активиста на 138 900 тенге 18 августа 2020 года. "
       "Министерство заявило, что проверка продолжается. Правозащитники & юристы "
       "обжаловали решение в апелляционной инстанции.")


def build(n: int) -> Any:
    """A synthetic report of ``n`` links (deterministic: the same in every checkout)."""
    from archiver.models import (
        Change,
        ChangeKind,
        Claim,
        Document,
        Finding,
        Footnote,
        LinkRecord,
        LinkState,
        Memento,
        Severity,
        Source,
        Verdict,
        WarcRef,
    )
    from archiver.report import build_report
    from archiver.support import FactCheck, Support
    from archiver.support_facts import Fact

    rng = random.Random(n)
    start = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
    shared = "https://www.example.org/reports/annual-review-2020.pdf?lang=en&page=3"
    notes, links, support = [], [], []
    for i in range(n):
        number = i + 1
        host = f"news{i % 50}.example.{'kz' if i % 3 else 'org'}"
        url = f"https://{host}/{2020 + i % 5}/{i:06d}-story-{'ru' if i % 2 else 'en'}.html"
        claim = (f"On 18 August 2020 the court fined the activist 138 900 KZT (claim {number}), "
                 "as the ministry's report of 12 May 2021 confirms.")
        urls = (url, shared) if i % 10 == 9 else (url,)
        notes.append(Footnote(number=number, text=f"See the article ({i}) and the "
                              f"ministry's statement <{url}>.", urls=urls, line=2 * number,
                              claims=(Claim(footnote=number, text=claim, line=2 * number - 1),)))
        when = start + timedelta(seconds=i // 20)
        warc = f"archive/archiver-20261130080000-1-{i // 500:05d}.warc.gz"
        ref = WarcRef(warc, 900 + 4000 * (i % 500), 3400 + i % 300,
                      f"<urn:uuid:{rng.getrandbits(128):032x}>")
        failing = i % 10 == 5
        memento = rescued = None
        not_looked_up = None
        if failing and i % 30 == 5:
            memento = Memento(url=f"http://web.archive.org/web/20201105093012/{url}",
                              datetime=datetime(2020, 11, 5, 9, 30, 12, tzinfo=UTC),
                              original_url=url,
                              raw_url=f"http://web.archive.org/web/20201105093012id_/{url}",
                              status=200)
            if i % 60 == 5:
                rescued = WarcRef(warc, 7, 5000, f"<urn:uuid:{rng.getrandbits(128):032x}>")
        elif failing and i % 30 == 15:
            not_looked_up = "rescue is disabled"
        digest = f"{rng.getrandbits(256):064x}"
        links.append(LinkRecord(
            url=url, footnotes=(number,),
            verdict=Verdict.NOT_FOUND if failing else Verdict.OK,
            reason=("answers 404" if failing else
                    "answers 200 with content; a random path on this host answers 404"),
            http_status=404 if failing else 200, final_url=url, attempts=1,
            capture=ref, captured_at=when, memento=memento,
            state=LinkState.FAILING if failing else LinkState.OK,
            failing_since=when if failing else None,
            title=None if failing else f"Story {i} | {'Новости' if i % 2 else 'News'} | {host}",
            excerpt=None if failing else (_RU if i % 2 else _EN)[: 120 + i % 100] + "…",
            checked_at=when + timedelta(seconds=4), rescued=rescued,
            not_looked_up=not_looked_up, capture_payload=ref,
            payload_digest=f"sha256:{digest}", capture_mode="http",
            provenance=(("captured_at", when.strftime("%Y-%m-%dT%H:%M:%SZ")),
                        ("server_ip", f"127.0.0.{i % 50 + 1}"), ("tls_version", None),
                        ("certificate_subject", None), ("certificate_sha256", None),
                        ("payload_sha256", digest), ("record_sha256", digest[::-1]),
                        ("memento_datetime", None), ("payload_digest", f"sha256:{digest}")),
        ))
        amount = Fact("amount", "138 900 KZT", claim.index("138"), claim.index("138") + 11,
                      "138900 KZT", True, "a sum with its currency")
        day = Fact("date", "18 August 2020", 3, 17, "2020-08-18", True, "a day, month and year")
        found = i % 4 != 3
        facts = (FactCheck(amount, 0, found, "... оштрафовал на 138 900 тенге ..." if found
                           else None, "138 900 тенге" if found else None,
                           "KZT as тенге" if found else "not on the page"),
                 FactCheck(day, 0, True, "... 18 августа 2020 года ...", "18 августа 2020",
                           "month name in Russian"))
        support.append(Support(number, url, "supported" if found else "partial",
                               "every required fact is on the page" if found else
                               "1 of 2 required facts is on the page", (claim,), facts,
                               "ours", "html"))
    links.append(LinkRecord(url=shared, footnotes=tuple(i + 1 for i in range(9, n, 10)),
                            verdict=Verdict.OK, reason="answers 200", http_status=200,
                            final_url=shared, attempts=1))
    document = Document(path="/bench/briefing.md", format="markdown-footnotes",
                        footnotes=tuple(notes),
                        findings=(Finding("no-url", Severity.INFO, "footnote cites no URL",
                                          footnote=1, line=2),))
    changes = [Change(url=links[i].url, kind=ChangeKind.NEWLY_FAILING, verdict=Verdict.NOT_FOUND,
                      previous_verdict=Verdict.OK, since=start, footnotes=(i + 1,))
               for i in range(5, min(n, 500), 10)]
    return build_report(Source("bench", "/bench/briefing.md", "Synthetic briefing",
                               date(2020, 11, 1)), document, links, generated_at=GENERATED,
                        changes=changes, notes=("A note about this run.",),
                        run={"id": 3, "kind": "run", "started_at": GENERATED},
                        root=Path("/bench"), support=support)


def spooled(report: Any) -> tuple[Any, Any, dict[str, Any]]:
    """``report``'s link records and claim support as the pipeline keeps a large source's:
    in spools on disk (every chunk written: ``held=0``), counted and indexed as they were
    spooled when the checkout can (``Tally``, ``SupportIndex``: ``build_report``'s extra
    arguments, returned third)."""
    from archiver.report import model
    from archiver.spool import Spool

    links: Any = Spool(held=0)
    support: Any = Spool(held=0)
    tally = model.Tally(report.document) if hasattr(model, "Tally") else None
    index = model.SupportIndex() if hasattr(model, "SupportIndex") else None
    for link in report.links:
        links.append(link)
        if tally is not None:
            tally.add(link)
    for item in report.support:
        support.append(item)
        if index is not None:
            index.add(item)
    return links, support, ({"tally": tally, "support_index": index} if tally else {})


def measure(n: int, repeat: int, out: Path | None, on_disk: bool = False) -> dict[str, Any]:
    """CPU seconds of each renderer and of ``write_reports`` on a report of ``n`` links;
    ``on_disk``: of ``build_report`` and ``write_reports`` on its records spooled to disk
    (``spooled``), with the chunks read from disk by each."""
    from archiver.report.render_csv import render_csv
    from archiver.report.render_html import render_html_chunks
    from archiver.report.render_json import render_json_chunks
    from archiver.report.render_md import render_md
    from archiver.report.write import write_reports

    report = build(n)
    if on_disk:
        return _measure_on_disk(report, repeat, out)
    steps = {
        "report.json": lambda: "".join(render_json_chunks(report)),
        "report.html": lambda: "".join(render_html_chunks(report)),
        "report.md": lambda: render_md(report),
        "links.csv": lambda: render_csv(report),
    }
    times: dict[str, list[float]] = {name: [] for name in (*steps, "write_reports")}
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        folder = out or Path(tmp)
        for _ in range(repeat):
            for name, step in steps.items():
                began = time.process_time()
                step()
                times[name].append(time.process_time() - began)
            began = time.process_time()
            write_reports(report, folder)
            times["write_reports"].append(time.process_time() - began)
    return {"links": len(report.links), "times": times}


def _measure_on_disk(report: Any, repeat: int, out: Path | None) -> dict[str, Any]:
    from archiver.report import build_report
    from archiver.report.write import write_reports
    from archiver.spool import Spool

    read = Spool._read
    reads = [0]

    def counted(self: Any, number: int) -> Any:
        if number not in self._cache:
            reads[0] += 1
        return read(self, number)

    Spool._read = counted  # type: ignore[method-assign]
    times: dict[str, list[float]] = {"build_report": [], "write_reports": []}
    chunks: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        folder = out or Path(tmp)
        for _ in range(repeat):
            links, support, extra = spooled(report)  # fresh spools: nothing cached
            reads[0] = 0
            began = time.process_time()
            made = build_report(report.source, report.document, links,
                                generated_at=report.generated_at, changes=report.changes,
                                notes=report.notes, run=report.run, root=Path("/bench"),
                                support=support, **extra)
            times["build_report"].append(time.process_time() - began)
            chunks["read by build_report"] = reads[0]
            began = time.process_time()
            write_reports(made, folder)
            times["write_reports"].append(time.process_time() - began)
            chunks["read by write_reports"] = reads[0] - chunks["read by build_report"]
            chunks["links"], chunks["support"] = len(links._spans), len(support._spans)
    return {"links": len(report.links), "times": times, "chunks": chunks}


def _child(checkout: Path, n: int, repeat: int, out: Path,
           on_disk: bool = False) -> dict[str, Any]:
    code = (f"import sys, json; sys.path[:0] = [{str(checkout)!r}, {str(ROOT / 'bench')!r}]\n"
            "import report_bench\n"
            f"print(json.dumps(report_bench.measure({n}, {repeat}, __import__('pathlib')"
            f".Path({str(out)!r}), {on_disk!r})))")
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _row(label: str, figures: dict[str, Any], name: str) -> str:
    values = figures["times"][name]
    best, median = min(values), statistics.median(values)
    return (f"  {label:<10} {name:<14} best {best * 1000:8.1f} ms  median {median * 1000:8.1f} ms"
            f"  {best * 1000 / figures['links']:7.3f} ms/link")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="another checkout of the archiver, measured beside this one")
    parser.add_argument("--no-check", action="store_true",
                        help="with --baseline: do not compare the files written")
    parser.add_argument("--spooled", action="store_true",
                        help="the records spooled to disk, as a source of over 4,096 links "
                             "has them: build_report and write_reports, and chunks read")
    args = parser.parse_args()
    for n in args.links:
        with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
            ours_dir, base_dir = Path(tmp, "this"), Path(tmp, "baseline")
            ours_dir.mkdir()
            base_dir.mkdir()
            runs = {"this": _child(ROOT, n, args.repeat, ours_dir, args.spooled)}
            if args.baseline:
                runs["baseline"] = _child(args.baseline.resolve(), n, args.repeat, base_dir,
                                          args.spooled)
            print(f"{runs['this']['links']} links ({n} footnotes), {args.repeat} runs each, "
                  + ("records spooled to disk, " if args.spooled else "") + "CPU time:")
            for name in (("build_report", "write_reports") if args.spooled
                         else (*FILES, "write_reports")):
                for label, figures in runs.items():
                    print(_row(label, figures, name))
            for label, figures in runs.items():
                if "chunks" in figures:
                    print(f"  {label:<10} chunks: " + ", ".join(
                        f"{key} {value}" for key, value in figures["chunks"].items()))
            if args.baseline and not args.no_check:
                same = [name for name in FILES
                        if filecmp.cmp(ours_dir / name, base_dir / name, shallow=False)]
                differ = [name for name in FILES if name not in same]
                print(f"  same bytes as the baseline: {', '.join(same) or 'none'}"
                      + (f"; DIFFERENT: {', '.join(differ)}" if differ else ""))
                if differ:
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
