"""Many rows into one table: PostgreSQL's COPY, an executemany elsewhere.

On PostgreSQL an executemany is one Bind/Execute per row, each with its executor start in the server and
SQLAlchemy's and psycopg's parameter handling per row in the client; COPY streams the rows as one statement
(an ingest writes a few hundred rows per table and chunk). Rows are dicts with the same keys, as for an
executemany; values are adapted by psycopg as for any query, and the table's constraints hold the same. The
driver's errors reach the caller as SQLAlchemy's (IntegrityError, OperationalError ...), as an executemany's do:
callers answer "store unavailable" on those and nothing else.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    names = list(rows[0])
    columns = [table.c[name] for name in names]  # KeyError for a name the table does not have
    statement = f"COPY {table.name} ({', '.join(c.name for c in columns)}) FROM STDIN"
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[name] for name in names])
    except conn.dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, conn.dialect.loaded_dbapi.Error) from exc
