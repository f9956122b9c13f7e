"""Document readers: one per format, all producing the same :class:`~archiver.models.Document`.

Public API::

    read_document(path) -> Document      # reads the file; format recognised from content
    parse_bytes(data, name) -> Document  # the same from bytes already in memory
    sniff(data) -> str | None            # which reader would take these bytes

Formats, recognised from the bytes (never the file name):

==================== ==========================================================
``docx``             ZIP holding ``word/document.xml`` (footnotes and endnotes)
``odt``              ZIP holding ``content.xml`` (OpenDocument text; footnotes and endnotes)
``html``             text starting with an HTML tag (doctype, html, body, p, ...): linked
                     footnotes, or bare ``<sup>N</sup>`` with plain ``N text`` notes when
                     markers and notes match one to one (else DocumentError)
``markdown-footnotes`` Markdown with ``[^N]: text`` definitions or ``[^N]`` markers
``pdf-markdown``     Markdown with ``<sup>N</sup>`` markers (the briefing's own format)
==================== ==========================================================

Every returned Document's ``findings`` already hold the structural and URL findings
(:mod:`archiver.lint`), so ``extract`` and ``lint`` report the same. Any input that no reader
understands, or that cannot be read, raises :class:`~archiver.errors.DocumentError` naming the
file and what was expected; no other exception escapes.
"""

from __future__ import annotations

import re
from pathlib import Path

from archiver.errors import DocumentError
from archiver.inputs import read_regular_file
from archiver.models import Document
from archiver.parse import mdfoot, office, pdfmd
from archiver.parse.draft import assemble

__all__ = ["MAX_DOCUMENT_BYTES", "parse_bytes", "read_document", "sniff"]

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
EXPECTED = ("expected Markdown with <sup>N</sup> or [^N] footnotes, HTML, DOCX or ODT")
_HTML_START = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|"
    rb"section|article|div|p|h[1-6])[\s>/]",
    re.IGNORECASE | re.DOTALL,
)


def _decode(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None  # UTF-16 or binary: not a text format the readers take
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text = data.decode("cp1252", errors="replace")
    # Mostly unprintable bytes means a binary file, not a legacy-encoded text.
    controls = sum(1 for ch in text[:4096] if ch < " " and ch not in "\t\r\n\f")
    return None if controls > len(text[:4096]) // 20 else text


def sniff(data: bytes) -> str | None:
    """The format name of ``data``, or ``None`` if no reader would take it."""
    if data[:4] == b"PK\x03\x04":
        return office.sniff(data)
    if _HTML_START.match(data[:4096]):
        return "html"
    text = _decode(data)
    if text is None:
        return None
    if mdfoot.looks_like(text):
        return mdfoot.FORMAT
    if pdfmd.looks_like(text):
        return pdfmd.FORMAT
    return None


def parse_bytes(data: bytes, name: str) -> Document:
    """Read a document from ``data``; ``name`` is used in messages and as the Document's path.

    Raises DocumentError when no reader understands the bytes or a container is broken."""
    kind = sniff(data)
    if kind is None:
        raise DocumentError(f"{name}: not a document the archiver can read ({EXPECTED})")
    try:
        if kind in ("docx", "odt"):
            draft = office.read(data, kind, name)
        elif kind == "html":
            from archiver.parse import html  # BeautifulSoup: only for HTML documents

            draft = html.read(data, name)
        else:
            text = _decode(data) or ""
            draft = mdfoot.read(text) if kind == mdfoot.FORMAT else pdfmd.read(text)
            del text  # not needed by assemble, which peaks with the Document and the draft
        return assemble(draft, name)
    except DocumentError:
        raise
    except (ValueError, KeyError, IndexError, RecursionError, MemoryError) as exc:
        # A reader tripping over hostile input is the input's fault, reported as such.
        raise DocumentError(f"{name}: could not read it as {kind} ({exc.__class__.__name__}: "
                            f"{exc})") from exc


def read_document(path: str | Path) -> Document:
    """Read the document at ``path`` (format recognised from its content).

    Raises DocumentError if the file is missing, unreadable, not a regular file (a FIFO, a
    device such as ``/dev/zero``, also through a symlink), larger than MAX_DOCUMENT_BYTES, or
    not understood. Never reads more than MAX_DOCUMENT_BYTES + 1 bytes."""
    try:
        data = read_regular_file(path, limit=MAX_DOCUMENT_BYTES, what="document",
                                 error=DocumentError)
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return parse_bytes(data, str(path))
