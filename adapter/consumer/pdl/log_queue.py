"""Sending access-log entries to the national log service (StoreLog) from the durable local queue.

Entries are queued in the same transaction that appends them to the local log, so an outage or a restart
loses nothing: `flush` sends what is due (one call per logging care provider), removes what was stored, and
backs off what was not.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from adapter.consumer.pdl import log_service
from adapter.consumer.pdl.services import NATIONAL_HSA_ID
from adapter.consumer.pdl.soap_call import PdlServiceError
from adapter.store.tables import access_log, log_outbox

log = logging.getLogger("adapter.consumer.pdl")
BACKOFF_MAX = timedelta(minutes=30)


@dataclass
class FlushReport:
    sent: int = 0
    failed: int = 0
    pending: int = 0


def to_national(entry: dict) -> log_service.AccessLogEntry:
    emergency = entry["basis"] == "emergency"
    return log_service.AccessLogEntry(
        log_id=entry["log_id"],
        system_id=entry["system_id"],
        system_name=entry["system_name"],
        activity_type=log_service.EMERGENCY_ACCESS if emergency else log_service.READ,
        activity_args=(f"Nödåtkomst: {entry['emergency_reason']}" if emergency else f"Åtkomst: {entry['basis']}"),
        start_time=datetime.fromisoformat(entry["at"]),
        purpose=entry["purpose"],
        user_id=entry["user_id"],
        user_name=entry.get("user_name"),
        user_care_provider_id=entry["care_provider_id"],
        user_care_unit_id=entry["care_unit_id"],
        resources=tuple(
            log_service.LogResource(resource_type=rt, care_provider_id=entry["information_care_provider_id"],
                                    care_unit_id=entry["information_care_unit_id"], patient_id=entry["patient_id"])
            for rt in (entry["resource_types"] or ["Översikt"])
        ),
    )


async def flush(engine: Engine, client: httpx.AsyncClient, url: str, logical_address: str = NATIONAL_HSA_ID,
                now: datetime | None = None) -> FlushReport:
    """`url`: the StoreLog endpoint; `logical_address`: the national log service's (auditing:log 2 TKB)."""
    now = now or datetime.now(UTC)
    report = FlushReport()
    with engine.connect() as conn:
        due = conn.execute(
            select(log_outbox.c.seq, log_outbox.c.attempts, access_log.c.entry)
            .join(access_log, access_log.c.seq == log_outbox.c.seq)
            .where(log_outbox.c.next_attempt_at <= now).order_by(log_outbox.c.seq)
        ).all()
    by_provider: dict[str, list] = defaultdict(list)  # one call per logging care provider, as a log owner
    for row in due:
        entry = orjson.loads(row.entry)
        by_provider[entry["care_provider_id"]].append((row, entry))
    for rows in by_provider.values():
        try:
            await log_service.store_logs(client, url, logical_address, [to_national(e) for _, e in rows])
        except PdlServiceError as exc:
            report.failed += len(rows)
            log.warning("national log service: %d entries not stored yet (%s)", len(rows), exc.reason)
            with engine.begin() as conn:
                for row, _ in rows:
                    wait = min(timedelta(seconds=10 * 2 ** min(row.attempts, 10)), BACKOFF_MAX)
                    conn.execute(update(log_outbox).where(log_outbox.c.seq == row.seq).values(
                        attempts=row.attempts + 1, last_error=exc.reason[:300], next_attempt_at=now + wait))
            continue
        with engine.begin() as conn:
            conn.execute(delete(log_outbox).where(log_outbox.c.seq.in_([row.seq for row, _ in rows])))
        report.sent += len(rows)
    with engine.connect() as conn:
        report.pending = len(conn.execute(select(log_outbox.c.seq)).all())
    return report
