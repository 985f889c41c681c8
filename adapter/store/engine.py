"""Opening the store: embedded SQLite by default, PostgreSQL (`postgresql+psycopg://...`) for replicas.

The schema comes from the Alembic migrations (store/migrations); `open_store` brings a database up to date
unless told not to (`npo-adapter db upgrade` does it explicitly, `serve --no-migrate` leaves it alone).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from adapter.store import migrate

log = logging.getLogger("adapter.store")


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
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:  # the driver's own connection
            # pysqlite's own transaction handling breaks SAVEPOINTs (a RELEASE would commit);
            # let SQLAlchemy emit BEGIN itself, as its SQLite documentation recommends.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the ingest writer
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("immediate") else "BEGIN")
    else:
        # pre-ping: a connection broken by a database restart is replaced instead of failing a request
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=10,
                               connect_args={"connect_timeout": 5})
    return engine


def _private_file(path: Path) -> None:
    """The store holds journal data: the file is created 0600 (and narrowed to 0600 if an older version left
    it wider), in a folder created 0700. SQLite gives its -wal and -shm files the database file's mode."""
    try:
        path.parent.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass  # someone else's folder (or an earlier run's): its mode is left alone
    else:
        os.chmod(path.parent, 0o700)  # mkdir's mode is narrowed by the umask, never widened; be exact
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                try:
                    os.chmod(file, 0o600)
                except PermissionError:
                    log.warning("%s is readable by others and not ours to narrow", file)
