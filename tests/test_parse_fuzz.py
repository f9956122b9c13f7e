"""No input crashes a reader: it gives a Document (with findings) or a DocumentError."""

from __future__ import annotations

import io
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.errors import DocumentError
from archiver.models import Document
from archiver.parse import parse_bytes
from tests.parse_helpers import BRIEFING

BRIEF = BRIEFING.read_bytes()
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def survives(data: bytes) -> None:
    try:
        doc = parse_bytes(data, "fuzz.bin")
    except DocumentError as exc:
        assert "fuzz.bin" in str(exc)
        return
    assert isinstance(doc, Document)
    for note in doc.footnotes:
        assert isinstance(note.text, str)
        for claim in note.claims:
            assert claim.line >= 0


PIECES = st.sampled_from([
    "<sup>1</sup>", "<sup>2</sup>", "<sup>99</sup>", "[^1]", "[^1]: ", "[^x]: ", "\n", "\n\n",
    "1 ", "2 ", "45 ", "---", "# ", "- ", "**", "*", "\\", "\\\\_", "[", "]", "(", ")", "<", ">",
    "https://", "http:/", "www.", "a.org", "#:~:text=", "?fbclid=1", "&", ".", " ", "“", "\"",
    "```", "<p>", "</p>", "<a href=\"#fn1\">", "</a>", "<li id=\"fn1\">", "word",
    "<ol>", "</ol>", "<li>", "<p>1 ", "<p>2 ", "<h2>", "<sup>x</sup>", "<a href=\"https://b.org\">",
])


@FAST
@given(st.lists(PIECES, max_size=60).map("".join))
def test_markup_soup_never_crashes(text: str) -> None:
    survives(text.encode())
    survives(("<sup>1</sup>\n" + text).encode())
    survives(("[^1]: x\n" + text).encode())
    survives(("<!DOCTYPE html><html><body>" + text).encode())


@FAST
@given(st.text(max_size=400))
def test_random_text_never_crashes(text: str) -> None:
    survives(text.encode("utf-8", errors="surrogatepass"))


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    survives(data)
    survives(b"PK\x03\x04" + data)


@FAST
@given(st.integers(min_value=0, max_value=len(BRIEF)), st.integers(0, len(BRIEF)),
       st.binary(max_size=30))
def test_mutated_briefing_never_crashes(cut: int, at: int, junk: bytes) -> None:
    survives(BRIEF[:cut])
    survives(BRIEF[:at] + junk + BRIEF[at:])


def _docx_bytes() -> bytes:
    buffer = io.BytesIO()
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml",
                         f'<w:document {w}><w:body><w:p><w:r><w:t>Claim.</w:t></w:r><w:r>'
                         f'<w:footnoteReference w:id="1"/></w:r></w:p></w:body></w:document>')
        archive.writestr("word/footnotes.xml",
                         f'<w:footnotes {w}><w:footnote w:id="1"><w:p><w:r><w:t>'
                         "https://a.org</w:t></w:r></w:p></w:footnote></w:footnotes>")
    return buffer.getvalue()


DOCX = _docx_bytes()


@FAST
@given(st.integers(0, len(DOCX)), st.integers(0, len(DOCX) - 1), st.integers(0, 255))
def test_truncated_and_flipped_zips_never_crash(cut: int, at: int, value: int) -> None:
    survives(DOCX[:cut])
    flipped = bytearray(DOCX)
    flipped[at] = value
    survives(bytes(flipped))


@FAST
@given(st.integers(0, 2000), st.integers(0, 2000), st.integers(0, 255))
def test_truncated_and_flipped_endnote_zips_never_crash(cut: int, at: int, value: int) -> None:
    data = _endnote_docx()
    survives(data[:cut])
    flipped = bytearray(data)
    flipped[at % len(data)] = value
    survives(bytes(flipped))


def _endnote_docx() -> bytes:
    buffer = io.BytesIO()
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml",
                         f'<w:document {w}><w:body><w:p><w:r><w:t>Claim.</w:t></w:r><w:r>'
                         f'<w:endnoteReference w:id="1"/></w:r>'
                         f'<w:r><w:t xml:space="preserve"> More.</w:t></w:r>'
                         f'<w:r><w:footnoteReference w:id="1"/></w:r></w:p></w:body>'
                         "</w:document>")
        for kind in ("footnote", "endnote"):
            archive.writestr(f"word/{kind}s.xml",
                             f'<w:{kind}s {w}><w:{kind} w:id="1"><w:p><w:r><w:t>'
                             f"https://{kind}.org</w:t></w:r></w:p></w:{kind}></w:{kind}s>")
    return buffer.getvalue()


def test_intact_endnote_docx_reads() -> None:
    doc = parse_bytes(_endnote_docx(), "ok.docx")
    assert doc.footnote(1).urls == ("https://footnote.org",)
    assert doc.footnote(2).urls == ("https://endnote.org",)
    assert [c.text for c in doc.footnote(2).claims] == ["Claim."]


def test_intact_docx_reads() -> None:
    doc = parse_bytes(DOCX, "ok.docx")
    assert doc.footnote(1).urls == ("https://a.org",)
