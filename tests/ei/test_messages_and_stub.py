"""Engagement index Update: the messages a producer builds, the client, and the stand-in EI over real HTTP.

The stand-in runs in a uvicorn thread on loopback (plain HTTP, and mTLS with the dev PKI) and as a separate
process; every validation rule of the national EI gets a request that breaks it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from lxml import etree

from adapter.ei.client import EiFault, EiUnavailable, send_update
from adapter.ei.messages import (
    EI_CORE_NS,
    SOAP_ACTION,
    UPDATE_RESPONDER_NS,
    Engagement,
    EngagementTransaction,
    InvalidBatch,
    ResultCode,
    UpdateResult,
    build_update,
    engagement_problems,
    parse_update_response,
    redact,
    update_schema,
)
from adapter.gateway.pki import CLIENT_SPECS, DevPki, load_pki
from adapter.gateway.tls import TlsContexts
from adapter.rivta.contracts import REGISTRY_NS, SOAP_NS
from adapter.stubs.engagement_index import DEFAULT_OWNER, EngagementIndexStub, ErrorStyle
from tests.conftest import free_port
from tests.ei.conftest import StubServer, serve_stub
from tests.gateway.conftest import client_context, tls_files
from tests.samples import PNR, REFERENCE, SNR

OFFICIAL = REFERENCE / "rivta" / "itintegration-engagementindex" / "1.0"
OFFICIAL_UPDATE_XSD = OFFICIAL / "interactions" / "UpdateInteraction" / "UpdateResponder_1.0.xsd"
OFFICIAL_REGISTRY_XSD = OFFICIAL / "core_components" / "itintegration_registry_1.0.xsd"
SOURCE = "SE2120001231-SYS1"
CONTROLLER = "SE2120001231"
HEALTHCOND = "riv:clinicalprocess:healthcond:description"
PLATFORM = CLIENT_SPECS["platform"].hsa_id


def engagement(resident: str = PNR, categorization: str = "dia", **changes) -> Engagement:
    e = Engagement(resident, HEALTHCOND, categorization, SOURCE, most_recent_content="20240301101500",
                   source_system=SOURCE, data_controller=CONTROLLER)
    return replace(e, **changes)


def tx(e: Engagement, delete: bool = False) -> EngagementTransaction:
    return EngagementTransaction(e, delete)


def run(coro):
    return asyncio.run(coro)


async def send(url: str, transactions: list[EngagementTransaction], *, address: str = DEFAULT_OWNER,
               timeout: float = 5.0, verify=True) -> UpdateResult:
    async with httpx.AsyncClient(timeout=timeout, verify=verify, trust_env=False) as client:
        return await send_update(client, url, address, transactions)


def body_of(envelope: bytes) -> etree._Element:
    return etree.fromstring(envelope).find(f"{{{SOAP_NS}}}Body")[0]


# ---------------------------------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------------------------------
def test_key_is_the_unique_key_of_the_index() -> None:
    e = engagement()
    assert e.key() == (PNR, HEALTHCOND, "dia", SOURCE, "NA", "NA", SOURCE, CONTROLLER)
    assert replace(e, most_recent_content="20250101000000").key() == e.key()  # not part of the identity
    for changed in ("categorization", "data_controller", "business_object_instance_identifier"):
        assert replace(e, **{changed: "x"}).key() != e.key()
    assert Engagement.from_fields(e.fields()) == e


def test_built_request_is_valid_against_the_official_and_the_project_schema() -> None:
    data = build_update(DEFAULT_OWNER, [tx(engagement()), tx(engagement(SNR, "voo", most_recent_content=None), True)])
    root = etree.fromstring(data)
    update = body_of(data)
    official = etree.XMLSchema(etree.parse(str(OFFICIAL_UPDATE_XSD)))
    assert official.validate(update), official.error_log
    assert update_schema().validate(update), update_schema().error_log
    header = root.find(f"{{{SOAP_NS}}}Header/{{{REGISTRY_NS}}}LogicalAddress")
    registry = etree.XMLSchema(etree.parse(str(OFFICIAL_REGISTRY_XSD)))
    assert registry.validate(header) and header.text == DEFAULT_OWNER

    flags = [t.findtext(f"{{{EI_CORE_NS}}}deleteFlag") for t in update]
    assert flags == ["false", "true"]
    first, second = (t.find(f"{{{EI_CORE_NS}}}engagement") for t in update)
    assert [etree.QName(c).localname for c in first] == [
        "registeredResidentIdentification", "serviceDomain", "categorization", "logicalAddress",
        "businessObjectInstanceIdentifier", "clinicalProcessInterestId", "mostRecentContent", "sourceSystem",
        "dataController"]
    assert second.find(f"{{{EI_CORE_NS}}}mostRecentContent") is None
    for never in ("creationTime", "updateTime", "owner"):
        assert root.find(f".//{{{EI_CORE_NS}}}{never}") is None


def test_a_full_batch_of_1000_is_built() -> None:
    batch = [tx(engagement(f"1912121{i:05d}")) for i in range(1000)]
    assert len(body_of(build_update(DEFAULT_OWNER, batch))) == 1000


@pytest.mark.parametrize(("transactions", "index", "words"), [
    ([], None, "at least one"),
    ([tx(engagement(f"1912121{i:05d}")) for i in range(1001)], None, "at most 1000"),
    ([tx(engagement()), tx(engagement(SNR)), tx(engagement(most_recent_content="20250101000000"), True)], 2,
     "transactions 0 and 2 have the same unique key"),
    ([tx(engagement(categorization=" dia"))], 0, "white space"),
    ([tx(engagement(categorization=""))], 0, "categorization is empty"),
    ([tx(engagement(categorization="x" * 256))], 0, "longer than 255"),
    ([tx(engagement(data_controller="S" * 65))], 0, "longer than 64"),
    ([tx(engagement(logical_address="SE2120001231-SYS2"))], 0, "logicalAddress differs from sourceSystem"),
    ([tx(engagement("1912121212"))], 0, "national identity"),
    ([tx(engagement("19121212-1212"))], 0, "national identity"),
    ([tx(engagement(most_recent_content="20240230120000"))], 0, "mostRecentContent"),
    ([tx(engagement(most_recent_content="2024-03-01T10:15:00"))], 0, "mostRecentContent"),
    ([tx(engagement(categorization="dia\x01"))], 0, "characters XML cannot carry"),
], ids=["empty", "1001", "duplicate-key", "whitespace", "empty-field", "too-long", "too-long-64",
        "logical-address-not-source", "resident-10-digits", "resident-separator", "feb-30", "iso-time",
        "control-char"])
def test_build_refuses_what_the_index_would_refuse(transactions, index, words) -> None:
    with pytest.raises(InvalidBatch) as info:
        build_update(DEFAULT_OWNER, transactions)
    assert words in str(info.value)
    assert info.value.index == index
    assert isinstance(info.value, ValueError)
    assert PNR not in str(info.value) and "1912121212" not in str(info.value)


def test_engagement_problems_accepts_a_national_reserve_identity() -> None:
    assert engagement_problems(engagement("19121212AB3C")) == []
    assert engagement_problems(engagement()) == []


def _envelope(inner: str) -> bytes:
    return (f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Body>{inner}</s:Body></s:Envelope>').encode()


def test_parse_answers() -> None:
    ok = _envelope(f'<UpdateResponse xmlns="{UPDATE_RESPONDER_NS}"><ResultCode>OK</ResultCode></UpdateResponse>')
    assert parse_update_response(ok) == UpdateResult(ResultCode.OK, None)
    error = _envelope(f'<UpdateResponse xmlns="{UPDATE_RESPONDER_NS}"><ResultCode>ERROR</ResultCode>'
                      f'<comment>EngagementTransaction 1 and 2 have the same unique key.</comment></UpdateResponse>')
    result = parse_update_response(error)
    assert result.code is ResultCode.ERROR and not result.ok and "same unique key" in result.comment
    info = _envelope(f'<UpdateResponse xmlns="{UPDATE_RESPONDER_NS}"><ResultCode>INFO</ResultCode></UpdateResponse>')
    assert parse_update_response(info).ok


def test_parse_fault_gives_code_and_redacted_text() -> None:
    fault = _envelope(f"<s:Fault><faultcode>s:Client</faultcode><faultstring>EI001: cvc-pattern-valid: Value "
                      f"'{PNR[:-1]}' is not facet-valid; patient {SNR} and 19121212-1212</faultstring></s:Fault>")
    with pytest.raises(EiFault) as info:
        parse_update_response(fault)
    assert info.value.code == "EI001" and info.value.rejected
    text = str(info.value)
    assert text.startswith("EI001: ") and PNR[:-1] not in text and SNR not in text and "1212121212" not in text
    # HSA-ids and organisation numbers stay readable
    assert redact("owner 5565594230 at SE2120001231-SYS1") == "owner 5565594230 at SE2120001231-SYS1"
    vp = _envelope("<s:Fault><faultcode>s:Server</faultcode><faultstring>VP009 Error connecting to service "
                   "producer</faultstring></s:Fault>")
    with pytest.raises(EiFault) as info:
        parse_update_response(vp)
    assert info.value.code == "VP009" and not info.value.rejected


@pytest.mark.parametrize("data", [
    b"not xml",
    b"<html><body>Bad gateway</body></html>",
    _envelope(f'<UpdateResponse xmlns="{UPDATE_RESPONDER_NS}"><ResultCode>FINE</ResultCode></UpdateResponse>'),
    _envelope("<Other/>"),
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
], ids=["not-xml", "html", "bad-result-code", "other-body", "doctype"])
def test_parse_unreadable_answer_is_unavailable(data: bytes) -> None:
    with pytest.raises(EiUnavailable):
        parse_update_response(data)


# ---------------------------------------------------------------------------------------------------------------
# the stand-in accepting calls
# ---------------------------------------------------------------------------------------------------------------
def test_a_valid_call_is_stored_and_logged(ei: StubServer) -> None:
    sent = [tx(engagement()), tx(engagement(SNR, "voo")), tx(engagement(categorization="caa-gmh",
                                                                         service_domain="riv:clinicalprocess:"
                                                                         "activityprescription:actoutcome"))]
    assert run(send(ei.url, sent)) == UpdateResult(ResultCode.OK)

    assert sorted(ei.stub.stored(), key=Engagement.key) == sorted((t.engagement for t in sent), key=Engagement.key)
    (call,) = ei.stub.calls
    assert call["outcome"] == "OK" and call["logicalAddress"] == DEFAULT_OWNER
    assert call["soapAction"].strip('"') == SOAP_ACTION
    assert [(t["deleteFlag"], Engagement.from_fields(t["engagement"])) for t in call["transactions"]] == \
        [(False, t.engagement) for t in sent]
    assert ei.stub.accepted_calls() == [sent]
    for post in ei.stub.engagements:
        assert post["owner"] == DEFAULT_OWNER and len(post["creationTime"]) == 14 and "updateTime" not in post


def test_delete_removes_and_unknown_delete_is_a_no_op(ei: StubServer) -> None:
    keep, remove = engagement(), engagement(SNR)
    assert run(send(ei.url, [tx(keep), tx(remove)])).ok
    assert run(send(ei.url, [tx(remove, True), tx(engagement(categorization="voo"), True)])).ok
    assert ei.stub.stored() == [keep]
    assert [c["outcome"] for c in ei.stub.calls] == ["OK", "OK"]


def test_update_rules_pr4_pr5(ei: StubServer) -> None:
    e = engagement()
    assert run(send(ei.url, [tx(e)])).ok
    (created,) = ei.stub.engagements
    assert run(send(ei.url, [tx(e)])).ok  # identical: left alone
    assert ei.stub.engagements == [created]
    newer = replace(e, most_recent_content="20240401080000")
    assert run(send(ei.url, [tx(newer)])).ok
    (updated,) = ei.stub.engagements
    assert updated["mostRecentContent"] == "20240401080000"
    assert updated["creationTime"] == created["creationTime"] and "updateTime" in updated


def test_admin_endpoints(ei: StubServer) -> None:
    with httpx.Client(base_url=ei.base, trust_env=False, timeout=5) as c:
        assert c.get("/_stub/mode").json()["mode"] == "ok"
        assert c.post("/_stub/mode", json={"mode": "down", "calls": 1}).json()["calls"] == 1
        assert c.post("/_stub/mode", json={"mode": "sideways"}).status_code == 422
        assert c.post("/_stub/mode", json={"mode": "ok"}).json()["mode"] == "ok"
        assert run(send(ei.url, [tx(engagement())])).ok
        assert [Engagement.from_fields(p) for p in c.get("/_stub/engagements").json()] == [engagement()]
        assert len(c.get("/_stub/calls").json()) == 1
        assert c.post("/_stub/reset").status_code == 200
        assert c.get("/_stub/engagements").json() == [] and c.get("/_stub/calls").json() == []


def test_wsdl_and_health(ei: StubServer) -> None:
    with httpx.Client(trust_env=False, timeout=5) as c:
        assert c.get(ei.base + "/health").json()["status"] == "ok"
        wsdl = etree.fromstring(c.get(ei.url + "?wsdl").content)
        address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address.get("location") == ei.url
        imports = {i.get("schemaLocation") for i in wsdl.iter("{http://www.w3.org/2001/XMLSchema}import")}
        assert imports == {"?xsd=EngagementIndexUpdateResponder_1.0.xsd", "?xsd=itintegration_registry_v1.xsd"}
        responder = etree.fromstring(c.get(ei.url + "?xsd=EngagementIndexUpdateResponder_1.0.xsd").content)
        assert responder.get("targetNamespace") == UPDATE_RESPONDER_NS
        core = c.get(ei.url + "?xsd=itintegration_engagementindex_core_v1.xsd")
        assert etree.fromstring(core.content).get("targetNamespace") == EI_CORE_NS
        assert c.get(ei.url + "?xsd=../../etc/passwd").status_code == 404


# ---------------------------------------------------------------------------------------------------------------
# the stand-in refusing calls: one request per rule
# ---------------------------------------------------------------------------------------------------------------
FIELD_ORDER = ("registeredResidentIdentification", "serviceDomain", "categorization", "logicalAddress",
               "businessObjectInstanceIdentifier", "clinicalProcessInterestId", "mostRecentContent", "sourceSystem",
               "creationTime", "updateTime", "dataController", "owner")


def raw_engagement(**fields: str | None) -> dict[str, str | None]:
    base = {"registeredResidentIdentification": PNR, "serviceDomain": HEALTHCOND, "categorization": "dia",
            "logicalAddress": SOURCE, "businessObjectInstanceIdentifier": "NA", "clinicalProcessInterestId": "NA",
            "mostRecentContent": "20240301101500", "sourceSystem": SOURCE, "dataController": CONTROLLER}
    return {**base, **fields}


def raw_update(*engagements: dict, address: str | None = DEFAULT_OWNER, flag: str | None = "false") -> bytes:
    """An Update envelope written by hand (build_update refuses to write most of these)."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS, "u": UPDATE_RESPONDER_NS, "e": EI_CORE_NS})
    header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    if address is not None:
        etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = address
    update = etree.SubElement(etree.SubElement(env, f"{{{SOAP_NS}}}Body"), f"{{{UPDATE_RESPONDER_NS}}}Update")
    for fields in engagements:
        t = etree.SubElement(update, f"{{{UPDATE_RESPONDER_NS}}}engagementTransaction")
        if flag is not None:
            etree.SubElement(t, f"{{{EI_CORE_NS}}}deleteFlag").text = flag
        e = etree.SubElement(t, f"{{{EI_CORE_NS}}}engagement")
        for name in FIELD_ORDER:
            if fields.get(name) is not None:
                etree.SubElement(e, f"{{{EI_CORE_NS}}}{name}").text = fields[name]
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def post(url: str, data: bytes) -> httpx.Response:
    return httpx.post(url, content=data, headers={"Content-Type": "text/xml; charset=utf-8",
                                                  "SOAPAction": f'"{SOAP_ACTION}"'}, trust_env=False, timeout=10)


