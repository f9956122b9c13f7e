"""Readable text and title from a fetched body: the main content, not the navigation.

The text is what the archiver compares (a page against the soft-404 probe, a page against its
previous capture for drift) and what the report quotes as an excerpt, so it should hold the
article and leave out menus, footers, cookie banners and scripts: those change from page to page
of one site and would drown the comparison.

    extract(content, content_type, url) -> PageText(title, text, heading, language, ...)
    excerpt(text, n=280) -> str
    decode(content, content_type) -> str

``extract`` takes any bytes (HTML in any charset, plain text, a PDF, garbage) and never raises:
what it cannot read gives an empty ``text``. The charset comes from a byte-order mark, the
Content-Type header, the document's ``<meta>`` declaration, strict UTF-8, statistical detection
(``bs4.UnicodeDammit``), and finally UTF-8 with replacement characters, in that order.

Main-content selection is a small heuristic on top of lxml, not a full readability algorithm:
``<main>`` / ``role=main`` if it holds a fair share of the text, else the largest ``<article>``,
else ``<body>``; inside it, navigation, headers, footers, asides, forms' chrome and elements whose
class or id name them as menus, sidebars, cookie banners or share bars are dropped. That is what
comparisons need (stable, boilerplate-free). Every page captured is read, so the reading stays
in C where it can: one parse, XPath for the elements to look at, ``strip_elements`` for what is
always dropped, and one XSLT pass that marks the blocks, whose output ``str.split`` and
``str.replace`` turn into lines; Python touches only the few elements a rule is about.

A PDF (``application/pdf`` or a body starting ``%PDF-``) is read with ``pypdf``: the title is
the document information's ``/Title``, the text is the pages' text in page order, ``kind`` is
``"pdf"``. PDFs come from anyone, so the reading is bounded: at most ``PDF_PAGE_LIMIT`` pages,
``PDF_TEXT_LIMIT`` characters and ``PDF_TIME_LIMIT`` seconds (checked between pages), and
pypdf's own decompression limits are tightened to ``PDF_STREAM_LIMIT`` bytes per stream, so
a compressed-stream bomb costs tens of megabytes, not gigabytes. A PDF that cannot be read
(broken, truncated, encrypted with a password, pypdf missing) gives an empty text; a page
that cannot be read is skipped. Scanned PDFs (images only) have no text: there is no OCR.
Other binary bodies give no text.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import functools
import io
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PageText", "decode", "excerpt", "excerpt_head", "extract", "rules"]

# Bodies larger than this are cut before parsing: the main content of a page is at its start
# and lxml's time grows with the size.
PARSE_LIMIT = 4 * 1024 * 1024

# Bounds on reading one PDF. A report or judgment has its substance in the first pages, and
# 200 pages of text is already far more than an excerpt or a drift comparison needs.
PDF_PAGE_LIMIT = 200
PDF_TEXT_LIMIT = 2 * 1024 * 1024  # characters
PDF_TIME_LIMIT = 20.0  # seconds, checked between pages
# The most one stream (a page's content, an object stream) may decompress to. pypdf's own
# default is 75 MB, and one stream at a time is inflated; a page's text content is rarely
# above a megabyte, so 16 MB leaves room for the real thing.
PDF_STREAM_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class PageText:
    """What a page says, as text.

    ``title``: the ``<title>`` (or ``og:title``), whitespace collapsed, ``None`` if absent.
    ``text``: the main content, one block (paragraph, heading, list item) per line.
    ``heading``: the main heading (first ``<h1>``, else first ``<h2>``), ``None`` if absent.
    ``language``: the page's own ``lang`` (``declared_language``), else a guess from the text
    (``"en"``, ``"ru"``, ``"kk"``), else ``None``; guessed only when asked for.
    ``kind``: ``"html"``, ``"text"``, ``"pdf"`` or ``"binary"`` (how the body was read).
    ``password_fields``: how many ``<input type=password>`` the page has (login forms).
    ``timed_out``: the reading stopped at ``PDF_TIME_LIMIT`` (a PDF's text is then its first
    pages': another reading, on a less busy machine, may read more).
    """

    title: str | None
    text: str
    heading: str | None = None
    declared_language: str | None = None
    kind: str = "html"
    password_fields: int = 0
    timed_out: bool = False

    @functools.cached_property
    def language(self) -> str | None:
        return self.declared_language or _guess_language(self.text)

    @property
    def html(self) -> bool:
        return self.kind == "html"


def extract(content: bytes, content_type: str | None, url: str | None = None, *,
            cache: bool = True) -> PageText:
    """Read ``content`` (a decoded HTTP body) as a page: title, main text, heading, language.

    ``content_type`` is the Content-Type header value (charset included) or ``None``; the body
    is sniffed too, because servers mislabel. ``url`` is accepted for context and not fetched.
    Never raises: an unreadable body gives ``PageText(title=None, text="")``.

    ``cache``: keep the page for the next reading of the same bytes (the last few are
    kept). A caller that reads each body once and hands the page on (the capture stage)
    leaves it out: the cache hashes the whole body, a twentieth of the cost of reading it.
    """
    if not isinstance(content, bytes | bytearray | memoryview):
        return PageText(title=None, text="", kind="binary")
    try:
        read = _extract_cached if cache else _extract
        return read(bytes(content), content_type or "")
    except Exception:  # the contract is "never raises"; a bad page is no text
        return PageText(title=None, text="", kind="binary")


@functools.cache
def rules() -> str:
    """The digest of what reads a page: this archiver's version, the bytes of this module,
    the versions of lxml, libxml2 and libxslt, of the charset detectors ``bs4.UnicodeDammit``
    consults and of pypdf (found without importing them), Python's and its Unicode
    database's. Two readings of the same body under the same rules give the same
    ``PageText`` (but for a PDF's reading stopped at ``PDF_TIME_LIMIT``: ``timed_out``), so
    a page read before may be taken as read again (``capturing.PageMemo``). Read once per
    process."""
    import sys
    from pathlib import Path

    from lxml import etree

    from archiver import __version__
    from archiver.codedigest import code_digest

    return code_digest(f"{__version__} {sys.version_info[:2]} {unicodedata.unidata_version} "
                       f"{etree.LXML_VERSION} {etree.LIBXML_VERSION} {etree.LIBXSLT_VERSION}",
                       [Path(__file__)], _READERS)


#: The files that say which version of each charset detector (and bs4), and of pypdf, is
#: installed.
_READERS = (("bs4", "__init__.py"), ("charset_normalizer", "version.py"),
            ("chardet", "version.py"), ("cchardet", "__init__.py"), ("pypdf", "_version.py"))


def excerpt_head(n: int = 280) -> int:
    """How many leading characters of a text ``excerpt(text, n)`` reads, unless they are
    mostly whitespace."""
    return 4 * n + 64


def excerpt(text: str, n: int = 280, *, whole: Callable[[], str] | None = None) -> str:
    """The first ``n`` characters of ``text`` with whitespace collapsed, cut at a word boundary
    and ending in "…" when cut. ``n`` below 1 gives ``""``.

    ``whole``: ``text`` is only the head of a longer text (at least its first
    ``excerpt_head(n)`` characters) and ``whole()`` gives all of it, asked for only when the
    head is mostly whitespace: the excerpt is then the same as the whole text's."""
    if n < 1:
        return ""
    # Only the head matters: collapsing the whitespace of a whole page per excerpt made a
    # report of N links cost N pages' worth of splitting. 4n + 64 characters hold n
    # collapsed ones unless the head is mostly whitespace; then the whole text is used.
    head = text[: excerpt_head(n)]
    flat = " ".join(head.split())
    if len(flat) <= n and (whole is not None or len(head) < len(text)):
        flat = " ".join((whole() if whole is not None else text).split())
    if len(flat) <= n:
        return flat
    cut = flat[: n - 1]
    space = cut.rfind(" ")
    if space > n // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"


# ── charset ──────────────────────────────────────────────────────────────────

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([\w.:-]+)""", re.I)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)|<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)""",
    re.I,
)
# WHATWG's encoding rules: labels that mean something else on the web.
_ALIASES = {
    "iso-8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "latin-1": "windows-1252",
    "latin1": "windows-1252",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "x-user-defined": "windows-1252",
    "utf8": "utf-8",
    "win-1251": "windows-1251",
    "cp-1251": "windows-1251",
}


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A document that declares UTF-16 in its own ASCII-readable <meta> cannot be UTF-16;
    # WHATWG reads it as UTF-8. UTF-7 and friends are not web encodings at all.
    if name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    if name in ("utf-7", "rot-13", "base64", "hex", "zlib", "bz2", "uu", "quopri"):
        return None
    return name


def decode(content: bytes, content_type: str | None = None) -> str:
    """``content`` as text: BOM, then the header's charset, then ``<meta charset>``, then
    strict UTF-8, then detection, then UTF-8 with replacement characters. Never raises."""
    return _decoded(content, content_type)[0]


# How ``_decoded`` read the bytes: otherwise, as UTF-8 with replacement characters, or as
# valid UTF-8 (the text encodes back to the very bytes).
_OTHER, _UTF8, _VALID_UTF8 = 0, 1, 2


def _decoded(content: bytes, content_type: str | None) -> tuple[str, int]:
    """``decode``, and how (``_OTHER``, ``_UTF8``, ``_VALID_UTF8``)."""
    for bom, name in _BOMS:
        if content.startswith(bom):
            return (content[len(bom):].decode(name.replace("-sig", ""), errors="replace"),
                    _OTHER)
    declared = None
    if content_type:
        found = _HEADER_CHARSET.search(content_type)
        declared = _codec(found.group(1)) if found else None
    if declared is None:
        found_meta = _META_CHARSET.search(content[:4096])
        if found_meta:
            label = (found_meta.group(1) or found_meta.group(2) or b"").decode("ascii", "replace")
            declared = _codec(label)
    if declared is not None:
        how = _OTHER
        if declared == "utf-8":
            try:
                text, how = content.decode("utf-8"), _VALID_UTF8
            except UnicodeDecodeError:
                text, how = content.decode("utf-8", errors="replace"), _UTF8
        else:
            text = content.decode(declared, errors="replace")
        # A wrong declaration (cp1251 bytes labelled utf-8 is common) shows as a mass of
        # replacement characters; only then second-guess it. (Most texts have none: looking
        # for one is several times faster than counting them.)
        if "\ufffd" not in text or text.count("\ufffd") * 100 <= len(text):
            return text, how
        guessed = _detect(content)
        if guessed is not None and guessed.count("\ufffd") < text.count("\ufffd"):
            return guessed, _OTHER
        return text, how
    try:
        return content.decode("utf-8"), _VALID_UTF8
    except UnicodeDecodeError:
        pass
    guessed = _detect(content)
    if guessed is not None:
        return guessed, _OTHER
    return content.decode("utf-8", errors="replace"), _UTF8


def _detect(content: bytes) -> str | None:
    from bs4 import UnicodeDammit

    try:
        dammit = UnicodeDammit(content[:PARSE_LIMIT], is_html=True)
    except Exception:  # detection is best effort
        return None
    return dammit.unicode_markup


# ── reading ──────────────────────────────────────────────────────────────────

_HTML_SNIFF = re.compile(rb"<(?:!doctype\s+html|html|head|body|title|meta|div|p)[\s>/]", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _kind(content: bytes, content_type: str) -> str:
    head = content[:1024].lstrip()
    mime = content_type.split(";", 1)[0].strip().lower()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if mime in ("application/pdf", "application/x-pdf"):
        # Labelled PDF but plainly an HTML page (an error or login page served under the
        # document's type): judge it as the page it is.
        return "html" if _HTML_SNIFF.search(head) and b"%PDF-" not in head else "pdf"
    if mime in ("text/html", "application/xhtml+xml") or _HTML_SNIFF.search(head):
        return "html"
    if mime.startswith("text/") or mime.endswith(("json", "xml", "javascript")):
        return "text"
    if mime and not mime.startswith(("text/", "application/octet-stream")):
        return "binary"
    # Unlabelled: text if it decodes to mostly printable characters.
    sample = content[:2048].decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in sample)
    return "text" if sample and printable / len(sample) > 0.95 else "binary"


_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def _blank(text: str, raw: bytes | None = None) -> str:
    """``text`` with the control characters of ``_CONTROL`` made spaces. ``raw``: the bytes
    ``text`` was decoded from as UTF-8 (with replacement characters), if it was."""
    # UTF-8 keeps these characters as the same single bytes, and bytes.translate finds them
    # several times faster than a regex search; most pages have none. A UTF-8 decoder never
    # takes an ASCII byte into a replaced sequence, so the bytes decoded hold them exactly
    # where the text does (and need no encoding first).
    if raw is None:
        raw = text.encode("utf-8", "surrogatepass")
    if len(raw.translate(None, _CONTROL_BYTES)) == len(raw):
        return text
    return _CONTROL.sub(" ", text)


def _extract(content: bytes, content_type: str) -> PageText:
    """``extract`` of bytes (``content_type`` a string), uncached; may raise."""
    kind = _kind(content, content_type)
    if kind == "pdf":
        return _from_pdf(content)
    if kind == "binary":
        return PageText(title=None, text="", kind=kind)
    head = content[:PARSE_LIMIT]
    decoded, how = _decoded(head, content_type)
    text = _blank(decoded, head if how != _OTHER else None)
    if kind == "text":
        return PageText(title=None, text=_tidy(text), kind="text")
    # Valid UTF-8 that needed no blanking is parsed as the bytes it came as: the same tree,
    # without lxml converting the text back to UTF-8 first.
    return _from_html(text, head if how == _VALID_UTF8 and text is decoded else None)


# Cached because classify, the soft-404 probe and the report all read the same bodies;
# bytes cache their own hash, so a hit costs almost nothing. Small on purpose: each entry
# holds a whole body (up to the fetcher's decoded cap); the cache only saves the second
# parse when one capture is judged and then reported.
_extract_cached = functools.lru_cache(maxsize=8)(_extract)


# ── PDF ──────────────────────────────────────────────────────────────────────

# pypdf.Configuration fields tightened for untrusted input; fields a given pypdf version does
# not know are left out (see _pdf_limits).
_PDF_LIMITS = {
    "maximum_declared_stream_length": PDF_STREAM_LIMIT,
    "array_based_stream_maximum_output_length": PDF_STREAM_LIMIT,
    "zlib_maximum_output_length": PDF_STREAM_LIMIT,
    "lzw_maximum_output_length": PDF_STREAM_LIMIT,
    "run_length_maximum_output_length": PDF_STREAM_LIMIT,
    "brotli_maximum_output_length": PDF_STREAM_LIMIT,
    "jbig2_maximum_output_length": PDF_STREAM_LIMIT,
    "image_maximum_buffer_size": PDF_STREAM_LIMIT,
    "stream_decoding_work_maximum_length": 4 * PDF_STREAM_LIMIT,
    # pypdf repairs a damaged Flate stream one byte at a time in Python; 5 MB of that is
    # seconds per stream.
    "zlib_maximum_recovery_input_length": 256 * 1024,
    # Never start an external program (jbig2dec) on a downloaded file.
    "jbig2dec_binary": None,
    "disable_legacy_handling": True,
}


def _from_pdf(content: bytes) -> PageText:
    """Title and text of a PDF, bounded as the module docstring says. Never raises."""
    empty = PageText(title=None, text="", kind="pdf")
    try:
        import pypdf
    except ImportError:
        return empty
    try:
        with _pdf_limits(pypdf):
            reader = pypdf.PdfReader(io.BytesIO(content), strict=False)
            title = _pdf_title(reader)
            language = _pdf_language(reader)
            text, timed_out = _pdf_text(reader)
    except Exception:  # broken, truncated, encrypted, over a limit: no text, not an error
        return empty
    return PageText(title=title, text=text, declared_language=language, kind="pdf",
                    timed_out=timed_out)


def _pdf_limits(pypdf) -> contextlib.AbstractContextManager[object]:  # type: ignore[no-untyped-def]
    _quiet_pypdf()
    apply = getattr(pypdf, "apply_configuration", None)
    config = getattr(pypdf, "Configuration", None)
    if apply is None or config is None:
        # An old pypdf without per-context configuration keeps its own (75 MB) limits.
        return contextlib.nullcontext()
    known = {f.name for f in dataclasses.fields(config)}
    return apply(**{k: v for k, v in _PDF_LIMITS.items() if k in known})


@functools.cache
def _quiet_pypdf() -> None:
    # pypdf logs a warning for every flaw it works around, and downloaded PDFs have many;
    # unless the application configured that logger, those would reach the user's terminal
    # through logging's last-resort handler. A broken PDF is reported as an empty text.
    logger = logging.getLogger("pypdf")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


def _pdf_title(reader) -> str | None:  # type: ignore[no-untyped-def]
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # a damaged /Info dictionary costs the title only
        return None
    if not isinstance(title, str):
        return None
    title = " ".join(_CONTROL.sub(" ", title).split())
    return title or None


def _pdf_language(reader) -> str | None:  # type: ignore[no-untyped-def]
    try:
        lang = reader.root_object.get("/Lang")
        lang = lang.get_object() if lang is not None else None
    except Exception:  # the language is a hint; a damaged catalog costs only the hint
        return None
    if not isinstance(lang, str):
        return None
    return lang.split("-")[0].strip().lower() or None


def _pdf_text(reader) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """The pages' text, and whether the reading stopped at ``PDF_TIME_LIMIT``."""
    deadline = _clock() + PDF_TIME_LIMIT
    parts: list[str] = []
    size = 0
    timed_out = False
    try:
        count = min(len(reader.pages), PDF_PAGE_LIMIT)
    except Exception:  # no readable page tree: the title may still be worth having
        return "", False
    for number in range(count):
        if size >= PDF_TEXT_LIMIT:
            break
        if _clock() > deadline:
            timed_out = True
            break
        try:
            text = reader.pages[number].extract_text() or ""
        except Exception:  # one unreadable page (a limit, a bad operator) costs that page
            continue
        text = _tidy(_CONTROL.sub(" ", text))
        if text:
            parts.append(text)
            size += len(text) + 1
    return "\n".join(parts)[:PDF_TEXT_LIMIT], timed_out


#: The clock ``PDF_TIME_LIMIT`` is measured by.
_clock = time.monotonic


_DROP_ALWAYS = (
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "video", "audio", "map", "select", "button", "dialog",
)
_BLOCK = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "input", "label", "li", "main", "nav", "ol", "option", "p", "pre",
    "section", "summary", "table", "tbody", "td", "textarea", "tfoot", "th", "thead", "tr", "ul",
})
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search",
                           "menu", "menubar", "dialog", "alertdialog"})
