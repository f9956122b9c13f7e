"""classify: every verdict from a fetch, and the pages that must stay ``ok``.

Unit cases build ``Capture`` values directly (classify is pure decision logic); the
end-to-end cases fetch from a real loopback server with plain httpx (``fetch_capture``).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver.classify import classify
from archiver.models import Capture, FetchFailure, Hop, Judgement, Verdict, utcnow
from archiver.soft404 import ProbeOutcome
from tests.test_soft404 import fetch_capture
from tests.webserver import Reply, WebServer, redirect

HTML = "text/html; charset=utf-8"


def cap(url: str, status: int = 200, body: str | bytes = "", *,
        chain: tuple[tuple[str, int], ...] = (), headers: tuple[tuple[str, str], ...] = (),
        content_type: str | None = HTML, attempts: int = 1) -> Capture:
    """A capture of ``url``: ``chain`` is the redirect hops before the final answer as
    (url, status); the final answer is at the last hop's Location (or ``url``)."""
    steps = [u for u, _ in chain[1:]] + [url] if chain else []  # where each redirect points
    hops = [Hop(u, s, (("Location", nxt),)) for (u, s), nxt in zip(chain, steps, strict=True)]
    start = chain[0][0] if chain else url
    final_url = url
    final_headers = (("Content-Type", content_type or ""), *headers)
    hops.append(Hop(final_url, status, final_headers))
    content = body.encode() if isinstance(body, str) else body
    return Capture(url=start, final_url=final_url, status=status, hops=tuple(hops),
                   content=content, content_type=content_type, payload_digest="sha1:X",
                   captured_at=utcnow(), attempts=attempts)


def page(title: str, body: str, *, heading: str | None = None) -> str:
    h1 = f"<h1>{heading}</h1>" if heading else ""
    return (f"<!doctype html><html><head><title>{title}</title></head><body>"
            f"<nav>Home | News | About</nav><main>{h1}{body}</main>"
            f"<footer>© Example</footer></body></html>")


LONG_ARTICLE = page(
    "Activists detained after protest | Vlast.kz",
    "<p>" + "Police detained at least twelve activists in Almaty on Saturday after a peaceful "
    "protest in support of political prisoners. " * 8 + "</p>"
    "<p>Relatives said the whereabouts of two detainees were not found in any police register "
    "for several hours, and lawyers were not allowed to see them. A search for the missing men "
    "by their families found nothing until the evening.</p>",
    heading="Activists detained after protest",
)


def assert_verdict(j: Judgement, verdict: Verdict, *words: str) -> None:
    assert j.verdict is verdict, j
    assert j.reason and len(j.reason) < 200, j
    for word in words:
        assert word in j.reason, j


# ── network failures and status codes ────────────────────────────────────────


@pytest.mark.parametrize("verdict", [Verdict.TIMEOUT, Verdict.DNS_ERROR, Verdict.TLS_ERROR,
                                     Verdict.CONNECTION_ERROR, Verdict.INVALID_URL,
                                     Verdict.PRIVATE_ADDRESS])
def test_network_failures_pass_through_with_their_reason(verdict: Verdict) -> None:
    failure = FetchFailure("https://tirik.info/x/", verdict, f"reason for {verdict.value}",
                           attempts=4)
    assert classify(failure) == Judgement(verdict, f"reason for {verdict.value}")


@pytest.mark.parametrize(
    ("status", "verdict", "words"),
    [
        (404, Verdict.NOT_FOUND, ("404",)),
        (410, Verdict.GONE, ("410", "removed")),
        (401, Verdict.BLOCKED, ("401", "may still be there")),
        (403, Verdict.BLOCKED, ("403", "refused the archiver", "may still be there")),
        (451, Verdict.BLOCKED, ("451", "legal")),
        (500, Verdict.SERVER_ERROR, ("500",)),
        (502, Verdict.SERVER_ERROR, ("502",)),
        (503, Verdict.SERVER_ERROR, ("503",)),
        (406, Verdict.BLOCKED, ("406", "may still be there")),
        (999, Verdict.BLOCKED, ("999",)),
        (302, Verdict.BLOCKED, ("redirects never reached a page",)),
    ],
)
def test_status_codes(status: int, verdict: Verdict, words: tuple[str, ...]) -> None:
    body = page("Error", f"<p>HTTP {status}</p>") if status != 302 else ""
    assert_verdict(classify(cap("https://example.org/a/1.html", status, body)), verdict, *words)


