"""Wiring the sender to settings: the mTLS client, one-off drains (`ei-sync`) and the status (`ei-status`)."""

from __future__ import annotations

import ssl
from collections import Counter
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapter.config import Settings
from adapter.ei.sender import Sender, SenderSettings
from adapter.rivta.client import client_context, new_client
from adapter.store.tables import ei_outbox


def sender_settings(s: Settings) -> SenderSettings:
    if not s.ei_url:
        raise ValueError("no engagement index configured (NPO_EI_URL)")
    return SenderSettings(url=s.ei_url, logical_address=s.ei_logical_address, batch_size=s.ei_batch_size,
                          min_interval=s.ei_min_interval, per_key_interval=s.ei_per_key_interval,
                          retention=s.ei_retention_days * 86400)


@asynccontextmanager
async def sender_for(engine: Engine, s: Settings):
    settings = sender_settings(s)
    verify: ssl.SSLContext | bool = True
    if settings.url.startswith("https:"):
        verify = client_context(s.ei_cert, s.ei_key, s.ei_ca)
    async with new_client(verify, timeout=s.ei_timeout) as client:
        yield Sender(engine, settings, client)


def status(engine: Engine, limit: int = 20) -> dict:
    """Counts per state, the oldest pending change, and the newest set-aside rows (`limit`; the resident is in
    them: callers show it only when asked)."""
    with engine.connect() as conn:
        by_state = Counter(dict(conn.execute(
            select(ei_outbox.c.state, func.count()).group_by(ei_outbox.c.state)).all()))
        oldest = conn.execute(select(func.min(ei_outbox.c.created_at)).where(ei_outbox.c.state == "pending")).scalar()
        failed = conn.execute(select(ei_outbox.c.pk.label("key"), ei_outbox.c.resident, ei_outbox.c.categorization,
                                     ei_outbox.c.logical_address, ei_outbox.c.data_controller,
                                     ei_outbox.c.delete_flag, ei_outbox.c.attempts, ei_outbox.c.last_error,
                                     ei_outbox.c.updated_at)
                              .where(ei_outbox.c.state == "failed").order_by(ei_outbox.c.pk.desc()).limit(limit)).all()
        retrying = conn.execute(select(func.count()).where(ei_outbox.c.state == "pending",
                                                           ei_outbox.c.attempts > 0)).scalar()
    return {"pending": by_state.get("pending", 0), "sent": by_state.get("sent", 0),
            "failed": by_state.get("failed", 0), "retrying": retrying, "oldest_pending": oldest,
            "recent_failures": [dict(r._mapping) for r in failed]}
