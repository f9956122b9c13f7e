"""Readers on small, targeted inputs: URL rules, claims, formats, hostile containers, errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from archiver.errors import DocumentError
from archiver.parse import parse_bytes, read_document
from archiver.parse.render import render_text
from archiver.parse.urls import scan_urls, unescape_markdown, urls_from_segments


def codes(doc) -> list[tuple[str, int | None]]:
    return sorted((f.code, f.footnote) for f in doc.findings)


# ── URLs ─────────────────────────────────────────────────────────────────────


def test_trailing_punctuation_and_brackets_are_not_part_of_a_url() -> None:
    text = ("See https://a.org/x. Also (https://b.org/y), https://c.org/w_(z) and "
            "https://d.org/p?q=1#frag; www.e.org/page!")
    assert scan_urls(text) == ["https://a.org/x", "https://b.org/y", "https://c.org/w_(z)",
                               "https://d.org/p?q=1#frag", "http://www.e.org/page"]


def test_link_target_wins_over_text_and_escapes_are_undone() -> None:
    assert unescape_markdown(r"a\\_b\[0\]") == "a_b[0]"
    segments = [("shortened…", "https://real.org/long_path"), (" and ", None),
                ("https://x.org/%5B0%5D", "https://x.org/%5B0%5D"), (" again ", None),
                ("https://real.org/long_path", "https://real.org/long_path")]
    assert urls_from_segments(segments) == ["https://real.org/long_path", "https://x.org/%5B0%5D"]


def test_markdown_footnote_urls() -> None:
    doc = parse_bytes(
        b"Claim one.[^1] Claim two.[^2]\n\n"
        b"[^1]: See [https://x.org/a\\\\_b](https://x.org/a_b), <https://y.org/> and "
        b"https://z.org/q?a=1).\n"
        b"[^2]: No link here,\n    but a second line with www.w.org/p.\n",
        "n.md")
    assert doc.format == "markdown-footnotes"
    assert doc.footnote(1).urls == ("https://x.org/a_b", "https://y.org/", "https://z.org/q?a=1")
    assert doc.footnote(2).urls == ("http://www.w.org/p",)
    assert doc.footnote(2).text == "No link here, but a second line with www.w.org/p."
    assert [c.text for c in doc.claims] == ["Claim one.", "Claim two."]


# ── claims ───────────────────────────────────────────────────────────────────


def test_mid_sentence_marker_yields_whole_sentence_and_abbreviations_do_not_split() -> None:
    doc = parse_bytes(
        b"First one. The law (Art. 5)[^1] was, e.g. in 2020, used badly. Last.\n\n"
        b"[^1]: https://a.org\n", "m.md")
    assert doc.footnote(1).claims[0].text == (
        "The law (Art. 5) was, e.g. in 2020, used badly.")


def test_pdf_markdown_page_break_join_and_sum_of_money() -> None:
    source = (
        b"Body with a marker.<sup>1</sup> The\n\n"
        b"1 See <https://a.org/1>\n\n"
        b"court said so.<sup>2</sup> It cost between\n\n"
        b"2 000 KZT and 3 000 KZT.<sup>3</sup>\n\n"
        b"2 See <https://a.org/2>\n\n"
        b"3 See <https://a.org/3>\n"
    )
    doc = parse_bytes(source, "p.md")
    assert [n.number for n in doc.footnotes] == [1, 2, 3]
    assert doc.footnote(2).claims[0].text == "The court said so."
    assert doc.footnote(3).claims[0].text == "It cost between 2 000 KZT and 3 000 KZT."
    assert doc.footnote(2).line == 9
    assert codes(doc) == []


def test_pdf_markdown_structural_findings() -> None:
    source = (
        b"One.<sup>1</sup> Two.<sup>2</sup> Four.<sup>4</sup>\n\n"
        b"1 See <https://a.org/1>\n\n"
        b"1 Again <https://a.org/x>\n\n"
        b"3 Nobody cites this\n\n"
        b"4 See <https://a.org/4>\n"
    )
    doc = parse_bytes(source, "s.md")
    found = codes(doc)
    assert ("missing-footnote", 2) in found
    assert ("duplicate-footnote", 1) in found
    assert ("orphan-footnote", 3) in found
    assert ("no-url", 3) in found
    missing = next(f for f in doc.findings if f.code == "missing-footnote")
    assert (missing.severity.value, missing.line) == ("error", 1)


def test_flattened_marker_needs_strong_evidence() -> None:
    ambiguous = ("One.<sup>1</sup> In 2 cases, 2 people.\n\nThree.<sup>3</sup>\n\n"
                 "1 a <https://a.org/1>\n\n2 b <https://a.org/2>\n\n3 c <https://a.org/3>\n")
    doc = parse_bytes(ambiguous.encode(), "f.md")
    assert ("orphan-footnote", 2) in codes(doc)
    assert not any(f.code == "flattened-marker" for f in doc.findings)


def test_numbering_gap_and_marker_order() -> None:
    doc = parse_bytes(b"A.[^2] B.[^1] C.[^4]\n\n[^1]: x\n[^2]: y\n[^4]: z\n", "g.md")
    found = codes(doc)
    assert ("numbering-gap", None) in found
    assert ("footnote-order", 1) in found


# ── HTML, DOCX, ODT ──────────────────────────────────────────────────────────


def test_html_pandoc_style_small() -> None:
    html = (b'<!DOCTYPE html><html><body><p>Claim here.<a href="#fn1" class="footnote-ref" '
            b'id="fnref1"><sup>1</sup></a> Next.</p><section class="footnotes"><ol>'
            b'<li id="fn1"><p>See <a href="https://a.org/x?utm_source=t">the page</a>.'
            b'<a href="#fnref1" class="footnote-back">\xe2\x86\xa9\xef\xb8\x8e</a></p></li>'
            b"</ol></section></body></html>")
    doc = parse_bytes(html, "x.html")
    note = doc.footnote(1)
    assert note.text == "See the page."
    assert note.urls == ("https://a.org/x?utm_source=t",)
    assert note.claims[0].text == "Claim here."
    tracking = next(f for f in doc.findings if f.code == "tracking-parameter")
    assert tracking.suggestion == "https://a.org/x"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def _docx(footnote_body: str, document_extra: str = "") -> bytes:
    document = (f'<w:document {W}><w:body><w:p><w:r><w:t>A claim</w:t></w:r><w:r>'
                f'<w:footnoteReference w:id="7"/></w:r><w:r><w:t>. More.</w:t></w:r></w:p>'
                f"{document_extra}</w:body></w:document>")
    footnotes = (f'<w:footnotes {W} {R}><w:footnote w:type="separator" w:id="-1"/>'
                 f'<w:footnote w:id="7"><w:p>{footnote_body}</w:p></w:footnote></w:footnotes>')
    rels = ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            'relationships"><Relationship Id="rId9" Type="hyperlink" '
            'Target="https://real.org/target" TargetMode="External"/></Relationships>')
    return _zip({"word/document.xml": document.encode(), "word/footnotes.xml": footnotes.encode(),
                 "word/_rels/footnotes.xml.rels": rels.encode()})


def test_docx_hyperlink_target_through_relationships() -> None:
    body = ('<w:r><w:t xml:space="preserve">See </w:t></w:r><w:hyperlink r:id="rId9"><w:r>'
            "<w:t>visible text</w:t></w:r></w:hyperlink>")
    doc = parse_bytes(_docx(body), "d.docx")
    assert doc.format == "docx"
    assert doc.footnote(1).urls == ("https://real.org/target",)
    assert doc.footnote(1).text == "See visible text"
    assert doc.footnote(1).claims[0].text == "A claim."


def test_docx_entities_are_not_expanded() -> None:
    from archiver.parse import office

    evil = (f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">'
            f'<!ENTITY y "expanded">]><w:document {W}><w:body><w:p><w:r><w:t>A&x;&y;B</w:t>'
            "</w:r></w:p></w:body></w:document>")
    data = _zip({"word/document.xml": evil.encode()})
    try:
        draft = office.read(data, "docx", "evil.docx")
    except DocumentError:
        return  # refusing the file is as safe as not expanding
    text = " ".join(unit.text for unit in draft.units)
    assert "root:" not in text and "expanded" not in text


def test_zip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from archiver.parse import office

    monkeypatch.setattr(office, "MAX_MEMBER_BYTES", 1000)
    big = f"<w:document {W}><w:body>".encode() + b" " * 5000 + b"</w:body></w:document>"
    with pytest.raises(DocumentError, match="inflates"):
        parse_bytes(_zip({"word/document.xml": big}), "bomb.docx")


def test_odt_note_citation_and_link() -> None:
    content = (
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
        ' xmlns:xlink="http://www.w3.org/1999/xlink"><office:body><office:text>'
        "<text:p>Said here.<text:note text:note-class=\"footnote\"><text:note-citation>1"
        '</text:note-citation><text:note-body><text:p>See <text:a xlink:href="https://o.org/a">'
        "this</text:a></text:p></text:note-body></text:note> Then more.</text:p>"
        "</office:text></office:body></office:document-content>")
    data = _zip({"mimetype": b"application/vnd.oasis.opendocument.text",
                 "content.xml": content.encode()})
    doc = parse_bytes(data, "o.odt")
    assert doc.format == "odt"
    assert doc.footnote(1).urls == ("https://o.org/a",)
    assert doc.footnote(1).claims[0].text == "Said here."


# ── errors ───────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary", b"just some prose without notes\n",
                                  b"PK\x03\x04truncated", b""])
def test_unknown_input_raises_document_error_naming_the_file(data: bytes) -> None:
    with pytest.raises(DocumentError, match=r"x\.bin: .*expected|x\.bin: broken"):
        parse_bytes(data, "x.bin")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"nope\.md"):
        read_document(tmp_path / "nope.md")


def test_render_text_summary_and_groups(briefing: Path) -> None:
    text = render_text(read_document(briefing))
    first = text.splitlines()[0]
    assert "93 footnotes" in first and "0 errors" in first
    assert "WARNING" in text and "  tracking-parameter" in text
    assert "footnote 47, line 193" in text


# ── endnotes (DOCX, ODT) ─────────────────────────────────────────────────────

_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFDOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_WML = "application/vnd.openxmlformats-officedocument.wordprocessingml"


def _ooxml_notes(kind: str, notes: dict[str, str]) -> bytes:
    """``word/{kind}s.xml`` with Word's two separator notes and ``notes`` (id → runs)."""
    body = "".join(f'<w:{kind} w:id="{i}"><w:p>{runs}</w:p></w:{kind}>' for i, runs in
                   notes.items())
    return (f'<w:{kind}s {W} {R}><w:{kind} w:type="separator" w:id="-1"><w:p><w:r>'
            f'<w:separator/></w:r></w:p></w:{kind}><w:{kind} w:type="continuationSeparator" '
            f'w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:{kind}>{body}'
            f"</w:{kind}s>").encode()