def test_429_after_retries_is_blocked_not_dead() -> None:
    j = classify(cap("https://example.org/a/1.html", 429, "Too Many Requests",
                     content_type="text/plain", attempts=4))
    assert_verdict(j, Verdict.BLOCKED, "429", "after 4 attempts", "may still be there")
    assert not j.verdict.healthy


# ── redirects ────────────────────────────────────────────────────────────────


def test_redirect_to_the_home_page_is_soft_404() -> None:
    c = cap("https://bureau.kz/", 200, LONG_ARTICLE,
            chain=(("https://bureau.kz/novosti/poshli-va-bank/", 301),))
    assert_verdict(classify(c), Verdict.SOFT_404, "redirected to the site's home page")


def test_redirect_to_a_language_root_or_another_sites_root_is_soft_404() -> None:
    c = cap("https://www.inform.kz/ru/", 200, LONG_ARTICLE,
            chain=(("https://www.inform.kz/ru/prezident-rk-utverdil-popravki_a3725519", 302),))
    assert_verdict(classify(c), Verdict.SOFT_404, "home page")
    c = cap("https://newowner.example/", 200, LONG_ARTICLE,
            chain=(("http://tirik.info/7-sotrudnikov-politsii/", 301),))
    assert_verdict(classify(c), Verdict.SOFT_404, "home page of newowner.example")


@pytest.mark.parametrize("cited", ["https://Bureau.KZ./novosti/x/",
                                   "https://b%75reau.kz/novosti/x/",
                                   "https://\uff42ureau.kz/novosti/x/"])
def test_a_host_spelled_differently_is_the_same_site(cited: str) -> None:
    """The fetcher requests the host as browsers read it; the cited spelling is the same site."""
    c = cap("https://bureau.kz/", 200, LONG_ARTICLE, chain=((cited, 301),))
    assert_verdict(classify(c), Verdict.SOFT_404, "redirected to the site's home page")


def test_an_international_name_and_its_ascii_form_are_the_same_site() -> None:
    c = cap("https://xn--bcher-kva.de/", 200, LONG_ARTICLE,
            chain=(("https://B\u00fccher.de/neu/1", 301),))
    assert_verdict(classify(c), Verdict.SOFT_404, "redirected to the site's home page")


def test_redirect_up_to_a_section_or_to_an_error_page_is_soft_404() -> None:
    c = cap("https://bureau.kz/novosti/", 200, LONG_ARTICLE,
            chain=(("https://bureau.kz/novosti/sobstvennaya_informaciya/molchanie_zoloto/", 301),))
    assert_verdict(classify(c), Verdict.SOFT_404, "section page")
    c = cap("https://example.org/errors/404.html", 200, page("Example", "<p>Sorry.</p>"),
            chain=(("https://example.org/a/1.html", 302),))
    assert_verdict(classify(c), Verdict.SOFT_404, "error page")


def test_same_site_permanent_redirect_to_the_new_address_is_redirected_not_dead() -> None:
    new = "https://www.rferl.org/a/kazakh-activist-conviction-upheld/30840102.html"
    c = cap(new, 200, LONG_ARTICLE,
            chain=(("https://www.rferl.org/a/kazakh-activist-s-conviction/30840102.html", 301),))
    j = classify(c)
    assert_verdict(j, Verdict.REDIRECTED, "moved permanently", new)
    assert j.verdict.healthy


