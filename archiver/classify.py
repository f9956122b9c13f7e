"""A link's health verdict from what was fetched: ``FetchResult`` (+ probe) → ``Judgement``.

A status code is not a verdict. A 200 can be a login form, an error page, a parking page or a
bot challenge; a redirect can be an article's new address or the site's way of saying "gone".
``classify`` reads the whole fetch (status, redirect chain, headers, the page itself and,
where the pipeline probed the site, what a certainly-missing address on it answers) and says
which verdict of ``CONTRACT.md`` applies, with a short reason a reader can act on.

Pure: no I/O, no clock, never raises. The rules, first match wins:

1. No HTTP answer (``FetchFailure``): its own verdict and reason, passed through.
2. A chain that ends on a login address (``/login``, ``/accounts/login``, ``checkpoint``,
   ``signin``, ``authwall``, ...) → ``login_wall``, whatever the final status.
3. A redirect to a domain marketplace, or a parking page → ``parked``.
4. A bot challenge (Cloudflare "Just a moment...", "Attention Required!", ``cf-chl``,
   DDoS-Guard, captcha walls) → ``blocked``, at any status.
5. Status: 404 ``not_found``, 410 ``gone``, 401/403/451 and other refusals ``blocked``,
   429 ``blocked``, 5xx ``server_error``, an unfinished redirect chain ``blocked``.
6. A 2xx that is a password form and little else, or a short page that only asks the reader
   to log in ("You must log in to continue", "Войдите, чтобы ...") → ``login_wall``.
7. A 2xx reached by redirecting from a deeper address to the site's home page or to a parent
   section, or to an error page → ``soft_404``.
8. The probe: the random address answered 2xx with the same text (``looks_same`` ≥
   ``SAME_PAGE_THRESHOLD``), or redirected to where this page's redirects ended → ``soft_404``.
9. Not-found wording in the title or main heading (English, Russian, Kazakh), or a short page
   that says so → ``soft_404``. Words in an article's body do not count.
10. Otherwise ``ok``, or ``redirected`` when the page now lives at another address. A redirect
    that changes only the scheme, ``www.``, the default port or a trailing slash is ``ok``:
    the cited address still leads to the same page without a reader noticing.

A capture whose body was cut (``Capture.truncated``: over ``max_body``, the deadline or a
stall, a connection closed before the end) is never healthy: what would be ``ok`` or
``redirected`` is ``incomplete``, and every verdict's reason says how the body was cut
("answers 200 with content, but the capture is incomplete: body cut at 100 of 1000 bytes
(connection closed)").

``blocked`` reasons always say that the page may still be there for readers: the site
refused the archiver, which is not evidence that the page is gone.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

from archiver.hosts import HostError, address_of, parse_host
from archiver.models import Capture, FetchFailure, FetchResult, Judgement, Verdict
from archiver.pagetext import PageText, decode, extract
from archiver.soft404 import SAME_PAGE_THRESHOLD, ProbeOutcome, looks_same

__all__ = ["classify"]

NOT_DEAD = "the page may still be there for readers"

# Markers are looked for in the first part of the markup only: challenge and parking pages
# are small, and scanning megabytes of a real page for them is slow and invites accidents.
_SCAN_LIMIT = 256 * 1024
# A page with less main text than this is "little else" besides a form or a message.
_SHORT_PAGE = 600


def classify(
    result: FetchResult,
    *,
    probe: ProbeOutcome | None = None,
    cited_url: str | None = None,
    page: PageText | None = None,
) -> Judgement:
    """Judge one fetch.

    ``result``: the fetch of the cited URL. ``probe``: the soft-404 probe's outcome for that
    URL's host and directory (``archiver.soft404``), if the pipeline probed. ``cited_url``: the
    URL as cited, when it differs from ``result.url`` (a fragment, for instance); redirects are
    judged against it. ``page``: ``pagetext.extract`` of ``result``'s body, if the caller
    already has it (it is computed otherwise). Returns a ``Judgement`` with a short reason.
    Never raises.
    """
    if isinstance(result, FetchFailure):
        return Judgement(result.verdict, result.reason or result.verdict.value.replace("_", " "))
    if not isinstance(result, Capture):
        return Judgement(Verdict.INVALID_URL, "nothing was fetched")
    return _Reading(result, probe, cited_url or result.url, page).judge()


class _Reading:
    """One capture, read lazily: the page is parsed only if a rule needs it."""

    def __init__(self, capture: Capture, probe: ProbeOutcome | None, cited: str,
                 page: PageText | None) -> None:
        self.capture = capture
        self.probe = probe
        self.cited = cited
        self._page = page
        self._markup: str | None = None

    @property
    def page(self) -> PageText:
        if self._page is None:
            c = self.capture
            self._page = extract(c.content, c.content_type, c.final_url)
        return self._page

    @property
    def markup(self) -> str:
        """The start of the body as lowercase text, for marker search."""
        if self._markup is None:
            c = self.capture
            self._markup = decode(c.content[:_SCAN_LIMIT], c.content_type).lower()
        return self._markup

    def judge(self) -> Judgement:
        found = self._judge()
        cut = _incomplete(self.capture)
        if cut is None:
            return found
        if found.verdict.healthy:
            # What we hold is not the whole page: never the evidence of a healthy link.
            return Judgement(Verdict.INCOMPLETE,
                             f"{found.reason}, but the capture is incomplete: {cut}")
        return Judgement(found.verdict, f"{found.reason}; the capture is incomplete: {cut}")

    def _judge(self) -> Judgement:
        c = self.capture
        status = c.status
        for rule in (self._login_address, self._parked, self._challenge):
            found = rule()
            if found is not None:
                return found
        if not 200 <= status < 300:
            return _by_status(c)
        for rule in (self._password_form, self._redirected_away, self._probe_says,
                     self._not_found_wording):
            found = rule()
            if found is not None:
                return found
        return self._healthy()

    # ── rules ────────────────────────────────────────────────────────────────

    def _login_address(self) -> Judgement | None:
        c = self.capture
        if c.status in (404, 410) or _is_login_url(self.cited):
            return None
        if c.final_url != self.cited and _is_login_url(c.final_url):
            return Judgement(Verdict.LOGIN_WALL,
                             f"redirected to a login page ({_short(c.final_url)})")
        if 300 <= c.status < 400:
            location = c.header("location") or ""
            if location and _is_login_url(location):
                return Judgement(Verdict.LOGIN_WALL,
                                 f"redirects to a login page ({_short(location)})")
        return None

    def _parked(self) -> Judgement | None:
        c = self.capture
        for hop in c.hops[1:]:
            host = _host(hop.url)
            if _matches_host(host, _MARKETPLACE_HOSTS):
                return Judgement(Verdict.PARKED,
                                 f"redirected to a domain marketplace ({host})")
        if not (200 <= c.status < 300 or c.status in (403, 404)) or not self.page.html:
            return None
        title = self.page.title or ""
        size = len(self.page.text)
        in_title = _PARKED_PHRASE.search(title) if _may_say_parked(title) else None
        # A parking page has next to no text of its own; an article may quote the phrases.
        in_text = _PARKED_PHRASE.search(self.page.text) if size < _SHORT_PAGE else None
        found = in_title or in_text
        if found:
            return Judgement(Verdict.PARKED,
                             f"the domain is parked or for sale (\"{_clip(found.group(0))}\")")
        if size >= 1500:  # a parking service's script on a page with text of its own
            return None
        service = next((s for s in _PARKING_SERVICES if s in self.markup), None)
        if service:
            return Judgement(Verdict.PARKED,
                             f"the domain is parked or for sale (\"{_clip(service)}\")")
        return None

    def _challenge(self) -> Judgement | None:
        c = self.capture
        if c.status < 200 or (300 <= c.status < 400):
            return None
        why = _challenge_marker(c, self)
        if why is None:
            return None
        return Judgement(Verdict.BLOCKED,
                         f"the site refused the archiver ({why}; HTTP {c.status}); {NOT_DEAD}")

    def _password_form(self) -> Judgement | None:
        page = self.page
        if not page.html:
            return None
        size = len(page.text)
        # The title and heading are searched for login wording only on a page with a
        # password field that is not short already (most pages have none).
        if page.password_fields and (
                size < _SHORT_PAGE
                or (size < 3 * _SHORT_PAGE and (
                    _LOGIN_WORDING.search(page.title or "") is not None
                    or _LOGIN_WORDING.search(page.heading or "") is not None))):
            return Judgement(Verdict.LOGIN_WALL,
                             "the page is a login form instead of the content")
        # Script-rendered walls (Facebook, Instagram) send no form to a robot, only the words.
        if size < _SHORT_PAGE:
            said = _LOGIN_REQUIRED.search(f"{page.title or ''}\n{page.text}")
            if said:
                return Judgement(Verdict.LOGIN_WALL,
                                 f"the page asks to log in (\"{_clip(said.group(0))}\")")
        return None

    def _redirected_away(self) -> Judgement | None:
        c = self.capture
        if not c.redirected or _same_address(self.cited, c.final_url):
            return None
        cited, final = _parts(self.cited), _parts(c.final_url)
        if cited is None or final is None:
            return None
        cited_path = _norm_path(cited.path)
        final_path = _norm_path(final.path)
        if _is_home(final_path) and not final.query and not _is_home(cited_path):
            where = "the site's home page" if _same_site(cited, final) else (
                f"the home page of {final.hostname}")
            return Judgement(Verdict.SOFT_404, f"redirected to {where}")
        if _ERROR_PATH.search(final.path) and not _ERROR_PATH.search(cited.path):
            return Judgement(Verdict.SOFT_404,
                             f"redirected to an error page ({_short(c.final_url)})")
        if (_same_site(cited, final) and final_path != cited_path
                and cited_path.startswith(final_path.rstrip("/") + "/") and not final.query):
            return Judgement(Verdict.SOFT_404,
                             f"redirected up to a section page ({final.path or '/'}) "
                             "instead of the cited page")
        return None

    def _probe_says(self) -> Judgement | None:
        probe, c = self.probe, self.capture
        if probe is None or probe.status is None:
            return None
        if (c.redirected and probe.redirected and probe.final_url
                and not _same_address(self.cited, c.final_url)
                and _same_address(probe.final_url, c.final_url)):
            return Judgement(Verdict.SOFT_404,
                             "redirected to the same page a random address on this site "
                             f"is sent to ({_short(c.final_url)})")
        if (probe.final_url and _same_address(probe.final_url, c.final_url)
                and _same_address(self.cited, c.final_url)):
            # The site resolved the random address to this very page (it routes by an id
            # earlier in the path and ignores the rest): no evidence of anything.
            return None
        if not probe.answered_ok:
            return None
        similarity = looks_same(self.page.text, probe.text)
        if similarity >= SAME_PAGE_THRESHOLD and _titles_agree(self.page.title, probe.title):
            return Judgement(Verdict.SOFT_404,
                             "a random path on this host answers with the same page "
                             f"(similarity {similarity:.2f})")
        return None

    def _not_found_wording(self) -> Judgement | None:
        page = self.page
        if not page.html and page.kind != "text":
            return None
        for label, value in (("title", page.title), ("heading", page.heading)):
            if value and _says_not_found(value):
                return Judgement(Verdict.SOFT_404,
                                 f"answers {self.capture.status} but its {label} says "
                                 f"\"{_clip(value)}\"")
        text = page.text
        if len(text) < _SHORT_PAGE:
            found = _NOT_FOUND_SENTENCE.search(text.lower())
            if found:
                return Judgement(Verdict.SOFT_404,
                                 f"answers {self.capture.status} but the page only says "
                                 f"\"{_clip(found.group(0))}\"")
        return None

    def _healthy(self) -> Judgement:
        c = self.capture
        if c.redirected and not _same_address(self.cited, c.final_url):
            cited, final = _parts(self.cited), _parts(c.final_url)
            permanent = any(h.status in (301, 308) for h in c.hops[:-1])
            how = "moved permanently" if permanent else "redirected"
            if cited is not None and final is not None and not _same_site(cited, final):
                return Judgement(Verdict.REDIRECTED,
                                 f"{how} to another site: {_short(c.final_url)}")
            return Judgement(Verdict.REDIRECTED, f"{how} to {_short(c.final_url)}")
        note = " after a redirect to the same address" if c.redirected else ""
        if self.probe is not None and self.probe.answered_missing:
            note += f"; a random path on this host answers {self.probe.status}"
        return Judgement(Verdict.OK, f"answers {c.status} with content{note}")


# ── truncation ───────────────────────────────────────────────────────────────

_CUT_BY = {"length": "over the max_body limit", "time": "deadline or stall",
           "disconnect": "connection closed"}


def _incomplete(c: Capture) -> str | None:
    """How the capture's body was cut ("body cut at 100 of 1000 bytes (connection closed)"),
    ``None`` when it is whole."""
    if c.truncated is None:
        return None
    got = c.body_bytes
    announced = c.header("content-length")
    size = f"{got} bytes"
    if announced is not None and announced.strip().isascii() \
            and announced.strip().isdigit() and int(announced) > got:
        size = f"{got} of {int(announced)} bytes"
    return f"body cut at {size} ({_CUT_BY.get(c.truncated, c.truncated)})"


# ── status codes ─────────────────────────────────────────────────────────────

_STATUS_WORDS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 409: "Conflict",
    412: "Precondition Failed", 418: "I'm a teapot", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _by_status(c: Capture) -> Judgement:
    status = c.status
    words = _STATUS_WORDS.get(status, "")
    code = f"HTTP {status}{' ' + words if words else ''}"
    tries = f" after {c.attempts} attempts" if c.attempts > 1 else ""
    if status == 404:
        return Judgement(Verdict.NOT_FOUND, "the site says the page does not exist (HTTP 404)")
    if status == 410:
        return Judgement(Verdict.GONE, "the site says the page was removed for good (HTTP 410)")
    if status == 429:
        return Judgement(Verdict.BLOCKED,
                         f"the site kept rate-limiting the archiver (HTTP 429{tries}); {NOT_DEAD}")
    if status == 451:
        return Judgement(Verdict.BLOCKED,
                         f"the site withholds the page for legal reasons ({code}); {NOT_DEAD} "
                         "elsewhere")
    if status in (401, 407):
        return Judgement(Verdict.BLOCKED,
                         f"the site asks for credentials ({code}); {NOT_DEAD} with an account")
    if status == 999:  # LinkedIn's answer to anything that looks automated
        return Judgement(Verdict.BLOCKED, f"the site refused the archiver (HTTP 999); {NOT_DEAD}")
    if 400 <= status < 500:
        return Judgement(Verdict.BLOCKED, f"the site refused the archiver ({code}); {NOT_DEAD}")
    if 500 <= status < 600:
        return Judgement(Verdict.SERVER_ERROR, f"the server failed ({code}{tries})")
    if 300 <= status < 400:
        # The fetcher follows redirects; a chain that ends on one was cut (a loop, too many
        # hops, no Location). Sites that demand cookies loop like this for every robot.
        return Judgement(Verdict.BLOCKED,
                         f"the redirects never reached a page ({code}); {NOT_DEAD}")
    return Judgement(Verdict.SERVER_ERROR, f"the server answered with an invalid status ({status})")


# ── login walls ──────────────────────────────────────────────────────────────

# Path segments (exact, case-insensitive) that name a login step.
_LOGIN_SEGMENTS = frozenset({
    "login", "log-in", "log_in", "logon", "signin", "sign-in", "sign_in", "authwall",
    "checkpoint", "auth", "authenticate", "oauth", "oauth2", "sso", "cas", "servicelogin",
    "login.php", "wp-login.php", "login.aspx", "login.jsp", "login.html", "signin.aspx",
    "signin.html", "logon.aspx", "accountlogin", "uas",
})
_LOGIN_PATHS = re.compile(
    r"/(?:accounts?|users?|members?|session|sessions|i/flow)/(?:login|sign[_-]?in|new)\b", re.I)
_LOGIN_HOSTS = ("login.", "signin.", "auth.", "sso.", "accounts.google.", "idp.")
_LOGIN_REQUIRED = re.compile(
    r"you\s+must\s+log\s*in(?:\s+to\s+continue)?|(?:log|sign)\s*in\s+to\s+(?:continue|see|view)|"
    r"log\s*in(?:to)?\s+(?:to\s+)?facebook|log\s+in\s+or\s+sign\s+up|login\s+•\s+instagram|"
    r"please\s+(?:log|sign)\s*in|войдите,?\s+чтобы|необходимо\s+(?:войти|авторизоваться)|"
    r"требуется\s+авторизация|войдите\s+(?:в\s+(?:аккаунт|систему)|на\s+сайт)|"
    r"жүйеге\s+кіріңіз",
    re.I,
)
_LOGIN_WORDING = re.compile(
    r"\b(?:log\s*in|login|sign\s*in|sign\s*up|log\s*on)\b|войти|вход(?:\s|$)|авториз|"
    r"регистрац|кіру|жүйеге\s+кіру",
    re.I,
)


def _is_login_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if host.startswith(_LOGIN_HOSTS):
        return True
    path = parts.path.lower()
    if _LOGIN_PATHS.search(path):
        return True
    return any(seg in _LOGIN_SEGMENTS for seg in path.split("/") if seg)


# ── parking ──────────────────────────────────────────────────────────────────

_MARKETPLACE_HOSTS = (
    "sedo.com", "sedoparking.com", "dan.com", "afternic.com", "hugedomains.com",
    "bodis.com", "parkingcrew.net", "above.com", "buydomains.com", "undeveloped.com",
    "domainmarket.com", "atom.com", "squadhelp.com", "sav.com", "uniregistry.com",
    "domainnamesales.com", "efty.com", "parklogic.com", "fabulous.com", "domainlore.com",
)
# Strong on their own in a page's title, or in a short page.
_PARKED_PHRASE = re.compile(
    r"(?:this\s+)?domain(?:\s+name)?(?:\s+[\w.-]+)?\s+(?:may\s+be|is)\s+for\s+sale|"
    r"buy\s+this\s+domain|domain\s+for\s+sale|(?:this\s+)?domain\s+is\s+parked|"
    r"parked\s+free,?\s+courtesy\s+of\s+godaddy|this\s+web\s*page\s+is\s+parked|"
    r"домен(?:ное\s+имя)?(?:\s+[\w.-]+)?\s+(?:продается|продаётся|выставлен\s+на\s+продажу)|"
    r"домен\s+припаркован|домен\s+сатылады",
    re.I,
)
# Every alternative of _PARKED_PHRASE holds one of these words: a title without them (most
# titles) is not searched with the whole pattern. The same flags, so that the hint matches
# wherever the phrase would; an ASCII title, where re.I is plain lowercasing, needs no regex.
_PARKED_HINT = re.compile("domain|parked|домен", re.I)


def _may_say_parked(title: str) -> bool:
    """False when ``_PARKED_PHRASE`` cannot match in ``title``."""
    if title.isascii():
        low = title.lower()
        return "domain" in low or "parked" in low
    return _PARKED_HINT.search(title) is not None


# Scripts, images and links of parking services: they betray a parking page in its markup.
_PARKING_SERVICES = (
    "sedoparking.com", "parkingcrew.net", "bodis.com", "dan.com/buy-domain", "afternic.com",
    "park.above.com", "parklogic.com", "godaddy.com/domainfind", "domainmarket.com",
    "hugedomains.com", "wsimg.com/parking", "sedo.com/search/details",
)


def _matches_host(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


# ── bot challenges ───────────────────────────────────────────────────────────

# (marker in the markup or title, what it is). Strong: they appear only on challenge pages.
_CHALLENGE_STRONG = (
    ("cf-chl", "a Cloudflare bot challenge"),
    ("cf_chl_opt", "a Cloudflare bot challenge"),
    ("/cdn-cgi/challenge-platform/", "a Cloudflare bot challenge"),
    ("cf-browser-verification", "a Cloudflare bot challenge"),
    ("attention required! | cloudflare", "a Cloudflare block page"),
    ("ddos-guard", "a DDoS-Guard bot challenge"),
    ("checking your browser before accessing", "a bot challenge"),
    ("_incapsula_resource", "an Incapsula bot challenge"),
    ("incapsula incident id", "an Incapsula block page"),
    ("captcha-delivery.com", "a DataDome captcha"),
    ("px-captcha", "a PerimeterX captcha"),
    ("sucuri website firewall", "a Sucuri firewall block page"),
    ("errors.edgesuite.net", "an Akamai block page"),
    ("/showcaptcha", "a Yandex captcha"),
    ("awswaf", "an AWS WAF challenge"),
)
_CHALLENGE_TITLES = re.compile(
    r"^\s*(?:(?P<cf>just a moment\.*|один момент\.*|attention required!?.*)|"
    r"please wait\.*|access denied|ddos-guard|checking your browser.*|security check|"
    r"are you a robot\??|вы не робот\??|captcha|доступ запрещ[её]н|verify you are human)\s*$",
    re.I,
)
# Weak: a captcha widget on an ordinary page (a comment form) is not a wall, and a 404 page
# with a captcha-guarded search box is still a 404.
_CAPTCHA_WEAK = ("g-recaptcha", "h-captcha", "hcaptcha.com", "recaptcha/api", "captcha",
                 "verify you are human", "are you a robot", "not a robot", "не робот")
_WEAK_STATUSES = frozenset({200, 202, 401, 403, 405, 429, 503})


def _challenge_marker(c: Capture, reading: _Reading) -> str | None:
    # ``reading.markup`` decodes the body again: read only where a rule needs it.
    if (c.header("cf-mitigated") or "").lower() == "challenge":
        return "a Cloudflare bot challenge"
    page = reading.page
    if not page.html and page.kind != "text":
        return None
    server = (c.header("server") or "").lower()
    titled = _CHALLENGE_TITLES.match(page.title or "")
    if titled:
        if titled.group("cf") and ("cloudflare" in server or "cloudflare" in reading.markup):
            return "a Cloudflare bot challenge"
        return "a bot challenge" if titled.group("cf") else "a bot challenge or block page"
    # A real page may link to a vendor's site; on a 2xx only a short page is a wall.
    if not (200 <= c.status < 300 and len(page.text) >= _SHORT_PAGE):
        markup = reading.markup
        for marker, what in _CHALLENGE_STRONG:
            if marker in markup:
                return what
    if c.status in _WEAK_STATUSES and len(page.text) < _SHORT_PAGE // 2 and any(
            m in reading.markup for m in _CAPTCHA_WEAK):
        if server in ("ddos-guard", "cloudflare"):
            return f"a {'DDoS-Guard' if server == 'ddos-guard' else 'Cloudflare'} captcha"
        return "a captcha page"
    return None


# ── soft 404 ─────────────────────────────────────────────────────────────────

_NF_PHRASE = re.compile(
    r"(?:"
    # English
    r"(?:the\s+)?(?:page|file|document|article|content|post|story|item|video|resource)\s+"
    r"(?:was\s+|is\s+)?not\s+found|not\s+found|file\s+or\s+directory\s+not\s+found|"
    r"(?:the\s+)?page\s+(?:does\s+not|doesn't|doesn’t)\s+exist|"
    r"(?:the\s+)?page\s+(?:you\s+(?:requested|are\s+looking\s+for)\s+)?"
    r"(?:could\s+not|cannot|can't|can’t|couldn't)\s+be\s+found|"
    r"(?:sorry,?\s+)?(?:we\s+)?(?:couldn't|could\s+not|can't|can’t|cannot)\s+find\s+"
    r"(?:that|this|the)\s+page|"
    r"nothing\s+(?:was\s+)?found|page\s+unavailable|"
    r"(?:sorry,?\s+)?(?:this\s+)?(?:page|content)\s+(?:isn't|isn’t|is\s+not)\s+available"
    r"(?:\s+(?:right\s+now|at\s+the\s+moment))?|"
    r"(?:this\s+)?page\s+(?:has\s+been\s+)?removed|"
    # Russian
    r"(?:запрашиваемая\s+|такой\s+)?страница\s+не\s+(?:найдена|существует)|"
    r"(?:документ|материал|файл)\s+не\s+найден|"
    r"(?:статья|новость|запись|публикация)\s+не\s+найдена|"
    r"ничего\s+не\s+найдено|не\s+найдено|страница\s+(?:удалена|недоступна)|"
    r"(?:этот\s+)?(?:контент|материал)\s+(?:сейчас\s+)?недоступен|"
    # Kazakh
    r"(?:бет|парақ|бетше|мақала|құжат)\s+табылмады|"
    r"(?:ештеңе|ешнәрсе|ештеме)\s+табылмады|табылмады"
    r")",
    re.I,
)
# "404", "Error 404", "Ошибка 404", "404 қате", "HTTP 404": the number with its error word.
_NF_CODE = re.compile(
    r"(?:(?:http|error|ошибка|қате)\s*)?(?<!\d)404(?!\d)(?:\s*(?:error|ошибка|қате))?", re.I)
# Every alternative of _NF_PHRASE holds one of these words ("404" is _NF_CODE's): a
# lowercased label without any of them cannot announce an error page, unless it holds one of
# the lowercase letters re.I takes for another letter of the words (dotless i, long s, the
# narrow forms of Cyrillic д, о, с, т; tests check the list against re.I itself).
_NF_WORDS = ("found", "exist", "find", "available", "removed", "страница", "найден",
             "недоступен", "табылмады", "404")
_NF_ODD_CASE = re.compile("[\u0131\u017f\u1c81-\u1c85]")
_TITLE_SEPARATORS = re.compile(r"\s+[|·•»«–—-]+\s+|\s*::\s*|\s*\|\s*")
_SEGMENT_TRIM = " \t.!?:;,()[]\"'«»“”-–—"
# In a short page's text, only unambiguous sentences count.
_NOT_FOUND_SENTENCE = re.compile(
    r"page\s+(?:was\s+)?not\s+found|page\s+(?:does\s+not|doesn't|doesn’t)\s+exist|"
    r"(?:could\s+not|couldn't|can't|cannot)\s+(?:be\s+found|find\s+(?:that|this|the)\s+page)|"
    r"(?:page|content)\s+(?:isn't|isn’t|is\s+not)\s+available|"
    r"страница\s+не\s+(?:найдена|существует)|ничего\s+не\s+найдено|"
    r"(?:документ|материал)\s+не\s+найден|(?:бет|парақ)\s+табылмады",
    re.I,
)


def _says_not_found(label: str) -> bool:
    """Whether a title or heading announces an error page. Some part of a "Part | Site"
    title must be nothing but not-found wording and/or "404", so "Article 404 of the
    Criminal Code" or "Bodies not found, says prosecutor" do not count."""
    low = label.strip().lower()
    # Most labels hold none of the words: they are not split and matched.
    if not any(word in low for word in _NF_WORDS) and _NF_ODD_CASE.search(low) is None:
        return False
    for segment in _TITLE_SEPARATORS.split(low):
        segment = segment.strip(_SEGMENT_TRIM)
        if not segment:
            continue
        # _NF_CODE cannot match without the digits "404": most labels skip both passes.
        has_code = "404" in segment and bool(_NF_CODE.search(segment))
        rest = " ".join((_NF_CODE.sub(" ", segment) if has_code else segment).split()
                        ).strip(_SEGMENT_TRIM)
        if not rest:
            if has_code:
                return True
            continue
        if _NF_PHRASE.fullmatch(rest):
            return True
    return False


