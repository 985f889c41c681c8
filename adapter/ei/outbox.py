"""Engagement-index changes, derived from record changes inside the same transaction (the outbox).

It lives with the engagement index: the store hands over the keys of the records it changed (`RecordKey`) and
imports nothing of `adapter.ei`; the intake calls `note_changes` in the transaction that changed them.

A record belongs to one engagement: patient (personnummer or samordningsnummer; never a reservnummer),
service domain and categorization of its contract, source system (= logical address) and data controller
(the care giver). After a change, an engagement whose last record is gone is sent with deleteFlag=true;
otherwise it is sent with mostRecentContent = the time of the change. Pending changes to the same
engagement coalesce into one outbox row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection

from adapter.ei.messages import Engagement, engagement_problems
from adapter.mapping import codes, timefmt
from adapter.rivta.contracts import BY_KEY, CONTRACTS
from adapter.store.keys import RecordKey
from adapter.store.tables import ei_outbox, records

NATIONAL_ID_TYPES = (codes.PERSONNUMMER, codes.SAMORDNINGSNUMMER)


def engages(key: RecordKey) -> bool:
    """Only national identities with a data controller are registered in the engagement index."""
    return key.patient_type in NATIONAL_ID_TYPES and bool(key.care_giver)


def categorization(key: RecordKey) -> str:
    return key.category or BY_KEY[key.contract].ei_categorizations[0]


def _same_engagement(contract_key: str) -> list[str]:
    domain = BY_KEY[contract_key].ei_service_domain
    return [c.key for c in CONTRACTS if c.ei_service_domain == domain]


def note_changes(conn: Connection, keys: Iterable[RecordKey], now: datetime | None = None) -> int:
    """Write an outbox change for every engagement touched by `keys`; returns how many. A whole unit's changes
    take one query for the remaining records, one for the pending rows and one statement per kind of write."""
    now = now or datetime.now(UTC)
    touched: dict[tuple[str | None, ...], RecordKey] = {}
    counted: dict[tuple[str | None, ...], set[tuple[str | None, ...]]] = {}
    for key in keys:
        if engages(key):
            touched.setdefault(_ident(key), key)
            counted.setdefault(_ident(key), set()).add(_counted(key))
    if not touched:
        return 0
    picked = list(touched.values())
    found: Counter[tuple[str | None, ...]] = Counter()
    for row in conn.execute(_REMAINING, {
        "patients": sorted({k.patient_id for k in picked}),
        "contracts": sorted({c for k in picked for c in _same_engagement(k.contract)}),
        "systems": sorted({k.source_system for k in picked}),
    }):
        found[_counted(RecordKey.of(row))] += row.n
    queue(conn, [(key, sum(found[c] for c in counted[ident]) == 0) for ident, key in touched.items()], now)
    return len(touched)


def queue(conn: Connection, changes: list[tuple[RecordKey, bool]], now: datetime) -> None:
    """Queue (engagement, deleteFlag) changes: a pending change to the same engagement is updated (its revision
    tells the sender it changed), one the EI would refuse is set aside for an operator. Of two changes to one
    engagement the later wins."""
    changes = list({_ident(k): (k, flag) for k, flag in changes}.values())
    residents = sorted({k.patient_id for k, _ in changes})
    pending = {tuple(r[2:]): r.pk for r in conn.execute(_PENDING, {"residents": residents}) if r.state == "pending"}
    recent = timefmt.timestamp(now)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, delete_flag in changes:
        ident = _ident(key)
        content = {"delete_flag": delete_flag, "most_recent_content": recent, "updated_at": now}
        row = dict(zip(KEY_COLUMNS, ident, strict=True))
        problems = engagement_problems(Engagement(
            registered_resident_identification=key.patient_id, service_domain=row["service_domain"] or "",
            categorization=row["categorization"] or "", logical_address=key.source_system,
            most_recent_content=recent, source_system=key.source_system, data_controller=key.care_giver or ""))
        if problems:  # the EI would refuse the whole call for this one: set it aside for an operator
            conn.execute(delete(ei_outbox).where(ei_outbox.c.state == "failed",  # this state replaces older ones
                                                 *[ei_outbox.c[k] == v for k, v in row.items()]))
            inserts.append({**row, **content, "source_system": key.source_system, "state": "failed",
                            "last_error": "not sendable: " + "; ".join(problems)[:480]})
        elif ident in pending:
            updates.append({"b_pk": pending[ident], **content})
        else:
            inserts.append({**row, **content, "source_system": key.source_system, "state": "pending",
                            "last_error": None})
    if updates:
        conn.execute(_UPDATE_PENDING, updates)
    if inserts:
        conn.execute(ei_outbox.insert(), [{**r, "revision": 0, "attempts": 0, "created_at": now} for r in inserts])


def _ident(key: RecordKey) -> tuple[str | None, ...]:
    """The engagement a record belongs to, in KEY_COLUMNS order."""
    contract = BY_KEY[key.contract]
    return (key.patient_id, contract.ei_service_domain, categorization(key), key.source_system, key.care_giver)


def _counted(key: RecordKey) -> tuple[str | None, ...]:
    """What the records counted for an engagement share (every version of a contract registers the same one)."""
    return (key.patient_id, key.patient_type, BY_KEY[key.contract].ei_service_domain, key.category,
            key.source_system, key.care_giver)


# Statements built once: every intake transaction ends here.
_REMAINING = select(records.c.patient_id, records.c.patient_type, records.c.contract, records.c.category,
                    records.c.source_system, records.c.care_giver, func.count().label("n")).where(
    records.c.patient_id.in_(bindparam("patients", expanding=True)),
    records.c.contract.in_(bindparam("contracts", expanding=True)),
    records.c.source_system.in_(bindparam("systems", expanding=True)),
).group_by(records.c.patient_id, records.c.patient_type, records.c.contract, records.c.category,
           records.c.source_system, records.c.care_giver)
# By resident alone, along ix_ei_outbox_key, and the state checked here: with the state in the query SQLite walked
# ix_ei_outbox_state's every pending row instead, each batch of an ingest more (sent rows are purged, so a resident
# has few rows).
_PENDING = select(ei_outbox.c.pk, ei_outbox.c.state, ei_outbox.c.resident, ei_outbox.c.service_domain,
                  ei_outbox.c.categorization, ei_outbox.c.logical_address, ei_outbox.c.data_controller).where(
    ei_outbox.c.resident.in_(bindparam("residents", expanding=True)))
_UPDATE_PENDING = update(ei_outbox).where(ei_outbox.c.pk == bindparam("b_pk")).values(
    delete_flag=bindparam("delete_flag"), most_recent_content=bindparam("most_recent_content"),
    updated_at=bindparam("updated_at"), revision=ei_outbox.c.revision + 1)


KEY_COLUMNS = ("resident", "service_domain", "categorization", "logical_address", "data_controller")


@dataclass
class Requeued:
    requeued: list[int] = field(default_factory=list)  # set-aside rows back to pending, as they were
    superseded: list[int] = field(default_factory=list)  # older states, or a newer change already pending
    unknown: list[int] = field(default_factory=list)  # no set-aside row with that key


def requeue(conn: Connection, keys: Iterable[int] | None, now: datetime | None = None) -> Requeued:
    """Put set-aside (`failed`) engagements back in the queue after an operator fixed the cause; `keys` are
    outbox rows as `npo-adapter ei-status` lists them, None for every set-aside row. A row goes back as it
    was (a refused delete stays a delete). Per engagement only the newest state is sent: a change already
    pending carries it, else the newest set-aside row goes back and older ones of that engagement go."""
    now = now or datetime.now(UTC)
    result = Requeued()
    stmt = select(ei_outbox).where(ei_outbox.c.state == "failed").order_by(ei_outbox.c.pk.desc())
    if keys is not None:
        wanted = set(keys)
        stmt = stmt.where(ei_outbox.c.pk.in_(wanted))
    rows = conn.execute(stmt).all()
    if keys is not None:
        result.unknown = sorted(wanted - {r.pk for r in rows})
    done: set[int] = set()
    for row in rows:
        if row.pk in done:
            continue
        same = [ei_outbox.c[c] == getattr(row, c) for c in KEY_COLUMNS]
        states = conn.execute(select(ei_outbox.c.pk, ei_outbox.c.state).where(
            *same, ei_outbox.c.state.in_(("pending", "failed"))).order_by(ei_outbox.c.pk.desc())).all()
        pending = any(s.state == "pending" for s in states)
        newest = None if pending else states[0].pk
        for s in states:
            if s.state != "failed":
                continue
            done.add(s.pk)
            if s.pk == newest:
                conn.execute(update(ei_outbox).where(ei_outbox.c.pk == s.pk).values(
                    state="pending", attempts=0, last_error=None, updated_at=now, revision=ei_outbox.c.revision + 1))
                result.requeued.append(s.pk)
            else:
                conn.execute(delete(ei_outbox).where(ei_outbox.c.pk == s.pk))
                result.superseded.append(s.pk)
    return result
