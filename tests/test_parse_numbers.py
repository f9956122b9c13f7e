"""Footnote numbers as written: a number far past the others is a finding, not a document
read for minutes into millions of findings."""

from __future__ import annotations

from archiver import lint
from archiver.parse import parse_bytes


def _gaps(markers: list[int], notes: list[int]) -> list[str]:
    findings = lint.structure_findings([(n, 1) for n in markers], [(n, 2) for n in notes])
    return [f.message for f in findings if f.code == "numbering-gap"]


def test_each_number_skipped_is_a_gap() -> None:
    assert _gaps([1, 2, 5, 9], [1, 2, 5, 7]) == [
        "footnote numbering skips 3", "footnote numbering skips 4",
        "footnote numbering skips 6", "footnote numbering skips 8"]
    assert _gaps([0, -4, 3], [3]) == ["footnote numbering skips 1", "footnote numbering skips 2"]
    assert _gaps([], []) == [] and _gaps([1], [1]) == []


def test_a_long_run_of_skipped_numbers_is_one_gap() -> None:
    """A label like ``[^20201028]`` (a date) skipped twenty million numbers: as many
    findings, minutes and gigabytes. A run longer than ``lint.GAP_RUN`` numbers is one."""
    last = lint.GAP_RUN + 2
    assert len(_gaps([1, last], [1, last])) == lint.GAP_RUN
    assert _gaps([1, last + 1], [1, last + 1]) == [
        f"footnote numbering skips 2 to {last} ({last - 1} numbers)"]
    assert _gaps([1, 3, 10**30], [1]) == [
        "footnote numbering skips 2",
        f"footnote numbering skips 4 to {10**30 - 1} ({10**30 - 4} numbers)"]


def test_a_document_citing_a_date_as_a_footnote_label_has_one_gap() -> None:
    source = (b"# T\n\nA claim.[^1] Another.[^20201028]\n\n"
              b"[^1]: See <https://example.org/a>.\n[^20201028]: See <https://example.org/b>.\n")
    doc = parse_bytes(source, "d.md")
    assert [f.number for f in doc.footnotes] == [1, 20201028]
    gaps = [f.message for f in doc.findings if f.code == "numbering-gap"]
    assert gaps == ["footnote numbering skips 2 to 20201027 (20201026 numbers)"]
