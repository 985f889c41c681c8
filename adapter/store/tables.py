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

# On PostgreSQL every String column here is COLLATE "C" (codes compare byte by byte, as on SQLite) and the fragment
# and body columns compress with lz4 (migration 0005); the migrations, not this module, create the tables.

# One row per published record. `fragment` is the pre-rendered XML element; the other columns
# are what request filtering needs. Dates are YYYYMMDD strings (Swedish local time), which
# compare correctly as text on every engine. For "any of these times lies in the period" contracts the
# record's days are in `record_days` (a note may carry any number of dissenting opinions); the latest of them is
# also `latest_day` ("" when it has none), which orders partial answers (TKB hasMore) newest first along
# ix_records_page instead of sorting every record of the patient.
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
    Column("latest_day", String(8), nullable=False, server_default=""),  # max(record_days.day), "" when none
    # A FHIR resource (type + id, unique across the adapter's inputs) publishes one or more parts.
    UniqueConstraint("resource_type", "resource_id", "part", name="uq_records_resource"),
    Index("ix_records_lookup", "contract", "source_system", "patient_id"),
    Index("ix_records_document", "source_system", "contract", "document_id"),
    Index("ix_records_page", "contract", "source_system", "patient_id", "patient_type", "latest_day", "pk"),
)

record_days = Table(
    "record_days",
    metadata,
    Column("record_pk", Integer, ForeignKey("records.pk", ondelete="CASCADE"), nullable=False),
    Column("day", String(8), nullable=False),
    Index("ix_record_days", "record_pk", "day"),
)

# Every FHIR resource the adapter accepted (clinical and supporting), as the writer sent it, with its version.
# `owner` is the source system the resource belongs to (meta.source, else the writer's source system); NULL for
# resources an operator loaded without one, which every source system may refer to. A deleted resource stays as
# a tombstone (`deleted`) so its version history continues. `content_hash` covers everything but meta.versionId
# and meta.lastUpdated: a resource sent again unchanged is recognised and changes nothing.
fhir_resources = Table(
    "fhir_resources",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("owner", String(64)),
    Column("content_hash", String(64), nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("body", Text, nullable=False),  # the resource as JSON, meta.versionId and meta.lastUpdated set
    Column("last_updated", DateTime(timezone=True), nullable=False),
)

# The identifiers of stored resources, for conditional create/update/delete and logical references
# (`reference.identifier`). A resource's absolute fullUrl is kept too, as system urn:ietf:rfc:3986.
fhir_identifiers = Table(
    "fhir_identifiers",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("system", String(255), nullable=False),
    Column("value", String(255), nullable=False),
    Index("ix_fhir_identifiers_value", "value", "system"),
    Index("ix_fhir_identifiers_resource", "resource_type", "resource_id"),
)

# What each resource depends on: for a clinical resource every resource its records were rendered from
# (kind "uses": "Type/id", or "identifier:<system>|<value>" for a logical reference), for a Provenance the
# resources it is about (kind "targets"). A change to a supporting resource re-renders the records using it.
fhir_links = Table(
    "fhir_links",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(600), nullable=False),
    Index("ix_fhir_links_target", "target", "kind"),
    Index("ix_fhir_links_resource", "resource_type", "resource_id"),
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
