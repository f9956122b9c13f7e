"""pagetext on PDFs: title and text read with pypdf, bounded, never raising; classify keeps a
PDF that answers 200 ``ok``; a cited PDF's text reaches ``show --text`` and the report.

The PDFs are written here byte by byte (``make_pdf``: a catalog, a page tree, a standard
Helvetica font for Latin text and an Identity-H font with a ToUnicode map for Cyrillic, the
way PDF producers with embedded subset fonts write it, and a correct xref table), so the
reader is tested against files it did not write. pypdf's writer is used only to encrypt one.
"""

from __future__ import annotations

import io
import json
import logging
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

pypdf = pytest.importorskip("pypdf", reason="PDF text extraction needs pypdf")

from archiver import pagetext  # noqa: E402
from archiver.classify import classify  # noqa: E402
from archiver.models import Capture, Hop, Verdict, utcnow  # noqa: E402
from archiver.pagetext import PDF_PAGE_LIMIT, extract  # noqa: E402
from tests.test_run import call, make_project  # noqa: E402
from tests.webserver import Reply, WebServer  # noqa: E402

PDF = "application/pdf"


# ── a small PDF writer ───────────────────────────────────────────────────────


def _literal(text: str) -> bytes:
    raw = text.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _utf16(text: str) -> bytes:
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _stream(data: bytes, *, compress: bool = False, extra: bytes = b"") -> bytes:
    if compress:
        data = zlib.compress(data)
        extra += b" /Filter /FlateDecode"
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def _serialise(objects: list[bytes], *, info: int | None) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    info_ref = b" /Info %d 0 R" % info if info else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, info_ref, xref)
    return bytes(out)


def make_pdf(pages: list[list[str]], *, title: str | None = None, lang: str | None = None,
             raw_pages: dict[int, bytes] | None = None, compress: bool = False) -> bytes:
    """A PDF with one page per item of ``pages``, each line of it drawn one under the other.
    Lines that fit cp1252 use Helvetica; others use a two-byte font whose codes are the
    characters' code points, mapped back to Unicode by a ToUnicode CMap. ``raw_pages``
    replaces a page's content stream object (by page index) with the given bytes."""
    raw_pages = raw_pages or {}
    chars = sorted({ch for page in pages for line in page for ch in line})
    objects: list[bytes] = [b"", b""]  # 1 catalog, 2 page tree: filled in below

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    helvetica = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                    b"/Encoding /WinAnsiEncoding >>")
    bfchar = b"".join(b"<%04X> <%s>\n" % (ord(ch), ch.encode("utf-16-be").hex().encode())
                      for ch in chars if ord(ch) <= 0xFFFF)
    cmap = (b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            b"%d beginbfchar\n" % bfchar.count(b"\n") + bfchar
            + b"endbfchar\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend")
    to_unicode = add(_stream(cmap))
    descriptor = add(b"<< /Type /FontDescriptor /FontName /DejaVuSans /Flags 32 "
                     b"/FontBBox [0 -200 1000 900] /ItalicAngle 0 /Ascent 900 /Descent -200 "
                     b"/CapHeight 700 /StemV 80 >>")
    cid_font = add(b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /DejaVuSans "
                   b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                   b"/FontDescriptor %d 0 R /DW 600 >>" % descriptor)
    unicode_font = add(b"<< /Type /Font /Subtype /Type0 /BaseFont /DejaVuSans "
                       b"/Encoding /Identity-H /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>"
                       % (cid_font, to_unicode))
    resources = b"<< /Font << /F1 %d 0 R /F2 %d 0 R >> >>" % (helvetica, unicode_font)

    kids = []
    for index, lines in enumerate(pages):
        if index in raw_pages:
            content = add(raw_pages[index])
        else:
            ops = [b"BT", b"72 760 Td", b"14 TL"]
            for line in lines:
                try:
                    ops.append(b"/F1 11 Tf " + _literal(line) + b" Tj T*")
                except UnicodeEncodeError:
                    codes = "".join(f"{ord(ch):04X}" for ch in line).encode()
                    ops.append(b"/F2 11 Tf <" + codes + b"> Tj T*")
            ops.append(b"ET")
            content = add(_stream(b"\n".join(ops), compress=compress))
        kids.append(add(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                        b"/Resources %s /Contents %d 0 R >>" % (resources, content)))
    info = add(b"<< /Title %s /Producer (tests) >>" % _utf16(title)) if title else None
    lang_entry = b" /Lang (%s)" % lang.encode() if lang else b""
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R%s >>" % lang_entry
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return _serialise(objects, info=info)


REPORT_PAGES = [
    ["Kazakhstan: Activists Detained", "Police detained twelve activists in Almaty",
     "after a peaceful protest on 6 July 2020."],
    ["Relatives were not told where the detainees were held."],
]


# ── reading ──────────────────────────────────────────────────────────────────


