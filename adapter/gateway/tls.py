"""The embedded mTLS server: uvicorn with client certificates required, CRLs of every CA checked,
CRLs reloadable without a restart, refusals logged, and the verified peer certificate handed to the app.

uvicorn (0.3x–0.5x) does not pass the client certificate to ASGI apps. Two small, documented hooks
close that gap, both covered by tests that fail if a uvicorn or Python upgrade breaks them:
* `PeerCertProtocol` subclasses uvicorn's httptools protocol and adds the ASGI TLS extension
  (`scope["extensions"]["tls"]["client_cert_chain"]`) to every request scope.
* `TlsContexts` keeps the current `ssl.SSLContext`; an SNI callback moves each new handshake onto it,
  so a reload (new CRLs or certificates) applies to the next connection without restarting.

A handshake is checked once, but a connection (keep-alive) or a resumed TLS session outlives it: OpenSSL
restores a resumed session's peer certificate and verification result without checking either again, and
decrypts tickets with the context the connection started on, not the reloaded one. So no tickets are
issued (TLS 1.3 never resumes; Python's `ssl` cannot switch off the TLS 1.2 session-id cache of the
listening context), and every request on an established or resumed connection checks the peer
certificate again against the current CRLs and the clock (`verify.ClientCertVerifier`, cached per
certificate until the first nextUpdate or notAfter): a revoked or expired certificate, or a stale CRL,
stops access at the next request, with the connection closed.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from adapter.gateway.protocol import HeadCappedProtocol
from adapter.gateway.verify import CertificateRefused, ClientCertVerifier, load_crls

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
        self.current, self.verifier = self._build()
        self.listening = self.current
        # uvicorn instantiates the protocol class itself: bind it to these contexts
        self.protocol_class: type[PeerCertProtocol] = type("BoundPeerCertProtocol", (PeerCertProtocol,),
                                                           {"contexts": self})

    def _build(self) -> tuple[ssl.SSLContext, ClientCertVerifier]:
        f = self.files
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_TICKET
        ctx.num_tickets = 0
        ctx.load_cert_chain(str(f.cert), str(f.key))
        self.server_not_after = x509.load_pem_x509_certificates(f.cert.read_bytes())[0].not_valid_after_utc
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
        return ctx, ClientCertVerifier(f.client_ca, f.crls)

    def reload(self) -> None:
        """Re-read certificates and CRLs; new handshakes use them, and the next request on an established
        connection is checked against them."""
        self.current, self.verifier = self._build()
        log.info("TLS material reloaded (%d CRLs) in process %d", len(self.files.crls), os.getpid())

    def _onto_current(self, sslobj, _server_name, ctx: ssl.SSLContext) -> None:
        if ctx is not self.current:
            sslobj.context = self.current


def _warn_if_stale(crl_path: Path) -> None:
    for crl in load_crls(crl_path):
        if crl.next_update_utc is not None and crl.next_update_utc < datetime.now(UTC):
            log.error("CRL from %s is past its nextUpdate: clients of that CA are refused until it is renewed",
                      crl.issuer.rfc4514_string())


class PeerCertProtocol(HeadCappedProtocol):
    """uvicorn's httptools protocol (with the cap on a request's head) plus the ASGI TLS extension with the verified
    client certificate."""

    contexts: TlsContexts | None = None  # set on the class bound by TlsContexts.protocol_class
    _tls_extension: dict | None = None
    _peer_der: bytes | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            der = sslobj.getpeercert(binary_form=True)
            self._peer_der = der
            self._tls_extension = {
                "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
                "tls_version": sslobj.version(),
                "cipher_suite": (sslobj.cipher() or ("",))[0],
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls_extension is not None:
            self.scope.setdefault("extensions", {})["tls"] = self._tls_extension  # type: ignore[typeddict-item]

    def data_received(self, data: bytes) -> None:
        if self.contexts is not None:
            try:
                if not self._peer_der:
                    raise CertificateRefused("no client certificate")
                self.contexts.verifier.check(self._peer_der)
            except CertificateRefused as exc:
                log.warning("request on an established TLS connection refused, connection closed: %s", exc)
                self.transport.close()
                return
        super().data_received(data)
