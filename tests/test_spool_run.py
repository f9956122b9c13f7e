"""The run's tail with its link records and claim support spooled to disk (past
``archiver.spool.HELD`` per source) and held in memory: ``archiver run`` and ``archiver
report`` write the same bytes in every report file and print the same lines either way, and
as when the report is built from the records as one list.

``tests/test_spool.py`` compares the renderers on spooled records; this compares the whole
tail on a real catalog: the records the pipeline makes, claim support judged on the captured
pages, the terminal's list of links that need attention and the counts by verdict."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver import models, spool
from archiver.report import model
from tests.test_run import call
from tests.webserver import Reply, WebServer

HTML = "text/html; charset=utf-8"
PAGE = ("<html><head><title>Page {n}</title></head><body><p>On 25 June 2020 the council of "
        "Almaty adopted decision {n} on the budget of 83 340 KZT.</p></body></html>")


def _project(root: Path, web: WebServer) -> Path:
    """A briefing whose footnotes cite pages that answer, a missing page and a URL two
    footnotes cite, with footnotes defined out of the order they are cited, one citing no
    URL and one no marker cites."""
    urls = {}
    for n in range(1, 25):
        path = f"/page/{n}"
        if n % 7 == 0:
            web.route(path, Reply(404, b"<html><body>Not found</body></html>",
                                  {"Content-Type": HTML}))
        else:
            web.route(path, Reply(200, PAGE.format(n=n).encode(), {"Content-Type": HTML}))
        urls[n] = web.url(path)
    urls[25] = urls[3]  # cited again by another footnote
    cited = [*range(1, 26), 26]  # 26 cites no URL
    cited[4], cited[9] = cited[9], cited[4]  # markers out of the footnotes' order
    body = "\n\n".join(f"On 25 June 2020 the council of Almaty adopted decision {n} on the "
                       f"budget of 83 340 KZT.[^{n}]" for n in cited)
    notes = [f"[^{n}]: See <{url}>." for n, url in urls.items()]
    notes.append("[^26]: Interview with the author, Almaty.")
    notes.append(f"[^27]: Never cited: <{web.url('/page/1')}>.")
    (root / "sources").mkdir()
    (root / "sources" / "brief.md").write_text(
        f"# A briefing\n\n{body}\n\n" + "\n".join(reversed(notes)) + "\n", encoding="utf-8")
    config = root / "sources.toml"
    config.write_text(
        '[[sources]]\nid = "brief"\npath = "sources/brief.md"\ntitle = "A briefing"\n'
        "published = 2020-11-01\n\n"
        "[fetch]\ntimeout = 5\nretries = 1\nallow_private_networks = true\n"
        "host_interval = 0\ndeadline = 30\nbackoff_base = 0.01\nbackoff_max = 0.05\n\n"
        "[rescue]\nenabled = false\n", encoding="utf-8")
    return config


def _reports(root: Path) -> dict[str, bytes]:
    folder = root / "reports"
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class _NotASpool:
    """Stands for ``Spool`` in ``archiver.report.model``: no record is one, so the report
    is built from the records as a whole list (the path of records given as a tuple)."""


def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Every archiver module's ``utcnow`` answers this moment (returned) until the test
    ends: the same run twice writes the same bytes."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = models.utcnow
    for module in list(sys.modules.values()):
        if module is not None and module.__name__.startswith("archiver") \
                and getattr(module, "utcnow", None) is clock:
            monkeypatch.setattr(module, "utcnow", lambda: now)
    return now


def _spooled(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Every record on disk in chunks of 3 (``disk``), every record in memory
    (``memory``), or in memory and the report built from a list of them (``whole``)."""
    on_disk = how == "disk"
    monkeypatch.setattr(spool, "HELD", 0 if on_disk else 1_000_000)
    monkeypatch.setattr(spool, "CHUNK", 3 if on_disk else spool.CHUNK)
    if how == "whole":
        monkeypatch.setattr(model, "Spool", _NotASpool)


def test_the_tail_writes_the_same_with_its_records_on_disk_or_in_memory(
        tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first"
    first.mkdir()
    config = _project(first, web)
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    assert "not_found" in out and "fetched 24" in out, out

    # The same project three times, its tail run at one frozen moment: fetching nothing
    # again (every link was just checked), so everything written comes from the catalog.
    frozen_clock(monkeypatch)
    written: dict[str, tuple[dict[str, bytes], list[tuple[int, str, str]]]] = {}
    for name in ("whole", "memory", "disk"):
        on_disk = name == "disk"
        root = tmp_path / name
        shutil.copytree(first, root)
        with monkeypatch.context() as patch:
            _spooled(patch, name)
            flushed: list[int] = []  # items pending at each write to disk
            flush = spool.Spool._flush

            def counted(self: spool.Spool[object], flush=flush, flushed=flushed) -> None:
                flushed.append(len(self._pending))
                flush(self)

            patch.setattr(spool.Spool, "_flush", counted)
            said = []
            for argv in (["run"], ["run", "--format", "json"], ["report"]):
                code, out, err = call(*argv, "--config", str(root / "sources.toml"))
                said.append((code, out.replace(str(root), "ROOT"), err))
        written[name] = (_reports(root), said)
        # Link records and claim support written to disk (24 links and 25 supports: 8
        # chunks of 3 each, three tails), or never.
        assert len(flushed) == (3 * (8 + 8) if on_disk else 0), flushed

    whole = written["whole"]
    assert {"brief/report.json", "brief/report.html", "brief/report.md",
            "brief/links.csv"} <= whole[0].keys()
    for how in ("memory", "disk"):
        files, said = written[how]
        assert sorted(files) == sorted(whole[0]), how
        for name, data in whole[0].items():
            assert files[name] == data, (how, name)
        assert said == whole[1], how
    # What was compared: the links that need attention listed, the counts by verdict,
    # claim support judged on the pages.
    code, out, _err = whole[1][0]
    assert code == 0 and "fetched 0" in out and "21 ok, 3 not_found" in out, out
    assert "Links that need attention (3)" in out, out
    assert b'"level": "supported"' in whole[0]["brief/report.json"]


def test_sources_are_read_with_the_collector_off_and_it_is_restored(tmp_path) -> None:
    # A document of many footnotes makes objects that all live on: each collection they set
    # off while it is parsed goes over every one made so far, a cost per footnote that grows
    # with the document (at 100,000 footnotes a third of the parse). None may run.
    import gc

    from archiver import pipeline
    from archiver.config import load_settings

    count = 3000
    body = " ".join(f"Claim number {n} is supported.[^{n}]" for n in range(1, count + 1))
    notes = "\n".join(f"[^{n}]: See <https://example.org/{n}>." for n in range(1, count + 1))
    (tmp_path / "brief.md").write_text(f"# Brief\n\n{body}\n\n{notes}\n", encoding="utf-8")
    (tmp_path / "sources.toml").write_text('[[sources]]\nid = "brief"\npath = "brief.md"\n')
    settings = load_settings(tmp_path / "sources.toml")
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    was = gc.isenabled()
    gc.enable()
    gc.callbacks.append(seen)
    try:
        outcomes = pipeline._read_sources(settings, None)
        during = list(collections)
        assert gc.isenabled()  # as it was before
    finally:
        gc.callbacks.remove(seen)
        if not was:
            gc.disable()
    assert outcomes[0].document is not None
    assert len(outcomes[0].document.footnotes) == count
    assert during == [0]  # only the young collection made on the way out
