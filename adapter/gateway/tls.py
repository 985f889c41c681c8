"""The embedded mTLS server: uvicorn with client certificates required, CRLs of every CA checked,
CRLs reloadable without a restart, refusals logged, and the verified peer certificate handed to the app.

uvicorn (0.3x–0.5x) does not pass the client certificate to ASGI apps. Two small, documented hooks
close that gap, both covered by tests that fail if a uvicorn or Python upgrade breaks them:
* `PeerCertProtocol` subclasses uvicorn's httptools protocol and adds the ASGI TLS extension
  (`scope["extensions"]["tls"]["client_cert_chain"]`) to every request scope.
* `TlsContexts` keeps the current `ssl.SSLContext`; an SNI callback moves each new handshake onto it,
  so a reload (new CRLs or certificates) applies to the next connection without restarting.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("adapter.gateway")


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # server certificate chain (PEM)
    key: Path
    client_ca: Path  # CAs trusted for client certificates (PEM bundle)
    crls: tuple[Path, ...]  # PEM CRLs; one is needed for every CA in the chain


class _AuditedSSLObject(ssl.SSLObject):
    """Logs why a handshake was refused: with TLS 1.3 the client itself often learns nothing."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            reason = getattr(exc, "verify_message", None) or exc.reason or type(exc).__name__
            log.warning("TLS handshake refused: %s", reason)
            raise


class TlsContexts:
    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.current = self._build()
        self.listening = self.current

    def _build(self) -> ssl.SSLContext:
        f = self.files
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(f.cert), str(f.key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(f.client_ca))
        if not f.crls:
            raise ValueError("no CRL given: revocation cannot be checked")
        for crl in f.crls:
            ctx.load_verify_locations(cafile=str(crl))
            _warn_if_stale(crl)
        # Every CA in the chain must have a current CRL; an expired CRL fails the handshake (closed).
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
        ctx.sslobject_class = _AuditedSSLObject
        ctx.sni_callback = self._onto_current
        return ctx

    def reload(self) -> None:
        """Re-read certificates and CRLs; new handshakes use them, established connections keep theirs."""
        self.current = self._build()
        log.info("TLS material reloaded (%d CRLs)", len(self.files.crls))

    def _onto_current(self, sslobj, _server_name, ctx: ssl.SSLContext) -> None:
        if ctx is not self.current:
            sslobj.context = self.current


def _warn_if_stale(crl_path: Path) -> None:
    for crl in _load_crls(crl_path):
        if crl.next_update_utc is not None and crl.next_update_utc < datetime.now(UTC):
            log.error("CRL from %s is past its nextUpdate: clients of that CA are refused until it is renewed",
                      crl.issuer.rfc4514_string())


def _load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    data = path.read_bytes()
    marker = b"-----BEGIN X509 CRL-----"
    return [x509.load_pem_x509_crl(marker + part) for part in data.split(marker)[1:]]


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus the ASGI TLS extension with the verified client certificate."""

    _tls_extension: dict | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            der = sslobj.getpeercert(binary_form=True)
            self._tls_extension = {
                "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
                "tls_version": sslobj.version(),
                "cipher_suite": (sslobj.cipher() or ("",))[0],
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls_extension is not None:
            self.scope.setdefault("extensions", {})["tls"] = self._tls_extension  # type: ignore[typeddict-item]
