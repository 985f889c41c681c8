"""Authorisation keys on the responder namespace (as the platform's TAK does): a consumer allowed one contract tries
the others by mixing paths, bodies, namespaces, SOAPActions and major versions. Real mTLS on loopback; the consumer
is allowed GetDiagnosis 2 only. Each mix must give a fault and no record of a contract it may not call."""

from __future__ import annotations

import pytest
from lxml import etree

from adapter.config import Settings
from adapter.gateway import authorisation
from adapter.gateway.identity import CertSource
from adapter.gateway.tls import TlsContexts
from adapter.producer.app import Access, create_app
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.contracts import GET_MEDICATION_HISTORY as MED
from adapter.rivta.request_builder import build_request
from tests.gateway.conftest import TlsServer, client, tls_files
from tests.samples import PNR, SOURCE, fault_string

CONSUMER2 = "SE2321000016-9KHR"
XML = "text/xml; charset=utf-8"


@pytest.fixture(scope="module")
def only_diagnoses(engine, pki, tmp_path_factory):
    path = tmp_path_factory.mktemp("tak") / "authorisations.toml"
    path.write_text(f'[[allow]]\nconsumer = "{CONSUMER2}"\ncontracts = ["{GD.responder_ns}"]\n'
                    f'logical_addresses = ["*"]\n')
    app = create_app(engine, Settings(store_url="sqlite://"), Access(CertSource.TLS, authorisation.load(path)))
    with TlsServer(engine, TlsContexts(tls_files(pki)), app=app) as srv, client(pki, "consumer2") as c:
        yield srv.url, c


def post(c, url: str, path: str, body: bytes, action: str | None = None):
    headers = {"Content-Type": XML, **({"SOAPAction": f'"{action}"'} if action else {})}
    return c.post(url + path, content=body, headers=headers)


def test_the_allowed_contract_is_served(only_diagnoses):
    url, c = only_diagnoses
    resp = post(c, url, GD.url_path, build_request(GD, SOURCE, PNR), GD.soap_action)
    assert resp.status_code == 200 and b"diagnosisHeader" in resp.content


@pytest.mark.parametrize("path, body, action, fault", [
    # the forbidden contract's path and body, under the allowed contract's SOAPAction: SOAPAction is no authority
    (MED.url_path, MED, GD.soap_action, "VP007"),
    # the forbidden contract's path with the allowed contract's body
    (MED.url_path, GD, GD.soap_action, "invalid request: expected GetMedicationHistory"),
    # the allowed path with the forbidden contract's body
    (GD.url_path, MED, MED.soap_action, "invalid request: expected GetDiagnosis"),
], ids=["med-path-med-body-gd-action", "med-path-gd-body", "gd-path-med-body"])
def test_a_path_body_or_soapaction_of_another_contract_is_refused(only_diagnoses, path, body, action, fault):
    url, c = only_diagnoses
    resp = post(c, url, path, build_request(body, SOURCE, PNR), action)
    assert resp.status_code == 500, resp.text
    assert fault_string(etree.fromstring(resp.content)).startswith(fault)
    assert b"medicationMedicalRecord" not in resp.content and PNR.encode() not in resp.content


def test_an_unknown_major_version_is_not_served(only_diagnoses):
    url, c = only_diagnoses
    body = build_request(GD, SOURCE, PNR).replace(GD.responder_ns.encode(), GD.responder_ns[:-1].encode() + b"3")
    unknown = post(c, url, GD.url_path.replace("/2/", "/3/"), body)
    assert unknown.status_code == 404 and PNR.encode() not in unknown.content
    # version 3's namespace at version 2's path
    wrong = post(c, url, GD.url_path, body)
    assert wrong.status_code == 500
    assert fault_string(etree.fromstring(wrong.content)).startswith("invalid request: expected GetDiagnosis")
