"""``archiver extract`` and ``archiver lint``: the editor's commands. No network."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archiver.errors import ArchiverError, ConfigError
from archiver.models import Document, Severity

if TYPE_CHECKING:
    from archiver.cli import Output

__all__ = ["extract", "lint"]


def _worst(doc: Document) -> Severity | None:
    ranks = [f.severity for f in doc.findings]
    return max(ranks, key=lambda s: s.rank) if ranks else None


def extract(path: Path, *, fmt: str, io: Output) -> int:
    """Parse one document and print it: the summary line, findings, then every footnote
    with its URLs and claims. Exit 0 without error findings, 1 with, 2 unusable."""
    from archiver.parse import read_document
    from archiver.parse.render import render_text, to_json

    doc = read_document(path)
    if fmt == "json":
        io.json(to_json(doc))
    else:
        io.print(render_text(doc, verbose=True))
    worst = _worst(doc)
    return 1 if worst is Severity.ERROR else 0


def lint(paths: list[Path], *, config: Path, fmt: str, strict: bool, io: Output) -> int:
    """Check documents (default: every source in the config).

    Exit 0 when clean at the failing level (errors; with ``strict`` warnings too), 1 when not,
    2 when a document cannot be read at all (every readable document is still reported).
    """
    from archiver.parse import read_document
    from archiver.parse.render import render_text, to_json

    if not paths:
        from archiver.config import load_settings

        settings = load_settings(config)
        if not settings.sources:
            raise ConfigError(f"{config}: no [[sources]] to check; name documents instead")
        paths = [Path(s.path) for s in settings.sources]

    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    docs: list[Document] = []
    unreadable: list[str] = []
    for path in paths:
        try:
            docs.append(read_document(path))
        except ArchiverError as exc:
            unreadable.append(str(exc))
            io.error(str(exc))

    why = _why_failed(docs, failing, strict)
    if fmt == "json":
        io.json({
            "documents": [{"path": d.path, "format": d.format, **_counts(d),
                           "findings": to_json(d)["findings"]} for d in docs],
            "unreadable": unreadable,
            "strict": strict,
            "failed": why,
        })
    else:
        for i, doc in enumerate(docs):
            if i:
                io.print("")
            io.print(render_text(doc))
        if why:
            io.print("")
            io.print(f"failed: {why}")
    if unreadable:
        return 2
    return 1 if why else 0


def _why_failed(docs: list[Document], failing: set[Severity], strict: bool) -> str | None:
    """Why lint fails ("31 warnings (--strict)", "2 errors"), or ``None`` when it passes."""
    counts = {s: sum(1 for d in docs for f in d.findings if f.severity is s) for s in failing}
    parts = []
    for severity in sorted(failing, key=lambda s: -s.rank):
        if counts[severity]:
            name = severity.value + ("" if counts[severity] == 1 else "s")
            strict_only = severity is not Severity.ERROR and strict
            parts.append(f"{counts[severity]} {name}" + (" (--strict)" if strict_only else ""))
    return ", ".join(parts) or None


def _counts(doc: Document) -> dict[str, int]:
    counts = {s.value: 0 for s in Severity}
    for finding in doc.findings:
        counts[finding.severity.value] += 1
    return {"footnotes": len(doc.footnotes), "urls": len(doc.urls), **counts}
