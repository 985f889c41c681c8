"""The staff page, observed: its own health endpoints and metrics listener, and the correlation id of a page
request carried to every producer the overview asks."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx

from adapter import correlation, ops
from adapter.consumer.staff_settings import DemoUser
from adapter.metrics import StateCollector
from adapter.store.engine import open_store
from adapter.ui import create_ui_app
from tests.consumer.world import EMERGENCY_DEPARTMENT, TOLVAN
from tests.scrape import listener, scrape, value
from tests.ui.conftest import UiServer


def test_ui_health_metrics_and_the_page_request_s_correlation_id_reaches_the_producers(world, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    config = replace(world.config, demo_user=DemoUser("SE2321000016-DEMO", "Demo Användare"))
    store = open_store(f"sqlite:///{tmp_path}/ui.db")
    probe, readiness, certificates = ops.consumer_health(store, config)
    with UiServer(create_ui_app(config, store, readiness=readiness)) as srv, \
            listener(readiness, StateCollector(probe, certificates)) as ops_url, \
            httpx.Client(base_url=srv.url, trust_env=False, timeout=20) as page:
        assert page.get("/health/live").json() == {"status": "live"}
        assert page.get("/health/ready").json()["status"] == "ready"
        before = scrape(ops_url)
        page.get("/login", follow_redirects=True)
        csrf = page.get("/api/session").json()["csrf_token"]
        answer = page.post("/api/overview", json={"patient": TOLVAN, "care_unit": EMERGENCY_DEPARTMENT},
                           headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        made = answer.headers[correlation.HEADER]
        after = scrape(ops_url)
    assert value(after, "npo_consumer_overview_seconds_count") - value(before, "npo_consumer_overview_seconds_count") \
        == 1
    answered = [r.getMessage() for r in caplog.records if r.name == "adapter.producer" and " OK " in r.getMessage()]
    assert answered and all(f"correlation id {made})" in line for line in answered)
