"""Publishing records and querying them for an answer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection, Row, RowMapping
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from adapter.mapping.record import Record
from adapter.rivta.contracts import BY_KEY, DateRule
from adapter.store.bulk import insert_rows
from adapter.store.keys import RecordKey
from adapter.store.tables import record_days, records

if TYPE_CHECKING:
    from adapter.store.later import Later


class DuplicateDocumentId(ValueError):
    pass


class TooLong(ValueError):
    """A record's value is longer than its column holds (PostgreSQL refuses it, SQLite would keep it): the writer's
    resource is refused alike on both engines. The message names the column and its length, never the value."""


_LENGTHS = {c.name: c.type.length for c in records.columns
            if isinstance(c.type, String) and c.type.length is not None}


def _day(value: str | None) -> str | None:
    return value[:8] if value else None


def _days(rec: Record) -> set[str]:
    """The days the contract's date filter looks at (each named time may hold one value or several)."""
    out: set[str] = set()
    for name in BY_KEY[rec.contract].filter_times:
        value = rec.times.get(name)
        for v in value if isinstance(value, list | tuple) else [value]:
            if v:
                out.add(v[:8])
    return out


def _row(resource_type: str, resource_id: str, part: int, rec: Record, days: list[str],
         now: datetime) -> dict[str, Any]:
    """A record's row; `days`: its filter days, sorted (written to record_days beside it)."""
    h = rec.header
    row = {
        "contract": rec.contract,
        "source_system": h.source_system,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "part": part,
        "document_id": h.document_id,
        "patient_id": h.patient.id,
        "patient_type": h.patient.type,
        "care_unit": h.author.care_unit,
        "care_giver": h.author.care_giver,
        "care_contact": h.care_contact,
        "approved_for_patient": h.approved_for_patient,
        "category": rec.category,
        "period_start": rec.period[0],
        "period_end": rec.period[1],
        "chain_id": rec.chain_id,
        "status": rec.status,
        "fragment": rec.fragment,
        "updated_at": now,
        "latest_day": days[-1] if days else "",
    }
    for name, length in _LENGTHS.items():
        value = row[name]
        if isinstance(value, str) and len(value) > length:
            raise TooLong(f"{name} longer than {length} characters")
    return row


def stored_many(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], list[Row[Any]]]:
    """The records stored for each (type, id) of `keys` as `publish` compares them, one query per type (for a
    unit of work's resources at once); a key without records maps to []."""
    ids: dict[str, set[str]] = {}
    for rtype, rid in keys:
        ids.setdefault(rtype, set()).add(rid)
    found: dict[tuple[str, str], list[Row[Any]]] = {}
    for rtype, wanted in sorted(ids.items()):
        found.update({(rtype, rid): [] for rid in wanted})
        for row in conn.execute(_STORED_MANY, {"t": rtype, "ids": sorted(wanted)}):
            found[(rtype, row.resource_id)].append(row)
    return found


def publish(conn: Connection, resource_type: str, resource_id: str, recs: Sequence[Record],
            stored: list[Row[Any]] | None = None, later: Later | None = None) -> set[RecordKey]:
    """Replace what a FHIR resource published before with `recs` (inside the caller's transaction).
    Returns the engagement keys of the records before and after, for the engagement-index outbox; none when
    the records are exactly those already stored (nothing is rewritten and no engagement is re-announced).
    A resource's records are written with one statement each for checking, deleting and inserting, whatever
    their number (the write path of every FHIR write and of file ingest); `stored`: what `stored_many` read for it
    in this transaction, if nothing changed them since; `later`: the new records are inserted when the batch is
    flushed, and their document ids checked then (`check_batch`)."""
    now = datetime.now(UTC)
    days = [sorted(_days(r)) for r in recs]
    rows = [_row(resource_type, resource_id, i, r, ds, now) for i, (r, ds) in enumerate(zip(recs, days, strict=True))]
    mine = {"t": resource_type, "i": resource_id}
    if stored is None:
        stored = list(conn.execute(_STORED, mine).all())
    if [_compared(r._mapping) for r in stored] == [_compared(r) for r in rows]:
        return set()
    if later is None:
        _check_clashes(conn, resource_type, resource_id, rows)
    keys = {RecordKey.of(r) for r in stored}
    if stored:
        conn.execute(_DELETE_DAYS, mine)
        conn.execute(_DELETE, mine)
    if later is not None:
        for row, ds in zip(rows, days, strict=True):
            later.record(row, ds)
    else:
        insert(conn, rows, days)
    keys.update(RecordKey(row["patient_id"], row["patient_type"], row["contract"], row["category"],
                          row["source_system"], row["care_giver"]) for row in rows)
    return keys


