"""One bad engagement does not park a call: the sender finds what the index refuses on its own (bisecting the
batch), sets only that aside, and an operator puts it back with `ei-status --requeue` once the cause is fixed.
Against the stand-in over real HTTP, on SQLite and PostgreSQL; the CLI as an operator runs it."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from adapter.config import Settings
from adapter.ei.outbox import queue, requeue
from adapter.ei.run import sender_settings, status
from adapter.ingest import ingest
from adapter.store.keys import RecordKey
from adapter.store.tables import ei_outbox
from adapter.stubs.engagement_index import EngagementIndexStub, ErrorStyle
from tests.ei.conftest import serve_stub
from tests.ei.test_outbox_and_sender import WORLD, Clock, drain, sender
from tests.samples import PNR, condition, support_bundle

REPO = Path(__file__).resolve().parents[2]
# A personnummer-typed identity the TKB's pattern admits but the deployed national EI refuses (EI001): a journal
# system that typed a local reserve number as a personnummer.
BAD = "19121212A123"
GOOD = [f"19{i:02d}0101{i:04d}" for i in range(40)]
PERSONNUMMER_SYSTEM = "http://electronichealth.se/identifier/personnummer"


def add(engine, numbers, *, now: datetime | None = None) -> None:
    keys = [RecordKey(number, "1.2.752.129.2.1.3.1", "GetDiagnosis:2", "dia", WORLD.source_system,
                      WORLD.care_giver.hsa_id) for number in numbers]
    with engine.begin() as conn:
        queue(conn, [(k, False) for k in keys], now or datetime.now(UTC))


def pk_of(engine, resident: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(ei_outbox.c.pk).where(ei_outbox.c.resident == resident,
                                                         ei_outbox.c.state == "failed")).scalar_one()


def residents(stub: EngagementIndexStub) -> set[str]:
    return {e.registered_resident_identification for e in stub.stored()}


@pytest.mark.parametrize("style", list(ErrorStyle))
def test_a_batch_with_one_refused_engagement_sets_aside_only_that_one(new_store, style):
    """The deployed EI answers with a SOAP fault EI001, the TKB's index and Inera's mock with ResultCode ERROR:
    either way the other 40 arrive and only the refused one waits, with the reason and no personnummer."""
    engine = new_store()
    add(engine, GOOD[:20])
    add(engine, [BAD])
    add(engine, GOOD[20:])
    bad_pk = pk_of_pending(engine, BAD)
    with serve_stub(EngagementIndexStub(error_style=style)) as ei:
        report = drain(sender(engine, ei.url))
        assert residents(ei.stub) == set(GOOD)
        calls = ei.stub.calls
        assert drain(sender(engine, ei.url)).calls == 0  # the set-aside one is not resent blindly
    assert report.sent == 40 and report.failed == 1 and not report.errors
    [aside] = report.set_aside
    assert aside.key == bad_pk and aside.categorization == "dia" and not aside.delete_flag
    assert "EI001" in aside.reason and BAD not in aside.reason
    # the halves were resent until the refused one stood alone; no good engagement was ever refused alone
    alone = [c["transactions"][0]["engagement"]["registeredResidentIdentification"] for c in calls
             if c["outcome"] != "OK" and len(c["transactions"]) == 1]
    assert alone == [BAD]
    assert report.calls <= 1 + 2 * math.ceil(math.log2(41))
    st = status(engine)
    assert (st["pending"], st["failed"], st["sent"]) == (0, 1, 40)
    assert st["recent_failures"][0]["key"] == bad_pk and "EI001" in st["recent_failures"][0]["last_error"]


def pk_of_pending(engine, resident: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(ei_outbox.c.pk).where(ei_outbox.c.resident == resident)).scalar_one()


def test_several_refused_engagements_across_batches(new_store):
    engine = new_store()
    bad = ["19121212A123", "19121212B123", "19121212C123"]
    add(engine, GOOD[:5] + bad[:2] + GOOD[5:30] + bad[2:] + GOOD[30:])
    with serve_stub() as ei:
        report = drain(sender(engine, ei.url, batch_size=16))
        assert residents(ei.stub) == set(GOOD)
    assert report.sent == 40 and sorted(a.key for a in report.set_aside) == sorted(pk_of(engine, b) for b in bad)


def test_network_error_while_bisecting_keeps_the_rest_pending(new_store):
    engine = new_store()
    add(engine, GOOD[:10] + [BAD])
    with serve_stub() as ei:
        stub = ei.stub
        original = stub.handle

        def refuse_then_go_down(*args, **kwargs):  # the first call is refused (EI001); then the index is down
            stub.set_mode("down")
            return original(*args, **kwargs)

        stub.handle = refuse_then_go_down  # type: ignore[method-assign]
        report = drain(sender(engine, ei.url))
        stub.handle = original  # type: ignore[method-assign]
        assert report.errors and report.set_aside == [] and report.calls == 2
        st = status(engine)
        assert st["pending"] == 11 and st["failed"] == 0
        stub.set_mode("ok")
        again = drain(sender(engine, ei.url))
        assert again.sent == 10 and [a.key for a in again.set_aside] == [pk_of(engine, BAD)]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapter.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "COLUMNS": "200", **(env or {})})


def journal(tmp_path: Path) -> list[Path]:
    """Two patients' diagnoses from one source system: one with a good personnummer, one with BAD."""
    support = support_bundle()
    support["entry"].append({"resource": {"resourceType": "Patient", "id": "pat-bad", "identifier": [
        {"system": PERSONNUMMER_SYSTEM, "value": BAD}]}})
    (tmp_path / "support.json").write_bytes(orjson.dumps(support))
    (tmp_path / "good.json").write_bytes(orjson.dumps(condition("c-good", identifier="d-good")))
    (tmp_path / "bad.json").write_bytes(orjson.dumps(condition("c-bad", identifier="d-bad", patient="pat-bad")))
    return [tmp_path / "support.json", tmp_path / "good.json", tmp_path / "bad.json"]


