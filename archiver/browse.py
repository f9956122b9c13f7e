"""Capture pages as a reader sees them: a real Chromium, driven through Playwright.

``Browser`` owns one Chromium process per run (started on first use), a fresh browser
context per capture, and at most ``[browser] pages`` pages open at once. Its record is
``BrowserCapture``; a capture that could not be made is a ``BrowserFailure`` value.

Every request the page makes goes through the archiver, not through Chromium's network
stack: ``context.route("**/*")`` hands each request to ``Browser._exchange``, which performs
it with the HTTP path's httpx clients over the address guard (``archiver.guard``: a page
cannot make the browser reach a loopback, private or link-local address unless
``allow_private_networks``), under the body cap and the page's deadline, writes its
``request``/``response`` records with the bytes as they came over the wire
(``Cookie``/``Authorization`` redacted by the writer, ``Set-Cookie`` values redacted here; a
POST keeps its body in its request record), and fulfils the page with the decoded body.
Playwright does not route the follow-up request of a redirect (microsoft/playwright#3994,
"as designed"), so a redirect is never handed to Chromium: a document's redirect becomes a
navigation the page makes again (routed), a subresource's redirect is followed here, hop by
hop, each hop archived.

Blocked: service workers (they would fetch outside the routes), downloads, popups (closed),
WebSockets (closed before connecting), permission prompts (none granted).

Reading the page: wait for the network to go quiet (``settle``), scroll to the end step by
step so lazy content loads (``scroll_steps``, ``scroll_time``), then a full-page PNG
screenshot (at most ``max_height`` pixels) and ``document.body.innerText``. They are written
as ``resource`` records ``urn:screenshot:URL`` (``image/png``) and ``urn:text:URL``
(``text/plain``), with a ``metadata`` record tying them to the page's document record.

``wanted(settings, ...)`` says whether a URL's HTTP capture should be replaced by a browser
capture (``mode``; app shells; login walls with a profile; listed hosts). ``unavailable()``
says why the browser cannot be used (Playwright not installed, Chromium not found), once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from archiver.config import BrowserProfile, BrowserSettings, FetchSettings, Settings
from archiver.errors import ArchiveError
from archiver.fetch import (
    REDIRECT_STATUSES,
    Fetcher,
    PhaseTrace,
    _digest_of,
    _fetchable,
    _invalid,
    _next_url,
    _raw_headers,
    _remote_ip,
    _request_head,
    _response_head,
    _spool,
    decode_body,
    network_failure,
)
from archiver.guard import AddressGuard
from archiver.models import (
    Capture,
    FetchResult,
    Hop,
    Judgement,
    Target,
    Verdict,
    WarcRef,
    utcnow,
)
from archiver.warc import WarcWriter

if TYPE_CHECKING:
    from archiver.catalog import Catalog
    from archiver.pagetext import PageText

__all__ = [
    "BROWSER_ARGS",
    "Browsed",
    "Browser",
    "BrowserCapture",
    "BrowserFailure",
    "BrowserStage",
    "app_shell_reason",
    "crop_png",
    "find_executable",
    "redact_set_cookie",
    "unavailable",
    "wanted",
]

log = logging.getLogger(__name__)

# What Chromium needs on a headless server: no sandbox (containers), no GPU, and none of its
# own background connections (they would be refused, and are no part of the capture). QUIC
# is off because every request goes through the archiver's HTTP client anyway.
BROWSER_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--mute-audio",
)
_QUIET = 0.5  # seconds without a request: the network has settled
_EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Request headers the HTTP client sets itself (or that name the connection, not the request).
_HOP_BY_HOP = frozenset({"host", "connection", "content-length", "keep-alive",
                         "transfer-encoding", "upgrade", "proxy-connection", "te"})
# Response headers that describe the wire form; the page is given the decoded body.
_WIRE_ONLY = frozenset({"content-encoding", "content-length", "transfer-encoding",
                        "connection", "keep-alive"})


# ── records ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class BrowserCapture:
    """One page captured in the browser.

    ``hops`` are the document's exchanges as archived (redirects, then the page), each with
    its ``WarcRef``; ``status``/``final_url`` are the page's. ``html`` is the rendered DOM
    (UTF-8), ``text`` the rendered text as a reader sees it (``innerText``). ``screenshot``
    and ``text_record`` are the resource records; ``resources`` counts the exchanges the page
    made; ``refused`` names requests the guard refused. ``profile`` says a logged-in profile
    was used. ``height`` is the page's full height in CSS pixels, ``shot_height`` the
    screenshot's (cut at ``max_height``).
    """

    url: str
    final_url: str
    status: int
    hops: tuple[Hop, ...]
    html: bytes
    text: str
    title: str
    payload_digest: str
    captured_at: datetime
    screenshot: WarcRef | None
    text_record: WarcRef | None
    resources: int = 0
    refused: tuple[str, ...] = ()
    profile: bool = False
    height: int = 0
    shot_height: int = 0
    elapsed: float = 0.0

    def as_capture(self, attempts: int = 1) -> Capture:
        """The page as a ``Capture`` for judging and the catalog: the document's records,
        the rendered DOM as content, the document's payload digest."""
        return Capture(
            url=self.url,
            final_url=self.final_url,
            status=self.status,
            hops=self.hops,
            content=self.html,
            content_type="text/html; charset=utf-8",
            payload_digest=self.payload_digest,
            captured_at=self.captured_at,
            attempts=attempts,
            elapsed=self.elapsed,
        )


