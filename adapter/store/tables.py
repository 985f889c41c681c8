"""The store's tables (SQLAlchemy Core; portable between SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# One row per published record. `fragment` is the pre-rendered XML element; the other columns
# are what request filtering needs. Dates are YYYYMMDD strings (Swedish local time), which
# compare correctly as text on every engine. For "any of these times lies in the period" contracts the
# record's days are in `record_days` (a note may carry any number of dissenting opinions).
records = Table(
    "records",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("contract", String(64), nullable=False),
    Column("source_system", String(64), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(128), nullable=False),
    Column("part", Integer, nullable=False, default=0),
    Column("document_id", String(255), nullable=False),
    Column("patient_id", String(32), nullable=False),
    Column("patient_type", String(64), nullable=False),
    Column("care_unit", String(64)),
    Column("care_giver", String(64)),
    Column("care_contact", String(255)),
    Column("approved_for_patient", Boolean, nullable=False),
    Column("category", String(32)),
    Column("period_start", String(8)),
    Column("period_end", String(8)),
    Column("chain_id", String(255)),
    Column("status", String(16)),
    Column("fragment", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # A FHIR resource (type + id, unique across the adapter's inputs) publishes one or more parts.
    UniqueConstraint("resource_type", "resource_id", "part", name="uq_records_resource"),
    Index("ix_records_lookup", "contract", "source_system", "patient_id"),
    Index("ix_records_document", "source_system", "contract", "document_id"),
)

record_days = Table(
    "record_days",
    metadata,
    Column("record_pk", Integer, ForeignKey("records.pk", ondelete="CASCADE"), nullable=False),
    Column("day", String(8), nullable=False),
    Index("ix_record_days", "record_pk", "day"),
)

# Supporting FHIR resources (Patient, Organization, PractitionerRole, Provenance ...) kept so that
# later ingest runs can resolve references to them.
fhir_context = Table(
    "fhir_context",
    metadata,
    Column("ref", String(200), primary_key=True),  # "Type/id"
    Column("resource_type", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the resource as JSON
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Engagement-index outbox: one row per engagement change to send, written in the same transaction as the
# records it describes. Pending rows coalesce per engagement key; `revision` tells the sender whether a
# row changed while it was being sent.
ei_outbox = Table(
    "ei_outbox",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("resident", String(32), nullable=False),
    Column("service_domain", String(255), nullable=False),
    Column("categorization", String(255), nullable=False),
    Column("logical_address", String(64), nullable=False),
    Column("source_system", String(64), nullable=False),
    Column("data_controller", String(64), nullable=False),
    Column("delete_flag", Boolean, nullable=False),
    Column("most_recent_content", String(14), nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | failed
    Column("revision", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_ei_outbox_state", "state", "logical_address", "service_domain"),
    Index("ix_ei_outbox_key", "resident", "service_domain", "categorization", "logical_address", "data_controller"),
)

# PDL access log: append-only and tamper-evident. Each entry carries the hash of the previous one, so an
# altered or deleted entry breaks the chain (`npo-adapter audit verify`).
access_log = Table(
    "access_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Column("entry", Text, nullable=False),  # canonical JSON of the entry
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Entries waiting for the national log service (StoreLog): survives outages and restarts.
log_outbox = Table(
    "log_outbox",
    metadata,
    Column("seq", Integer, ForeignKey("access_log.seq"), primary_key=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
)
