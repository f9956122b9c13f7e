"""The claim-to-evidence report: build a ``Report`` and render it as JSON, HTML, Markdown, CSV.

Renderers are pure (a ``Report`` in, a string out); ``write_reports`` is the one function
that writes files::

    report = build_report(source, document, links, generated_at=utcnow(), root=settings.root)
    write_reports(report, settings.archive.reports_dir / source.id)
"""

from archiver.report.model import Entry, Report, Summary, build_report
from archiver.report.render_csv import render_csv
from archiver.report.render_html import render_html
from archiver.report.render_json import render_json
from archiver.report.render_md import render_md
from archiver.report.write import write_reports

__all__ = [
    "Entry",
    "Report",
    "Summary",
    "build_report",
    "render_csv",
    "render_html",
    "render_json",
    "render_md",
    "write_reports",
]