@dataclass(frozen=True)
class BrowserFailure:
    """A browser capture that could not be made (the page did not load, the guard refused
    its address, the deadline passed); the HTTP capture stands."""

    url: str
    reason: str


# ── availability and choice ──────────────────────────────────────────────────


def find_executable(settings: BrowserSettings) -> str | None:
    """The Chromium to launch: ``executable`` if set (a path or a name on PATH), else the
    first of chromium, chromium-browser, google-chrome on PATH; ``None`` if none exists."""
    if settings.executable:
        candidate = Path(settings.executable).expanduser()
        if candidate.is_file():
            return str(candidate)
        return shutil.which(settings.executable)
    for name in _EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    return None


def unavailable(settings: BrowserSettings) -> str | None:
    """Why browser captures cannot be made here, or ``None`` when they can."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install 'archiver[browser]')"
    if find_executable(settings) is None:
        named = settings.executable or "chromium"
        return f"no Chromium found ({named!r}; install Debian's chromium or set " \
               "[browser] executable)"
    return None


_ROOT_IDS = ("root", "app", "__next", "__nuxt", "___gatsby", "app-root", "main-app", "svelte")
_NOSCRIPT_JS = re.compile(r"(enable|turn on|requires?|need)\b[^<]{0,40}javascript|"
                          r"javascript\b[^<]{0,40}(required|enabled|disabled)", re.I)


_NOSCRIPT_TAG = re.compile(rb"<noscript", re.IGNORECASE)


def app_shell_reason(html: bytes, text: str) -> str | None:
    """Why an HTML page looks like an app shell (its content arrives by script), or ``None``.

    Signs: a ``<noscript>`` asking for JavaScript; or little visible text together with an
    empty root element that scripts fill (``#root``, ``#app``, ``#__next``, ...) or with
    scripts and next to no text at all.
    """
    from lxml import html as lxml_html

    # Most pages are settled without parsing them again: plenty of visible text and no
    # <noscript>. The visible length is only compared with 400 (and 40), so a head of the
    # text will do unless that head is mostly whitespace: a head's collapsed length is never
    # more than the whole's, and a page's text reaches 400 in its first 1,000 characters.
    visible = len(" ".join(text[:1000].split()))
    if visible < 400:
        head = text[:4000]
        visible = len(" ".join(head.split()))
        if visible < 400 and len(head) < len(text):
            visible = len(" ".join(text.split()))
    if visible >= 400 and not _NOSCRIPT_TAG.search(html[:2_000_000]):
        return None
    try:
        doc = lxml_html.fromstring(html[:2_000_000] or b"<html></html>")
    except (ValueError, TypeError, lxml_html.etree.ParserError):
        return None
    for node in doc.iter("noscript"):
        if _NOSCRIPT_JS.search(node.text_content() or ""):
            return "a <noscript> asks for JavaScript"
    if visible >= 400:
        return None
    scripts = sum(1 for _ in doc.iter("script"))
    for root_id in _ROOT_IDS:
        found = doc.xpath(f'//*[@id="{root_id}"]')
        if found and len(" ".join(found[0].text_content().split())) < 40 and scripts:
            return f"its content arrives by script (empty #{root_id})"
    if scripts and visible < 40:
        return "its content arrives by script (scripts and no text)"
    return None


def wanted(
    settings: BrowserSettings,
    url: str,
    capture: Capture | None,
    page: PageText | None,
    judgement: Judgement,
) -> str | None:
    """Why ``url`` should be captured in the browser, or ``None`` to keep the HTTP capture.

    ``never``: never. ``always``: whenever the HTTP fetch got an HTML answer. ``auto``: an
    HTML page of a listed host; a login wall when a profile covers the host; an HTML page
    that looks like an app shell (``app_shell_reason``). A URL that got no answer at all
    (DNS, refused, private address) is never sent to the browser: it would get no further.
    """
    if settings.mode == "never" or capture is None:
        return None
    host = (urlsplit(capture.final_url).hostname or "").lower()
    cited_host = (urlsplit(url).hostname or "").lower()
    content_type = (capture.content_type or "").lower()
    page_like = "html" in content_type or not content_type
    # A PDF, an image, JSON: the HTTP capture is the document itself (Chromium would only
    # start a download).
    if settings.mode == "always" and page_like:
        return "[browser] mode is always"
    if (host in settings.hosts or cited_host in settings.hosts) and page_like:
        return "host listed in [browser] hosts"
    if judgement.verdict is Verdict.LOGIN_WALL and (
            settings.profile_for(cited_host) or settings.profile_for(host)):
        return "login wall, and a profile exists for the host"
    if capture.status < 300 and page_like:
        reason = app_shell_reason(capture.content, page.text if page else "")
        if reason:
            return f"app shell: {reason}"
    return None


def redact_set_cookie(head: bytes) -> bytes:
    """The response head with every ``Set-Cookie`` value replaced by ``[redacted]`` (the
    cookie's name kept), so that a session a site hands out never reaches the archive."""
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines[1:], start=1):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in (b"set-cookie", b"set-cookie2"):
            cookie = value.strip().split(b"=", 1)[0].split(b";", 1)[0]
            lines[i] = name + b": " + cookie + b"=[redacted]"
    return b"\r\n".join(lines)


# ── the browser ──────────────────────────────────────────────────────────────


@dataclass
class _PageState:
    """What the route handler learns while one page loads."""

    budget_end: float
    nav_url: str | None = None  # the navigation this capture started (goto)
    redirect: str | None = None  # where that navigation was redirected
    doc_hops: list[Hop] = field(default_factory=list)
    doc_digests: list[str] = field(default_factory=list)
    resources: int = 0
    refused: list[str] = field(default_factory=list)
    nav_failure: str | None = None
    # For "the network is quiet": requests in our hands now, and when the last one ended.
    # Playwright's own "networkidle" is reached once per navigation and never re-armed,
    # so it cannot tell when the requests that scrolling started are done.
    inflight: int = 0
    archive_error: ArchiveError | None = None
    page: Any = None  # the captured page; requests of any other page (a popup) are refused
    last_activity: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.budget_end - time.monotonic()


class Browser:
    """One Chromium for a run; ``capture(url)`` makes one browser capture into ``writer``.

    Use as ``async with Browser(settings, fetch, writer) as browser``. Chromium starts on the
    first capture, so a run that needs no browser never starts one. ``guard`` replaces the
    address rules derived from ``fetch.allow_private_networks`` (tests admit their own
    server with ``AddressGuard.allowing``). Raises nothing for a page's failure
    (``BrowserFailure``); ``ArchiveError`` escapes when the archive cannot be written.
    """

    def __init__(self, settings: BrowserSettings, fetch: FetchSettings,
                 writer: WarcWriter | None, *, guard: AddressGuard | None = None) -> None:
        self.settings = settings
        self.fetch = fetch
        self.writer = writer
        self.guard = guard or AddressGuard(allow_private=fetch.allow_private_networks)
        self._pages = asyncio.Semaphore(settings.pages)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._start_lock = asyncio.Lock()
        self._playwright: Any = None
        self._browser: Any = None
        # The HTTP path's client factory (per-host pools over the guard, the environment's
        # proxies and TLS trust); it archives nothing itself here.
        self._http: Fetcher | None = None

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        browser, self._browser = self._browser, None
        playwright, self._playwright = self._playwright, None
        http, self._http = self._http, None
        with contextlib.suppress(Exception):
            if browser is not None:
                await browser.close()
        with contextlib.suppress(Exception):
            if playwright is not None:
                await playwright.stop()
        if http is not None:
            await http.aclose()

    async def _start(self) -> Any:
        async with self._start_lock:
            if self._browser is not None:
                return self._browser
            from playwright.async_api import async_playwright

            executable = find_executable(self.settings)
            if executable is None:
                raise RuntimeError(unavailable(self.settings) or "no Chromium")
            self._playwright = await async_playwright().start()
            # Playwright gives each launch a fresh, empty user-data-dir of its own (and
            # removes it at close): nothing of any other session leaks in.
            self._browser = await self._playwright.chromium.launch(
                executable_path=executable, args=list(BROWSER_ARGS), headless=True)
            self._http = await Fetcher(self.fetch, None, guard=self.guard).__aenter__()
            return self._browser

    # ── one page ──

    async def capture(self, url: str, *, profile: BrowserProfile | None = None
                      ) -> BrowserCapture | BrowserFailure:
        """Load ``url`` in a fresh context (with ``profile``'s storage state, if given), read
        it as a reader would, and archive everything. Never raises for the page's failure."""
        problem = _invalid(url)
        if problem is not None:
            return BrowserFailure(url, problem)
        async with self._pages:
            started = time.monotonic()
            try:
                browser = await self._start()
            except Exception as exc:
                return BrowserFailure(url, f"the browser could not start: {exc}")
            state = _PageState(budget_end=started + self.settings.deadline)
            options: dict[str, Any] = {
                "service_workers": "block",
                "accept_downloads": False,
                "viewport": {"width": self.settings.width, "height": self.settings.height},
                "user_agent": _user_agent(browser.version, self.fetch.user_agent),
            }
            if profile is not None:
                options["storage_state"] = str(profile.storage_state)
            try:
                context = await browser.new_context(**options)
            except Exception as exc:  # Chromium gone, a storage state it cannot read
                return BrowserFailure(url, f"no browser context: {_first_line(str(exc))}")
            try:
                # A timeout scope, not asyncio.wait_for: in Python 3.11 that drops a
                # cancellation arriving as the page finishes, and a stopped run went on.
                async with asyncio.timeout(max(1.0, self.settings.deadline + 15.0)):
                    made: BrowserCapture | BrowserFailure = await self._capture_in(
                        context, url, state, profile is not None, started)
            except TimeoutError:
                made = BrowserFailure(url, f"no page within the deadline of "
                                           f"{self.settings.deadline:g}s")
            except ArchiveError:
                raise
            except Exception as exc:  # the page or Chromium crashed: this page fails only
                made = BrowserFailure(url, f"the browser failed: {_first_line(str(exc))}")
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(10):
                        await context.close()
            if state.archive_error is not None:
                # Raised inside Playwright's route callback, where it would be lost: the
                # archive cannot be written, which stops the run.
                raise state.archive_error
            return made

    async def _capture_in(self, context: Any, url: str, state: _PageState, profile: bool,
                          started: float) -> BrowserCapture | BrowserFailure:
        from playwright.async_api import Error as PlaywrightError

        async def on_route(route: Any) -> None:
            await self._handle(route, state)

        await context.route("**/*", on_route)

        async def refuse_socket(ws: Any) -> None:
            state.refused.append(f"{ws.url}: WebSockets are not opened")
            with contextlib.suppress(Exception):
                await ws.close()

        with contextlib.suppress(AttributeError):  # route_web_socket: Playwright >= 1.48
            await context.route_web_socket(re.compile(".*"), refuse_socket)
        page = state.page = await context.new_page()
        # Popups are closed as they open: the capture is of one page.
        context.on("page", lambda other: asyncio.ensure_future(other.close())
                   if other is not page else None)
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))

        target = url.split("#", 1)[0]
        visited: list[str] = []
        try:
            while True:
                visited.append(target)
                state.nav_url, state.redirect = target, None
                timeout_ms = max(1000.0, state.remaining() * 1000)
                await page.goto(target, wait_until="load", timeout=timeout_ms)
                if state.nav_failure is not None:
                    return BrowserFailure(url, state.nav_failure)
                if state.redirect is None:
                    break
                nxt = state.redirect
                if nxt in visited or len(visited) > self.fetch.max_redirects:
                    return BrowserFailure(url, "redirect loop: " + " → ".join(
                        [*visited, nxt]))
                target = nxt
        except PlaywrightError as exc:
            return BrowserFailure(url, state.nav_failure or f"the page did not load: "
                                  f"{_first_line(str(exc))}")
        state.nav_url = None
        if not state.doc_hops:
            return BrowserFailure(url, "the page's document was not captured")

        await self._read_like_a_reader(page, state)
        captured_at = utcnow()
        final_url = page.url
        html = (await page.content()).encode("utf-8")
        text = await page.evaluate("() => document.body ? document.body.innerText : ''")
        title = await page.title()
        height = int(await page.evaluate(
            "() => Math.max(document.documentElement.scrollHeight,"
            " document.body ? document.body.scrollHeight : 0)"))
        shot_height = min(height, self.settings.max_height)
        await page.evaluate("() => window.scrollTo(0, 0)")
        if height <= self.settings.max_height:
            png = await page.screenshot(full_page=True, type="png", animations="disabled")
        else:
            png = await page.screenshot(full_page=True, type="png", animations="disabled",
                                        clip={"x": 0, "y": 0, "width": self.settings.width,
                                              "height": shot_height})
        document = state.doc_hops[-1]
        shot_ref = text_ref = None
        if self.writer is not None and document.warc is not None:
            writer = self.writer
            shot_ref = await asyncio.to_thread(
                writer.write_resource, uri=f"urn:screenshot:{final_url}",
                content_type="image/png", data=png, concurrent_to=document.warc.record_id,
                captured_at=captured_at)
            text_ref = await asyncio.to_thread(
                writer.write_resource, uri=f"urn:text:{final_url}",
                content_type="text/plain; charset=utf-8", data=text.encode("utf-8"),
                concurrent_to=document.warc.record_id, captured_at=captured_at)
        digest = state.doc_digests[-1]
        return BrowserCapture(
            url=url, final_url=final_url, status=document.status,
            hops=tuple(state.doc_hops), html=html, text=text, title=title,
            payload_digest=digest, captured_at=captured_at, screenshot=shot_ref,
            text_record=text_ref, resources=state.resources, refused=tuple(state.refused),
            profile=profile, height=height, shot_height=shot_height,
            elapsed=time.monotonic() - started,
        )

    async def _read_like_a_reader(self, page: Any, state: _PageState) -> None:
        """Let the network settle, then scroll to the end step by step (lazy content), each
        wait bounded by the settings and by what is left of the page's deadline."""
        from playwright.async_api import Error as PlaywrightError

        async def settle(seconds: float) -> None:
            end = time.monotonic() + min(seconds, max(0.0, state.remaining() - 2))
            while time.monotonic() < end:
                if state.inflight == 0 and time.monotonic() - state.last_activity >= _QUIET:
                    return
                await asyncio.sleep(0.05)

        await settle(self.settings.settle)
        end = time.monotonic() + min(self.settings.scroll_time, max(0.0, state.remaining() - 5))
        try:
            last = int(await page.evaluate("() => document.documentElement.scrollHeight"))
        except PlaywrightError:
            return
        for _ in range(self.settings.scroll_steps):
            if time.monotonic() >= end:
                break
            try:
                await page.evaluate("() => window.scrollBy(0, window.innerHeight)")
                # The scroll counts as activity: scroll handlers get the quiet period to ask
                # for more before the network is called settled (under load that takes time).
                state.last_activity = time.monotonic()
                await settle(min(3.0, max(0.0, end - time.monotonic())))
                bottom, height = await page.evaluate(
                    "() => [window.scrollY + window.innerHeight,"
                    " document.documentElement.scrollHeight]")
            except PlaywrightError:
                break
            # At the end, and waiting for the network brought nothing more: done.
            if bottom >= height and height == last:
                break
            last = height
        await settle(min(self.settings.settle, 2.0))

    # ── the route handler: every request of the page ──

    def _host_gate(self, host: str) -> asyncio.Semaphore:
        gate = self._hosts.get(host)
        if gate is None:
            gate = self._hosts[host] = asyncio.Semaphore(max(2, self.fetch.per_host))
        return gate

    async def _handle(self, route: Any, state: _PageState) -> None:
        request = route.request
        state.inflight += 1
        try:
            await self._exchange(route, request, state)
        except Exception as exc:
            # The archive failing must stop the run; anything else fails this request only.
            if isinstance(exc, ArchiveError):
                state.nav_failure = str(exc)
                state.archive_error = exc
            log.debug("browser request %s failed: %s", request.url, exc)
            with contextlib.suppress(Exception):
                await route.abort("failed")
            if isinstance(exc, ArchiveError):
                raise
        finally:
            state.inflight -= 1
            state.last_activity = time.monotonic()

    async def _exchange(self, route: Any, request: Any, state: _PageState) -> None:
        url = request.url.split("#", 1)[0]
        # The main frame's documents are the page's; a frame-less request (a worker) is not.
        top_doc = bool(request.is_navigation_request()
                       and _safe(lambda: request.frame.parent_frame is None))
        main_nav = top_doc and state.nav_url is not None and url == state.nav_url
        owner = _safe(lambda: request.frame.page)
        problem = _invalid(url)
        # A popup's first navigation comes before its frame exists (no owner at all).
        if state.page is not None and (owner != state.page if owner is not None
                                       else request.is_navigation_request()):
            problem = f"{url}: popups are not opened"
        if problem is not None:
            state.refused.append(problem)
            await route.abort("blockedbyclient")
            return
        headers = await request.all_headers()
        send_headers = [(k, v) for k, v in headers.items()
                        if not k.startswith(":") and k.lower() not in _HOP_BY_HOP]
        body = request.post_data_buffer
        method = request.method
        current = url
        hops = 0
        while True:
            answer = await self._perform(method, current, send_headers, body, state)
            if isinstance(answer, str):
                state.refused.append(answer)
                if main_nav:
                    state.nav_failure = answer
                await route.abort("blockedbyclient" if "refused" in answer else "failed")
                return
            state.resources += 1
            status, raw_headers, content, hop, digest = answer
            if top_doc:
                state.doc_hops.append(hop)
                state.doc_digests.append(digest)
            location = next((v for k, v in raw_headers if k.lower() == "location"), None)
            if status in REDIRECT_STATUSES and location:
                target = _next_url(current, location)
                if target is None or _invalid(target) is not None:
                    break  # hand the page the redirect's own answer
                if request.resource_type == "document":
                    # Playwright would let Chromium follow this redirect itself, outside the
                    # routes and the guard: the page navigates to the target instead.
                    if main_nav:
                        state.redirect = target
                        await route.fulfill(status=200, headers=_page_headers(raw_headers,
                                            drop_location=True, content_type="text/html"),
                                            body=b"")
                    else:
                        await route.fulfill(status=200, headers=_page_headers(
                            raw_headers, drop_location=True, content_type="text/html"),
                            body=_refresh_to(target))
                    return
                hops += 1
                if hops > self.fetch.max_redirects:
                    state.refused.append(f"{url}: more than {self.fetch.max_redirects} "
                                         "redirects")
                    await route.abort("failed")
                    return
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                current = target
                continue
            break
        await route.fulfill(status=status, headers=_page_headers(raw_headers), body=content)

    async def _perform(self, method: str, url: str, headers: list[tuple[str, str]],
                       body: bytes | None, state: _PageState
                       ) -> tuple[int, list[tuple[str, str]], bytes, Hop, str] | str:
        """One exchange over the guard: archived, and returned decoded for the page; or a
        string saying why it was not made."""
        assert self._http is not None
        if state.remaining() <= 0:
            return f"{url}: the page's deadline of {self.settings.deadline:g}s is spent"
        # The host as browsers read it, for the guard and for the request (Chromium has
        # normalised it already; this keeps one rule with the HTTP path).
        fetchable, why_not = _fetchable(url)
        if fetchable is None:
            return f"{url}: {why_not}"
        url = fetchable
        parsed = httpx.URL(url)
        # The guard's verdict before any request (again at connection time), through a
        # proxy as the HTTP path makes it (see Fetcher._precheck).
        refusal = await self._http._precheck(url)
        if refusal is not None:
            return refusal[1]
        client = self._http._client_for(parsed.host)
        trace = PhaseTrace()
        request = client.build_request(method, url, headers=headers, content=body,
                                       extensions={"trace": trace})
        truncated: str | None = None
        spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=256 * 1024)  # noqa: SIM115
        try:
            async with self._host_gate(parsed.host):
                try:
                    async with asyncio.timeout(max(0.1, state.remaining())):
                        response = await client.send(request, stream=True)
                        try:
                            room = self.fetch.max_body
                            try:
                                async for chunk in response.aiter_raw():
                                    if len(chunk) > room:
                                        _spool(spool, chunk[:room])
                                        truncated = "length"
                                        break
                                    _spool(spool, chunk)
                                    room -= len(chunk)
                            except httpx.TimeoutException:
                                truncated = "time"
                            except httpx.TransportError:
                                truncated = "disconnect"
                        finally:
                            with contextlib.suppress(Exception):
                                await response.aclose()
                except TimeoutError:
                    return f"{url}: no answer within the page's deadline"
                except ArchiveError:
                    raise  # our temporary folder full: the run stops (see ``_handle``)
                except Exception as exc:
                    limit = f"{self.fetch.timeout:g}s"
                    return network_failure(exc, trace.phase, limit=limit).reason
            captured_at = utcnow()
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in _raw_headers(response)]
            warc: WarcRef | None = None
            revisit = False
            if self.writer is not None:
                exchange = await asyncio.to_thread(
                    self.writer.write_exchange, url=url, request_head=_request_head(request),
                    response_head=redact_set_cookie(_response_head(response)), body=spool,
                    remote_ip=_remote_ip(response), captured_at=captured_at,
                    truncated=truncated, request_body=body or b"")
                warc, revisit = exchange.response, exchange.revisit
            encoding = next((v for k, v in raw if k.lower() == "content-encoding"), None)
            content = decode_body(spool, encoding, self.fetch.max_body)
            digest = _digest_of(spool)
            hop = Hop(url=url, status=response.status_code, headers=tuple(raw), warc=warc,
                      revisit=revisit)
            return response.status_code, raw, content, hop, digest
        finally:
            spool.close()


