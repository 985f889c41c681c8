"""Stores for tests, on every backend: embedded SQLite and PostgreSQL (127.0.0.1:5432, database `test`).

Each PostgreSQL store is a fresh schema (search_path), dropped afterwards. PostgreSQL tests run whenever the
server is reachable; under CI=true an unreachable server fails them instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_BASE = os.environ.get("NPO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@cache
def pg_reachable() -> bool:
    try:
        engine = sa.create_engine(PG_BASE, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return True
    except sa.exc.OperationalError:
        return False


def require(backend: str) -> None:
    if backend == "postgresql" and not pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_BASE} (CI starts it in .ci/run)")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432 (start it: see .ci/run)")


class StoreUrls:
    """Hands out store URLs and cleans up the PostgreSQL schemas it made."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.schemas: list[str] = []

    def url(self, backend: str, name: str = "store") -> str:
        require(backend)
        if backend == "sqlite":
            return f"sqlite:///{self.tmp_path}/{name}-{uuid.uuid4().hex[:8]}.db"
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(PG_BASE).begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        self.schemas.append(schema)
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    def cleanup(self) -> None:
        if not self.schemas:
            return
        engine = sa.create_engine(PG_BASE)
        with engine.begin() as conn:
            for schema in self.schemas:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        engine.dispose()


def engine_for(request, folder: Path, name: str = "store"):
    """A fresh store on `request.param`'s backend for a parametrised (module or session) fixture; cleaned
    up when the fixture ends."""
    from adapter.store.engine import open_store

    require(request.param)
    urls = StoreUrls(folder)
    request.addfinalizer(urls.cleanup)
    engine = open_store(urls.url(request.param, name))
    request.addfinalizer(engine.dispose)
    return engine
