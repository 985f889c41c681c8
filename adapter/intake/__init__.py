"""The write path: FHIR resources in, versions and records stored, engagement changes queued.

One unit of work (`unit.Intake`) serves the FHIR REST endpoint (a transaction, a batch, a single PUT, POST or
DELETE) and `npo-adapter ingest` (a file is a batch).
"""
