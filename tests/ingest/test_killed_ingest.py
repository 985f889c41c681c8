"""An ingest killed midway (SIGKILL, a real process) leaves whole chunks: every resource it stored has all its
records and its engagement change, and running it again finishes the job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

from sqlalchemy import func, select

from adapter.ingest import BATCH, ingest
from adapter.store.engine import open_store
from adapter.store.tables import ei_outbox, fhir_resources, records
from tests.samples import REPO, condition, support_bundle

CONDITIONS = 12 * BATCH  # enough to be killed after the first chunk and long before the last


def stored_state(engine) -> tuple[set[str], Counter]:
    with engine.connect() as conn:
        stored = set(conn.execute(select(fhir_resources.c.resource_id).where(
            fhir_resources.c.resource_type == "Condition", fhir_resources.c.deleted.is_(False))).scalars())
        per_resource = Counter(conn.execute(select(records.c.resource_id).where(
            records.c.resource_type == "Condition")).scalars())
    return stored, per_resource


def test_killed_ingest_leaves_whole_chunks_and_a_rerun_finishes(tmp_path, store_urls, backend):
    url = store_urls.url(backend)
    engine = open_store(url)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a-support.json").write_text(json.dumps(support_bundle()))
    with (tmp_path / "in" / "b-conditions.ndjson").open("w") as f:
        for i in range(CONDITIONS):
            f.write(json.dumps(condition(f"c-k{i}", identifier=f"d-k{i}")) + "\n")
    cmd = [sys.executable, "-m", "adapter.cli", "ingest", str(tmp_path / "in"), "--store", url]
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not stored_state(engine)[0]:  # until the first chunk of conditions is committed
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            assert time.monotonic() < deadline, "no chunk committed in time"
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == -signal.SIGKILL

    stored, per_resource = stored_state(engine)
    assert 0 < len(stored) < CONDITIONS, "killed after the end: the test proves nothing (make the input larger)"
    assert len(stored) % BATCH == 0  # whole chunks only
    assert set(per_resource) == stored and set(per_resource.values()) == {1}  # each stored one with its record
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ei_outbox)).scalar_one() > 0  # and its engagement

    again = ingest(engine, [tmp_path / "in"])
    assert again.rejected == []
    assert sum(again.published.values()) == CONDITIONS - len(stored)  # the rest, the stored ones unchanged
    stored, per_resource = stored_state(engine)
    assert len(stored) == CONDITIONS and set(per_resource) == stored and set(per_resource.values()) == {1}
    engine.dispose()


def test_a_large_ingest_into_postgresql_keeps_the_planner_statistics_up_to_date(store_urls, tmp_path):
    """Filling an empty store, the tables' statistics said they were nearly empty until autovacuum came round, and
    each batch's document-id check was planned as a walk over every record of the source (bench/ingest_rate.py:
    backend CPU grew with the square of the input). Ingest analyses them as it goes."""
    engine = open_store(store_urls.url("postgresql"))
    try:
        support = support_bundle()
        conditions = [condition(f"c-{i}", identifier=f"d-{i}") for i in range(2 * BATCH + 1)]
        (tmp_path / "in.json").write_text(json.dumps({**support, "entry": [
            *support["entry"], *({"resource": c} for c in conditions)]}))
        assert not ingest(engine, [tmp_path / "in.json"]).rejected
        with engine.connect() as conn:
            analysed = conn.exec_driver_sql(
                "SELECT relname, analyze_count FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                "AND relname IN ('records', 'fhir_resources')").all()
        assert {name for name, count in analysed if count >= 2} == {"records", "fhir_resources"}, analysed
    finally:
        engine.dispose()
