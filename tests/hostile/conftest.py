"""The hostile-input suite: the whole demo municipality in a store, served by the real producer on loopback,
and the personal data that must never show up in a fault or in a log record at WARNING or above."""

from __future__ import annotations

import logging
import re

import pytest

from adapter.demo.world import default_world
from tests.conftest import RunningServer, free_port
from tests.stores import BACKENDS, engine_for

WORLD = default_world()
# Personnummer and names of the demo world's patients (staff names are not patient data, but are kept out too).
PERSONAL = tuple(p.number for p in WORLD.patients) + tuple(
    name for p in WORLD.patients for name in (p.given, p.family)) + tuple(
    f"{s.given} {s.family}" for s in WORLD.staff)


def leaks(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    """The personal values found in `text` as whole words ("Per" is a name, "timePeriod" is not)."""
    return [v for v in (*PERSONAL, *extra) if v and re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text)]


def loud_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture(scope="session", params=BACKENDS)
def demo_engine(request, tmp_path_factory):
    from adapter.demo.generate import generate
    from adapter.ingest import ingest

    folder = tmp_path_factory.mktemp("hostile")
    generate(folder / "demo")
    engine = engine_for(request, folder, "demo")
    assert not ingest(engine, [folder / "demo"]).rejected
    return engine


@pytest.fixture(scope="session")
def producer(demo_engine):
    """The real producer app (plain HTTP on loopback: the hostile input is about the SOAP layer)."""
    from adapter.config import Settings
    from adapter.producer.app import create_app

    settings = Settings(store_url="sqlite://", max_request_bytes=64 * 1024, max_request_seconds=2.0)
    with RunningServer(create_app(demo_engine, settings), free_port()) as srv:
        yield srv
