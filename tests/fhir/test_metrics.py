"""Intake writes, observed: FHIR endpoint writes over real HTTP and `npo-adapter ingest` move the intake counters
(channel, interaction, outcome, status), and the engagement outbox gauges follow; labels never name a resource."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from adapter import ops
from adapter.cli import app
from adapter.config import Settings
from adapter.ingest import ingest
from adapter.metrics import StateCollector
from tests.fhir.helpers import Fhir, condition, put_entry, support_resources, support_transaction, transaction
from tests.samples import PNR, bundle
from tests.scrape import label_values, listener, scrape, value


def test_fhir_writes_and_ingest_move_the_intake_counters(store, server_for, tmp_path):
    srv = server_for(store)
    probe, readiness, certificates = ops.producer_health(store, Settings())
    with listener(readiness, StateCollector(probe, certificates)) as url:
        before = scrape(url)
        fhir = Fhir(srv.url)
        assert fhir.post("", support_transaction()).status_code == 200
        assert fhir.post("", transaction(put_entry(condition("m-1", identifier="m-dia-1")))).status_code == 200
        assert fhir.put("Condition/m-2", condition("m-2", identifier="m-dia-2")).status_code == 201
        assert fhir.put("Condition/m-2", condition("m-2", identifier="m-dia-2")).status_code == 200  # unchanged
        bad = condition("m-3", identifier="m-dia-3")
        del bad["recordedDate"]
        assert fhir.put("Condition/m-3", bad).status_code == 422
        assert fhir.delete("Condition/m-1").status_code == 204
        middle = scrape(url)

        (tmp_path / "in.json").write_bytes(orjson.dumps(bundle(condition("m-4", identifier="m-dia-4"))))
        assert not ingest(store, [tmp_path / "in.json"]).rejected
        after = scrape(url)

    def moved(text: str, old: str, name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(old, name, **labels)

    fhir_writes = "npo_intake_entries_total"
    assert moved(middle, before, fhir_writes, channel="fhir", interaction="transaction", status="201") \
        == len(support_transaction()["entry"]) + 1
    assert moved(middle, before, fhir_writes, channel="fhir", interaction="update", outcome="created",
                 status="201") == 1
    assert moved(middle, before, fhir_writes, channel="fhir", interaction="update", outcome="unchanged",
                 status="200") == 1
    assert moved(middle, before, fhir_writes, channel="fhir", interaction="update", outcome="rejected",
                 status="422") == 1
    assert moved(middle, before, fhir_writes, channel="fhir", interaction="delete", outcome="deleted") == 1
    assert moved(middle, before, "npo_fhir_requests_total", interaction="transaction", status="200") == 2
    assert moved(middle, before, "npo_fhir_requests_total", interaction="update", status="422") == 1
    assert moved(middle, before, "npo_fhir_request_seconds_count", interaction="update") == 3
    assert moved(after, middle, fhir_writes, channel="ingest", interaction="file", outcome="created") == 1
    assert moved(after, middle, fhir_writes, channel="fhir") == 0
    # the writes queued engagement changes: the outbox gauges, computed at the scrape
    assert value(after, "npo_ei_outbox_rows", state="pending") >= 1
    assert value(after, "npo_ei_outbox_oldest_pending_age_seconds") >= 0
    labels = label_values(after)
    assert not labels & {"m-1", "m-2", "m-3", "m-4", "m-dia-1", PNR}


def test_ingest_writes_its_counters_for_the_textfile_collector(tmp_path):
    """A one-off command has no listener to scrape: `--metrics-file` leaves its counters for node_exporter's textfile
    collector, also when the run rejected something (exit 2)."""
    bad = condition("t-2", identifier="t-dia-2")
    del bad["recordedDate"]
    data = bundle(*support_resources(), condition("t-1", identifier="t-dia-1"), bad)
    (tmp_path / "in.json").write_bytes(orjson.dumps(data))
    out = tmp_path / "npo_ingest.prom"
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "in.json"), "--store",
                                      f"sqlite:///{tmp_path}/s.db", "--metrics-file", str(out)])
    assert result.exit_code == 2, result.output
    text = out.read_text()
    assert value(text, "npo_intake_entries_total", channel="ingest", interaction="file", outcome="created") >= 2
    assert value(text, "npo_intake_entries_total", channel="ingest", interaction="file", outcome="rejected",
                 status="422") >= 1
