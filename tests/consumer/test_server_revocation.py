"""The consumer refuses producers and national services whose server certificate is revoked, or whose CA's
CRL is stale: the configured CRLs are applied to every server it calls.

Found by the security review: the consumer checked the chain but never revocation, so a producer or a
consent service with a revoked certificate (a stolen key) was believed."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapter.consumer.fetch import FetchSettings, Outcome, Source, fetch_all
from adapter.consumer.overview import ConsumerConfig, NationalServices, load_config, new_client
from adapter.consumer.pdl import AccessingActor, ServiceUnavailable, check_consent
from adapter.consumer.pdl.services import CHECK_CONSENT, service_url
from adapter.gateway.pki import issue_crl, load_pki, revoke_certificate
from adapter.gateway.tls import TlsContexts
from adapter.rivta.contracts import GET_DIAGNOSIS
from adapter.stubs.consent import create_consent_app
from adapter.stubs.run import DEV_SEED
from tests.consumer.producers import PNR, SOURCE, municipal_store
from tests.gateway.conftest import TlsServer, tls_files

REPO = Path(__file__).resolve().parents[2]
ACTOR = AccessingActor("SE2321000016-L001", "SE2321000016-RG01", "SE2321000016-AKUT")


@pytest.fixture
def servers(pki, tmp_path):
    """A producer and a consent stand-in, both with the same server certificate; `pki` is a private copy."""
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    with TlsServer(municipal_store(tmp_path), TlsContexts(tls_files(copy))) as producer, \
            TlsServer(None, TlsContexts(tls_files(copy)), app=create_consent_app(DEV_SEED)) as consent:
        yield copy, producer, consent


def config(pki, producer, consent, *, crls: bool = True) -> ConsumerConfig:
    platform = pki.client("platform")
    return ConsumerConfig(sources=(Source("Exempelby kommun", producer.url, SOURCE),),
                          services=NationalServices(consent.url, consent.url, consent.url),
                          client_cert=platform.cert, client_key=platform.key, ca=pki.ca_bundle,
                          crls=(pki.crl_root, pki.crl_function) if crls else (),
                          fetch=FetchSettings(per_source_timeout=5, deadline=8), service_timeout=5)


def calls(cfg: ConsumerConfig) -> tuple[Outcome, str]:
    """One GetDiagnosis fetch and one CheckConsent: the outcome of the first, and what the second did."""
    async def go():
        async with new_client(cfg) as client:
            [fetched] = await fetch_all(client, list(cfg.sources), PNR, "1.2.752.129.2.1.3.1", cfg.fetch,
                                        contracts=(GET_DIAGNOSIS,))
            try:
                await check_consent(client, service_url(cfg.services.consent_url, CHECK_CONSENT),
                                    cfg.services.consent_address, ACTOR, PNR)
                consent = "answered"
            except ServiceUnavailable as exc:
                consent = exc.reason
            return fetched.outcome, consent

    return asyncio.run(go())


def test_revoked_server_certificate_is_refused(servers):
    pki, producer, consent = servers
    assert calls(config(pki, producer, consent)) == (Outcome.DATA, "answered")

    revoke_certificate(pki, pki.server_cert)  # the producer's and the consent service's key were stolen
    outcome, consent_said = calls(config(pki, producer, consent))
    assert outcome is Outcome.FAILED
    assert consent_said != "answered" and "connect" in consent_said.lower()
    # without CRLs, as before the fix, both are still believed: the attack the CRLs stop
    assert calls(config(pki, producer, consent, crls=False)) == (Outcome.DATA, "answered")


def test_stale_crl_of_the_servers_ca_fails_closed(servers):
    pki, producer, consent = servers
    issue_crl(pki, next_update=datetime.now(UTC) - timedelta(minutes=5), which="function")
    outcome, consent_said = calls(config(pki, producer, consent))
    assert outcome is Outcome.FAILED and consent_said != "answered"


def test_the_development_configuration_names_the_crls():
    cfg = load_config(REPO / "config" / "consumer.dev.toml")
    assert [c.name for c in cfg.crls] == ["root-ca.crl.pem", "function-ca.crl.pem"]
    assert all(c.parent == REPO / "certs" / "dev" for c in cfg.crls)


def test_the_consumers_tls_context_checks_crls(pki):
    cfg = ConsumerConfig(sources=(), services=NationalServices("https://x", "https://x", "https://x"),
                         client_cert=pki.client("platform").cert, client_key=pki.client("platform").key,
                         ca=pki.ca_bundle, crls=(pki.crl_root, pki.crl_function))
    assert cfg.tls_context().verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN
