"""Provenance of a capture: what was fetched, from where, over what connection, by what.

One ``Provenance`` record per capture (HTTP or rescued Internet Archive copy). It is written
twice: as a WARC ``metadata`` record (``application/json``, ``WARC-Concurrent-To`` the
response) so that it travels with the WARC, and as a catalog row so that reports and
``show --provenance`` read it without opening WARC files. ``document()`` gives its JSON form;
the SHA-256 of that form is what the custody log records.

What it holds: the cited URL and every URL fetched on the way (redirect chain, each with its
status and server address), the server's IP address, for HTTPS the certificate chain as the
server presented it on that very connection (PEM, SHA-256 fingerprint, subject, issuer,
validity) with the TLS version and cipher, the request headers as sent (credentials
redacted), the capture time (from the local clock: see the README on what that proves), the
archiver's version and the settings that shaped the capture, and SHA-256 digests of the
payload and of the whole stored response record.

The certificate chain comes from the TLS object of the connection the answer came on. Python
3.13 exposes it (``SSLObject.get_unverified_chain``); on 3.10-3.12 CPython has the same method
on the private ``_sslobj``. Where neither exists only the leaf certificate can be read
(``getpeercert(binary_form=True)``), and the record says so (``chain_complete: false``).
"""

from __future__ import annotations

import email.utils
import functools
import getpass
import hashlib
import json
import re
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from archiver import __version__
from archiver.models import Capture, TlsCertificate, TlsSession, isoformat
from archiver.warc import WarcWriter, redact_request_head

__all__ = [
    "Kept",
    "Provenance",
    "capture_settings",
    "certificate",
    "default_actor",
    "document",
    "document_sha256",
    "for_capture",
    "glance",
    "memento_origin",
    "request_headers",
    "summary_lines",
    "tls_session",
    "write",
]

FORMAT = "archiver-provenance/1"


@dataclass(frozen=True)
class Provenance:
    """The provenance of one capture; ``kind`` is ``"http"`` or ``"rescued"``.

    ``chain`` holds every exchange in order (url, status, server IP); the last is the answer
    archived. For a rescued copy ``memento`` says which archive captured it and when
    (``url``, ``datetime``, ``archive``), and ``captured_at`` is when we fetched it.
    """

    kind: str
    cited_url: str
    url: str
    chain: tuple[tuple[str, int, str | None], ...]
    server_ip: str | None
    tls: TlsSession | None
    request_headers: tuple[tuple[str, str], ...]
    captured_at: datetime
    settings: tuple[tuple[str, str], ...]
    payload_digest: str
    record_sha256: str | None
    record_id: str | None
    warc_path: str | None
    truncated: str | None = None
    memento: tuple[tuple[str, str], ...] = ()
    archiver_version: str = field(default=__version__)


# ── TLS ─────────────────────────────────────────────────────────────────────


def certificate(der: bytes) -> TlsCertificate:
    """A ``TlsCertificate`` from DER bytes (subject and issuer as RFC 4514 strings)."""
    # Imported on first use (0.07-0.1 s): reading provenance back, as reports do, never
    # needs it; worker processes get it before the fork (``capturing.preload``).
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return TlsCertificate(
        der=der,
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def tls_session(network_stream: Any) -> TlsSession | None:
    """The TLS session of an httpcore network stream (``response.extensions
    ["network_stream"]``), read while the connection is open; ``None`` for plain HTTP or
    when the stream exposes no TLS object. Never raises: provenance is informative and a
    failure to read it must not lose the capture (the record then says what is missing)."""
    if network_stream is None:
        return None
    try:
        tls = network_stream.get_extra_info("ssl_object")
    except Exception:
        return None
    if tls is None:
        return None
    try:
        version = str(tls.version() or "")
        cipher = (tls.cipher() or ("",))[0]
    except Exception:
        version, cipher = "", ""
    ders: list[bytes] = []
    note = ""
    for holder in (tls, getattr(tls, "_sslobj", None)):
        getter = getattr(holder, "get_unverified_chain", None) if holder is not None else None
        if getter is None:
            continue
        try:
            ders = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                    for c in getter() or ()]
        except Exception as exc:  # private API: its absence or failure is reported
            note = f"chain not readable ({type(exc).__name__}); leaf only"
            ders = []
        if ders:
            break
    complete = bool(ders)
    if not ders:
        note = note or "this Python exposes only the leaf certificate"
        try:
            leaf = tls.getpeercert(binary_form=True)
        except Exception:
            leaf = None
        ders = [leaf] if leaf else []
    chain: list[TlsCertificate] = []
    for der in ders:
        try:
            chain.append(certificate(der))
        except ValueError:
            note = (note + "; " if note else "") + "a certificate could not be parsed"
    return TlsSession(version=version, cipher=cipher, chain=tuple(chain),
                      chain_complete=complete, note=note)


def request_headers(head: bytes) -> tuple[tuple[str, str], ...]:
    """The header lines of a request head, credentials redacted (as in the WARC)."""
    lines = redact_request_head(head).split(b"\r\n")[1:]
    out = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            out.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
    return tuple(out)


