"""A loopback web of pages that only a browser captures well, for ``tests/test_browse.py``.

``BrowserWeb(web)`` routes, on a ``tests.webserver.WebServer``:

* ``/static``: a plain article (the HTTP path is enough);
* ``/shell``: an app shell (an empty ``#root``, a ``<noscript>`` asking for JavaScript) whose
  article arrives by ``fetch()`` of ``/api/article.json``;
* ``/feed``: a list that loads more items (``/api/items?page=N`` JSON) as the reader scrolls,
  up to ``FEED_PAGES`` pages;
* ``/members/post``: redirects to ``/login`` unless the request carries the session cookie
  ``session=SECRET``; with it, the post (and a rotated ``Set-Cookie`` holding the secret);
* ``/login``: a login form;
* ``/sneaky``: a page whose script and image try to reach ``169.254.169.254`` and the
  loopback port ``forbidden_port`` (another server the guard must keep the page from).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.webserver import Reply, Request, WebServer

SECRET = "s3cr3t-session-7f1c2e9a"
ARTICLE_TITLE = "Appeal court upholds the activist's conviction"
ARTICLE_BODY = ("The appeal court upheld the conviction on 15 September, finding that the "
                "posts had played a negative role in the protests.")
FEED_PAGES = 4
FEED_ITEMS = 5  # per page
POST_TEXT = "Members-only post: the organisers were detained on 3 March."
HTML = {"Content-Type": "text/html; charset=utf-8"}

STATIC = (f"<!doctype html><html><head><title>Static report</title></head><body><main>"
          f"<h1>Static report</h1><p>{ARTICLE_BODY}</p><p>The report was published in "
          f"November and cites eleven court decisions from four regions.</p></main>"
          f"</body></html>").encode()

SHELL = (b"<!doctype html><html><head><title>News app</title>"
         b"<script src=\"/static/app.js\" defer></script></head><body>"
         b"<noscript>You need to enable JavaScript to run this app.</noscript>"
         b"<div id=\"root\"></div></body></html>")

APP_JS = (b"fetch('/api/article.json').then(r => r.json()).then(a => {"
          b" const root = document.getElementById('root');"
          b" root.innerHTML = '<article><h1></h1><p></p></article>';"
          b" root.querySelector('h1').textContent = a.title;"
          b" root.querySelector('p').textContent = a.body;"
          b" document.title = a.title; });")

FEED = (b"<!doctype html><html><head><title>Feed</title><style>"
        b".item{height:300px;border-bottom:1px solid #ccc}</style></head><body>"
        b"<h1>Feed</h1><div id=\"items\"></div><div id=\"end\">loading</div><script>"
        b"let page = 0, busy = false, done = false;"
        b"async function more() { if (busy || done) return; busy = true;"
        b" const r = await fetch('/api/items?page=' + (page + 1)); const d = await r.json();"
        b" page += 1; for (const t of d.items) { const e = document.createElement('div');"
        b" e.className = 'item'; e.textContent = t; document.getElementById('items')"
        b".appendChild(e); }"
        b" if (!d.more) { done = true;"
        b" document.getElementById('end').textContent = 'the end'; }"
        b" busy = false; if (d.more) check(); }"
        b"function check() { if (window.scrollY + window.innerHeight >="
        b" document.documentElement.scrollHeight - 200) more(); }"
        b"window.addEventListener('scroll', check); more();"
        b"</script></body></html>")

LOGIN = (b"<!doctype html><html><head><title>Log in</title></head><body><h1>Log in</h1>"
         b"<form method=\"post\" action=\"/login\"><input name=\"email\">"
         b"<input type=\"password\" name=\"password\"><button>Log in</button></form>"
         b"</body></html>")


def feed_item(page: int, n: int) -> str:
    return f"Feed item {page}.{n}"


class BrowserWeb:
    """Routes the pages above on ``web``; ``forbidden_port`` is a port the page must not
    reach (another loopback server)."""

    def __init__(self, web: WebServer, forbidden_port: int) -> None:
        self.web = web
        self.forbidden_port = forbidden_port
        web.route("/static", Reply(200, STATIC, HTML))
        web.route("/shell", Reply(200, SHELL, HTML))
        web.route("/static/app.js", Reply(200, APP_JS,
                                          {"Content-Type": "application/javascript"}))
        web.route("/api/article.json", Reply(200, json.dumps(
            {"title": ARTICLE_TITLE, "body": ARTICLE_BODY}).encode(),
            {"Content-Type": "application/json"}))
        web.route("/feed", Reply(200, FEED, HTML))
        web.route("/api/items", self._items)
        web.route("/members/post", self._members)
        web.route("/login", Reply(200, LOGIN, HTML))
        web.route("/sneaky", self._sneaky)

    def url(self, path: str) -> str:
        return self.web.url(path)

    @staticmethod
    def _items(req: Request) -> Reply:
        page = int(parse_qs(urlsplit(req.path).query).get("page", ["1"])[0])
        items = [feed_item(page, n) for n in range(1, FEED_ITEMS + 1)]
        return Reply(200, json.dumps({"items": items, "more": page < FEED_PAGES}).encode(),
                     {"Content-Type": "application/json"})

    @staticmethod
    def _members(req: Request) -> Reply:
        cookies = {k.lower(): v for k, v in req.headers.items()}.get("cookie", "")
        if f"session={SECRET}" not in cookies:
            return Reply(302, b"", {"Location": "/login?next=/members/post"})
        body = (f"<!doctype html><html><head><title>Members post</title></head><body><main>"
                f"<h1>Members post</h1><p>{POST_TEXT}</p><p>Posted by the human rights "
                f"centre, with photographs of the court building.</p></main></body>"
                f"</html>").encode()
        return Reply(200, body, [("Content-Type", "text/html; charset=utf-8"),
                                 ("Set-Cookie", f"session={SECRET}-rotated; Path=/; HttpOnly")])

    def _sneaky(self, req: Request) -> Reply:
        other = f"http://127.0.0.1:{self.forbidden_port}"
        body = (f"<!doctype html><html><head><title>Sneaky</title></head><body><main>"
                f"<h1>Sneaky page</h1><p>{ARTICLE_BODY}</p>"
                f"<img src=\"{other}/pixel.png\"><p id=\"out\">waiting</p></main><script>"
                f"Promise.allSettled([fetch('http://169.254.169.254/latest/meta-data/'),"
                f" fetch('{other}/admin')]).then(r => document.getElementById('out')"
                f".textContent = r.map(x => x.status).join(','));</script></body>"
                f"</html>").encode()
        return Reply(200, body, HTML)


def write_profile(path: Path, host: str = "127.0.0.1") -> Path:
    """A Playwright storage-state file holding the session cookie, as a user would export
    it with ``context.storage_state(path=...)``."""
    state = {"cookies": [{"name": "session", "value": SECRET, "domain": host, "path": "/",
                          "expires": -1, "httpOnly": True, "secure": False,
                          "sameSite": "Lax"}],
             "origins": []}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state), encoding="utf-8")
    return path
