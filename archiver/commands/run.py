"""``archiver run``, ``archiver check`` and ``archiver report``: terminal output and exit codes.

The first line printed on stdout is always the summary (fit for a mail subject from cron);
details follow. Progress goes to stderr: a live bar on a terminal, plain lines otherwise
(cron, CI), nothing with ``--quiet``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.config import load_settings
from archiver.models import ChangeKind, Verdict, isoformat
from archiver.pipeline import SilentProgress
from archiver.safetext import escape_controls, json_dumps

if TYPE_CHECKING:
    from archiver.cli import Output
    from archiver.pipeline import RunOutcome

__all__ = ["check", "rebuild_reports", "run"]

# Verdicts in the order the contract lists them, then links not judged yet.
_ORDER = [verdict.value for verdict in Verdict] + ["unchecked"]


class PlainProgress:
    """One line per finished URL, for logs (no terminal)."""

    def __init__(self, io: Output) -> None:
        self.io = io
        self.total = 0
        self.count = 0
        self.name = ""

    def stage(self, name: str, total: int) -> None:
        self.name, self.total, self.count = name, total, 0
        self.io.err.write(f"{name}: {total} URL(s)\n")

    def advance(self, url: str, verdict: str) -> None:
        self.count += 1
        width = len(str(self.total))
        self.io.err.write(f"  [{self.count:>{width}}/{self.total}] {verdict:<16} "
                          f"{escape_controls(url)}\n")
        self.io.err.flush()

    def done(self) -> None:
        pass


class LiveProgress:
    """A rich progress bar with counts by outcome, on stderr."""

    def __init__(self, io: Output) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=Console(file=io.err),
            transient=False,
        )
        self._task: Any = None
        self._counts: Counter[str] = Counter()
        self._progress.start()

    def stage(self, name: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total)
        self._counts = Counter()
        self._task = self._progress.add_task(name, total=total, counts="")

    def advance(self, url: str, verdict: str) -> None:
        self._counts[verdict] += 1
        counts = " ".join(f"{k}:{v}" for k, v in self._counts.most_common(5))
        self._progress.update(self._task, advance=1, counts=counts)

    def done(self) -> None:
        self._progress.stop()


def _progress(io: Output, quiet: bool) -> PlainProgress | LiveProgress | SilentProgress:
    if quiet:
        return SilentProgress()
    return LiveProgress(io) if io.interactive else PlainProgress(io)


def _counts_text(verdicts: dict[str, int] | Any) -> str:
    items = sorted(verdicts.items(), key=lambda kv: _ORDER.index(kv[0])
                   if kv[0] in _ORDER else 99)
    return ", ".join(f"{n} {v}" for v, n in items if n)


def _refused_text(outcome: RunOutcome) -> str:
    """The links judged without the network (refused addresses, invalid URLs), offline."""
    return f"; {outcome.refused} refused without using the network" if outcome.refused else ""


def _summary_run(outcome: RunOutcome) -> str:
    links = outcome.link_count
    sources = len(outcome.sources)
    if outcome.offline:
        return (f"No network: nothing could be reached; {links - outcome.refused} link(s) "
                f"keep the state they had{_refused_text(outcome)}.")
    head = (f"{links} cited URL(s) in {sources} source(s): {_counts_text(outcome.verdicts)}"
            if links else f"no cited URLs in {sources} source(s)")
    done = [f"fetched {outcome.fetched}"]
    if outcome.refused:
        done.append(f"refused {outcome.refused}")
    done.append(f"already archived {outcome.reused}")
    if outcome.not_fetched:
        done.append(f"not fetched {len(outcome.not_fetched)}")
    return f"{head} ({', '.join(done)}){_outage_test_text(outcome)}"


def _outage_test_text(outcome: RunOutcome) -> str:
    """Said when failures were recorded as real although there were too few hosts to tell
    them from an outage."""
    if outcome.outage or outcome.outage_test_applied or not outcome.network_failures:
        return ""
    return (f"; outage test not applied ({outcome.tested_hosts} host(s), "
            f"needs {outcome.min_hosts})")


def _details(outcome: RunOutcome, io: Output, *, quiet: bool = False,
             listed: frozenset[str] = frozenset()) -> None:
    """What follows the summary line: report paths (not with ``quiet``) and notes, then what
    needs attention, each link once (``listed``: URLs already printed, as changes). Offline,
    the summary line said it all: no link was checked."""
    from archiver.pipeline import OFFLINE_NOTE, OUTAGE_NOTE

    for source in outcome.sources:
        if source.error:
            io.print(f"  {source.source.id}: NOT READ: {source.error}")
        elif source.report_dir is not None and not quiet and not outcome.offline:
            io.print(f"  {source.source.id}: report {source.report_dir / 'report.html'}")
    if outcome.offline:
        return
    # Notes need attention (lookups that could not be made, a repaired WARC, a browser that
    # could not start): said with --quiet too.
    for note in outcome.notes:
        if note not in (OFFLINE_NOTE, OUTAGE_NOTE):  # the summary line says those
            io.print(f"  note: {note}")
    if not quiet and outcome.rescued:
        io.print(f"  {outcome.rescued} unhealthy link(s) have an Internet Archive copy")
    skipped = [link for link in outcome.links if link.url in outcome.not_fetched]
    if skipped:
        io.print("")
        io.print(f"Not fetched in this run, tried again next time ({len(skipped)}):")
        for link in skipped:
            notes = ",".join(str(n) for n in link.footnotes)
            why = outcome.not_fetched[link.url].removeprefix("not fetched: ")
            io.print(f"  {'not fetched':<16} fn {notes:<8} {link.url}  ({why})")
    unhealthy = [link for link in outcome.links
                 if link.verdict is not None and not link.verdict.healthy
                 and link.url not in listed and link.url not in outcome.not_fetched]
    if unhealthy:
        io.print("")
        io.print(f"Links that need attention ({len(unhealthy)}):")
        for link in unhealthy:
            notes = ",".join(str(n) for n in link.footnotes)
            rescue = " [archived copy]" if link.memento or link.rescued else ""
            io.print(f"  {link.verdict.value if link.verdict else '?':<16} fn {notes:<8} "
                     f"{link.url}{rescue}")
            if link.reason and not quiet:
                io.print(f"  {'':<16} {'':<11}{link.reason}")


def _outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "run": outcome.run_id,
        "kind": outcome.kind,
        "started_at": isoformat(outcome.started_at),
        "finished_at": isoformat(outcome.finished_at),
        "offline": outcome.offline,
        "outage": outcome.outage,
        "fetched": outcome.fetched,
        "reached": outcome.reached,
        "refused": outcome.refused,
        "reused": outcome.reused,
        "not_fetched": [{"url": url, "reason": reason}
                        for url, reason in outcome.not_fetched.items()],
        "outage_test": {"applied": outcome.outage_test_applied,
                        "hosts": outcome.tested_hosts, "min_hosts": outcome.min_hosts},
        "verdicts": dict(outcome.verdicts),
        "rescued": outcome.rescued,
        "notes": list(outcome.notes),
        "sources": [
            {"id": s.source.id, "error": s.error,
             "report": str(s.report_dir / "report.json") if s.report_dir else None}
            for s in outcome.sources
        ],
        "changes": [
            {"url": c.url, "kind": c.kind.value,
             "verdict": c.verdict.value if c.verdict else None,
             "previous_verdict": c.previous_verdict.value if c.previous_verdict else None,
             "since": isoformat(c.since) if c.since else None,
             "similarity": c.similarity, "reason": c.reason, "footnotes": list(c.footnotes)}
            for c in outcome.changes
        ],
    }


def _overrides(deadline: float | None) -> dict[str, Any] | None:
    return {"run_deadline": deadline} if deadline is not None else None


def run(config: Path, *, sources: list[str] | None, refresh: bool, rescue: bool,
        rescue_capture: bool, fmt: str, quiet: bool, io: Output,
        deadline: float | None = None) -> int:
    """The main job. Exit 0 when finished (dead links are findings; URLs not fetched for
    the ``deadline``, seconds, are listed), 2 when a source could not be read, 3 when the
    archive could not be written (raised as ArchiveError)."""
    settings = load_settings(config, overrides=_overrides(deadline))
    from archiver.pipeline import RunOptions, execute

    progress = _progress(io, quiet or fmt == "json")
    try:
        outcome = execute(settings, sources,
                          RunOptions("run", refresh=refresh, rescue=rescue,
                                     rescue_capture=rescue_capture),
                          progress)
    finally:
        progress.done()
    if fmt == "json":
        io.json(_outcome_json(outcome))
    else:
        io.print(_summary_run(outcome))
        _details(outcome, io, quiet=quiet)
    for error in outcome.document_errors:
        io.error(error)
    return 2 if outcome.document_errors else 0


def _summary_check(outcome: RunOutcome) -> str:
    links = outcome.link_count
    if outcome.offline:
        return (f"archiver check: no network, nothing could be reached; "
                f"{links - outcome.refused} link(s) keep the state they had"
                f"{_refused_text(outcome)}")
    if outcome.outage:
        return (f"archiver check: outage (nearly every host failed at once); no link "
                f"changed state ({links} links)")
    kinds = Counter(c.kind for c in outcome.changes)
    failing = sum(1 for link in outcome.links if link.state is not None
                  and link.state.value != "ok")
    parts = []
    for kind, label in [(ChangeKind.NEWLY_FAILING, "newly failing"),
                        (ChangeKind.NEWLY_DEAD, "newly dead"),
                        (ChangeKind.RECOVERED, "recovered"),
                        (ChangeKind.DRIFTED, "drifted"),
                        (ChangeKind.SUPPORT_DROPPED, "claim support dropped")]:
        if kinds[kind]:
            parts.append(f"{kinds[kind]} {label}")
    changed = ", ".join(parts) if parts else "no changes"
    skipped = f"; {len(outcome.not_fetched)} not fetched" if outcome.not_fetched else ""
    return (f"archiver check: {changed}; {failing} of {links} links failing or dead"
            f"{skipped}{_outage_test_text(outcome)}")


def check(config: Path, *, sources: list[str] | None, fail_on: str, rescue: bool, fmt: str,
          quiet: bool, io: Output, deadline: float | None = None) -> int:
    """The scheduled check. Exit 1 when links fail at the ``fail_on`` level, else 0."""
    settings = load_settings(config, overrides=_overrides(deadline))
    from archiver.pipeline import RunOptions, execute, failing_at

    progress = _progress(io, quiet or fmt == "json")
    try:
        outcome = execute(settings, sources, RunOptions("check", rescue=rescue), progress)
    finally:
        progress.done()
    failing = failing_at(outcome, fail_on)
    if fmt == "json":
        data = _outcome_json(outcome)
        data["summary"] = _summary_check(outcome)
        data["fail_on"] = fail_on
        data["failing"] = len(failing)
        io.out.write(json_dumps(data, indent=2) + "\n")
    else:
        io.print(_summary_check(outcome))
        if not outcome.offline:
            _changes_text(outcome, io)
        _details(outcome, io, quiet=quiet, listed=frozenset(c.url for c in outcome.changes))
    for error in outcome.document_errors:
        io.error(error)
    if outcome.document_errors:
        return 2
    return 1 if failing else 0


def _changes_text(outcome: RunOutcome, io: Output) -> None:
    from archiver.report.model import CHANGE_LABELS

    for kind in (ChangeKind.NEWLY_FAILING, ChangeKind.NEWLY_DEAD, ChangeKind.RECOVERED,
                 ChangeKind.DRIFTED, ChangeKind.SUPPORT_DROPPED, ChangeKind.STILL_FAILING):
        label = CHANGE_LABELS[kind.value]
        items = [c for c in outcome.changes if c.kind is kind]
        if not items:
            continue
        io.print(f"{label} ({len(items)}):")
        for c in items:
            extra = []
            if c.verdict:
                extra.append(c.verdict.value)
            if c.since:
                extra.append(f"since {isoformat(c.since)}")
            if c.similarity is not None:
                extra.append(f"similarity {c.similarity:.2f}")
            if c.kind is ChangeKind.SUPPORT_DROPPED:
                extra.append(c.reason)
            notes = ",".join(str(n) for n in c.footnotes)
            io.print(f"  fn {notes:<8} {c.url}  ({'; '.join(extra)})")


def rebuild_reports(config: Path, *, sources: list[str] | None, io: Output) -> int:
    """Rebuild reports from the catalog, no network."""
    from archiver.pipeline import rebuild

    settings = load_settings(config)
    written = rebuild(settings, sources)
    errors = [o.error for o in written if o.error]
    ok = [o for o in written if o.report_dir]
    io.print(f"rebuilt {len(ok)} report(s)"
             + (f"; {len(errors)} source(s) could not be read" if errors else ""))
    for o in ok:
        io.print(f"  {o.source.id}: {o.report_dir}")
    for error in errors:
        io.error(str(error))
    return 2 if errors else 0