REFUSALS = [
    ("EI001", raw_update(raw_engagement(), flag=None), "schema"),
    ("EI001", raw_update(raw_engagement(registeredResidentIdentification="1912121212")), "schema"),
    ("EI001", raw_update(raw_engagement(mostRecentContent="20241301120000")), "schema"),
    ("EI001", raw_update(raw_engagement(registeredResidentIdentification="19121212AB3C")), "deployed pattern"),
    ("EI003", raw_update(raw_engagement(), address="SE2321000016-OTHR"), "is SE2321000016-OTHR but the owner"),
    ("EI003", raw_update(raw_engagement(), address=None), "missing"),
    ("EI003", raw_update(raw_engagement(), address=PNR), "(redacted)"),
    ("EI000", raw_update(*[raw_engagement(registeredResidentIdentification=f"1912121{i:05d}") for i in range(1001)]),
     "at most 1000"),
    ("EI002", raw_update(raw_engagement(), raw_engagement(registeredResidentIdentification=SNR),
                         raw_engagement(mostRecentContent="20250101000000")), "EngagementTransaction 1 and 3"),
    ("EI004", raw_update(raw_engagement(categorization="dia ")), "white space"),
    ("EI004", raw_update(raw_engagement(sourceSystem=f" {SOURCE}", logicalAddress=f" {SOURCE}")), "white space"),
    ("EI004", raw_update(raw_engagement(categorization="")), "missing or empty"),
    ("EI004", raw_update(raw_engagement(dataController="")), "missing or empty"),
    ("EI004", raw_update(raw_engagement(categorization="c" * 256)), "longer than 255"),
    ("EI004", raw_update(raw_engagement(logicalAddress="S" * 65, sourceSystem="S" * 65)), "longer than 64"),
    ("EI004", raw_update(raw_engagement(businessObjectInstanceIdentifier="b" * 129)), "longer than 128"),
    ("EI004", raw_update(raw_engagement(mostRecentContent="20240230120000")), "not a valid timestamp"),
    ("EI004", raw_update(raw_engagement(creationTime="20240301101500")), "creationTime"),
    ("EI004", raw_update(raw_engagement(updateTime="20240301101500")), "updateTime"),
    ("EI004", raw_update(raw_engagement(owner=DEFAULT_OWNER)), "owner"),
    ("EI004", raw_update(raw_engagement(logicalAddress="SE2120001231-SYS2")), "must equal sourceSystem"),
    ("EI005", raw_update(raw_engagement(logicalAddress=PLATFORM, sourceSystem=PLATFORM)), PLATFORM),
    ("EI005", raw_update(raw_engagement(logicalAddress=DEFAULT_OWNER, sourceSystem=DEFAULT_OWNER)), "reserved"),
    ("EI006", raw_update(raw_engagement(sourceSystem=PLATFORM)), PLATFORM),
]


