"""The consumer's PDL clients against the local stand-ins of the national services, over real HTTP on loopback
(and mutual TLS with the dev PKI): consent, emergency access, blocks, access logging, misbehaving services.

Every request the clients send and every answer the stand-ins give is also validated against the OFFICIAL
schemas of the reference pack. Exception messages are checked for personal data throughout.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from lxml import etree

from adapter.consumer.pdl import (
    AccessingActor,
    AccessLogEntry,
    BlockStatus,
    InformationEntity,
    LogResource,
    PdlServiceError,
    ServiceRefused,
    ServiceUnavailable,
    check_blocks,
    check_consent,
    new_log_id,
    register_consent,
    store_logs,
)
from adapter.consumer.pdl.services import (
    CHECK_BLOCKS,
    CHECK_CONSENT,
    NATIONAL_HSA_ID,
    REGISTER_EXTENDED_CONSENT,
    SAMORDNINGSNUMMER,
    STORE_LOG,
    NationalService,
)
from adapter.gateway.pki import DevPki, init_pki
from adapter.mapping.timefmt import SWEDEN
from adapter.rivta.contracts import SOAP_NS
from adapter.stubs.consent import create_consent_app
from adapter.stubs.endpoint import Behaviour
from adapter.stubs.run import DEV_SEED, StubServers, tls_from_dev_pki
from adapter.stubs.seed import SeedError, load_seed, parse_seed
from tests.conftest import RunningServer, free_port
from tests.samples import REFERENCE, WORLD

# --- who reads: a region's emergency department and geriatric clinic -----------------------------------------
REGION = "SE2321000016-RG01"
AKUT, GER1 = "SE2321000016-AKUT", "SE2321000016-GER1"
DOCTOR = AccessingActor("SE2321000016-L001", REGION, AKUT)
COLLEAGUE = AccessingActor("SE2321000016-L009", REGION, AKUT)  # same unit, another employee
NURSE = AccessingActor("SE2321000016-S002", REGION, GER1)
SYSTEM = "SE2321000016-9KHR"

# --- whose information: the demo municipality ----------------------------------------------------------------
VG = WORLD.care_giver.hsa_id
HT, SB = (u.hsa_id for u in WORLD.units)
HOME_NURSE = AccessingActor(WORLD.staff[0].hsa_id, VG, HT)  # same care provider, unit HT01
HOUSING_NURSE = AccessingActor(WORLD.staff[1].hsa_id, VG, SB)  # same care provider, unit SB01

# synthetic patients (demo world); each test case uses its own
P_VALID, P_EXPIRED, P_FUTURE, P_WITHDRAWN, P_OWN, P_EMERGENCY = (p.number for p in WORLD.patients)
P_REGISTER, P_REGISTER_OWN, P_REGISTER_EMERGENCY = "195001012384", "195101012383", "195201012382"
B_OUTER_UNIT, B_OUTER_PERIOD, B_INNER, B_REVOKED = "194004019818", "195311262397", "193508199282", "197010632391"
PERSONAL = {p.number for p in WORLD.patients} | {P_REGISTER, P_REGISTER_OWN, P_REGISTER_EMERGENCY}

SEED = f"""
[[consent]]
patient = "{P_VALID}"
care_provider = "{REGION}"
care_unit = "{AKUT}"
valid_from = 2020-01-01
valid_to = 2099-12-31

[[consent]]
patient = "{P_EXPIRED}"
care_provider = "{REGION}"
care_unit = "{AKUT}"
valid_from = 2020-01-01
valid_to = 2021-12-31

[[consent]]
patient = "{P_FUTURE}"
care_provider = "{REGION}"
care_unit = "{AKUT}"
valid_from = 2099-01-01

[[consent]]
patient = "{P_WITHDRAWN}"
care_provider = "{REGION}"
care_unit = "{AKUT}"
valid_from = 2020-01-01
withdrawn = 2021-03-01T12:00:00+01:00

[[consent]]
patient = "{P_OWN}"
care_provider = "{REGION}"
care_unit = "{AKUT}"
employee = "{DOCTOR.employee_hsa_id}"

[[consent]]
patient = "{P_EMERGENCY}"
type = "Emergency"
care_provider = "{REGION}"
care_unit = "{AKUT}"
valid_from = 2020-01-01T00:00:00Z
valid_to = 2099-01-01T00:00:00Z

[[block]]
patient = "{B_OUTER_UNIT}"
type = "Outer"
care_provider = "{VG}"
care_unit = "{SB}"

[[block]]
patient = "{B_OUTER_PERIOD}"
type = "Outer"
care_provider = "{VG}"
valid_from = 2022-01-01
valid_to = 2022-12-31
excluded_types = ["upp"]

[[block]]
patient = "{B_INNER}"
type = "Inner"
care_provider = "{VG}"
care_unit = "{HT}"
valid_from = 2024-01-01
valid_to = 2024-12-31
excluded_types = ["lak"]

[[block]]
patient = "{B_REVOKED}"
patient_type = "{SAMORDNINGSNUMMER}"
type = "Outer"
care_provider = "{VG}"
  [[block.revoke]]
  care_unit = "{AKUT}"
  employee = "{DOCTOR.employee_hsa_id}"
  valid_to = 2099-01-01
