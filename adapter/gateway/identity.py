"""The caller's identity: the HSA-id in the subject serialNumber of its verified certificate.

Two ways the certificate arrives, chosen by how the adapter is served, never by the caller:
* embedded mTLS: the ASGI TLS extension filled in by `tls.PeerCertProtocol`;
* behind nginx on a Unix socket: nginx's `$ssl_client_escaped_cert` in `X-Client-Cert`, with
  `$ssl_client_verify` in `X-Client-Verify`. nginx overwrites both headers on every request, and only
  nginx's group can reach the socket, so the header is read in that mode only; and the adapter verifies
  the forwarded certificate itself as well (chain, validity, CRLs: `verify.ClientCertVerifier`), so a
  local user who reaches the socket anyway cannot claim an identity with a self-made certificate.
Certificates are parsed with `cryptography`; no DN string parsing.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from urllib.parse import unquote

from cryptography import x509
from starlette.requests import Request

from adapter.gateway.pki import hsa_id_from_certificate
from adapter.gateway.verify import ReloadableVerifier

PROXY_CERT_HEADER = "x-client-cert"
PROXY_VERIFY_HEADER = "x-client-verify"


class CertSource(StrEnum):
    TLS = "tls"  # embedded mTLS server
    PROXY = "proxy"  # nginx in front, Unix socket
    NONE = "none"  # plain HTTP on loopback (development)

    @property
    def callers(self) -> str:
        """How callers are authenticated, as `serve` says it when it starts."""
        return {CertSource.TLS: "callers authenticated by mutual TLS",
                CertSource.PROXY: "callers' certificates forwarded by the TLS proxy in front, verified again here",
                CertSource.NONE: "plain HTTP: callers are not authenticated"}[self]


def caller_certificate(request: Request, source: CertSource,
                       verifier: ReloadableVerifier | None = None) -> x509.Certificate | None:
    """The caller's certificate; behind the proxy it is verified with `verifier` (required there), which
    raises `verify.CertificateRefused`."""
    if source is CertSource.TLS:
        chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
        return x509.load_pem_x509_certificate(chain[0].encode()) if chain else None
    if source is CertSource.PROXY:
        if request.headers.get(PROXY_VERIFY_HEADER) != "SUCCESS":
            return None
        escaped = request.headers.get(PROXY_CERT_HEADER)
        if not escaped:
            return None
        try:
            cert = x509.load_pem_x509_certificate(unquote(escaped).encode())
        except ValueError:
            return None
        if verifier is None:
            raise ValueError("a forwarded certificate is never taken unverified")
        verifier.check_certificate(cert)
        return cert
    return None


def caller_hsa_id(request: Request, source: CertSource, verifier: ReloadableVerifier | None = None) -> str | None:
    if source is CertSource.TLS:
        chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
        return _hsa_id_of_pem(chain[0]) if chain else None
    cert = caller_certificate(request, source, verifier)
    return hsa_id_from_certificate(cert) if cert is not None else None


@lru_cache(maxsize=1024)
def _hsa_id_of_pem(pem: str) -> str | None:
    """Parsing the certificate cost a quarter of answering a small request; a caller keeps its certificate
    for many requests. Keyed by the exact PEM the TLS layer verified, so nothing else can hit the cache."""
    return hsa_id_from_certificate(x509.load_pem_x509_certificate(pem.encode()))
