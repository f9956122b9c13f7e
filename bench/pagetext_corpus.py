"""Bodies for the page-text benchmark: test fixtures, generated news pages, hostile input.

``corpus()`` returns ``(name, body, content_type)`` triples:

* every HTML-looking string or bytes literal in ``tests/*.py`` and every page under
  ``tests/data`` (the fixtures the tests judge);
* generated news pages (English, Russian, Kazakh) from 5 KB to 300 KB: navigation, cookie
  banners, breadcrumbs, an article with figures and quotes, share bars, comments, sidebars,
  footers, scripts, styles, SVG icons, hidden elements, forms; in several layouts (``<main>``,
  ``<article>`` only, class-named ``<div>`` soup, listing pages, a ``<main>`` holding only a
  teaser, login pages, error pages);
* the capture benchmark's synthetic page (``bench/capture_bench.py``);
* pathological bodies: deep nesting, a body over the parse limit, 100,000 tiny elements, one
  huge word, tag soup, NUL and control characters, mislabelled charsets, chrome whose text is
  all of the page, class names with the letters that match ASCII only under ``re.I``.

Deterministic: the same corpus on every run (seeded).
"""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HTML = "text/html; charset=utf-8"
_LOOKS_HTML = re.compile(r"<(?:html|body|p|div|title|main|article|h1|h2|form|meta)[\s>/]", re.I)



def _split(text: str) -> list[str]:
    return text.split()


_EN = _split("the court said that the activist had been detained on Saturday after a protest "
       "in the "
       "city centre and that the police had not informed the family of the charges against him "
       "while rights groups called the ruling a warning to others who criticise the government "
       "for its response to the pandemic and the economic crisis of the last two years")
_RU = _split("суд приговорил активиста к двум годам ограничения свободы за публикацию в социальной "
       "сети о пандемии коронавируса правозащитники назвали приговор предупреждением для всех "
       "кто критикует власти полиция задержала участников мирного митинга в центре города "
       "родственники не знали где находятся задержанные несколько часов")
_KK = _split("сот белсендіні екі жылға бас бостандығын шектеуге соттады әлеуметтік желідегі "
       "жарияланым үшін құқық қорғаушылар үкіметті сынаған адамдарға ескерту деп атады "
       "полиция бейбіт жиынға қатысушыларды қала орталығында ұстады туыстары бірнеше сағат "
       "бойы ұсталғандардың қайда екенін білмеді қазақстан республикасы")
_WORDS = {"en": _EN, "ru": _RU, "kk": _KK}
_MONTHS = {"en": "May", "ru": "мая", "kk": "мамыр"}


def _sentence(rng: random.Random, lang: str) -> str:
    words = rng.choices(_WORDS[lang], k=rng.randint(8, 22))
    if rng.random() < 0.3:
        words.insert(rng.randint(0, len(words)), f"{rng.randint(1, 28)} {_MONTHS[lang]} 2020")
    if rng.random() < 0.2:
        words.insert(rng.randint(0, len(words)), f"{rng.randint(2, 990)}")
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "!", "?", ";"])


def _para(rng: random.Random, lang: str) -> str:
    parts = []
    for _ in range(rng.randint(2, 6)):
        s = _sentence(rng, lang)
        roll = rng.random()
        if roll < 0.15:
            w = s.split(" ", 3)
            s = f'{w[0]} <a href="/a/{rng.randint(1, 99999)}.html">{w[1]}</a> ' + " ".join(w[2:])
        elif roll < 0.25:
            s = f"<strong>{s}</strong>"
        elif roll < 0.3:
            s = f"<em>{s}</em>\n  "
        parts.append(s)
    return "<p>" + "\n      ".join(parts) + "</p>"


_SVG = ('<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M12 2L2 7l10 5 '
        '10-5-10-5z"/><title>icon</title></svg>')
_SCRIPT = ('<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push'
           '(arguments)}gtag("js",new Date());var s="<div>not markup</div>";</script>')
