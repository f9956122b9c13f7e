"""pagetext: main content and title from any bytes, in any charset; never raises."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.pagetext import PageText, decode, excerpt, extract

ARTICLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Court upholds activist's conviction | RFE/RL</title>
<style>body{color:red}</style><script>var tracking = "SCRIPT-TEXT";</script></head>
<body>
<header class="site-header"><a href="/">Logo</a><nav><ul><li>Home</li><li>NAV-WORLD</li>
<li>NAV-ASIA</li></ul></nav></header>
<div id="cookie-banner">COOKIE-BANNER We use cookies.</div>
<main>
  <article>
    <header><h1>Court upholds activist's conviction</h1><time>12 May 2020</time></header>
    <p>A court in Almaty upheld the conviction of an activist who criticised the government's
       response to the pandemic.</p>
    <p>Rights groups said the ruling was a warning to others.</p>
    <div class="share-buttons">SHARE-ON-FACEBOOK</div>
  </article>
</main>
<aside class="sidebar">SIDEBAR-MOST-READ</aside>
<footer>FOOTER-COPYRIGHT 2020</footer>
</body></html>"""


def test_main_content_without_navigation_scripts_or_chrome() -> None:
    page = extract(ARTICLE.encode(), "text/html; charset=utf-8", "https://www.rferl.org/a/1.html")
    assert page.title == "Court upholds activist's conviction | RFE/RL"
    assert page.heading == "Court upholds activist's conviction"
    assert "upheld the conviction of an activist" in page.text
    assert "Rights groups said the ruling" in page.text
    for chrome in ("NAV-WORLD", "COOKIE-BANNER", "SIDEBAR-MOST-READ", "FOOTER-COPYRIGHT",
                   "SCRIPT-TEXT", "color:red", "SHARE-ON-FACEBOOK"):
        assert chrome not in page.text, chrome
    # one block per line, whitespace collapsed
    assert "A court in Almaty upheld the conviction of an activist who criticised the " \
           "government's response to the pandemic." in page.text.splitlines()
    assert page.language == "en"
    assert page.kind == "html" and page.html


def test_body_is_used_when_there_is_no_main_or_article() -> None:
    html = ("<html><body><div id=menu>MENU-ITEM</div><div class=post><h2>Post title</h2>"
            "<p>Body of a post on a site with no semantic markup.</p></div>"
            "<div class=footer>FOOTER-TEXT</div></body></html>")
    page = extract(html.encode(), "text/html")
    assert "Body of a post on a site with no semantic markup." in page.text
    assert "MENU-ITEM" not in page.text and "FOOTER-TEXT" not in page.text
    assert page.heading == "Post title"


def test_wrapper_named_like_chrome_does_not_swallow_the_article() -> None:
    # A layout wrapper with "has-sidebar" in its class holds the whole article.
    words = "Evidence paragraph that must survive. " * 20
    html = f"<html><body><div class='content has-sidebar'><p>{words}</p></div></body></html>"
    page = extract(html.encode(), "text/html")
    assert "Evidence paragraph that must survive." in page.text


