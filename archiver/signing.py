"""Signed, timestamped WACZ packages: keys, signatures and RFC 3161 timestamps.

The signature follows the WACZ Signing and Verification recommendation (anonymous signing):
``datapackage-digest.json`` gets a ``signedData`` object::

    {"hash": "sha256:<hex of datapackage.json>", "created": "<datapackage.json's created>",
     "software": "archiver", "version": "<version>",
     "publicKey": "<base64 DER SubjectPublicKeyInfo, ECDSA P-256>",
     "signature": "<base64 of r||s (IEEE P1363), ECDSA P-256 + SHA-256 over the UTF-8 of hash>"}

which is what ReplayWeb.page (WebCrypto) and Harvard LIL's verifiers read. With a
timestamping authority configured (``[provenance] tsa_url``), an RFC 3161 timestamp over
the same ``hash`` string is added beside it, as ``timestamp`` at the top level of
``datapackage-digest.json`` (``token``: base64 DER TimeStampResp, ``url``, ``time``,
``certificates``: the TSA's chain as it sent it, PEM). It lives outside ``signedData`` so
that verifiers of the recommendation, which do not know it, are not disturbed.

What a signature proves: the package is unchanged since someone holding this private key
signed it. It does not say who that is (anonymous signing): publish the public key, or its
fingerprint (``key_fingerprint``), where readers can find it. What a timestamp proves: the
package's digest existed no later than the TSA's time, if one trusts the TSA.
"""

from __future__ import annotations

import base64
import hashlib
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from archiver import __version__
from archiver.errors import ArchiverError, ConfigError, UsageError

__all__ = [
    "check_signed_data",
    "describe",
    "generate_key",
    "key_fingerprint",
    "load_key",
    "sign_digest",
    "sign_wacz",
    "timestamp",
    "verify_timestamp",
]

_CURVES = {"secp256r1": 32, "secp384r1": 48}  # curve → bytes of r and of s


#: The curves ``keygen`` offers. P-256 is the default; ReplayWeb.page (2.4) checks anonymous
#: signatures with P-384 keys only, so a package meant for it is better signed with P-384.
KEY_CURVES: dict[str, ec.EllipticCurve] = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}


def generate_key(path: Path, curve: str = "P-256") -> str:
    """Write a new ECDSA private key on ``curve`` (a ``KEY_CURVES`` name; PKCS#8 PEM, mode
    0600) to ``path``; never overwrites. Returns the public key's SHA-256 fingerprint. Raises
    ``UsageError`` when ``path`` exists or the curve is unknown, ``ArchiverError`` when it
    cannot be written."""
    if curve not in KEY_CURVES:
        raise UsageError(f"--curve {curve}: choose one of {', '.join(KEY_CURVES)}")
    key = ec.generate_private_key(KEY_CURVES[curve])
    path = Path(path).expanduser()
    try:  # a folder of its own for keys is common; readable by the user only when made here
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiverError(f"{path}: cannot write key: {exc.strerror or exc}") from exc
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path}: already exists; a key is never overwritten "
                         "(choose another path with -o)") from None
    except OSError as exc:
        raise ArchiverError(f"{path}: cannot write key: {exc.strerror or exc}") from exc
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key_fingerprint(key.public_key())


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The ECDSA P-256 private key at ``path``; ``ConfigError`` naming the file otherwise."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: signing key not found (create one with 'archiver "
                          "keygen', or set [provenance] signing_key)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read signing key: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM private key: {exc}") from exc
    # P-256 is what keygen makes; P-384 is accepted because ReplayWeb.page's check of
    # anonymous signatures imports public keys as P-384 (see docs/DESIGN-NOTES.md).
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CURVES:
        raise ConfigError(f"{path}: not an ECDSA P-256 (or P-384) key")
    return key