_STYLE = "<style>.nav{display:flex}.sidebar{width:300px}body{font:16px/1.5 serif}</style>"


def _nav(rng: random.Random, lang: str, cls: str = "main-nav") -> str:
    items = "".join(f'<li class="menu-item"><a href="/s/{i}">{rng.choice(_WORDS[lang])}</a>'
                    f"</li>" for i in range(rng.randint(6, 14)))
    return f'<nav class="{cls}" role="navigation"><ul class="menu">{items}</ul></nav>'


def _related(rng: random.Random, lang: str, title: str) -> str:
    links = "".join(f'<li><a href="/a/{rng.randint(1, 99999)}.html">{_sentence(rng, lang)}</a>'
                    f'<span class="date">{rng.randint(1, 28)}.05.2020</span></li>'
                    for _ in range(rng.randint(4, 10)))
    return f'<div class="related-news"><h3>{title}</h3><ul>{links}</ul></div>'


def _comments(rng: random.Random, lang: str, n: int) -> str:
    items = "".join(
        f'<li class="comment" id="c{i}"><div class="comment-author">user{rng.randint(1, 999)}'
        f'</div><div class="comment-body"><p>{_sentence(rng, lang)}</p></div>'
        f'<button class="reply">Reply</button></li>' for i in range(n))
    return f'<section class="comments" id="comments"><h2>Comments ({n})</h2><ol>{items}</ol>' \
           "</section>"


