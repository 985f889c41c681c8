"""Property test of ingest end to end: randomly broken FHIR resources among good ones never stop a run, the good
ones are stored, and no rejection reason or log record at WARNING or above carries personal data."""

from __future__ import annotations

import logging

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.ingest import ingest
from adapter.store.engine import open_store
from tests.hostile.conftest import leaks, loud_records
from tests.hostile.strategies import demo_resources, mutated_resource


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(broken=st.lists(mutated_resource(), min_size=1, max_size=5))
def test_ingest_survives_broken_resources(tmp_path_factory, caplog, broken):
    caplog.clear()
    caplog.set_level(logging.INFO)
    supporting, clinical = demo_resources()
    good = clinical[0]
    folder = tmp_path_factory.mktemp("fhir")
    data = {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in (*supporting, *broken, good)]}
    (folder / "in.json").write_bytes(orjson.dumps(data))
    engine = open_store(f"sqlite:///{folder}/store.db")
    report = ingest(engine, [folder / "in.json"])
    assert report.read == len(data["entry"])
    assert sum(report.published.values()) >= 1 or good["id"] in {b.get("id") for b in broken}
    for rejection in report.rejected:
        assert not leaks(rejection.reason), rejection.reason
    for record in loud_records(caplog):
        assert not leaks(record.getMessage()), record.getMessage()
    engine.dispose()
