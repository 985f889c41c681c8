"""Ingest: every input form, bad resources next to good ones, re-ingest, delete, consistency."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import func, select

from adapter.ingest import ingest
from adapter.store.tables import records
from tests.samples import PNR, bundle, condition, support_bundle


def write(path, obj) -> None:
    path.write_bytes(orjson.dumps(obj))


def stored(engine) -> dict[str, bytes]:
    with engine.connect() as conn:
        return {r.document_id: r.fragment for r in conn.execute(select(records.c.document_id, records.c.fragment))}


@pytest.fixture
def support(tmp_path):
    path = tmp_path / "support.json"
    write(path, support_bundle())
    return path


def test_bad_resources_are_rejected_with_file_resource_and_field_and_good_ones_stored(store, support, tmp_path):
    bad_time = condition("c-bad-time", identifier="d-bad-time", recorded="den tolfte mars")
    no_patient = condition("c-no-patient", identifier="d-no-patient")
    del no_patient["subject"]
    unknown_field = condition("c-unknown", identifier="d-unknown", colour="blue")
    no_author_time = condition("c-no-time", identifier="d-no-time")
    del no_author_time["recordedDate"]
    bad_source = condition("c-bad-source", identifier="d-bad-source", source="not an hsa id!")
    write(tmp_path / "data.json", bundle(
        condition("c-good-1", identifier="d-good-1"),
        bad_time,
        {"resourceType": "Krankenakte", "id": "x"},
        no_patient,
        unknown_field,
        no_author_time,
        bad_source,
        condition("c-good-2", identifier="d-good-2"),
    ))
    report = ingest(store, [support, tmp_path / "data.json"])
    assert report.published["GetDiagnosis:2"] == 2
    assert set(stored(store)) == {"d-good-1", "d-good-2"}
    reasons = {r.resource: (r.origin, r.reason) for r in report.rejected}
    assert set(reasons) == {"Condition/c-bad-time", "Krankenakte/x", "Condition/c-no-patient",
                            "Condition/c-unknown", "Condition/c-no-time", "Condition/c-bad-source"}
    assert reasons["Condition/c-bad-time"][0].endswith("data.json#entry[1]")
    assert "recordedDate" in reasons["Condition/c-bad-time"][1]
    assert "unknown resource type" in reasons["Krankenakte/x"][1]
    assert "subject" in reasons["Condition/c-no-patient"][1]
    assert "colour" in reasons["Condition/c-unknown"][1]
    assert "recordedDate" in reasons["Condition/c-no-time"][1]
    assert "meta.source" in reasons["Condition/c-bad-source"][1]
    for _, reason in reasons.values():
        assert PNR not in reason and "tolfte" not in reason and "blue" not in reason


def test_unreadable_files_and_entries_are_reported(store, support, tmp_path):
    (tmp_path / "broken.json").write_bytes(b"{ not json")
    write(tmp_path / "notfhir.json", {"hello": "world"})
    write(tmp_path / "badbundle.json", {"resourceType": "Bundle", "type": "message", "entry": []})
    report = ingest(store, [support, tmp_path / "broken.json", tmp_path / "notfhir.json", tmp_path / "badbundle.json"])
    origins = sorted(r.origin.rsplit("/", 1)[-1] for r in report.rejected)
    assert origins == ["badbundle.json", "broken.json", "notfhir.json"]


def test_ndjson_single_resources_and_folders(store, support, tmp_path):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    lines = [orjson.dumps(condition(f"c-nd-{i}", identifier=f"d-nd-{i}")) for i in range(3)]
    (folder / "Condition.ndjson").write_bytes(b"\n".join(lines) + b"\n\n")
    write(folder / "sub" / "single.json", condition("c-single", identifier="d-single"))
    write(folder / "sub" / "search.json", bundle(condition("c-search", identifier="d-search"), type_="searchset"))
    report = ingest(store, [support, folder])
    assert not report.rejected
    assert set(stored(store)) == {"d-nd-0", "d-nd-1", "d-nd-2", "d-single", "d-search"}


def test_references_resolve_across_runs_and_file_order(store, support, tmp_path):
    # Clinical data first, supporting resources in a later file of the same run ...
    write(tmp_path / "a.json", condition("c1", identifier="d1"))
    report = ingest(store, [tmp_path / "a.json", support])
    assert not report.rejected
    # ... and in a later run the stored supporting resources are still known.
    write(tmp_path / "b.json", condition("c2", identifier="d2"))
    assert not ingest(store, [tmp_path / "b.json"]).rejected
    assert b"SE2120001231-HT01" in stored(store)["d2"]


def test_reingest_updates_instead_of_duplicating(store, support, tmp_path):
    write(tmp_path / "v1.json", condition("c1", identifier="d1", code=("I10.9", "Essentiell hypertoni")))
    ingest(store, [support, tmp_path / "v1.json"])
    write(tmp_path / "v2.json", condition("c1", identifier="d1", code=("I11.9", "Hypertensiv hjärtsjukdom")))
    ingest(store, [tmp_path / "v2.json"])
    frags = stored(store)
    assert list(frags) == ["d1"]
    assert b"I11.9" in frags["d1"] and b"I10.9" not in frags["d1"]


def test_duplicate_document_id_from_another_resource_is_rejected_and_first_kept(store, support, tmp_path):
    write(tmp_path / "d.json", bundle(condition("c1", identifier="same"), condition("c2", identifier="same")))
    report = ingest(store, [support, tmp_path / "d.json"])
    assert [r.resource for r in report.rejected] == ["Condition/c2"]
    assert "document id" in report.rejected[0].reason
    with store.connect() as conn:
        assert conn.execute(select(records.c.resource_id)).scalars().all() == ["c1"]


def test_entered_in_error_and_delete_remove_records(store, support, tmp_path):
    write(tmp_path / "d.json", bundle(condition("c1", identifier="d1"), condition("c2", identifier="d2"),
                                      condition("c3", identifier="d3")))
    ingest(store, [support, tmp_path / "d.json"])
    retracted = condition("c1", identifier="d1", verificationStatus={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]})
    write(tmp_path / "x.json", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": retracted, "request": {"method": "PUT", "url": "Condition/c1"}},
        {"request": {"method": "DELETE", "url": "Condition/c2"}},
    ]})
    report = ingest(store, [tmp_path / "x.json"])
    assert report.removed == 2 and not report.rejected
    assert set(stored(store)) == {"d3"}


def test_a_bad_new_version_keeps_the_stored_record(store, support, tmp_path):
    write(tmp_path / "v1.json", condition("c1", identifier="d1"))
    ingest(store, [support, tmp_path / "v1.json"])
    write(tmp_path / "v2.json", condition("c1", identifier="d1", recorded="not-a-date"))
    report = ingest(store, [tmp_path / "v2.json"])
    assert len(report.rejected) == 1
    assert list(stored(store)) == ["d1"]


def test_a_run_that_dies_midway_leaves_whole_records(store, support, tmp_path, monkeypatch):
    from adapter import ingest as ingest_module
    from adapter.intake import unit

    write(tmp_path / "d.json", bundle(*[condition(f"c{i}", identifier=f"d{i}") for i in range(1200)]))
    calls = {"n": 0}
    real = unit.store.publish

    def dying_publish(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 700:
            raise KeyboardInterrupt  # the process is stopped in the middle of a batch
        return real(*args, **kwargs)

    monkeypatch.setattr(unit.store, "publish", dying_publish)
    with pytest.raises(KeyboardInterrupt):
        ingest(store, [support, tmp_path / "d.json"])
    with store.connect() as conn:
        count = conn.execute(select(func.count()).select_from(records)).scalar()
    assert count == ingest_module.BATCH  # the committed batch, nothing half-written
    monkeypatch.setattr(unit.store, "publish", real)
    report = ingest(store, [tmp_path / "d.json"])  # running again completes the job
    assert report.published["GetDiagnosis:2"] == 1200 - ingest_module.BATCH
    assert report.unchanged == ingest_module.BATCH  # the committed batch is recognised, not written again
    assert len(stored(store)) == 1200


def test_the_garbage_collector_is_handed_back_as_found_also_when_a_run_dies(store, support, tmp_path, monkeypatch):
    import gc

    from adapter.intake import unit

    write(tmp_path / "d.json", bundle(condition("c1", identifier="d1")))
    thresholds = gc.get_threshold()
    assert gc.isenabled() and gc.get_freeze_count() == 0
    ingest(store, [support, tmp_path / "d.json"])
    assert gc.isenabled() and gc.get_freeze_count() == 0  # what it froze is collected again afterwards
    assert gc.get_threshold() == thresholds

    def dying_know(*args, **kwargs):
        raise KeyboardInterrupt  # stopped while the read-ahead is built (collection is off then)

    monkeypatch.setattr(unit.Intake, "know", dying_know)
    with pytest.raises(KeyboardInterrupt):
        ingest(store, [support, tmp_path / "d.json"])
    assert gc.isenabled() and gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds
