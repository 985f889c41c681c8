"""Property tests against the real producer over HTTP: random valid-shaped requests and broken bodies never
crash it, every failure is a SOAP Fault (never a bare 500), no answer holds another patient's records, and
no fault or log record at WARNING or above carries personal data."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from adapter.rivta.contracts import SOAP_NS, Contract
from adapter.rivta.rules import first_text
from tests.hostile.conftest import leaks, loud_records
from tests.hostile.strategies import broken_body, good_request, valid_shaped

LOG_ID = re.compile(rb"log id [0-9a-f-]{36}")
PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def http(producer):
    with httpx.Client(base_url=producer.url, timeout=20, trust_env=False) as client:
        yield client


def post(http: httpx.Client, contract: Contract, body: bytes) -> httpx.Response:
    ctype = "text/xml; charset=utf-16" if body.startswith((b"\xff\xfe", b"\xfe\xff")) else "text/xml; charset=utf-8"
    return http.post(contract.url_path, content=body,
                     headers={"Content-Type": ctype, "SOAPAction": f'"{contract.soap_action}"'})


def assert_fault(resp: httpx.Response) -> None:
    assert resp.status_code in (500, 413, 408), resp.status_code
    root = etree.fromstring(resp.content)
    fault = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    assert fault is not None, resp.content[:300]
    assert LOG_ID.search(resp.content), "a fault names its log id"
    assert b"Traceback" not in resp.content


def patients_in(root, contract: Contract) -> set[str]:
    """The patients the answer's records are about, wherever the contract's header model keeps them."""
    recs = root.iter(f"{{{contract.responder_ns}}}{contract.record_element}")
    return {first_text(r, contract, contract.paths.patient_id) or "" for r in recs}


def sensitive(patient: str) -> tuple[str, ...]:
    return (patient,) if len(patient) >= 10 else ()


@PROPERTY
@given(case=valid_shaped())
def test_valid_shaped_requests(http, caplog, case):
    contract, patient, body = case
    caplog.clear()
    caplog.set_level(logging.INFO)
    resp = post(http, contract, body)
    if resp.status_code != 200:
        assert_fault(resp)
        assert not leaks(resp.text, sensitive(patient))
    else:
        root = etree.fromstring(resp.content)
        answer = root.find(f"{{{SOAP_NS}}}Body/{{{contract.responder_ns}}}{contract.response_element}")
        assert answer is not None
        outer, inner = contract.result_ns
        code = answer.findtext(f"{{{outer}}}result/{{{inner}}}resultCode")
        assert code in ("OK", "INFO", "ERROR")
        if code == "ERROR":
            assert not leaks(etree.tostring(answer.find(f"{{{outer}}}result"), encoding="unicode"),
                             sensitive(patient))
        records = answer.findall(f"{{{contract.responder_ns}}}{contract.record_element}")
        assert len(patients_in(answer, contract)) == (1 if records else 0)
        assert patients_in(answer, contract) <= {patient.strip()}, "an answer held another patient's records"
    for record in loud_records(caplog):
        assert not leaks(record.getMessage(), sensitive(patient)), record.getMessage()


@PROPERTY
@given(case=broken_body())
def test_broken_bodies_get_soap_faults(http, caplog, case):
    contract, body = case
    caplog.clear()
    caplog.set_level(logging.INFO)
    resp = post(http, contract, body)
    if resp.status_code != 200:
        assert_fault(resp)
        assert not leaks(resp.text)
    else:  # a mutation can leave a valid request (say, a flipped byte inside a comment-free text node)
        assert etree.fromstring(resp.content).find(f"{{{SOAP_NS}}}Body") is not None
    for record in loud_records(caplog):
        assert not leaks(record.getMessage()), record.getMessage()


def test_still_serving_after_the_properties(http):
    from adapter.rivta.contracts import GET_DIAGNOSIS as GD

    resp = post(http, GD, good_request(GD))
    assert resp.status_code == 200
    assert b"diagnosis>" in resp.content
