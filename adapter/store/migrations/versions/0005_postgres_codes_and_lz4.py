"""PostgreSQL only: the store's code columns compare byte by byte (COLLATE "C") and its XML fragments and JSON
bodies are compressed with lz4 when stored out of line

Every varchar of the store's tables is a code or an identifier (HSA-ids, personnummer, document ids, contract keys,
"Type/id", YYYYMMDD days), compared for equality and ordered only as codes. Under the database's locale (C.UTF-8,
en_US, sv_SE) each index comparison went through strcoll: a seventh of the backend's CPU while an ingest fills the
store (bench/ingest_rate.py). Byte order is also SQLite's (BINARY), so both engines now order codes alike. Under "C"
upper() folds ASCII letters only: the care unit and care giver filters compare upper-cased HSA-ids, which are ASCII
(HSA_ID_PATTERN), so they match as before.
Most fragments and bodies exceed the 2 kB past which PostgreSQL compresses a value; its default, pglz, was the
backend's largest single cost at ingest, and lz4 compresses and decompresses several times faster. A server built
without lz4 keeps pglz (the ALTER is tried under a savepoint). On a filled store the upgrade rebuilds the indexes on
these columns (the tables themselves are not rewritten) under an exclusive lock: plan it like any index rebuild;
values stored before keep pglz until they are written again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_TABLES = ("records", "record_days", "fhir_resources", "fhir_identifiers", "fhir_links", "ei_outbox")
_COMPRESSED = (("records", "fragment"), ("fhir_resources", "body"))


def upgrade() -> None:
    _collate('"C"')
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, column in _COMPRESSED:
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")
        except sa.exc.DBAPIError:  # before PostgreSQL 14, or built without lz4: pglz as before
            pass


def downgrade() -> None:
    _collate("pg_catalog.default")
    conn = op.get_bind()
    if conn.dialect.name == "postgresql" and (conn.dialect.server_version_info or (0,)) >= (14,):
        for table, column in _COMPRESSED:
            conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION default")


def _collate(collation: str) -> None:
    """Every varchar of the store's tables in `collation`, one ALTER TABLE per table (its indexes rebuilt once)."""
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    inspector = sa.inspect(conn)
    for table in _TABLES:
        changes = [f'ALTER COLUMN {c["name"]} TYPE VARCHAR({c["type"].length}) COLLATE {collation}'
                   for c in inspector.get_columns(table) if isinstance(c["type"], sa.String)
                   and not isinstance(c["type"], sa.Text) and c["type"].length]
        if changes:
            conn.exec_driver_sql(f"ALTER TABLE {table} {', '.join(changes)}")
