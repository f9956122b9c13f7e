"""A large run's documents kept on disk while it fetches (``archiver.docshelf``): they come
back equal, nothing of them stays in memory meanwhile, and a run that shelves them writes the
same reports and prints the same lines as one that does not."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import pytest

from archiver import docshelf, pipeline
from archiver.models import Source
from archiver.parse import read_document
from tests.test_run import call
from tests.test_spool_run import _project, _reports, frozen_clock
from tests.webserver import WebServer

BRIEF = """# A briefing

On 25 June 2020 the council adopted decision 1.[^1] It was "unanimous", said the mayor.[^2]
Nobody cites the third twice.[^3] A fourth claim.[^2]

[^1]: See <https://example.org/a> and <https://example.org/b>.
[^2]: Interview, <http://EXAMPLE.org/a>; also https://other.example/x?y=1#frag.
[^3]: No URL here.
[^4]: Never cited: <https://example.org/never>.
"""


def _outcomes(tmp_path: Path) -> list[pipeline.SourceOutcome]:
    (tmp_path / "one.md").write_text(BRIEF, encoding="utf-8")
    (tmp_path / "two.md").write_text(BRIEF.replace("decision 1", "decision 2")
                                     .replace("example.org/b", "example.org/c"),
                                     encoding="utf-8")
    return [pipeline.SourceOutcome(Source(name, str(tmp_path / f"{name}.md")),
                                   read_document(tmp_path / f"{name}.md"))
            for name in ("one", "two")] + [
        pipeline.SourceOutcome(Source("bad", "missing.md"), None, error="unreadable")]


def test_documents_come_back_equal_and_are_gone_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docshelf, "CHUNK", 2)  # several chunks per document
    outcomes = _outcomes(tmp_path)
    parsed = [read_document(tmp_path / f"{name}.md") for name in ("one", "two")]
    assert all(doc.findings and doc.claims for doc in parsed)  # every part is exercised
    assert [o.document for o in outcomes[:2]] == parsed
    targets = pipeline.plan_targets({o.source.id: o.document for o in outcomes
                                     if o.document is not None})
    planned = list(targets)
    alive = [weakref.ref(o.document) for o in outcomes[:2] if o.document is not None]
    shelf = docshelf.Shelf(tmp_path / "reports")

    made = shelf.put(outcomes, targets)
    assert targets == []  # the caller's list is emptied: nothing holds the old targets
    assert made == planned and all(a is not b for a, b in zip(made, planned, strict=True))
    del planned
    gc.collect()
    assert [ref() for ref in alive] == [None, None]  # the documents are freed
    assert [o.document for o in outcomes] == [None, None, None]
    assert [o.error for o in outcomes] == [None, None, "unreadable"]
    assert list((tmp_path / "reports").iterdir()) == []  # the file is unlinked

    shelf.restore(outcomes)
    assert [o.document for o in outcomes[:2]] == parsed
    assert outcomes[2].document is None and outcomes[2].error == "unreadable"
    restored = outcomes[0].document
    assert restored is not None
    assert restored.citing == parsed[0].citing and restored.claims == parsed[0].claims


def test_a_folder_that_cannot_be_written_is_an_archive_error(tmp_path: Path) -> None:
    outcomes = _outcomes(tmp_path)
    (tmp_path / "reports").write_text("a file where the folder should be")
    with pytest.raises(docshelf.ArchiveError, match="reports"):
        docshelf.Shelf(tmp_path / "reports").put(outcomes, [])


@pytest.mark.parametrize("cut", [0, 40])
def test_a_shelf_that_cannot_be_read_back_is_an_archive_error(
        tmp_path: Path, cut: int) -> None:
    """The shelf's file cut short under the run (emptied, or cut inside a chunk): reading
    the documents back is an ``ArchiveError`` naming the folder, and the file is closed."""
    import os

    outcomes = _outcomes(tmp_path)
    targets = pipeline.plan_targets({o.source.id: o.document for o in outcomes
                                     if o.document is not None})
    shelf = docshelf.Shelf(tmp_path / "reports")
    shelf.put(outcomes, targets)
    assert shelf._file is not None
    os.ftruncate(shelf._file.fileno(), cut)
    with pytest.raises(docshelf.ArchiveError,
                       match="cannot read the run's temporary records") as err:
        shelf.restore(outcomes)
    assert str(tmp_path / "reports") in str(err.value)
    assert shelf._file is None


def test_a_run_writes_the_same_with_its_documents_shelved_or_not(
        tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first"
    first.mkdir()
    config = _project(first, web)
    # Worker processes: forked after the documents are shelved.
    config.write_text(config.read_text().replace("[fetch]\n", "[fetch]\nworkers = 2\n"))
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "SHELVE_AT", 0)
        code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err
    assert "not_found" in out and "fetched 24" in out, out

    # The same project twice, its tail at one frozen moment (every link was just checked,
    # so nothing is fetched: what is written comes from the catalog and the documents).
    frozen_clock(monkeypatch)
    written = {}
    for name, at in (("held", 1_000_000), ("shelved", 0)):
        root = tmp_path / name
        shutil.copytree(first, root)
        with monkeypatch.context() as patch:
            patch.setattr(pipeline, "SHELVE_AT", at)
            said = []
            for argv in (["run"], ["run", "--format", "json"]):
                code, out, err = call(*argv, "--config", str(root / "sources.toml"))
                said.append((code, out.replace(str(root), "ROOT"), err))
        written[name] = (_reports(root), said)
    assert written["shelved"] == written["held"]
    reports, said = written["shelved"]
    assert any("decision 5" in text.decode("utf-8", "replace") for text in reports.values())
    assert said[0][0] == 0
