"""archiver: extract a briefing's citations, archive every cited page as WARC, judge each
link's health, rescue dead links from the Internet Archive, and report claim by claim.

The public Python API, for scripts and researchers' notebooks::

    from archiver import open_archive
    archive = open_archive("sources.toml")
    for citation in archive.citations("kazakhstan-2020"):
        print(citation.footnote, citation.url, citation.verdict)
"""

__version__ = "0.1.0"
