"""Draining the engagement-index outbox: batches of at most 1000, strictly in sequence per source system
and service domain, paced, at most once per 5 minutes per engagement, retried with backoff on faults and
network errors, and never resent blindly after ResultCode ERROR (those rows wait for an operator).

State lives in the outbox table only, so a restarted sender carries on where the last one stopped: rows
are marked sent only after the EI answered OK, and only if they did not change while being sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased

from adapter.ei.client import EiFault, EiUnavailable, send_update
from adapter.ei.messages import Engagement, EngagementTransaction, InvalidBatch
from adapter.store.locks import try_lock
from adapter.store.tables import ei_outbox

log = logging.getLogger("adapter.ei")


@dataclass(frozen=True)
class SenderSettings:
    url: str
    logical_address: str  # the EI instance's address (verksamhetsbaserad adressering)
    batch_size: int = 1000
    min_interval: float = 5.0  # seconds between two calls (initial load pacing)
    per_key_interval: float = 300.0  # the same engagement at most this often
    backoff_initial: float = 5.0
    backoff_max: float = 300.0


@dataclass
class SendReport:
    calls: int = 0
    sent: int = 0
    failed: int = 0  # rows the EI answered ERROR for
    errors: list[str] = field(default_factory=list)  # faults and network errors (retried later)


class Sender:
    def __init__(self, engine: Engine, settings: SenderSettings, client: httpx.AsyncClient,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client
        self.clock = clock
        self._last_call: float | None = None
        self._backoff = settings.backoff_initial

    def _eligible(self, now: datetime):
        """Pending rows whose engagement was not sent within the per-key interval."""
        recent = aliased(ei_outbox)
        same_key = and_(*[recent.c[c] == ei_outbox.c[c] for c in
                          ("resident", "service_domain", "categorization", "logical_address", "data_controller")])
        too_soon = exists().where(same_key, recent.c.state == "sent",
                                  recent.c.sent_at > now - timedelta(seconds=self.settings.per_key_interval))
        return select(ei_outbox).where(ei_outbox.c.state == "pending", ~too_soon)

    def eligible_groups(self) -> list[tuple[str, str]]:
        """(logical address, service domain) pairs with something to send now, oldest first."""
        now = self.clock()
        stmt = self._eligible(now).with_only_columns(
            ei_outbox.c.logical_address, ei_outbox.c.service_domain, func.min(ei_outbox.c.pk).label("first")
        ).group_by(ei_outbox.c.logical_address, ei_outbox.c.service_domain).order_by("first")
        with self.engine.connect() as conn:
            return [(r.logical_address, r.service_domain) for r in conn.execute(stmt)]

    def next_batch(self, group: tuple[str, str]) -> list:
        stmt = self._eligible(self.clock()).where(
            ei_outbox.c.logical_address == group[0], ei_outbox.c.service_domain == group[1],
        ).order_by(ei_outbox.c.pk).limit(self.settings.batch_size)
        with self.engine.connect() as conn:
            return conn.execute(stmt).all()

    async def _pace(self) -> None:
        if self._last_call is not None:
            wait = self.settings.min_interval - (asyncio.get_running_loop().time() - self._last_call)
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_call = asyncio.get_running_loop().time()

    async def send_batch(self, rows: list, report: SendReport) -> bool:
        """One Update call; True when the EI answered (OK or ERROR), False on a fault or network error."""
        transactions = [EngagementTransaction(_engagement(r), bool(r.delete_flag)) for r in rows]
        await self._pace()
        report.calls += 1
        now = self.clock()
        try:
            result = await send_update(self.client, self.settings.url, self.settings.logical_address, transactions)
        except InvalidBatch as exc:  # cannot be sent as it is: set the offending row aside, keep the rest
            bad = rows[exc.index] if exc.index is not None else None
            self._mark([bad] if bad else rows, now, attempts=False, state="failed", last_error=str(exc)[:500])
            report.failed += 1 if bad else len(rows)
            log.error("EI batch not sendable (%s): set aside for an operator", exc)
            return True
        except EiFault as exc:
            if exc.rejected:  # EI001-EI006: the national EI's validation errors; resending fails the same way
                self._mark(rows, now, attempts=True, state="failed", last_error=str(exc)[:500])
                report.failed += len(rows)
                log.error("EI rejected %d engagements (%s): left for an operator", len(rows), exc.code)
                return True
            report.errors.append(str(exc))
            self._mark(rows, now, attempts=True, last_error=str(exc)[:500])
            log.warning("EI update of %d engagements not delivered (%s); retrying later", len(rows), exc.code)
            return False
        except EiUnavailable as exc:
            report.errors.append(str(exc))
            self._mark(rows, now, attempts=True, last_error=str(exc)[:500])
            log.warning("EI update of %d engagements not delivered (%s); retrying later", len(rows), exc)
            return False
        if result.ok:
            self._mark_sent(rows, now)
            report.sent += len(rows)
            log.info("EI update delivered: %d engagements", len(rows))
        else:
            comment = (result.comment or "ResultCode ERROR")[:500]
            self._mark(rows, now, attempts=True, state="failed", last_error=comment)
            report.failed += len(rows)
            log.error("EI answered ERROR for %d engagements (%s): left for an operator", len(rows), comment)
        self._backoff = self.settings.backoff_initial
        return True

    def _mark(self, rows: list, now: datetime, *, attempts: bool, **values) -> None:
        # Only rows unchanged since they were read: a change that arrived meanwhile stays pending.
        with self.engine.begin() as conn:
            for r in rows:
                stmt = update(ei_outbox).where(ei_outbox.c.pk == r.pk)
                if "state" in values:
                    stmt = stmt.where(ei_outbox.c.revision == r.revision)
                conn.execute(stmt.values(**values, updated_at=now,
                                         attempts=ei_outbox.c.attempts + (1 if attempts else 0)))

    def _mark_sent(self, rows: list, now: datetime) -> None:
        with self.engine.begin() as conn:
            for r in rows:
                done = conn.execute(update(ei_outbox).where(ei_outbox.c.pk == r.pk, ei_outbox.c.revision == r.revision)
                                    .values(state="sent", sent_at=now, updated_at=now, last_error=None,
                                            attempts=ei_outbox.c.attempts + 1)).rowcount
                if not done:
                    # Changed while in flight: the newer content stays pending; record what was sent, so the
                    # per-engagement interval counts from this call.
                    sent = {c: getattr(r, c) for c in _SNAPSHOT}
                    conn.execute(ei_outbox.insert().values(**sent, state="sent", sent_at=now, created_at=now,
                                                           updated_at=now, revision=0, attempts=1))

    async def drain(self, max_calls: int | None = None) -> SendReport:
        """Send until nothing is eligible (or a call fails); used by `npo-adapter ei-sync`. Calls for one
        source system and domain go strictly in sequence, across replicas too: each group is sent only while
        holding its lock, and what is eligible is read again under the lock."""
        report = SendReport()
        progress = True
        while progress and (max_calls is None or report.calls < max_calls):
            progress = False
            for group in self.eligible_groups():
                with try_lock(self.engine, f"ei-sender:{group[0]}:{group[1]}") as mine:
                    if not mine:
                        continue  # another replica is sending this group
                    while max_calls is None or report.calls < max_calls:
                        rows = self.next_batch(group)
                        if not rows:
                            break
                        if not await self.send_batch(rows, report):
                            return report
                        progress = True
        return report

    async def run(self, stop: asyncio.Event, idle: float = 5.0) -> None:
        """The loop inside `npo-adapter serve`: drain, back off after failures, wait for new changes."""
        while not stop.is_set():
            report = await self.drain()
            if report.errors:
                delay, self._backoff = self._backoff, min(self._backoff * 2, self.settings.backoff_max)
            else:
                delay = idle
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass


_SNAPSHOT = ("resident", "service_domain", "categorization", "logical_address", "source_system", "data_controller",
             "delete_flag", "most_recent_content")


def _engagement(row) -> Engagement:
    return Engagement(
        registered_resident_identification=row.resident,
        service_domain=row.service_domain,
        categorization=row.categorization,
        logical_address=row.logical_address,
        most_recent_content=row.most_recent_content,
        source_system=row.source_system,
        data_controller=row.data_controller,
    )
