"""FHIR-side helpers: the demo organisation as FHIR, transaction Bundles the way exporting software writes
them, and reading back what the producer answers over SOAP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from adapter.rivta.contracts import BY_KEY, Contract
from adapter.store.tables import ei_outbox
from tests.samples import PNR, SOURCE, WORLD, call, condition, document_ids, records, support_bundle

FHIR_JSON = "application/fhir+json"
HSA = "urn:oid:1.2.752.29.4.19"
PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"
DIAGNOSIS: Contract = BY_KEY["GetDiagnosis:2"]
HOME, HOUSING, GIVER = "SE2120001231-HT01", "SE2120001231-SB01", "SE2120001231-VG01"


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def support_resources() -> list[dict]:
    return [e["resource"] for e in support_bundle()["entry"]]


def put_entry(resource: dict, full_url: str | None = None) -> dict:
    entry: dict[str, Any] = {"resource": resource, "request": {"method": "PUT",
                                                               "url": f"{resource['resourceType']}/{resource['id']}"}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def post_entry(resource: dict, full_url: str, **request: str) -> dict:
    resource = {k: v for k, v in resource.items() if k != "id"}
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], **request}}


def transaction(*entries: dict, type_: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": type_, "entry": list(entries)}


def support_transaction() -> dict:
    return transaction(*[put_entry(r) for r in support_resources()])


def provenance(target: str, unit_ref: dict, giver_ref: dict, rid: str | None = None) -> dict:
    agent_type = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
    p = {"resourceType": "Provenance", "target": [{"reference": target}], "recorded": "2024-03-01T10:00:00+01:00",
         "agent": [{"type": {"coding": [{"system": agent_type, "code": "author"}]}, "who": unit_ref},
                   {"type": {"coding": [{"system": agent_type, "code": "custodian"}]}, "who": giver_ref}]}
    if rid:
        p["id"] = rid
    return p


def bare_condition(rid: str, **kw) -> dict:
    """A Condition whose recorder is a Practitioner without organisation: care unit and care giver can only come
    from a Provenance."""
    c = condition(rid, **kw)
    c["recorder"] = {"reference": "Practitioner/ssk-asa"}
    return c


class Fhir:
    """Plain HTTP to the FHIR endpoint of a running server."""

    def __init__(self, url: str, **client: Any) -> None:
        self.base = f"{url}/fhir"
        self.url = url
        self.http = httpx.Client(timeout=30, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}, **client)

    def post(self, path: str = "", body: dict | None = None, **headers: str) -> httpx.Response:
        return self.http.post(f"{self.base}{path}", json=body, headers=headers)

    def put(self, path: str, body: dict, **headers: str) -> httpx.Response:
        return self.http.put(f"{self.base}/{path}", json=body, headers=headers)

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.http.get(f"{self.base}/{path}", headers=headers)

    def delete(self, path: str, **headers: str) -> httpx.Response:
        return self.http.delete(f"{self.base}/{path}", headers=headers)


def diagnoses(url: str, patient: str = PNR) -> list:
    status, root, _ = call(url, DIAGNOSIS, patient=patient)
    assert status == 200
    return records(root, DIAGNOSIS)


def diagnosis_ids(url: str, patient: str = PNR) -> list[str]:
    status, root, _ = call(url, DIAGNOSIS, patient=patient)
    assert status == 200
    return document_ids(root, DIAGNOSIS)


def header_value(record, name: str) -> str | None:
    ns = DIAGNOSIS.core_ns
    found = record.find(f".//{{{ns}}}{name}")
    return found.text if found is not None else None


def outbox(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ei_outbox).order_by(ei_outbox.c.pk))]


__all__ = ["FHIR_JSON", "GIVER", "HOME", "HOUSING", "HSA", "PNR", "PNR_SYSTEM", "SOURCE", "WORLD", "Fhir",
           "bare_condition", "condition", "diagnoses", "diagnosis_ids", "header_value", "outbox", "post_entry",
           "provenance", "put_entry", "support_resources", "support_transaction", "transaction", "urn"]