"""

OFFICIAL_XSD = {
    CHECK_CONSENT: "informationsecurity-authorization-consent/2.0/interactions/CheckConsentInteraction/"
                   "CheckConsentResponder_2.0.xsd",
    REGISTER_EXTENDED_CONSENT: "informationsecurity-authorization-consent/2.0/interactions/"
                               "RegisterExtendedConsentInteraction/RegisterExtendedConsentResponder_2.0.xsd",
    CHECK_BLOCKS: "informationsecurity-authorization-blocking/4.0/interactions/CheckBlocksInteraction/"
                  "CheckBlocksResponder_4.0.xsd",
    STORE_LOG: "informationsecurity-auditing-log/2.0/interactions/StoreLogInteraction/StoreLogResponder_2.0.xsd",
}
_OFFICIAL: dict[NationalService, etree.XMLSchema] = {}


def official_schema(service: NationalService) -> etree.XMLSchema:
    if service not in _OFFICIAL:
        _OFFICIAL[service] = etree.XMLSchema(etree.parse(str(REFERENCE / "rivta" / OFFICIAL_XSD[service])))
    return _OFFICIAL[service]


# --- fixtures and helpers --------------------------------------------------------------------------------------
def run_in_thread(stubs: StubServers) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(stubs.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not stubs.started:
        assert thread.is_alive() and time.monotonic() < deadline, "stand-ins did not start"
        time.sleep(0.01)
    return thread


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "seed.toml"
    path.write_text(SEED, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stubs(seed_file) -> Iterator[StubServers]:
    servers = StubServers(seed_file, ports={"consent": free_port(), "blocking": free_port(), "log": free_port()})
    thread = run_in_thread(servers)
    yield servers
    servers.stop()
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def behave(request) -> Iterator[None]:
    yield
    if "stubs" in request.fixturenames:
        for app in request.getfixturevalue("stubs").apps.values():
            app.state.behaviour = Behaviour()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> DevPki:
    return init_pki(tmp_path_factory.mktemp("pki"))


def run(make: Callable[[httpx.AsyncClient], Awaitable], *, timeout: float = 5.0, verify: ssl.SSLContext | bool = True):
    """Run one async client call with a fresh AsyncClient, as the consumer would configure it."""
    async def main():
        async with httpx.AsyncClient(timeout=timeout, trust_env=False, verify=verify) as client:
            return await make(client)
    return asyncio.run(main())


def fails(make: Callable[[httpx.AsyncClient], Awaitable], kind: type[PdlServiceError] = ServiceUnavailable,
          **kw) -> PdlServiceError:
    with pytest.raises(kind) as info:
        run(make, **kw)
    assert_no_personal_data(info.value)
    return info.value


def assert_no_personal_data(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), getattr(exc, "reason", "")):
        assert not re.search(r"\d{8}-?\d{4}", text), text
        assert not any(p in text for p in PERSONAL), text


def assert_official(stubs: StubServers, name: str, service: NationalService) -> None:
    exchange = stubs.apps[name].state.exchanges.last(service)
    schema = official_schema(service)
    for part in (exchange.request, exchange.answer):
        assert schema.validate(etree.fromstring(part)), schema.error_log


def consent(stubs: StubServers, actor: AccessingActor, patient: str, **kw):
    return run(lambda c: check_consent(c, stubs.url("consent", CHECK_CONSENT), actor.care_provider_hsa_id, actor,
                                       patient, **kw))


def blocks(stubs: StubServers, actor: AccessingActor, patient: str, entities: list[InformationEntity], **kw):
    return run(lambda c: check_blocks(c, stubs.url("blocking", CHECK_BLOCKS), NATIONAL_HSA_ID, actor, patient,
                                      entities, **kw))


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=SWEDEN)


def entry(patient: str, *, log_id: str | None = None, rich: bool = False) -> AccessLogEntry:
    resource = LogResource("Diagnoser", VG, patient_id=patient, care_unit_id=HT,
                           care_provider_name="Exempelby kommun" if rich else None,
                           care_unit_name="Hemtjänsten Ängsvägen" if rich else None)
    extra = dict(system_name="Regionens NPÖ-konsument", activity_level="NPÖ", activity_args="Diagnoser",
                 user_name="Lina Läkare", user_assignment="Läkare, akuten", user_title="Läkare",
                 user_care_provider_name="Region Exempel", user_care_unit_name="Akutmottagningen") if rich else {}
    return AccessLogEntry(log_id=log_id or new_log_id(), system_id=SYSTEM, activity_type="Läsa",
                          start_time=datetime(2025, 3, 1, 10, 20, tzinfo=SWEDEN), purpose="Vård och behandling",
                          user_id=DOCTOR.employee_hsa_id, user_care_provider_id=REGION, user_care_unit_id=AKUT,
                          resources=(resource, LogResource("Läkemedel", VG)) if rich else (resource,), **extra)


# --- consent ---------------------------------------------------------------------------------------------------
def test_valid_consent_for_the_care_unit(stubs) -> None:
    decision = consent(stubs, DOCTOR, P_VALID)
    assert decision.has_consent and decision.assertion_type == "Consent" and not decision.emergency
    assert decision.result_code == "OK"
    assert consent(stubs, COLLEAGUE, P_VALID).has_consent  # the whole unit's staff
    assert_official(stubs, "consent", CHECK_CONSENT)


@pytest.mark.parametrize("patient", [P_EXPIRED, P_FUTURE, P_WITHDRAWN], ids=["expired", "not-yet-valid", "withdrawn"])
def test_no_consent_outside_validity_or_after_withdrawal(stubs, patient: str) -> None:
    decision = consent(stubs, DOCTOR, patient)
    assert not decision.has_consent and decision.assertion_type is None
    assert_official(stubs, "consent", CHECK_CONSENT)


def test_consent_is_for_its_care_unit_and_care_provider_only(stubs) -> None:
    assert not consent(stubs, NURSE, P_VALID).has_consent  # same care provider, another unit
    assert not consent(stubs, AccessingActor(DOCTOR.employee_hsa_id, "SE2321000016-OTHR", AKUT), P_VALID).has_consent
    assert not consent(stubs, DOCTOR, "191010101010").has_consent  # another patient


def test_consent_for_one_employee_only(stubs) -> None:
    assert consent(stubs, DOCTOR, P_OWN).has_consent
    assert not consent(stubs, COLLEAGUE, P_OWN).has_consent


def test_emergency_assertion_reported_as_emergency(stubs) -> None:
    decision = consent(stubs, DOCTOR, P_EMERGENCY)
    assert decision.has_consent and decision.assertion_type == "Emergency" and decision.emergency


def test_register_consent_then_check(stubs) -> None:
    url = stubs.url("consent", REGISTER_EXTENDED_CONSENT)
    assert not consent(stubs, DOCTOR, P_REGISTER).has_consent
    assertion_id = run(lambda c: register_consent(c, url, REGION, DOCTOR, P_REGISTER, emergency=False,
                                                  reason=None, valid_until=datetime.now(UTC) + timedelta(days=30)))
    assert_official(stubs, "consent", REGISTER_EXTENDED_CONSENT)
    assert consent(stubs, DOCTOR, P_REGISTER).assertion_type == "Consent"
    assert consent(stubs, COLLEAGUE, P_REGISTER).has_consent
    assert not consent(stubs, NURSE, P_REGISTER).has_consent
    (stored,) = stubs.apps["consent"].state.stub.assertions(P_REGISTER)
    assert stored.assertion_id == assertion_id and stored.employee is None and stored.end is not None

    stubs.apps["consent"].state.stub.withdraw(assertion_id)
    assert not consent(stubs, DOCTOR, P_REGISTER).has_consent


def test_register_consent_for_the_employee_only(stubs) -> None:
    url = stubs.url("consent", REGISTER_EXTENDED_CONSENT)
    run(lambda c: register_consent(c, url, REGION, DOCTOR, P_REGISTER_OWN, emergency=False, reason="Samtycke muntligt",
                                   valid_until=None, for_employee_only=True))
    assert consent(stubs, DOCTOR, P_REGISTER_OWN).has_consent
    assert not consent(stubs, COLLEAGUE, P_REGISTER_OWN).has_consent


def test_register_emergency_access(stubs) -> None:
    url = stubs.url("consent", REGISTER_EXTENDED_CONSENT)
    run(lambda c: register_consent(c, url, REGION, DOCTOR, P_REGISTER_EMERGENCY, emergency=True,
                                   reason="Medvetslös patient", valid_until=datetime.now(UTC) + timedelta(hours=4)))
    request = etree.fromstring(stubs.apps["consent"].state.exchanges.last(REGISTER_EXTENDED_CONSENT).request)
    assert request.findtext(f"{{{REGISTER_EXTENDED_CONSENT.responder_ns}}}assertionType") == "Emergency"
    assert_official(stubs, "consent", REGISTER_EXTENDED_CONSENT)
    decision = consent(stubs, DOCTOR, P_REGISTER_EMERGENCY)
    assert decision.emergency


def test_registering_an_assertion_id_twice_is_refused(stubs) -> None:
    url = stubs.url("consent", REGISTER_EXTENDED_CONSENT)
    fixed = "7c1e9f30-2b4d-4a8e-9d6c-5f0a1b2c3d4e"
    run(lambda c: register_consent(c, url, REGION, DOCTOR, "195301012381", emergency=False, reason=None,
                                   valid_until=None, assertion_id=fixed))
    exc = fails(lambda c: register_consent(c, url, REGION, DOCTOR, "195301012381", emergency=False, reason=None,
                                           valid_until=None, assertion_id=fixed), ServiceRefused)
    assert exc.result_code == "ALREADYEXISTS"


def test_unsupported_patient_id_kind_is_refused(stubs) -> None:
    exc = fails(lambda c: check_consent(c, stubs.url("consent", CHECK_CONSENT), REGION, DOCTOR, P_VALID,
                                        patient_type="1.2.752.129.2.1.3.2"), ServiceRefused)
    assert exc.result_code == "VALIDATION_ERROR" and exc.service == "CheckConsent"
    assert_official(stubs, "consent", CHECK_CONSENT)


def test_request_the_schema_rejects_is_not_sent(stubs) -> None:
    too_long = AccessingActor("SE2321000016-" + "X" * 40, REGION, AKUT)
    with pytest.raises(ValueError, match="does not follow the schema") as info:
        consent(stubs, too_long, P_VALID)
    assert_no_personal_data(info.value)
    with pytest.raises(ValueError):
        run(lambda c: register_consent(c, stubs.url("consent", REGISTER_EXTENDED_CONSENT), REGION, DOCTOR, P_VALID,
                                       emergency=False, reason="x" * 1025, valid_until=None))


# --- blocks ----------------------------------------------------------------------------------------------------
def test_block_period_rules(stubs) -> None:
    """Outer block on the whole care provider for 2022, alert information ("upp") left out."""
    rows = [
        InformationEntity(VG, HT, day(2022, 3, 1), day(2022, 3, 31)),  # inside
        InformationEntity(VG, HT, day(2021, 12, 1), day(2022, 1, 15)),  # overlaps the start
        InformationEntity(VG, SB, day(2022, 12, 20), day(2023, 2, 1)),  # overlaps the end
        InformationEntity(VG, HT, day(2021, 1, 1), day(2023, 6, 1)),  # encloses the block period
        InformationEntity(VG, HT, day(2023, 1, 2), day(2023, 6, 1)),  # entirely after
        InformationEntity(VG, HT, day(2021, 1, 1), day(2021, 12, 30)),  # entirely before
        InformationEntity(VG, HT, day(2022, 3, 1), day(2022, 3, 31), "upp"),  # excluded kind
        InformationEntity(VG, HT, day(2022, 3, 1), day(2022, 3, 31), "lak"),  # a kind the block keeps
        InformationEntity(REGION, AKUT, day(2022, 3, 1), day(2022, 3, 31)),  # another care provider's
        InformationEntity(VG, HT, day(2022, 3, 31), day(2022, 3, 1)),  # ends before it starts
        InformationEntity(VG, HT, day(2022, 3, 1), day(2022, 3, 31), "xyz"),  # unknown kind
    ]
    result = blocks(stubs, DOCTOR, B_OUTER_PERIOD, rows)
    assert [r.entity for r in result] == rows
    assert [r.status for r in result] == [BlockStatus.BLOCKED] * 4 + [BlockStatus.OK] * 3 + [
        BlockStatus.BLOCKED, BlockStatus.OK, BlockStatus.VALIDATIONERROR, BlockStatus.VALIDATIONERROR]
    assert [r.may_show for r in result] == [s is BlockStatus.OK for s in (r.status for r in result)]
    assert_official(stubs, "blocking", CHECK_BLOCKS)


def test_block_without_validity_blocks_everything_it_covers(stubs) -> None:
    rows = [InformationEntity(VG, SB, day(1990, 1, 1), day(1990, 1, 2)),
            InformationEntity(VG, SB, day(2025, 1, 1), day(2025, 1, 2), "lak"),
            InformationEntity(VG, HT, day(2025, 1, 1), day(2025, 1, 2))]  # another unit: not covered
    assert [r.status for r in blocks(stubs, DOCTOR, B_OUTER_UNIT, rows)] == [
        BlockStatus.BLOCKED, BlockStatus.BLOCKED, BlockStatus.OK]


def test_outer_block_does_not_apply_within_its_care_provider(stubs) -> None:
    rows = [InformationEntity(VG, SB, day(2025, 1, 1), day(2025, 1, 2))]
    assert blocks(stubs, HOME_NURSE, B_OUTER_UNIT, rows)[0].status is BlockStatus.OK
    assert blocks(stubs, HOUSING_NURSE, B_OUTER_UNIT, rows)[0].status is BlockStatus.OK
    assert blocks(stubs, NURSE, B_OUTER_UNIT, rows)[0].status is BlockStatus.BLOCKED


def test_inner_block_applies_outside_its_care_unit(stubs) -> None:
    row = [InformationEntity(VG, HT, day(2024, 5, 1), day(2024, 5, 31))]
    assert blocks(stubs, DOCTOR, B_INNER, row)[0].status is BlockStatus.BLOCKED  # another care provider
    assert blocks(stubs, HOUSING_NURSE, B_INNER, row)[0].status is BlockStatus.BLOCKED  # another unit, same provider
    assert blocks(stubs, HOME_NURSE, B_INNER, row)[0].status is BlockStatus.OK  # the blocked unit itself
    medication = [InformationEntity(VG, HT, day(2024, 5, 1), day(2024, 5, 31), "lak")]
    assert blocks(stubs, DOCTOR, B_INNER, medication)[0].status is BlockStatus.OK  # left out of the block


def test_temporary_revoke_lifts_the_block_for_its_actor_only(stubs) -> None:
    row = [InformationEntity(VG, HT, day(2025, 1, 1), day(2025, 1, 2))]
    assert blocks(stubs, DOCTOR, B_REVOKED, row, patient_type=SAMORDNINGSNUMMER)[0].may_show
    assert not blocks(stubs, COLLEAGUE, B_REVOKED, row, patient_type=SAMORDNINGSNUMMER)[0].may_show
    assert not blocks(stubs, NURSE, B_REVOKED, row, patient_type=SAMORDNINGSNUMMER)[0].may_show
    assert blocks(stubs, DOCTOR, B_REVOKED, row)[0].may_show  # no block on that id as a personnummer


def test_no_entities_no_call(stubs) -> None:
    before = len(stubs.apps["blocking"].state.exchanges.items)
    assert blocks(stubs, DOCTOR, B_INNER, []) == []
    assert len(stubs.apps["blocking"].state.exchanges.items) == before


def test_blocks_unsupported_patient_id_kind_is_refused(stubs) -> None:
    row = [InformationEntity(VG, HT, day(2025, 1, 1), day(2025, 1, 2))]
    exc = fails(lambda c: check_blocks(c, stubs.url("blocking", CHECK_BLOCKS), NATIONAL_HSA_ID, DOCTOR, B_INNER,
                                       row, patient_type="1.2.3"), ServiceRefused)
    assert exc.result_code == "VALIDATIONERROR"
    assert_official(stubs, "blocking", CHECK_BLOCKS)


# --- access log ------------------------------------------------------------------------------------------------
def test_store_logs(stubs) -> None:
    log_stub = stubs.apps["log"].state.stub
    log_stub.clear()
    entries = [entry(P_VALID, rich=True), entry(P_VALID), entry(P_EMERGENCY)]
    run(lambda c: store_logs(c, stubs.url("log", STORE_LOG), NATIONAL_HSA_ID, entries))
    assert log_stub.stored(patient_id=P_VALID) == entries[:2]
    assert log_stub.stored(user_id=DOCTOR.employee_hsa_id, care_provider_id=REGION) == entries
    assert_official(stubs, "log", STORE_LOG)


def test_store_logs_sends_at_most_500_per_call(stubs) -> None:
    log_stub, exchanges = stubs.apps["log"].state.stub, stubs.apps["log"].state.exchanges
    log_stub.clear()
    before = len(exchanges.items)
    entries = [entry(P_OWN) for _ in range(1201)]
    run(lambda c: store_logs(c, stubs.url("log", STORE_LOG), NATIONAL_HSA_ID, entries), timeout=30)
    assert log_stub.stored() == entries
    calls = list(exchanges.items)[before:]
    assert [len(etree.fromstring(x.request)) for x in calls] == [500, 500, 201]


def test_store_logs_duplicate_log_id_refused_and_reports_progress(stubs) -> None:
    log_stub = stubs.apps["log"].state.stub
    log_stub.clear()
    first = entry(P_VALID)
    url = stubs.url("log", STORE_LOG)
    run(lambda c: store_logs(c, url, NATIONAL_HSA_ID, [first]))
    exc = fails(lambda c: store_logs(c, url, NATIONAL_HSA_ID, [first]), ServiceRefused)
    assert exc.result_code == "VALIDATION_ERROR"
    batch = [entry(P_VALID) for _ in range(500)] + [entry(P_VALID, log_id=first.log_id)]
    exc = fails(lambda c: store_logs(c, url, NATIONAL_HSA_ID, batch), ServiceRefused)
    assert "the first 500 of 501 records were stored" in str(exc)
    assert len(log_stub.stored()) == 501
    assert_official(stubs, "log", STORE_LOG)


# --- a misbehaving service: each client raises ServiceUnavailable, within its timeout ---------------------------
CALLS: dict[str, Callable[[StubServers], Callable[[httpx.AsyncClient], Awaitable]]] = {
    "consent": lambda s: lambda c: check_consent(c, s.url("consent", CHECK_CONSENT), REGION, DOCTOR, P_VALID),
    "blocking": lambda s: lambda c: check_blocks(c, s.url("blocking", CHECK_BLOCKS), NATIONAL_HSA_ID, DOCTOR, B_INNER,
                                                 [InformationEntity(VG, HT, day(2024, 5, 1), day(2024, 6, 1))]),
    "log": lambda s: lambda c: store_logs(c, s.url("log", STORE_LOG), NATIONAL_HSA_ID, [entry(P_VALID)]),
}


def set_mode(stubs: StubServers, name: str, mode: str, delay: float = 0.0) -> None:
    r = httpx.post(stubs.url(name) + "/_stub/mode", json={"mode": mode, "delay": delay}, trust_env=False)
    assert r.status_code == 200 and r.json() == {"mode": mode, "delay": delay}


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize(("mode", "reason"), [
    ("down", "HTTP 503"),
    ("fault", "SOAP fault soap:Server (HTTP 500)"),
    ("close", "connection failed (RemoteProtocolError)"),
])
def test_failing_service(stubs, name: str, mode: str, reason: str) -> None:
    set_mode(stubs, name, mode)
    exc = fails(CALLS[name](stubs))
    assert exc.reason == reason
    set_mode(stubs, name, "ok")
    run(CALLS[name](stubs))


@pytest.mark.parametrize("name", CALLS)
def test_slow_service_times_out_within_the_clients_timeout(stubs, name: str) -> None:
    set_mode(stubs, name, "slow", 3.0)
    started = time.monotonic()
    exc = fails(CALLS[name](stubs), timeout=0.4)
    assert time.monotonic() - started < 1.5
    assert exc.reason == "timed out (ReadTimeout)"
    set_mode(stubs, name, "slow", 0.2)
    run(CALLS[name](stubs), timeout=2)  # slow, but within the timeout


def test_stub_mode_admin_endpoint(stubs) -> None:
    url = stubs.url("blocking") + "/_stub/mode"
    assert httpx.get(url, trust_env=False).json() == {"mode": "ok", "delay": 0.0}
    assert httpx.post(url, json={"mode": "sideways"}, trust_env=False).status_code == 422
    assert httpx.post(url, json={"mode": "ok", "delay": -1}, trust_env=False).status_code == 422


def test_stub_mode_from_the_constructor(seed_file) -> None:
    with RunningServer(create_consent_app(seed_file, mode="down"), free_port()) as srv:
        exc = fails(lambda c: check_consent(c, srv.url + CHECK_CONSENT.url_path, REGION, DOCTOR, P_VALID))
    assert exc.reason == "HTTP 503"
    with RunningServer(create_consent_app(seed_file, mode="slow", delay=2), free_port()) as srv:
        fails(lambda c: check_consent(c, srv.url + CHECK_CONSENT.url_path, REGION, DOCTOR, P_VALID), timeout=0.3)


def test_unreachable_service(stubs) -> None:
    url = f"http://127.0.0.1:{free_port()}{CHECK_CONSENT.url_path}"
    exc = fails(lambda c: check_consent(c, url, REGION, DOCTOR, P_VALID))
    assert exc.reason == "connection failed (ConnectError)"


# --- answers that are not the contract's ------------------------------------------------------------------------
def rogue_app() -> FastAPI:
    """Answers every POST with app.state.answer = (status, body)."""
    app = FastAPI()

    @app.post("/{path:path}")
    async def answer(request: Request, path: str) -> Response:
        status, body = app.state.answer
        return Response(body, status_code=status, media_type="text/xml; charset=utf-8")

    return app


def envelope(inner: str) -> bytes:
    return f'<s:Envelope xmlns:s="{SOAP_NS}"><s:Body>{inner}</s:Body></s:Envelope>'.encode()


CR = f'xmlns:r="{CHECK_CONSENT.responder_ns}" xmlns:c="{CHECK_CONSENT.core_ns}"'
CONSENT_ANSWER = (f'<r:CheckConsentResponse {CR}><r:checkResult><c:result><c:resultCode>OK</c:resultCode>'
                  f'<c:resultText>{P_VALID}</c:resultText></c:result><c:hasConsent>{{has}}</c:hasConsent>'
                  f'</r:checkResult></r:CheckConsentResponse>')
BR = f'xmlns:r="{CHECK_BLOCKS.responder_ns}" xmlns:b="{CHECK_BLOCKS.core_ns}"'


def block_answer(*rows: int) -> bytes:
    results = "".join(f"<b:checkResults><b:status>OK</b:status><b:rowNumber>{n}</b:rowNumber></b:checkResults>"
                      for n in rows)
    return envelope(f'<r:CheckBlocksResponse {BR}><r:checkBlocksResult><b:result><b:resultCode>OK</b:resultCode>'
                    f'</b:result>{results}</r:checkBlocksResult></r:CheckBlocksResponse>')


@pytest.mark.parametrize(("status", "body", "reason"), [
    (200, envelope(CONSENT_ANSWER.format(has="true")), None),
    (200, envelope(CONSENT_ANSWER.format(has=P_VALID)),
     "invalid answer (does not follow the CheckConsent schema at "),
    (200, f"<html><body>{P_VALID}</body></html>".encode(),
     "invalid answer (not a SOAP envelope with one body element)"),
    (200, f"not xml {P_VALID}".encode(), "invalid answer (malformed XML: line 1, column 1)"),
    (200, f'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;{P_VALID}</x>'.encode(),
     "invalid answer (document type declarations are not allowed)"),
    (200, block_answer(1), "invalid answer (expected CheckConsentResponse in namespace "),
    (200, envelope(CONSENT_ANSWER.format(has="true")) + b" " * 2_000_001, "invalid answer (larger than 2000000 bytes)"),
    (500, envelope(f"<s:Fault><faultcode>s:Server</faultcode><faultstring>patient {P_VALID} unknown</faultstring>"
                   "</s:Fault>"), "SOAP fault s:Server (HTTP 500)"),
    (500, envelope(f"<s:Fault><faultcode>{P_VALID} x</faultcode><faultstring>-</faultstring></s:Fault>"),
     "SOAP fault (not shown) (HTTP 500)"),
    (500, f"Internal error for {P_VALID}".encode(), "HTTP 500"),
    (404, b"<html>not here</html>", "HTTP 404"),
    (302, b"", "HTTP 302"),
], ids=["valid", "schema-invalid", "html", "not-xml", "doctype", "wrong-element", "too-large", "fault",
        "fault-odd-code", "500-text", "404", "redirect"])
def test_client_accepts_only_the_contracts_answer(status: int, body: bytes, reason: str | None) -> None:
    app = rogue_app()
    app.state.answer = (status, body)
    with RunningServer(app, free_port()) as srv:
        call = lambda c: check_consent(c, srv.url + CHECK_CONSENT.url_path, REGION, DOCTOR, P_VALID)  # noqa: E731
        if reason is None:
            assert run(call).has_consent
        else:
            assert fails(call).reason.startswith(reason)


@pytest.mark.parametrize(("rows", "reason"), [
    ((1,), "invalid answer (1 of 2 rows not answered)"),
    ((1, 1, 2), "invalid answer (row 1 unexpected or answered twice)"),
    ((1, 3), "invalid answer (row 3 unexpected or answered twice)"),
])
def test_block_answer_must_cover_each_row_once(rows: tuple[int, ...], reason: str) -> None:
    app = rogue_app()
    app.state.answer = (200, block_answer(*rows))
    two = [InformationEntity(VG, HT, day(2024, 1, 1), day(2024, 2, 1))] * 2
    with RunningServer(app, free_port()) as srv:
        exc = fails(lambda c: check_blocks(c, srv.url + CHECK_BLOCKS.url_path, NATIONAL_HSA_ID, DOCTOR, B_INNER, two))
    assert exc.reason == reason


# --- the stand-ins refuse what the contract does not allow, without personal data ------------------------------
def soap_request(service: NationalService, body: str, address: str | None = REGION) -> bytes:
    header = f'<s:Header><a:LogicalAddress xmlns:a="urn:riv:itintegration:registry:1">{address}</a:LogicalAddress>' \
             f'</s:Header>' if address else ""
    return f'<s:Envelope xmlns:s="{SOAP_NS}">{header}<s:Body>{body}</s:Body></s:Envelope>'.encode()


def check_consent_body(extra: str = "") -> str:
    return (f'<r:CheckConsent {CR}><r:accessingActor><c:employeeId>{DOCTOR.employee_hsa_id}</c:employeeId>'
            f'<c:careProviderId>{REGION}</c:careProviderId><c:careUnitId>{AKUT}</c:careUnitId></r:accessingActor>'
            f'<r:patientId><c:root>1.2.752.129.2.1.3.1</c:root><c:extension>{P_VALID}</c:extension></r:patientId>'
            f'{extra}</r:CheckConsent>')


@pytest.mark.parametrize(("data", "reason"), [
    (soap_request(CHECK_CONSENT, check_consent_body()), None),
    (soap_request(CHECK_CONSENT, check_consent_body(f"<r:note>{P_VALID}</r:note>")),
     "does not follow the CheckConsent schema"),
    (soap_request(CHECK_CONSENT, check_consent_body(), address=None), "LogicalAddress header missing"),
    (soap_request(CHECK_CONSENT, check_consent_body().replace("CheckConsent", "CheckBlocks")),
     f"expected CheckConsent in namespace {CHECK_CONSENT.responder_ns}"),
    (f"<s:Envelope>{P_VALID}".encode(), "malformed XML"),
    (b'<!DOCTYPE s [<!ENTITY e "x">]>' + soap_request(CHECK_CONSENT, check_consent_body()),
     "document type declarations are not allowed"),
], ids=["valid", "schema-invalid", "no-address", "wrong-operation", "malformed", "doctype"])
def test_stand_in_validates_requests(stubs, data: bytes, reason: str | None) -> None:
    r = httpx.post(stubs.url("consent", CHECK_CONSENT), content=data, trust_env=False,
                   headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": CHECK_CONSENT.soap_action})
    root = etree.fromstring(r.content)
    fault = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    if reason is None:
        assert r.status_code == 200 and fault is None
        return
    assert r.status_code == 500 and fault is not None
    text = fault.findtext("faultstring")
    assert reason in text and "log id" in text
    assert P_VALID not in r.text and not re.search(r"\d{12}", text)


def test_stand_in_serves_its_wsdl(stubs) -> None:
    url = stubs.url("blocking", CHECK_BLOCKS)
    wsdl = etree.fromstring(httpx.get(url + "?wsdl", trust_env=False).content)
    assert wsdl.get("targetNamespace") == "urn:riv:informationsecurity:authorization:blocking:CheckBlocks:4:rivtabp21"
    assert url in httpx.get(url + "?wsdl", trust_env=False).text
    xsd = httpx.get(url + "?xsd=CheckBlocksResponder_4.0.xsd", trust_env=False)
    assert xsd.status_code == 200 and b"CheckBlocksResponse" in xsd.content


# --- mutual TLS with the dev PKI ---------------------------------------------------------------------------------
def tls_client(pki: DevPki, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle))
    if name is not None:
        ctx.load_cert_chain(str(pki.client(name).cert), str(pki.client(name).key))
    return ctx


def test_clients_over_mutual_tls(seed_file, pki) -> None:
    servers = StubServers(seed_file, ports={"consent": free_port(), "blocking": free_port(), "log": free_port()},
                          tls=tls_from_dev_pki(pki.dir))
    thread = run_in_thread(servers)
    try:
        assert servers.url("consent").startswith("https://127.0.0.1:")
        ctx = tls_client(pki, "consumer2")  # the region's consumer system, SE2321000016-9KHR
        decision = run(lambda c: check_consent(c, servers.url("consent", CHECK_CONSENT), REGION, DOCTOR, P_VALID),
                       verify=ctx)
        assert decision.has_consent
        rows = run(lambda c: check_blocks(c, servers.url("blocking", CHECK_BLOCKS), NATIONAL_HSA_ID, DOCTOR,
                                          B_OUTER_UNIT, [InformationEntity(VG, SB, day(2025, 1, 1), day(2025, 2, 1))]),
                   verify=ctx)
        assert rows[0].status is BlockStatus.BLOCKED
        run(lambda c: store_logs(c, servers.url("log", STORE_LOG), NATIONAL_HSA_ID, [entry(P_VALID)]), verify=ctx)
        assert len(servers.apps["log"].state.stub.stored(patient_id=P_VALID)) == 1
        assert_official(servers, "consent", CHECK_CONSENT)

        for name in (None, "revoked", "foreign"):  # no certificate, a revoked one, an untrusted CA's
            exc = fails(lambda c: check_consent(c, servers.url("consent", CHECK_CONSENT), REGION, DOCTOR, P_VALID),
                        verify=tls_client(pki, name))
            assert exc.reason.startswith("connection failed"), exc.reason
    finally:
        servers.stop()
        thread.join(timeout=10)


# --- seeds and running ----------------------------------------------------------------------------------------------
def test_dev_seed_matches_the_demo_world() -> None:
    seed = load_seed(DEV_SEED)
    numbers = {p.number for p in WORLD.patients}
    units = {u.hsa_id for u in WORLD.units}
    assert seed.consents and seed.blocks
    assert all(c.patient_id in numbers and c.care_provider.startswith("SE2321000016-") for c in seed.consents)
    assert all(b.patient_id in numbers and b.care_provider == VG and b.care_unit in units for b in seed.blocks)
    assert len({c.assertion_id for c in seed.consents}) == len(seed.consents)


def test_dev_seed_answers_as_documented() -> None:
    servers = StubServers(DEV_SEED, ports={"consent": free_port(), "blocking": free_port()})
    thread = run_in_thread(servers)
    try:
        pat1, pat2, pat3, pat4, pat5, _ = (p.number for p in WORLD.patients)
        assert consent(servers, DOCTOR, pat1).has_consent
        assert not consent(servers, DOCTOR, pat4).has_consent  # withdrawn
        assert not consent(servers, DOCTOR, pat5).has_consent  # expired
        assert consent(servers, AccessingActor("SE2321000016-S002", REGION, GER1), pat3).has_consent
        rows = [InformationEntity(VG, SB, day(2025, 1, 1), day(2025, 2, 1)),
                InformationEntity(VG, HT, day(2025, 1, 1), day(2025, 2, 1))]
        assert [r.status for r in blocks(servers, DOCTOR, pat2, rows)] == [BlockStatus.BLOCKED, BlockStatus.OK]
        inner = [InformationEntity(VG, HT, day(2024, 3, 1), day(2024, 3, 2))]
        assert blocks(servers, DOCTOR, pat3, inner)[0].status is BlockStatus.BLOCKED
    finally:
        servers.stop()
        thread.join(timeout=10)


@pytest.mark.parametrize(("text", "message"), [
    ('[[consent]]\npatient = "1"\ncare_provider = "a"\ncare_unit = "b"\ncolour = "red"',
     "consent[0].colour: unknown key"),
    ('[[consent]]\npatient = "1"\ncare_provider = "a"', "consent[0].care_unit: is required"),
    ('[[consent]]\npatient = "1"\ncare_provider = "a"\ncare_unit = "b"\ntype = "Maybe"',
     "consent[0].type: must be 'Consent' or 'Emergency'"),
    ('[[block]]\npatient = "1"\ntype = "Inner"\ncare_provider = "a"', "block[0]: an inner block needs care_unit"),
    ('[[block]]\npatient = "1"\ntype = "Outer"\ncare_provider = "a"\nexcluded_types = ["xyz"]',
     "block[0].excluded_types[0]: must be 'lak' or 'upp'"),
    ('[[block]]\npatient = "1"\ntype = "Outer"\ncare_provider = "a"\nvalid_from = 2024-02-01\n'
     'valid_to = 2024-01-01', "block[0]: valid_to is before valid_from"),
    ('[[block]]\npatient = "1"\ntype = "Outer"\ncare_provider = "a"\n[[block.revoke]]\ncare_unit = "b"',
     "block[0].revoke[0].valid_to: is required"),
])
def test_seed_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(SeedError, match=re.escape(message)):
        parse_seed(tomllib.loads(text))


def test_plain_http_only_on_loopback(seed_file) -> None:
    with pytest.raises(ValueError, match="loopback"):
        StubServers(seed_file, host="0.0.0.0", ports={"log": free_port()})
    with pytest.raises(ValueError, match="unknown stand-in"):
        StubServers(seed_file, ports={"spärr": free_port()})


def test_serve_stubs_runs_until_sigterm(seed_file) -> None:
    ports = {"consent": free_port(), "blocking": free_port(), "log": free_port()}
    code = ("from pathlib import Path; from adapter.stubs.run import serve_stubs; "
            f"serve_stubs(Path({str(seed_file)!r}), '127.0.0.1', {ports!r}, None)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        while True:
            try:
                if all(httpx.get(u + "/health", trust_env=False).status_code == 200 for u in urls.values()):
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "serve_stubs did not come up"
            time.sleep(0.1)
        decision = run(lambda c: check_consent(c, urls["consent"] + CHECK_CONSENT.url_path, REGION, DOCTOR, P_VALID))
        assert decision.has_consent
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
