"""``Report`` → ``report.html``: one self-contained page that works offline, from a USB stick.

The page inlines its stylesheet (``report.css``), script (``report.js``) and chart (SVG); it
loads nothing. A Content-Security-Policy forbids every external load and allows only the
page's own style and script, by hash, so even a markup injection could not run script.
Everything that came from the document or the web (claims, footnote text, URLs, titles,
excerpts, reasons) goes through ``html.escape``; URLs become ``href`` only when they are
http(s). The script is progressive enhancement (verdict filter, search): without it every
footnote is listed.

Layout: masthead; run notes; summary (figures, evidence recovered for failing links, a bar
chart of link health, what each verdict means); what changed since the last check; the claims
in document order, one block per footnote with ``id="fn-N"`` and, for each failing link, a
line saying whether its evidence was recovered; document findings; run details. Each cited
link carries Robust Links attributes (``data-originalurl``, ``data-versionurl``,
``data-versiondate``).

Our captures are linked to their replay in ``archiver serve`` (pywb on its default address,
``REPLAY_BASE`` + ``<14-digit UTC timestamp>/<url>``), which a person can open once the
server runs, wherever the report file was copied; the WARC file, record id, offset and length
are given as text, to cite and to find the record without the server.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from string import Template

from archiver import __version__
from archiver.models import Change, LinkRecord, isoformat
from archiver.replay import COLLECTION
from archiver.report.escape import esc, is_web
from archiver.report.escape import esc_often as _esc_often
from archiver.report.model import (
    CHANGE_LABELS,
    EVIDENCE_IA,
    EVIDENCE_NONE,
    EVIDENCE_OURS,
    EVIDENCE_UNKNOWN,
    UNSUPPORTED,
    Entry,
    Report,
    entry_keys,
    evidence_kind,
    evidence_text,
    iso,
    memento_offset_days,
    verdict_description,
    verdict_key,
    verdict_label,
)
from archiver.report.render_support import support_html, support_section

__all__ = ["REPLAY_BASE", "esc", "render_html", "replay_url"]

#: Where ``archiver serve`` replays the archive by default (``cli.py``: 127.0.0.1, port 8080;
#: ``replay.py``: the collection's name).
REPLAY_BASE = f"http://127.0.0.1:8080/{COLLECTION}/"
SERVE_HINT = "start <code>archiver serve</code> in the project folder to open"


@cache
def _asset(name: str) -> str:
    return resources.files("archiver.report").joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document (text).

    Links to our captures go to their replay in ``archiver serve`` (see the module
    docstring), so the page can be copied anywhere. Raises only if the package's template
    files are missing (a broken install).
    """
    return "".join(render_html_chunks(report))


#: Stands for the body while the template is filled, to split the page around it.
_BODY = "\x00body\x00"