# ── addresses ────────────────────────────────────────────────────────────────

_ERROR_PATH = re.compile(
    r"/(?:404|error|errors|not[-_]?found|page[-_]?not[-_]?found|404\.html?|error\.html?|"
    r"notfound\.aspx|error404)(?:[/._]|$)", re.I)
_LANGUAGE_ROOT = re.compile(r"^/(?:[a-z]{2}(?:[-_][a-z]{2})?|rus|eng|kaz|index\.\w+)/?$", re.I)


def _parts(url: str):  # type: ignore[no-untyped-def]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port, which _parts turns into None
    except ValueError:
        return None
    return parts


def _host(url: str) -> str:
    parts = _parts(url)
    return (parts.hostname or "").lower() if parts is not None else ""


@functools.lru_cache(maxsize=1024)  # a run's pages name few hosts, each many times
def _site(host: str) -> str:
    # The host as browsers read it: Example.COM., ex%61mple.com and example.com are one site,
    # as are 127.1 and 127.0.0.1 (the fetcher requests the parsed form).
    parsed = address_of(host)
    if parsed is not None:
        return str(parsed)
    try:
        host = parse_host(host).name
    except HostError:
        host = host.lower()
    return host.removeprefix("www.").removeprefix("m.").removeprefix("web.")


def _same_site(a, b) -> bool:  # type: ignore[no-untyped-def]
    return _site(a.hostname or "") == _site(b.hostname or "")


