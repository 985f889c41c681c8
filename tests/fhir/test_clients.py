"""FHIR clients nobody here wrote, used as a municipal integrator would: fhirpy (Beda Software) and the SMART on
FHIR `fhirclient`. What they write is in the next SOAP answer."""

from __future__ import annotations

import copy

from fhirclient import client as smart_client
from fhirclient.models.condition import Condition as SmartCondition
from fhirpy import SyncFHIRClient

from tests.fhir.helpers import condition, diagnosis_ids, support_resources


def test_fhirpy_creates_updates_searches_and_deletes(store, server_for):
    srv = server_for(store)
    fhir = SyncFHIRClient(f"{srv.url}/fhir")
    for r in support_resources():
        fhir.resource(r["resourceType"], **r).save()  # a PUT per resource: they carry ids
    cond = fhir.resource("Condition", **condition("c-fhirpy", identifier="d-fhirpy"))
    cond.save()
    assert cond["meta"]["versionId"] == "1"
    cond["code"]["coding"][0]["display"] = "Pneumoni (uppdaterad)"
    cond.save()
    assert cond["meta"]["versionId"] == "2"
    assert diagnosis_ids(srv.url) == ["d-fhirpy"]

    fresh = {k: v for k, v in condition("x", identifier="d-fhirpy-2").items() if k != "id"}
    created = fhir.resource("Condition", **fresh)
    created.save()  # POST: the server gives the id
    assert created.id and created.id != "x"
    found = fhir.resources("Condition").search(identifier="d-fhirpy-2").fetch_all()
    assert [c.id for c in found] == [created.id]
    assert sorted(diagnosis_ids(srv.url)) == ["d-fhirpy", "d-fhirpy-2"]
    created.delete()
    assert diagnosis_ids(srv.url) == ["d-fhirpy"]


def test_smart_fhirclient_reads_the_capabilities_and_creates(store, server_for):
    srv = server_for(store)
    smart = smart_client.FHIRClient(settings={"app_id": "kommunens-journal", "api_base": f"{srv.url}/fhir/"})
    smart.prepare()  # fetches and parses /metadata with the client's own R4 models
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert {r.type for r in statement.rest[0].resource} >= {"Condition", "Patient", "Provenance"}
    for r in support_resources():
        smart.server.put_json(f"{r['resourceType']}/{r['id']}", r)
    body = copy.deepcopy(condition("c-smart", identifier="d-smart"))
    del body["id"]
    created = SmartCondition(body).create(smart.server)
    assert created is not None
    assert diagnosis_ids(srv.url) == ["d-smart"]
    [stored_id] = [c.id for c in SmartCondition.where({"identifier": "d-smart"}).perform_resources_iter(smart.server)]
    read = SmartCondition.read(stored_id, smart.server)
    assert read.meta.versionId == "1" and read.code.coding[0].code == "J18.9"
