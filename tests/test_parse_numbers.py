"""Numbers as documents write them: a footnote label, a list start or an ODT attribute of
digits that are not a decimal number ('²': ``str.isdigit`` holds, ``int`` refuses) and a
number far past the others are read or are findings, not a document that cannot be read or
is read for minutes into millions of findings."""

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


def _odt(space_count: str, position: str) -> bytes:
    """An ODT of one claim citing one note, with a ``text:s`` of ``space_count`` spaces and
    a text style at ``position``."""
    import io
    import zipfile

    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content'
        ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
        ' xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" office:version="1.2">'
        '<office:automatic-styles><style:style style:name="T1" style:family="text">'
        f'<style:text-properties style:text-position="{position}"/></style:style>'
        "</office:automatic-styles><office:body><office:text>"
        f'<text:p>A claim<text:s text:c="{space_count}"/>stands.'
        '<text:note text:id="ftn1" text:note-class="footnote">'
        "<text:note-citation>1</text:note-citation><text:note-body>"
        "<text:p>See https://example.org/a</text:p></text:note-body></text:note></text:p>"
        "</office:text></office:body></office:document-content>")
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", content)
    return data.getvalue()


@pytest.mark.parametrize(("count", "position"), [("2", "super 58%"), ("²", "super 58%"),
                                                 ("2", "²%")])
def test_odt_attributes_of_digits_that_are_not_a_number_are_read(count: str,
                                                                 position: str) -> None:
    """A space count or a text position of such digits made the ODT 'a broken container'."""
    doc = parse_bytes(_odt(count, position), "d.odt")
    assert [(f.number, f.urls) for f in doc.footnotes] == [(1, ("https://example.org/a",))]
    assert [c.text for c in doc.footnotes[0].claims] == ["A claim stands."]


@pytest.mark.parametrize("start", ["²", "1"])
def test_html_notes_list_starting_at_digits_that_are_not_a_number_is_read(start: str) -> None:
    """``<ol start="²">``: the whole document could not be read (ValueError)."""
    source = (f'<html><body><h1>T</h1><p>A claim.<sup>1</sup> Another.<sup>2</sup></p>'
              f'<ol start="{start}"><li>See https://example.org/a</li>'
              f'<li>See https://example.org/b</li></ol></body></html>').encode()
    doc = parse_bytes(source, "d.html")
    assert [(f.number, f.urls) for f in doc.footnotes] == [
        (1, ("https://example.org/a",)), (2, ("https://example.org/b",))]


def test_a_content_length_of_digits_that_are_not_a_number_names_no_announced_size() -> None:
    """A cut capture's reason gives the announced size when there is one; a header "²"
    is none (``int`` refused it, and the verdict crashed)."""
    from archiver.classify import _incomplete
    from archiver.models import Capture, Hop, utcnow

    def cut(length: str) -> str | None:
        headers = (("Content-Type", "text/html"), ("Content-Length", length))
        url = "http://example.org/cut"
        return _incomplete(Capture(
            url=url, final_url=url, status=200, hops=(Hop(url, 200, headers),),
            content=b"x" * 100, content_type="text/html", payload_digest="sha1:X",
            captured_at=utcnow(), truncated="disconnect", body_bytes=100))

    assert cut("1000") == "body cut at 100 of 1000 bytes (connection closed)"
    assert cut("²") == "body cut at 100 bytes (connection closed)"


def test_a_lock_file_naming_digits_that_are_not_a_number_has_no_pid(tmp_path) -> None:
    from archiver.catalog import _read_holder

    lock = tmp_path / "lock"
    lock.write_text("4242 2026-12-01T00:00:00Z\n")
    assert _read_holder(lock) == (4242, "2026-12-01T00:00:00Z")
    lock.write_text("²³ 2026-12-01T00:00:00Z\n")
    assert _read_holder(lock) == (None, "2026-12-01T00:00:00Z")
