"""archiver: extract a briefing's citations, archive every cited page as WARC, judge each
link's health, rescue dead links from the Internet Archive, and report claim by claim.

The public Python API, for scripts and researchers' notebooks::

    from archiver import open_archive
    archive = open_archive("sources.toml")
    for citation in archive.citations("kazakhstan-2020"):
        print(citation.footnote, citation.url, citation.verdict)
"""

__version__ = "0.1.0"

__all__ = [
    "Archive",
    "ArchivedCapture",
    "Citation",
    "Document",
    "__version__",
    "load_settings",
    "open_archive",
    "read_document",
]


def __getattr__(name: str) -> object:
    # Imported on first use, so that `archiver --version` and `extract` stay light.
    if name in ("Archive", "ArchivedCapture", "Citation", "open_archive"):
        from archiver import api

        return getattr(api, name)
    if name == "read_document":
        from archiver.parse import read_document

        return read_document
    if name == "load_settings":
        from archiver.config import load_settings

        return load_settings
    if name == "Document":
        from archiver.models import Document

        return Document
    raise AttributeError(f"module 'archiver' has no attribute {name!r}")