def test_ei_sync_exit_status_and_requeue_after_the_fix(tmp_path, new_store):
    engine = new_store()
    assert not ingest(engine, journal(tmp_path)).rejected
    store = engine.url.render_as_string(hide_password=False)
    with serve_stub() as ei:
        env = {"NPO_EI_URL": ei.url, "NPO_EI_MIN_INTERVAL": "0"}
        synced = cli("ei-sync", "--store", store, env=env)
        out = synced.stdout + synced.stderr
        assert synced.returncode == 3, out
        key = pk_of(engine, BAD)
        assert f"set aside {key}: dia at {WORLD.source_system}" in out and "EI001" in out
        assert BAD not in out
        assert residents(ei.stub) == {PNR}

        listed = cli("ei-status", "--store", store)
        assert listed.returncode == 0 and str(key) in listed.stderr and "EI001" in listed.stderr
        assert BAD not in listed.stdout + listed.stderr and "--show-resident" in listed.stderr
        shown = cli("ei-status", "--store", store, "--show-resident")
        assert BAD in shown.stderr

        assert cli("ei-sync", "--store", store, env=env).returncode == 0  # nothing new set aside

        ei.stub.deployed_resident_pattern = False  # the cause fixed (here: the index takes the TKB's pattern)
        requeued = cli("ei-status", "--store", store, "--requeue", str(key))
        assert requeued.returncode == 0, requeued.stderr
        assert f"requeued: 1 ({key})" in requeued.stderr
        assert status(engine)["failed"] == 0
        synced = cli("ei-sync", "--store", store, env=env)
        assert synced.returncode == 0, synced.stderr
        assert residents(ei.stub) == {PNR, BAD}

        assert cli("ei-status", "--store", store, "--requeue", str(key)).returncode == 1  # no longer set aside
        assert cli("ei-status", "--store", store, "--requeue").returncode == 2  # neither KEY nor --all-failed
        assert cli("ei-status", "--store", store, "42").returncode == 2  # KEY without --requeue


def test_ei_sync_exits_1_when_the_index_is_unreachable(tmp_path, new_store):
    engine = new_store()
    assert not ingest(engine, journal(tmp_path)[:2]).rejected
    store = engine.url.render_as_string(hide_password=False)
    with serve_stub() as ei:
        ei.stub.set_mode("down")
        synced = cli("ei-sync", "--store", store, env={"NPO_EI_URL": ei.url, "NPO_EI_MIN_INTERVAL": "0"})
    assert synced.returncode == 1 and "not delivered" in synced.stderr


