"""Signing keys, signed and timestamped WACZ packages, and their verification.

The timestamping authority is real OpenSSL (``openssl ts -reply``) on loopback
(``tests/tsa_server.py``). A signed package is checked by the archiver, by py-wacz's
validator, and independently with ``openssl`` (the signature and the RFC 3161 token);
after tampering each must fail.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from archiver import custody, signing
from tests.test_run import ARTICLE, call, make_project
from tests.tsa_server import TimestampAuthority
from tests.webserver import Reply, WebServer


def test_keygen_writes_a_private_p256_key_and_never_overwrites(tmp_path: Path) -> None:
    key_path = tmp_path / "k.pem"
    code, out, err = call("keygen", "-o", str(key_path))
    assert code == 0, err
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = signing.load_key(key_path)
    assert signing.key_fingerprint(key.public_key()) in out
    before = key_path.read_bytes()
    code, out, err = call("keygen", "-o", str(key_path))
    assert code == 2 and "already exists" in err
    assert key_path.read_bytes() == before
    assert key.curve.name == "secp256r1"  # the contract's default


def test_keygen_curve_p384_for_replaywebpage(tmp_path: Path) -> None:
    """ReplayWeb.page checks anonymous signatures with P-384 keys: ``--curve P-384`` makes
    one, which signing accepts; an unknown curve is a usage error."""
    key_path = tmp_path / "rwp.pem"
    code, out, err = call("keygen", "--curve", "P-384", "-o", str(key_path))
    assert code == 0, err
    assert "ECDSA P-384" in out
    assert signing.load_key(key_path).curve.name == "secp384r1"
    code, _, err = call("keygen", "--curve", "P-521", "-o", str(tmp_path / "x.pem"))
    assert code == 2 and not (tmp_path / "x.pem").exists()


def rewrite_zip(path: Path, name: str, change) -> None:
    """Replace member ``name`` of the zip at ``path`` with ``change(bytes)``."""
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w") as out:
        for info, data in members:
            out.writestr(info, change(data) if info.filename == name else data)


def py_wacz_validate(path: Path) -> tuple[bool, str]:
    """py-wacz's verdict on the package (its exit code is 0 either way: read its words)."""
    done = subprocess.run([sys.executable, "-m", "wacz.main", "validate", "-f", str(path)],
                          capture_output=True, text=True, timeout=300)
    text = done.stdout + done.stderr
    return done.returncode == 0 and "invalid" not in text and "mismatch" not in text, text


def openssl_checks(wacz: Path, tmp: Path, tsa: TimestampAuthority) -> None:
    """Check signature and timestamp with openssl, independently of the archiver."""
    with zipfile.ZipFile(wacz) as z:
        digest = json.loads(z.read("datapackage-digest.json"))
    signed = digest["signedData"]
    (tmp / "hash.txt").write_bytes(signed["hash"].encode())
    public = serialization.load_der_public_key(base64.b64decode(signed["publicKey"]))
    (tmp / "pub.pem").write_bytes(public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    raw = base64.b64decode(signed["signature"])
    assert len(raw) == 64  # r||s as WebCrypto (ReplayWeb.page) expects
    (tmp / "sig.der").write_bytes(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                                       int.from_bytes(raw[32:], "big")))
    done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(tmp / "pub.pem"),
                           "-signature", str(tmp / "sig.der"), str(tmp / "hash.txt")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Verified OK" in done.stdout, done.stderr
    (tmp / "token.tsr").write_bytes(base64.b64decode(digest["timestamp"]["token"]))
    done = subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp / "hash.txt"),
                           "-in", str(tmp / "token.tsr"), "-CAfile", str(tsa.ca_file),
                           "-untrusted", str(tsa.cert_file)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr


@pytest.fixture
def signed_package(tmp_path: Path, web: WebServer, monkeypatch: pytest.MonkeyPatch):
    web.route("/article", Reply(200, ARTICLE, {"Content-Type": "text/html"}))
    with TimestampAuthority(tmp_path / "tsa") as tsa:
        # The TSA's root is trusted the way HTTPS roots are: SSL_CERT_FILE.
        monkeypatch.setenv("SSL_CERT_FILE", str(tsa.ca_file))
        config = make_project(tmp_path, [web.url("/article")],
                              extra=f'\n[provenance]\ntsa_url = "{tsa.url}"\n')
        assert call("run", "--config", str(config))[0] == 0
        code, out, err = call("keygen", "--config", str(config))
        assert code == 0, err
        assert (tmp_path / "signing-key.pem").exists()
        code, out, err = call("export", "--wacz", "--sign", "--config", str(config))
        assert code == 0, out + err
        assert "signed" in out and "timestamped" in out
        assert tsa.requests == 1
        yield config, tmp_path / "reports" / "brief" / "brief.wacz", tsa


