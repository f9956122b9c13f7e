"""Our anonymous WACZ signature checked by Chromium's WebCrypto exactly as ReplayWeb.page
checks it (replaywebpage 2.4.6, ``sw.js``: ``importKey("spki", publicKey, {name: "ECDSA",
namedCurve: "P-384"})`` then ``verify({name: "ECDSA", hash: "SHA-256"}, key, signature,
TextEncoder(hash))``).

What it shows: a P-384 key's signature verifies there; a P-256 key (what ``keygen`` makes,
as the contract says) cannot even be imported by that code path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from archiver import signing
from tests.webserver import Reply, WebServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

REPLAYWEBPAGE_CHECK = """async (signed) => {
  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  try {
    const key = await crypto.subtle.importKey("spki", b64(signed.publicKey),
      {name: "ECDSA", namedCurve: "P-384"}, true, ["verify"]);
    const ok = await crypto.subtle.verify({name: "ECDSA", hash: "SHA-256"}, key,
      b64(signed.signature), new TextEncoder().encode(signed.hash));
    return ok ? "verified" : "not verified";
  } catch (e) {
    return "error: " + e.name;
  }
}"""


@pytest.fixture(scope="module")
def page():
    if not CHROMIUM.exists():
        pytest.skip(f"no headless browser: {CHROMIUM} is not installed (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with WebServer() as web, sync_api.sync_playwright() as pw:
        web.route("/", Reply(200, b"<html><body>webcrypto</body></html>",
                             {"Content-Type": "text/html"}))
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        tab = browser.new_page()
        tab.goto(web.url("/"))  # loopback is a secure context: crypto.subtle exists
        yield tab
        browser.close()


def _signed(tmp_path: Path, curve: ec.EllipticCurve, package_hash: str) -> dict[str, str]:
    key_path = tmp_path / f"{curve.name}.pem"
    key_path.write_bytes(ec.generate_private_key(curve).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return signing.sign_digest(signing.load_key(key_path), package_hash,
                               "2026-11-30T00:00:00Z")


def test_p384_signature_verifies_as_replaywebpage_checks_it(page, tmp_path: Path) -> None:
    package_hash = "sha256:" + "ab" * 32
    signed = _signed(tmp_path, ec.SECP384R1(), package_hash)
    assert page.evaluate(REPLAYWEBPAGE_CHECK, signed) == "verified"
    forged = dict(signed, hash="sha256:" + "cd" * 32)
    assert page.evaluate(REPLAYWEBPAGE_CHECK, forged) == "not verified"


def test_p256_key_cannot_be_imported_by_replaywebpages_check(page, tmp_path: Path) -> None:
    signed = _signed(tmp_path, ec.SECP256R1(), "sha256:" + "ab" * 32)
    assert page.evaluate(REPLAYWEBPAGE_CHECK, signed).startswith("error: ")
