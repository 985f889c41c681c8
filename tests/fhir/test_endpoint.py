"""The FHIR REST endpoint over real HTTP, on SQLite and PostgreSQL: reference forms real FHIR software sends,
transaction and batch semantics, conditional interactions, versions, re-rendering, deletes; each write checked
in the very next SOAP answer."""

from __future__ import annotations

import copy
import threading

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from adapter.intake.unit import ACCEPTED_TYPES
from tests.fhir.helpers import (
    DIAGNOSIS,
    GIVER,
    HOME,
    HOUSING,
    HSA,
    PNR,
    PNR_SYSTEM,
    Fhir,
    bare_condition,
    condition,
    diagnoses,
    diagnosis_ids,
    header_value,
    outbox,
    post_entry,
    provenance,
    put_entry,
    support_resources,
    support_transaction,
    transaction,
    urn,
)
from tests.samples import call, document_ids

HSA_REF = lambda value: {"identifier": {"system": HSA, "value": value}}  # noqa: E731


@pytest.fixture
def fhir(store, server_for):
    srv = server_for(store)
    client = Fhir(srv.url)
    r = client.post("", support_transaction())
    assert r.status_code == 200, r.text
    return client


def issues(response) -> list[dict]:
    body = response.json()
    OperationOutcome.model_validate(body)  # a valid OperationOutcome, as any FHIR client would parse it
    return body["issue"]


def test_metadata_lists_exactly_what_is_supported(fhir):
    r = fhir.get("metadata")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    cap = r.json()
    CapabilityStatement.model_validate(cap)
    rest = cap["rest"][0]
    assert {x["type"] for x in rest["resource"]} == set(ACCEPTED_TYPES)
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    assert all(x["conditionalDelete"] == "single" and x["versioning"] == "versioned-update" for x in rest["resource"])


def test_urn_uuid_fullurls_that_differ_from_the_ids_resolve(store, fhir):
    """The form exporting software writes: every entry has a urn:uuid fullUrl unlike its id, and the Provenance
    names its record by that fullUrl (before, every clinical resource was refused for TKB Regel 1)."""
    c_url, p_url = urn(), urn()
    patient = next(r for r in support_resources() if r["resourceType"] == "Patient")
    body = transaction(
        put_entry(patient, p_url),
        put_entry(bare_condition("c-export", identifier="d-export",
                                 subject={"reference": p_url}), c_url),
        put_entry(provenance(c_url, HSA_REF(HOUSING), HSA_REF(GIVER), rid="prov-export"), urn()),
    )
    r = fhir.post("", body)
    assert r.status_code == 200, r.text
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["200 OK", "201 Created", "201 Created"]
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "documentId") == "d-export"
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOUSING
    assert header_value(rec, "healthcareProfessionalCareGiverHSAId") == GIVER
    stored = fhir.get("Condition/c-export").json()
    assert stored["subject"] == {"reference": "Patient/pat-1"}  # the fullUrl reference rewritten to Type/id
    assert fhir.get("Provenance/prov-export").json()["target"] == [{"reference": "Condition/c-export"}]


def test_post_entries_without_ids_get_server_ids_and_references_are_rewritten(store, fhir):
    c_url = urn()
    body = transaction(
        post_entry(bare_condition("ignored", identifier="d-post"), c_url),
        post_entry(provenance(c_url, HSA_REF(HOME), HSA_REF(GIVER)), urn()),
    )
    r = fhir.post("", body)
    assert r.status_code == 200, r.text
    cond, prov = r.json()["entry"]
    assert cond["response"]["status"] == "201 Created"
    new_id = cond["response"]["location"].split("/")[1]
    assert new_id != "ignored" and cond["response"]["etag"] == 'W/"1"'
    assert r.json()["entry"][0]["fullUrl"].endswith(f"/fhir/Condition/{new_id}")
    provenance_id = prov["response"]["location"].split("/")[1]
    assert fhir.get(f"Provenance/{provenance_id}").json()["target"] == [{"reference": f"Condition/{new_id}"}]
    assert diagnosis_ids(fhir.url) == ["d-post"]