# class/id tokens that name page chrome; matched as whole words of the attribute.
_CHROME_NAME = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|mainmenu|topmenu|submenu|sidebar|side-bar|"
    r"breadcrumbs?|cookies?|cookie-banner|consent|gdpr|share|sharing|social|socials|"
    r"footer|site-footer|masthead|site-header|topbar|top-bar|subscribe|newsletter|"
    r"advert|advertisement|ads|banner-ad|related|popular|most-read|skip-link|"
    r"screen-reader-text|visually-hidden|sr-only)(?:$|[\s_-])",
    re.I,
)


def _from_html(markup: str, utf8: bytes | None = None) -> PageText:
    """The page of ``markup``; ``utf8``, if given, is ``markup`` encoded in UTF-8."""
    from lxml import etree

    if _XML_DECLARATION.match(markup):
        # lxml refuses str input that carries an XML encoding declaration.
        markup = _XML_DECLARATION.sub("", markup, count=1)
        utf8 = None
    if not markup or markup.isspace():  # as ``not markup.strip()``, without the copy
        return PageText(title=None, text="", kind="html")
    tools = _tools()
    try:
        if utf8 is not None:
            doc = etree.fromstring(utf8, tools.utf8_parser)
        else:
            doc = etree.fromstring(markup, tools.parser)
        if doc is None:
            raise etree.ParserError("Document is empty")
    except (etree.ParserError, ValueError, TypeError):
        flat = _tidy(re.sub(r"<[^>]*>", " ", markup))
        return PageText(title=None, text=flat, kind="html")
    odd = False
    # "&" is looked for first: a search for one character runs several times faster than
    # one for two, and many pages have no "&" at all (the search for "&#" starts at the
    # first "&").
    amp = markup.find("&")
    if amp >= 0 and markup.find("&#", amp) >= 0:
        # Character references can put into the tree what the markup's own control
        # characters were blanked for, or the line marker of ``_block_text`` (&#13;).
        whole = tools.string(doc)
        if _UNSAFE.search(whole):
            _blank_controls(doc)
        odd = _MARK in whole
    if not tools.marks_unseen and _MARK in markup:  # a parser that keeps raw CRs
        odd = True

    title = _first_text(doc, "title", tools) or _meta_content(doc, "og:title")
    language = (doc.get("lang") or doc.get("xml:lang") or "").split("-")[0].strip().lower()
    # Password fields (counted before anything is dropped) and hidden elements, found in one
    # walk of the tree. Hidden elements inside what strip_elements drops are then dropped
    # from a detached subtree, which changes nothing.
    passwords = 0
    hidden = []
    for el in tools.passwords_hidden(doc):
        if el.tag == "input" and (el.get("type") or "").translate(_PASSWORD_CASE) == "password":
            passwords += 1
        if el.get("hidden") is not None or el.get("aria-hidden") == "true":
            hidden.append(el)

    # The tails of dropped elements stay: they are their parent's text.
    etree.strip_elements(doc, *_DROP_ALWAYS, "head", with_tail=False)
    for el in hidden:
        _drop(el)

    heading = _first_text(doc, "h1", tools) or _first_text(doc, "h2", tools)
    body = doc.find("body")
    if body is None:
        body = doc
    root, size = _main_element(body)
    _strip_chrome(root, size, tools, page_level=root is body)
    text = _block_text(root, tools, odd)
    if not text and root is not body:
        _strip_chrome(body, None, tools, page_level=True)
        text = _block_text(body, tools, odd)
    return PageText(
        title=title,
        text=text,
        heading=heading,
        declared_language=language or None,
        kind="html",
        password_fields=passwords,
    )


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_PASSWORD_CASE = str.maketrans("PASWORD", "pasword")
# What _CONTROL blanks, and what XML cannot hold (lxml refuses to set such text).
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# Marks the line breaks in ``_block_text``'s output: a carriage return, which the parser
# makes a line feed wherever the markup has one (HTML's newline normalisation: text and
# attributes hold none), so that only a character reference (&#13;) puts one in the tree;
# a page whose tree holds one is read by the slower transform that needs no marker. One
# byte, which bytes.split finds several times faster than a longer marker.
_MARK = "\r"
_MARK_UTF8 = _MARK.encode("utf-8")
# The characters str.split() takes for whitespace that bytes.split() does not (U+001C-U+001F,
# NEL, NBSP, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), in UTF-8, as
# (first byte, pattern of the whole characters); tests check the list against str.isspace.
_WIDE_SPACE_BYTES = (
    (b"\x1c", re.compile(b"\x1c")),
    (b"\x1d", re.compile(b"\x1d")),
    (b"\x1e", re.compile(b"\x1e")),
    (b"\x1f", re.compile(b"\x1f")),
    (b"\xc2", re.compile(rb"\xc2[\x85\xa0]")),
    (b"\xe1", re.compile(rb"\xe1\x9a\x80")),
    (b"\xe2", re.compile(rb"\xe2(?:\x80[\x80-\x8a\xa8\xa9\xaf]|\x81\x9f)")),
    (b"\xe3", re.compile(rb"\xe3\x80\x80")),
)
# bytes.split()'s whitespace but the space, made spaces; then runs of spaces, made one.
_ASCII_SPACES = bytes.maketrans(b"\t\n\x0b\x0c", b"    ")  # _MARK ("\r") left
_SPACE_RUN = re.compile(b"   *")  # two spaces as its literal prefix: a third faster than "  +"
_LINE_BREAK_CHARS = "&#10;&#13;&#133;&#8232;&#8233;"  # those of str.splitlines XML can hold


