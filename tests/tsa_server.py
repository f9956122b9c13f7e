"""A local RFC 3161 timestamping authority on loopback, for tests.

``openssl ts -reply`` (OpenSSL 3) answers each request; this module makes the authority's
keys (a root CA and a TSA certificate with the critical ``timeStamping`` extended key
usage), writes the ``[tsa]`` config OpenSSL reads, and serves ``POST /`` over HTTP.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class TimestampAuthority:
    """Start with ``with TimestampAuthority(folder) as tsa``; ``tsa.url`` takes requests,
    ``tsa.ca_file`` is the root to trust, ``tsa.requests`` counts answers."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(_name("Test TSA Root"))
              .issuer_name(_name("Test TSA Root")).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(days=1))
              .not_valid_after(now + dt.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                           False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        tsa_key = ec.generate_private_key(ec.SECP256R1())
        tsa = (x509.CertificateBuilder().subject_name(_name("Test Timestamping Authority"))
               .issuer_name(ca.subject).public_key(tsa_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                              critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                            False, False), critical=True)
               .sign(ca_key, hashes.SHA256()))
        self.ca_file = self.folder / "tsa-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_file = self.folder / "tsa.pem"
        self.cert_file.write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
        self.key_file = self.folder / "tsa.key"
        _write_key(tsa_key, self.key_file)
        (self.folder / "serial").write_text("01\n")
        self.config = self.folder / "tsa.cnf"
        self.config.write_text(
            "[tsa]\ndefault_tsa = tsa_config\n\n[tsa_config]\n"
            f"dir = {self.folder}\nserial = $dir/serial\ncrypto_device = builtin\n"
            f"signer_cert = {self.cert_file}\n"
            f"signer_key = {self.key_file}\nsigner_digest = sha256\n"
            "default_policy = 1.2.3.4.1\nother_policies = 1.2.3.4.5\n"
            "digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = yes\n"
            "tsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n")
        self.requests = 0
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with tempfile.TemporaryDirectory() as tmp:
                    query = Path(tmp) / "q.tsq"
                    reply = Path(tmp) / "r.tsr"
                    query.write_bytes(body)
                    done = subprocess.run(
                        ["openssl", "ts", "-reply", "-config", str(authority.config),
                         "-queryfile", str(query), "-out", str(reply)],
                        capture_output=True, timeout=30)
                    if done.returncode != 0 or not reply.exists():
                        self.send_response(500)
                        self.end_headers()
                        self.wfile.write(done.stderr)
                        return
                    data = reply.read_bytes()
                authority.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TimestampAuthority:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
