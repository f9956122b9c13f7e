"""Adversarial checks of the fetch-time claim support, the report helper and the host
gate's turns against what ``archiver report`` and the gate's contract say."""

from __future__ import annotations

import re

import pytest

from tests.test_fast_paths import court_pages


def _timeless(data: bytes) -> bytes:
    return re.sub(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z| UTC)", b"T", data)


def _hostile_pages(web) -> list[str]:
    """Pages whose text or address is odd: character references of CR, raw CRs, U+FDD0,
    a redirect to another cited page, a fragment, a plain-text page."""
    from tests.webserver import Reply, redirect

    html = {"Content-Type": "text/html; charset=utf-8"}
    urls = court_pages(web, 4)
    odd = {
        "/cr": "<p>In 2010 the court&#13;fined 0 tenge&#x0D;in&#13;Almaty.</p>",
        "/raw": "<p>In 2011 the court\rfined 1000\r\ntenge in Almaty.</p>",
        "/fdd0": "<p>In 2012 the court \ufdd0fined 2000 tenge in Almaty.\ufdd0</p>",
        "/amp": "<p>A &amp; B &#38; C: in 2013 the court fined 3000 tenge in Almaty.</p>",
    }
    for path, body in odd.items():
        web.route(path, Reply(200, f"<html><body>{body}</body></html>".encode(), html))
        urls.append(web.url(path))
    web.route("/moved", redirect("/p/1"))
    urls.append(web.url("/moved"))
    urls.append(web.url("/p/2#section"))
    web.route("/plain", Reply(200, b"In 2010 the court fined 0 tenge in Almaty.",
                              {"Content-Type": "text/plain; charset=utf-8"}))
    urls.append(web.url("/plain"))
    return urls