def test_a_refused_delete_is_requeued_as_a_delete(tmp_path, new_store):
    engine = new_store()
    assert not ingest(engine, journal(tmp_path)).rejected
    clock = Clock()
    with serve_stub(EngagementIndexStub(deployed_resident_pattern=False)) as ei:
        assert drain(sender(engine, ei.url, clock)).sent == 2
        assert BAD in residents(ei.stub)

        ei.stub.deployed_resident_pattern = True  # the index turns strict, then the record goes
        (tmp_path / "gone.json").write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Condition/c-bad"}}]}))
        assert not ingest(engine, [tmp_path / "gone.json"]).rejected
        clock.now += timedelta(minutes=6)
        report = drain(sender(engine, ei.url, clock))
        [aside] = report.set_aside
        assert aside.delete_flag

        ei.stub.deployed_resident_pattern = False
        with engine.begin() as conn:
            done = requeue(conn, None)
        assert done.requeued == [aside.key] and not done.superseded
        clock.now += timedelta(minutes=6)
        assert drain(sender(engine, ei.url, clock)).sent == 1
        last = ei.stub.accepted_calls()[-1]
        assert [(t.engagement.registered_resident_identification, t.delete_flag) for t in last] == [(BAD, True)]
        assert residents(ei.stub) == {PNR}


def test_requeue_sends_only_the_newest_state_of_an_engagement(new_store):
    engine = new_store()
    add(engine, [BAD])
    with serve_stub() as ei:
        assert len(drain(sender(engine, ei.url)).set_aside) == 1
        add(engine, [BAD, GOOD[0]])  # the journal changed since: a newer state of the same engagement is pending
        report = drain(sender(engine, ei.url))
        assert len(report.set_aside) == 1  # the newer state refused too; the older set-aside state went
        with engine.connect() as conn:
            assert len(conn.execute(select(ei_outbox).where(ei_outbox.c.resident == BAD)).all()) == 1
        add(engine, [BAD])  # yet another change, pending while the set-aside one is requeued
        with engine.begin() as conn:
            done = requeue(conn, None)
        assert done.requeued == [] and len(done.superseded) == 1  # the pending change carries the newest state
        ei.stub.deployed_resident_pattern = False
        assert drain(sender(engine, ei.url)).sent == 1
        assert residents(ei.stub) == {BAD, GOOD[0]}
    st = status(engine)
    assert st["failed"] == 0 and st["pending"] == 0


def test_delivery_settles_an_older_set_aside_state(new_store):
    engine = new_store()
    add(engine, [BAD])
    with serve_stub() as ei:
        drain(sender(engine, ei.url))
        assert status(engine)["failed"] == 1
        ei.stub.deployed_resident_pattern = False
        add(engine, [BAD])  # a newer change goes out by itself: the set-aside state is settled by it
        assert drain(sender(engine, ei.url)).sent == 1
    assert status(engine)["failed"] == 0


def test_sent_rows_are_purged_after_the_retention(new_store, monkeypatch):
    engine = new_store()
    add(engine, GOOD[:3] + [BAD])
    clock = Clock()
    with serve_stub() as ei:
        assert drain(sender(engine, ei.url, clock)).sent == 3
        clock.now += timedelta(days=7) - timedelta(seconds=1)
        assert drain(sender(engine, ei.url, clock)).purged == 0
        clock.now += timedelta(seconds=2)
        add(engine, [GOOD[0]], now=clock.now)  # a change that waits: pending rows are never purged
        ei.stub.set_mode("down")
        assert drain(sender(engine, ei.url, clock)).purged == 3
    st = status(engine)
    assert (st["sent"], st["pending"], st["failed"]) == (0, 1, 1)  # nor are set-aside ones

    monkeypatch.setenv("NPO_EI_RETENTION_DAYS", "1.5")
    monkeypatch.setenv("NPO_EI_URL", "http://127.0.0.1:1/x")
    assert sender_settings(Settings()).retention == 1.5 * 86400


def test_the_per_key_interval_outlasts_a_short_retention(new_store):
    engine = new_store()
    add(engine, GOOD[:1])
    clock = Clock()
    with serve_stub() as ei:
        drain(sender(engine, ei.url, clock, retention=0))
        add(engine, GOOD[:1], now=clock.now)
        clock.now += timedelta(minutes=1)
        report = drain(sender(engine, ei.url, clock, retention=0))
        assert report.purged == 0 and report.calls == 0  # the last send still counts for the 5 minutes


def test_the_readme_table_lists_every_ei_setting():
    rows = [line for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| `NPO_EI_")]
    listed = {name for line in rows for name in line.split("|")[1].replace("`", "").replace(",", " ").split()}
    settings = {f"NPO_{name.upper()}" for name in Settings.model_fields if name.startswith("ei_")}
    assert settings == listed