def test_redirect_to_an_article_on_another_site_is_redirected() -> None:
    c = cap("https://www.iphronline.org/kazakhstan-free-asya-tulesova.html", 200, LONG_ARTICLE,
            chain=(("https://iphronline.org/old/asya.html", 302),
                   ("https://www.iphronline.org/old/asya.html", 302)))
    assert_verdict(classify(c), Verdict.REDIRECTED, "redirected to")
    c = cap("https://rus.azattyq.org/a/30324650.html", 200, LONG_ARTICLE,
            chain=(("https://www.azattyq.kz/a/30324650.html", 301),))
    assert_verdict(classify(c), Verdict.REDIRECTED, "another site")


def test_http_to_https_same_path_is_ok() -> None:
    """Decision: a redirect that changes only the scheme, ``www.``, the default port or a
    trailing slash is ``ok``; the cited address still leads to the very same page."""
    c = cap("https://tirik.info/monitoring-narushenij/", 200, LONG_ARTICLE,
            chain=(("http://tirik.info/monitoring-narushenij/", 301),))
    assert_verdict(classify(c), Verdict.OK, "same address")
    c = cap("https://www.kuresker.org/archives/3197/", 200, LONG_ARTICLE,
            chain=(("http://kuresker.org/archives/3197", 301),))
    assert_verdict(classify(c), Verdict.OK)


def test_cited_url_with_fragment_is_judged_as_cited() -> None:
    c = cap("https://online.zakon.kz/document/?doc_id=31577399", 200, LONG_ARTICLE)
    j = classify(c, cited_url="https://online.zakon.kz/document/?doc_id=31577399#pos=1770;-36")
    assert_verdict(j, Verdict.OK)


# ── login walls ──────────────────────────────────────────────────────────────

FB_LOGIN = page("Log in to Facebook", (
    "<form id=login_form action='/login/device-based/regular/login/'>"
    "<input type=text name=email placeholder='Email address or phone number'>"
    "<input type=password name=pass placeholder=Password><button>Log in</button></form>"
    "<a href='/recover'>Forgotten password?</a><a href='/r.php'>Create new account</a>"))


def test_facebook_like_redirect_to_login_is_login_wall() -> None:
    cited = "https://www.facebook.com/groups/ActivistsNotExtremists/permalink/2730142953971637/"
    login = ("https://www.facebook.com/login/?next=https%3A%2F%2Fwww.facebook.com%2Fgroups%2F"
             "ActivistsNotExtremists%2Fpermalink%2F2730142953971637%2F")
    j = classify(cap(login, 200, FB_LOGIN, chain=((cited, 302),)), cited_url=cited)
    assert_verdict(j, Verdict.LOGIN_WALL, "login page")
    checkpoint = "https://www.facebook.com/checkpoint/?next"
    assert_verdict(classify(cap(checkpoint, 200, FB_LOGIN, chain=((cited, 302),))),
                   Verdict.LOGIN_WALL)


def test_instagram_accounts_login_redirect_is_login_wall() -> None:
    cited = "https://www.instagram.com/p/CcdNziZHHqA/?utm_source=ig_embed"
    final = "https://www.instagram.com/accounts/login/?next=/p/CcdNziZHHqA/"
    # Instagram's login page is drawn by scripts: a robot gets almost no text and no form.
    body = page("Login • Instagram", "<div id=react-root></div>")
    assert_verdict(classify(cap(final, 200, body, chain=((cited, 302),))), Verdict.LOGIN_WALL)
    # Even when the chain is cut on the redirect itself.
    j = classify(cap(cited, 302, "", headers=(("Location", final),)))
    assert_verdict(j, Verdict.LOGIN_WALL, "login page")


def test_password_form_at_200_is_login_wall() -> None:
    cited = "https://www.facebook.com/aliya.isenova.3/posts/2860654490687816"
    assert_verdict(classify(cap(cited, 200, FB_LOGIN)), Verdict.LOGIN_WALL, "login form")
    bare = page("Members area", "<form><input name=u><input type='password' name=p></form>")
    assert_verdict(classify(cap("https://example.org/members/report", 200, bare)),
                   Verdict.LOGIN_WALL)