def _check_clashes(conn: Connection, resource_type: str, resource_id: str, rows: list[dict[str, Any]]) -> None:
    """DuplicateDocumentId when another resource published one of `rows`' document ids (one query for all)."""
    if not rows:
        return
    wanted = {(r["source_system"], r["contract"], r["document_id"]) for r in rows}
    found = conn.execute(_CLASH, _documents(wanted) | {"t": resource_type, "i": resource_id})
    for clash in found:
        if (clash.source_system, clash.contract, clash.document_id) in wanted:
            raise DuplicateDocumentId(
                f"identifier: document id already published by {clash.resource_type}/{clash.resource_id}"
            )


def insert(conn: Connection, rows: list[dict[str, Any]], days: list[list[str]]) -> None:
    """Insert records (`_row`s, whose `latest_day` is the latest of their `days`) and the filter days of each: one
    bulk insert for the records (`insert_rows`), one query for their keys (RETURNING would make SQLite's driver
    insert row by row) and one bulk insert for the days."""
    if not rows:
        return
    insert_rows(conn, records, rows)
    if not any(days):
        return
    ids: dict[str, set[str]] = {}
    for row in rows:
        ids.setdefault(row["resource_type"], set()).add(row["resource_id"])
    pks = {}
    for rtype, wanted in sorted(ids.items()):
        for r in conn.execute(_KEYS, {"t": rtype, "ids": sorted(wanted)}):
            pks[(rtype, r.resource_id, r.part)] = r.pk
    insert_rows(conn, record_days, [{"record_pk": pks[(row["resource_type"], row["resource_id"], row["part"])],
                                     "day": d} for row, ds in zip(rows, days, strict=True) for d in ds])


def _documents(triples: set[tuple[str, str, str]]) -> dict[str, list[str]]:
    """`_SAME_DOCUMENT`'s parameters for (source system, contract, document id) triples (the caller keeps only the
    rows whose triple it asked for)."""
    return {"systems": sorted({t[0] for t in triples}), "contracts": sorted({t[1] for t in triples}),
            "documents": sorted({t[2] for t in triples})}


def check_batch(conn: Connection, documents: set[tuple[str, str, str]]) -> None:
    """DuplicateDocumentId when one of a flushed batch's (source system, contract, document id) is published by
    more than one resource (a batch's documents checked in one query instead of one per resource)."""
    if not documents:
        return
    owners: dict[tuple[str, str, str], set[tuple[str, str]]] = {}
    for row in conn.execute(_SAME_DOCUMENT, _documents(documents)):
        triple = (row.source_system, row.contract, row.document_id)
        if triple in documents:
            owners.setdefault(triple, set()).add((row.resource_type, row.resource_id))
    for found in owners.values():
        if len(found) > 1:
            raise DuplicateDocumentId("identifier: document id published by more than one resource")


_COMPARED = tuple(c.name for c in records.c if c.name not in ("pk", "updated_at"))
# Statements built once: publishing is on the write path of every FHIR write.
_MINE = (records.c.resource_type == bindparam("t")) & (records.c.resource_id == bindparam("i"))
_STORED = select(*[records.c[c] for c in _COMPARED]).where(_MINE).order_by(records.c.part)
_STORED_MANY = select(*[records.c[c] for c in _COMPARED]).where(
    records.c.resource_type == bindparam("t"), records.c.resource_id.in_(bindparam("ids", expanding=True))
).order_by(records.c.resource_id, records.c.part)
_SAME_DOCUMENT = select(records.c.resource_type, records.c.resource_id, records.c.source_system, records.c.contract,
                        records.c.document_id).where(
    records.c.source_system.in_(bindparam("systems", expanding=True)),
    records.c.contract.in_(bindparam("contracts", expanding=True)),
    records.c.document_id.in_(bindparam("documents", expanding=True)))