def _user_agent(version: str, ours: str) -> str:
    """Chromium's own User-Agent as a desktop Chrome sends it (not "HeadlessChrome", which
    sites serve differently), followed by the archiver's, as the HTTP path names itself."""
    major = version.split(".", 1)[0] or "0"
    return (f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{major}.0.0.0 Safari/537.36 {ours}")


def _page_headers(raw: list[tuple[str, str]], *, drop_location: bool = False,
                  content_type: str | None = None) -> dict[str, str]:
    """Response headers for ``route.fulfill``: the body is given decoded, so its wire-form
    headers go; repeated headers are joined (``Set-Cookie`` with newlines, as Playwright
    splits them)."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        if key in _WIRE_ONLY or (drop_location and key == "location"):
            continue
        if content_type and key == "content-type":
            continue
        if key in out:
            out[key] += ("\n" if key == "set-cookie" else ", ") + value
        else:
            out[key] = value
    if content_type:
        out["content-type"] = content_type
    return out


def _refresh_to(target: str) -> bytes:
    from html import escape

    safe = escape(target, quote=True)
    return (f'<!doctype html><meta http-equiv="refresh" content="0;url={safe}">'
            f'<title>Redirecting</title>').encode()


def _safe(getter: Callable[[], Any]) -> Any:
    try:
        return getter()
    except Exception:
        return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= 200 else line[:197] + "..."


# ── the pipeline's stage ─────────────────────────────────────────────────────


@dataclass(frozen=True)
class Browsed:
    """What the browser stage made of one URL. ``capture`` is the browser capture (it
    replaces the HTTP capture as the evidence), or ``None`` when the browser was wanted but
    could not be used (``lost`` says why; the HTTP capture stands). ``page``/``judgement``
    are the rendered page's."""

    wanted: str
    capture: BrowserCapture | None = None
    page: PageText | None = None
    judgement: Judgement | None = None
    lost: str | None = None

    def slim(self) -> Browsed:
        """This record without what only judging needed (the rendered DOM and page), for
        sending to the catalog writer."""
        capture = replace(self.capture, html=b"") if self.capture is not None else None
        return replace(self, capture=capture, page=None)

    def record(self, catalog: Catalog, capture_id: int) -> None:
        """Record in the catalog how capture ``capture_id`` was made (inside the URL's
        transaction)."""
        bc = self.capture
        catalog.record_browser(
            capture_id, mode="browser" if bc else "http", wanted=self.wanted, lost=self.lost,
            profile=bool(bc and bc.profile), screenshot=bc.screenshot if bc else None,
            text_record=bc.text_record if bc else None, text=bc.text if bc else None)


class BrowserStage:
    """The browser stage of a run: decides per URL (``wanted``) and captures in the browser.

    Used by the pipeline as ``async with BrowserStage(settings, writer) as stage``, then
    ``await stage.consider(target, result, page, judgement, probe)`` after each HTTP fetch.
    When the browser cannot be used here, ``notes`` says so once, with the links that lost
    their browser capture; the HTTP captures stand.
    """

    def __init__(self, settings: Settings, writer: WarcWriter | None, *,
                 guard: AddressGuard | None = None) -> None:
        self.settings = settings
        self.writer = writer
        self._guard = guard
        self._browser: Browser | None = None
        self._problem: str | None = None
        self._checked = False
        self.lost: list[str] = []

    async def __aenter__(self) -> BrowserStage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.aclose()

    @property
    def notes(self) -> list[str]:
        if not self.lost:
            return []
        shown = ", ".join(self.lost[:5]) + (f" and {len(self.lost) - 5} more"
                                             if len(self.lost) > 5 else "")
        return [f"Browser capture unavailable: {self._problem}; {len(self.lost)} link(s) "
                f"kept their HTTP capture only: {shown}"]

    async def consider(self, target: Target, result: FetchResult, page: PageText | None,
                       judgement: Judgement, probe: Any = None) -> Browsed | None:
        """``None`` when the HTTP capture is the evidence; else the browser's capture of the
        target (judged on the rendered page), or why it could not be made."""
        from archiver import classify, pagetext

        settings = self.settings.browser
        http = result if isinstance(result, Capture) else None
        why = wanted(settings, target.url, http, page, judgement)
        if why is None:
            return None
        if not self._checked:
            self._checked = True
            self._problem = unavailable(settings)
            if self._problem is not None:
                log.warning("browser capture unavailable: %s", self._problem)
        if self._problem is not None:
            self.lost.append(target.url)
            return Browsed(why, lost=self._problem)
        if self._browser is None:
            self._browser = Browser(settings, self.settings.fetch, self.writer,
                                    guard=self._guard)
        assert http is not None
        host = (urlsplit(http.final_url).hostname or "").lower()
        profile = settings.profile_for((urlsplit(target.url).hostname or "").lower()) \
            or settings.profile_for(host)
        made = await self._browser.capture(target.url, profile=profile)
        if isinstance(made, BrowserFailure):
            return Browsed(why, lost=made.reason)
        if self.writer is not None and made.hops and made.hops[-1].warc is not None:
            fields = [("capture-mode", "browser"), ("browser-reason", why),
                      ("resources", str(made.resources)),
                      ("profile", "yes" if made.profile else "no"),
                      ("page-height", str(made.height))]
            if made.screenshot:
                fields.append(("screenshot", made.screenshot.record_id))
            if made.text_record:
                fields.append(("rendered-text", made.text_record.record_id))
            fields += [("refused", reason) for reason in made.refused[:50]]
            writer = self.writer
            await asyncio.to_thread(
                writer.write_metadata, url=made.final_url,
                concurrent_to=made.hops[-1].warc.record_id, fields=fields,
                captured_at=made.captured_at)
        capture = made.as_capture(http.attempts)
        rendered = await asyncio.to_thread(pagetext.extract, made.html, capture.content_type,
                                           made.final_url)
        # The rendered text is what a reader sees; the readable-text heuristics still give
        # the title and language.
        from dataclasses import replace as _replace

        rendered = _replace(rendered, text=made.text.strip() or rendered.text)
        judged = classify.classify(capture, probe=probe, cited_url=target.url, page=rendered)
        return Browsed(why, capture=made, page=rendered, judgement=judged)


# ── screenshots for the report ───────────────────────────────────────────────


def crop_png(data: bytes, height: int) -> bytes:
    """The top ``height`` rows of a PNG (for a thumbnail), without an imaging library.

    Works for non-interlaced PNGs, as Chromium writes them: each scanline's filter refers
    only to the line above it, so the first rows decode on their own. Returns ``data``
    unchanged when it is no taller, or not a PNG this can cut.
    """
    import struct
    import zlib

    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return data
    chunks: list[tuple[bytes, bytes]] = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    if not chunks or chunks[0][0] != b"IHDR":
        return data
    width, full, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    if interlace or channels is None or full <= height:
        return data
    stride = (width * channels * depth + 7) // 8 + 1  # + the filter byte
    decomp = zlib.decompressobj()
    need = stride * height
    rows = b""
    for kind, body in chunks:
        if kind == b"IDAT" and len(rows) < need:
            rows += decomp.decompress(body, need - len(rows))
            while decomp.unconsumed_tail and len(rows) < need:
                rows += decomp.decompress(decomp.unconsumed_tail, need - len(rows))
    if len(rows) < need:
        return data

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = chunks[0][1][:4] + struct.pack(">I", height) + chunks[0][1][8:]
    keep = b"".join(chunk(k, b) for k, b in chunks[1:] if k in (b"PLTE", b"tRNS"))
    return (data[:8] + chunk(b"IHDR", header) + keep
            + chunk(b"IDAT", zlib.compress(rows[:need], 6)) + chunk(b"IEND", b""))
