"""Liveness and readiness for a load balancer or an orchestrator, and the store queries behind the scrape-time
metrics.

* `/health/live`: the process answers HTTP (nothing else is checked: a live process with a down store should be
  taken out of the pool, not restarted).
* `/health/ready`: the store answers, its schema is this version's head, and every CRL in use is before its
  nextUpdate (past it, every caller of that CA is refused: the instance cannot serve). 200 or 503, with the checks
  in a small JSON body that names no patient and no caller.

Every store query runs in a worker thread with a short timeout (`StoreProbe`): a hung database makes a probe or a
scrape answer "down" within the timeout instead of hanging it, and a query still hanging from an earlier probe is
not started again beside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from adapter.store.tables import access_log, ei_outbox, log_outbox

T = TypeVar("T")
DEFAULT_TIMEOUT = 2.0


class ProbeFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # fixed wording and an exception class name: safe to show


@cache
def _head() -> str | None:
    from adapter.store import migrate

    return migrate.head()


@dataclass(frozen=True)
class StoreState:
    schema: str | None
    schema_current: bool
    ei_rows: dict[str, int] = field(default_factory=dict)
    ei_oldest_pending_seconds: float = 0.0
    log_queue: int = 0
    log_oldest_seconds: float = 0.0


def _age(oldest: datetime | None, now: datetime) -> float:
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # SQLite gives the stored UTC time back without its zone
        oldest = oldest.replace(tzinfo=UTC)
    return max(0.0, (now - oldest).total_seconds())


class StoreProbe:
    """Runs store queries with a timeout, one at a time per kind of query."""

    def __init__(self, engine: Engine, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.engine, self.timeout = engine, timeout
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="npo-store-probe")
        self._running: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def _timed(self, name: str, fn: Callable[[Connection], T]) -> T:
        with self._lock:
            previous = self._running.get(name)
            if previous is not None and not previous.done():
                raise ProbeFailed(f"the previous check has not finished after {self.timeout:g} s")
            future = self._pool.submit(self._run, fn)
            self._running[name] = future
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            raise ProbeFailed(f"no answer within {self.timeout:g} s") from None
        except SQLAlchemyError as exc:
            raise ProbeFailed(f"unavailable ({type(exc).__name__})") from None

    def _run(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # the server gives up too, not only this thread's wait
                conn.execute(text(f"SET LOCAL statement_timeout = {int(self.timeout * 1000)}"))
            return fn(conn)

    def schema(self) -> str | None:
        """The store's schema revision (raises ProbeFailed when the store does not answer)."""
        return self._timed("schema", _revision)

    def state(self, now: datetime | None = None) -> StoreState:
        at = now or datetime.now(UTC)
        return self._timed("state", lambda conn: _state(conn, at))


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _state(conn: Connection, now: datetime) -> StoreState:
    revision = _revision(conn)
    rows = {state: n for state, n in conn.execute(
        select(ei_outbox.c.state, func.count()).group_by(ei_outbox.c.state)).all()}
    oldest_pending = conn.execute(select(func.min(ei_outbox.c.created_at))
                                  .where(ei_outbox.c.state == "pending")).scalar()
    queue, oldest_log = conn.execute(
        select(func.count(), func.min(access_log.c.logged_at))
        .select_from(log_outbox.join(access_log, access_log.c.seq == log_outbox.c.seq))).one()
    return StoreState(revision, revision == _head(), rows, _age(oldest_pending, now), queue or 0,
                      _age(oldest_log, now))


CrlFacts = Callable[[], Sequence[tuple[str, datetime | None]]]


class Readiness:
    """The readiness checks: store, schema, CRLs (`crls` gives each CRL in use by issuer and nextUpdate)."""

    def __init__(self, probe: StoreProbe, crls: CrlFacts | None = None) -> None:
        self.probe, self.crls = probe, crls

    def check(self, now: datetime | None = None) -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            revision = self.probe.schema()
            checks["store"] = "ok"
            checks["schema"] = "ok" if revision == _head() else f"at {revision or 'nothing'}, needs {_head()}"
        except ProbeFailed as exc:
            checks["store"] = exc.reason
            checks["schema"] = "unknown (no store)"
        if self.crls is not None:
            at = now or datetime.now(UTC)
            stale = [issuer for issuer, next_update in self.crls() if next_update is None or next_update <= at]
            checks["crls"] = "ok" if not stale else "past nextUpdate: " + "; ".join(sorted(stale))
        return all(v == "ok" for v in checks.values()), checks