def _full_docx(paragraphs: list[str], footnotes: dict[str, str] | None = None,
               endnotes: dict[str, str] | None = None,
               links: dict[str, str] | None = None) -> bytes:
    """A complete DOCX package (content types, package and part relationships) as Word lays
    it out; ``paragraphs`` are body ``w:p`` contents, ``links`` the notes' hyperlink targets."""
    parts = {"footnote": footnotes, "endnote": endnotes}
    overrides = '<Override PartName="/word/document.xml" ContentType="' + _WML + (
        '.document.main+xml"/>')
    doc_rels = ""
    members: dict[str, bytes] = {}
    for kind, notes in parts.items():
        if notes is None:
            continue
        overrides += (f'<Override PartName="/word/{kind}s.xml" ContentType="{_WML}.{kind}s+xml"'
                      "/>")
        doc_rels += (f'<Relationship Id="rId{kind}" Type="{_OFFDOC}/{kind}s" '
                     f'Target="{kind}s.xml"/>')
        members[f"word/{kind}s.xml"] = _ooxml_notes(kind, notes)
        members[f"word/_rels/{kind}s.xml.rels"] = (
            f'<Relationships xmlns="{_PKG}">' + "".join(
                f'<Relationship Id="{rid}" Type="{_OFFDOC}/hyperlink" Target="{target}" '
                f'TargetMode="External"/>' for rid, target in (links or {}).items())
            + "</Relationships>").encode()
    body = "".join(f"<w:p>{p}</w:p>" for p in paragraphs)
    members.update({
        "[Content_Types].xml": (
            f'<Types xmlns="{_CT}"><Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
            f'ContentType="application/xml"/>{overrides}</Types>').encode(),
        "_rels/.rels": (f'<Relationships xmlns="{_PKG}"><Relationship Id="rId1" '
                        f'Type="{_OFFDOC}/officeDocument" Target="word/document.xml"/>'
                        "</Relationships>").encode(),
        "word/document.xml": f"<w:document {W} {R}><w:body>{body}</w:body></w:document>"
        .encode(),
        "word/_rels/document.xml.rels": f'<Relationships xmlns="{_PKG}">{doc_rels}'
                                        "</Relationships>".encode(),
    })
    return _zip(dict(sorted(members.items(), key=lambda kv: kv[0] != "[Content_Types].xml")))