# ── building ────────────────────────────────────────────────────────────────


def for_capture(
    capture: Capture,
    *,
    cited_url: str,
    settings: tuple[tuple[str, str], ...],
    memento: tuple[tuple[str, str], ...] = (),
) -> Provenance:
    """The provenance of ``capture`` (its last hop is the archived answer). ``settings`` are
    the settings that shaped the capture (user agent, mode, profile); ``memento`` the
    original archive's facts for a rescued copy (then ``kind`` is ``"rescued"``)."""
    last = capture.hops[-1] if capture.hops else None
    return Provenance(
        kind="rescued" if memento else "http",
        cited_url=cited_url,
        url=capture.final_url,
        chain=tuple((h.url, h.status, h.remote_ip) for h in capture.hops),
        server_ip=last.remote_ip if last else None,
        tls=last.tls if last else None,
        request_headers=last.request_headers if last else (),
        captured_at=capture.captured_at,
        settings=settings,
        payload_digest=capture.payload_digest,
        record_sha256=last.record_sha256 if last else None,
        record_id=last.warc.record_id if last and last.warc else None,
        warc_path=last.warc.path if last and last.warc else None,
        truncated=capture.truncated,
        memento=memento,
    )


def _pem(der: bytes) -> str:
    return ssl.DER_cert_to_PEM_cert(der)


def document(prov: Provenance) -> dict[str, Any]:
    """The JSON form of ``prov`` (what the WARC record and the catalog row hold). Every
    mapping in it has its keys in sorted order, so that ``json.dumps`` gives the canonical
    bytes (``encode``) without sorting them (``write``)."""
    tls: dict[str, Any] | None = None
    if prov.tls is not None:
        tls = {
            "chain": [{
                "issuer": c.issuer,
                "not_after": isoformat(c.not_after.astimezone(UTC)),
                "not_before": isoformat(c.not_before.astimezone(UTC)),
                "pem": _pem(c.der),
                "sha256": c.sha256,
                "subject": c.subject,
            } for c in prov.tls.chain],
            "chain_complete": prov.tls.chain_complete,
            "cipher": prov.tls.cipher,
            "note": prov.tls.note,
            "version": prov.tls.version,
        }
    return {
        "archiver_version": prov.archiver_version,
        "captured_at": _isoformat(prov.captured_at),
        "chain": [{"server_ip": ip, "status": s, "url": u} for u, s, ip in prov.chain],
        "cited_url": prov.cited_url,
        "clock": "local",
        "format": FORMAT,
        "kind": prov.kind,
        "memento": dict(sorted(dict(prov.memento).items())) or None,
        "payload_digest": prov.payload_digest,
        "payload_sha256": (prov.payload_digest.split(":", 1)[1]
                           if prov.payload_digest.startswith("sha256:") else None),
        "request_headers": [[k, v] for k, v in prov.request_headers],
        "response_record_id": prov.record_id,
        "response_record_sha256": prov.record_sha256,
        "server_ip": prov.server_ip,
        "settings": dict(sorted(dict(prov.settings).items())),
        "tls": tls,
        "truncated": prov.truncated,
        "url": prov.url,
        "warc": prov.warc_path,
    }


# A capture's records are dated with its time: formatted once for them all.
_isoformat = functools.lru_cache(maxsize=16)(isoformat)


