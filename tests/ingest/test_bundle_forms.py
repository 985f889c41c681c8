"""Bundles as real FHIR software writes them, through `npo-adapter ingest`: exports whose fullUrls differ from the
ids, documents (an IPS-like summary), a server's _history with deletes, and the nightly full export sent again."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from adapter.ingest import ingest
from adapter.store.tables import ei_outbox, records
from tests.fhir.helpers import GIVER, HOME, HOUSING, HSA, bare_condition, provenance, urn
from tests.mapping.test_care_documentation import composition
from tests.samples import bundle, condition, support_bundle


def write(path, obj):
    path.write_bytes(orjson.dumps(obj))
    return path


def published(engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return {r.document_id: r.care_unit for r in conn.execute(select(records.c.document_id, records.c.care_unit))}


def test_an_export_whose_fullurls_differ_from_the_ids(store, tmp_path):
    """The new user's export: urn:uuid fullUrls unlike the ids, each Provenance naming its record by fullUrl."""
    entries = [{"fullUrl": urn(), "resource": r} for r in [e["resource"] for e in support_bundle()["entry"]]]
    for i in range(3):
        c_url = urn()
        entries.append({"fullUrl": c_url, "resource": bare_condition(f"c-exp-{i}", identifier=f"d-exp-{i}")})
        entries.append({"fullUrl": urn(), "resource": provenance(
            c_url, {"identifier": {"system": HSA, "value": HOUSING}}, {"identifier": {"system": HSA, "value": GIVER}},
            rid=f"prov-exp-{i}")})
    report = ingest(store, [write(tmp_path / "export.json", {"resourceType": "Bundle", "type": "collection",
                                                               "entry": entries})])
    assert report.rejected == []
    assert published(store) == {f"d-exp-{i}": HOUSING for i in range(3)}


def test_a_document_bundle_is_read_entry_by_entry(store, tmp_path):
    """A document (as an IPS summary or a discharge report comes): the Composition becomes a note, the other
    entries are read as a collection's; resources with no NPÖ contract are skipped, not refused."""
    support = write(tmp_path / "support.json", support_bundle())
    comp_url, cond_url = urn(), urn()
    doc = {"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:ietf:rfc:3986",
                                                                      "value": urn()},
           "timestamp": "2024-11-03T16:50:00+01:00",
           "entry": [{"fullUrl": comp_url, "resource": composition()},
                     {"fullUrl": cond_url, "resource": condition("c-doc", identifier="d-doc")},
                     {"fullUrl": urn(), "resource": {"resourceType": "FamilyMemberHistory", "id": "f1",
                                                     "status": "completed", "relationship": {"text": "Mor"},
                                                     "patient": {"reference": "Patient/pat-1"}}}]}
    report = ingest(store, [support, write(tmp_path / "ips.json", doc)])
    assert report.rejected == []
    assert report.published == {"GetCareDocumentation:2": 1, "GetCareDocumentation:3": 1, "GetDiagnosis:2": 1}
    assert report.skipped == 1
    assert set(published(store)) == {"sammanfattning-1", "d-doc"}


def test_a_history_bundle_deletes_withdraw(store, tmp_path):
    support = write(tmp_path / "support.json", support_bundle())
    ingest(store, [support, write(tmp_path / "1.json", bundle(condition("c-h1", identifier="d-h1"),
                                                              condition("c-h2", identifier="d-h2")))])
    history = {"resourceType": "Bundle", "type": "history", "entry": [
        {"fullUrl": "https://journal.example/fhir/Condition/c-h2", "request": {"method": "DELETE",
                                                                               "url": "Condition/c-h2"},
         "response": {"status": "204"}},
        {"fullUrl": "https://journal.example/fhir/Condition/c-h3",
         "resource": condition("c-h3", identifier="d-h3"), "request": {"method": "PUT", "url": "Condition/c-h3"},
         "response": {"status": "201"}}]}
    report = ingest(store, [write(tmp_path / "history.json", history)])
    assert report.rejected == [] and report.removed == 1
    assert set(published(store)) == {"d-h1", "d-h3"}


def test_the_nightly_full_export_sent_again_re_announces_nothing(store, tmp_path):
    support = write(tmp_path / "support.json", support_bundle())
    data = write(tmp_path / "d.json", bundle(*[condition(f"c-n{i}", identifier=f"d-n{i}") for i in range(5)]))
    ingest(store, [support, data])
    with store.connect() as conn:
        before = [tuple(r) for r in conn.execute(select(ei_outbox.c.pk, ei_outbox.c.most_recent_content,
                                                        ei_outbox.c.revision))]
    again = ingest(store, [support, data])
    assert again.rejected == [] and sum(again.published.values()) == 0 and again.unchanged == 5 + again.context
    with store.connect() as conn:
        after = [tuple(r) for r in conn.execute(select(ei_outbox.c.pk, ei_outbox.c.most_recent_content,
                                                       ei_outbox.c.revision))]
    assert after == before


def test_one_bundle_a_patient_each_repeating_the_organisation(store, tmp_path):
    """An export of one Bundle per patient repeats the organisation and the staff in every file: each is taken
    once and the repeats are recognised as unchanged, not refused as a resource written twice."""
    files = []
    for i in range(3):
        entries = [{"fullUrl": urn(), "resource": r} for r in [e["resource"] for e in support_bundle()["entry"]]]
        entries.append({"fullUrl": urn(), "resource": condition(f"c-pp{i}", identifier=f"d-pp{i}")})
        files.append(write(tmp_path / f"patient-{i}.json", {"resourceType": "Bundle", "type": "collection",
                                                            "entry": entries}))
    report = ingest(store, files)
    assert report.rejected == []
    assert set(published(store)) == {"d-pp0", "d-pp1", "d-pp2"}
    assert report.unchanged == 2 * len(support_bundle()["entry"])


def test_a_new_provenance_shapes_every_re_render_of_its_record_in_the_same_batch(store, tmp_path):
    """A later file names another unit for a stored record in a Provenance, and changes the role of the record's
    author after it: both re-render the record within one batch, the second while the Provenance's links still
    wait for the batch's end, and the record ends up with the Provenance's unit."""
    support = support_bundle()
    assert ingest(store, [write(tmp_path / "a.json", support),
                          write(tmp_path / "b.json", bundle(condition("c-late", identifier="d-late")))]).rejected == []
    assert published(store) == {"d-late": HOME}
    role = next(e["resource"] for e in support["entry"] if e["resource"]["resourceType"] == "PractitionerRole")
    changed_role = {**role, "telecom": [{"system": "phone", "value": "+46 8 123 456"}]}
    later = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": provenance("Condition/c-late", {"identifier": {"system": HSA, "value": HOUSING}},
                                {"identifier": {"system": HSA, "value": GIVER}}, rid="prov-late")},
        {"resource": changed_role}]}
    report = ingest(store, [write(tmp_path / "c.json", later)])
    assert report.rejected == [] and report.context == 2
    assert published(store) == {"d-late": HOUSING}