def render_html_chunks(report: Report) -> Iterator[str]:
    """``render_html(report)`` in pieces (the page around the body, each section, each
    footnote's entry), for writing a report of many thousand links with flat memory."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = (
        "default-src 'none'; "
        f"style-src {_sha256(css)}; script-src {_sha256(js)}; "
        "img-src data: 'self'; base-uri 'none'; form-action 'none'"
    )
    page = Template(_asset("report.html")).substitute(
        csp=esc(csp),
        generator=esc(f"archiver {__version__}"),
        title=esc(f"Link report: {report.title}"),
        css=css,
        js=js,
        body=_BODY,
    )
    before, after = page.split(_BODY, 1)
    yield before
    yield "\n".join([_masthead(report), '<main class="wrap">', _notes(report),
                     _summary(report), _changes(report), support_section(report)])
    yield "\n"
    yield from _claims(report)
    yield "\n"
    yield from _findings(report)
    yield "\n".join(["", _footer(report), "</main>"])
    yield after


# ── sections ────────────────────────────────────────────────────────────────────


def _masthead(report: Report) -> str:
    meta = [f"Source <code>{esc(report.source_path)}</code>"]
    if report.source.published:
        meta.append(f"published {esc(report.source.published.isoformat())}")
    meta.append(f"generated <time datetime=\"{esc(isoformat(report.generated_at))}\">"
                f"{esc(_human_time(report))}</time>")
    return (
        '<header class="masthead"><div class="wrap">'
        '<p class="eyebrow">Claim-to-evidence report</p>'
        f"<h1>{esc(report.title)}</h1>"
        f'<p class="meta">{" · ".join(meta)}</p>'
        "</div></header>"
    )


def _human_time(report: Report) -> str:
    return isoformat(report.generated_at).replace("T", " ").replace("Z", " UTC")


def _notes(report: Report) -> str:
    if not report.notes:
        return ""
    items = "".join(f"<p>{esc(note)}</p>" for note in report.notes)
    return ('<section class="notes" role="alert" aria-label="Notes about this run">'
            f"{items}</section>")


def _summary(report: Report) -> str:
    s = report.summary
    figures = [
        ("claims", "Claims", s.claims, ""),
        ("footnotes", "Footnotes", s.footnotes, ""),
        ("urls", "Cited URLs", s.urls, ""),
        ("healthy", "Healthy", s.healthy, "good"),
        ("failing", "Failing", s.failing, "bad" if s.failing else ""),
        ("captured", "Captured", s.captured, ""),
        ("mementos", "Internet Archive copies", s.mementos, ""),
        ("no-copy", "Failing, no copy", s.no_copy, "bad" if s.no_copy else ""),
        ("unsupported", "Unsupported claims", s.unsupported_claims, ""),
    ]
    if s.unchecked:
        figures.insert(5, ("unchecked", "Not checked", s.unchecked, ""))
    cells = "".join(
        f'<div class="figure {cls}"><dt>{esc(label)}</dt>'
        f'<dd data-count="{esc(key)}">{n}</dd></div>'
        for key, label, n, cls in figures
    )
    rows = "".join(
        f'<tr><td><span class="badge v-{esc(key)}">{esc(verdict_label(key))}</span></td>'
        f'<td class="num" data-verdict-count="{esc(key)}">{n}</td>'
        f"<td>{esc(verdict_description(key))}</td></tr>"
        for key, n in s.by_verdict
    )
    legend = (
        '<details class="legend"><summary>What the verdicts mean</summary>'
        "<table><thead><tr><th>Verdict</th><th>URLs</th><th>Meaning</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details>"
    )
    return (
        '<section id="summary" class="card" aria-labelledby="summary-h">'
        '<h2 id="summary-h">Summary</h2>'
        f'<div class="summary-grid"><dl class="figures">{cells}</dl>{_chart(report)}</div>'
        f"{_evidence_summary(report)}{legend}</section>"
    )


def _evidence_summary(report: Report) -> str:
    """One sentence: where the evidence of the failing links survives, with the counts."""
    s = report.summary
    if not s.failing:
        return ""

    def count(kind: str) -> str:
        return f'<strong data-evidence-count="{esc(kind)}">{s.evidence_count(kind)}</strong>'

    return (
        f'<p class="evidence-summary">Evidence recovered for the {s.failing} failing links: '
        f"ours (Internet Archive copy stored in our WARC): {count(EVIDENCE_OURS)} · "
        f"Internet Archive only: {count(EVIDENCE_IA)} · "
        f'<span class="lost">none (no archived copy found): {count(EVIDENCE_NONE)}</span>'
        f" · not looked up (archive not reached, or rescue disabled): "
        f"{count(EVIDENCE_UNKNOWN)}</p>"
    )


def _chart(report: Report) -> str:
    """A horizontal bar per verdict: distinct URLs with that verdict."""
    counts = report.summary.by_verdict
    if not counts:
        return '<p class="chart">No cited URLs.</p>'
    row, label_w, bar_w, top = 22, 132, 250, 2
    biggest = max(n for _, n in counts)
    height = top * 2 + row * len(counts)
    parts = []
    for i, (key, n) in enumerate(counts):
        y = top + i * row
        width = max(2.0, bar_w * n / biggest)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f"{esc(verdict_label(key))}</text>"
            f'<rect class="bar v-{esc(key)}" x="{label_w}" y="{y + 3}" width="{width:.1f}" '
            f'height="16" rx="3"/>'
            f'<text class="n" x="{label_w + width + 6:.1f}" y="{y + 15}">{n}</text>'
        )
    total = report.summary.urls
    desc = ", ".join(f"{verdict_label(k)}: {n}" for k, n in counts)
    return (
        '<figure class="chart">'
        f'<svg viewBox="0 0 {label_w + bar_w + 50} {height}" role="img" '
        f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-title">Link health of {total} cited URLs. {esc(desc)}</title>'
        f'{"".join(parts)}</svg>'
        f"<figcaption>Link health: distinct cited URLs by verdict.</figcaption></figure>"
    )


def _changes(report: Report) -> str:
    """Changes first; links that were failing and still are go in a collapsed list below,
    so a quiet week does not push the claims down the page."""
    if not report.changes:
        return ""
    news = [c for c in report.changes if c.kind.value != "still_failing"]
    still = [c for c in report.changes if c.kind.value == "still_failing"]
    head = ("<thead><tr><th>Change</th><th>URL</th><th>Verdict</th><th>Footnotes</th>"
            "<th>Details</th></tr></thead>")
    parts = ['<section id="changes" class="card" aria-labelledby="changes-h">'
             '<h2 id="changes-h">What changed since the last check</h2>']
    if news:
        rows = "".join(_change_row(change) for change in news)
        parts.append(f"<table>{head}<tbody>{rows}</tbody></table>")
    else:
        parts.append('<p class="quiet">No link changed since the last check.</p>')
    if still:
        rows = "".join(_change_row(change) for change in still)
        parts.append(f"<details><summary>Still failing: {len(still)} link(s)</summary>"
                     f"<table>{head}<tbody>{rows}</tbody></table></details>")
    parts.append("</section>")
    return "".join(parts)


def _change_row(change: Change) -> str:
    kind = change.kind.value
    now = change.verdict.value if change.verdict else "unchecked"
    verdict = f'<span class="badge v-{esc(now)}">{esc(verdict_label(now))}</span>'
    if change.previous_verdict is not None:
        before = change.previous_verdict.value
        verdict = (f'<span class="badge v-{esc(before)}">{esc(verdict_label(before))}</span>'
                   f" → {verdict}")
    notes = ", ".join(f'<a href="#fn-{n}">{n}</a>' for n in change.footnotes)
    details = []
    if change.since is not None:
        details.append(f"since {esc(isoformat(change.since))}")
    if change.similarity is not None:
        details.append(f"text {change.similarity:.0%} similar")
    if change.reason:
        details.append(esc(change.reason))
    # data-label: the column's name, shown before each cell where the table is stacked
    # (narrow screens).
    return (
        f'<tr><td class="kind kind-{esc(kind)}">{esc(CHANGE_LABELS.get(kind, kind))}</td>'
        f'<td class="url" data-label="URL">{_link_text(change.url)}</td>'
        f'<td data-label="Verdict">{verdict}</td><td data-label="Footnotes">{notes}</td>'
        f"<td>{'; '.join(details)}</td></tr>"
    )


def _claims(report: Report) -> Iterator[str]:
    entry_counts: dict[str, int] = {}
    for keys in entry_keys(report):
        for key in keys:
            entry_counts[key] = entry_counts.get(key, 0) + 1
    order = [k for k, _ in report.summary.by_verdict]
    if entry_counts.get(UNSUPPORTED):
        order.append(UNSUPPORTED)
    checks = "".join(
        f'<label class="check"><input type="checkbox" name="verdict" value="{esc(key)}" checked>'
        f'<span class="badge v-{esc(key)}">{esc(verdict_label(key))}</span>'
        f'<span class="n" data-footnote-count="{esc(key)}">{entry_counts.get(key, 0)}'
        '<span class="visually-hidden"> footnotes</span></span></label>'
        for key in order
    )
    # The chips count footnotes (what the filter shows), the chart and the verdict table
    # count distinct URLs: each says which.
    filters = (
        '<form id="filters" class="card" role="search" hidden>'
        "<fieldset><legend>Show footnotes whose links are "
        '<span class="hint">(number of footnotes; a footnote with several links counts '
        "under each of their verdicts, the chart above counts URLs)</span></legend>"
        f'<div class="checks">{checks}</div></fieldset>'
        '<div class="controls"><label for="search">Search</label>'
        '<input id="search" type="search" placeholder="Words in a claim, footnote or URL" '
        'autocomplete="off">'
        '<button type="button" id="show-problems">Problems only</button>'
        '<button type="button" id="show-all">Show all</button></div>'
        '<p id="shown" aria-live="polite"></p></form>'
    )
    yield ('<section id="claims" aria-labelledby="claims-h">'
           '<h2 id="claims-h">Claims and their evidence, in document order</h2>'
           f'{filters}<ol class="entries">')
    for n, entry in enumerate(report.entries):
        yield ("\n" if n else "") + _entry(entry, report)
    yield "</ol></section>"


def _entry(entry: Entry, report: Report) -> str:
    anchor = esc(entry.anchor)
    head = [f'<h3 class="fn-title"><a class="fn-num" href="#{anchor}">'
            f"Footnote {entry.number}</a></h3>"]
    if entry.unsupported:
        head.append(f'<span class="badge v-{UNSUPPORTED}">Unsupported by web evidence</span>')
    if entry.orphan:
        head.append('<span class="badge plain">No marker cites it</span>')
    parts = [f'<div class="fn-head">{"".join(head)}</div>']
    for claim in entry.claims:
        parts.append(
            f'<blockquote class="claim"><p>{esc(claim.text)}</p>'
            f'<span class="line">line {claim.line}</span></blockquote>'
        )
    if entry.orphan:
        parts.append('<p class="orphan">No marker in the text cites this footnote.</p>')
    parts.append(f'<p class="fn-text"><strong>{entry.number}</strong> '
                 f"{esc(entry.footnote.text)}</p>")
    if entry.unsupported:
        parts.append('<p class="unsupported">This footnote cites no URL: the claim is '
                     "<strong>unsupported by web evidence</strong>.</p>")
    else:
        links = "".join(_link(link, report) for link in entry.links)
        parts.append(f'<ul class="links">{links}</ul>')
        parts.append(support_html(entry, report))
    return (
        f'<li class="fn" id="{anchor}" data-footnote="{entry.number}" '
        f'data-verdicts="{_esc_often(" ".join(entry.keys))}">{"".join(parts)}</li>'
    )


def _link(link: LinkRecord, report: Report) -> str:
    key = verdict_key(link)
    url = esc(link.url)
    version_url, version_date = _version(link, report)
    robust = f' data-originalurl="{url}"'
    if version_url:
        robust += f' data-versionurl="{esc(version_url)}"'
    if version_date:
        robust += f' data-versiondate="{_esc_often(version_date)}"'
    main = (
        f'<div class="link-main">{_badge(key)} '
        f"{_link_text(link.url, css='url', extra=robust, escaped=url)}</div>"
    )
    reason = []
    if link.http_status is not None:
        reason.append(f'<span class="status">HTTP {link.http_status}</span>')
    reason.append(_esc_often(link.reason or verdict_description(key)))
    if link.final_url and link.final_url != link.url:
        reason.append(f"ended at {_link_text(link.final_url, css='url')}")
    if link.state is not None and link.state._value_ != "ok":
        since = f" since {iso(link.failing_since)}" if link.failing_since else ""
        reason.append(_esc_often(f"{link.state._value_}{since}"))
    parts = [main, f'<p class="reason">{" · ".join(reason)}</p>']
    if link.title:
        parts.append(f'<p class="page-title">Page title: <cite>{esc(link.title)}</cite></p>')
    if link.excerpt:
        parts.append(f'<blockquote class="excerpt" aria-label="Captured text">'
                     f"<p>{esc(link.excerpt)}</p></blockquote>")
    parts.append(_evidence_line(link, report))
    parts.append(f'<dl class="evidence">{_evidence(link, report, url)}</dl>')
    key = _esc_often(key)
    return f'<li class="link v-{key}" data-verdict="{key}">{"".join(parts)}</li>'


@lru_cache(maxsize=64)
def _badge(key: str) -> str:
    """A verdict's badge."""
    return f'<span class="badge v-{esc(key)}">{esc(verdict_label(key))}</span>'


