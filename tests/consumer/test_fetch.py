"""The consumer's fan-out against real producers over mTLS: per-source status, one slow or dead producer
never hides the others, deduplication, no repeat after a SOAP fault."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest
from lxml import etree

from adapter.consumer.fetch import FaultMemory, FetchSettings, Outcome, Source, client_context, fetch_all, merge
from adapter.gateway.tls import TlsContexts
from adapter.ingest import ingest
from adapter.rivta.contracts import GET_DIAGNOSIS, INFORMATION_TYPES
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.store.engine import open_store
from tests.conftest import free_port
from tests.consumer.producers import PNR, REGION_SOURCE, SOURCE, SlowProducer, municipal_store, region_store
from tests.gateway.conftest import TlsServer, tls_files
from tests.samples import bundle, condition, support_bundle
from tests.ui.test_stream_attacks import swapping_producer


@pytest.fixture(scope="module")
def producers(tmp_path_factory, pki):
    folder = tmp_path_factory.mktemp("producers")
    with TlsServer(municipal_store(folder), TlsContexts(tls_files(pki))) as m, \
            TlsServer(region_store(folder), TlsContexts(tls_files(pki))) as r:
        yield {"municipality": Source("Exempelby kommun", m.url, SOURCE),
               "region": Source("Region Exempel", r.url, REGION_SOURCE)}


def run(pki, sources, settings=FetchSettings(), faults=None):
    c = pki.client("platform")

    async def go():
        async with httpx.AsyncClient(verify=client_context(str(c.cert), str(c.key), str(pki.ca_bundle)),
                                     trust_env=False) as client:
            return await fetch_all(client, sources, PNR, "1.2.752.129.2.1.3.1", settings, faults)

    return asyncio.run(go())


def header(record, name: str) -> str | None:
    return record.findtext(f"{{{GD.core_ns}}}diagnosisHeader/{{{GD.core_ns}}}{name}")


def by(results, source_name, contract="GetDiagnosis:2"):
    return next(r for r in results if r.source.name == source_name and r.contract.key == contract)


def test_all_contracts_from_all_sources_with_per_source_status(pki, producers):
    results = run(pki, list(producers.values()))
    assert len(results) == 2 * len(INFORMATION_TYPES)
    assert by(results, "Exempelby kommun").outcome is Outcome.DATA
    assert by(results, "Region Exempel").outcome is Outcome.DATA
    assert by(results, "Region Exempel", "GetCarePlans:2").outcome is Outcome.NONE
    merged = merge(results)
    assert len(merged["GetDiagnosis:2"]) == 3


def test_same_records_through_two_routes_are_deduplicated(pki, producers):
    twice = [producers["municipality"], Source("again", producers["municipality"].url, SOURCE)]
    results = run(pki, twice)
    assert len([r for r in results if r.contract is GET_DIAGNOSIS for _ in r.records]) == 4
    assert len(merge(results)["GetDiagnosis:2"]) == 2


def test_dead_and_slow_producers_do_not_hide_the_others(pki, producers):
    dead = Source("Nere", f"https://127.0.0.1:{free_port()}", "SE0000000000-DEAD")
    with SlowProducer(delay=30) as slow:
        sluggish = Source("Långsam", slow.url, "SE0000000000-SLOW")
        started = time.monotonic()
        results = run(pki, [producers["municipality"], dead, sluggish], FetchSettings(per_source_timeout=1.5,
                                                                                      deadline=3))
        elapsed = time.monotonic() - started
    assert elapsed < 5
    assert by(results, "Exempelby kommun").outcome is Outcome.DATA
    assert by(results, "Nere").outcome is Outcome.FAILED and "connect" in by(results, "Nere").reason
    assert by(results, "Långsam").outcome is Outcome.FAILED and "1.5 s" in by(results, "Långsam").reason
    for r in results:
        assert PNR not in r.reason


def test_overall_deadline_cuts_waiting_short(pki, producers):
    with SlowProducer(delay=30) as slow:
        results = run(pki, [Source("Långsam", slow.url, "SE0000000000-SLOW"), producers["region"]],
                      FetchSettings(per_source_timeout=27, deadline=1))
    assert by(results, "Långsam").outcome is Outcome.FAILED and "deadline" in by(results, "Långsam").reason
    assert by(results, "Region Exempel").outcome is Outcome.DATA


def test_result_error_is_reported_and_a_soap_fault_is_not_repeated_for_five_minutes(pki, producers):
    unauthorised = Source("Fel adress", producers["municipality"].url, "SE0000000000-NOPE")
    faults = FaultMemory()
    results = run(pki, [unauthorised], faults=faults)
    assert by(results, "Fel adress").outcome is Outcome.NONE  # unknown logical address: empty OK answer

    consumer2 = pki.client("consumer2")  # not authorised for the region's logical address -> VP007 fault

    async def go():
        async with httpx.AsyncClient(verify=client_context(str(consumer2.cert), str(consumer2.key),
                                                           str(pki.ca_bundle)), trust_env=False) as client:
            first = await fetch_all(client, [producers["region"]], PNR, "1.2.752.129.2.1.3.1", faults=faults)
            second = await fetch_all(client, [producers["region"]], PNR, "1.2.752.129.2.1.3.1", faults=faults)
            return first, second

    first, second = asyncio.run(go())
    assert by(first, "Region Exempel").reason.startswith("SOAP fault (log id ")
    assert "5 minutes" in by(second, "Region Exempel").reason


def test_a_source_claiming_another_source_systems_records_is_refused_and_cannot_shadow_them(pki, producers,
                                                                                          tmp_path):
    """A journal system at its own address answers with records that claim the municipality's source system and
    document ids (other diagnoses): answering first, before the fix its records took the real ones' place in the
    overview. Its answer is refused with a reason naming no value; the municipality's own records are kept."""
    evil = "SE0000000000-EVIL"
    fake = [e["resource"] for e in support_bundle()["entry"]] + [
        condition("c-fake", identifier="d-home", staff=0, code=("F20.9", "Schizofreni, ospecificerad"))]
    (tmp_path / "fake.json").write_bytes(orjson.dumps(bundle(*fake)))
    fake_store = open_store(f"sqlite:///{tmp_path}/fake.db")
    assert not ingest(fake_store, [tmp_path / "fake.json"]).rejected
    app = swapping_producer(fake_store, evil, SOURCE)  # asked as EVIL, it answers what its store holds for SOURCE
    with TlsServer(None, TlsContexts(tls_files(pki)), app=app) as hostile:
        results = run(pki, [Source("Elak journal", hostile.url, evil), producers["municipality"]])
    refused = by(results, "Elak journal")
    assert refused.outcome is Outcome.FAILED
    assert refused.reason == ("the answer holds records of another source system than the one asked (a source "
                              "system's address answers for that system alone)")
    kept = merge(results)["GetDiagnosis:2"]
    assert sorted(header(r, "documentId") for r in kept) == ["d-home", "d-housing"]
    assert all(b"F20.9" not in etree.tostring(r) for r in kept)


def test_an_aggregating_address_answers_for_many_source_systems(pki, tmp_path):
    """Through an aggregating address (the national one, or a region's marked `aggregating`) an answer holds many
    source systems' records: taken as they come."""
    hub = "SE2321000016-HUB1"
    app = swapping_producer(region_store(tmp_path), hub, REGION_SOURCE)
    with TlsServer(None, TlsContexts(tls_files(pki)), app=app) as region_hub:
        plain = run(pki, [Source("Regionens nav", region_hub.url, hub)])
        marked = run(pki, [Source("Regionens nav", region_hub.url, hub, aggregating=True)])
    assert by(plain, "Regionens nav").outcome is Outcome.FAILED
    assert by(marked, "Regionens nav").outcome is Outcome.DATA
    assert [header(r, "sourceSystemHSAId") for r in by(marked, "Regionens nav").records] == [REGION_SOURCE]