def test_absolute_fullurls_and_references_relative_to_the_entry_base(store, fhir):
    base = "https://journal.exempelby.se/fhir"
    c = bare_condition("c-abs", identifier="d-abs")
    body = transaction(
        put_entry(c, f"{base}/Condition/c-abs"),
        # relative to the Provenance's base, so it means {base}/Condition/c-abs
        put_entry(provenance("Condition/c-abs", {"reference": f"{base}/Organization/unit-abs"},
                             HSA_REF(GIVER), rid="prov-abs"), f"{base}/Provenance/prov-abs"),
        put_entry({"resourceType": "Organization", "id": "unit-abs", "name": "Hemtjänsten Ängsvägen",
                   "identifier": [{"system": HSA, "value": HOME}]}, f"{base}/Organization/unit-abs"),
    )
    r = fhir.post("", body)
    assert r.status_code == 200, r.text
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOME
    # Later, another transaction names the unit by its absolute URL only: resolved from the store by that URL.
    later = bare_condition("c-abs-2", identifier="d-abs-2")
    r = fhir.post("", transaction(put_entry(later), put_entry(provenance(
        "Condition/c-abs-2", {"reference": f"{base}/Organization/unit-abs"}, HSA_REF(GIVER), rid="prov-abs-2"))))
    assert r.status_code == 200, r.text
    units = {header_value(x, "documentId"): header_value(x, "healthcareProfessionalCareUnitHSAId")
             for x in diagnoses(fhir.url)}
    assert units == {"d-abs": HOME, "d-abs-2": HOME}


def test_a_condition_alone_with_logical_references_resolves_what_was_stored_earlier(store, fhir):
    """Pushed today, alone: the patient named by personnummer, the role by HSA-id, and the role's unit by HSA-id;
    the unit's care giver comes from the Organization pushed with the support transaction earlier."""
    role = {"resourceType": "PractitionerRole", "id": "role-logical",
            "identifier": [{"system": HSA, "value": "SE2120001231-R777"}],
            "practitioner": {"reference": "Practitioner/ssk-asa"},
            "organization": {"identifier": {"system": HSA, "value": HOUSING}}}
    assert fhir.put("PractitionerRole/role-logical", role).status_code == 201
    c = condition("c-logical", identifier="d-logical",
                  subject={"identifier": {"system": PNR_SYSTEM, "value": PNR}},
                  recorder={"type": "PractitionerRole", "identifier": {"system": HSA, "value": "SE2120001231-R777"}})
    r = fhir.put("Condition/c-logical", c)
    assert r.status_code == 201, r.text
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOUSING
    assert header_value(rec, "healthcareProfessionalCareGiverHSAId") == GIVER  # Organization/ve-sabo.partOf


def test_contained_references_resolve_inside_the_resource(store, fhir):
    c = condition("c-contained", identifier="d-contained")
    c["contained"] = [{"resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference":
                       "Practitioner/ssk-jonas"}, "organization": {"reference": "Organization/ve-sabo"}}]
    c["recorder"] = {"reference": "#r1"}
    assert fhir.put("Condition/c-contained", c).status_code == 201
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOUSING


def test_a_transaction_is_all_or_nothing_and_the_outcome_names_the_entry(store, fhir):
    bad = condition("c-t2", identifier="d-t2")
    del bad["recordedDate"]  # no author time: the record cannot be published
    body = transaction(put_entry(condition("c-t1", identifier="d-t1")), put_entry(bad),
                       put_entry(condition("c-t3", identifier="d-t3")))
    r = fhir.post("", body)
    assert r.status_code == 422, r.text
    [issue] = issues(r)
    assert issue["expression"][0].startswith("Bundle.entry[1].resource.")
    assert "Bundle.entry[1]" in issue["diagnostics"] and PNR not in r.text
    assert diagnosis_ids(fhir.url) == []
    assert fhir.get("Condition/c-t1").status_code == 404  # nothing of it was stored
    assert outbox(store) == []