@pytest.mark.parametrize(("code", "data", "words"), [pytest.param(*r, id=f"{r[0]}-{i}") for i, r in
                                                     enumerate(REFUSALS)])
def test_each_rule_is_refused_like_the_national_ei(ei: StubServer, code: str, data: bytes, words: str,
                                                   caplog) -> None:
    caplog.set_level("DEBUG")
    response = post(ei.url, data)
    assert response.status_code == 500
    with pytest.raises(EiFault) as info:
        parse_update_response(response.content)
    assert info.value.code == code
    assert str(info.value).startswith(f"{code}: ") and words in str(info.value)
    assert PNR not in response.text and SNR not in response.text  # never personal data in a fault
    assert ei.stub.engagements == []  # nothing of a refused call is applied
    (call,) = ei.stub.calls
    assert call["outcome"] == code
    assert PNR not in caplog.text and SNR not in caplog.text


def test_a_good_call_after_a_refused_one_is_applied(ei: StubServer) -> None:
    assert post(ei.url, raw_update(raw_engagement(), raw_engagement())).status_code == 500
    assert post(ei.url, raw_update(raw_engagement())).status_code == 200
    assert ei.stub.stored() == [engagement()]
    assert [c["outcome"] for c in ei.stub.calls] == ["EI002", "OK"]
    assert ei.stub.accepted_calls() == [[tx(engagement())]]


