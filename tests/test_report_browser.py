"""The HTML report in a real headless Chromium (Debian's /usr/bin/chromium, never downloaded).

The report is written where a real run writes it (``reports/SOURCE_ID/`` under a project
folder) and opened from a ``file://`` URL; the test checks what a reader sees: the summary's
counts, the verdict filter and search hiding and showing footnotes, ``#fn-N`` deep links,
the hostile page title staying inert, and that the page asks the network for nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from archiver.models import Verdict
from archiver.report import write_reports
from tests.report_samples import OFFLINE_NOTE, sample_report

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no headless browser: {CHROMIUM} is not installed (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The sample report written where a run writes it: PROJECT/reports/kazakhstan-2020/."""
    report = sample_report()
    folder = tmp_path_factory.mktemp("project") / "reports" / report.source.id
    write_reports(report, folder)
    return report, folder


@pytest.fixture
def opened(browser, written):
    """The report loaded in a fresh page; yields (page, report, requests seen, dialogs seen)."""
    report, folder = written
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((folder / "report.html").as_uri())
    page.wait_for_load_state("load")
    yield page, report, requests, dialogs
    context.close()


def _visible(page) -> int:
    return page.locator(".entries > .fn:visible").count()


def test_summary_shows_the_right_counts(opened) -> None:
    page, report, _, _ = opened
    document = report.document
    assert page.locator('[data-count="claims"]').inner_text() == str(len(document.claims))
    assert page.locator('[data-count="footnotes"]').inner_text() == str(len(document.footnotes))
    assert page.locator('[data-count="urls"]').inner_text() == str(len(document.urls))
    by_verdict = Counter(link.verdict for link in report.links)
    for verdict in (Verdict.OK, Verdict.NOT_FOUND, Verdict.SOFT_404, Verdict.INVALID_URL):
        cell = page.locator(f'[data-verdict-count="{verdict.value}"]')
        assert cell.text_content() == str(by_verdict[verdict])
    assert OFFLINE_NOTE in page.locator(".notes").inner_text()
    assert page.locator("#changes tbody tr").count() == len(report.changes)
    # The chart has one bar per verdict present.
    assert page.locator(".chart rect.bar").count() == len(report.summary.by_verdict)


def test_failing_links_say_whether_evidence_was_recovered(opened) -> None:
    page, report, _, _ = opened
    summary = page.locator("#summary .evidence-summary")
    assert summary.is_visible()
    for kind in ("ours", "internet_archive", "none"):
        cell = summary.locator(f'[data-evidence-count="{kind}"]')
        assert cell.inner_text() == str(report.summary.evidence_count(kind))
    rescued = next(link for link in report.links
                   if link.rescued and link.verdict and not link.verdict.healthy)
    item = page.locator("li.link", has=page.locator(f'[data-originalurl="{rescued.url}"]'))
    line = item.first.locator(".evidence-line")
    assert line.is_visible()
    assert line.inner_text().startswith("Evidence recovered: Internet Archive copy from ")
    assert "stored in our WARC" in line.inner_text()
    lost = page.locator('.evidence-line[data-evidence="none"]')
    assert lost.count() > 0 and lost.first.inner_text() == "No archived copy found"
    assert page.locator('li.link[data-verdict="ok"] .evidence-line').count() == 0


def test_verdict_filter_hides_and_shows_footnotes(opened) -> None:
    page, report, _, _ = opened
    total = len(report.entries)
    assert _visible(page) == total
    with_ok = sum(1 for e in report.entries if "ok" in e.keys)
    assert 0 < with_ok < total
    page.locator('input[name="verdict"][value="ok"]').uncheck()
    assert _visible(page) == sum(1 for e in report.entries if set(e.keys) - {"ok"})
    page.get_by_role("button", name="Problems only").click()
    healthy_only = sum(1 for e in report.entries if set(e.keys) <= {"ok", "redirected"})
    assert _visible(page) == total - healthy_only
    assert f"of {total} footnotes" in page.locator("#shown").inner_text()
    page.get_by_role("button", name="Show all").click()
    assert _visible(page) == total


def test_unsupported_claims_can_be_filtered(opened) -> None:
    page, report, _, _ = opened
    for box in page.locator('input[name="verdict"]').all():
        if box.get_attribute("value") != "unsupported":
            box.uncheck()
    visible = page.locator(".entries > .fn:visible")
    expected = [e.anchor for e in report.entries if not e.footnote.urls]
    assert expected
    assert [item.get_attribute("id") for item in visible.all()] == expected
    for item in visible.all():
        assert "unsupported by web evidence" in item.inner_text().lower()