def _block_xslt(mark: str, text_template: str) -> str:
    blocks = "|".join(sorted(_BLOCK - {"br"}))
    return (
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:output method="text" encoding="utf-8"/>'
        f'<xsl:template match="{blocks}"><xsl:text>{mark}</xsl:text><xsl:apply-templates/>'
        f"<xsl:text>{mark}</xsl:text></xsl:template>"
        f'<xsl:template match="br"><xsl:apply-templates/><xsl:text>{mark}</xsl:text>'
        f"</xsl:template>{text_template}</xsl:stylesheet>"
    )


class _Tools(threading.local):
    """What one thread parses and walks pages with: lxml's parsers, compiled XPath and XSLT
    objects are not to be shared between threads."""

    def __init__(self) -> None:
        from lxml import etree

        self.parser = etree.HTMLParser(remove_comments=True, remove_pis=True, recover=True)
        # The same for UTF-8 bytes (the encoding given: no <meta charset> can change it).
        self.utf8_parser = etree.HTMLParser(remove_comments=True, remove_pis=True,
                                            recover=True, encoding="utf-8")
        self.string = etree.XPath("string()", smart_strings=False)
        # <input type=password> (its type compared as XPath's translate() would: only the
        # letters of "password" folded; see _PASSWORD_CASE) and hidden elements.
        # Found through the attributes (a union, in document order): libxml2 walks the
        # attribute axis much faster than it tests a predicate on every element.
        self.passwords_hidden = etree.XPath(
            "//@hidden/.. | //@aria-hidden[.='true']/.. | "
            "//input[translate(@type,'PASWORD','pasword')='password']")
        self.og_title = etree.XPath("//meta[@property=$p or @name=$p]")
        # The first element of a name in document order, the context included (_first_text).
        self.first = {tag: etree.XPath(f"descendant-or-self::{tag}[1]")
                      for tag in ("title", "h1", "h2")}
        # <main>, role=main and <article> elements below the context, in document order.
        self.landmarks = etree.XPath(
            "descendant::main | descendant::article | descendant::*/@role[.='main']/..")
        self.chrome_page = etree.XPath(
            ".//nav | .//aside | .//header | .//footer")
        self.chrome_inner = etree.XPath(".//nav | .//aside")
        self.inner_footers = etree.XPath(".//footer[not(ancestor::article)]")
        # class, id and role values in document order, each knowing its element
        self.chrome_attrs = etree.XPath(
            "descendant::*/@*[name()='class' or name()='id' or name()='role']")
        # Block elements start and end a line, <br> ends one: marked with _MARK here;
        # whitespace is collapsed afterwards, in Python, at C speed. Text is copied by XSLT's
        # built-in rule (the same output as a template of our own, a third faster).
        self.marked = etree.XSLT(etree.XML(_block_xslt(f"&#{ord(_MARK)};", "")))
        # Whether the parser keeps _MARK out of the tree (it normalises the markup's own
        # CRs, as libxml2 does); if not, pages whose markup holds one take the slow path.
        probe = etree.fromstring(b"<p>a\rb\r\nc</p>", self.utf8_parser)
        self.marks_unseen = _MARK not in self.string(probe)
        # For pages holding _MARK: mark with "\n" and turn the source's line breaks into
        # spaces first (ten times slower, exact).
        self.newlines = etree.XSLT(etree.XML(_block_xslt(
            "&#10;",
            '<xsl:template match="text()"><xsl:value-of select="translate(., '
            f"'{_LINE_BREAK_CHARS}', '     ')\"/></xsl:template>")))