def test_not_soap_and_hostile_xml_are_faults(ei: StubServer) -> None:
    for data in (b"hello", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
                 _envelope(f'<x:Other xmlns:x="{UPDATE_RESPONDER_NS}"/>')):
        response = post(ei.url, data)
        assert response.status_code == 500
        with pytest.raises(EiFault) as info:
            parse_update_response(response.content)
        assert info.value.code is None and "root:" not in response.text
    assert [c["outcome"] for c in ei.stub.calls] == ["SOAP", "SOAP", "SOAP"]


def test_client_maps_a_validation_fault_to_a_rejected_eifault(ei: StubServer) -> None:
    with pytest.raises(EiFault) as info:
        run(send(ei.url, [tx(engagement())], address="SE2321000016-OTHR"))
    assert info.value.code == "EI003" and info.value.rejected


def test_result_style_answers_resultcode_error() -> None:
    with serve_stub(EngagementIndexStub(error_style=ErrorStyle.RESULT)) as srv:
        result = run(send(srv.url, [tx(engagement())], address="SE2321000016-OTHR"))
        assert result.code is ResultCode.ERROR and not result.ok and result.comment.startswith("EI003: ")
        response = post(srv.url, raw_update(raw_engagement(), raw_engagement()))
        assert response.status_code == 200
        duplicate = parse_update_response(response.content)
        assert duplicate == UpdateResult(ResultCode.ERROR, "EI002: EngagementTransaction 1 and 2 have the same "
                                                           "unique key. Duplicates are not allowed.")
        assert srv.stub.engagements == []