def _norm_path(path: str) -> str:
    path = path or "/"
    return path if path.endswith("/") else path + "/"


def _is_home(path: str) -> bool:
    return path in ("/", "//") or bool(_LANGUAGE_ROOT.fullmatch(path))


def _same_address(a: str, b: str) -> bool:
    """Equal but for scheme, ``www.``, default port, a trailing slash and the fragment."""
    if a == b:
        return True  # the most common question (a page that was not redirected)
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None:
        return False
    # Path and query first: most addresses compared differ there, and the port and the
    # site take parsing.
    if _norm_path(pa.path) != _norm_path(pb.path) or pa.query != pb.query:
        return False

    def port(p) -> int | None:  # type: ignore[no-untyped-def]
        return p.port if p.port not in (80, 443) else None

    return port(pa) == port(pb) and _site(pa.hostname or "") == _site(pb.hostname or "")


def _titles_agree(a: str | None, b: str | None) -> bool:
    # A soft-404 site sends the same page, title included; two different pages that happen
    # to share their text (a two-word stub) but not their titles are not one page.
    if not a or not b:
        return True
    return looks_same(a, b) >= SAME_PAGE_THRESHOLD or a.strip().lower() == b.strip().lower()


def _short(url: str, n: int = 80) -> str:
    return url if len(url) <= n else url[: n - 1] + "…"


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