_THREAD_TOOLS: _Tools | None = None


def _tools() -> _Tools:
    global _THREAD_TOOLS
    if _THREAD_TOOLS is None:  # built on first use: importing lxml costs a few milliseconds
        _THREAD_TOOLS = _Tools()
    return _THREAD_TOOLS


def _blank_controls(doc) -> None:  # type: ignore[no-untyped-def]
    for el in doc.iter():
        if el.text and _UNSAFE.search(el.text):
            el.text = _UNSAFE.sub(" ", el.text)
        if el.tail and _UNSAFE.search(el.tail):
            el.tail = _UNSAFE.sub(" ", el.tail)


def _drop(el) -> None:  # type: ignore[no-untyped-def]
    """Remove ``el`` and what it holds; its tail joins the text before it."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is None:
            parent.text = (parent.text or "") + el.tail
        else:
            previous.tail = (previous.tail or "") + el.tail
    parent.remove(el)


def _first_text(doc, tag: str, tools: _Tools) -> str | None:  # type: ignore[no-untyped-def]
    """The text, whitespace collapsed, of the first ``tag`` element of ``doc`` (itself
    included) whose text is not blank; ``None`` if there is none."""
    # The first is found by XPath, which stops there: iter(tag) looks ahead for the next
    # match as it yields one, a walk of the whole tree. Most pages' first one has text.
    first = tools.first[tag](doc)
    if not first:
        return None
    value = " ".join(tools.string(first[0]).split())
    if value:
        return value
    for el in doc.iter(tag):
        value = " ".join(tools.string(el).split())
        if value:
            return value
    return None


def _meta_content(doc, prop: str) -> str | None:  # type: ignore[no-untyped-def]
    for el in _tools().og_title(doc, p=prop):
        value = " ".join((el.get("content") or "").split())
        if value:
            return value
    return None


# What ``_text_len`` deletes from an element's UTF-8 text before counting the bytes left:
# UTF-8 continuation bytes (a character is counted by its first byte) and the one-byte
# characters ``str.split`` takes for whitespace.
_NOT_COUNTED = bytes(range(0x80, 0xC0)) + b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
# The other characters ``str.split`` takes for whitespace (NEL, NBSP, U+1680, U+2000-U+200A,
# U+2028, U+2029, U+202F, U+205F, U+3000), in UTF-8, by first byte.
_WIDE_SPACES: dict[int, tuple[bytes, ...]] = {}
for _code in range(0x80, 0x3001):
    if chr(_code).isspace():
        _seq = chr(_code).encode("utf-8")
        _WIDE_SPACES[_seq[0]] = (*_WIDE_SPACES.get(_seq[0], ()), _seq)
del _code, _seq


def _text_len(el) -> int:  # type: ignore[no-untyped-def]
    """How many characters of ``el``'s text (``string(el)``) are not whitespace, as
    ``len("".join(text.split()))`` counts them, without making a string of every word: the
    text is counted as UTF-8 bytes (several times faster on a page)."""
    return _Length(el).exact()


class _Length:
    """``_text_len`` of an element as it is now, counted only as far as the questions asked
    need: whether a main element holds 140 characters, or a page more than twice an aside's,
    is told by the first few hundred bytes of its text, and the rest is then never counted.
    The text is counted in prefixes that end between two characters."""

    __slots__ = ("_counted", "_raw", "_size")

    def __init__(self, el) -> None:  # type: ignore[no-untyped-def]
        from lxml import etree

        self._raw = etree.tostring(el, method="text", encoding="utf-8", with_tail=False)
        self._counted = 0  # bytes of _raw counted so far, into _size
        self._size = 0

    def exceeds(self, n: int) -> bool:
        """Whether the length is more than ``n``."""
        raw = self._raw
        while self._size <= n and self._counted < len(raw):
            end = min(len(raw), max(2 * self._counted, 1024))
            while end < len(raw) and 0x80 <= raw[end] < 0xC0:  # not inside a character
                end += 1
            self._add(raw[self._counted:end])
            self._counted = end
        return self._size > n

    def exact(self) -> int:
        """The whole length."""
        if self._counted < len(self._raw):
            self._add(self._raw[self._counted:])
            self._counted = len(self._raw)
        return self._size

    def _add(self, part: bytes) -> None:
        kept = part.translate(None, _NOT_COUNTED)
        size = len(kept)
        for lead, spaces in _WIDE_SPACES.items():
            if lead in kept:  # rare but for NBSP (and U+00A9 and friends share its first byte)
                size -= sum(map(part.count, spaces))
        self._size += size


def _main_element(body):  # type: ignore[no-untyped-def]
    """``<main>`` if it holds a fair share of the page's text, else the largest ``<article>``
    that does, else ``body``; with its text length (``_text_len``, or a ``_Length`` counted
    as far as a rule needed it), ``None`` where no rule needed it. "Fair share" guards
    against a ``<main>`` that wraps only a teaser while the article sits elsewhere."""
    tools = _tools()
    found = tools.landmarks(body)
    mains = [el for el in found if el.tag == "main" or el.get("role") == "main"]
    articles = [el for el in found if el.tag == "article"]
    if not mains and not articles:
        return body, None
    # The page's whole text is measured only when a rule needs it: a <main> of 140
    # characters or more, or a lone <article> of 280, is chosen whatever the total.
    measured: list[int] = []

    def total() -> int:
        if not measured:
            measured.append(_text_len(body))
        return measured[0]

    for el in mains:
        length = _Length(el)
        if length.exceeds(139):
            return el, length
        size = length.exact()
        if total() == 0:
            return body, 0
        if size * 3 >= total():
            return el, size
    if articles:
        sizes = [_text_len(el) for el in articles]
        size = max(sizes)
        best = articles[sizes.index(size)]  # the first of the largest, as max() picks
        if len(articles) == 1 and size >= 280:
            return best, size
        if total() == 0:
            return body, 0
        if size * 3 >= total():
            return best, size
    return body, total()


def _strip_chrome(  # type: ignore[no-untyped-def]
        root, total: int | _Length | None, tools: _Tools, *, page_level: bool) -> None:
    """Drop the navigation, asides, banners and other chrome inside ``root``, whose text
    length is ``total`` (``None``: not measured yet)."""
    # An <article>'s own <header>/<footer> carry its title, byline and date; the page's
    # carry the logo and links.
    doomed = tools.chrome_page(root) if page_level else tools.chrome_inner(root)
    if not page_level:
        doomed += tools.inner_footers(root)
    search = _CHROME_NAME.search
    last = None
    for value in tools.chrome_attrs(root):
        if value.attrname == "role":
            hit = value.strip().lower() in _CHROME_ROLES
        else:
            # "class id" as one string matched where class or id alone does: the space
            # between them is a word boundary of the pattern, as each end is.
            hit = search(value) is not None
        if hit:
            el = value.getparent()
            if el is not last:
                doomed.append(el)
                last = el
    if not doomed:
        return
    # Made before anything is dropped: a _Length counts the text it was made from.
    length = _Length(root) if total is None else total
    for el in doomed:
        # Never drop an element that holds most of the text: a "content has-sidebar" wrapper
        # named after chrome would otherwise take the article with it.
        size = _text_len(el)
        if not (length.exceeds(2 * size - 1) if isinstance(length, _Length)
                else length >= 2 * size):
            continue
        _drop(el)


def _block_text(root, tools: _Tools, odd: bool) -> str:  # type: ignore[no-untyped-def]
    # Line breaks in the markup's source mean nothing in HTML; only block elements (and <br>)
    # break lines: one block per line, whitespace collapsed, no empty line. The transform
    # marks the blocks; str.split and str.replace (C speed) make the lines.
    if odd:
        return _tidy(str(tools.newlines(root)))
    # After the collapse, a line is what lies between two marks, but for a space at either
    # end (the only whitespace left); runs of marks give empty lines, which are left out.
    # It is done on the transform's UTF-8 bytes, which know only the ASCII whitespace of
    # " \t\n\r\v\f": every other character str.split() takes for whitespace is first
    # made a space (a byte pattern per first byte, tried only where that byte occurs).
    # The collapse is that of " ".join(text.split()) between the marks, without a bytes
    # object per word: the whitespace but the mark made spaces (translate), then runs of
    # spaces made one (a search for two spaces, a literal the regex engine scans for
    # quickly); bytes.strip takes the space a line may keep at either end.
    raw = bytes(tools.marked(root))
    for lead, wide in _WIDE_SPACE_BYTES:
        if lead in raw:
            raw = wide.sub(b" ", raw)
    flat = _SPACE_RUN.sub(b" ", raw.translate(_ASCII_SPACES))
    return b"\n".join(filter(None, map(bytes.strip, flat.split(_MARK_UTF8)))).decode()


def _tidy(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


_KAZAKH_LETTERS = frozenset("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


_CYRILLIC = re.compile("[\u0400-\u04ff]")
_KAZAKH = re.compile("[" + "".join(sorted(_KAZAKH_LETTERS)) + "]")
_LATIN = re.compile("[A-Za-z]")


def _guess_language(text: str) -> str | None:
    # Letter counts by regex (C speed): a character loop here cost more than parsing a page.
    sample = text[:8000]
    cyrillic = len(_CYRILLIC.findall(sample))
    kazakh = len(_KAZAKH.findall(sample))
    latin = len(_LATIN.findall(sample))
    if cyrillic > latin and cyrillic >= 20:
        return "kk" if kazakh * 100 >= cyrillic * 2 else "ru"
    if latin >= 20:
        words = re.findall(r"[a-z]+", unicodedata.normalize("NFKC", sample.lower()))
        common = sum(w in ("the", "and", "of", "to", "in", "is", "for", "that") for w in words)
        if words and common * 100 >= len(words) * 5:
            return "en"
    return None