def test_official_pattern_admits_national_reserve_identities() -> None:
    reserve = engagement("19121212AB3C")
    with serve_stub(EngagementIndexStub(deployed_resident_pattern=False, aliases=("SE5565594230-EI01",))) as srv:
        assert run(send(srv.url, [tx(reserve)], address="SE5565594230-EI01")).ok
        assert srv.stub.stored() == [reserve]


# ---------------------------------------------------------------------------------------------------------------
# failure modes and the client's view of them
# ---------------------------------------------------------------------------------------------------------------
def test_down_is_unavailable_then_recovers_after_the_given_calls(ei: StubServer) -> None:
    ei.stub.set_mode("down", calls=2)
    for _ in range(2):
        with pytest.raises(EiUnavailable) as info:
            run(send(ei.url, [tx(engagement())]))
        assert info.value.status == 503
    assert run(send(ei.url, [tx(engagement())])).ok
    assert [(c["mode"], c["outcome"]) for c in ei.stub.calls] == [("down", None), ("down", None), ("ok", "OK")]
    assert ei.stub.calls[0]["transactions"][0]["engagement"]["categorization"] == "dia"  # what arrived is logged


def test_fault_mode_is_a_technical_fault(ei: StubServer) -> None:
    ei.stub.set_mode("fault")
    with pytest.raises(EiFault) as info:
        run(send(ei.url, [tx(engagement())]))
    assert info.value.code == "EI000" and not info.value.rejected
    assert ei.stub.engagements == []


