"""Schema migrations with Alembic (`npo-adapter db upgrade`); the scripts live in store/migrations/."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`. Replicas starting together on PostgreSQL take turns (advisory lock),
    so only the first one migrates."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7305716352)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config_for_scripts()).get_current_head()


def alembic_config_for_scripts() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


class SchemaOutOfDate(RuntimeError):
    pass


def require_current(engine: Engine) -> None:
    have, want = current(engine), head()
    if have != want:
        raise SchemaOutOfDate(f"the store's schema is at {have or 'nothing'}, this version needs {want}: "
                              "run `npo-adapter db upgrade`")


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
