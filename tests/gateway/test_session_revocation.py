"""A TLS session or connection must not outlive the certificate's revocation, its expiry or a current CRL.

The attack from the security review, with real `openssl s_client` against `npo-adapter serve`: save a
session as consumer2, revoke consumer2 and send SIGHUP, then resume the saved session without any
certificate or key. Before the fix TLS 1.3 resumed with a ticket and TLS 1.2 with the session cache, and
both answered HTTP 200 with the patient's diagnoses.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapter.gateway.pki import DevPki, issue_crl, load_pki, revoke
from adapter.gateway.tls import TlsContexts
from adapter.gateway.verify import CertificateRefused, ClientCertVerifier
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.request_builder import build_request
from tests.gateway.conftest import TlsServer, client_context, tls_files
from tests.samples import PNR, SOURCE

VERSIONS = ["-tls1_3", "-tls1_2"]


def http_request(*, close: bool = True) -> bytes:
    body = build_request(GD, SOURCE, PNR)
    head = (f"POST {GD.url_path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n")
    return head.encode() + body


def s_client(port: int, pki: DevPki, version: str, *args: str | Path) -> str:
    """One connection, one GetDiagnosis request, everything s_client printed (handshake summary + HTTP)."""
    res = subprocess.run(["openssl", "s_client", version, "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-CAfile", str(pki.ca_bundle), "-ign_eof", *map(str, args)],
                         input=http_request(), capture_output=True, timeout=30)
    return res.stdout.decode("utf-8", "replace")


def as_client(pki: DevPki, name: str) -> list[str | Path]:
    c = pki.client(name)
    return ["-cert", c.cert, "-key", c.key]


def served_ok(out: str) -> bool:
    return "HTTP/1.1 200" in out and PNR in out


def hup(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert proc.poll() is None


def resume(port: int, pki: DevPki, version: str, session: Path) -> str:
    """Resume a saved session with no certificate and no key; no saved session means nothing to resume."""
    if not session.exists() or session.stat().st_size == 0:
        return ""
    return s_client(port, pki, version, "-sess_in", session)


@pytest.mark.parametrize("version", VERSIONS)
def test_resumed_session_of_a_revoked_certificate_gets_nothing(served, tmp_path, version):
    proc, url, pki = served
    port = int(url.rsplit(":", 1)[1])
    session = tmp_path / "consumer2.session"
    first = s_client(port, pki, version, *as_client(pki, "consumer2"), "-sess_out", session)
    assert served_ok(first), first

    revoke(pki, "consumer2")
    hup(proc)
    assert not served_ok(s_client(port, pki, version, *as_client(pki, "consumer2")))  # a full handshake

    resumed = resume(port, pki, version, session)
    assert not served_ok(resumed), resumed
    if version == "-tls1_3":
        assert "Reused" not in resumed  # no tickets are issued at all


@pytest.mark.parametrize("version", VERSIONS)
def test_resumed_session_is_refused_once_the_crls_are_stale(served, tmp_path, version):
    proc, url, pki = served
    port = int(url.rsplit(":", 1)[1])
    session = tmp_path / "platform.session"
    assert served_ok(s_client(port, pki, version, *as_client(pki, "platform"), "-sess_out", session))

    issue_crl(pki, next_update=datetime.now(UTC) - timedelta(minutes=5), which="both")
    hup(proc)
    assert not served_ok(s_client(port, pki, version, *as_client(pki, "platform")))
    assert not served_ok(resume(port, pki, version, session))


def test_tls13_gets_no_ticket_to_resume_with(served, tmp_path):
    _proc, url, pki = served
    port = int(url.rsplit(":", 1)[1])
    session = tmp_path / "s13"
    assert served_ok(s_client(port, pki, "-tls1_3", *as_client(pki, "platform"), "-sess_out", session))
    assert "Reused" not in resume(port, pki, "-tls1_3", session)


class KeptConnection:
    """One TLS connection on which requests are sent one after another (HTTP keep-alive)."""

    def __init__(self, port: int, ctx: ssl.SSLContext) -> None:
        self.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="localhost")

    def ask(self) -> bytes:
        self.sock.sendall(http_request(close=False))
        received = b""
        try:
            while PNR.encode() not in received or not received.rstrip().endswith(b"Envelope>"):
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (ssl.SSLError, OSError):
            pass
        return received

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("change", ["revoke", "stale-crl"])
def test_kept_connection_is_checked_again_at_the_next_request(engine, pki, tmp_path, change):
    import shutil

    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    contexts = TlsContexts(tls_files(copy))
    with TlsServer(engine, contexts) as srv:
        conn = KeptConnection(srv.port, client_context(copy, "consumer2"))
        try:
            assert conn.ask().startswith(b"HTTP/1.1 200")
            assert conn.ask().startswith(b"HTTP/1.1 200")  # the same connection serves several requests
            if change == "revoke":
                revoke(copy, "consumer2")
            else:
                issue_crl(copy, next_update=datetime.now(UTC) - timedelta(minutes=1), which="root")
            contexts.reload()
            assert conn.ask() == b""  # closed without an answer
        finally:
            conn.close()


def test_verifier_refuses_expiry_revocation_stale_crl_and_strangers(pki, tmp_path):
    import shutil

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))

    def der(name: str) -> bytes:
        return x509.load_pem_x509_certificate(copy.client(name).cert.read_bytes()).public_bytes(Encoding.DER)

    def refusal(name: str, now: datetime | None = None) -> str | None:
        verifier = ClientCertVerifier(copy.ca_bundle, (copy.crl_root, copy.crl_function))
        try:
            verifier.check(der(name), now)
            return None
        except CertificateRefused as exc:
            return str(exc)

    assert refusal("platform") is None
    assert refusal("revoked") == "certificate revoked"
    assert "expired" in refusal("expired")
    assert "trusted CA" in refusal("foreign")
    assert "client authentication" in refusal("noclientauth")
    assert "expired" in refusal("platform", datetime.now(UTC) + timedelta(days=3650))
    assert "nextUpdate" in refusal("platform", datetime.now(UTC) + timedelta(days=40))  # CRLs valid 30 days

    cached = ClientCertVerifier(copy.ca_bundle, (copy.crl_root, copy.crl_function))
    cached.check(der("consumer2"))
    revoke(copy, "consumer2")
    cached.check(der("consumer2"))  # a verifier holds the CRLs it was built with; a reload builds a new one
    with pytest.raises(CertificateRefused, match="revoked"):
        ClientCertVerifier(copy.ca_bundle, (copy.crl_root, copy.crl_function)).check(der("consumer2"))
