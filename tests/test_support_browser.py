"""Claim support in the HTML report, in a real headless Chromium: the facts are marked in the
claim, each source shows its level and passages, a hostile passage stays text, nothing is
fetched, and the section does not widen a narrow page."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from archiver.report import write_reports
from archiver.support import EvidenceText, assess
from tests.report_samples import sample_report
from tests.test_report_browser import browser  # noqa: F401 - the module's fixture

pytestmark = pytest.mark.browser

HOSTILE = ("<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2> "
           "18 августа суд оштрафовал Серикжана Билаша на 138 900 тенге по статье 489 КоАП. "
           + "длинноесловобезпробелов" * 20)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    report = sample_report()
    supports = []
    for entry in report.entries:
        if not entry.claims:
            continue
        claims = tuple(c.text for c in entry.claims)
        for i, link in enumerate(entry.links):
            text = HOSTILE if entry.number in (51, 52) else (
                "Статья 274. Распространение заведомо ложной информации" if i == 0 else "")
            evidence = EvidenceText(text, "html", "ours") if text else None
            supports.append(assess(entry.number, link.url, claims, evidence))
    report = replace(report, support=tuple(supports))
    folder = tmp_path_factory.mktemp("project") / "reports" / report.source.id
    write_reports(report, folder)
    return report, folder


def test_support_is_shown_inert_and_fits_a_narrow_page(browser, written,  # noqa: F811
                                                       artifacts: Path) -> None:
    _report, folder = written
    context = browser.new_context(viewport={"width": 420, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((folder / "report.html").as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(200)

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator(".support script, .support img").count() == 0
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    counts = page.locator("#support .support-counts").inner_text()
    assert "Supported" in counts and "Unknown" in counts

    block = page.locator("#fn-51 .support")
    assert block.locator("mark.fact.k-amount").all_inner_texts() == ["138 900 KZT", "275 EUR"]
    assert block.locator("mark.fact.k-law").inner_text() == "Article 489"
    source = block.locator(".support-source").first
    assert source.get_attribute("data-support") == "supported"
    marked = source.locator("tr.f-found q.passage mark").all_inner_texts()
    assert marked == ["18 августа", "Билаша", "138 900 тенге", "статье 489"], marked
    assert source.locator("q.passage", has_text="<script>").count() >= 1  # shown as text

    # Nothing in the claim support blocks reaches past the window's right edge (long words
    # and URLs wrap), so the section adds no horizontal scrolling of its own.
    widest = page.evaluate(
        "Math.max(...Array.from(document.querySelectorAll('#support, #support *, .support, "
        ".support *')).map(e => e.getBoundingClientRect().right))")
    assert widest <= page.evaluate("document.documentElement.clientWidth") + 1, widest
    block.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "support-narrow.png"), full_page=False)
    page.set_viewport_size({"width": 1100, "height": 900})
    block.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "support-wide.png"), full_page=False)
    context.close()
