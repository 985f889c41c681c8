"""The producer's read path: the query of `records.query` / `records.query_page`, compiled once per filter shape and
run through the driver's cursor on a connection each thread keeps, in autocommit.

SQLAlchemy's per-call work (pool checkout, the BEGIN and ROLLBACK of a transaction, its execution context and result
processing) cost about as much as the query itself (bench/producer_throughput.py). One statement answers a request,
and a statement in autocommit reads one consistent snapshot on SQLite (in WAL mode, the latest commit when it starts)
as on PostgreSQL, so nothing is lost: a write committed before its 2xx is in the next answer. The drivers prepare
the statement once per connection (sqlite3's statement cache; psycopg after a few executions).

A connection that fails is closed and the read tried once more on a new one (what the pool's pre-ping did after a
database restart); a second failure is `StoreUnavailable`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from adapter.store import records
from adapter.store.records import PageRow, RecordQuery

log = logging.getLogger("adapter.store")


class StoreUnavailable(Exception):
    """The store did not answer the read (the reason is the driver's error type, never its message)."""


class _Compiled:
    """A statement as the driver takes it: SQL text, and how to order the parameters."""

    def __init__(self, stmt: Select[Any], engine: Engine) -> None:
        compiled = stmt.compile(dialect=engine.dialect)
        self.sql = compiled.string
        # bound values SQLAlchemy itself put in the statement (an empty string to coalesce with, OFFSET 0)
        self.fixed = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        self.order: Sequence[str] | None = compiled.positiontup if engine.dialect.positional else None

    def parameters(self, params: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = self.fixed | params
        return [values[name] for name in self.order] if self.order is not None else values


class RecordReader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._errors: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._compile: Callable[[Select[Any]], _Compiled] = lru_cache(maxsize=1024)(
            lambda stmt: _Compiled(stmt, engine))

    def query(self, q: RecordQuery) -> list[bytes]:
        """The fragments answering `q`, in publishing order (as `records.query`)."""
        rows = self._rows(self._compile(records.statement_for(*records.shape_of(q))), records.params_of(q))
        return [bytes(fragment) for (fragment,) in rows]

    def query_page(self, q: RecordQuery, limit: int, after: tuple[str, int] | None = None) -> list[PageRow]:
        """As `records.query_page`."""
        compiled = self._compile(records.page_statement_for(*records.shape_of(q), after is not None))
        return [PageRow(day, pk, bytes(fragment))
                for day, pk, fragment in self._rows(compiled, records.page_params(q, limit, after))]

    def _rows(self, compiled: _Compiled, params: dict[str, Any]) -> list[Any]:
        parameters = compiled.parameters(params)
        while True:
            kept = getattr(self._local, "cursor", None) is not None
            try:
                cursor = self._cursor()
                cursor.execute(compiled.sql, parameters)
                return list(cursor.fetchall())  # read to the end: SQLite's read snapshot ends with the statement
            except (self._errors, SQLAlchemyError) as exc:
                self._drop()
                if not kept:  # a new connection failed: the store is down, not just an old connection
                    raise StoreUnavailable(type(exc).__name__) from exc
                log.info("store read failed (%s); trying once more on a new connection", type(exc).__name__)

    def _cursor(self) -> Any:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            proxied = self.engine.raw_connection()  # through the pool's connect events (SQLite's PRAGMAs)
            proxied.detach()  # kept by this thread, outside the pool's count
            self._local.connection = proxied
            connection = proxied.dbapi_connection
            assert connection is not None
            if self.engine.dialect.name != "sqlite":  # SQLite's connect event already made it autocommit
                connection.rollback()  # the pool's pre-ping may have begun a transaction
                connection.autocommit = True
            cursor = self._local.cursor = connection.cursor()
        return cursor

    def _drop(self) -> None:
        proxied = getattr(self._local, "connection", None)
        self._local.connection = self._local.cursor = None
        if proxied is not None:
            try:
                proxied.close()
            except self._errors:
                pass  # it was broken already