def test_slow_beyond_the_client_timeout_is_unavailable(ei: StubServer) -> None:
    ei.stub.set_mode("slow", delay=1.5, calls=1)
    started = time.monotonic()
    with pytest.raises(EiUnavailable) as info:
        run(send(ei.url, [tx(engagement())], timeout=0.3))
    assert "timeout" in info.value.reason and time.monotonic() - started < 1.4
    deadline = time.monotonic() + 3
    while not ei.stub.stored() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ei.stub.stored() == [engagement()]  # the index did get the call; the client never heard
    assert run(send(ei.url, [tx(engagement(SNR))], timeout=0.3)).ok  # mode was for one call only


def test_slow_without_delay_stops_waiting_when_the_caller_hangs_up(ei: StubServer) -> None:
    ei.stub.set_mode("slow")  # the default pause is 30 s
    with pytest.raises(EiUnavailable):
        run(send(ei.url, [tx(engagement())], timeout=0.3))
    deadline = time.monotonic() + 3
    while not ei.stub.stored() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ei.stub.stored() == [engagement()]  # applied at once when the caller left, not after 30 s


def test_slow_within_the_timeout_succeeds(ei: StubServer) -> None:
    ei.stub.set_mode("slow", delay=0.2)
    assert run(send(ei.url, [tx(engagement())], timeout=3)).ok


def test_dropped_connection_is_unavailable_but_was_applied(ei: StubServer) -> None:
    ei.stub.set_mode("close", calls=1)
    with pytest.raises(EiUnavailable):
        run(send(ei.url, [tx(engagement())]))
    assert ei.stub.stored() == [engagement()]  # outcome unknown to the client: resending is safe
    assert run(send(ei.url, [tx(engagement())])).ok
    assert ei.stub.stored() == [engagement()]


