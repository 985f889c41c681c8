"""FHIR inputs and SOAP helpers for tests."""

from __future__ import annotations

from pathlib import Path

import httpx
from lxml import etree

from adapter.demo.generate import organisation, patient_resource
from adapter.demo.world import default_world
from adapter.mapping import profile
from adapter.rivta.contracts import SOAP_NS, Contract
from adapter.rivta.request_builder import build_request
from adapter.rivta.rules import first_text

REPO = Path(__file__).resolve().parents[1]
REFERENCE = (REPO / ".." / "shared" / "reference").resolve()
WORLD = default_world()
SOURCE = WORLD.source_system
OTHER_SOURCE = "SE2120001231-SYS2"
PNR = "191212121212"
SNR = "197010632391"


def support_bundle() -> dict:
    resources = organisation(WORLD) + [patient_resource(p) for p in WORLD.patients]
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def condition(rid: str, *, patient: str = "pat-1", recorded: str = "2024-03-01T10:00:00+01:00",
              onset: str | None = None, asserted: str | None = None, source: str = SOURCE,
              staff: int = 0, code: tuple[str, str] | None = ("J18.9", "Pneumoni, ospecificerad"),
              text: str | None = None, encounter: str | None = None, identifier: str | None = None,
              **extra) -> dict:
    c: dict = {
        "resourceType": "Condition",
        "id": rid,
        "meta": {"source": f"urn:oid:1.2.752.129.2.1.4.1#{source}"},
        "subject": {"reference": f"Patient/{patient}"},
        "recordedDate": recorded,
        "recorder": WORLD.staff[staff].role_ref,
    }
    if identifier:
        c["identifier"] = [{"value": identifier}]
    if code or text:
        c["code"] = {}
        if code:
            c["code"]["coding"] = [{"system": "https://www.icd10.se/", "code": code[0], "display": code[1]}]
        if text:
            c["code"]["text"] = text
    if onset:
        c["onsetDateTime"] = onset
    if asserted:
        c["asserter"] = WORLD.staff[staff].role_ref
        c["extension"] = [{"url": profile.CONDITION_ASSERTED_DATE, "valueDateTime": asserted}]
    if encounter:
        c["encounter"] = {"identifier": {"value": encounter}}
    c.update(extra)
    return c


def bundle(*resources: dict, type_: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": type_, "entry": [{"resource": r} for r in resources]}


def call(url: str, contract: Contract, logical_address: str | None = SOURCE, patient: str = PNR,
         **kw) -> tuple[int, etree._Element, bytes]:
    body = build_request(contract, logical_address, patient, **kw)
    return post(url, contract, body)


def post(url: str, contract: Contract, body: bytes, content_type: str = "text/xml; charset=utf-8"):
    r = httpx.post(url + contract.url_path, content=body, timeout=20,
                   headers={"Content-Type": content_type, "SOAPAction": contract.soap_action})
    return r.status_code, etree.fromstring(r.content), r.content


def records(root: etree._Element, contract: Contract) -> list[etree._Element]:
    resp = root.find(f"{{{SOAP_NS}}}Body/{{{contract.responder_ns}}}{contract.response_element}")
    assert resp is not None, etree.tostring(root)
    return resp.findall(f"{{{contract.responder_ns}}}{contract.record_element}")


def result(root: etree._Element, contract: Contract) -> dict[str, str]:
    outer, inner = contract.result_ns
    resp = root.find(f"{{{SOAP_NS}}}Body/{{{contract.responder_ns}}}{contract.response_element}")
    res = resp.find(f"{{{outer}}}result")
    return {etree.QName(c).localname: c.text for c in res}


def document_ids(root: etree._Element, contract: Contract) -> list[str]:
    return [first_text(r, contract, contract.paths.document_id) for r in records(root, contract)]


def fault_string(root: etree._Element) -> str:
    f = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    assert f is not None, etree.tostring(root)
    return f.findtext("faultstring")


_SCHEMAS: dict[str, etree.XMLSchema] = {}


def official_schema(contract: Contract) -> etree.XMLSchema:
    """The national Responder XSD of a contract, from the reference pack (never copied here)."""
    key = f"{contract.name}/{contract.version}"
    if key not in _SCHEMAS:
        folder = REFERENCE / "rivta" / contract.name / contract.version / "interactions"
        xsd = next(folder.rglob(f"{contract.name}Responder_*.xsd"))
        _SCHEMAS[key] = etree.XMLSchema(etree.parse(str(xsd)))
    return _SCHEMAS[key]
