"""Who the caller is, and what the original-consumer header may change: real mTLS on loopback.

Attacks from the security review: certificates from the trusted CA whose serialNumber spells the platform's
HSA-id another way (`ſ` folded to `S` by `.upper()`, lower case, a hex-encoded value) were authorised as the
platform; consumer2, with care unit SB01 hidden from it, saw SB01's records by sending
`x-rivta-original-serviceconsumer-hsaid` with any other value.
"""

from __future__ import annotations

import shutil

import pytest
from lxml import etree

from adapter.config import Settings
from adapter.gateway import authorisation
from adapter.gateway.identity import CertSource
from adapter.gateway.pki import issue_client_certificate, load_pki
from adapter.gateway.tls import TlsContexts
from adapter.producer.app import Access, create_app
from adapter.rivta.contracts import GET_DIAGNOSIS
from tests.gateway.conftest import AUTHORISATIONS, HIDDEN_FROM, WORLD, TlsServer, client, tls_files
from tests.gateway.test_embedded_mtls import ask, ids
from tests.samples import PNR, fault_string

HOME, HOUSING = WORLD.units
PLATFORM = "SE165565594230-1000"
CONSUMER2 = "SE2321000016-9KHR"
HEADER = "x-rivta-original-serviceconsumer-hsaid"


@pytest.fixture(scope="module")
def odd_pki(pki, tmp_path_factory):
    copy = load_pki(shutil.copytree(pki.dir, tmp_path_factory.mktemp("odd") / "pki"))
    spellings = {"canonical": PLATFORM, "long-s": "\u017f" + PLATFORM[1:], "lower": PLATFORM.lower(),
                 "hex": "#13" + f"{len(PLATFORM):02x}" + PLATFORM.encode().hex(), "spaced": f" {PLATFORM} "}
    for name, value in spellings.items():
        copy.clients[name] = issue_client_certificate(copy, name, value)
    return copy


@pytest.mark.parametrize("name", ["long-s", "lower", "hex", "spaced"])
def test_other_spellings_of_the_platforms_hsa_id_are_not_the_platform(engine, odd_pki, name):
    with TlsServer(engine, TlsContexts(tls_files(odd_pki))) as srv, client(odd_pki, name) as c:
        resp = ask(c, srv.url)
    assert resp.status_code == 500, resp.text
    assert fault_string(etree.fromstring(resp.content)).startswith("VP002")
    assert PNR not in resp.text


def test_the_canonical_spelling_made_the_same_way_is_served(engine, odd_pki):
    with TlsServer(engine, TlsContexts(tls_files(odd_pki))) as srv, client(odd_pki, "canonical") as c:
        assert ids(ask(c, srv.url)) == {"d-home", "d-housing"}


def test_authorisations_take_only_canonical_hsa_ids(tmp_path):
    for bad in (PLATFORM.lower(), "\u017f" + PLATFORM[1:]):
        path = tmp_path / "a.toml"
        path.write_text(f'[[allow]]\nconsumer = "{bad}"\ncontracts = ["*"]\nlogical_addresses = ["*"]\n',
                        encoding="utf-8")
        with pytest.raises(authorisation.AuthorisationError, match="canonical"):
            authorisation.load(path)
    rules = authorisation.load(AUTHORISATIONS)
    assert rules.permits(PLATFORM, GET_DIAGNOSIS.responder_ns, "SE2120001231-SYS1")
    assert not rules.permits("\u017f" + PLATFORM[1:], GET_DIAGNOSIS.responder_ns, "SE2120001231-SYS1")
    assert not rules.permits(PLATFORM.lower(), GET_DIAGNOSIS.responder_ns, "SE2120001231-SYS1")


@pytest.fixture(scope="module")
def consumer2_hidden(engine, pki, tmp_path_factory):
    """The review's configuration: SB01 (the housing unit) hidden from consumer2 itself."""
    path = tmp_path_factory.mktemp("auth") / "authorisations.toml"
    path.write_text(AUTHORISATIONS.read_text(encoding="utf-8") + f"""
[[hide]]
consumers = ["{CONSUMER2}"]
care_units = ["{HOUSING.hsa_id}"]
""", encoding="utf-8")
    app = create_app(engine, Settings(store_url="sqlite://"), Access(CertSource.TLS, authorisation.load(path)))
    with TlsServer(engine, TlsContexts(tls_files(pki)), app=app) as srv:
        yield srv


@pytest.mark.parametrize("header", [None, "SE165565594230-1000", "SE5560000000-UNKN", HIDDEN_FROM, "x"])
def test_a_consumer_cannot_unhide_by_naming_another_original_consumer(consumer2_hidden, pki, header):
    with client(pki, "consumer2") as c:
        got = ids(ask(c, consumer2_hidden.url, {HEADER: header} if header else None))
    assert got == {"d-home"}


def test_platform_header_hides_more_never_less(consumer2_hidden, pki):
    with client(pki, "platform") as c:
        assert ids(ask(c, consumer2_hidden.url)) == {"d-home", "d-housing"}
        assert ids(ask(c, consumer2_hidden.url, {HEADER: CONSUMER2})) == {"d-home"}
        assert ids(ask(c, consumer2_hidden.url, {HEADER: HIDDEN_FROM})) == {"d-home"}


def test_header_from_a_caller_not_configured_as_platform_is_ignored(gateway, pki):
    """consumer2 (no hidden units of its own) cannot use the header either: only the platform may."""
    with client(pki, "consumer2") as c:
        assert ids(ask(c, gateway.url, {HEADER: HIDDEN_FROM})) == {"d-home", "d-housing"}


def test_without_a_platform_key_nobody_s_header_counts(engine, pki, tmp_path):
    text = AUTHORISATIONS.read_text(encoding="utf-8").replace(f'platform = ["{PLATFORM}"]', "")
    assert "platform =" not in text
    path = tmp_path / "a.toml"
    path.write_text(text, encoding="utf-8")
    app = create_app(engine, Settings(store_url="sqlite://"), Access(CertSource.TLS, authorisation.load(path)))
    with TlsServer(engine, TlsContexts(tls_files(pki)), app=app) as srv, client(pki, "platform") as c:
        assert ids(ask(c, srv.url, {HEADER: HIDDEN_FROM})) == {"d-home", "d-housing"}
