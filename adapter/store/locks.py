"""Cross-process locks for work that must happen once at a time across replicas.

PostgreSQL: session advisory locks (`pg_try_advisory_lock`), keyed by the store's schema and the name. SQLite: a
POSIX record lock (`fcntl.lockf`) on one byte of the database file itself, at an offset derived from the lock's
name far past SQLite's own lock bytes (at 1 GiB), so nothing is created beside the store and a crashed holder's
lock goes with its process.

POSIX record locks belong to the process, and closing *any* descriptor of a file drops every lock the process
holds on it, SQLite's own included. So each process opens the database file once for locking and keeps that
descriptor until it exits; threads of one process are kept apart by an in-process registry of held names.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

# SQLite's lock bytes sit at 0x40000000 (PENDING_BYTE) and the 511 bytes after it; ours start at 1 TiB.
_LOCK_BASE = 1 << 40
_LOCK_SPAN = 1 << 30

_registry_guard = threading.Lock()
_descriptors: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a database file -> our descriptor, kept open
_held: set[tuple[tuple[int, int], int]] = set()  # (file, offset) held by a thread of this process


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _offset(name: str) -> int:
    return _LOCK_BASE + int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % _LOCK_SPAN


def _descriptor(path: str) -> tuple[tuple[int, int], int]:
    """This process's one locking descriptor of the database file (opened once, never closed)."""
    st = os.stat(path)
    file = (st.st_dev, st.st_ino)
    fd = _descriptors.get(file)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # the store exists: open_store created it
        _descriptors[file] = fd
    return file, fd


@contextmanager
def _sqlite_lock(path: str, name: str) -> Iterator[bool]:
    offset = _offset(name)
    with _registry_guard:
        file, fd = _descriptor(path)
        if (file, offset) in _held:
            got = False  # another thread of this process holds it
        else:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
                got = True
            except OSError:  # EACCES or EAGAIN: another process holds it
                got = False
            if got:
                _held.add((file, offset))
    try:
        yield got
    finally:
        if got:
            with _registry_guard:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
                _held.discard((file, offset))


@contextmanager
def try_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yields True while this process holds the lock `name`, False if another one holds it (no waiting)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            # advisory locks span the whole database: stores in other schemas of it are other deployments
            key = _key(f"{conn.execute(select(func.current_schema())).scalar()}:{name}")
            got = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(select(func.pg_advisory_unlock(key)))
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield True
        return
    with _sqlite_lock(database, name) as got:
        yield got


@contextmanager
def wait_turn(conn: Connection, name: str) -> Iterator[None]:
    """Wait until no other process holds `name`, then hold it (SQLite file stores: the waiting form of `try_lock`'s
    byte lock; the kernel wakes the waiter the moment it is free, where SQLite's busy handler sleeps up to 100 ms
    between tries). Threads of the caller's own process are the caller's to keep apart; on other stores nothing
    (PostgreSQL writers use `xact_lock`)."""
    database = conn.engine.url.database if conn.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    offset = _offset(name)
    with _registry_guard:
        _file, fd = _descriptor(database)
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset, os.SEEK_SET)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)


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
