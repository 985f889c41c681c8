"""Sending queued access-log entries to the national log service (StoreLog) while the UI runs.

The queue is durable (`log_queue`), so a failed round only waits for the next one; entries that failed are
backed off by `log_queue.flush` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from sqlalchemy.engine import Engine

from adapter.consumer.overview import ConsumerConfig
from adapter.consumer.pdl.log_queue import FlushReport, flush
from adapter.consumer.pdl.services import STORE_LOG
from adapter.rivta.client import new_client

log = logging.getLogger("adapter.ui")


class LogFlusher:
    def __init__(self, config: ConsumerConfig, engine: Engine, interval: float) -> None:
        self.config, self.engine, self.interval = config, engine, interval
        self.rounds = 0
        self.last: FlushReport | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._tls: ssl.SSLContext | None = None

    def start(self) -> None:
        # the client certificate is loaded now: a UI that cannot reach the national services must not start
        self._tls = self.config.tls_context()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="access-log-flush")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.config.service_timeout + 2)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.flush_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def flush_once(self) -> FlushReport | None:
        try:
            async with new_client(self._tls, timeout=self.config.service_timeout) as client:
                report = await flush(self.engine, client, self.config.services.url(STORE_LOG))
        except Exception as exc:  # the entries stay queued; try again next round
            log.warning("access log: sending to the national log service failed (%s)", type(exc).__name__)
            report = None
        self.rounds += 1
        self.last = report
        if report and report.sent:
            log.info("access log: %d entries sent to the national log service, %d waiting", report.sent,
                     report.pending)
        return report
