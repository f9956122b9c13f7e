"""A small Wayback Machine on loopback, built on ``tests.webserver.WebServer``.

It speaks, from an in-memory list of captures:

- the CDX API at ``/cdx/search/cdx``: ``url`` (exact match on the stored original URL, as an
  index without SURT folding would), ``output=json``, ``fl``, ``filter=[!]field:regex`` (full
  match, repeatable), ``from``/``to`` (1-14 digits, padded), ``sort=closest`` with
  ``closest=``, ``sort=reverse``, ``limit`` (negative: the last N), ``matchType=exact``;
- the availability API at ``/wayback/available``: ``url``, ``timestamp``; it answers the
  capture closest in time whatever its status, as the real one may;
- mementos at ``/web/TIMESTAMP/URL`` (replay form, with a banner comment; an inexact
  timestamp redirects to the nearest capture) and ``/web/TIMESTAMPid_/URL`` (the raw bytes),
  both with ``Memento-Datetime`` and ``Link: <URL>; rel="original"``;
- Save Page Now 2 at ``/save`` (POST ``url=...`` with ``Authorization: LOW access:secret``)
  and ``/save/status/JOB_ID``; a finished job adds a capture to the archive.

Faults are queued per endpoint (``"cdx"``, ``"available"``, ``"web"``, ``"save"``,
``"status"``) with ``fail(endpoint, reply_or_handler, times=N)`` (``times=None``: always)::

    wb = WaybackServer(web)
    wb.add("https://example.org/a", "20201020120000")
    wb.fail("cdx", Reply(429, b"", {"Retry-After": "1"}), times=1)
    settings = wb.settings(timeout=0.5, retries=2)
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from archiver.config import RescueSettings
from tests.webserver import Handler, Reply, Request, WebServer

__all__ = ["StoredCapture", "WaybackServer"]

FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")


def _moment(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


@dataclass
class StoredCapture:
    original: str
    timestamp: str
    status: int = 200
    mimetype: str = "text/html"
    body: bytes = b""
    location: str | None = None

    @property
    def digest(self) -> str:
        return base64.b32encode(hashlib.sha1(self.body).digest()).decode()

    def field(self, name: str) -> str:
        return {
            "urlkey": self.original.lower(),
            "timestamp": self.timestamp,
            "original": self.original,
            "mimetype": self.mimetype,
            "statuscode": str(self.status),
            "digest": self.digest,
            "length": str(len(self.body)),
        }[name]


@dataclass
class _Fault:
    handler: Handler
    times: int | None


@dataclass
class WaybackServer:
    web: WebServer
    captures: list[StoredCapture] = field(default_factory=list)
    keys: tuple[str, str] | None = None  # the SPN2 keys this archive accepts
    honour_filter: bool = True  # False: behave like an index that ignores filter=
    delay: float = 0.0  # seconds every API answer waits (to observe concurrency)

    def __post_init__(self) -> None:
        self.web.fallback = self._dispatch
        self.faults: dict[str, collections.deque[_Fault]] = collections.defaultdict(
            collections.deque)
        self.log: list[tuple[str, dict[str, list[str]], dict[str, str], bytes]] = []
        self.times: list[tuple[str, float]] = []  # (endpoint, time.monotonic()) per request
        self.jobs: dict[str, str] = {}
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    # ── setup ────────────────────────────────────────────────────────────────

    def add(self, original: str, timestamp: str, status: int = 200, *,
            body: bytes | None = None, mimetype: str = "text/html",
            location: str | None = None) -> StoredCapture:
        if body is None:
            body = f"<html><body>{original} as of {timestamp}</body></html>".encode()
        capture = StoredCapture(original, timestamp, status, mimetype, body, location)
        self.captures.append(capture)
        return capture

    def fail(self, endpoint: str, reply: Handler | Reply, times: int | None = 1) -> None:
        handler: Handler = (lambda req, r=reply: r) if isinstance(reply, Reply) else reply
        self.faults[endpoint].append(_Fault(handler, times))

    def settings(self, **overrides: Any) -> RescueSettings:
        base = RescueSettings(
            availability_api=self.web.url("/wayback/available"),
            cdx_api=self.web.url("/cdx/search/cdx"),
            replay_base=self.web.url("/web"),
            spn_api=self.web.url("/save"),
            timeout=2.0,
            retries=2,
        )
        return replace(base, **overrides)

    def calls(self, endpoint: str) -> list[dict[str, list[str]]]:
        """The query (or form) parameters of each request to ``endpoint``, in order."""
        return [params for name, params, _, _ in self.log if name == endpoint]

    def headers(self, endpoint: str) -> list[dict[str, str]]:
        return [headers for name, _, headers, _ in self.log if name == endpoint]

    # ── dispatch ─────────────────────────────────────────────────────────────

    def _endpoint(self, path: str) -> str:
        if path == "/cdx/search/cdx":
            return "cdx"
        if path == "/wayback/available":
            return "available"
        if path.startswith("/web/"):
            return "web"
        if path.startswith("/save/status/"):
            return "status"
        if path.rstrip("/") == "/save":
            return "save"
        return "unknown"

    def _dispatch(self, req: Request) -> Reply | None:
        parts = urlsplit(req.path)
        endpoint = self._endpoint(parts.path)
        raw = req.body.decode() if req.method == "POST" else parts.query
        params: dict[str, list[str]] = collections.defaultdict(list)
        for key, value in parse_qsl(raw, keep_blank_values=True):
            params[key].append(value)
        with self._lock:
            self.log.append((endpoint, dict(params), dict(req.headers), req.body))
            self.times.append((endpoint, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._take_fault(endpoint)
        try:
            if fault is not None:
                return fault(req)
            if self.delay and endpoint != "web":
                time.sleep(self.delay)
            handler = {
                "cdx": self._cdx, "available": self._available, "web": self._web,
                "save": self._save, "status": self._status,
            }.get(endpoint)
            if handler is None:
                return Reply(404, b"not found", {"Content-Type": "text/plain"})
            return handler(req, params)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _take_fault(self, endpoint: str) -> Handler | None:
        queue = self.faults.get(endpoint)
        if not queue:
            return None
        fault = queue[0]
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
        return fault.handler

    # ── the APIs ─────────────────────────────────────────────────────────────

    def _for(self, url: str) -> list[StoredCapture]:
        return sorted((c for c in self.captures if c.original == url), key=lambda c: c.timestamp)

    def _cdx(self, req: Request, params: dict[str, list[str]]) -> Reply:
        url = (params.get("url") or [""])[0]
        if not url:
            return Reply(400, b"missing url", {"Content-Type": "text/plain"})
        if (params.get("matchType") or ["exact"])[0] != "exact":
            return Reply(400, b"only matchType=exact here", {"Content-Type": "text/plain"})
        rows = self._for(url)
        if "from" in params:
            low = params["from"][0].ljust(14, "0")
            rows = [c for c in rows if c.timestamp >= low]
        if "to" in params:
            high = params["to"][0].ljust(14, "9")
            rows = [c for c in rows if c.timestamp <= high]
        if self.honour_filter:
            for spec in params.get("filter", []):
                invert = spec.startswith("!")
                name, _, pattern = spec.lstrip("!").partition(":")
                rows = [c for c in rows
                        if bool(re.fullmatch(pattern, c.field(name))) != invert]
        sort = (params.get("sort") or [""])[0]
        if sort == "closest":
            target = _moment(params["closest"][0].ljust(14, "0"))
            rows.sort(key=lambda c: (abs(_moment(c.timestamp) - target), c.timestamp))
        elif sort == "reverse":
            rows.reverse()
        if "limit" in params:
            limit = int(params["limit"][0])
            rows = rows[:limit] if limit >= 0 else rows[limit:]
        names = (params.get("fl") or [",".join(FIELDS)])[0].split(",")
        table = [[c.field(n) for n in names] for c in rows]
        if (params.get("output") or [""])[0] == "json":
            body = json.dumps([names, *table] if table else []).encode()
            return Reply(200, body, {"Content-Type": "application/json"})
        text = "".join(" ".join(r) + "\n" for r in table).encode()
        return Reply(200, text, {"Content-Type": "text/plain"})

    def _available(self, req: Request, params: dict[str, list[str]]) -> Reply:
        url = (params.get("url") or [""])[0]
        rows = self._for(url)
        answer: dict[str, Any] = {"url": url, "archived_snapshots": {}}
        if rows:
            stamp = (params.get("timestamp") or [""])[0]
            if stamp:
                target = _moment(stamp.ljust(14, "0"))
                best = min(rows, key=lambda c: (abs(_moment(c.timestamp) - target), c.timestamp))
            else:
                best = rows[-1]
            answer["archived_snapshots"]["closest"] = {
                "status": str(best.status),
                "available": True,
                "url": self.web.url(f"/web/{best.timestamp}/{best.original}"),
                "timestamp": best.timestamp,
            }
        return Reply(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    def _web(self, req: Request, params: dict[str, list[str]]) -> Reply:
        match = re.match(r"^/web/(\d{1,14})([a-z]{2}_)?/(.*)$", req.path, re.S)
        if not match:
            return Reply(400, b"bad memento path", {"Content-Type": "text/plain"})
        stamp, modifier, original = match.group(1), match.group(2) or "", match.group(3)
        # Clients and proxies may fold the '//' after the scheme inside a path.
        original = re.sub(r"^(https?):/+", r"\1://", original)
        rows = self._for(original)
        if not rows:
            return Reply(404, b"<html><body>Not in archive</body></html>",
                         {"Content-Type": "text/html"})
        target = _moment(stamp.ljust(14, "0"))
        best = min(rows, key=lambda c: (abs(_moment(c.timestamp) - target), c.timestamp))
        if best.timestamp != stamp:
            return Reply(302, b"", {"Location": f"/web/{best.timestamp}{modifier}/{original}"})
        headers = [
            ("Content-Type", best.mimetype),
            ("Memento-Datetime", format_datetime(_moment(best.timestamp), usegmt=True)),
            ("Link", f'<{original}>; rel="original"'),
        ]
        if best.location:
            headers.append(("Location", best.location))
        body = best.body
        if modifier != "id_":
            body = b"<!-- wayback replay banner -->\n" + body
        return Reply(best.status, body, headers)

    def _authorised(self, req: Request) -> bool:
        if self.keys is None:
            return False
        return req.headers.get("Authorization") == f"LOW {self.keys[0]}:{self.keys[1]}"

    def _save(self, req: Request, params: dict[str, list[str]]) -> Reply:
        if req.method != "POST":
            return Reply(405, b"", {"Allow": "POST"})
        if not self._authorised(req):
            return Reply(401, json.dumps({"message": "You need to be logged in to use Save "
                                                     "Page Now."}).encode(),
                         {"Content-Type": "application/json"})
        url = (params.get("url") or [""])[0]
        if not url:
            return Reply(200, json.dumps({"status": "error", "status_ext": "error:invalid-url",
                                          "message": "Invalid URL"}).encode(),
                         {"Content-Type": "application/json"})
        job = "spn2-" + hashlib.sha1(f"{url}{len(self.jobs)}".encode()).hexdigest()
        self.jobs[job] = url
        return Reply(200, json.dumps({"url": url, "job_id": job}).encode(),
                     {"Content-Type": "application/json"})

    def _status(self, req: Request, params: dict[str, list[str]]) -> Reply:
        job = urlsplit(req.path).path.rsplit("/", 1)[-1]
        url = self.jobs.get(job)
        if url is None:
            answer = {"status": "error", "status_ext": "error:not-found", "job_id": job,
                      "message": "No such job"}
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            if not any(c.original == url and c.timestamp == stamp for c in self.captures):
                self.add(url, stamp)
            answer = {"status": "success", "job_id": job, "original_url": url,
                      "timestamp": stamp}
        return Reply(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})
