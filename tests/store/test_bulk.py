"""Bulk inserts (COPY on PostgreSQL, executemany on SQLite) store the same values, keep the table's constraints and
fail as SQLAlchemy errors, so that callers still tell a refused row or a store that is down from a defect."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from adapter.store.bulk import insert_rows
from adapter.store.tables import fhir_links, fhir_resources, records

NOW = datetime(2026, 12, 6, 17, 5, 1, 250000, tzinfo=UTC)


def _record(i: int, **changes) -> dict:
    row = {"contract": "GetDiagnosis:2", "source_system": "SE2321000016-A1B2", "resource_type": "Condition",
           "resource_id": f"c-{i}", "part": 0, "document_id": f"d-{i}", "patient_id": "191212121212",
           "patient_type": "1.2.752.129.2.1.3.1", "care_unit": None, "care_giver": "SE2321000016-0001",
           "care_contact": None, "approved_for_patient": i % 2 == 0, "category": None, "period_start": "20261201",
           "period_end": None, "chain_id": None, "status": None,
           "fragment": "<r>\t\\ \r\n åäö \\N , ; \" ' | \x7f</r>".encode(), "updated_at": NOW, "latest_day": ""}
    return row | changes


def test_rows_come_back_as_they_went_in(store):
    rows = [_record(i) for i in range(3)]
    with store.begin() as conn:
        insert_rows(conn, records, rows)
        insert_rows(conn, fhir_links, [])  # nothing to write is no statement
    with store.connect() as conn:
        back = [dict(r._mapping) for r in conn.execute(sa.select(records).order_by(records.c.resource_id))]
    for row, stored in zip(rows, back, strict=True):
        stored.pop("pk")
        stored["fragment"] = bytes(stored["fragment"])
        assert stored["updated_at"].replace(tzinfo=UTC) == NOW  # (SQLite keeps no zone)
        stored["updated_at"] = NOW
        assert stored == row


def test_a_row_breaking_a_constraint_is_an_integrity_error_and_writes_nothing(store):
    with store.begin() as conn:
        insert_rows(conn, records, [_record(1)])
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        insert_rows(conn, records, [_record(2), _record(1)])  # (type, id, part) again
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 1


def test_a_missing_required_value_is_an_integrity_error(store):
    row = {"resource_type": "Patient", "resource_id": "p", "version_id": 1, "owner": None, "content_hash": "h",
           "deleted": False, "body": None, "last_updated": NOW}
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        insert_rows(conn, fhir_resources, [row])