def news_page(seed: int, size: int, lang: str, layout: str) -> bytes:
    """A news article page of about ``size`` bytes in one of the layouts named in the module
    docstring."""
    rng = random.Random(seed)
    title = _sentence(rng, lang).rstrip(".!?;")
    head = (f'<!DOCTYPE html>\n<html lang="{lang}{"-KZ" if lang != "en" else ""}">\n<head>\n'
            f'<meta charset="utf-8">\n<title>{title} | Example News</title>\n'
            f'<meta property="og:title" content="{title}">\n'
            f'<meta name="viewport" content="width=device-width">\n'
            f'<link rel="stylesheet" href="/s.css">{_STYLE}\n{_SCRIPT}\n</head>\n')
    top = (f'<body class="article-page">\n<a class="skip-link" href="#main">Skip to content</a>\n'
           f'<div id="cookie-banner" class="cookie-consent">We use cookies to improve your '
           f'experience. <button>Accept</button></div>\n'
           f'<header class="site-header"><div class="logo">{_SVG}Example News</div>'
           f"{_nav(rng, lang)}<form class=search><input name=q placeholder=Search>"
           f"<button>Go</button></form></header>\n"
           f'<div class="breadcrumbs"><a href="/">Home</a> › <a href="/news">News</a></div>\n')
    sidebar = (f'<aside class="sidebar"><div class="widget most-read"><h3>Most read</h3>'
               f'{_related(rng, lang, "Popular")}</div><div class="newsletter">Subscribe to '
               f'our newsletter <form><input type=email><button>OK</button></form></div>'
               f'<div class="ads banner-ad"><iframe src="/ad"></iframe></div></aside>\n')
    footer = (f'<footer class="site-footer"><div class="footer-links">{_nav(rng, lang, "foot")}'
              f'</div><p>© 2020 Example News. All rights reserved.</p>{_SCRIPT}</footer>\n'
              f'<div hidden>HIDDEN-TRACKING</div><div aria-hidden="true">{_SVG}</div>\n'
              f"{_SCRIPT}</body></html>\n")
    share = (f'<div class="share-bar"><a href="#">Facebook</a> <a href="#">Twitter</a>'
             f'<a href="#">Telegram</a>{_SVG}</div>')
    byline = (f'<header class="entry-header"><h1 class="title">{title}</h1>'
              f'<div class="meta"><time datetime="2020-05-12">12 {_MONTHS[lang]} 2020, '
              f'{rng.randint(0, 23):02}:{rng.randint(0, 59):02}</time> '
              f'<span class="author">{rng.choice(_WORDS[lang])}</span></div></header>')
    fixed = len(head) + len(top) + len(sidebar) + len(footer) + 800
    paras: list[str] = []
    budget = max(size - fixed, 600)
    comments = ""
    if layout not in ("teaser", "listing") and size > 30_000:
        comments = _comments(rng, lang, rng.randint(5, 40))
        budget -= len(comments)
    while sum(map(len, paras)) < budget:
        block = _para(rng, lang)
        roll = rng.random()
        if roll < 0.05:
            block = (f'<figure class="photo"><img src="/i/{rng.randint(1, 9999)}.jpg" alt="">'
                     f"<figcaption>{_sentence(rng, lang)}</figcaption></figure>")
        elif roll < 0.08:
            block = f"<blockquote>{_para(rng, lang)}</blockquote>"
        elif roll < 0.1:
            block = f"<h2>{_sentence(rng, lang)}</h2>"
        elif roll < 0.12:
            rows = "".join(f"<tr><td>{rng.choice(_WORDS[lang])}</td><td>{rng.randint(1, 999)}"
                           f"</td></tr>" for _ in range(5))
            block = f"<table><tbody>{rows}</tbody></table>"
        elif roll < 0.14:
            block = f'<div class="embed">{_SCRIPT}<noscript>Enable JS</noscript></div>'
        elif roll < 0.16:
            items = "".join(f"<li>{_sentence(rng, lang)}</li>" for _ in range(4))
            block = f"<ul>{items}</ul>"
        paras.append(block)
    body_text = "\n".join(paras)
    article = (f"<article class=\"post\">{byline}{share}<div class=\"entry-content\">{body_text}"
               f"</div>{share}<footer class=\"entry-footer\">Tags: "
               f"{rng.choice(_WORDS[lang])}</footer></article>")
    related = _related(rng, lang, "Related")
    if layout == "main":
        middle = (f'<main id="main" class="content">{article}{related}{comments}</main>\n'
                  f"{sidebar}")
    elif layout == "article":
        middle = f'<div class="wrap">{article}{related}{comments}{sidebar}</div>\n'
    elif layout == "divs":
        middle = (f'<div id="content" class="content has-sidebar"><div class="post">'
                  f'<h1>{title}</h1>{share}<div class="text">{body_text}</div></div>'
                  f'{related}{comments}<div id="sidebar">{sidebar}</div></div>\n')
        top = top.replace("<header", "<div").replace("</header>", "</div>")
        footer = footer.replace("<footer", '<div id="footer"').replace("</footer>", "</div>")
    elif layout == "teaser":
        teaser = f'<main><div class="lead"><p>{_sentence(rng, lang)}</p></div></main>'
        middle = f'{teaser}<div class="story">{article}</div>{sidebar}\n'
    elif layout == "listing":
        cards = "".join(f'<article class="card"><h2><a href="/a/{i}">{_sentence(rng, lang)}</a>'
                        f"</h2><p>{_sentence(rng, lang)}</p></article>"
                        for i in range(max(size // 600, 3)))
        middle = f'<main role="main"><h1>News</h1>{cards}</main>{sidebar}\n'
    elif layout == "login":
        middle = ('<main><h1>Sign in</h1><form action="/login" method="post"><label>Email '
                  '<input type="email" name="email"></label><label>Password <input '
                  'type="Password" name="pw"></label><button>Log in</button></form></main>')
    elif layout == "error":
        middle = ('<main><h1>Page not found</h1><p>The page you requested could not be found. '
                  'Error 404.</p></main>' + related)
    else:
        raise ValueError(layout)
    return (head + top + middle + footer).encode("utf-8")


def capture_bench_page(size: int = 20_000) -> bytes:
    """The body ``bench/capture_bench.py`` serves for ``/p/7``."""
    filler = (b"<p>" + b"synthetic evidence " * 64 + b"</p>\n") * (size // 1219 + 1)
    return (b"<html><body><h1>/p/7</h1>" + filler)[:size]


def pathological() -> list[tuple[str, bytes, str | None]]:
    """Bodies that attack the reader's time, memory or assumptions."""
    rng = random.Random(7)
    para = _para(rng, "en")
    out: list[tuple[str, bytes, str | None]] = [
        ("deep-divs-20000", b"<html><body>" + b"<div>x " * 20_000 + b"</body></html>", HTML),
        ("deep-nav-5000", b"<html><body>" + b"<nav><div class=menu>x " * 5_000 + b"</html>",
         HTML),
        ("deep-b-50000", b"<p>" + b"<b>y" * 50_000, HTML),
        ("over-parse-limit", b"<html><body>" + (para.encode() + b"\n") * 15_000
         + b"<p>TAIL-BEYOND-LIMIT</p></body></html>", HTML),
        ("tiny-spans-100k", b"<html><body><p>" + b"<span>a</span>" * 100_000 + b"</p></body>"
         b"</html>", HTML),
        ("one-huge-word", b"<html><body><p>" + b"w" * 300_000 + b"</p></body></html>", HTML),
        ("long-attributes", b'<html><body><div class="' + b"nav " * 20_000 + b'">t</div>'
         + para.encode() + b"</body></html>", HTML),
        ("tag-soup", b"<html><<<div><p<b>>a</i></div></p><<!-- x --><p>b<td>c</tr>d&amp;&#0;"
         b"&#1;&#xfffe;&#x110000;&bogus;</html>", HTML),
        ("nul-and-controls", b"<html><body><p>a\x00b\x01c\x0bd\x0ce\x1ff\x7fg</p>"
         b"<p>\xe2\x80\xa8line\xe2\x80\xa9sep\xc2\x85nel\x1c\x1d\x1e</p></body></html>", HTML),
        ("cp1251-unlabelled", ("<html><body><p>" + " ".join(_RU) + "</p></body></html>")
         .encode("cp1251"), "text/html"),
        ("cp1251-labelled-utf8", ("<html><body><p>" + " ".join(_RU) + "</p></body></html>")
         .encode("cp1251"), HTML),
        ("xml-declaration", b"<?xml version='1.0' encoding='utf-8'?><html><head><title>X"
         b"</title></head><body><p>x</p></body></html>", "application/xhtml+xml"),
        ("utf16-bom", "\ufeff<html><body><p>utf sixteen</p></body></html>".encode("utf-16-le"),
         None),
        ("chrome-is-everything", b"<html><body><main><nav><p>" + b"only navigation text " * 10
         + b"</p></nav><aside>" + b"aside " * 10 + b"</aside></main><p>outside</p></body></html>",
         HTML),
        ("main-all-chrome-fallback", b"<html><body><header>HEAD</header><main><div class=nav>"
         + b"n " * 100 + b"</div><div class=menu>" + b"m " * 100 + b"</div><div class=sidebar>"
         + b"s " * 100 + b"</div></main><p>" + b"body text " * 50 + b"</p><footer>F</footer>"
         b"</body></html>", HTML),
        ("nested-chrome", b"<html><body><div class=sidebar><nav>" + b"a " * 50 + b"</nav>"
         + b"b " * 40 + b"<div class=share>" + b"c " * 30 + b"</div></div><p>" + b"d " * 60
         + b"</p></body></html>", HTML),
        ("unicode-case-classes", "<html><body><div class='ſidebar'>LONG-S</div><div id='"
         "\u212aookies'>KELVIN</div><div class='İ ads'>DOTTED</div><div class=NAV_x>UPPER"
         "</div><p>kept</p></body></html>".encode(), HTML),
        ("roles-and-hidden", b"<html><body><div role=' Navigation '>R1</div><div role=MENU>R2"
         b"</div><div role=main><p>" + b"main text " * 30 + b"</p><div hidden=''>H</div>"
         b"<div aria-hidden=TRUE>AH-UPPER</div><div aria-hidden=true>AH</div></div>"
         b"</body></html>", HTML),
        ("no-body", b"<title>Only a title</title><p>loose paragraph</p>", None),
        ("frameset", b"<html><frameset><frame src=a></frameset></html>", HTML),
        ("text-plain", b"Line one.\n\n   Line   two.\n" * 50, "text/plain"),
        ("json", b'{"a": [1, 2, 3], "b": "text"}', "application/json"),
        ("binary", bytes(range(256)) * 40, None),
        ("pdf-magic-not-pdf", b"%PDF-1.4 not really a pdf", "application/pdf"),
        ("empty", b"", HTML),
        ("whitespace", b"   \n\t  ", HTML),
        ("br-and-blocks", b"<html><body><p>a<br>b<br/>c</p><div>d<span>e</span><div>f</div>g"
         b"</div><li>h</li><td>i</td><th>j</th><pre>k\n  l</pre><textarea>m\nn</textarea>"
         b"<select><option>o</option></select><label>p</label><input value=q></body></html>",
         HTML),
        ("uppercase-tags", b"<HTML><BODY><NAV>N</NAV><MAIN><P>Upper</P><ASIDE>A</ASIDE>"
         b"</MAIN></BODY></HTML>", HTML),
        ("entities", b"<html><body><p>&lt;script&gt;x&lt;/script&gt; &nbsp;&nbsp; a&#x2028;b "
         b"&#133; c&#x85;d</p></body></html>", HTML),
        ("template-and-svg", b"<html><body><template><p>T</p><input type=password></template>"
         b"<svg><text>S</text></svg><math><mi>M</mi></math><p>kept</p></body></html>", HTML),
        ("password-variants", b"<html><body><input type=PASSWORD><input type='password '>"
         b"<input type=PassWord><input type=text><p>x</p></body></html>", HTML),
        ("multiple-articles-tie", b"<html><body><article><p>" + b"one " * 30 + b"</p></article>"
         b"<article><p>" + b"two " * 30 + b"</p></article><p>" + b"x " * 10 + b"</p>"
         b"</body></html>", HTML),
        ("article-footers", b"<html><body><main><article><p>" + b"body " * 40 + b"</p><footer>"
         b"ARTICLE-FOOTER</footer></article><footer>MAIN-FOOTER</footer><header>H</header>"
         b"</main></body></html>", HTML),
    ]
    return out


def fixtures() -> list[tuple[str, bytes, str | None]]:
    """HTML literals from the tests and the pages under ``tests/data``."""
    out: list[tuple[str, bytes, str | None]] = []
    seen: set[bytes] = set()
    for path in sorted((ROOT / "tests").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str | bytes):
                continue
            value = node.value
            body = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
            if body in seen or not _LOOKS_HTML.search(body.decode("latin-1")):
                continue
            seen.add(body)
            out.append((f"{path.stem}:{node.lineno}", body, HTML))
    for path in sorted((ROOT / "tests" / "data").rglob("*")):
        if path.suffix.lower() in (".html", ".htm", ".xhtml"):
            out.append((str(path.relative_to(ROOT)), path.read_bytes(), "text/html"))
    return out


def news_pages() -> list[tuple[str, bytes, str | None]]:
    """Generated news pages in every layout and language, 5 KB to 300 KB."""
    out: list[tuple[str, bytes, str | None]] = []
    seed = 0
    layouts = ("main", "article", "divs", "teaser", "listing", "login", "error")
    for size in (5_000, 20_000, 60_000, 300_000):
        for lang in ("en", "ru", "kk"):
            for layout in layouts:
                if layout in ("login", "error") and size > 5_000:
                    continue
                seed += 1
                out.append((f"news-{layout}-{lang}-{size // 1000}k",
                            news_page(seed, size, lang, layout), HTML))
    return out


def corpus() -> list[tuple[str, bytes, str | None]]:
    """All of the above, fixtures first."""
    return [*fixtures(), *news_pages(), ("capture-bench-20k", capture_bench_page(), "text/html"),
            *pathological()]
