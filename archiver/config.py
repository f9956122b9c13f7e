"""``sources.toml`` → frozen ``Settings``. Read once by the CLI and passed down; no stage
imports this module's globals.

Paths inside the config are relative to the config file's folder. Every key is optional
except ``[[sources]]`` entries' ``id`` and ``path``; unknown keys are errors, so that a typo
(``per-host`` for ``per_host``) is not silently ignored.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from archiver import __version__
from archiver.errors import ConfigError
from archiver.inputs import read_regular_file
from archiver.models import Source

__all__ = [
    "ArchiveSettings",
    "BrowserProfile",
    "BrowserSettings",
    "CheckSettings",
    "FetchSettings",
    "ProvenanceSettings",
    "RescueSettings",
    "Settings",
    "default_user_agent",
    "load_settings",
]

T = TypeVar("T")

PROJECT_URL = "https://github.com/archiver-project/archiver"
# A sources.toml is a few KiB; the bound keeps a path to /dev/zero from filling memory.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def default_user_agent() -> str:
    """An honest User-Agent: names the tool, its version and where to read about it."""
    return f"archiver/{__version__} (citation archiver; +{PROJECT_URL})"


#: The values of ``[fetch] transport``.
TRANSPORTS = ("auto", "httpcore", "aiohttp")


@dataclass(frozen=True)
class FetchSettings:
    """How the fetcher behaves; the ``[fetch]`` table.

    ``timeout`` bounds each network operation of one request; ``deadline`` bounds a whole URL
    (every attempt and redirect), so a server that drips a byte a second cannot hold a run.
    ``run_deadline`` bounds the fetching of a whole run (0: no limit): when it is reached, no
    more URLs are fetched and those in flight are stopped; they are reported as not fetched
    and keep their previous state. ``host_give_up``: after that many attempts in a row to one
    host timed out, the host's remaining URLs are not fetched this run (0: never give up).
    ``workers``: processes that fetch and judge, each owning a share of the hosts
    (``archiver.shards``); 0 means one per core for runs of 256 URLs or more, 1 means the
    run's own process only. ``transport``: what carries HTTP/1.1 under httpx: ``"httpcore"``
    (httpcore's pool over ``archiver.netstream``), ``"aiohttp"`` (``archiver.aiotransport``,
    for routes where HTTP/2 cannot be used: http:// URLs, or any URL with ``http2`` false,
    direct or through an http:// proxy; other routes stay on httpcore), or ``"auto"`` (the
    one this version measured faster; see ``archiver.fetch``).
    """

    timeout: float = 30.0
    retries: int = 3
    concurrency: int = 32
    per_host: int = 2
    host_interval: float = 0.25
    allow_private_networks: bool = False
    user_agent: str = field(default_factory=default_user_agent)
    deadline: float = 120.0
    max_body: int = 50 * 1024 * 1024
    max_decoded: int = 8 * 1024 * 1024
    max_redirects: int = 10
    max_header_bytes: int = 64 * 1024
    retry_after_cap: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    http2: bool = True
    transport: str = "auto"
    run_deadline: float = 3600.0
    host_give_up: int = 3
    workers: int = 0


@dataclass(frozen=True)
class ArchiveSettings:
    """Where things are written; the ``[archive]`` table."""

    dir: Path
    reports_dir: Path
    warc_max_size: int = 1024 * 1024 * 1024
    warc_prefix: str = "archiver"


@dataclass(frozen=True)
class RescueSettings:
    """Internet Archive lookups; the ``[rescue]`` table. The API bases are settings so that
    tests and institutions with their own Wayback/pywb can point elsewhere."""

    enabled: bool = True
    capture: bool = False
    availability_api: str = "https://archive.org/wayback/available"
    cdx_api: str = "https://web.archive.org/cdx/search/cdx"
    replay_base: str = "https://web.archive.org/web"
    save_page_now: bool = False
    spn_api: str = "https://web.archive.org/save"
    per_host: int = 2
    timeout: float = 30.0
    retries: int = 3
    # Lookups in flight at once, started while the run is still fetching (polite to the
    # archive: its requests are also limited by per_host).
    concurrency: int = 3
    # Network failures in a row (no answer, or 5xx after the retries) after which the run
    # stops asking that archive host; its lookups are then reported as not made.
    breaker_after: int = 3
    # A lookup that found no copy is asked again after this many days (the archive may have
    # a copy by then); a copy once found is kept.
    recheck_days: float = 30.0


@dataclass(frozen=True)
class CheckSettings:
    """The scheduled check's rules; the ``[check]`` table.

    A link is ``dead`` once it has failed on ``dead_after`` consecutive checks spanning at
    least ``dead_after_days`` days (the three-failures-three-days rule); until then it is
    ``failing``. A check where more than ``outage_ratio`` of the hosts, and at least
    ``outage_min_hosts`` of them, fail at network level is an outage and changes no link's
    state; with fewer hosts than that, failures are recorded as real results (a few dead
    domains and a network fault cannot be told apart).
    """

    dead_after: int = 3
    dead_after_days: float = 3.0
    outage_ratio: float = 0.8
    outage_min_hosts: int = 5
    drift_threshold: float = 0.9


@dataclass(frozen=True)
class BrowserProfile:
    """A reader's logged-in session: ``hosts`` (exact host names, lower case) captured with
    the Playwright storage-state file ``storage_state`` (absolute path). The file holds the
    user's cookies: its values are sent to those hosts only and never written to the archive."""

    hosts: tuple[str, ...]
    storage_state: Path