def test_title_and_text_in_page_order() -> None:
    page = extract(make_pdf(REPORT_PAGES, title="Annual Report 2020", lang="en-GB"), PDF)
    assert page.kind == "pdf"
    assert page.title == "Annual Report 2020"
    assert page.declared_language == "en"
    lines = page.text.splitlines()
    assert lines[0] == "Kazakhstan: Activists Detained"
    assert "Police detained twelve activists in Almaty" in lines
    assert lines[-1] == "Relatives were not told where the detainees were held."
    assert not page.html and page.heading is None


def test_cyrillic_text_and_title_through_tounicode() -> None:
    pages = [["Решение суда по делу активиста", "Суд оставил приговор в силе."],
             ["Қазақстан Республикасының Жоғарғы Соты"]]
    page = extract(make_pdf(pages, title="Решение № 2-1234/2020"), PDF)
    assert page.title == "Решение № 2-1234/2020"
    assert "Решение суда по делу активиста" in page.text
    assert "Суд оставил приговор в силе." in page.text
    assert "Қазақстан Республикасының Жоғарғы Соты" in page.text


def test_recognised_by_magic_or_type_and_compressed_streams_read() -> None:
    body = make_pdf(REPORT_PAGES, compress=True)
    by_magic = extract(body, "application/octet-stream")
    by_type = extract(b"\r\n" + body, "application/pdf; qs=0.9")
    assert by_magic.kind == by_type.kind == "pdf"
    assert "peaceful protest" in by_magic.text and by_magic.text == by_type.text
    assert by_magic.title is None  # no /Info at all


def test_html_page_served_as_pdf_is_read_as_html() -> None:
    html = b"<!doctype html><html><head><title>Page not found</title></head><body>x</body>"
    page = extract(html, PDF)
    assert page.kind == "html" and page.title == "Page not found"


def test_page_cap_is_honoured() -> None:
    pages = [[f"Marker line of page {n:03d}"] for n in range(1, PDF_PAGE_LIMIT + 6)]
    page = extract(make_pdf(pages), PDF)
    assert f"page {PDF_PAGE_LIMIT:03d}" in page.text
    assert f"page {PDF_PAGE_LIMIT + 1:03d}" not in page.text
    assert len(page.text.splitlines()) == PDF_PAGE_LIMIT


def test_text_cap_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagetext, "PDF_TEXT_LIMIT", 100)
    pages = [[f"Page {n} says something fairly long about the case."] for n in range(10)]
    page = extract(make_pdf(pages), PDF)
    assert 50 < len(page.text) <= 100
    assert "Page 0 says" in page.text and "Page 9" not in page.text


