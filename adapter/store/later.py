"""Inserts held until the end of a batch of intake and written with one executemany per table.

A file chunk runs under one savepoint (adapter/intake/unit.py): nothing in it is rolled back alone, so the rows
its resources add (the resource, its identifiers, the links it was rendered from, its records and their days)
need not be written one statement per resource; the caller flushes before anything reads them back, and checks
the batch's document ids once (`records.check_batch`) after the flush.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from adapter.store import records
from adapter.store.bulk import insert_rows


class Later:
    def __init__(self) -> None:
        self._rows: dict[Table, list[dict[str, Any]]] = {}
        self._records: list[dict[str, Any]] = []
        self._days: list[list[str]] = []
        self.documents: set[tuple[str, str, str]] = set()  # (source system, contract, document id) written

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._rows.setdefault(table, []).extend(rows)

    def record(self, row: dict[str, Any], days: list[str]) -> None:
        self._records.append(row)
        self._days.append(days)
        self.documents.add((row["source_system"], row["contract"], row["document_id"]))

    def flush(self, conn: Connection) -> None:
        for table, rows in self._rows.items():
            insert_rows(conn, table, rows)
        records.insert(conn, self._records, self._days)
        self._rows, self._records, self._days = {}, [], []