def _evidence_line(link: LinkRecord, report: Report) -> str:
    """For a failing link, the sentence saying whether its evidence was recovered; the
    ``data-offset-days`` attribute carries the signed days from publication to the copy."""
    kind = evidence_kind(link)
    if kind is None:
        return ""
    text = esc(evidence_text(link, report.source.published))
    days = memento_offset_days(link, report.source.published)
    offset = f' data-offset-days="{days:g}"' if days is not None else ""
    if kind == EVIDENCE_NONE:
        return (f'<p class="evidence-line lost" data-evidence="{kind}"{offset}>'
                f"{text}</p>")
    if kind == EVIDENCE_UNKNOWN:  # not "lost": nobody knows yet, the next run asks again
        return f'<p class="evidence-line unknown" data-evidence="{kind}">{text}</p>'
    return (f'<p class="evidence-line" data-evidence="{kind}"{offset}>'
            f"<strong>Evidence recovered:</strong> {text}</p>")


def _provenance_row(facts: dict[str, str | None]) -> str:
    """The capture's provenance at a glance (see archiver.provenance.glance)."""
    parts = []
    if facts.get("server_ip"):
        parts.append(f"server {_esc_often(facts['server_ip'])}")
    if facts.get("certificate_subject"):
        parts.append(f"certificate {esc(facts['certificate_subject'])} "
                     f"(SHA-256 <code>{esc(facts.get('certificate_sha256') or '')}</code>)")
    digest = facts.get("payload_sha256") or facts.get("payload_digest")
    if digest:
        parts.append(f"payload SHA-256 <code>{esc(digest)}</code>")
    if facts.get("record_sha256"):
        parts.append(f"record SHA-256 <code>{esc(facts['record_sha256'])}</code>")
    return f"<dt>Provenance</dt><dd>{' · '.join(parts)}</dd>"