def test_script_rendered_login_wall_without_a_form_is_login_wall() -> None:
    body = page("Facebook", "<div>You must log in to continue.</div>")
    j = classify(cap("https://www.facebook.com/groups/x/permalink/1/", 200, body))
    assert_verdict(j, Verdict.LOGIN_WALL, "You must log in to continue")


def test_article_with_a_login_box_in_its_header_stays_ok() -> None:
    body = LONG_ARTICLE.replace(
        "<nav>", "<div class=login-box><input name=user><input type=password name=pw></div><nav>")
    assert_verdict(classify(cap("https://vlast.kz/novosti/35717-zanbolat.html", 200, body)),
                   Verdict.OK)


# ── parking ──────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "body",
    [
        page("tirik.info - This domain may be for sale!", "<p>Related searches</p>"
             "<script src='https://img.sedoparking.com/templates/js/util.js'></script>"),
        page("tirik.info", "<h2>Buy this domain</h2><p>The owner of tirik.info is offering it "
             "for sale.</p><a href='https://www.afternic.com/forsale/tirik.info'>Buy now</a>"),
        page("kuresker.org", "<p>kuresker.org</p><p>Parked free, courtesy of GoDaddy.com.</p>"),
        page("kuresker.org", "<script>var s='//www.parkingcrew.net/assets/lander.js'</script>"
             "<p>Related Links</p>"),
        page("Домен tirik.info продается", "<p>Купить домен</p>"),
    ],
)
def test_parking_and_for_sale_pages_are_parked(body: str) -> None:
    assert_verdict(classify(cap("http://tirik.info/7-sotrudnikov/", 200, body)), Verdict.PARKED,
                   "parked or for sale")


def test_redirect_to_a_domain_marketplace_is_parked() -> None:
    c = cap("https://dan.com/buy-domain/tirik.info", 200, page("tirik.info", "<p>Buy</p>"),
            chain=(("http://tirik.info/7-sotrudnikov/", 302),))
    assert_verdict(classify(c), Verdict.PARKED, "dan.com")


def test_article_about_domain_sales_stays_ok() -> None:
    body = LONG_ARTICLE.replace(
        "</main>", "<p>The ministry said one could buy this domain through Sedo or dan.com.</p>"
                   "</main>")
    assert_verdict(classify(cap("https://vlast.kz/novosti/1.html", 200, body)), Verdict.OK)


# ── bot challenges ───────────────────────────────────────────────────────────

