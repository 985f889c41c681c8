"""Settings from the environment (NPO_*) and command-line options."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NPO_", env_file=".env", extra="ignore")

    store_url: str = "sqlite:///var/npo-adapter.db"
    # Source system for records whose meta.source names none.
    source_system_hsaid: str | None = None
    # Largest accepted SOAP request body; requests are small (a patient id and filters).
    max_request_bytes: int = 256 * 1024
    max_xml_depth: int = 64


def settings() -> Settings:
    return Settings()