@pytest.mark.parametrize(
    ("content_type", "prefix"),
    [
        ("text/html; charset=windows-1251", b""),
        (None, b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'),
        ("text/html", b'<meta charset="cp1251">'),
    ],
)
def test_cyrillic_charset_from_header_or_meta(content_type: str | None, prefix: bytes) -> None:
    body = prefix + ("<html><head><title>Страница не найдена</title></head><body><p>"
                     "Запрашиваемая страница не существует.</p></body></html>").encode("cp1251")
    page = extract(body, content_type)
    assert page.title == "Страница не найдена"
    assert "Запрашиваемая страница не существует." in page.text
    assert page.language == "ru"


def test_undeclared_and_mislabelled_cp1251_is_detected() -> None:
    text = ("<html><body><p>Суд приговорил активиста к двум годам ограничения свободы за "
            "публикацию в социальной сети о пандемии коронавируса.</p></body></html>")
    raw = text.encode("cp1251")
    for content_type in (None, "text/html; charset=utf-8"):
        page = extract(raw, content_type)
        assert "Суд приговорил активиста" in page.text, content_type


def test_utf8_bom_and_xml_declaration() -> None:
    body = (b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?><html><head><title>T</title>"
            b"</head><body><p>" + "Бет табылмады".encode() + b"</p></body></html>")
    page = extract(body, "application/xhtml+xml")
    assert page.title == "T"
    assert page.text == "Бет табылмады"
    assert decode(b"\xef\xbb\xbfabc") == "abc"


def test_kazakh_language_guess() -> None:
    html = ("<html><body><p>Қазақстан Республикасының Қылмыстық кодексі. Бұл бет туралы "
            "ақпарат жоқ, іздеу нәтижесінде ештеңе табылмады.</p></body></html>")
    assert extract(html.encode(), "text/html").language == "kk"


def test_password_fields_are_counted() -> None:
    html = ("<html><body><form><input name=email><input type=PASSWORD name=pass>"
            "<button>Log in</button></form></body></html>")
    assert extract(html.encode(), "text/html").password_fields == 1
    assert extract(ARTICLE.encode(), "text/html").password_fields == 0


def test_pdf_plain_text_and_binary() -> None:
    pdf = extract(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "application/pdf")
    assert pdf == PageText(title=None, text="", kind="pdf")
    # Servers mislabel: a PDF sent as text/html is still a PDF.
    assert extract(b"%PDF-1.7 ...", "text/html").kind == "pdf"
    plain = extract(b"Line one.\n\n   Line   two.\n", "text/plain")
    assert plain.kind == "text" and plain.text == "Line one.\nLine two."
    assert extract(bytes(range(256)) * 4, None).kind == "binary"
    assert extract(b"", "text/html").text == ""


def test_page_text_is_frozen() -> None:
    page = extract(ARTICLE.encode(), "text/html")
    with pytest.raises(dataclasses.FrozenInstanceError):
        page.text = "changed"  # type: ignore[misc]


def test_excerpt_cuts_at_a_word_boundary() -> None:
    text = "The   quick brown\nfox " * 40
    out = excerpt(text, 50)
    assert len(out) <= 50
    assert out.endswith("…")
    assert "  " not in out and "\n" not in out
    assert out[:-1].split()[-1] in {"The", "quick", "brown", "fox"}
    assert excerpt("short text", 280) == "short text"
    assert excerpt("anything", 0) == ""


@settings(max_examples=150, deadline=None)
@given(content=st.binary(max_size=3000),
       content_type=st.one_of(st.none(), st.text(max_size=40),
                              st.sampled_from(["text/html; charset=utf-16", "text/html; charset=x",
                                               "text/plain; charset=utf-7", "application/pdf"])))
def test_extract_never_raises_on_any_bytes(content: bytes, content_type: str | None) -> None:
    page = extract(content, content_type)
    assert isinstance(page, PageText)
    assert isinstance(page.text, str)


@settings(max_examples=100, deadline=None)
@given(markup=st.text(alphabet=st.sampled_from(list("<>/=\"' abcdehilmnoprstuvy!-\x00&;#")),
                      max_size=400))
def test_extract_never_raises_on_tag_soup(markup: str) -> None:
    page = extract(("<html>" + markup).encode("utf-8", "surrogatepass"), "text/html")
    assert isinstance(page.text, str)


def test_character_reference_to_a_control_character_is_blanked() -> None:
    # Raw control characters are blanked before parsing; references to them reach the tree
    # and are blanked there, rather than costing the page its text.
    html = (b"<html><head><title>T&#1;itle</title></head><body><p>before&#1;after</p>"
            b"<p>second &#11; line&#xFFFE;</p></body></html>")
    page = extract(html, "text/html")
    assert page.kind == "html"
    assert page.title == "T itle"
    assert page.text == "before after\nsecond line"


def test_character_reference_after_other_ampersands_is_blanked() -> None:
    # Other "&"s (entities, a query string) before the first reference.
    html = (b'<html><head><title>A &amp; B</title></head><body><p><a href="/x?a=1&b=2">'
            b"a&amp;b</a> &lt;x&gt; before&#1;after</p></body></html>")
    page = extract(html, "text/html")
    assert page.title == "A & B"
    assert page.text == "a&b <x> before after"


def test_declared_utf8_with_a_few_replacement_characters_is_read_as_declared() -> None:
    text = "Суд отложил рассмотрение дела до осени. " * 20 + "\ufffd"
    body = f'<html><head><meta charset="utf-8"></head><body><p>{text}</p></body></html>'
    assert extract(body.encode(), "text/html").text == text.strip()


@pytest.mark.parametrize("marker", ["\ufdd0", "&#xFDD0;", "&#64976;"])
def test_page_holding_unusual_characters_keeps_its_lines(marker: str) -> None:
    html = (f"<html><body><p>a{marker}b\n  c</p><div>d<br>e</div>"
            "<p>f\u2028g\x85h</p></body></html>").encode()
    assert extract(html, "text/html").text == "a\ufdd0b c\nd\ne\nf g h"


@pytest.mark.parametrize("cr", ["\r", "\r\n", "&#13;", "&#xD;", "&#x0d;\r\n"])
def test_carriage_returns_in_text_are_spaces_not_line_breaks(cr: str) -> None:
    """Block text marks its lines with CRs, which the parser keeps out of the tree but for
    character references: a CR of the page, written either way, is whitespace as any."""
    html = (f"<html><head><title>T{cr}itle</title></head><body><p>a{cr}b {cr} c{cr}</p>"
            f"{cr}<div>{cr}d<br>{cr}e{cr}</div><p>\ufdd0{cr}f</p></body></html>").encode()
    page = extract(html, "text/html")
    assert page.title == "T itle"
    assert page.text == "a b c\nd\ne\n\ufdd0 f"


def test_extract_from_several_threads_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from archiver import pagetext

    bodies = [ARTICLE.replace("Almaty", f"Almaty-{n}").encode() for n in range(24)]
    serial = [extract(body, "text/html") for body in bodies]
    pagetext._extract_cached.cache_clear()
    with ThreadPoolExecutor(max_workers=6) as pool:
        threaded = list(pool.map(lambda body: extract(body, "text/html"), bodies))
    assert threaded == serial
    assert all(f"Almaty-{n}" in page.text for n, page in enumerate(threaded))


def test_password_fields_and_hidden_elements_wherever_they_are() -> None:
    """Password fields are counted in the whole document as received (a <template>'s too,
    any letter case of "password"); hidden elements are dropped with what they hold, their
    tails kept, also when they sit inside what is dropped anyway (a script, the head)."""
    html = """<html><head><title>Sign in</title><meta hidden name="x"></head><body>
    <template><input type="password"></template>
    <form><input type="PassWord"><input type="password "><input type="text"></form>
    <main><p>Visible start <span hidden>HIDDEN-SPAN</span>tail kept.</p>
    <p aria-hidden="true">ARIA-HIDDEN</p><p aria-hidden="false">not hidden</p>
    <script hidden>SCRIPT-TEXT</script>after script.
    <div hidden><p hidden>NESTED-HIDDEN</p>HIDDEN-DIV</div>""" + "<p>Body text.</p>" * 30 + """
    </main></body></html>"""
    page = extract(html.encode(), "text/html")
    assert page.password_fields == 2
    for gone in ("HIDDEN-SPAN", "ARIA-HIDDEN", "SCRIPT-TEXT", "NESTED-HIDDEN", "HIDDEN-DIV"):
        assert gone not in page.text
    assert "Visible start tail kept." in page.text
    assert "not hidden" in page.text and "after script." in page.text


def test_utf8_page_whose_meta_names_another_charset_is_read_as_the_header_says() -> None:
    """Valid UTF-8 is parsed as the bytes it came as; a <meta charset> that disagrees with
    the header must not make the parser read those bytes in another charset."""
    body = ('<html><head><meta charset="windows-1251"><title>Суд отложил дело</title></head>'
            '<body><main><p>Суд отложил рассмотрение дела — café, 20\u00a0мая.</p>'
            '</main></body></html>').encode()
    page = extract(body, "text/html; charset=utf-8")
    assert page.title == "Суд отложил дело"
    assert page.text == "Суд отложил рассмотрение дела — café, 20 мая."
    assert extract(body, "text/html; charset=windows-1251").title != page.title


def test_the_byte_patterns_of_wide_spaces_are_the_characters_str_split_takes() -> None:
    """Page text is collapsed as UTF-8 bytes; every character ``str.split`` splits on that
    ``bytes.split`` does not is made a space first, and nothing else is."""
    from archiver.pagetext import _WIDE_SPACE_BYTES

    ascii_spaces = set(b" \t\n\r\x0b\x0c")
    wide = {c for c in range(0x110000) if chr(c).isspace() and c not in ascii_spaces}
    found = set()
    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        encoded = chr(c).encode()
        for lead, pattern in _WIDE_SPACE_BYTES:
            if encoded.startswith(lead) and pattern.fullmatch(encoded):
                found.add(c)
    assert found == wide


def test_every_kind_of_whitespace_between_words_collapses_to_one_space() -> None:
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    # Written as they are (controls among them are blanked before parsing), and as character
    # references (but for C1 ones, which HTML reads as windows-1252: &#133; is "…").
    written = spaces + [f"&#{ord(s)};" for s in spaces if s.isprintable() or s in "\t\n\r"]
    words = [f"w{n}«б»—" for n in range(len(written) + 1)]
    markup = "".join(w + s for w, s in zip(words, written, strict=False)) + words[-1]
    html = f"<html><body><p>{markup}</p><div>\u00a0 \u3000</div><p>x\u2003<br>\u2009y</p>"
    page = extract((html + "</body></html>").encode(), "text/html")
    assert page.text == " ".join(words) + "\nx\ny"


def test_runs_of_whitespace_of_any_length_collapse_to_one_space() -> None:
    """Runs of mixed whitespace, short and long, inside a line and at its ends, leave one
    space between words and none at a line's ends (as ``" ".join(line.split())``)."""
    mix = " \t\n\r\x0b\x0c\u00a0\u2003"
    runs = ["".join(mix[(n * 7 + k) % len(mix)] for k in range(n)) for n in range(1, 41)]
    words = [f"w{n}ж" for n in range(len(runs) + 1)]
    line = "".join(w + r for w, r in zip(words, runs, strict=False)) + words[-1]
    html = (f"<html><body>{runs[-1]}<p>{runs[5]}{line}{runs[30]}</p>{runs[2]}"
            f"<div>  a  <span> b </span>  </div>   <p>{runs[39]}</p><p>c{runs[1]}</p>"
            "</body></html>")
    page = extract(html.encode(), "text/html")
    assert page.text == " ".join(words) + "\na b\nc"


@pytest.mark.parametrize(("markup", "title", "heading"), [
    # the first of each has text
    ("<title>T</title><h2>Sub</h2><h1>Main</h1><h1>Other</h1>", "T", "Main"),
    # the first is blank (or only markup): the next with text
    ("<title> </title><title>T2</title><h1><img src=x></h1><h1>\u00a0Second </h1>",
     "T2", "Second"),
    # no <h1> with text: the first <h2> with text; a dropped <h1> does not count
    ("<title></title><script><h1>x</h1></script><div hidden><h1>Hidden</h1></div>"
     "<h2></h2><h2>Sub  two</h2>", None, "Sub two"),
    # none at all
    ("<p>text</p>", None, None),
])
def test_title_and_heading_are_the_first_with_text(markup: str, title: str | None,
                                                   heading: str | None) -> None:
    page = extract(f"<html><body>{markup}</body></html>".encode(), "text/html")
    assert (page.title, page.heading) == (title, heading)


def test_text_length_counted_in_parts_is_the_whole_count() -> None:
    """An element's text length (non-whitespace characters, as str.split sees them) asked
    as "more than n?" counts only a prefix of the text; the answers, and the whole count,
    are those of the whole text, wherever a prefix ends (inside a character of two, three
    or four bytes, among wide spaces)."""
    from lxml import etree

    from archiver.pagetext import _Length, _text_len

    pieces = ["word ", "слово ", "€\u00a0", "\U0001f600\u2003", "\u3000x ", "  \n\t", "ж"]
    for shift in range(9):
        text = "a" * shift + "".join(pieces[(n * 5 + shift) % len(pieces)] for n in range(900))
        el = etree.fromstring(f"<div><p>{text}</p><p>tail\u00a0end</p></div>".encode(),
                              etree.HTMLParser(encoding="utf-8")).find(".//div")
        expected = len("".join((text + "tail\u00a0end").split()))
        assert _text_len(el) == expected
        for n in (-1, 0, 139, 500, 1000, expected - 1, expected, expected + 5):
            length = _Length(el)
            assert length.exceeds(n) == (expected > n), (shift, n)
            assert length.exact() == expected


def test_chrome_holding_most_of_a_long_main_is_kept_and_a_small_one_dropped() -> None:
    article = "<p>" + "Суд отложил рассмотрение дела до осени. " * 60 + "</p>"
    html = (f"<html><body><main><div class='content has-sidebar'>{article}</div>"
            "<aside>Related stories</aside><div class='share'>Share this</div></main>"
            "</body></html>")
    page = extract(html.encode(), "text/html")
    assert "Суд отложил" in page.text
    assert "Related stories" not in page.text and "Share this" not in page.text


def test_extract_without_the_cache_reads_the_same_and_never_raises() -> None:
    from archiver import pagetext

    bodies = [ARTICLE.encode(), b"\x00\xff" * 50, b"%PDF-1.4 broken", b"", "<p>й</p>".encode()]
    for body in bodies:
        pagetext._extract_cached.cache_clear()
        assert extract(body, "text/html", cache=False) == extract(body, "text/html")
    assert pagetext._extract_cached.cache_info().currsize == 1
    assert extract(None, "text/html", cache=False).text == ""  # type: ignore[arg-type]