def _t(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def _ref(kind: str, note_id: str) -> str:
    return f'<w:r><w:rPr><w:rStyle w:val="{kind.capitalize()}Reference"/></w:rPr>' \
           f'<w:{kind}Reference w:id="{note_id}"/></w:r>'


def _link(rid: str, text: str) -> str:
    return f'<w:hyperlink r:id="{rid}">{_t(text)}</w:hyperlink>'


def test_docx_endnotes_are_read_and_the_link_target_wins() -> None:
    data = _full_docx(
        [_t("First claim.") + _ref("endnote", "2") + _t(" Second claim.") + _ref("endnote", "3")],
        endnotes={"2": _t("See ") + _link("rIdA", "https://shown.example/wrong") + _t("."),
                  "3": _t("Report: ") + _link("rIdB", "the report")},
        links={"rIdA": "https://real.org/endnote-a", "rIdB": "https://real.org/report.pdf"})
    doc = parse_bytes(data, "e.docx")
    assert doc.format == "docx"
    assert [n.number for n in doc.footnotes] == [1, 2]
    assert doc.footnote(1).urls == ("https://real.org/endnote-a",)
    assert doc.footnote(1).text == "See https://shown.example/wrong."
    assert doc.footnote(2).urls == ("https://real.org/report.pdf",)
    assert [c.text for c in doc.claims] == ["First claim.", "Second claim."]
    assert codes(doc) == []


def test_hand_built_endnote_docx_is_a_package_pandoc_reads() -> None:
    pypandoc = pytest.importorskip("pypandoc")
    data = _full_docx([_t("A claim.") + _ref("endnote", "1")],
                      endnotes={"1": _link("rIdA", "text")},
                      links={"rIdA": "https://real.org/x"})
    markdown = pypandoc.convert_text(data, "markdown", format="docx")
    assert "[^1]" in markdown and "https://real.org/x" in markdown


def test_docx_mixed_footnotes_and_endnotes_numbered_endnotes_after() -> None:
    # Word gives both series ids from 1; markers alternate between the two series.
    data = _full_docx(
        [_t("Alpha.") + _ref("footnote", "1") + _t(" Beta.") + _ref("endnote", "1"),
         _t("Gamma.") + _ref("footnote", "2") + _t(" Delta.") + _ref("endnote", "2")
         + _t(" Epsilon.") + _ref("footnote", "1")],
        footnotes={"1": _t("fn one https://f.org/1"), "2": _t("fn two https://f.org/2")},
        endnotes={"1": _t("en one https://e.org/1"), "2": _t("en two https://e.org/2"),
                  "3": _t("en never cited https://e.org/3")})
    doc = parse_bytes(data, "m.docx")
    assert [(n.number, n.text) for n in doc.footnotes] == [
        (1, "fn one https://f.org/1"), (2, "fn two https://f.org/2"),
        (3, "en one https://e.org/1"), (4, "en two https://e.org/2"),
        (5, "en never cited https://e.org/3")]
    assert [c.text for c in doc.footnote(1).claims] == ["Alpha.", "Epsilon."]
    assert [c.text for c in doc.footnote(3).claims] == ["Beta."]
    assert [c.text for c in doc.footnote(4).claims] == ["Delta."]
    # Interleaved series are not out of order; the uncited endnote is an orphan.
    assert codes(doc) == [("mixed-notes", None), ("orphan-footnote", 5)]
    mixed = next(f for f in doc.findings if f.code == "mixed-notes")
    assert mixed.severity.value == "info"
    assert "1-2" in mixed.message and "3-5" in mixed.message


def _odt(body: str) -> bytes:
    content = (
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
        ' xmlns:xlink="http://www.w3.org/1999/xlink"><office:body><office:text>'
        f"{body}</office:text></office:body></office:document-content>")
    return _zip({"mimetype": b"application/vnd.oasis.opendocument.text",
                 "content.xml": content.encode()})


def _odt_note(klass: str, citation: str, body: str) -> str:
    return (f'<text:note text:note-class="{klass}"><text:note-citation>{citation}'
            f"</text:note-citation><text:note-body><text:p>{body}</text:p></text:note-body>"
            "</text:note>")


def test_odt_endnotes_alone_and_mixed() -> None:
    link = '<text:a xlink:href="https://o.org/target">https://o.org/shown</text:a>'
    alone = parse_bytes(_odt(
        f"<text:p>One.{_odt_note('endnote', 'i', link)} Two.{_odt_note('endnote', 'ii', 'x')}"
        "</text:p>"), "e.odt")
    assert [n.number for n in alone.footnotes] == [1, 2]
    assert alone.footnote(1).urls == ("https://o.org/target",)
    assert [c.text for c in alone.footnote(2).claims] == ["Two."]
    assert not any(f.code == "mixed-notes" for f in alone.findings)

    mixed = parse_bytes(_odt(
        f"<text:p>One.{_odt_note('footnote', '1', 'f1')} Two.{_odt_note('endnote', 'i', 'e1')}"
        f" Three.{_odt_note('footnote', '2', 'f2')}</text:p>"), "m.odt")
    assert [(n.number, n.text) for n in mixed.footnotes] == [(1, "f1"), (2, "f2"), (3, "e1")]
    assert [c.text for c in mixed.footnote(3).claims] == ["Two."]
    assert ("mixed-notes", None) in codes(mixed)
    assert not any(f.code == "footnote-order" for f in mixed.findings)


# ── HTML with bare <sup>N</sup> markers ──────────────────────────────────────


def test_html_bare_sups_with_an_ordered_list_of_notes() -> None:
    html = (b"<html><body><p>First claim.<sup>1</sup> Second claim.<sup>2</sup></p>"
            b"<p>Again the first.<sup>1</sup></p><h2>Notes</h2><ol>"
            b'<li>See <a href="https://real.org/a">https://shown.org/a</a>.</li>'
            b"<li>Plain https://b.org/x, with a <sup>3</sup> in it.</li></ol></body></html>")
    doc = parse_bytes(html, "s.html")
    assert [n.number for n in doc.footnotes] == [1, 2]
    assert doc.footnote(1).urls == ("https://real.org/a",)
    assert [c.text for c in doc.footnote(1).claims] == ["First claim.", "Again the first."]
    assert doc.footnote(2).urls == ("https://b.org/x",)
    assert codes(doc) == [("superscript-in-note", 2)]


@pytest.mark.parametrize(("body", "why"), [
    (b"<p>Claim.<sup>1</sup> Other.<sup>2</sup></p>", "no notes found"),
    (b"<p>Claim.<sup>2</sup> Other.<sup>1</sup></p><p>1 a</p><p>2 b</p>", "order"),
    (b"<p>Claim.<sup>1</sup> Other.<sup>2</sup></p><ol><li>only one</li></ol>",
     "no notes found.*one item per marker"),
    (b"<p>Claim.<sup>1</sup> Other.<sup>2</sup> Third.<sup>3</sup></p><p>1 a</p><p>2 b</p>",
     "no note for marker 3"),
])
def test_html_bare_sups_without_strong_evidence_are_refused(body: bytes, why: str) -> None:
    with pytest.raises(DocumentError, match=rf"w\.html: HTML with bare <sup>N</sup>.*{why}"):
        parse_bytes(b"<html><body>" + body + b"</body></html>", "w.html")
