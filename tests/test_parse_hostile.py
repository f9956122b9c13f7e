"""Hostile or odd document structure: unexpanded entity references, deep HTML nesting."""

from __future__ import annotations

import io
import zipfile

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