def test_truncated_pdf_gives_no_exception() -> None:
    body = make_pdf(REPORT_PAGES, title="Annual Report", compress=True)
    for cut in (8, 40, len(body) // 3, len(body) // 2, len(body) - 30):
        page = extract(body[:cut], PDF)
        assert page.kind == "pdf"
        # Whatever pypdf recovers must be real text from the document, never noise.
        for line in page.text.splitlines():
            assert any(line in original for lines in REPORT_PAGES for original in lines)
    assert extract(body[: len(body) // 3], PDF).text == ""


@pytest.mark.parametrize("body", [
    b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n",
    b"%PDF-",
    b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 1 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>"
    b"\nstartxref\n9\n%%EOF\n",  # a page tree that is its own parent
    b"%PDF-1.7\nxref\n0 99999999\ntrailer\n<< /Size 99999999 >>\nstartxref\n9\n%%EOF",
])
def test_garbage_with_a_pdf_header_gives_empty_text(body: bytes) -> None:
    started = time.monotonic()
    page = extract(body, PDF)
    assert page == pagetext.PageText(title=None, text="", kind="pdf")
    assert time.monotonic() - started < 5


def test_pypdf_complaints_do_not_reach_the_terminal(caplog: pytest.LogCaptureFixture) -> None:
    # A PDF with a wrong startxref and damaged streams: pypdf logs a warning for each repair.
    body = make_pdf(REPORT_PAGES, compress=True).replace(b"startxref\n", b"startxref\n1")
    caplog.set_level(logging.DEBUG)
    page = extract(body, PDF)
    assert "peaceful protest" in page.text
    assert [r for r in caplog.records if r.name.startswith("pypdf")] == []


def test_one_broken_page_costs_only_that_page() -> None:
    broken = b"<< /Length 999999 /Filter /FlateDecode >>\nstream\nnot zlib at all\nendstream"
    pages = [["First page text."], ["unused"], ["Third page text."]]
    page = extract(make_pdf(pages, raw_pages={1: broken}), PDF)
    assert page.text.splitlines() == ["First page text.", "Third page text."]


def _encrypted(user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(
        make_pdf(REPORT_PAGES, title="Confidential memo"))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret",
                   algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_gives_empty_text() -> None:
    body = _encrypted("reader-secret")
    assert b"/Encrypt" in body and b"peaceful protest" not in body
    page = extract(body, PDF)
    assert page.kind == "pdf" and page.text == "" and page.title is None


def test_pdf_encrypted_with_an_empty_user_password_is_read() -> None:
    # Permission-only encryption (no password to open) is common on official documents.
    page = extract(_encrypted(""), PDF)
    assert "peaceful protest" in page.text and page.title == "Confidential memo"


def test_compressed_stream_bomb_is_bounded() -> None:
    inflated = 256 * 1024 * 1024
    squeezer = zlib.compressobj(1)
    chunk = b" " * (1024 * 1024)
    bomb = b"".join(squeezer.compress(chunk) for _ in range(inflated // len(chunk)))
    bomb += squeezer.flush()
    assert len(bomb) < 2 * 1024 * 1024  # ~1.1 MB on the wire
    stream = (b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb
              + b"\nendstream")
    body = make_pdf([["Text before the bomb."], ["unused"]], raw_pages={1: stream})

    tracemalloc.start()
    started = time.monotonic()
    try:
        page = extract(body, PDF)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert page.text == "Text before the bomb."
    # Inflated in full the page would take 256 MB; the stream limit stops it at 16 MB.
    assert peak < 4 * pagetext.PDF_STREAM_LIMIT, f"peak {peak / 1e6:.0f} MB"
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_results_are_cached() -> None:
    body = make_pdf([["Cached once."]])
    assert extract(body, PDF) is extract(body, PDF)


# ── classify ─────────────────────────────────────────────────────────────────


def _capture(url: str, body: bytes, status: int = 200) -> Capture:
    return Capture(url=url, final_url=url, status=status,
                   hops=(Hop(url, status, (("Content-Type", PDF),)),), content=body,
                   content_type=PDF, payload_digest="sha1:X", captured_at=utcnow())


def test_pdf_saying_not_found_stays_ok() -> None:
    # A short PDF whose title and only sentence are not-found wording: for an HTML page that
    # would be a soft 404; a PDF is a document, which cannot be a site's error page.
    body = make_pdf([["Page not found", "The page was not found."]], title="404 Not Found")
    url = "https://ngo.example/files/report.pdf"
    judgement = classify(_capture(url, body))
    assert judgement.verdict is Verdict.OK, judgement
    assert extract(body, PDF).title == "404 Not Found"  # the wording really was there
    html_twin = b"<html><head><title>404 Not Found</title></head><body>x</body></html>"
    twin = Capture(url=url, final_url=url, status=200,
                   hops=(Hop(url, 200, (("Content-Type", "text/html"),)),), content=html_twin,
                   content_type="text/html", payload_digest="sha1:Y", captured_at=utcnow())
    assert classify(twin).verdict is Verdict.SOFT_404


def test_pdf_answering_404_is_not_found() -> None:
    body = make_pdf([["Some document."]])
    assert classify(_capture("https://ngo.example/a.pdf", body, 404)).verdict \
        is Verdict.NOT_FOUND


# ── end to end ───────────────────────────────────────────────────────────────


def test_cited_pdf_text_reaches_show_and_the_report(tmp_path: Path, web: WebServer) -> None:
    body = make_pdf(REPORT_PAGES, title="Kazakhstan report", compress=True)
    web.route("/files/report.pdf", Reply(200, body, {"Content-Type": PDF}))
    config = make_project(tmp_path, [web.url("/files/report.pdf")])
    code, out, err = call("run", "--config", str(config))
    assert code == 0, out + err

    code, out, err = call("show", "brief#1", "--text", "--config", str(config))
    assert code == 0, out + err
    assert "Police detained twelve activists in Almaty" in out
    assert "Relatives were not told" in out

    report = json.loads((tmp_path / "reports" / "brief" / "report.json").read_text())
    (link,) = report["links"]
    assert link["verdict"] == "ok"
    assert link["excerpt"].startswith("Kazakhstan: Activists Detained Police detained")


def test_a_reading_stopped_by_the_clock_says_so(monkeypatch) -> None:
    """``timed_out``: the reading stopped at ``PDF_TIME_LIMIT`` (its text is the first
    pages'), which a reading of the whole document never says."""
    from archiver import pagetext

    pdf = make_pdf([["The first page."], ["The second page."]])
    whole = extract(pdf, "application/pdf")
    assert (whole.text, whole.timed_out) == ("The first page.\nThe second page.", False)
    ticks = iter([0.0, 0.0])  # the deadline, the first page; then far past the limit
    monkeypatch.setattr(pagetext, "_clock", lambda: next(ticks, 1e9))
    cut = extract(pdf, "application/pdf", cache=False)  # not the reading above
    assert (cut.text, cut.timed_out, cut.kind) == ("The first page.", True, "pdf")