_CLASH = _SAME_DOCUMENT.where(or_(records.c.resource_type != bindparam("t"), records.c.resource_id != bindparam("i")))
_KEYS = select(records.c.pk, records.c.resource_id, records.c.part).where(
    records.c.resource_type == bindparam("t"), records.c.resource_id.in_(bindparam("ids", expanding=True)))
_OLD_KEYS = select(records.c.patient_id, records.c.patient_type, records.c.contract, records.c.category,
                   records.c.source_system, records.c.care_giver).where(_MINE)
_DELETE_DAYS = delete(record_days).where(record_days.c.record_pk.in_(select(records.c.pk).where(_MINE)))
_DELETE = delete(records).where(_MINE)


def _compared(row: Mapping[str, Any] | RowMapping) -> tuple[Any, ...]:
    return tuple(bytes(row[c]) if c == "fragment" else row[c] for c in _COMPARED)


def remove(conn: Connection, resource_type: str, resource_id: str) -> set[RecordKey]:
    """Delete what a FHIR resource published; returns the engagement keys of the deleted records."""
    mine = {"t": resource_type, "i": resource_id}
    old = conn.execute(_OLD_KEYS, mine).all()
    if old:
        conn.execute(_DELETE_DAYS, mine)
        conn.execute(_DELETE, mine)
    return {RecordKey.of(r) for r in old}


@dataclass(frozen=True)
class RecordQuery:
    """A request's filters, already checked against the contract's rules."""

    contract: str
    source_system: str
    patient_id: str
    patient_type: str
    period_start: str | None = None  # YYYYMMDD, inclusive
    period_end: str | None = None
    care_units: tuple[str, ...] = ()
    care_givers: tuple[str, ...] = ()
    care_contacts: tuple[str, ...] = ()
    chain_id: str | None = None
    status: str | None = None
    hidden_care_units: tuple[str, ...] = field(default=())


def query(conn: Connection, q: RecordQuery) -> Iterator[bytes]:
    """The fragments answering `q`, in publishing order. The statement is built once per filter shape with
    bound parameters (answering is the hot path: building and cache-keying a fresh statement for every
    request cost about three times the query itself)."""
    stmt = statement_for(*shape_of(q))
    yield from conn.execute(stmt, params_of(q)).scalars()


@dataclass(frozen=True)
class PageRow:
    day: str  # the record's latest filter day (YYYYMMDD), "" when it has none
    pk: int
    fragment: bytes


def query_page(conn: Connection, q: RecordQuery, limit: int, after: tuple[str, int] | None = None) -> list[PageRow]:
    """Up to `limit` records answering `q`, newest first (latest filter day, then latest published), after the
    position `after` (the last row of the previous page): a stable order for partial answers (TKB hasMore)."""
    stmt = page_statement_for(*shape_of(q), after is not None)
    return [PageRow(day, pk, fragment) for day, pk, fragment in conn.execute(stmt, page_params(q, limit, after))]


def page_params(q: RecordQuery, limit: int, after: tuple[str, int] | None) -> dict[str, Any]:
    params = params_of(q) | {"limit": limit}
    if after is not None:
        params |= {"after_day": after[0], "after_pk": after[1]}
    return params


Shape = tuple[str, bool, bool, bool, bool, bool, bool, bool, bool]  # the contract, then which filters are given


class json_values(FunctionElement[Any]):
    """The strings of a JSON array parameter as a one-column table (`value`): a filter list of any length is one
    bound parameter, so a statement serves every length (one per list would let callers fill the statement caches
    with a statement per length, and a few thousand values would pass SQLite's limit on parameters)."""

    inherit_cache = True
    name = "json_values"


