"""The page-text reading as it was before the one-pass rewrite, frozen for comparison.

``bench/pagetext_bench.py`` runs this and ``archiver.pagetext`` (plus ``classify`` and
``history.text_fingerprint``) over one corpus and checks that their outputs are identical.
Copied verbatim from ``archiver/pagetext.py`` and ``archiver/history.py`` at the commit before
the rewrite; do not edit except to keep it importable.
"""
from __future__ import annotations

import codecs
import contextlib
import dataclasses
import functools
import io
import logging
import re
import time
import unicodedata
from dataclasses import dataclass

__all__ = ["PageText", "decode", "excerpt", "extract"]

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
    """

    title: str | None
    text: str
    heading: str | None = None
    declared_language: str | None = None
    kind: str = "html"
    password_fields: int = 0

    @functools.cached_property
    def language(self) -> str | None:
        return self.declared_language or _guess_language(self.text)

    @property
    def html(self) -> bool:
        return self.kind == "html"


def extract(content: bytes, content_type: str | None, url: str | None = None) -> PageText:
    """Read ``content`` (a decoded HTTP body) as a page: title, main text, heading, language.

    ``content_type`` is the Content-Type header value (charset included) or ``None``; the body
    is sniffed too, because servers mislabel. ``url`` is accepted for context and not fetched.
    Never raises: an unreadable body gives ``PageText(title=None, text="")``.
    """
    if not isinstance(content, bytes | bytearray | memoryview):
        return PageText(title=None, text="", kind="binary")
    try:
        return _extract_cached(bytes(content), content_type or "")
    except Exception:  # the contract is "never raises"; a bad page is no text
        return PageText(title=None, text="", kind="binary")


def excerpt(text: str, n: int = 280) -> str:
    """The first ``n`` characters of ``text`` with whitespace collapsed, cut at a word boundary
    and ending in "…" when cut. ``n`` below 1 gives ``""``."""
    flat = " ".join(text.split())
    if n < 1:
        return ""
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
    for bom, name in _BOMS:
        if content.startswith(bom):
            return content[len(bom):].decode(name.replace("-sig", ""), errors="replace")
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
        text = content.decode(declared, errors="replace")
        # A wrong declaration (cp1251 bytes labelled utf-8 is common) shows as a mass of
        # replacement characters; only then second-guess it.
        if text.count("\ufffd") * 100 <= len(text):
            return text
        guessed = _detect(content)
        if guessed is not None and guessed.count("\ufffd") < text.count("\ufffd"):
            return guessed
        return text
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guessed = _detect(content)
    return guessed if guessed is not None else content.decode("utf-8", errors="replace")


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


# Small on purpose: each entry holds a whole body (up to the fetcher's decoded cap); the
# cache only saves the second parse when one capture is judged and then reported.
@functools.lru_cache(maxsize=8)
def _extract_cached(content: bytes, content_type: str) -> PageText:
    # Cached because classify, the soft-404 probe and the report all read the same bodies;
    # bytes cache their own hash, so a hit costs almost nothing.
    kind = _kind(content, content_type)
    if kind == "pdf":
        return _from_pdf(content)
    if kind == "binary":
        return PageText(title=None, text="", kind=kind)
    text = _CONTROL.sub(" ", decode(content[:PARSE_LIMIT], content_type))
    if kind == "text":
        return PageText(title=None, text=_tidy(text), kind="text")
    return _from_html(text)


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
            text = _pdf_text(reader)
    except Exception:  # broken, truncated, encrypted, over a limit: no text, not an error
        return empty
    return PageText(title=title, text=text, declared_language=language, kind="pdf")


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


def _pdf_text(reader) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PDF_TIME_LIMIT
    parts: list[str] = []
    size = 0
    try:
        count = min(len(reader.pages), PDF_PAGE_LIMIT)
    except Exception:  # no readable page tree: the title may still be worth having
        return ""
    for number in range(count):
        if size >= PDF_TEXT_LIMIT or time.monotonic() > deadline:
            break
        try:
            text = reader.pages[number].extract_text() or ""
        except Exception:  # one unreadable page (a limit, a bad operator) costs that page
            continue
        text = _tidy(_CONTROL.sub(" ", text))
        if text:
            parts.append(text)
            size += len(text) + 1
    return "\n".join(parts)[:PDF_TEXT_LIMIT]


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


def _from_html(markup: str) -> PageText:
    import lxml.html
    from lxml import etree

    # lxml refuses str input that carries an XML encoding declaration.
    markup = re.sub(r"^\s*<\?xml[^>]*\?>", "", markup, count=1)
    if not markup.strip():
        return PageText(title=None, text="", kind="html")
    parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, recover=True)
    try:
        doc = lxml.html.document_fromstring(markup, parser=parser)
    except (etree.ParserError, ValueError, TypeError):
        flat = _tidy(re.sub(r"<[^>]*>", " ", markup))
        return PageText(title=None, text=flat, kind="html")

    title = _first_text(doc, "//title") or _meta_content(doc, "og:title")
    language = (doc.get("lang") or doc.get("xml:lang") or "").split("-")[0].strip().lower()
    passwords = len(doc.xpath("//input[translate(@type,'PASWORD','pasword')='password']"))

    for el in doc.xpath("|".join(f"//{tag}" for tag in (*_DROP_ALWAYS, "head"))):
        _drop(el)
    for el in doc.xpath("//*[@hidden or @aria-hidden='true']"):
        _drop(el)

    heading = _first_text(doc, "//h1") or _first_text(doc, "//h2")
    body = doc.find("body")
    if body is None:
        body = doc
    root = _main_element(body)
    _strip_chrome(root, page_level=root is body)
    text = _block_text(root)
    if not text and root is not body:
        _strip_chrome(body, page_level=True)
        text = _block_text(body)
    return PageText(
        title=title,
        text=text,
        heading=heading,
        declared_language=language or None,
        kind="html",
        password_fields=passwords,
    )


def _drop(el) -> None:  # type: ignore[no-untyped-def]
    if el.getparent() is not None:
        el.drop_tree()


def _first_text(doc, xpath: str) -> str | None:  # type: ignore[no-untyped-def]
    for el in doc.xpath(xpath):
        value = " ".join(el.text_content().split())
        if value:
            return value
    return None


def _meta_content(doc, prop: str) -> str | None:  # type: ignore[no-untyped-def]
    for el in doc.xpath(f"//meta[@property='{prop}' or @name='{prop}']"):
        value = " ".join((el.get("content") or "").split())
        if value:
            return value
    return None


def _text_len(el) -> int:  # type: ignore[no-untyped-def]
    return len("".join(el.text_content().split()))


def _main_element(body):  # type: ignore[no-untyped-def]
    """``<main>`` if it holds a fair share of the page's text, else the largest ``<article>``
    that does, else ``body``. "Fair share" guards against a ``<main>`` that wraps only a
    teaser while the article sits elsewhere."""
    total = _text_len(body)
    if total == 0:
        return body
    for el in body.xpath(".//main | .//*[@role='main']"):
        size = _text_len(el)
        if size >= 140 or size * 3 >= total:
            return el
    articles = body.xpath(".//article")
    if articles:
        best = max(articles, key=_text_len)
        size = _text_len(best)
        if size * 3 >= total or (len(articles) == 1 and size >= 280):
            return best
    return body


def _strip_chrome(root, *, page_level: bool) -> None:  # type: ignore[no-untyped-def]
    tags = ["nav", "aside"]
    if page_level:
        # An <article>'s own <header>/<footer> carry its title, byline and date; the page's
        # carry the logo and links.
        tags += ["header", "footer"]
    doomed = root.xpath(" | ".join(f".//{t}" for t in tags)) if tags else []
    if not page_level:
        doomed += root.xpath(".//footer[not(ancestor::article)]")
    for el in root.iter():
        if not isinstance(el.tag, str) or el is root:
            continue
        role = (el.get("role") or "").strip().lower()
        names = f"{el.get('class') or ''} {el.get('id') or ''}"
        if role in _CHROME_ROLES or (names.strip() and _CHROME_NAME.search(names)):
            doomed.append(el)
    total = _text_len(root)
    for el in doomed:
        # Never drop an element that holds most of the text: a "content has-sidebar" wrapper
        # named after chrome would otherwise take the article with it.
        if _text_len(el) * 2 > total:
            continue
        _drop(el)


def _block_text(root) -> str:  # type: ignore[no-untyped-def]
    # Line breaks in the markup's source mean nothing in HTML; only block elements (and <br>)
    # break lines. So collapse the source's whitespace first, then mark the blocks.
    for el in root.iter():
        if el.text:
            el.text = _SPACES.sub(" ", el.text)
        if el.tail:
            el.tail = _SPACES.sub(" ", el.tail)
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.lower() in _BLOCK:
            el.tail = "\n" + (el.tail or "")
            if el.tag.lower() != "br":
                el.text = "\n" + (el.text or "")
    return _tidy(root.text_content())


def _tidy(text: str) -> str:
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


_SPACES = re.compile(r"\s+")
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


# ── history.text_fingerprint, as it was ──────────────────────────────────────

import hashlib  # noqa: E402

_WORD_WITHOUT_DIGITS = re.compile(r"(?<!\w)[^\W\d]+(?!\w)")

# Month and weekday names change with every "updated on" line; they are dropped like numbers.
_CALENDAR_TEXT = """
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun
    am pm utc gmt
    январь февраль март апрель май июнь июль август сентябрь октябрь ноябрь декабрь
    января февраля марта апреля мая июня июля августа сентября октября ноября декабря
    янв фев мар апр июн июл авг сен сент окт ноя дек
    понедельник вторник среда четверг пятница суббота воскресенье
    пн вт ср чт пт сб вс
    қаңтар ақпан наурыз сәуір мамыр маусым шілде тамыз қыркүйек қазан қараша желтоқсан
"""
_CALENDAR_WORDS = frozenset(_CALENDAR_TEXT.split())


def normalise_tokens(text: str) -> list[str]:
    """The words of ``text`` as compared for drift: case-folded, without numbers (dates, times,
    counters, anything with a digit), month and weekday names (English, Russian, Kazakh);
    whitespace and punctuation do not count."""
    calendar = _CALENDAR_WORDS
    # The regex takes whole words without a digit in one C-speed pass; a per-word test of
    # digits in Python cost more than parsing the page.
    return [token for token in _WORD_WITHOUT_DIGITS.findall(text.casefold())
            if token not in calendar]


def text_fingerprint(text: str) -> str:
    """A short digest of ``normalise_tokens(text)``: equal fingerprints mean similarity 1.0."""
    digest = hashlib.sha256(" ".join(normalise_tokens(text)).encode("utf-8"))
    return digest.hexdigest()[:32]