@dataclass(frozen=True)
class BrowserSettings:
    """Capture in a real browser; the ``[browser]`` table (see ``archiver.browse``).

    ``mode``: ``auto`` (the browser where the HTTP capture is not the evidence: app shells,
    login walls with a profile, ``hosts``), ``always`` or ``never``. ``executable``: the
    Chromium to drive (default: ``chromium``, ``chromium-browser`` or ``google-chrome`` on
    PATH). ``pages``: pages open at once. The rest bound one page's capture: ``deadline`` in
    all, ``settle`` for the network to go quiet, ``scroll_steps``/``scroll_time`` for
    scrolling lazy content in, ``max_height`` pixels of screenshot.
    """

    mode: str = "auto"
    executable: str = ""
    pages: int = 2
    hosts: tuple[str, ...] = ()
    profiles: tuple[BrowserProfile, ...] = ()
    deadline: float = 60.0
    settle: float = 5.0
    scroll_steps: int = 20
    scroll_time: float = 10.0
    max_height: int = 16000
    width: int = 1280
    height: int = 900

    def profile_for(self, host: str) -> BrowserProfile | None:
        """The profile whose hosts name ``host`` (case-insensitive), or ``None``."""
        host = host.lower().rstrip(".")
        return next((p for p in self.profiles if host in p.hosts), None)


@dataclass(frozen=True)
class ProvenanceSettings:
    """Signing and custody; the ``[provenance]`` table. ``signing_key`` is relative to the
    config's folder; ``tsa_url`` an RFC 3161 timestamping authority ("" for none); ``actor``
    who the custody log names ("" for user@host)."""

    signing_key: str = "signing-key.pem"
    tsa_url: str = ""
    actor: str = ""