def _evidence(link: LinkRecord, report: Report, url: str | None = None) -> str:
    """The evidence rows of ``link``; ``url`` is ``esc(link.url)`` when known."""
    rows = []
    if link.capture is not None:
        if link.captured_at:
            at = _esc_often(iso(link.captured_at))
            when = f'<time datetime="{at}">{at}</time> · '
        else:
            when = ""
        # esc(replay_url(...)): the base and the stamp need no escaping.
        replay = (esc(replay_url(link.url, link.captured_at)) if url is None else
                  REPLAY_BASE + _stamp(link.captured_at) + url if link.captured_at else
                  REPLAY_BASE + url)
        rows.append(
            f"<dt>Our capture</dt><dd>{when}"
            f'<a class="replay" href="{replay}">replay</a> ({SERVE_HINT}) · '
            f"record <code>{esc(link.capture.record_id)}</code> in "
            f"<code>{_esc_often(link.capture.path)}</code> "
            f"(offset {link.capture.offset}, {link.capture.length} bytes)"
            + (f", payload digest <code>{esc(link.payload_digest)}</code>"
               if link.payload_digest else "") + "</dd>"
        )
        rows.append(_browser_rows(link))
        if link.provenance:
            rows.append(_provenance_row(dict(link.provenance)))
    elif link.verdict is not None:
        rows.append("<dt>Our capture</dt><dd>nothing could be captured</dd>")
    if link.memento is not None:
        stamp = iso(link.memento.datetime)
        rows.append(
            "<dt>Internet Archive</dt><dd>"
            f"{_link_text(link.memento.url, label=f'copy of {stamp}')}</dd>"
        )
    if link.rescued is not None:
        raw = link.memento.raw_url if link.memento is not None else None
        replay = (f'<a class="replay" href="{esc(replay_url(raw, None))}">replay</a> '
                  f"({SERVE_HINT}) · " if raw and _web(raw) else "")
        rows.append(
            f"<dt>Rescued copy</dt><dd>{replay}"
            f"record <code>{esc(link.rescued.record_id)}</code> in "
            f"<code>{esc(link.rescued.path)}</code> "
            f"(offset {link.rescued.offset}, {link.rescued.length} bytes)</dd>"
        )
    if link.checked_at is not None:
        rows.append(f"<dt>Checked</dt><dd>{_esc_often(iso(link.checked_at))}</dd>")
    if not rows:
        rows.append("<dt>Archive</dt><dd>not checked yet</dd>")
    return "".join(rows)