def test_mode_for_a_while_expires(ei: StubServer) -> None:
    ei.stub.set_mode("down", seconds=0.3)
    with pytest.raises(EiUnavailable):
        run(send(ei.url, [tx(engagement())]))
    time.sleep(0.35)
    assert run(send(ei.url, [tx(engagement())])).ok


def test_nobody_listening_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/itintegration/engagementindex/Update/1/rivtabp21"
    with pytest.raises(EiUnavailable) as info:
        run(send(url, [tx(engagement())]))
    assert "ConnectError" in info.value.reason


def test_invalid_batch_is_refused_before_sending(ei: StubServer) -> None:
    with pytest.raises(InvalidBatch):
        run(send(ei.url, [tx(engagement()), tx(engagement())]))
    assert ei.stub.calls == []


# ---------------------------------------------------------------------------------------------------------------
# mTLS with the dev PKI, in a thread and as a separate process that keeps its state over a restart
# ---------------------------------------------------------------------------------------------------------------
def test_stand_in_over_mtls(pki: DevPki) -> None:
    with serve_stub(tls=TlsContexts(tls_files(pki))) as srv:
        assert srv.url.startswith("https://")
        assert run(send(srv.url, [tx(engagement())], verify=client_context(pki, "consumer2"))).ok
        (call,) = srv.stub.calls
        assert call["caller"] == pki.client("consumer2").hsa_id
        with pytest.raises(EiUnavailable):  # no client certificate: the handshake is refused
            run(send(srv.url, [tx(engagement(SNR))], verify=client_context(pki, None)))
        with pytest.raises(EiUnavailable):  # revoked certificate
            run(send(srv.url, [tx(engagement(SNR))], verify=client_context(pki, "revoked")))
        assert srv.stub.stored() == [engagement()]


def _start_process(pki: DevPki, port: int, state: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapter.stubs.engagement_index", "--port", str(port), "--state", str(state),
         "--log-level", "warning", "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
         "--client-ca", str(pki.ca_bundle), "--crl", str(pki.crl_root), "--crl", str(pki.crl_function)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 15
    ctx = client_context(pki, "consumer2")
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            httpx.get(f"https://127.0.0.1:{port}/_stub/mode", verify=ctx, trust_env=False, timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise AssertionError("stand-in process did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


def test_separate_process_over_mtls_keeps_its_state(pki: DevPki, tmp_path: Path) -> None:
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    port, state = free_port(), tmp_path / "ei-state.json"
    url = f"https://127.0.0.1:{port}/itintegration/engagementindex/Update/1/rivtabp21"
    ctx = client_context(copy, "consumer2")
    proc = _start_process(copy, port, state)
    try:
        assert run(send(url, [tx(engagement()), tx(engagement(SNR, "voo"))], verify=ctx)).ok
        with httpx.Client(verify=ctx, trust_env=False, timeout=5) as c:
            c.post(f"https://127.0.0.1:{port}/_stub/mode", json={"mode": "down"}).raise_for_status()
        with pytest.raises(EiUnavailable):
            run(send(url, [tx(engagement(SNR, "voo"), True)], verify=ctx))
    finally:
        _stop(proc)

    proc = _start_process(copy, port, state)
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ctx, trust_env=False, timeout=5) as c:
            assert c.get("/_stub/mode").json()["mode"] == "ok"  # modes are not kept, what arrived is
            posts = c.get("/_stub/engagements").json()
            assert sorted(Engagement.from_fields(p).key() for p in posts) == \
                sorted([engagement().key(), engagement(SNR, "voo").key()])
            assert [(call["mode"], call["outcome"]) for call in c.get("/_stub/calls").json()] == \
                [("ok", "OK"), ("down", None)]
        assert run(send(url, [tx(engagement(SNR, "voo"), True)], verify=ctx)).ok
        with httpx.Client(verify=ctx, trust_env=False, timeout=5) as c:
            posts = c.get(f"https://127.0.0.1:{port}/_stub/engagements").json()
        assert [Engagement.from_fields(p) for p in posts] == [engagement()]
    finally:
        _stop(proc)