def test_search_filters_footnotes(opened) -> None:
    page, report, _, _ = opened
    page.locator("#search").fill("Kobeyzinov")
    expected = [e for e in report.entries
                if any("Kobeyzinov" in c.text for c in e.claims) or "Kobeyzinov" in e.footnote.text]
    assert expected
    assert _visible(page) == len(expected)
    page.locator("#search").fill("no such words anywhere zzz")
    assert _visible(page) == 0
    page.locator("#search").fill("")
    assert _visible(page) == len(report.entries)


def test_deep_link_targets_the_footnote_even_when_filtered(opened) -> None:
    page, report, _, _ = opened
    entry = report.entries[len(report.entries) // 2]
    assert page.locator(f"#{entry.anchor}").count() == 1
    # Hide everything, then follow a deep link: the footnote must come back into view.
    page.get_by_role("button", name="Problems only").click()
    page.locator("#search").fill("no such words anywhere zzz")
    page.evaluate(f"location.hash = '#{entry.anchor}'")
    target = page.locator(f"#{entry.anchor}")
    target.wait_for(state="visible")
    targeted = page.evaluate("(document.querySelector(':target') || {}).id")
    assert targeted == entry.anchor
    assert target.is_visible()
    box = target.bounding_box()
    assert box is not None and 0 <= box["y"] < 900


def test_planted_script_does_not_run_and_nothing_is_fetched(opened, artifacts: Path) -> None:
    page, _report, requests, dialogs = opened
    page.wait_for_timeout(200)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    # The hostile title is shown as text, not markup.
    assert page.locator("cite", has_text="<script>window.__pwned=1</script>").count() >= 1
    assert page.locator(".entries script, .entries img").count() == 0
    # javascript: URLs never become links.
    assert page.locator('a[href^="javascript:"]').count() == 0
    assert requests, "the page load itself should have been seen"
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    # Tall enough to show the summary, the changes, the filters and the first claims.
    page.set_viewport_size({"width": 1100, "height": 1750})
    page.screenshot(path=str(artifacts / "report.png"), full_page=False)
    assert (artifacts / "report.png").stat().st_size > 10_000


def test_works_without_javascript(browser, written) -> None:
    report, folder = written
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto((folder / "report.html").as_uri())
    assert page.locator("#filters").is_hidden()
    assert _visible(page) == len(report.entries)
    context.close()


def test_print_shows_every_footnote_without_the_controls(opened) -> None:
    page, report, _, _ = opened
    page.locator("#search").fill("no such words anywhere zzz")
    assert _visible(page) == 0
    page.emulate_media(media="print")
    assert page.locator("#filters").is_hidden()
    assert _visible(page) == len(report.entries)


# Everything wider than the viewport, and how far the page scrolls sideways.
_OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    const name = `${el.tagName.toLowerCase()}.${el.className}`;
    if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5)) {
      wide.push(`${name}: ${Math.round(box.left)}..${Math.round(box.right)}`);
    } else if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0
               && getComputedStyle(el).overflowX === 'visible') {
      wide.push(`${name}: content ${el.scrollWidth} px in ${el.clientWidth} px`);
    }
  }
  return {scroll: document.scrollingElement.scrollWidth, width, wide: wide.slice(0, 10)};
}"""


@pytest.mark.parametrize("width", [1400, 400])
@pytest.mark.parametrize("sample", ["long strings", "briefing"])
def test_nothing_is_wider_than_the_window(browser, tmp_path: Path, width: int,
                                          sample: str) -> None:
    """300-character URLs, messages and titles without a space (and the briefing's own
    report) wrap: the page never scrolls sideways and no element sticks out of the window or
    out of its own box, at desktop and phone widths."""
    from tests.report_samples import long_strings_report

    report = long_strings_report() if sample == "long strings" else sample_report()
    folder = tmp_path / "reports" / report.source.id
    write_reports(report, folder)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto((folder / "report.html").as_uri())
    page.wait_for_load_state("load")
    for details in page.locator("details").all():  # the folded parts count too
        details.evaluate("el => el.open = true")
    found = page.evaluate(_OVERFLOW)
    assert found["scroll"] <= found["width"], found
    assert found["wide"] == [], found
    if sample == "long strings":  # the long texts are all there (wrapped, not cut)
        assert page.locator(".fn").count() == 3
        assert "x" * 200 in page.locator(".reason").first.inner_text().replace("\n", "")
    context.close()
