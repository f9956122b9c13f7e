"""Hostile or odd document structure: unexpanded entity references, deep HTML nesting."""

from __future__ import annotations

import io
import time
import zipfile

import pytest

from archiver.parse import parse_bytes
from tests.test_parse_readers import W, _docx, _odt, _odt_note, _zip

DTD = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
       '<!ENTITY name "expanded">]>')


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_docx_entity_reference_keeps_the_rest_of_the_footnote_and_its_url() -> None:
    footnotes = (f'{DTD}<w:footnotes {W}><w:footnote w:type="separator" w:id="-1"/>'
                 '<w:footnote w:id="7"><w:p><w:r><w:t xml:space="preserve">Report &name; and '
                 '&xxe;, see https://example.org/report.pdf for the text</w:t></w:r></w:p>'
                 "</w:footnote></w:footnotes>")
    base = _docx("<w:r><w:t>placeholder</w:t></w:r>")
    members = _members(base)
    members["word/footnotes.xml"] = footnotes.encode()
    doc = parse_bytes(_zip(members), "entity.docx")
    note = doc.footnote(1)
    assert note is not None
    assert note.urls == ("https://example.org/report.pdf",)
    assert note.text == ("Report &name; and &xxe;, see https://example.org/report.pdf for the "
                         "text")
    # Not expanded: no file read (XXE), no internal entity either.
    assert "root:" not in note.text and "expanded" not in note.text


def test_docx_entity_in_a_hyperlink_field_code_keeps_the_target() -> None:
    body = ('<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText xml:space='
            '"preserve">&name; HYPERLINK "https://example.org/field"</w:instrText></w:r>'
            '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>the page</w:t></w:r>'
            '<w:r><w:fldChar w:fldCharType="end"/></w:r>')
    data = _docx(body)
    members = _members(data)
    members["word/footnotes.xml"] = DTD.encode() + members["word/footnotes.xml"]
    doc = parse_bytes(_zip(members), "field.docx")
    assert doc.footnote(1).urls == ("https://example.org/field",)


def test_odt_and_docx_keep_the_same_text_after_an_entity_reference() -> None:
    note = _odt_note("footnote", "1", "Report &name; see https://example.org/a.pdf here")
    odt = _odt(f"<text:p>Claim.{note}</text:p>")
    members = _members(odt)
    members["content.xml"] = DTD.encode() + members["content.xml"]
    doc = parse_bytes(_zip(members), "entity.odt")
    assert doc.footnote(1).urls == ("https://example.org/a.pdf",)
    assert doc.footnote(1).text == "Report &name; see https://example.org/a.pdf here"


def _deep_html(levels: int, tag: str = "div") -> bytes:
    return ("<!DOCTYPE html><html><body>\n<p>Claim here.<a href=\"#fn1\">1</a></p>\n"
            + f"<{tag}>" * levels + "deep words https://example.org/deep"
            + f"</{tag}>" * levels
            + '\n<ol><li id="fn1">See <a href="https://example.org/a">the page</a></li></ol>'
            "</body></html>").encode()


def _timed(data: bytes) -> tuple[object, float]:
    # CPU time of this process: the ratios below hold on a machine busy with other work,
    # where wall time does not.
    started = time.process_time()
    doc = parse_bytes(data, "deep.html")
    return doc, time.process_time() - started


def test_deep_html_nesting_is_linear_and_gives_a_too_deep_finding() -> None:
    from archiver.parse.html import MAX_DEPTH

    _, small = _timed(_deep_html(20_000))
    doc, seconds = _timed(_deep_html(200_000))
    # Quadratic parsing took 42 s for 20k levels and minutes for 200k; linear is a few
    # seconds (the bound is generous: the machine is shared).
    assert seconds < 20, f"200k levels took {seconds:.1f} s"
    assert seconds < 30 * max(small, 0.05), f"20k: {small:.2f} s, 200k: {seconds:.2f} s"
    findings = [f for f in doc.findings if f.code == "too-deep"]
    assert len(findings) == 1
    assert findings[0].line == 3 and str(MAX_DEPTH) in findings[0].message
    # What is above the limit is read as before; the text below it is kept.
    assert doc.footnote(1).urls == ("https://example.org/a",)
    assert doc.claims[0].text == "Claim here."


def test_html_within_the_depth_limit_has_no_finding_and_keeps_inner_links() -> None:
    from archiver.parse.html import MAX_DEPTH

    levels = MAX_DEPTH - 10
    data = ('<!DOCTYPE html><html><body><p>Claim.<a href="#fn1">1</a></p><ol><li id="fn1">'
            + "<span>" * levels + 'See <a href="https://example.org/inner">it</a>'
            + "</span>" * levels + "</li></ol></body></html>").encode()
    doc = parse_bytes(data, "ok.html")
    assert not [f for f in doc.findings if f.code == "too-deep"]
    assert doc.footnote(1).urls == ("https://example.org/inner",)


@pytest.mark.parametrize("tag", ["span", "sup", "a", "li"])
def test_deep_nesting_of_any_element_is_bounded(tag: str) -> None:
    doc, seconds = _timed(_deep_html(50_000, tag))
    assert seconds < 20
    assert [f.code for f in doc.findings].count("too-deep") == 1
    assert doc.footnote(1).urls == ("https://example.org/a",)


def _void_then_blocks(n: int) -> bytes:
    return ('<!DOCTYPE html><html><body><p>Claim.<a href="#fn1">1</a></p>' + "<br>" * n
            + "<p>x</p>" * n + '<ol><li id="fn1">See https://example.org/a</li></ol>'
            "</body></html>").encode()


def test_many_void_elements_do_not_make_parsing_quadratic() -> None:
    # html.parser's builder kept the void elements it had closed in a list scanned at every
    # end tag: 20,000 <br> and 20,000 paragraphs took 48 s. Four times the input must cost
    # about four times the time (quadratic would be sixteen).
    _timed(_void_then_blocks(500))  # warm up imports and caches
    _, small = _timed(_void_then_blocks(4_000))
    doc, big = _timed(_void_then_blocks(16_000))
    assert big < 9 * max(small, 0.05), f"4k: {small:.2f} s, 16k: {big:.2f} s"
    assert doc.footnote(1).urls == ("https://example.org/a",)


@pytest.mark.parametrize(("written", "read"), [
    ("C:\\\\\\\\Users", "C:\\Users"),  # a run of backslashes escaping a backslash
    ("a \\\\ b", "a \\ b"),
    ("\\*not emphasis\\*", "*not emphasis*"),
    ("\\\\_under\\\\_score", "_under_score"),  # doubled by a PDF conversion
])
def test_backslash_runs_in_markdown_are_read(written: str, read: str) -> None:
    """A run of backslashes escapes the character after it, a backslash too: a claim
    holding one (a Windows path) made the whole document unreadable (IndexError)."""
    source = (f"# T\n\nThe claim {written} stands.[^1]\n\n"
              "[^1]: See <https://example.org/a>.\n").encode()
    doc = parse_bytes(source, "b.md")
    assert doc.footnotes[0].urls == ("https://example.org/a",)
    assert doc.footnotes[0].claims[0].text == f"The claim {read} stands."