def test_signed_timestamped_wacz_verifies_everywhere(signed_package, tmp_path: Path) -> None:
    _config, wacz, tsa = signed_package
    code, out, _err = call("verify", str(wacz), "--format", "json")
    result = json.loads(out)
    assert code == 0, result
    assert result["checked"]["signatures"] == 1 and result["checked"]["timestamps"] == 1
    assert any("timestamped" in n and "Test Timestamping Authority" in n
               for n in result["notes"])
    valid, said = py_wacz_validate(wacz)
    assert valid and "Has signature" in said, said
    openssl_checks(wacz, tmp_path, tsa)
    actions = [e["action"] for e in custody.entries(tmp_path / "archive")]
    assert actions == ["capture", "export"]
    export = list(custody.entries(tmp_path / "archive"))[-1]
    assert export["details"]["signed"] is True and export["details"]["timestamp"]


def test_modified_file_inside_signed_wacz_fails(signed_package) -> None:
    _, wacz, _ = signed_package
    rewrite_zip(wacz, "pages/pages.jsonl", lambda data: data.replace(b"Court", b"Cou7t"))
    code, out, _ = call("verify", str(wacz))
    assert code == 1 and "pages/pages.jsonl" in out and "FAIL" in out
    valid, said = py_wacz_validate(wacz)
    assert not valid, said


def test_modified_warc_inside_signed_wacz_fails(signed_package) -> None:
    _, wacz, _ = signed_package
    with zipfile.ZipFile(wacz) as z:
        name = next(n for n in z.namelist() if n.endswith(".warc.gz"))
    rewrite_zip(wacz, name, lambda data: data[:-100] + bytes(b ^ 1 for b in data[-100:]))
    code, out, _ = call("verify", str(wacz))
    assert code == 1 and name in out


def test_resigned_datapackage_without_the_key_fails(signed_package) -> None:
    _, wacz, _ = signed_package

    def forge(data: bytes) -> bytes:
        package = json.loads(data)
        package["title"] = "Forged"
        return json.dumps(package).encode()

    rewrite_zip(wacz, "datapackage.json", forge)
    code, out, _ = call("verify", str(wacz))
    assert code == 1 and "datapackage-digest.json" in out
    valid, said = py_wacz_validate(wacz)
    assert not valid, said


def test_forged_signature_and_timestamp_fail(signed_package) -> None:
    _, wacz, _ = signed_package

    def forge(data: bytes) -> bytes:
        digest = json.loads(data)
        raw = bytearray(base64.b64decode(digest["signedData"]["signature"]))
        raw[5] ^= 1
        digest["signedData"]["signature"] = base64.b64encode(bytes(raw)).decode()
        token = bytearray(base64.b64decode(digest["timestamp"]["token"]))
        token[-5] ^= 1
        digest["timestamp"]["token"] = base64.b64encode(bytes(token)).decode()
        return json.dumps(digest).encode()

    rewrite_zip(wacz, "datapackage-digest.json", forge)
    code, out, _ = call("verify", str(wacz))
    assert code == 1
    assert "signature does not match" in out and "timestamp" in out


@pytest.mark.parametrize(("curve", "size"), [("P-256", 64), ("P-384", 96)])
def test_signed_data_round_trip_for_both_curves(tmp_path: Path, curve: str, size: int) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key_path = tmp_path / "k.pem"
    if curve == "P-256":
        signing.generate_key(key_path)
    else:  # ReplayWeb.page checks anonymous signatures with P-384 keys; made with openssl
        key = ec.generate_private_key(ec.SECP384R1())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    key = signing.load_key(key_path)
    package_hash = "sha256:" + "ab" * 32
    signed = signing.sign_digest(key, package_hash, "2026-11-30T00:00:00Z")
    assert len(base64.b64decode(signed["signature"])) == size
    assert set(signed) == {"hash", "signature", "publicKey", "created", "software", "version"}
    assert signing.check_signed_data(signed, package_hash, created="2026-11-30T00:00:00Z") == []
    other = "sha256:" + "cd" * 32
    assert signing.check_signed_data(dict(signed, hash=other), other, created=None) == [
        "the signature does not match the signed hash and public key"]


def test_a_key_of_another_kind_is_refused_with_its_path(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from archiver.errors import ConfigError

    key_path = tmp_path / "rsa.pem"
    key_path.write_bytes(rsa.generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ConfigError, match=r"rsa\.pem"):
        signing.load_key(key_path)
    with pytest.raises(ConfigError, match="archiver keygen"):
        signing.load_key(tmp_path / "missing.pem")