@pytest.mark.parametrize("workers", [0, 2])
def test_a_run_with_odd_pages_reports_what_a_rebuild_reports(tmp_path, monkeypatch,
                                                             workers) -> None:
    """Claim support and excerpts judged during the fetch on odd pages (CR references, raw
    CRs, U+FDD0, a redirect to another cited page, a fragment, plain text), with claims in
    odd characters: the run's reports are those ``archiver report`` rebuilds."""
    from archiver import pipeline
    from tests.test_fast_paths import run_briefing

    vouched: list[str] = []
    vouch = pipeline._Prejudged.vouch

    def watched(self, each):
        for url, facts in vouch(self, each):
            if isinstance(facts.text, pipeline._Vouched):
                vouched.append(url)
            yield url, facts

    monkeypatch.setattr(pipeline._Prejudged, "vouch", watched)
    monkeypatch.setattr(pipeline, "_PREJUDGE_ALLOWANCE", 1e9)  # all judged, however slow
    from tests.test_run import call
    from tests.webserver import WebServer

    with WebServer() as web:
        urls = _hostile_pages(web)
        cited = urls + urls[:2]
        claims = " ".join(
            f"In 20{10 + n % 4} the court fined {(n % 4) * 1000} tenge in Almaty "
            f"(100% \u202e{n}\u202c \ufdd0).[^{n}]" for n in range(1, len(cited) + 1))
        config = run_briefing(tmp_path, cited, claims)
        text = config.read_text()
        config.write_text(text.replace("[fetch]\n", f"[fetch]\nworkers = {workers}\n"))
        vouched.clear()
        # The supports the first run kept deleted: this run judges them during its fetch
        # (it would take the kept ones instead: support_store).
        forget_kept_supports(config)
        assert call("run", "--config", str(config), "--refresh")[0] == 0
    assert len(set(vouched)) >= len(urls) - 2, vouched  # judged during the fetch
    folder = tmp_path / "reports" / "brief"
    ran = {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    # Rebuilt from the supports the run kept, and judged afresh: the run's reports.
    for forget in (False, True):
        if forget:
            forget_kept_supports(config)
        assert call("report", "--config", str(config))[0] == 0
        rebuilt = {p: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        assert ran.keys() == rebuilt.keys()
        for path in ran:
            assert _timeless(ran[path]) == _timeless(rebuilt[path]), (path, forget)


def forget_kept_supports(config) -> None:
    """Delete the claim supports the project of ``config`` keeps (``support_store``)."""
    import sqlite3

    db = sqlite3.connect(config.parent / "archive" / "catalog.sqlite3")
    try:
        assert db.execute("DELETE FROM judged_supports").rowcount > 0
        db.commit()
    finally:
        db.close()



@pytest.mark.usefixtures("fetch_transport")
def test_probes_timeouts_and_cancellations_never_put_more_than_per_host_in_flight(
        web, monkeypatch) -> None:
    """Pages, soft-404 probes (which take the next turn first), requests that time out and
    fetches cancelled while they wait for a turn or while they are in flight: no more than
    ``per_host`` of them hold a turn of the host's gate at once, and once all ended every
    turn is back and nobody waits (read from the gate's entries and exits)."""
    import asyncio
    from dataclasses import replace

    from archiver import fetch
    from archiver.fetch import Fetcher
    from tests.test_fetch import FAST
    from tests.webserver import Reply

    held = 0
    most = 0
    gates: list[fetch._HostGate] = []
    enter, leave = fetch._HostGate._enter, fetch._Slot.__aexit__

    async def entered(gate, first: bool = False) -> None:
        nonlocal held, most
        await enter(gate, first)
        gates.append(gate)
        held += 1
        most = max(most, held)

    async def left(slot, *exc) -> None:
        nonlocal held
        held -= 1
        await leave(slot, *exc)

    monkeypatch.setattr(fetch._HostGate, "_enter", entered)
    monkeypatch.setattr(fetch._Slot, "__aexit__", left)
    page = Reply(200, b"<html><body><p>ok</p></body></html>", {"Content-Type": "text/html"})
    web.route("/p", Reply(200, page.body, page.headers, delay=0.05))
    web.route("/probe", Reply(200, page.body, page.headers, delay=0.05))
    web.route("/slow", Reply(200, page.body, page.headers, delay=0.6))
    settings = replace(FAST, per_host=2, concurrency=16, timeout=0.3, retries=0)

    async def go() -> None:
        async with Fetcher(settings, None) as fetcher:
            tasks = []
            for n in range(40):
                if n % 5 == 0:
                    tasks.append(asyncio.ensure_future(fetcher.probe(web.url(f"/probe?{n}"))))
                elif n % 7 == 0:
                    tasks.append(asyncio.ensure_future(fetcher.fetch(web.url(f"/slow?{n}"))))
                else:
                    tasks.append(asyncio.ensure_future(fetcher.fetch(web.url(f"/p?{n}"))))
            for step in range(8):  # cancel some, waiting or in flight
                await asyncio.sleep(0.03)
                tasks[3 + 4 * step].cancel()
                tasks[5 * step].cancel()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
            gate = gates[0]
            assert gate._slots.waiting == 0
            assert gate._slots._free == 2
            await asyncio.wait_for(asyncio.gather(
                fetcher.fetch(web.url("/p?a")), fetcher.fetch(web.url("/p?b"))), 5)

    asyncio.run(go())
    assert held == 0
    assert most == 2, most


def test_a_page_text_that_packs_small_but_is_long_is_left_to_the_tail(tmp_path) -> None:
    """A page text of millions of characters that repeat (an 8 MB page, well within
    ``max_body``) packs to less than ``_PREJUDGE_UP_TO`` bytes: judging it during the fetch
    would hold the event loop up for a second or more, so it is left to the tail, as a
    long text is; a text of ordinary length packed as small is still judged."""
    from archiver import pipeline
    from archiver.capturing import pack
    from archiver.parse import read_document
    from tests.test_fast_paths import _finished

    url, short = "http://127.0.0.1:9/long", "http://127.0.0.1:9/short"
    brief = tmp_path / "brief.md"
    brief.write_text("# B\n\nIn 2013 the court fined 5000 tenge in Almaty.[^1] In 2014 the "
                     f"court fined 6000 tenge.[^2]\n\n[^1]: See <{url}>.\n[^2]: See <{short}>.\n",
                     encoding="utf-8")
    document = read_document(brief)
    sentence = "In 2013 the court fined 1000 tenge in Almaty and 12 people were detained. "
    long_text = pack(sentence * (4_000_000 // len(sentence)))
    short_text = pack(sentence * 100)
    assert long_text is not None and short_text is not None
    assert len(long_text) <= pipeline._PREJUDGE_UP_TO  # it packs small
    prejudged = pipeline._Prejudged({"brief": document})
    prejudged._since = -1e9  # as if the fetch had lasted long: time to judge them all
    prejudged.take(_finished(short, [2], short_text))
    prejudged.take(_finished(url, [1], long_text))
    assert short in prejudged
    assert url not in prejudged