def encode(doc: dict[str, Any]) -> bytes:
    """The canonical bytes of a provenance document (sorted keys, UTF-8)."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")


# ``encode`` for the documents of ``document``, whose keys are in order already: sorting
# them was nearly half of encoding one.
_IN_ORDER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def document_sha256(doc: dict[str, Any]) -> str:
    return hashlib.sha256(encode(doc)).hexdigest()


def default_actor() -> str:
    """``user@host`` of whoever runs the archiver (the custody log's default actor)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


# ── writing ─────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Kept:
    """A provenance document written to a WARC: what the catalog row and the custody entry
    need. ``text`` is the canonical JSON, ``sha256`` its digest."""

    record_id: str
    cited_url: str
    text: str
    sha256: str
    metadata_id: str
    payload_digest: str
    warc_path: str


def capture_settings(user_agent: str, *, mode: str = "http", http2: bool = True,
                     profile: str | None = None) -> tuple[tuple[str, str], ...]:
    """The settings that shaped a capture, as recorded in its provenance."""
    return (("user_agent", user_agent), ("mode", mode), ("http2", str(http2).lower()),
            ("profile", profile or "none"))


def write(writer: WarcWriter, capture: Capture, *, cited_url: str,
          settings: tuple[tuple[str, str], ...],
          memento: tuple[tuple[str, str], ...] = ()) -> Kept | None:
    """Write the provenance of ``capture`` as a ``metadata`` record Concurrent-To its
    response record; ``None`` when the capture has no WARC record. Raises ``ArchiveError``
    when the WARC cannot be written."""
    ref = capture.warc
    if ref is None:
        return None
    doc = document(for_capture(capture, cited_url=cited_url, settings=settings,
                               memento=memento))
    block = _IN_ORDER.encode(doc).encode("utf-8")  # what encode(doc) gives
    # Under a ``urn:provenance:`` URI (as Browsertrix keeps ``urn:pageinfo:`` records): a
    # JSON record under the page's own URL would be indexed and replayed as the page.
    meta = writer.write_json_metadata(url="urn:provenance:" + capture.final_url,
                                      concurrent_to=ref.record_id,
                                      block=block, captured_at=capture.captured_at)
    return Kept(record_id=ref.record_id, cited_url=cited_url, text=block.decode("utf-8"),
                sha256=hashlib.sha256(block).hexdigest(), metadata_id=meta.record_id,
                payload_digest=capture.payload_digest, warc_path=ref.path)


# ── reading ─────────────────────────────────────────────────────────────────


def glance(doc: dict[str, Any]) -> dict[str, Any]:
    """The provenance at a glance, for reports: time, server IP, certificate subject and
    fingerprint, SHA-256 of payload and record."""
    tls = doc.get("tls") or {}
    leaf = (tls.get("chain") or [{}])[0]
    memento = doc.get("memento") or {}
    return {
        "captured_at": doc.get("captured_at"),
        "server_ip": doc.get("server_ip"),
        "tls_version": tls.get("version"),
        "certificate_subject": leaf.get("subject"),
        "certificate_sha256": leaf.get("sha256"),
        "payload_sha256": doc.get("payload_sha256"),
        "record_sha256": doc.get("response_record_sha256"),
        "memento_datetime": memento.get("memento_datetime"),
    }


def summary_lines(doc: dict[str, Any], *, full: bool = False) -> list[str]:
    """Plain lines describing a provenance document (``full``: certificates as PEM and the
    request headers too)."""
    lines = [f"cited URL:      {doc.get('cited_url')}",
             f"archived URL:   {doc.get('url')}",
             f"captured at:    {doc.get('captured_at')} (the archiving machine's clock)"]
    memento = doc.get("memento") or {}
    if memento:
        lines.append(f"copy of:        {memento.get('memento_url')}, archived by "
                     f"{memento.get('captured_by')} at {memento.get('memento_datetime')}; "
                     f"fetched from there at {doc.get('captured_at')}")
    for hop in doc.get("chain") or []:
        lines.append(f"fetched:        {hop.get('status')} {hop.get('url')} "
                     f"(server {hop.get('server_ip') or 'unknown'})")
    tls = doc.get("tls")
    if tls:
        lines.append(f"TLS:            {tls.get('version')} {tls.get('cipher')}"
                     + ("" if tls.get("chain_complete") else f" ({tls.get('note')})"))
        for n, cert in enumerate(tls.get("chain") or []):
            lines.append(f"certificate {n}:  {cert.get('subject')}, issued by "
                         f"{cert.get('issuer')}, valid {cert.get('not_before')} to "
                         f"{cert.get('not_after')}, SHA-256 {cert.get('sha256')}")
            if full:
                lines.extend(str(cert.get("pem", "")).rstrip("\n").splitlines())
    else:
        lines.append("TLS:            none (plain HTTP)")
    lines.append(f"payload SHA-256: {doc.get('payload_sha256') or doc.get('payload_digest')}")
    lines.append(f"record SHA-256:  {doc.get('response_record_sha256')} "
                 f"({doc.get('response_record_id')} in {doc.get('warc')})")
    settings = doc.get("settings") or {}
    lines.append(f"archiver:       {doc.get('archiver_version')}, "
                 + ", ".join(f"{k} {v}" for k, v in settings.items()))
    if full:
        lines.append("request headers sent (credentials redacted):")
        lines.extend(f"  {k}: {v}" for k, v in doc.get("request_headers") or [])
    return lines


_RAW_MEMENTO = re.compile(r"/(\d{14})id_/(.+)$", re.S)


def memento_origin(url: str, response_head: bytes, *,
                   replay_base: str) -> tuple[str, datetime] | None:
    """(original URL, memento datetime) when ``url`` is a raw (``id_``) memento under
    ``replay_base`` and its answer says it is one (a ``Memento-Datetime`` header); else
    ``None`` (e.g. the archive's own redirect to the nearest timestamp). The original URL is
    the answer's ``Link: <…>; rel="original"`` when given, else taken from the address."""
    base = replay_base.rstrip("/")
    if not url.startswith(base + "/"):
        return None
    match = _RAW_MEMENTO.search(url[len(base):])
    if match is None:
        return None
    headers = {}
    for line in response_head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    stamp = headers.get("memento-datetime")
    if not stamp:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(stamp)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    original = re.sub(r"^(https?):/+", r"\1://", match.group(2))
    link = re.search(r'<([^>]+)>\s*;\s*rel="?original"?', headers.get("link", ""))
    if link:
        original = link.group(1)
    return original, moment.astimezone(UTC)
