"""Migrations: 0002 moves the supporting resources an older adapter kept into fhir_resources, where they keep
resolving; 0003 keys records by contract name and major version, and an older store's records are still served."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from adapter.ingest import ingest
from adapter.store import migrate
from adapter.store.engine import create_store_engine
from adapter.store.tables import fhir_identifiers, fhir_resources, records
from tests.samples import bundle, condition, support_bundle


def test_an_old_store_upgrades_and_its_supporting_resources_still_resolve(backend, store_urls, tmp_path):
    engine = create_store_engine(store_urls.url(backend))
    migrate.upgrade(engine, "0001")
    context = sa.table("fhir_context", sa.column("ref"), sa.column("resource_type"), sa.column("body"),
                       sa.column("updated_at", sa.DateTime(timezone=True)))
    supporting = [e["resource"] for e in support_bundle()["entry"]]
    with engine.begin() as conn:
        conn.execute(context.insert(), [{"ref": f"{r['resourceType']}/{r['id']}", "resource_type": r["resourceType"],
                                         "body": orjson.dumps(r).decode(), "updated_at": datetime.now(UTC)}
                                        for r in supporting])
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(fhir_resources)).scalar() == len(supporting)
        assert conn.execute(sa.select(fhir_identifiers.c.resource_id).where(
            fhir_identifiers.c.value == "SE2120001231-HT01")).scalar() == "ve-hemtjanst"
    # a Condition alone resolves its patient, role and units from what the old store kept
    (tmp_path / "c.json").write_bytes(orjson.dumps(bundle(condition("c-old", identifier="d-old"))))
    report = ingest(engine, [tmp_path / "c.json"])
    assert report.rejected == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(records.c.care_giver)).scalar() == "SE2120001231-VG01"
    engine.dispose()


def test_records_of_an_older_store_are_keyed_by_contract_version_and_still_served(backend, store_urls, tmp_path):
    from adapter.rivta.contracts import GET_DIAGNOSIS
    from adapter.store.records import RecordQuery, query

    engine = create_store_engine(store_urls.url(backend))
    migrate.upgrade(engine, "0002")
    supporting = [e["resource"] for e in support_bundle()["entry"]]
    (tmp_path / "c.json").write_bytes(orjson.dumps(bundle(*supporting, condition("c-1"))))
    assert ingest(engine, [tmp_path / "c.json"]).rejected == []
    with engine.begin() as conn:  # what the store held before 0003: the bare contract name
        conn.execute(records.update().values(contract="GetDiagnosis"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(records.c.contract)).scalars()) == {GET_DIAGNOSIS.key}
        (row,) = conn.execute(sa.select(records.c.patient_id, records.c.patient_type, records.c.source_system))
        assert len(list(query(conn, RecordQuery(GET_DIAGNOSIS.key, row.source_system, row.patient_id,
                                                row.patient_type)))) == 1
    engine.dispose()

