"""Cross-process locks for work that must happen once at a time across replicas.

PostgreSQL: session advisory locks (`pg_try_advisory_lock`). SQLite: an OS file lock next to the database
file (the embedded store is shared only by processes on one machine).
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def try_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yields True while this process holds the lock `name`, False if another one holds it (no waiting)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            got = bool(conn.execute(select(func.pg_try_advisory_lock(_key(name)))).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(select(func.pg_advisory_unlock(_key(name))))
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    path = Path(f"{database}.{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock")
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that takes the write lock up front: SQLite `BEGIN IMMEDIATE` (so a read-then-write
    cannot interleave with another writer); plain on PostgreSQL, where callers take advisory locks."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn = conn.execution_options(immediate=True)
        with conn.begin():
            yield conn


def xact_lock(conn: Connection, name: str) -> None:
    """Serialise a transaction with every other holding `name` (PostgreSQL; no-op on SQLite, where
    `write_transaction` already serialises writers)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_key(name))))