CF_JUST_A_MOMENT = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390"><script>window._cf_chl_opt={cvId: '3',cZone:
'rferl.org',cType: 'managed'};</script></head><body><div class="main-wrapper" role="main">
<div class="main-content"><h1 class="zone-name-title h1">www.rferl.org</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript>Enable JavaScript and cookies to continue</noscript></div></div>
<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=7f"></script>
</body></html>"""

CF_ATTENTION = """<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>
<body><div id="cf-wrapper"><h1>Sorry, you have been blocked</h1><h2>You are unable to access
rferl.org</h2><p>This website is using a security service to protect itself from online
attacks.</p><p>Cloudflare Ray ID: 7f</p></div></body></html>"""

DDOS_GUARD = """<html><head><title>DDoS-Guard</title></head><body><div>Checking your browser
before accessing kaztag.kz</div><script src="/.well-known/ddos-guard/check?context=free_splash">
</script></body></html>"""


@pytest.mark.parametrize("status", [403, 503, 429, 200])
def test_cloudflare_just_a_moment_is_blocked_not_dead(status: int) -> None:
    c = cap("https://www.rferl.org/a/30685517.html", status, CF_JUST_A_MOMENT,
            headers=(("Server", "cloudflare"), ("cf-ray", "7f-FRA")))
    j = classify(c)
    assert_verdict(j, Verdict.BLOCKED, "refused the archiver", "Cloudflare bot challenge",
                   "may still be there for readers")


def test_other_challenges_are_blocked() -> None:
    url = "https://kaztag.kz/ru/news/x"
    j = classify(cap(url, 403, CF_ATTENTION, headers=(("Server", "cloudflare"),)))
    assert_verdict(j, Verdict.BLOCKED, "Cloudflare", "may still be there")
    assert_verdict(classify(cap(url, 403, DDOS_GUARD, headers=(("Server", "ddos-guard"),))),
                   Verdict.BLOCKED, "bot challenge")
    # cf-mitigated says it outright, whatever the body.
    j = classify(cap(url, 403, "", content_type=None, headers=(("cf-mitigated", "challenge"),)))
    assert_verdict(j, Verdict.BLOCKED, "Cloudflare bot challenge")
    captcha = page("kaztag.kz", "<p>Please confirm you are not a robot.</p>"
                   "<div class='g-recaptcha' data-sitekey='x'></div>")
    assert_verdict(classify(cap(url, 200, captcha)), Verdict.BLOCKED, "captcha")


def test_article_with_a_captcha_in_its_comment_form_stays_ok() -> None:
    body = LONG_ARTICLE.replace(
        "</main>", "<form class=comments><textarea></textarea><div class='g-recaptcha'></div>"
                   "<script src='https://www.google.com/recaptcha/api.js'></script></form></main>")
    assert_verdict(classify(cap("https://vlast.kz/novosti/2.html", 200, body)), Verdict.OK)


def test_plain_404_page_with_a_captcha_search_box_stays_not_found() -> None:
    body = page("Not Found", "<form><div class='g-recaptcha'></div></form>")
    assert_verdict(classify(cap("https://x.org/a", 404, body)), Verdict.NOT_FOUND)


# ── soft 404 by wording ──────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("title", "heading", "body"),
    [
        ("Page not found – Bureau.kz", None, "<p>Try the search.</p>"),
        ("Страница не найдена | Vlast.kz", None, "<p>Попробуйте поиск.</p>"),
        ("Бет табылмады", None, "<p>Іздеуді қолданыңыз.</p>"),
        ("Kaztag", "404", "<p>Перейти на главную</p>"),
        ("Bureau.kz", "Ничего не найдено", "<p>Попробуйте другой запрос.</p>"),
        ("Ошибка 404 - Forbes.kz", None, "<p>Вернуться на главную</p>"),
        ("Facebook", "This content isn't available right now", "<p>Go to News Feed</p>"),
        ("Example", None, "<p>Sorry, the page you requested does not exist. The page was not "
                          "found on this server.</p>"),
        ("Tengrinews", None, "<p>Запрашиваемая страница не существует.</p>"),
    ],
)
def test_not_found_wording_at_200_is_soft_404(title: str, heading: str | None,
                                              body: str) -> None:
    j = classify(cap("https://example.kz/news/1/", 200, page(title, body, heading=heading)))
    assert_verdict(j, Verdict.SOFT_404, "answers 200 but")


def test_article_that_says_not_found_in_its_body_stays_ok() -> None:
    assert "not found" in LONG_ARTICLE
    assert_verdict(classify(cap("https://vlast.kz/novosti/3.html", 200, LONG_ARTICLE)), Verdict.OK)


@pytest.mark.parametrize("title", ["Статья 404. Злоупотребление | Кодексы РК",
                                   "Article 404 of the Criminal Code",
                                   "Bodies not found, says prosecutor | Eurasianet"])
def test_titles_that_merely_contain_404_or_not_found_stay_ok(title: str) -> None:
    body = LONG_ARTICLE.replace("Activists detained after protest | Vlast.kz", title)
    assert_verdict(classify(cap("https://kodeksy-kz.com/ka/ugolovnyj_kodeks/404.htm", 200, body)),
                   Verdict.OK)


# ── soft 404 by probe ────────────────────────────────────────────────────────

HOME = page("Example News", "<h1>Welcome</h1><p>Latest: the parliament met on {d} May; "
            "{n} readers today.</p><p>Independent reporting since 2005.</p>")


def _probe(url: str, status: int, body: str, *, final: str | None = None) -> ProbeOutcome:
    chain = ((url, 302),) if final else ()
    return ProbeOutcome.from_result(cap(final or url, status, body, chain=chain))


def test_probe_answering_the_same_page_makes_a_soft_404() -> None:
    cited = "https://example.org/a/30324650.html"
    c = cap(cited, 200, HOME.format(d=12, n=1024))
    probe = _probe("https://example.org/a/zz-archiver-probe-1.html", 200, HOME.format(d=13, n=7))
    assert_verdict(classify(c, probe=probe), Verdict.SOFT_404,
                   "a random path on this host answers with the same page")
    assert_verdict(classify(c), Verdict.OK)  # the same page without a probe: no evidence


def test_probe_answering_404_or_a_different_page_keeps_the_page_ok() -> None:
    c = cap("https://vlast.kz/novosti/4.html", 200, LONG_ARTICLE)
    missing = _probe("https://vlast.kz/novosti/zz-archiver-probe-2.html", 404,
                     page("404", "<p>Not found</p>"))
    assert_verdict(classify(c, probe=missing), Verdict.OK, "random path on this host answers 404")
    other = _probe("https://vlast.kz/novosti/zz-archiver-probe-2.html", 200,
                   HOME.format(d=1, n=2))
    assert_verdict(classify(c, probe=other), Verdict.OK)
    failed = ProbeOutcome.from_result(FetchFailure("https://vlast.kz/novosti/zz", Verdict.TIMEOUT,
                                                   "no answer"))
    assert_verdict(classify(c, probe=failed), Verdict.OK)


def test_probe_resolved_to_the_page_itself_is_no_evidence() -> None:
    """Sites that route on an id earlier in the path send the probe to the page itself."""
    cited = "https://example.org/questions/123/old-slug"
    c = cap(cited, 200, LONG_ARTICLE)
    probe = _probe("https://example.org/questions/123/zz-archiver-probe-3", 200, LONG_ARTICLE,
                   final=cited)
    assert_verdict(classify(c, probe=probe), Verdict.OK)


def test_pdf_is_ok_even_when_the_probe_answers_200() -> None:
    c = cap("https://www.iphronline.org/wp-content/uploads/2020/10/report.pdf", 200,
            b"%PDF-1.4\n...", content_type="application/pdf")
    probe = _probe("https://www.iphronline.org/wp-content/uploads/2020/10/zz-archiver-probe.pdf",
                   200, HOME.format(d=1, n=1))
    assert_verdict(classify(c, probe=probe), Verdict.OK)


# ── end to end on loopback ───────────────────────────────────────────────────


def test_end_to_end_login_redirects_and_moves(web: WebServer) -> None:
    login_page = Reply(200, FB_LOGIN.encode(), {"Content-Type": HTML})
    web.route("/login/", login_page)
    web.route("/accounts/login/", Reply(200, page("Login • Instagram", "<div></div>").encode(),
                                        {"Content-Type": HTML}))
    web.route("/groups/ActivistsNotExtremists/permalink/2730142953971637/",
              redirect("/login/?next=%2Fgroups%2FActivistsNotExtremists%2Fpermalink%2F"))
    web.route("/p/CcdNziZHHqA/", redirect("/accounts/login/?next=/p/CcdNziZHHqA/"))
    web.route("/old/story.html", redirect("/2020/06/story.html", 301))
    web.route("/2020/06/story.html", Reply(200, LONG_ARTICLE.encode(), {"Content-Type": HTML}))
    web.route("/novosti/deleted/", redirect("/", 301))
    web.route("/", Reply(200, HOME.format(d=1, n=1).encode(), {"Content-Type": HTML}))

    fb = web.url("/groups/ActivistsNotExtremists/permalink/2730142953971637/")
    capture = fetch_capture(fb)
    assert len(capture.hops) == 2 and capture.hops[0].status == 302
    assert_verdict(classify(capture, cited_url=fb), Verdict.LOGIN_WALL, "login page")

    insta = web.url("/p/CcdNziZHHqA/")
    assert_verdict(classify(fetch_capture(insta), cited_url=insta), Verdict.LOGIN_WALL)

    moved = web.url("/old/story.html")
    assert_verdict(classify(fetch_capture(moved), cited_url=moved), Verdict.REDIRECTED,
                   "moved permanently", web.url("/2020/06/story.html"))

    gone = web.url("/novosti/deleted/")
    assert_verdict(classify(fetch_capture(gone), cited_url=gone), Verdict.SOFT_404,
                   "home page")


def test_end_to_end_status_and_challenge(web: WebServer) -> None:
    web.route("/challenge", Reply(503, CF_JUST_A_MOMENT.encode(),
                                  {"Content-Type": HTML, "Server": "cloudflare"}))
    web.route("/gone", Reply(410, b"Gone", {"Content-Type": "text/plain"}))
    assert_verdict(classify(fetch_capture(web.url("/challenge"))), Verdict.BLOCKED,
                   "may still be there")
    assert_verdict(classify(fetch_capture(web.url("/gone"))), Verdict.GONE)
    assert_verdict(classify(fetch_capture(web.url("/nothing-here"))), Verdict.NOT_FOUND)


# ── robustness ───────────────────────────────────────────────────────────────

_header = st.tuples(st.sampled_from(["Content-Type", "Location", "Server", "cf-mitigated", "X"]),
                    st.text(max_size=30))
_urls = st.one_of(st.sampled_from(["https://x.org/a/b.html", "http://[::1", "http://x:99999/",
                                   "", "https://www.facebook.com/login/?next=/", "/"]),
                  st.text(max_size=40))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.integers(min_value=-5, max_value=1200), content=st.binary(max_size=2000),
       content_type=st.one_of(st.none(), st.text(max_size=30),
                              st.just("text/html; charset=koi8-r")),
       headers=st.lists(_header, max_size=4), url=_urls, final=_urls,
       chain=st.lists(st.tuples(_urls, st.integers(min_value=0, max_value=999)), max_size=3),
       probe_status=st.one_of(st.none(), st.integers(min_value=0, max_value=999)),
       probe_text=st.text(max_size=200), cited=st.one_of(st.none(), _urls))
def test_classify_never_raises(status: int, content: bytes, content_type: str | None,
                               headers: list[tuple[str, str]], url: str, final: str,
                               chain: list[tuple[str, int]], probe_status: int | None,
                               probe_text: str, cited: str | None) -> None:
    hops = [Hop(u, s, tuple(headers)) for u, s in chain] + [Hop(final, status, tuple(headers))]
    capture = Capture(url=url, final_url=final, status=status, hops=tuple(hops), content=content,
                      content_type=content_type, payload_digest="sha1:X", captured_at=utcnow())
    probe = None
    if probe_status is not None:
        probe = ProbeOutcome(url=url, status=probe_status, final_url=final, text=probe_text,
                             redirected=bool(chain))
    j = classify(capture, probe=probe, cited_url=cited)
    assert isinstance(j.verdict, Verdict)
    assert j.reason


@pytest.mark.parametrize(("a", "b", "same"), [
    ("http://example.org/a", "http://example.org/a", True),
    ("http://example.org/a", "https://www.example.org:443/a/#top", True),
    ("http://EXAMPLE.org:80/a?x=1", "https://example.org/a/?x=1", True),
    ("http://127.1/a", "http://127.0.0.1/a/", True),
    ("http://example.org/a", "http://example.org/b", False),
    ("http://example.org/a?x=1", "http://example.org/a?x=2", False),
    ("http://example.org:8080/a", "http://example.org/a", False),
    ("http://example.org/a", "http://example.com/a", False),
    ("http://example.org:bad/a", "http://example.org:bad/a", True),
    ("http://example.org:bad/a", "http://example.org/a", False),
])
def test_same_address_but_for_scheme_www_default_port_slash_and_fragment(
        a: str, b: str, same: bool) -> None:
    from archiver.classify import _same_address

    assert _same_address(a, b) is same
    assert _same_address(b, a) is same
