"""The archiver's exceptions: one hierarchy, each class carrying the exit code it maps to.

A URL that fails is never an exception (it is a ``FetchFailure`` value with a verdict); only
failures that stop a whole command raise, and they name the file or URL that caused them::

    ArchiverError                 exit 1   base class
    ├── UsageError                exit 2   bad command-line arguments
    ├── ConfigError               exit 2   sources.toml missing, unreadable or invalid
    ├── DocumentError             exit 2   a document no reader understands, or unreadable
    ├── ArchiveError              exit 3   the archive could not be written (disk full, ...)
    │   └── ArchiveLockedError    exit 3   another run holds the archive
    ├── NotArchivedError          exit 1   `show`: nothing in the archive for that reference
    └── SetupError                exit 2   an optional extra not installed, a port in use

The CLI catches ``ArchiverError`` at one place and prints ``error: <message>``; any other
exception is a bug and is reported as one.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "ArchiveLockedError",
    "ArchiverError",
    "ConfigError",
    "DocumentError",
    "NotArchivedError",
    "SetupError",
    "UsageError",
]


class ArchiverError(Exception):
    """Base of every error that stops a command. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(ArchiverError):
    exit_code = 2


class ConfigError(ArchiverError):
    """``sources.toml`` is missing, not TOML, or has a bad value; the message names the key."""

    exit_code = 2


class DocumentError(ArchiverError):
    """A document cannot be read or no reader understands it; the message names the file
    and what was expected."""

    exit_code = 2


class ArchiveError(ArchiverError):
    """The archive under ``archive/`` could not be written; closed WARC files stay valid."""

    exit_code = 3


class ArchiveLockedError(ArchiveError):
    """Another ``archiver run``/``check`` holds the archive's lock."""


class NotArchivedError(ArchiverError):
    """``show`` found no capture for the reference."""

    exit_code = 1


class SetupError(ArchiverError):
    """This machine lacks what the command needs: an optional extra that is not installed
    (the message says which ``pip install`` adds it), or a port another program holds."""

    exit_code = 2
