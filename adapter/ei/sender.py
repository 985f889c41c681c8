"""Draining the engagement-index outbox: batches of at most 1000, strictly in sequence per source system
and service domain, paced, at most once per 5 minutes per engagement, retried with backoff on faults and
network errors. One bad engagement does not park a whole call: when the index refuses a call for its content
(its validation faults EI001-EI006, or ResultCode ERROR), the batch is bisected and only the engagements it
refuses on their own are set aside for an operator (state `failed`; `npo-adapter ei-status --requeue`).
Sent rows are purged after the retention.

State lives in the outbox table only, so a restarted sender carries on where the last one stopped: rows
are marked sent only after the EI answered OK, and only if they did not change while being sent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased

from adapter.ei.client import EiFault, EiUnavailable, send_update
from adapter.ei.messages import Engagement, EngagementTransaction, InvalidBatch
from adapter.store.locks import try_lock
from adapter.store.tables import ei_outbox

log = logging.getLogger("adapter.ei")

# A refusal of the call itself, not of an engagement in it: EI003, the Update's LogicalAddress is not the index's
# (NPO_EI_LOGICAL_ADDRESS). Splitting the batch would only have every engagement refused on its own.
CALL_LEVEL_REJECTIONS = frozenset({"EI003"})
PURGE_EVERY = 3600.0  # seconds between two purges of sent rows by one sender
_EI_CODE = re.compile(r"\b(EI[0-9]{3})\b")
_KEY_COLUMNS = ("resident", "service_domain", "categorization", "logical_address", "data_controller")


def _call_level(code: str | None) -> str | None:
    if code == "EI003":
        return ("EI003: the index refused the call's logical address (check NPO_EI_LOGICAL_ADDRESS); "
                "nothing set aside, retried later")
    return None


def _same_key(row) -> list:
    return [ei_outbox.c[c] == getattr(row, c) for c in _KEY_COLUMNS]


@dataclass(frozen=True)
class SenderSettings:
    url: str
    logical_address: str  # the EI instance's address (verksamhetsbaserad adressering)
    batch_size: int = 1000
    min_interval: float = 5.0  # seconds between two calls (initial load pacing)
    per_key_interval: float = 300.0  # the same engagement at most this often
    backoff_initial: float = 5.0
    backoff_max: float = 300.0
    retention: float = 7 * 86400.0  # sent rows are purged after this long (seconds)


@dataclass(frozen=True)
class SetAside:
    """An engagement the index refused on its own, left for an operator. No personal data: `key` is the outbox
    row (what `npo-adapter ei-status` lists and `--requeue` takes)."""

    key: int
    categorization: str
    logical_address: str
    data_controller: str
    delete_flag: bool
    reason: str


@dataclass
class SendReport:
    calls: int = 0
    sent: int = 0
    failed: int = 0  # rows set aside for an operator (refused by the EI on their own, or not sendable)
    errors: list[str] = field(default_factory=list)  # faults and network errors (retried later)
    set_aside: list[SetAside] = field(default_factory=list)
    purged: int = 0  # sent rows past the retention, deleted


class Sender:
    def __init__(self, engine: Engine, settings: SenderSettings, client: httpx.AsyncClient,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.settings = settings
        self.client = client
        self.clock = clock
        self._last_call: float | None = None
        self._backoff = settings.backoff_initial
        self._last_purge: datetime | None = None

    def _eligible(self, now: datetime):
        """Pending rows whose engagement was not sent within the per-key interval."""
        recent = aliased(ei_outbox)
        same_key = and_(*[recent.c[c] == ei_outbox.c[c] for c in _KEY_COLUMNS])
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
        """Send `rows` in one Update call. When the index refuses the call for its content (EI001-EI006 but
        EI003, as a SOAP fault or as ResultCode ERROR), the batch is split in halves and each half sent again,
        until the engagements it refuses on their own are found: only those are set aside, the rest is sent.
        True when every row was answered for (delivered or set aside); False on a network error or another
        fault (what was not delivered stays pending and is retried later, with backoff)."""
        transactions = [EngagementTransaction(_engagement(r), bool(r.delete_flag)) for r in rows]
        await self._pace()
        report.calls += 1
        now = self.clock()
        try:
            result = await send_update(self.client, self.settings.url, self.settings.logical_address, transactions)
        except InvalidBatch as exc:  # cannot be sent as it is: set the offending row aside, keep the rest
            if exc.index is None:
                for r in rows:
                    self._set_aside(r, now, f"not sendable: {exc}", report)
            else:
                self._set_aside(rows[exc.index], now, f"not sendable: {exc}", report)
            log.error("EI batch not sendable (%s): set aside for an operator", exc)
            return True
        except EiFault as exc:
            if exc.rejected and exc.code not in CALL_LEVEL_REJECTIONS:
                return await self._refused(rows, report, now, str(exc))
            reason = _call_level(exc.code) or str(exc)
            report.errors.append(reason)
            self._mark(rows, now, attempts=True, last_error=reason[:500])
            log.warning("EI update of %d engagements not delivered (%s); retrying later", len(rows),
                        exc.code or "SOAP fault without a code")
            return False
        except EiUnavailable as exc:
            report.errors.append(str(exc))
            self._mark(rows, now, attempts=True, last_error=str(exc)[:500])
            log.warning("EI update of %d engagements not delivered (%s); retrying later", len(rows), exc)
            return False
        self._backoff = self.settings.backoff_initial
        if result.ok:
            self._mark_sent(rows, now)
            report.sent += len(rows)
            log.info("EI update delivered: %d engagements", len(rows))
            return True
        comment = result.comment or "ResultCode ERROR"
        code = _EI_CODE.search(comment)
        if code and code.group(1) in CALL_LEVEL_REJECTIONS:
            reason = _call_level(code.group(1)) or comment
            report.errors.append(reason)
            self._mark(rows, now, attempts=True, last_error=reason[:500])
            log.warning("EI update of %d engagements not delivered (%s); retrying later", len(rows), code.group(1))
            return False
        return await self._refused(rows, report, now, "ResultCode ERROR: " + comment)

    async def _refused(self, rows: list, report: SendReport, now: datetime, reason: str) -> bool:
        """The index refused the call for something in it: set a lone engagement aside, else bisect."""
        self._backoff = self.settings.backoff_initial
        if len(rows) == 1:
            self._set_aside(rows[0], now, reason, report)
            return True
        half, code = len(rows) // 2, _EI_CODE.search(reason)
        log.warning("EI refused an Update of %d engagements (%s): sending the halves to find the refused ones",
                    len(rows), code.group(1) if code else "ERROR")
        return await self.send_batch(rows[:half], report) and await self.send_batch(rows[half:], report)

    def _set_aside(self, row, now: datetime, reason: str, report: SendReport) -> None:
        """Leave one engagement for an operator (`npo-adapter ei-status --requeue`), unless it changed while in
        flight (then the newer content stays pending). An older set-aside state of the same engagement goes."""
        reason = reason[:500]
        with self.engine.begin() as conn:
            done = conn.execute(update(ei_outbox).where(ei_outbox.c.pk == row.pk, ei_outbox.c.revision == row.revision)
                                .values(state="failed", last_error=reason, updated_at=now,
                                        attempts=ei_outbox.c.attempts + 1)).rowcount
            if done:
                conn.execute(delete(ei_outbox).where(ei_outbox.c.state == "failed", ei_outbox.c.pk != row.pk,
                                                     *_same_key(row)))
        if not done:
            return
        report.failed += 1
        report.set_aside.append(SetAside(row.pk, row.categorization, row.logical_address, row.data_controller,
                                         bool(row.delete_flag), reason))
        log.error("EI refused engagement %d on its own (%s at %s, deleteFlag=%s): %s; set aside for an operator "
                  "(npo-adapter ei-status)", row.pk, row.categorization, row.logical_address,
                  str(bool(row.delete_flag)).lower(), reason)

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
                # a set-aside state of this engagement is settled by this newer delivery
                conn.execute(delete(ei_outbox).where(ei_outbox.c.state == "failed", *_same_key(r)))

    def purge(self) -> int:
        """Delete sent rows older than the retention (never those the per-engagement interval still needs)."""
        now = self.clock()
        keep = max(self.settings.retention, self.settings.per_key_interval)
        with self.engine.begin() as conn:
            purged = conn.execute(delete(ei_outbox).where(
                ei_outbox.c.state == "sent", ei_outbox.c.sent_at < now - timedelta(seconds=keep))).rowcount
        self._last_purge = now
        if purged:
            log.info("EI outbox: %d sent rows older than %s purged", purged, timedelta(seconds=keep))
        return int(purged)

    async def drain(self, max_calls: int | None = None) -> SendReport:
        """Send until nothing is eligible (or a call fails); used by `npo-adapter ei-sync`. Calls for one
        source system and domain go strictly in sequence, across replicas too: each group is sent only while
        holding its lock, and what is eligible is read again under the lock."""
        report = SendReport()
        if self._last_purge is None or self.clock() - self._last_purge >= timedelta(seconds=PURGE_EVERY):
            report.purged = self.purge()
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