def _browser_rows(link: LinkRecord) -> str:
    """A browser capture's screenshot (a thumbnail of the top opening the full page, from
    the files ``write_screenshots`` puts next to the report), or why the browser was not
    used for a link that wanted it."""
    from archiver.report.model import screenshot_files

    if link.screenshot is not None:
        full, top = screenshot_files(link.screenshot)
        profile = " with a logged-in profile" if link.profile else ""
        return (f"<dt>Screenshot</dt><dd>captured in a browser{profile}<br>"
                f'<a href="{esc(full)}"><img src="{esc(top)}" width="240" '
                f'alt="Screenshot of {esc(link.final_url or link.url)}"></a></dd>')
    if link.browser_lost:
        return (f"<dt>Browser</dt><dd>not captured in a browser: "
                f"{esc(link.browser_lost)}</dd>")
    return ""


#: Findings per piece of ``_findings``.
_FINDINGS_PER_PIECE = 1000


def _findings(report: Report) -> Iterator[str]:
    """The document's findings section in pieces (one per ``_FINDINGS_PER_PIECE`` items):
    a document of many thousand URLs has as many findings."""
    findings = report.document.findings
    if not findings:
        return
    yield ('<section id="findings" class="card" aria-labelledby="findings-h">'
           f'<h2 id="findings-h">Document findings ({len(findings)})</h2>'
           '<ul class="findings">')
    for start in range(0, len(findings), _FINDINGS_PER_PIECE):
        yield "".join(
            f'<li><span class="sev sev-{esc(f.severity)}">{esc(f.severity)}</span> '
            f"<code>{esc(f.code)}</code>"
            + (f' <a href="#fn-{f.footnote}">footnote {f.footnote}</a>' if f.footnote else "")
            + (f" line {f.line}" if f.line else "")
            + f": {esc(f.message)}</li>"
            for f in findings[start:start + _FINDINGS_PER_PIECE]
        )
    yield "</ul></section>"


