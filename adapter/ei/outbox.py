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

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
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
    """Write an outbox change for every engagement touched by `keys`; returns how many."""
    now = now or datetime.now(UTC)
    changed = 0
    for key in {k for k in keys if engages(k)}:
        remaining = conn.execute(
            select(func.count()).select_from(records).where(
                records.c.patient_id == key.patient_id,
                records.c.patient_type == key.patient_type,
                # every version of a contract (GetCareDocumentation 2.1 and 3.0) registers the same engagement
                records.c.contract.in_(_same_engagement(key.contract)),
                records.c.category.is_(None) if key.category is None else records.c.category == key.category,
                records.c.source_system == key.source_system,
                records.c.care_giver == key.care_giver,
            )
        ).scalar_one()
        _upsert(conn, key, delete_flag=remaining == 0, now=now)
        changed += 1
    return changed


def _upsert(conn: Connection, key: RecordKey, *, delete_flag: bool, now: datetime) -> None:
    contract = BY_KEY[key.contract]
    ident = {
        "resident": key.patient_id,
        "service_domain": contract.ei_service_domain,
        "categorization": categorization(key),
        "logical_address": key.source_system,
        "data_controller": key.care_giver,
    }
    content = {"delete_flag": delete_flag, "most_recent_content": timefmt.timestamp(now), "updated_at": now}
    problems = engagement_problems(Engagement(
        registered_resident_identification=key.patient_id, service_domain=contract.ei_service_domain,
        categorization=categorization(key), logical_address=key.source_system,
        most_recent_content=content["most_recent_content"], source_system=key.source_system,
        data_controller=key.care_giver or ""))
    if problems:  # the EI would refuse the whole call for this one: set it aside for an operator
        conn.execute(delete(ei_outbox).where(ei_outbox.c.state == "failed",  # this state replaces older ones
                                             *[ei_outbox.c[k] == v for k, v in ident.items()]))
        conn.execute(ei_outbox.insert().values(**ident, **content, source_system=key.source_system, state="failed",
                                               revision=0, attempts=0, created_at=now,
                                               last_error="not sendable: " + "; ".join(problems)[:480]))
        return
    pending = conn.execute(
        select(ei_outbox.c.pk).where(ei_outbox.c.state == "pending",
                                     *[ei_outbox.c[k] == v for k, v in ident.items()])
    ).scalar()
    if pending is not None:
        conn.execute(update(ei_outbox).where(ei_outbox.c.pk == pending)
                     .values(**content, revision=ei_outbox.c.revision + 1))
    else:
        conn.execute(ei_outbox.insert().values(**ident, **content, source_system=key.source_system,
                                               state="pending", revision=0, attempts=0, created_at=now))


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
