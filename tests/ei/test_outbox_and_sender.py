"""Engagement-index updates end to end: ingest -> outbox (same transaction) -> sender -> the stand-in EI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from adapter.demo.generate import generate
from adapter.demo.world import default_world
from adapter.ei.outbox import queue
from adapter.ei.sender import Sender, SenderSettings
from adapter.ingest import ingest
from adapter.rivta.contracts import CONTRACTS
from adapter.store.engine import open_store
from adapter.store.keys import RecordKey
from adapter.store.tables import ei_outbox
from tests.ei.conftest import serve_stub
from tests.samples import bundle, condition, support_bundle

WORLD = default_world()
EI_ADDRESS = "5565594230"
CATEGORIES = {cat for contract in CONTRACTS for cat in contract.ei_categorizations}  # each in the demo


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def sender(engine, url: str, clock=None, **overrides) -> Sender:
    settings = SenderSettings(url=url, logical_address=EI_ADDRESS, **{"min_interval": 0, **overrides})
    return Sender(engine, settings, httpx.AsyncClient(trust_env=False, timeout=5), clock or Clock())


def drain(s: Sender, **kw):
    async def go():
        try:
            return await s.drain(**kw)
        finally:
            await s.client.aclose()
    return asyncio.run(go())


def keys(transactions) -> set[tuple]:
    return {(t.engagement.registered_resident_identification, t.engagement.categorization, t.delete_flag)
            for t in transactions}


@pytest.fixture
def demo_store(tmp_path, new_store):
    generate(tmp_path / "demo")
    engine = new_store()
    assert not ingest(engine, [tmp_path / "demo"]).rejected
    return engine


def test_ingest_sends_exactly_one_engagement_per_patient_kind_and_care_giver(demo_store):
    with serve_stub() as ei:
        report = drain(sender(demo_store, ei.url))
        stored = ei.stub.stored()
        calls = ei.stub.accepted_calls()
    expected = {(p.number, c) for p in WORLD.patients for c in CATEGORIES}
    assert {(e.registered_resident_identification, e.categorization) for e in stored} == expected
    assert report.sent == len(expected) and report.calls == len(calls)
    for e in stored:
        assert e.logical_address == e.source_system == WORLD.source_system
        assert e.data_controller == WORLD.care_giver.hsa_id
        assert e.business_object_instance_identifier == "NA" and e.clinical_process_interest_id == "NA"
    # strictly per source system and domain: every call holds one service domain only
    for call in calls:
        assert len({t.engagement.service_domain for t in call}) == 1
        assert len({t.engagement.key() for t in call}) == len(call)


def test_change_and_last_record_gone_give_update_and_delete_flag(tmp_path, new_store):
    engine = new_store()
    support = tmp_path / "support.json"
    support.write_bytes(orjson.dumps(support_bundle()))
    (tmp_path / "a.json").write_bytes(orjson.dumps(bundle(condition("c1", identifier="d1"),
                                                          condition("c2", identifier="d2"))))
    ingest(engine, [support, tmp_path / "a.json"])
    clock = Clock()
    with serve_stub() as ei:
        drain(sender(engine, ei.url, clock))
        assert keys(ei.stub.accepted_calls()[-1]) == {("191212121212", "dia", False)}
        first = ei.stub.stored()[0].most_recent_content

        # a change: the engagement is updated (after the 5-minute interval)
        time.sleep(1.1)
        (tmp_path / "b.json").write_bytes(orjson.dumps(condition("c1", identifier="d1", code=("I10.9", "Hypertoni"))))
        ingest(engine, [tmp_path / "b.json"])
        clock.now += timedelta(minutes=5, seconds=1)
        drain(sender(engine, ei.url, clock))
        assert keys(ei.stub.accepted_calls()[-1]) == {("191212121212", "dia", False)}
        assert ei.stub.stored()[0].most_recent_content > first

        # one of two records gone: still engaged; the last gone: deleteFlag
        (tmp_path / "c.json").write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Condition/c1"}}]}))
        ingest(engine, [tmp_path / "c.json"])
        clock.now += timedelta(minutes=6)
        drain(sender(engine, ei.url, clock))
        assert keys(ei.stub.accepted_calls()[-1]) == {("191212121212", "dia", False)}
        (tmp_path / "d.json").write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Condition/c2"}}]}))
        ingest(engine, [tmp_path / "d.json"])
        clock.now += timedelta(minutes=6)
        drain(sender(engine, ei.url, clock))
        assert keys(ei.stub.accepted_calls()[-1]) == {("191212121212", "dia", True)}
        assert ei.stub.stored() == []


def test_reservnummer_records_give_no_engagement(tmp_path, new_store):
    engine = new_store()
    support = support_bundle()
    support["entry"].append({"resource": {"resourceType": "Patient", "id": "res-1", "identifier": [
        {"system": "urn:oid:1.2.752.97.3.1.3", "value": "99000000001X"}]}})
    (tmp_path / "s.json").write_bytes(orjson.dumps(support))
    (tmp_path / "r.json").write_bytes(orjson.dumps(condition("c-res", identifier="d-res", patient="res-1")))
    report = ingest(engine, [tmp_path / "s.json", tmp_path / "r.json"])
    assert report.published["GetDiagnosis:2"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(ei_outbox)).all() == []


def test_changes_to_one_engagement_coalesce_and_wait_five_minutes(tmp_path, new_store):
    engine = new_store()
    (tmp_path / "s.json").write_bytes(orjson.dumps(support_bundle()))
    ingest(engine, [tmp_path / "s.json"])
    clock = Clock()
    with serve_stub() as ei:
        for version in range(3):  # three changes before the first send: one engagement, one transaction
            changed = condition("c1", identifier="d1", onset=f"202{version}-01-01")
            (tmp_path / "c.json").write_bytes(orjson.dumps(changed))
            ingest(engine, [tmp_path / "c.json"])
        drain(sender(engine, ei.url, clock))
        assert [len(c) for c in ei.stub.accepted_calls()] == [1]
        for minutes in (1, 3, 4):  # further changes inside the 5 minutes wait
            changed = condition("c1", identifier="d1", onset=f"2023-0{minutes}-01")
            (tmp_path / "c.json").write_bytes(orjson.dumps(changed))
            ingest(engine, [tmp_path / "c.json"])
            clock.now += timedelta(minutes=1)
            assert drain(sender(engine, ei.url, clock)).calls == 0
        clock.now += timedelta(minutes=2)
        assert drain(sender(engine, ei.url, clock)).sent == 1
        assert [len(c) for c in ei.stub.accepted_calls()] == [1, 1]


def synthetic_changes(engine, n: int) -> None:
    now = datetime.now(UTC)
    keys = [RecordKey(f"19{i % 100:02d}0101{i:04d}"[:12], "1.2.752.129.2.1.3.1", "GetDiagnosis:2", "dia",
                      WORLD.source_system, WORLD.care_giver.hsa_id) for i in range(n)]
    with engine.begin() as conn:
        queue(conn, [(k, False) for k in keys], now)


def test_batches_of_at_most_1000(tmp_path, new_store):
    engine = new_store()
    synthetic_changes(engine, 2500)
    with serve_stub() as ei:
        report = drain(sender(engine, ei.url))
        sizes = [len(c) for c in ei.stub.accepted_calls()]
    assert sizes == [1000, 1000, 500] and report.sent == 2500


def test_stand_in_failing_for_a_while_delays_but_loses_nothing(demo_store):
    with serve_stub() as ei:
        ei.stub.set_mode("down", calls=2)
        assert drain(sender(demo_store, ei.url)).errors  # the first attempt fails
        ei.stub.set_mode("fault", calls=1)  # a SOAP fault without an EI code: retried, not given up
        assert drain(sender(demo_store, ei.url)).errors
        report = drain(sender(demo_store, ei.url))
        assert not report.errors
        assert len(ei.stub.stored()) == len(WORLD.patients) * len(CATEGORIES)


def test_sender_killed_mid_batch_resends_the_whole_set_after_restart(tmp_path, backend, store_urls):
    store_url = store_urls.url(backend)
    engine = open_store(store_url)
    synthetic_changes(engine, 1500)
    state = tmp_path / "ei-state.json"
    port = __import__("tests.conftest", fromlist=["free_port"]).free_port()
    stub = subprocess.Popen([sys.executable, "-m", "adapter.stubs.engagement_index", "--port", str(port),
                             "--plain-http", "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NPO_EI_URL": base + "/itintegration/engagementindex/Update/1/rivtabp21",
           "NPO_EI_MIN_INTERVAL": "0"}
    cwd = Path(__file__).resolve().parents[2]
    try:
        _wait(base)
        httpx.post(base + "/_stub/mode", json={"mode": "slow", "delay": 30, "calls": 1})
        sync = subprocess.Popen([sys.executable, "-m", "adapter.cli", "ei-sync", "--store", store_url], env=env,
                                cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while httpx.get(base + "/_stub/mode").json()["mode"] == "slow":  # until the slow call has arrived
            assert time.monotonic() < deadline, "ei-sync never called the stand-in"
            time.sleep(0.1)
        time.sleep(0.3)
        sync.send_signal(signal.SIGKILL)  # killed while its first batch is in flight
        sync.wait(timeout=10)
        httpx.post(base + "/_stub/mode", json={"mode": "ok"})
        done = subprocess.run([sys.executable, "-m", "adapter.cli", "ei-sync", "--store", store_url], env=env,
                              cwd=cwd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        calls = httpx.get(base + "/_stub/calls").json()
        stored = httpx.get(base + "/_stub/engagements").json()
    finally:
        stub.terminate()
        stub.wait(timeout=10)
    assert len(stored) == 1500
    for call in calls:
        call_keys = [tuple(sorted(t["engagement"].items())) for t in call["transactions"]]
        assert len(call_keys) == len(set(call_keys)) <= 1000
    with engine.connect() as conn:
        assert {r.state for r in conn.execute(select(ei_outbox.c.state))} == {"sent"}


def _wait(base: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(base + "/health", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("stand-in EI did not start")


def test_calls_are_paced(tmp_path, new_store):
    engine = new_store()
    synthetic_changes(engine, 30)
    with serve_stub() as ei:
        started = time.monotonic()
        report = drain(sender(engine, ei.url, batch_size=10, min_interval=0.4))
        elapsed = time.monotonic() - started
    assert report.calls == 3 and elapsed >= 0.8


def test_wrong_logical_address_ei003_sets_nothing_aside_and_is_retried(tmp_path, new_store):
    """EI003 refuses the call (the Update's LogicalAddress), not an engagement in it: splitting the batch would
    only set every engagement aside one by one. The rows stay pending, the reason is shown, and they go out as
    soon as the address is right."""
    from adapter.ei.run import status
    from adapter.stubs.engagement_index import EngagementIndexStub

    engine = new_store()
    synthetic_changes(engine, 5)
    with serve_stub(EngagementIndexStub(owner="SE0000000000-OTHR")) as ei:  # EI003: wrong logical address
        report = drain(sender(engine, ei.url))
        assert report.failed == 0 and report.set_aside == [] and len(report.errors) == 1
        assert "EI003" in report.errors[0] and "NPO_EI_LOGICAL_ADDRESS" in report.errors[0]
        assert len(ei.stub.calls) == 1  # no bisecting
    st = status(engine)
    assert st["failed"] == 0 and st["pending"] == 5 and st["retrying"] == 5
    with serve_stub() as ei:  # the address fixed
        assert drain(sender(engine, ei.url)).sent == 5
        assert len(ei.stub.stored()) == 5


def test_the_pending_lookup_goes_by_resident_not_through_every_pending_row(tmp_path):
    """SQLite planned the lookup of a batch's pending rows along ix_ei_outbox_state, walking every pending row of the
    store for each batch of an ingest (quadratic in a large first load)."""
    from adapter.ei.outbox import _PENDING

    engine = open_store(f"sqlite:///{tmp_path}/plan.db")
    with engine.connect() as conn:
        sql = _PENDING.params(residents=["191212121212", "191212121213"]).compile(
            conn, compile_kwargs={"literal_binds": True}).string
        plan = " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    engine.dispose()
    assert "ix_ei_outbox_key" in plan, plan