def _spki(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(public: ec.EllipticCurvePublicKey) -> str:
    """``sha256:HEX`` of the DER public key: what to publish so readers can tell the key."""
    return "sha256:" + hashlib.sha256(_spki(public)).hexdigest()


def sign_digest(key: ec.EllipticCurvePrivateKey, package_hash: str, created: str) -> dict[str, str]:
    """The ``signedData`` object for ``package_hash`` (``sha256:HEX`` of datapackage.json)."""
    der = key.sign(package_hash.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    size = _CURVES[key.curve.name]
    raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return {
        "hash": package_hash,
        "signature": base64.b64encode(raw).decode("ascii"),
        "publicKey": base64.b64encode(_spki(key.public_key())).decode("ascii"),
        "created": created,
        "software": "archiver",
        "version": __version__,
    }


def check_signed_data(signed: dict[str, Any], package_hash: str, *,
                      created: str | None) -> list[str]:
    """What is wrong with ``signedData`` for a package hashing to ``package_hash``
    (empty when the signature holds)."""
    problems = []
    if signed.get("hash") != package_hash:
        problems.append(f"signed hash {signed.get('hash')} is not the package's "
                        f"{package_hash}")
    if created is not None and signed.get("created") != created:
        problems.append(f"signed 'created' {signed.get('created')} differs from "
                        f"datapackage.json's {created}")
    if not signed.get("publicKey"):
        problems.append("signed by a domain certificate, which this archiver does not check;"
                        " only anonymous (publicKey) signatures are verified")
        return problems
    try:
        public = serialization.load_der_public_key(base64.b64decode(signed["publicKey"]))
        raw = base64.b64decode(signed.get("signature", ""))
    except (ValueError, TypeError) as exc:
        return [*problems, f"unreadable public key or signature: {exc}"]
    if not isinstance(public, ec.EllipticCurvePublicKey):
        return [*problems, "the public key is not an ECDSA key"]
    size = _CURVES.get(public.curve.name, (public.curve.key_size + 7) // 8)
    if len(raw) == 2 * size:
        der = encode_dss_signature(int.from_bytes(raw[:size], "big"),
                                   int.from_bytes(raw[size:], "big"))
    else:
        der = raw  # some signers write DER; accept it too
    try:
        public.verify(der, str(signed.get("hash", "")).encode("utf-8"),
                      ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        problems.append("the signature does not match the signed hash and public key")
    return problems


def describe(signed: dict[str, Any]) -> list[str]:
    """Plain facts about a signature, for the verification report."""
    out = [f"signed by {signed.get('software', '?')} {signed.get('version', '')} at "
           f"{signed.get('created', '?')}"]
    if signed.get("publicKey"):
        with_key = serialization.load_der_public_key(base64.b64decode(signed["publicKey"]))
        if isinstance(with_key, ec.EllipticCurvePublicKey):
            out.append(f"public key {key_fingerprint(with_key)} (anonymous signature: it "
                       "proves the package is unchanged since that key signed it, not who "
                       "holds the key)")
    return out


# ── RFC 3161 ────────────────────────────────────────────────────────────────


def timestamp(tsa_url: str, message: bytes, *, timeout: float = 30.0) -> dict[str, Any]:
    """Ask the RFC 3161 authority at ``tsa_url`` to timestamp ``message`` (SHA-256 imprint,
    nonce, certificates requested); check the answer and return the ``timestamp`` object.
    Raises ``ArchiverError`` naming the URL when the authority cannot be reached or its
    answer does not match the request."""
    import rfc3161_client as tsp

    request = tsp.TimestampRequestBuilder().data(message) \
        .hash_algorithm(tsp.HashAlgorithm.SHA256).nonce(nonce=True) \
        .cert_request(cert_request=True).build()
    http = urllib.request.Request(tsa_url, data=request.as_bytes(), method="POST",
                                  headers={"Content-Type": "application/timestamp-query"})
    try:
        with urllib.request.urlopen(http, timeout=timeout) as answer:
            body = answer.read(1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        raise ArchiverError(f"{tsa_url}: timestamping authority unreachable: {exc}") from exc
    try:
        response = tsp.decode_timestamp_response(body)
    except ValueError as exc:
        raise ArchiverError(f"{tsa_url}: not an RFC 3161 answer: {exc}") from exc
    if response.status not in (0, 1):
        raise ArchiverError(f"{tsa_url}: timestamp refused (status {response.status}: "
                            f"{' '.join(response.status_string)})")
    info = response.tst_info
    if info.message_imprint.message != hashlib.sha256(message).digest():
        raise ArchiverError(f"{tsa_url}: the timestamp is over another message")
    if request.nonce is not None and info.nonce != request.nonce:
        raise ArchiverError(f"{tsa_url}: the timestamp answers another request (nonce)")
    certs = [x509.load_der_x509_certificate(c) for c in response.signed_data.certificates]
    return {
        "token": base64.b64encode(response.as_bytes()).decode("ascii"),
        "url": tsa_url,
        "time": info.gen_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "certificates": [c.public_bytes(serialization.Encoding.PEM).decode("ascii")
                         for c in certs],
    }


def verify_timestamp(stamp: dict[str, Any], message: bytes,
                     roots: list[x509.Certificate] | None = None) -> tuple[list[str], str]:
    """Check a ``timestamp`` object over ``message``: the token is a granted RFC 3161
    answer whose imprint is ``message``'s SHA-256 and whose signature chains to ``roots``
    (default: the self-signed certificates the token carries plus the machine's trusted
    CAs, ``trusted_roots``; whether to trust that authority is the reader's call, so its
    root's fingerprint is named). Returns (problems, a plain description)."""
    import rfc3161_client as tsp

    try:
        response = tsp.decode_timestamp_response(base64.b64decode(stamp.get("token", "")))
    except (ValueError, TypeError) as exc:
        return [f"timestamp token unreadable: {exc}"], ""
    certs = [x509.load_der_x509_certificate(c) for c in response.signed_data.certificates]
    certs += [x509.load_pem_x509_certificate(p.encode("ascii"))
              for p in stamp.get("certificates", []) if isinstance(p, str)]
    leaves = [c for c in certs if c.issuer != c.subject]
    if roots is None:
        issuers = {c.issuer for c in leaves}
        roots = [c for c in certs if c.issuer == c.subject]
        roots += [c for c in trusted_roots() if c.subject in issuers]
    builder = tsp.VerifierBuilder(roots=roots, intermediates=[],
                                  tsa_certificate=leaves[0] if leaves else None)
    problems = []
    try:
        builder.build().verify_message(response, message)
    except (tsp.VerificationError, ValueError) as exc:
        problems.append(f"the RFC 3161 timestamp does not hold: {exc}")
    when = response.tst_info.gen_time.astimezone(UTC)
    signer = leaves[0].subject.rfc4514_string() if leaves else "an unnamed authority"
    root_fp = ", ".join(hashlib.sha256(r.public_bytes(serialization.Encoding.DER))
                        .hexdigest() for r in roots) or "none"
    return problems, (f"timestamped {when:%Y-%m-%dT%H:%M:%SZ} by {signer} "
                      f"({stamp.get('url', '')}; TSA root SHA-256 {root_fp}: check that you "
                      "trust this authority)")


def trusted_roots() -> list[x509.Certificate]:
    """The CA certificates this machine trusts: ``SSL_CERT_FILE`` when set (as for HTTPS
    fetches), else certifi's bundle when installed."""
    paths = [os.environ["SSL_CERT_FILE"]] if os.environ.get("SSL_CERT_FILE") else []
    if not paths:
        try:
            import certifi

            paths.append(certifi.where())
        except ImportError:
            pass
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            roots += x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError):
            continue
    return roots


def now_created() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_wacz(path: Path, key: ec.EllipticCurvePrivateKey, *, tsa_url: str = "") -> dict[str, Any]:
    """Sign the WACZ at ``path`` in place (and timestamp it when ``tsa_url``): its
    ``datapackage-digest.json`` is rewritten with ``signedData`` (and ``timestamp``); every
    other member is copied unchanged. Returns the new digest object."""
    import json
    import shutil
    import tempfile
    import zipfile

    with zipfile.ZipFile(path) as z:
        package_bytes = z.read("datapackage.json")
        created = json.loads(package_bytes).get("created") or now_created()
        package_hash = "sha256:" + hashlib.sha256(package_bytes).hexdigest()
        digest: dict[str, Any] = {"path": "datapackage.json", "hash": package_hash,
                                  "signedData": sign_digest(key, package_hash, created)}
        if tsa_url:
            digest["timestamp"] = timestamp(tsa_url, package_hash.encode("utf-8"))
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".wacz.tmp",
                                         delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            with zipfile.ZipFile(tmp_path, "w") as out:
                for info in z.infolist():
                    if info.filename == "datapackage-digest.json":
                        continue
                    with z.open(info) as src, out.open(info, "w") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                out.writestr("datapackage-digest.json", json.dumps(digest, indent=2),
                             compress_type=zipfile.ZIP_STORED)
            os.replace(tmp_path, path)
        finally:
            tmp_path.unlink(missing_ok=True)
    return digest