@dataclass(frozen=True)
class Settings:
    """Everything a command needs, read once from the config file."""

    config_path: Path
    root: Path
    sources: tuple[Source, ...]
    fetch: FetchSettings
    archive: ArchiveSettings
    rescue: RescueSettings
    check: CheckSettings
    browser: BrowserSettings = field(default_factory=BrowserSettings)
    provenance: ProvenanceSettings = field(default_factory=ProvenanceSettings)

    def source(self, source_id: str) -> Source:
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources) or "none"
        raise ConfigError(f"{self.config_path}: no source with id {source_id!r} (known: {known})")

    def relative(self, path: Path | str) -> str:
        """``path`` relative to the config's folder, with ``/`` separators (for reports)."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()


# Used with fullmatch: "$" would also match before a final newline ("ok\n").
_ID = re.compile(r"[a-z0-9-]+")


def _section(cls: type[T], table: Any, where: str, **extra: Any) -> T:
    """Build the dataclass ``cls`` from a TOML table, checking key names and value types."""
    if table is None:
        return cls(**extra)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = dict(extra)
    for key, value in table.items():
        if key not in known or key in extra:
            names = ", ".join(sorted(k for k in known if k not in extra))
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {names})")
        default = getattr(cls(**extra), key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
        elif isinstance(default, int | float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
            if value < 0:
                raise ConfigError(f"{where}.{key}: must not be negative, got {value!r}")
            if isinstance(default, int) and not isinstance(default, bool):
                if value != int(value):
                    raise ConfigError(f"{where}.{key}: expected a whole number, got {value!r}")
                value = int(value)
            else:
                value = float(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: expected a string, got {value!r}")
        values[key] = value
    return cls(**values)


def _published(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}.published: expected a date like 2020-11-01, got {value!r}")


def _sources(entries: Any, root: Path, config_path: Path) -> tuple[Source, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError(f"{config_path}: 'sources' must be an array of tables ([[sources]])")
    sources: list[Source] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        where = f"{config_path}: sources[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table")
        unknown = set(entry) - {"id", "path", "title", "published"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        source_id = entry.get("id")
        if not isinstance(source_id, str) or not _ID.fullmatch(source_id):
            raise ConfigError(f"{where}.id: expected lowercase letters, digits and '-', "
                              f"got {source_id!r}")
        if source_id in seen:
            raise ConfigError(f"{where}.id: {source_id!r} is listed twice")
        seen.add(source_id)
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.path: expected the document's path")
        title = entry.get("title")
        if title is not None and not isinstance(title, str):
            raise ConfigError(f"{where}.title: expected a string")
        sources.append(
            Source(
                id=source_id,
                path=str((root / path).resolve()),
                title=title,
                published=_published(entry.get("published"), where),
            )
        )
    return tuple(sources)


def load_settings(config_path: str | Path, *, overrides: dict[str, Any] | None = None) -> Settings:
    """Read ``config_path`` into ``Settings``.

    Raises ``ConfigError`` naming the file (and key) when it is missing, not a regular file
    (FIFO, device, directory), larger than ``MAX_CONFIG_BYTES``, not valid TOML, or
    holds an unknown key or a value of the wrong type. ``overrides`` replaces fields of
    ``FetchSettings`` after reading (for command-line options).
    """
    path = Path(config_path)
    try:
        raw = read_regular_file(path, limit=MAX_CONFIG_BYTES, what="config", error=ConfigError)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (create one, or pass --config PATH)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc

    root = path.resolve().parent
    known_tables = {"sources", "fetch", "archive", "rescue", "check", "browser", "provenance"}
    unknown = set(data) - known_tables
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(known_tables))})"
        )

    fetch = _section(FetchSettings, data.get("fetch"), f"{path}: [fetch]")
    if overrides:
        fetch = replace(fetch, **overrides)
    if fetch.concurrency < 1 or fetch.per_host < 1:
        raise ConfigError(f"{path}: [fetch] concurrency and per_host must be at least 1")
    if not 0 <= fetch.workers <= 64:
        raise ConfigError(f"{path}: [fetch] workers must be 0 (one per core) to 64")
    if fetch.timeout <= 0:
        raise ConfigError(f"{path}: [fetch] timeout must be more than 0 seconds")
    if not fetch.user_agent.isascii() or not fetch.user_agent.isprintable():
        # It goes into every request's head, which HTTP allows only in ASCII without control
        # characters (httpx refuses anything else at the first request).
        raise ConfigError(f"{path}: [fetch] user_agent must be printable ASCII (it is sent "
                          f"in every request's head), got {fetch.user_agent!r}")
    if fetch.transport not in TRANSPORTS:
        raise ConfigError(f"{path}: [fetch] transport must be one of "
                          f"{', '.join(map(repr, TRANSPORTS))}, got {fetch.transport!r}")

    archive_table = data.get("archive") or {}
    if not isinstance(archive_table, dict):
        raise ConfigError(f"{path}: [archive]: expected a table")
    archive_table = dict(archive_table)
    archive_dir = root / str(archive_table.pop("dir", "archive"))
    reports_dir = root / str(archive_table.pop("reports_dir", "reports"))
    archive = _section(
        ArchiveSettings,
        archive_table,
        f"{path}: [archive]",
        dir=archive_dir.resolve(),
        reports_dir=reports_dir.resolve(),
    )
    rescue = _section(RescueSettings, data.get("rescue"), f"{path}: [rescue]")
    if rescue.concurrency < 1 or rescue.breaker_after < 1 or rescue.per_host < 1:
        raise ConfigError(f"{path}: [rescue] concurrency, breaker_after and per_host must be "
                          "at least 1")
    check = _section(CheckSettings, data.get("check"), f"{path}: [check]")

    return Settings(
        config_path=path.resolve(),
        root=root,
        sources=_sources(data.get("sources"), root, path),
        fetch=fetch,
        archive=archive,
        rescue=rescue,
        check=check,
        browser=_browser(data.get("browser"), root, path),
        provenance=_section(ProvenanceSettings, data.get("provenance"),
                            f"{path}: [provenance]"),
    )


_BROWSER_MODES = ("auto", "always", "never")


def _hosts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) and h for h in value):
        raise ConfigError(f"{where}: expected a list of host names, got {value!r}")
    return tuple(h.lower().rstrip(".") for h in value)


def _check_storage_state(file: Path, where: str) -> None:
    """A storage-state file must be what Playwright's ``context.storage_state()`` writes:
    a JSON object with a ``cookies`` list (and usually ``origins``)."""
    import json

    try:
        state = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{where}.storage_state: {file}: not a Playwright storage-state "
                          f"file ({exc})") from exc
    if not isinstance(state, dict) or not isinstance(state.get("cookies", []), list) \
            or not isinstance(state.get("origins", []), list):
        raise ConfigError(f"{where}.storage_state: {file}: not a Playwright storage-state "
                          "file (expected an object with 'cookies' and 'origins' lists)")


def _browser(table: Any, root: Path, path: Path) -> BrowserSettings:
    """The ``[browser]`` table, with its ``hosts`` list and ``[[browser.profiles]]``."""
    where = f"{path}: [browser]"
    if table is None:
        return BrowserSettings()
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    table = dict(table)
    hosts = _hosts(table.pop("hosts", []), f"{where}.hosts")
    entries = table.pop("profiles", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: 'profiles' must be an array of tables "
                          "([[browser.profiles]])")
    profiles = []
    for index, entry in enumerate(entries, start=1):
        at = f"{where}.profiles[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"hosts", "storage_state"}:
            raise ConfigError(f"{at}: expected a table with 'hosts' and 'storage_state'")
        state = entry.get("storage_state")
        if not isinstance(state, str) or not state:
            raise ConfigError(f"{at}.storage_state: expected the path of a Playwright "
                              "storage-state file")
        file = (root / state).resolve()
        if not file.is_file():
            raise ConfigError(f"{at}.storage_state: {file}: no such file (export it from a "
                              "logged-in browser; see the README)")
        _check_storage_state(file, at)
        profiles.append(BrowserProfile(_hosts(entry.get("hosts"), f"{at}.hosts"), file))
    settings = _section(BrowserSettings, table, where, hosts=hosts, profiles=tuple(profiles))
    if "/" in settings.executable and not Path(settings.executable).is_absolute():
        settings = replace(settings, executable=str((root / settings.executable).resolve()))
    if settings.mode not in _BROWSER_MODES:
        raise ConfigError(f"{where}.mode: expected one of {', '.join(_BROWSER_MODES)}, "
                          f"got {settings.mode!r}")
    if settings.pages < 1:
        raise ConfigError(f"{where}.pages: must be at least 1")
    return settings
