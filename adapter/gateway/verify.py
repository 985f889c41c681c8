"""Checking a client certificate at the time of a request: chain to the trusted CAs, validity, and the CRL
of every CA in the chain (as OpenSSL's VERIFY_CRL_CHECK_CHAIN), with `cryptography`.

The embedded server runs it on every request of an established connection (a TLS handshake is checked
once, but a certificate can be revoked, expire or lose its current CRL while a connection or a resumed
session lives on); behind nginx it checks the forwarded certificate, so the Unix socket is not the only
thing standing between a local user and the platform's identity.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

_CACHE_LIMIT = 4096
# Web PKI rules, except that function certificates carry their identity in the subject, with no SAN (SITHS)
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC,
                                                                  None)
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


class CertificateRefused(Exception):
    """The reason names the problem and at most a CA's name: safe to log and to put in a fault."""


def load_crls(path: Path) -> list[x509.CertificateRevocationList]:
    data = path.read_bytes()
    marker = b"-----BEGIN X509 CRL-----"
    return [x509.load_pem_x509_crl(marker + part) for part in data.split(marker)[1:]]


class ClientCertVerifier:
    def __init__(self, client_ca: Path, crls: Sequence[Path]) -> None:
        if not crls:
            raise ValueError("no CRL given: revocation cannot be checked")
        cas = x509.load_pem_x509_certificates(client_ca.read_bytes())
        # Only self-signed CAs are anchors; the others are intermediates, so the chain is built up to a root
        # and the root's CRL is checked for the intermediate too (OpenSSL does the same with the bundle).
        anchors = [c for c in cas if c.issuer == c.subject]
        if not anchors:
            raise ValueError(f"{client_ca}: no self-signed root CA")
        self._intermediates = [c for c in cas if c.issuer != c.subject]
        self._store = Store(anchors)
        self._crls: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for path in crls:
            for crl in load_crls(path):
                self._crls.setdefault(crl.issuer, []).append(crl)
        self._valid_until: dict[bytes, float] = {}  # leaf DER -> epoch seconds up to which the check holds

    def check(self, der: bytes, now: datetime | None = None) -> None:
        """Raise CertificateRefused unless the certificate is acceptable now."""
        if now is None:
            until = self._valid_until.get(der)
            if until is not None and time.time() < until:
                return
        at = now or datetime.now(UTC)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise CertificateRefused("unreadable certificate") from None
        until = self._verify(cert, at)
        if now is None:
            if len(self._valid_until) >= _CACHE_LIMIT:
                self._valid_until.clear()
            self._valid_until[der] = until

    def check_certificate(self, cert: x509.Certificate) -> None:
        self.check(cert.public_bytes(Encoding.DER))

    def crls(self) -> list[x509.CertificateRevocationList]:
        """The newest CRL loaded for each issuer (health checks and metrics read their nextUpdate)."""
        return [max(crls, key=lambda c: c.last_update_utc) for crls in self._crls.values()]

    def _verify(self, cert: x509.Certificate, at: datetime) -> float:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise CertificateRefused("certificate expired or not yet valid")
        verifier = (PolicyBuilder().store(self._store).time(at)
                    .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY).build_client_verifier())
        try:
            chain = verifier.verify(cert, self._intermediates).chain
        except VerificationError:
            raise CertificateRefused("certificate not issued by a trusted CA, or not for client authentication") \
                from None
        until = min(c.not_valid_after_utc for c in chain)
        for subject, issuer in zip(chain, chain[1:], strict=False):
            crl = self._current_crl(issuer, at)
            if crl.get_revoked_certificate_by_serial_number(subject.serial_number) is not None:
                raise CertificateRefused("certificate revoked" if subject is cert else "a CA in the chain is revoked")
            if crl.next_update_utc is not None:
                until = min(until, crl.next_update_utc)
        return until.timestamp()

    def _current_crl(self, issuer: x509.Certificate, at: datetime) -> x509.CertificateRevocationList:
        crls = [c for c in self._crls.get(issuer.subject, []) if c.is_signature_valid(issuer.public_key())]
        if not crls:
            raise CertificateRefused(f"no CRL of {issuer.subject.rfc4514_string()}")
        crl = max(crls, key=lambda c: c.last_update_utc)
        if crl.next_update_utc is None or crl.next_update_utc < at:
            raise CertificateRefused(f"the CRL of {issuer.subject.rfc4514_string()} is past its nextUpdate")
        return crl


class ReloadableVerifier:
    """A ClientCertVerifier that SIGHUP can rebuild from the same files (behind nginx)."""

    def __init__(self, client_ca: Path, crls: Sequence[Path]) -> None:
        self.client_ca, self.crls = client_ca, tuple(crls)
        self.current = ClientCertVerifier(client_ca, self.crls)

    def reload(self) -> None:
        self.current = ClientCertVerifier(self.client_ca, self.crls)

    def check_certificate(self, cert: x509.Certificate) -> None:
        self.current.check_certificate(cert)

    def crls(self) -> list[x509.CertificateRevocationList]:
        return self.current.crls()
