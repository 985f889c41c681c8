"""The consumer for hospital staff, end to end: producers over mTLS, the national consent, blocking and log
services as real SOAP stand-ins, PDL applied, every access logged, the log tamper-evident."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import text

from adapter.consumer.fetch import FetchSettings, Outcome, Source
from adapter.consumer.overview import ConsumerConfig, NationalServices, build_overview
from adapter.consumer.pdl import access_log, log_queue
from adapter.consumer.pdl.decide import Basis, UserContext
from adapter.consumer.pdl.services import STORE_LOG, service_url
from adapter.gateway.tls import TlsContexts
from adapter.store.engine import open_store
from adapter.stubs.run import DEV_SEED, StubServers
from tests.conftest import free_port
from tests.consumer.producers import REGION_GIVER, REGION_SOURCE, SOURCE, SlowProducer, demo_store, region_store
from tests.gateway.conftest import TlsServer, tls_files

MUNICIPALITY = "SE2120001231-VG01"
HOME, HOUSING = "SE2120001231-HT01", "SE2120001231-SB01"
DOCTOR = UserContext("SE2321000016-L001", "SE2321000016-AKUT", REGION_GIVER, name="Dr Exempel")
NURSE_AT_HOUSING = UserContext("SE2120001231-P002", HOUSING, MUNICIPALITY)
TOLVAN, MARTA, GORAN, PER = "191212121212", "194004019818", "193508199282", "195311262397"


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki):
    folder = tmp_path_factory.mktemp("overview")
    tls = TlsContexts(tls_files(pki))
    ports = {name: free_port() for name in ("consent", "blocking", "log")}
    stubs = StubServers(DEV_SEED, ports=ports, tls=tls)
    thread = threading.Thread(target=asyncio.run, args=(stubs.serve(),), daemon=True)
    thread.start()
    with TlsServer(demo_store(folder), TlsContexts(tls_files(pki))) as municipality, \
            TlsServer(region_store(folder), TlsContexts(tls_files(pki))) as region:
        while not stubs.started:
            time.sleep(0.02)
        platform = pki.client("platform")  # the hospital's system calls through its certificate
        config = ConsumerConfig(
            sources=(Source("Exempelby kommun", municipality.url, SOURCE),
                     Source("Region Exempel", region.url, REGION_SOURCE)),
            services=NationalServices(stubs.url("consent"), stubs.url("blocking"), stubs.url("log")),
            client_cert=platform.cert, client_key=platform.key, ca=pki.ca_bundle,
            fetch=FetchSettings(per_source_timeout=5, deadline=8), service_timeout=3,
        )
        yield {"config": config, "stubs": stubs, "folder": folder}
    stubs.stop()
    thread.join(timeout=10)


@pytest.fixture
def log_store(new_store):
    return new_store("consumer")


def set_mode(world, name: str, mode: str) -> None:
    """Steer a stand-in (its admin endpoint sits behind the same mTLS as its service)."""
    config = world["config"]
    from adapter.consumer.fetch import client_context

    ctx = client_context(str(config.client_cert), str(config.client_key), str(config.ca))
    with httpx.Client(verify=ctx, trust_env=False) as c:
        c.post(world["stubs"].url(name) + "/_stub/mode", json={"mode": mode}).raise_for_status()


def overview(world, store, user, patient, **kw):
    config = kw.pop("config", world["config"])
    return asyncio.run(build_overview(config, store, user, patient, **kw))


def givers(ov) -> set[str]:
    return {r.group.care_giver for recs in ov.records.values() for r in recs}


def units(ov) -> set[str]:
    return {r.group.care_unit for recs in ov.records.values() for r in recs}


def test_own_care_giver_data_is_shown_without_consent(world, log_store):
    ov = overview(world, log_store, NURSE_AT_HOUSING, PER)
    assert givers(ov) == {MUNICIPALITY}
    assert units(ov) == {HOME, HOUSING}
    assert all(len(ov.records[c]) for c in ov.records)  # every information type of the demo patient
    assert {r.basis for recs in ov.records.values() for r in recs} == {Basis.OWN}


def test_other_care_givers_hidden_until_consent_then_shown(world, log_store):
    before = overview(world, log_store, DOCTOR, PER)  # Per's consent for the emergency department expired
    assert MUNICIPALITY not in givers(before)
    assert any("samtycke" in n for n in before.notices)

    from adapter.consumer.pdl import consent
    from adapter.consumer.pdl.actor import AccessingActor
    from adapter.consumer.pdl.services import REGISTER_EXTENDED_CONSENT

    config = world["config"]

    async def register():
        from adapter.consumer.fetch import client_context
        ctx = client_context(str(config.client_cert), str(config.client_key), str(config.ca))
        async with httpx.AsyncClient(verify=ctx, trust_env=False) as client:
            return await consent.register_consent(
                client, config.services.url(REGISTER_EXTENDED_CONSENT), config.services.consent_address,
                AccessingActor(DOCTOR.employee_hsa_id, DOCTOR.care_giver_hsa_id, DOCTOR.care_unit_hsa_id), PER,
                emergency=False, reason=None, valid_until=None)

    assertion = asyncio.run(register())
    try:
        after = overview(world, log_store, DOCTOR, PER)
    finally:  # the stand-ins live for the module: leave Per without consent for the next backend's run
        world["stubs"].apps["consent"].state.stub.withdraw(assertion)
    assert MUNICIPALITY in givers(after)
    assert {r.basis for r in after.records["GetDiagnosis:2"] if r.group.care_giver == MUNICIPALITY} == {Basis.CONSENT}


def test_consent_for_the_unit_shows_other_care_givers(world, log_store):
    ov = overview(world, log_store, DOCTOR, TOLVAN)  # Tolvan consented for the emergency department
    assert givers(ov) == {MUNICIPALITY, REGION_GIVER}


def test_emergency_access_is_shown_and_flagged_in_view_and_log(world, log_store):
    no_reason = overview(world, log_store, DOCTOR, GORAN, emergency_reason="   ")
    assert MUNICIPALITY not in givers(no_reason)
    ov = overview(world, log_store, DOCTOR, GORAN, emergency_reason="Medvetslös patient, akut läkemedelsgenomgång")
    assert ov.emergency and MUNICIPALITY in givers(ov)
    assert any("Nödåtkomst" in n for n in ov.notices)
    logged = [e for e in access_log.entries(log_store, GORAN) if e["basis"] == "emergency"]
    assert logged and logged[0]["emergency_reason"].startswith("Medvetslös")


def test_blocked_records_are_hidden_with_a_notice_naming_only_the_care_giver(world, log_store):
    ov = overview(world, log_store, DOCTOR, MARTA, emergency_reason="Akut, patienten kan inte samtycka")
    assert HOUSING not in units(ov)  # outer block on the special housing unit, even in an emergency
    assert HOME in units(ov)
    assert ov.blocked_care_givers == [MUNICIPALITY]
    notice = next(n for n in ov.notices if "spärrad" in n)
    assert MUNICIPALITY in notice and HOUSING not in notice


def test_inner_block_applies_within_the_own_care_giver(world, log_store):
    # Göran blocked home-care information from 2024 (medication excepted) from everyone outside home care.
    ov = overview(world, log_store, NURSE_AT_HOUSING, GORAN)
    assert ov.blocked_care_givers == [MUNICIPALITY]
    assert HOUSING in units(ov)
    home = [(c, r) for c, recs in ov.records.items() for r in recs if r.group.care_unit == HOME]
    assert "GetMedicationHistory:2" in {c for c, _ in home}  # the block leaves medication out
    # whatever else is shown from home care lies wholly before the block's 2024 (e.g. an allergy from 2021)
    assert all((r.author_time or "") < "2024" for c, r in home if c != "GetMedicationHistory:2")


def test_blocking_service_down_fails_closed_and_says_why(world, log_store):
    set_mode(world, "blocking", "down")
    try:
        ov = overview(world, log_store, DOCTOR, TOLVAN)
        mine = overview(world, log_store, NURSE_AT_HOUSING, TOLVAN)
    finally:
        set_mode(world, "blocking", "ok")
    assert givers(ov) == set()  # not even the doctor's own care giver's other units
    assert any("Spärrtjänsten kunde inte nås" in n for n in ov.notices)
    assert units(mine) == {HOUSING}  # own unit still shown; the rest of the own care giver fails closed too


def test_one_producer_down_or_slow_others_shown_with_per_source_status(world, log_store):
    dead = Source("Vårdcentral (nere)", f"https://127.0.0.1:{free_port()}", "SE0000000000-DEAD")
    with SlowProducer(delay=30) as slow:
        sources = world["config"].sources + (dead, Source("Långsam", slow.url, "SE0000000000-SLOW"))
        config = replace(world["config"], sources=sources, fetch=FetchSettings(per_source_timeout=1, deadline=2))
        ov = overview(world, log_store, DOCTOR, TOLVAN, config=config)
    assert givers(ov) == {MUNICIPALITY, REGION_GIVER}
    status = {(r.source.name, r.contract.key): r.outcome for r in ov.sources}
    assert status[("Vårdcentral (nere)", "GetDiagnosis:2")] is Outcome.FAILED
    assert status[("Långsam", "GetDiagnosis:2")] is Outcome.FAILED
    assert status[("Exempelby kommun", "GetDiagnosis:2")] is Outcome.DATA
    assert status[("Region Exempel", "GetCarePlans:2")] is Outcome.NONE
    assert any("Vårdcentral (nere)" in n and "Långsam" in n for n in ov.notices)


def test_every_access_is_logged_chained_and_sent_to_the_national_log(world, log_store):
    before = access_log.count(log_store)
    ov = overview(world, log_store, DOCTOR, TOLVAN)
    entries = access_log.entries(log_store, TOLVAN)[-len(ov.log_seqs):]
    assert access_log.count(log_store) == before + len(ov.log_seqs)
    assert {(e["information_care_provider_id"], e["information_care_unit_id"]) for e in entries} == {
        (g.care_giver, g.care_unit) for g in {r.group for recs in ov.records.values() for r in recs}}
    for e in entries:
        assert e["user_id"] == DOCTOR.employee_hsa_id and e["care_unit_id"] == DOCTOR.care_unit_hsa_id
        assert e["activity"] == "Läsa" and e["purpose"] == "Vård och behandling" and e["at"]
    assert access_log.verify(log_store).ok

    config, stubs = world["config"], world["stubs"]

    async def flush():
        from adapter.consumer.fetch import client_context
        ctx = client_context(str(config.client_cert), str(config.client_key), str(config.ca))
        async with httpx.AsyncClient(verify=ctx, trust_env=False, timeout=5) as client:
            return await log_queue.flush(log_store, client, service_url(stubs.url("log"), STORE_LOG))

    set_mode(world, "log", "down")
    report = asyncio.run(flush())
    assert report.sent == 0 and report.pending == access_log.count(log_store)  # kept through the outage
    set_mode(world, "log", "ok")
    from sqlalchemy import update

    from adapter.store.tables import log_outbox
    with log_store.begin() as conn:  # skip the backoff wait for the test
        conn.execute(update(log_outbox).values(next_attempt_at=log_outbox.c.next_attempt_at - __import__(
            "datetime").timedelta(days=1)))
    report = asyncio.run(flush())
    assert report.pending == 0 and report.sent == access_log.count(log_store)
    stored = stubs.apps["log"].state.stub.stored(patient_id=TOLVAN)
    assert len(stored) >= len(entries)


def test_a_tampered_log_is_detected(world, log_store, backend):
    for patient in (TOLVAN, PER, MARTA):
        overview(world, log_store, DOCTOR, patient)
    assert access_log.verify(log_store).ok
    with log_store.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE access_log SET entry = replace(entry, 'Läsa', 'Skriva') WHERE seq = 2"))
    with log_store.begin() as conn:  # someone with database access drops the guard first
        if backend == "sqlite":
            conn.execute(text("DROP TRIGGER access_log_no_update"))
            conn.execute(text("DROP TRIGGER access_log_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER access_log_append_only ON access_log"))
        conn.execute(text("UPDATE access_log SET entry = replace(entry, 'L001', 'X999') WHERE seq = 2"))
    result = access_log.verify(log_store)
    assert not result.ok and any("entry 2" in p and "altered" in p for p in result.problems)
    with log_store.begin() as conn:  # (and the queue row pointing at it, which the foreign key protects)
        conn.execute(text("DELETE FROM log_outbox WHERE seq = 3"))
        conn.execute(text("DELETE FROM access_log WHERE seq = 3"))
    assert any("missing" in p for p in access_log.verify(log_store).problems)


def test_overview_as_fhir_bundle_keeps_the_demo_content(world, log_store):
    from fhir.resources.R4B.bundle import Bundle

    from adapter.consumer.view import to_bundle

    ov = overview(world, log_store, DOCTOR, GORAN, emergency_reason="Akut")
    bundle = to_bundle(ov)
    again = Bundle.model_validate_json(bundle.model_dump_json())  # valid FHIR R4 (R4B models), no nulls
    assert "null" not in bundle.model_dump_json()
    kinds = {e.resource.get_resource_type() for e in again.entry}
    assert {"Condition", "MedicationStatement", "CarePlan", "DocumentReference", "Provenance",
            "OperationOutcome"} <= kinds
    assert again.meta.security[0].code == "BTG"
    shown = sum(len(v) for v in ov.records.values())
    mains = [e for e in again.entry if e.resource.get_resource_type() in
             ("Condition", "MedicationStatement", "CarePlan", "DocumentReference", "Immunization",
              "AllergyIntolerance", "Flag", "Encounter")]
    assert len(mains) == shown
    provenance = [e.resource for e in again.entry if e.resource.get_resource_type() == "Provenance"]
    assert {a.who.identifier.value for p in provenance for a in p.agent if a.type and
            a.type.coding[0].code == "custodian"} == givers(ov)


def test_every_shown_record_has_a_readable_summary(world, log_store):
    from adapter.consumer.summary import summarise

    ov = overview(world, log_store, NURSE_AT_HOUSING, TOLVAN)
    for contract, recs in ov.records.items():
        assert recs, contract
        for r in recs:
            s = summarise(r)
            assert s["date"][:2] in ("19", "20") and s["text"] and "(utan text)" not in s["text"], (contract, s)
            assert s["unit"] and s["source"] == SOURCE and s["basis"] == "egen vårdgivare"


def test_round_trip_fhir_producer_consumer_fhir_keeps_the_demo_content(world, log_store):
    """What staff receive over the wire is exactly what the producer stored from the demo FHIR, so the
    FHIR -> RIVTA -> FHIR round trip (tests/mapping/test_rivta_to_fhir.py, field by field) holds end to end."""
    from lxml import etree

    from adapter.demo.world import PNR_SYSTEM, default_world
    from adapter.mapping.rivta_to_fhir import to_fhir
    from adapter.rivta.contracts import BY_KEY
    from adapter.rivta.rules import first_text
    from adapter.store.records import RecordQuery, query

    demo_engine = open_store(f"sqlite:///{world['folder']}/demo.db")
    for patient in default_world().patients:
        ptype = "1.2.752.129.2.1.3.1" if patient.system == PNR_SYSTEM else "1.2.752.129.2.1.3.3"
        ov = overview(world, log_store, NURSE_AT_HOUSING, patient.number, patient_type=ptype)
        for contract, recs in ov.records.items():
            received = {r.document_id: etree.tostring(r.element, method="c14n", exclusive=True) for r in recs
                        if r.source_system == SOURCE and r.group.care_unit == HOUSING}
            with demo_engine.connect() as conn:
                stored = [etree.fromstring(f) for f in query(conn, RecordQuery(
                    contract, SOURCE, patient.number, ptype, care_units=(HOUSING,)))]
            c = BY_KEY[contract]  # where the document id lives is the contract's header model
            expected = {first_text(e, c, c.paths.document_id): etree.tostring(e, method="c14n", exclusive=True)
                        for e in stored}
            assert received == expected, (patient.id, contract)
            for r in recs:
                main = to_fhir(r.contract, r.element)[0]
                assert main.identifier[0].value == r.document_id