@compiles(json_values, "sqlite")
def _json_values_sqlite(element: json_values, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@compiles(json_values, "postgresql")
def _json_values_postgresql(element: json_values, compiler: Any, **kw: Any) -> str:
    return f"json_array_elements_text(CAST({compiler.process(element.clauses, **kw)} AS json))"


def _listed(name: str) -> Select[Any]:
    return select(literal_column("value")).select_from(json_values(bindparam(name)))


@lru_cache(maxsize=512)
def page_statement_for(contract_name: str, care_units: bool, hidden: bool, care_givers: bool, care_contacts: bool,
                       chain_id: bool, status: bool, start: bool, end: bool, after: bool) -> Select[Any]:
    """`query_page`'s statement: ix_records_page (the lookup columns, then latest_day and pk) is walked backwards
    from `after` (a row-value comparison both engines start an index range at), so a page reads its own
    records and not every record of the patient."""
    base = statement_for(contract_name, care_units, hidden, care_givers, care_contacts, chain_id, status, start, end)
    day = records.c.latest_day
    stmt: Select[Any] = base.with_only_columns(day, records.c.pk, records.c.fragment).order_by(None)
    if after:
        stmt = stmt.where(tuple_(day, records.c.pk) < tuple_(bindparam("after_day"), bindparam("after_pk")))
    ordered: Select[Any] = stmt.order_by(day.desc(), records.c.pk.desc()).limit(bindparam("limit"))
    return ordered


def shape_of(q: RecordQuery) -> Shape:
    return (q.contract, bool(q.care_units), bool(q.hidden_care_units), bool(q.care_givers), bool(q.care_contacts),
            bool(q.chain_id), bool(q.status), q.period_start is not None, q.period_end is not None)


def params_of(q: RecordQuery) -> dict[str, Any]:
    """The bound values; each filter list one JSON array (`json_values`), so that the statement is complete SQL,
    compiled once per shape (adapter/store/reader.py executes it through the driver)."""
    return {
        "contract": q.contract, "source_system": q.source_system, "patient_id": q.patient_id,
        "patient_type": q.patient_type, "chain_id": q.chain_id, "status": q.status,
        "start": q.period_start, "end": q.period_end,
        "care_units": _json([u.upper() for u in q.care_units]),
        "hidden": _json([u.upper() for u in q.hidden_care_units]),
        "care_givers": _json([g.upper() for g in q.care_givers]), "care_contacts": _json(list(q.care_contacts)),
    }


def _json(values: list[str]) -> str:
    return orjson.dumps(values).decode()


@lru_cache(maxsize=512)
def statement_for(contract_name: str, care_units: bool, hidden: bool, care_givers: bool, care_contacts: bool,
                  chain_id: bool, status: bool, start: bool, end: bool) -> Select[Any]:
    contract = BY_KEY[contract_name]
    where = [
        records.c.contract == bindparam("contract"),
        records.c.source_system == bindparam("source_system"),
        records.c.patient_id == bindparam("patient_id"),
        records.c.patient_type == bindparam("patient_type"),
    ]
    if care_units:
        where.append(func.upper(records.c.care_unit).in_(_listed("care_units")))
    if hidden:
        where.append(or_(records.c.care_unit.is_(None), func.upper(records.c.care_unit).not_in(_listed("hidden"))))
    if care_givers:
        where.append(func.upper(records.c.care_giver).in_(_listed("care_givers")))
    if care_contacts:
        where.append(records.c.care_contact.in_(_listed("care_contacts")))
    if chain_id:
        where.append(records.c.chain_id == bindparam("chain_id"))
    if status:
        where.append(records.c.status == bindparam("status"))
    where.extend(_period_clause(contract.date_rule, start, end))
    return select(records.c.fragment).where(and_(*where)).order_by(records.c.pk)


def _period_clause(rule: DateRule, start: bool, end: bool) -> list[ColumnElement[bool]]:
    if not start and not end:
        return []
    if rule is DateRule.OVERLAP:
        clauses = []
        if end:
            clauses.append(or_(records.c.period_start.is_(None), records.c.period_start <= bindparam("end")))
        if start:
            clauses.append(or_(records.c.period_end.is_(None), records.c.period_end >= bindparam("start")))
        return clauses
    cond = [record_days.c.record_pk == records.c.pk]
    if start:
        cond.append(record_days.c.day >= bindparam("start"))
    if end:
        cond.append(record_days.c.day <= bindparam("end"))
    return [exists().where(and_(*cond))]
