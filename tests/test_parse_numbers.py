"""Footnote numbers as written: a label that is a digit but not a decimal number, and a
number far past the others, are findings, not a document that cannot be read or read at all.
"""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("label", ["²", "³", "①", "1²"])
def test_a_label_of_digits_that_are_not_a_number_is_a_label(label: str) -> None:
    """``str.isdigit`` holds for superscript and circled digits, which ``int`` refuses: the
    whole document could not be read (ValueError). Such a label is a name, numbered after
    the highest number."""
    source = (f"# T\n\nA claim.[^4] Another.[^{label}]\n\n[^4]: See <https://example.org/a>.\n"
              f"[^{label}]: See <https://example.org/b>.\n").encode()
    doc = parse_bytes(source, "d.md")
    assert [(f.number, f.urls) for f in doc.footnotes] == [
        (4, ("https://example.org/a",)), (5, ("https://example.org/b",))]
    assert [c.text for f in doc.footnotes for c in f.claims] == ["A claim.", "Another."]


def test_a_label_of_decimal_digits_of_another_script_is_its_number() -> None:
    source = ("# T\n\nA claim.[^٣]\n\n[^٣]: See <https://example.org/a>.\n").encode()
    doc = parse_bytes(source, "d.md")
    assert [f.number for f in doc.footnotes] == [3]
