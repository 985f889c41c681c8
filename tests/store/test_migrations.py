"""Migrations: 0002 moves the supporting resources an older adapter kept into fhir_resources, where they keep
resolving; 0003 keys records by contract name and major version, and an older store's records are still served;
0004 gives each record its latest filter day from record_days, and partial answers keep their order; 0005 makes
PostgreSQL compare the store's codes byte by byte and compress its fragments and bodies with lz4."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import sqlalchemy as sa

from adapter.ingest import ingest
from adapter.store import migrate
from adapter.store.engine import create_store_engine
from adapter.store.tables import fhir_identifiers, fhir_resources, metadata, record_days, records
from tests.samples import bundle, condition, support_bundle
from tests.stores import StoreUrls


def _downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


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
    migrate.upgrade(engine)
    supporting = [e["resource"] for e in support_bundle()["entry"]]
    (tmp_path / "c.json").write_bytes(orjson.dumps(bundle(*supporting, condition("c-1"))))
    assert ingest(engine, [tmp_path / "c.json"]).rejected == []
    _downgrade(engine, "0002")  # (the code of today writes columns a store at 0002 lacks)
    with engine.connect() as conn:  # what the store held before 0003: the bare contract name
        assert set(conn.execute(sa.text("SELECT contract FROM records")).scalars()) == {"GetDiagnosis"}
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(records.c.contract)).scalars()) == {GET_DIAGNOSIS.key}
        (row,) = conn.execute(sa.select(records.c.patient_id, records.c.patient_type, records.c.source_system))
        assert len(list(query(conn, RecordQuery(GET_DIAGNOSIS.key, row.source_system, row.patient_id,
                                                row.patient_type)))) == 1
    engine.dispose()



def test_records_of_an_older_store_get_their_latest_day_and_page_as_before(backend, store_urls):
    from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as GCD3
    from adapter.store.records import RecordQuery, query_page

    engine = create_store_engine(store_urls.url(backend))
    migrate.upgrade(engine, "0003")
    old = sa.table("records", *(sa.column(c.name, c.type) for c in records.c if c.name != "latest_day"))
    row = {"contract": GCD3.key, "source_system": "SYS", "resource_type": "DocumentReference", "part": 0,
           "patient_id": "191212121212", "patient_type": "T", "approved_for_patient": True,
           "updated_at": datetime.now(UTC)}
    days = {"n-1": ["20240105", "20240302"], "n-2": ["20231231"], "n-3": [], "n-4": ["20240302"], "n-5": []}
    with engine.begin() as conn:
        for rid, ds in days.items():
            values = {**row, "resource_id": rid, "document_id": rid, "fragment": rid.encode()}
            pk = conn.execute(old.insert().values(values).returning(old.c.pk)).scalar_one()
            if ds:
                conn.execute(record_days.insert(), [{"record_pk": pk, "day": d} for d in ds])
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(records.c.resource_id, records.c.latest_day)).all()) == {
            "n-1": "20240302", "n-2": "20231231", "n-3": "", "n-4": "20240302", "n-5": ""}
        q = RecordQuery(GCD3.key, "SYS", "191212121212", "T")
        first = query_page(conn, q, 3)
        rest = query_page(conn, q, 3, (first[-1].day, first[-1].pk))
    # latest day first, then the latest published; a record without days last
    assert [bytes(r.fragment) for r in first + rest] == [b"n-4", b"n-1", b"n-2", b"n-5", b"n-3"]
    assert [r.day for r in first + rest] == ["20240302", "20240302", "20231231", "", ""]
    engine.dispose()


_CODES_AND_COMPRESSION = """
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), coll.collname, a.attcompression
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_collation coll ON coll.oid = a.attcollation
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND a.attnum > 0
      AND NOT a.attisdropped AND c.relname IN ('records', 'record_days', 'fhir_resources', 'fhir_identifiers',
                                               'fhir_links', 'ei_outbox')"""


def test_postgres_compares_the_store_codes_bytewise_and_compresses_fragments_with_lz4(store_urls: StoreUrls, tmp_path):
    from adapter.store.records import RecordQuery, query

    engine = create_store_engine(store_urls.url("postgresql"))
    migrate.upgrade(engine)
    with engine.connect() as conn:
        columns = conn.exec_driver_sql(_CODES_AND_COMPRESSION).all()
    codes = [(t, c, coll) for t, c, kind, coll, _ in columns if kind.startswith("character varying")]
    every = {(t.name, c.name) for t in metadata.sorted_tables if t.name in {name for name, *_ in columns}
             for c in t.c if isinstance(c.type, sa.String) and not isinstance(c.type, sa.Text)}
    assert {(t, c) for t, c, _ in codes} == every and all(coll == "C" for _, _, coll in codes), codes
    assert {(t, c): z for t, c, _, _, z in columns if (t, c) in {("records", "fragment"), ("fhir_resources", "body")}
            } == {("records", "fragment"): "l", ("fhir_resources", "body"): "l"}
    # a resource stored compressed is read back as it was sent, and its record is served
    supporting = [e["resource"] for e in support_bundle()["entry"]]
    long = condition("c-long", identifier="d-long")
    long["note"] = [{"text": "lång anteckning " * 400}]
    (tmp_path / "c.json").write_bytes(orjson.dumps(bundle(*supporting, long)))
    assert ingest(engine, [tmp_path / "c.json"]).rejected == []
    with engine.connect() as conn:
        body, method = conn.execute(sa.select(fhir_resources.c.body, sa.func.pg_column_compression(
            fhir_resources.c.body)).where(fhir_resources.c.resource_id == "c-long")).one()
        assert method == "lz4" and orjson.loads(body)["note"] == long["note"]
        row = conn.execute(sa.select(records.c.contract, records.c.source_system, records.c.patient_id,
                                     records.c.patient_type)).one()
        assert len(list(query(conn, RecordQuery(*row)))) == 1
    _downgrade(engine, "0004")
    with engine.connect() as conn:
        columns = conn.exec_driver_sql(_CODES_AND_COMPRESSION).all()
    assert {coll for _, _, kind, coll, _ in columns if kind.startswith("character varying")} == {"default"}
    assert {z for t, c, _, _, z in columns if c in ("fragment", "body")} == {""}
    migrate.upgrade(engine)  # a filled store: its indexes are rebuilt, what it holds is served as before
    with engine.connect() as conn:
        assert {coll for _, _, kind, coll, _ in conn.exec_driver_sql(_CODES_AND_COMPRESSION).all()
                if kind.startswith("character varying")} == {"C"}
        assert len(list(query(conn, RecordQuery(*row)))) == 1
    engine.dispose()
