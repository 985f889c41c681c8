"""Settings from the environment (NPO_*) and command-line options."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NPO_", env_file=".env", extra="ignore")

    store_url: str = "sqlite:///var/npo-adapter.db"
    # Bring the store's schema up to date when a command opens it. With several replicas on PostgreSQL,
    # set NPO_AUTO_MIGRATE=false and run `npo-adapter db upgrade` once per deployment instead.
    auto_migrate: bool = True
    # Source system for records whose meta.source names none.
    source_system_hsaid: str | None = None
    # Largest accepted SOAP request body; requests are small (a patient id and filters).
    max_request_bytes: int = 256 * 1024
    max_xml_depth: int = 64
    # Longest wait for a request's body once its headers arrived (a slowloris caller is answered with 408).
    max_request_seconds: float = 10.0
    # Contracts with partial answers (GetCareDocumentation 3.0, TKB hasMore) answer at most this many records,
    # the newest first, and a hasMore reference for the rest.
    max_records_per_answer: int = 500
    # Fernet key (adapter.producer.paging.new_key() makes one)
    # that protects hasMore references; unset, a random key per process (references do not survive a restart;
    # replicas behind one logical address must share it).
    paging_key: str | None = None
    # The FHIR endpoint's requests (a municipality's transaction Bundle may be large).
    max_fhir_request_bytes: int = 32 * 1024 * 1024
    max_fhir_request_seconds: float = 60.0
    max_fhir_transaction_entries: int = 1000  # a transaction holds the write lock throughout: larger ones are split

    # Engagement index (EI) updates. Without ei_url, no updates are sent (the outbox still fills).
    ei_url: str | None = None  # e.g. https://ei.example/itintegration/engagementindex/Update/1/rivtabp21
    ei_logical_address: str = "5565594230"  # the EI instance's address, given with the connection order
    ei_cert: str = "certs/dev/client-adapter.pem"  # the adapter's function certificate
    ei_key: str = "certs/dev/client-adapter.key"
    ei_ca: str = "certs/dev/ca-bundle.pem"
    ei_batch_size: int = 1000
    ei_min_interval: float = 5.0  # seconds between calls (initial load pacing)
    ei_per_key_interval: float = 300.0  # the same engagement at most every 5 minutes
    ei_timeout: float = 27.0  # seconds to wait for the index's answer to one Update call
    ei_retention_days: float = 7.0  # sent outbox rows are purged after this many days

    # The PDL access log's chain key and checkpoints, kept outside the database (adapter/consumer/pdl/audit_seal.py).
    audit_key_file: str = "var/audit.key"
    audit_checkpoints: str = "var/audit-checkpoints.jsonl"
