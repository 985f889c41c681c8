"""Opening the store: embedded SQLite by default, PostgreSQL (`postgresql+psycopg://...`) for replicas.

The schema comes from the Alembic migrations (store/migrations); `open_store` brings a database up to date
unless told not to (`npo-adapter db upgrade` does it explicitly, `serve --no-migrate` leaves it alone).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from adapter.store import migrate


def open_store(url: str, *, upgrade: bool = True) -> Engine:
    """An engine for the store, its schema brought up to date (or checked to be, with upgrade=False)."""
    engine = create_store_engine(url)
    if upgrade:
        migrate.upgrade(engine)
    else:
        migrate.require_current(engine)
    return engine


def create_store_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            # pysqlite's own transaction handling breaks SAVEPOINTs (a RELEASE would commit);
            # let SQLAlchemy emit BEGIN itself, as its SQLite documentation recommends.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the ingest writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")
    else:
        # pre-ping: a connection broken by a database restart is replaced instead of failing a request
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=10,
                               connect_args={"connect_timeout": 5})
    return engine