def _footer(report: Report) -> str:
    details = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in report.run.items())
    run = f"<dl>{details}</dl>" if details else ""
    return (
        f'<footer class="page-foot"><p>Written by archiver {esc(__version__)}. Our captures '
        "are records in WARC files under <code>archive/</code>. Their <em>replay</em> links "
        f"open them as they were captured once <code>archiver serve</code> runs in the "
        f"project folder (it serves <code>{esc(REPLAY_BASE)}</code>); the WARC files also "
        f"open in ReplayWeb.page.</p>{run}</footer>"
    )


# ── helpers ─────────────────────────────────────────────────────────────────────


_web = is_web


def _link_text(url: str, *, css: str = "", label: str | None = None, extra: str = "",
               escaped: str | None = None) -> str:
    """A link to ``url`` when it is http(s); otherwise the URL as text (never a
    ``javascript:`` or ``data:`` href). ``escaped``: ``esc(url)``, when already made."""
    cls = f' class="{css}"' if css else ""
    if escaped is None:
        escaped = esc(url)
    text = escaped if label is None else esc(label)
    if _web(url):
        return f'<a{cls} href="{escaped}"{extra}>{text}</a>'
    return f"<span{cls}{extra}>{text}</span>"


def replay_url(url: str, moment: datetime | None) -> str:
    """The address of ``url``'s capture taken at ``moment`` in ``archiver serve`` (pywb picks
    the capture nearest to that second; without ``moment``, the newest)."""
    if moment is None:
        return REPLAY_BASE + url
    return REPLAY_BASE + _stamp(moment) + url


@lru_cache(maxsize=4096)
def _stamp(moment: datetime) -> str:
    """``moment``'s 14-digit UTC timestamp and a slash, as in a replay address."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S") + "/"


def _version(link: LinkRecord, report: Report) -> tuple[str | None, str | None]:
    """Robust Links version: the Internet Archive memento when there is one (others can
    follow it), else the replay of our own capture in ``archiver serve``."""
    if link.memento is not None:
        return link.memento.url, iso(link.memento.datetime)
    if link.capture is not None:
        when = iso(link.captured_at) if link.captured_at else None
        return replay_url(link.url, link.captured_at), when
    return None, None