def test_a_batch_stores_each_good_entry_on_its_own(store, fhir):
    bad = condition("c-b2", identifier="d-b2", source="not an hsa id!")
    body = transaction(put_entry(condition("c-b1", identifier="d-b1")), put_entry(bad),
                       {"resource": {"resourceType": "Appointment", "id": "a1"},
                        "request": {"method": "PUT", "url": "Appointment/a1"}},
                       put_entry(condition("c-b3", identifier="d-b3")), type_="batch")
    r = fhir.post("", body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["type"] == "batch-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created", "422 Unprocessable Entity",
                                                                  "404 Not Found", "201 Created"]
    refused = answer["entry"][1]["response"]["outcome"]
    OperationOutcome.model_validate(refused)
    assert refused["issue"][0]["expression"] == ["Bundle.entry[1].resource.meta.source"]
    assert sorted(diagnosis_ids(fhir.url)) == ["d-b1", "d-b3"]


def test_conditional_create_retried_after_a_timeout_does_not_duplicate(store, fhir):
    c = condition("ignored", identifier="d-cc")
    c["identifier"] = [{"system": "urn:oid:1.2.752.129.2.1.2.1", "value": "d-cc"}]
    first = fhir.post("/Condition", c, **{"If-None-Exist": "identifier=urn:oid:1.2.752.129.2.1.2.1|d-cc"})
    again = fhir.post("/Condition", c, **{"If-None-Exist": "identifier=urn:oid:1.2.752.129.2.1.2.1|d-cc"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.headers["location"] == again.headers["location"]
    assert diagnosis_ids(fhir.url) == ["d-cc"]
    # in a transaction entry too
    entry = post_entry(c, urn(), ifNoneExist="identifier=urn:oid:1.2.752.129.2.1.2.1|d-cc")
    r = fhir.post("", transaction(entry))
    assert r.json()["entry"][0]["response"]["status"] == "200 OK"
    assert diagnosis_ids(fhir.url) == ["d-cc"]


def test_conditional_update_by_identifier_creates_once_then_updates(store, fhir):
    c = condition("c-cu", identifier="d-cu")
    del c["id"]
    path = "Condition?identifier=d-cu"
    created = fhir.put(path, c)
    retried = fhir.put(path, c)  # the same body again (a retry, or tonight's full export)
    assert (created.status_code, retried.status_code) == (201, 200)
    assert created.headers["etag"] == retried.headers["etag"] == 'W/"1"'
    c["code"]["coding"][0]["display"] = "Pneumoni, ospecificerad (ändrad)"
    changed = fhir.put(path, c)
    assert changed.status_code == 200 and changed.headers["etag"] == 'W/"2"'
    assert changed.headers["location"].split("/")[-3] == created.headers["location"].split("/")[-3]
    assert diagnosis_ids(fhir.url) == ["d-cu"]


def test_an_unchanged_resource_sent_again_changes_nothing(store, fhir):
    c = condition("c-same", identifier="d-same")
    assert fhir.put("Condition/c-same", c).status_code == 201
    before = outbox(store)
    assert len(before) == 1
    again = fhir.put("Condition/c-same", c)
    assert again.status_code == 200 and again.headers["etag"] == 'W/"1"'
    again = fhir.post("", support_transaction())  # the nightly full export of the supporting resources
    assert {e["response"]["status"] for e in again.json()["entry"]} == {"200 OK"}
    assert {e["response"]["etag"] for e in again.json()["entry"]} == {'W/"1"'}
    assert outbox(store) == before  # no engagement re-announced


def test_if_match_two_writers_race_exactly_one_wins(store, fhir):
    c = condition("c-race", identifier="d-race")
    assert fhir.put("Condition/c-race", c).headers["etag"] == 'W/"1"'
    answers: list[int] = []
    barrier = threading.Barrier(2)

    def writer(display: str) -> None:
        body = copy.deepcopy(c)
        body["code"]["coding"][0]["display"] = display
        client = Fhir(fhir.url)
        barrier.wait()
        answers.append(client.put("Condition/c-race", body, **{"If-Match": 'W/"1"'}).status_code)

    threads = [threading.Thread(target=writer, args=(f"skrivare {i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 412]
    assert fhir.get("Condition/c-race").headers["etag"] == 'W/"2"'
    stale = fhir.put("Condition/c-race", c, **{"If-Match": 'W/"1"'})
    assert stale.status_code == 412 and issues(stale)[0]["code"] == "conflict"


def test_a_provenance_added_later_re_renders_its_record(store, fhir):
    assert fhir.put("Condition/c-later", condition("c-later", identifier="d-later")).status_code == 201
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOME  # from the recorder's role
    r = fhir.put("Provenance/prov-later", provenance("Condition/c-later", HSA_REF(HOUSING), HSA_REF(GIVER),
                                                     rid="prov-later"))
    assert r.status_code == 201, r.text
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOUSING


def test_a_unit_moved_under_another_care_giver_re_renders_and_re_announces(store, fhir):
    assert fhir.put("Condition/c-move", condition("c-move", identifier="d-move")).status_code == 201
    other_giver = {"resourceType": "Organization", "id": "vg-other", "name": "Annan vårdgivare",
                   "identifier": [{"system": HSA, "value": "SE2120009999-VG02"}]}
    assert fhir.put("Organization/vg-other", other_giver).status_code == 201
    unit = next(r for r in support_resources() if r["id"] == "ve-hemtjanst")
    moved = {**unit, "partOf": {"reference": "Organization/vg-other"}}
    r = fhir.put("Organization/ve-hemtjanst", moved)
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareGiverHSAId") == "SE2120009999-VG02"
    pending = {(row["data_controller"], row["delete_flag"]) for row in outbox(store)}
    assert pending == {(GIVER, True), ("SE2120009999-VG02", False)}


def test_deleting_a_unit_still_used_is_refused_and_nothing_is_lost(store, fhir):
    assert fhir.put("Condition/c-used", condition("c-used", identifier="d-used")).status_code == 201
    r = fhir.delete("Organization/ve-hemtjanst")
    assert r.status_code == 409, r.text
    assert "Condition/c-used" in issues(r)[0]["diagnostics"]
    assert diagnosis_ids(fhir.url) == ["d-used"]
    assert fhir.get("Organization/ve-hemtjanst").status_code == 200


def test_delete_withdraws_the_record_and_queues_a_delete_flag(store, fhir):
    assert fhir.put("Condition/c-del", condition("c-del", identifier="d-del")).status_code == 201
    assert diagnosis_ids(fhir.url) == ["d-del"]
    r = fhir.delete("Condition/c-del")
    assert r.status_code == 204
    assert diagnosis_ids(fhir.url) == []
    [row] = outbox(store)
    assert row["delete_flag"] is True and row["state"] == "pending"
    gone = fhir.get("Condition/c-del")
    assert gone.status_code == 410 and issues(gone)[0]["code"] == "deleted"
    assert fhir.delete("Condition/c-del").status_code == 204  # deleting again is not an error
    again = fhir.put("Condition/c-del", condition("c-del", identifier="d-del"))
    assert again.status_code == 201 and again.headers["etag"] == 'W/"3"'  # the history goes on


def test_conditional_delete_and_entered_in_error(store, fhir):
    for i in (1, 2):
        assert fhir.put(f"Condition/c-x{i}", condition(f"c-x{i}", identifier=f"d-x{i}")).status_code == 201
    assert fhir.delete("Condition?identifier=d-x1").status_code == 204
    assert diagnosis_ids(fhir.url) == ["d-x2"]
    withdrawn = condition("c-x2", identifier="d-x2", verificationStatus={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]})
    assert fhir.put("Condition/c-x2", withdrawn).status_code == 200
    assert diagnosis_ids(fhir.url) == []
    assert outbox(store)[0]["delete_flag"] is True


def test_errors_are_operation_outcomes_with_the_status_fhir_assigns(store, fhir):
    c = condition("c-err", identifier="d-err")
    assert fhir.http.put(f"{fhir.base}/Condition/c-err", content=b"{not json").status_code == 400
    assert fhir.put("Condition/other-id", c).status_code == 400  # id in body and URL differ
    wrong = fhir.put("Condition/c-err", {**c, "subject": "Patient/pat-1"})
    assert wrong.status_code == 422 and issues(wrong)[0]["expression"][0].startswith("Condition.subject")
    assert fhir.put("Appointment/a1", {"resourceType": "Appointment", "id": "a1"}).status_code == 404
    assert fhir.get("Condition/unknown").status_code == 404
    xml = fhir.http.put(f"{fhir.base}/Condition/c-err", content=b"<Condition/>",
                        headers={"Content-Type": "application/fhir+xml"})
    assert xml.status_code == 415
    assert fhir.get("metadata", Accept="application/fhir+xml").status_code == 406
    assert fhir.get("Condition?name=x").status_code == 400
    for r in (wrong,):
        assert PNR not in r.text and "Tolvan" not in r.text


def test_search_by_identifier_finds_what_was_stored(store, fhir):
    assert fhir.put("Condition/c-s", condition("c-s", identifier="d-s")).status_code == 201
    found = fhir.get("Condition?identifier=d-s").json()
    assert found["type"] == "searchset" and [e["resource"]["id"] for e in found["entry"]] == ["c-s"]
    assert fhir.get("Condition?identifier=nothing").json()["total"] == 0


def test_hostile_bodies_are_refused_cleanly(store, server_for):
    srv = server_for(store, max_fhir_request_bytes=64 * 1024)
    fhir = Fhir(srv.url)
    deep: dict = {"url": "x"}
    for _ in range(200):
        deep = {"url": "x", "extension": [deep]}
    nested = condition("c-deep", identifier="d-deep", extension=[deep])
    r = fhir.put("Condition/c-deep", nested)
    assert r.status_code == 422 and "nested deeper" in issues(r)[0]["diagnostics"]
    too_big = fhir.http.put(f"{fhir.base}/Condition/c-big", content=b"{" + b" " * 70_000 + b"}")
    assert too_big.status_code == 413 and issues(too_big)[0]["code"] == "too-costly"
    for body in (b"[]", b'"text"', b"{\"resourceType\": 5}"):
        assert fhir.http.put(f"{fhir.base}/Condition/c-x", content=body).status_code == 400
    leaky = fhir.put(f"{PNR}/x", {"resourceType": PNR})
    assert leaky.status_code == 404 and PNR not in leaky.text
    typed = fhir.post("", transaction({"resource": {"resourceType": PNR, "id": "x"},
                                       "request": {"method": "PUT", "url": f"{PNR}/x"}}, type_="batch"))
    assert typed.status_code == 200 and PNR not in typed.text


def test_each_write_is_logged_without_personal_data(fhir, caplog):
    caplog.set_level("INFO", logger="adapter.fhir")
    c = condition("c-log", identifier="d-log", text="Patienten Tolvan har ont")
    assert fhir.put("Condition/c-log", c).status_code == 201
    bad = {**c, "id": "c-log2", "meta": {"source": "urn:oid:1.2.752.129.2.1.4.1#bad hsa"}}
    assert fhir.put("Condition/c-log2", bad).status_code == 422
    lines = [r.getMessage() for r in caplog.records if r.name == "adapter.fhir"]
    assert any("update by operator: Condition/c-log 201" in line for line in lines), lines
    assert any("Condition/c-log2 422" in line for line in lines), lines
    assert not any(PNR in line or "Tolvan" in line for line in lines)


def test_a_rolled_back_write_never_comes_back(store, fhir):
    """Review finding: a model cached from a transaction that was rolled back was taken for a later version with
    the same number, and moved the record to the rolled-back care unit."""
    def prov(unit: str) -> dict:
        return provenance("Condition/c-rb", HSA_REF(unit), HSA_REF(GIVER), rid="prov-rb")

    first = transaction(put_entry(bare_condition("c-rb", identifier="d-rb")), put_entry(prov(HOME)))
    assert fhir.post("", first).status_code == 200
    evil = transaction(put_entry(prov("SE2120001231-EVIL")), put_entry({**condition("c-bad", identifier="d-bad"),
                                                                         "recordedDate": None}))
    assert fhir.post("", evil).status_code == 422
    assert fhir.put("Provenance/prov-rb", prov(HOUSING)).headers["etag"] == 'W/"2"'
    changed = bare_condition("c-rb", identifier="d-rb", text="med anteckning")
    assert fhir.put("Condition/c-rb", changed).status_code == 200
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOUSING


def test_odd_but_valid_bundles_get_clear_answers(store, fhir):
    delete_type_only = {"request": {"method": "DELETE", "url": "Condition"}}
    good = put_entry(condition("c-odd", identifier="d-odd"))
    r = fhir.post("", transaction(good, delete_type_only, type_="batch"))
    assert r.status_code == 200
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["201 Created", "400 Bad Request"]
    for url in ("Foo/x", "Bundle/x"):
        r = fhir.post("", transaction({"request": {"method": "DELETE", "url": url}}, type_="batch"))
        assert r.json()["entry"][0]["response"]["status"] == "404 Not Found"
    # a role whose practitioner and organisation point at the wrong types: refused, not a crash
    c = condition("c-types", identifier="d-types")
    c["contained"] = [{"resourceType": "PractitionerRole", "id": "r",
                       "practitioner": {"reference": "Organization/ve-sabo"},
                       "organization": {"reference": "Patient/pat-1"}}]
    c["recorder"] = {"reference": "#r"}
    assert fhir.put("Condition/c-types", c).status_code == 422
    # bdl-7: two entries with one fullUrl
    same = urn()
    r = fhir.post("", transaction(put_entry(condition("c-f1", identifier="d-f1"), same),
                                  put_entry(condition("c-f2", identifier="d-f2"), same)))
    assert r.status_code == 400 and issues(r)[0]["expression"] == ["Bundle.entry[1].fullUrl"]
    # ids that are no FHIR ids, and request fields of the wrong JSON type
    long_id = "x" * 65
    assert fhir.put("Condition?identifier=d-long", condition(long_id, identifier="d-long")).status_code == 400
    odd = put_entry(condition("c-im", identifier="d-im"))
    odd["request"]["ifMatch"] = 1
    assert fhir.post("", transaction(odd)).status_code == 400
    assert fhir.get("Condition/c-im").status_code == 404


def test_if_match_star_and_lenient_search_parameters(store, fhir):
    assert fhir.put("Condition/c-star", condition("c-star", identifier="d-star"), **{"If-Match": "*"}).status_code \
        == 412  # nothing to match yet
    assert fhir.put("Condition/c-star", condition("c-star", identifier="d-star")).status_code == 201
    changed = condition("c-star", identifier="d-star", text="ändrad")
    assert fhir.put("Condition/c-star", changed, **{"If-Match": "*"}).status_code == 200
    found = fhir.get("Condition?identifier=d-star&_count=1&_summary=false")  # as fhirpy's .first() asks
    assert found.status_code == 200 and found.json()["total"] == 1
    strict = fhir.get("Condition?identifier=d-star&_count=1", Prefer="handling=strict")
    assert strict.status_code == 400
    assert fhir.get("Condition?_count=10").status_code == 400  # never everything


def test_an_absolute_reference_to_another_server_is_not_taken_for_a_local_one(store, fhir):
    c = condition("c-far", identifier="d-far")
    c["recorder"] = {"reference": "https://elsewhere.example/fhir/PractitionerRole/ssk-asa-role"}
    assert fhir.put("Condition/c-far", c).status_code == 422
    c["recorder"] = {"reference": f"{fhir.base}/PractitionerRole/ssk-asa-role"}  # this server's own base
    assert fhir.put("Condition/c-far", c).status_code == 201


def test_ids_holding_a_personnummer_stay_out_of_the_log(fhir, caplog):
    caplog.set_level("INFO", logger="adapter.fhir")
    patient = {"resourceType": "Patient", "id": f"pat-{PNR}",
               "identifier": [{"system": "http://electronichealth.se/identifier/personnummer", "value": PNR}]}
    assert fhir.put(f"Patient/pat-{PNR}", patient).status_code == 201
    lines = [r.getMessage() for r in caplog.records if r.name == "adapter.fhir"]
    assert lines and not any(PNR in line for line in lines)
    assert any("Patient/(id not shown) 201" in line for line in lines)


def test_a_time_the_contracts_cannot_carry_is_refused_and_the_answer_stays_valid(store, fhir):
    """The attacker's finding: one accepted Condition dated 9999 (or year 1) made the patient's whole GetDiagnosis
    answer fail the schema, so NPÖ showed none of their diagnoses; year 1 in a far zone answered 500."""
    from tests.samples import official_schema

    assert fhir.put("Condition/c-ok", condition("c-ok", identifier="d-ok")).status_code == 201
    for rid, field, value in (("c-9999", "recordedDate", "9999-12-31T12:00:00+01:00"),
                              ("c-0001", "recordedDate", "0001-01-01T00:00:00-12:00"),
                              ("c-0001b", "recordedDate", "0001-01-01T00:00:00+14:00"),
                              ("c-onset", "onsetDateTime", "9999-12-31T23:59:59-12:00")):
        r = fhir.put(f"Condition/{rid}", {**condition(rid, identifier=f"d-{rid}"), field: value})
        assert r.status_code == 422, (rid, r.text)
        assert "1900 to 2099" in issues(r)[0]["diagnostics"]
    blank = condition("c-blank", identifier="d-blank")
    blank["identifier"] = [{"value": " "}]
    assert fhir.put("Condition/c-blank", blank).status_code == 201  # the documentId falls back to the id
    status, root, _ = call(fhir.url, DIAGNOSIS)
    assert status == 200 and official_schema(DIAGNOSIS).validate(root.find(".//{*}Body")[0])
    assert sorted(document_ids(root, DIAGNOSIS)) == ["c-blank", "d-ok"]


def test_a_write_retried_after_a_race_still_re_renders_what_depends_on_it(store, fhir, monkeypatch):
    """A race with another writer (IntegrityError) is retried, but the retry kept the failed attempt's memory: the
    record re-rendered in the rolled-back attempt counted as written already, and kept its old care unit."""
    from sqlalchemy.exc import IntegrityError

    from adapter.intake.unit import Intake

    assert fhir.put("Condition/c-race", condition("c-race", identifier="d-race")).status_code == 201
    finish, calls = Intake.finish, []

    def first_one_loses_a_race(self):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT", {}, Exception("another writer was first"))
        finish(self)

    monkeypatch.setattr(Intake, "finish", first_one_loses_a_race)
    r = fhir.put("Provenance/prov-race", provenance("Condition/c-race", HSA_REF(HOUSING), HSA_REF(GIVER),
                                                    rid="prov-race"))
    assert r.status_code == 201 and len(calls) == 2, r.text
    [rec] = diagnoses(fhir.url)
    assert header_value(rec, "healthcareProfessionalCareUnitHSAId") == HOUSING
