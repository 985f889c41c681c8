"""The staff REST API over real HTTPS, as Anna signed in through the OpenID provider, against producers over mTLS
and the national services' stand-ins. Refusals of everyone else: test_sign_in.py."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select, text

from adapter.consumer.fetch import FetchSettings, Source
from adapter.consumer.pdl import access_log
from adapter.rivta.contracts import INFORMATION_TYPES
from adapter.store.engine import open_store
from adapter.store.tables import log_outbox
from tests.conftest import free_port
from tests.consumer.world import (
    EMERGENCY_DEPARTMENT,
    GORAN,
    HOME,
    HOUSING,
    MARTA,
    MUNICIPALITY,
    PER,
    REGION_GIVER,
    SOURCE,
    TOLVAN,
)
from tests.oidc.provider import STAFF, sign_in
from tests.ui.conftest import browser_like_client

DOCTOR = STAFF["anna"]["hsa_id"]
OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "ui.json"
REASON = "Medvetslös patient, akut läkemedelsgenomgång"


def who(patient: str, unit: str = EMERGENCY_DEPARTMENT, **extra) -> dict:
    return {"care_unit": unit, "patient": patient, **extra}


@pytest.fixture
def api(anna):
    return anna


def records(answer: dict) -> list[dict]:
    return [r for tab in answer["tabs"] for r in tab["records"]]


def test_assignments_are_the_users_own_from_the_provider(api):
    answer = api.get("/api/assignments")
    assert answer.status_code == 200
    assert answer.json() == STAFF["anna"]["medarbetaruppdrag"]
    session = api.get("/api/session").json()
    assert session["hsa_id"] == DOCTOR and session["name"] == "Anna Andersson" and not session["demo"]
    assert session["assignments"] == answer.json()


def test_overview_with_consent_has_every_tab_in_order_with_readable_records(api):
    resp = api.post("/api/overview", json=who(TOLVAN))  # Tolvan consented for the emergency department
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    ov = resp.json()
    assert [t["title"] for t in ov["tabs"]] == [c.label for c in INFORMATION_TYPES]
    assert [t["contract"] for t in ov["tabs"]] == [c.key for c in INFORMATION_TYPES]
    assert [t["title"] for t in ov["tabs"]] == ["Diagnoser", "Läkemedel", "Vårdplan", "Funktionstillstånd & ADL",
                                               "Anteckningar", "Vaccinationer", "Vårdkontakter",
                                               "Uppmärksamhetsinformation"]  # eight information types
    assert all(t["records"] for t in ov["tabs"]), [t["title"] for t in ov["tabs"] if not t["records"]]
    for tab in ov["tabs"]:  # newest first by the date shown
        assert [r["date"] for r in tab["records"]] == sorted((r["date"] for r in tab["records"]), reverse=True)
    for r in records(ov):
        assert re.fullmatch(r"(19|20)\d\d-\d\d-\d\d", r["date"]) and r["text"] and r["unit"] and r["source"], r
    assert {r["care_giver"] for r in records(ov)} == {MUNICIPALITY, REGION_GIVER}
    assert {r["basis"] for r in records(ov) if r["care_giver"] == MUNICIPALITY} == {"samtycke"}
    assert {r["basis"] for r in records(ov) if r["care_giver"] == REGION_GIVER} == {"egen vårdgivare"}
    assert any("<&>" in r["text"] for r in records(ov))  # as data, for the page to insert as text
    assert not ov["emergency"] and not ov["consent_needed"] and ov["blocked_care_givers"] == []
    status = {(s["source"], s["contract"]): (s["status"], s["shown"] > 0) for s in ov["sources"]}
    assert status[("Exempelby kommun", "GetDiagnosis:2")] == ("answered", True)
    assert status[("Region Exempel", "GetCarePlans:2")] == ("answered", False)  # says what is shown, nothing more


def test_emergency_access_is_flagged_and_blocked_information_named_by_care_giver_only(api):
    resp = api.post("/api/overview", json=who(MARTA, emergency_reason="Akut, patienten kan inte samtycka"))
    assert resp.status_code == 200, resp.text
    ov = resp.json()
    assert ov["emergency"] is True
    assert ov["blocked_care_givers"] == [MUNICIPALITY]
    blocked = [n["text"] for n in ov["notices"] if n["kind"] == "blocked"]
    assert len(blocked) == 1 and MUNICIPALITY in blocked[0]
    assert any(n["kind"] == "emergency" for n in ov["notices"])
    assert HOUSING not in resp.text  # the blocked unit is not even named
    assert not any("Björkgården" in r["unit"] for r in records(ov))
    assert {r["care_unit"] for r in records(ov)} == {HOME}
    assert {r["basis"] for r in records(ov)} == {"nödåtkomst"}


def test_consent_needed_then_registered_then_shown(api, world):
    before = api.post("/api/overview", json=who(PER)).json()  # Per's consent for the department expired
    assert before["consent_needed"] is True and records(before) == []
    assert [n["kind"] for n in before["notices"]] == ["consent"]

    resp = api.post("/api/consent", json=who(PER))
    assert resp.status_code == 200, resp.text
    assert resp.json()["care_unit"] == EMERGENCY_DEPARTMENT and resp.json()["assertion_id"]

    try:
        after = api.post("/api/overview", json=who(PER)).json()
    finally:  # the stand-ins live for the module: leave Per without consent for the other backend's run
        world.stubs.apps["consent"].state.stub.withdraw(resp.json()["assertion_id"])
    assert after["consent_needed"] is False
    assert {r["care_giver"] for r in records(after)} == {MUNICIPALITY}
    assert {r["basis"] for r in records(after)} == {"samtycke"}


def test_consent_service_down_is_503_with_the_reason(api, world):
    world.set_mode("consent", "down")
    try:
        resp = api.post("/api/consent", json=who(GORAN))
    finally:
        world.set_mode("consent", "ok")
    assert resp.status_code == 503
    assert resp.json()["detail"].startswith("samtyckestjänsten kunde inte nås (")
    assert GORAN not in resp.text


def test_fhir_bundle_is_valid_r4_without_nulls_and_marks_emergency(api):
    resp = api.post("/api/overview/fhir", json=who(GORAN, emergency_reason=REASON))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/fhir+json"
    assert "null" not in resp.text
    bundle = Bundle.model_validate_json(resp.text)
    assert bundle.type == "collection" and bundle.meta.security[0].code == "BTG"
    kinds = {e.resource.get_resource_type() for e in bundle.entry}
    assert {"Condition", "MedicationStatement", "CarePlan", "DocumentReference", "Provenance"} <= kinds


@pytest.mark.parametrize("patient", ["19121212121X", "191212121213", "19121212-1212", "1912121212", "191213321212",
                                     "１９１２１２１２１２１２", ""])
def test_a_bad_patient_id_is_refused_naming_the_field_never_repeating_it(api, ui_store, patient):
    before = access_log.count(ui_store)
    resp = api.post("/api/overview", json=who(patient))
    assert resp.status_code == 422
    body = resp.json()
    assert [e["field"] for e in body["errors"]] == ["patient"] and body["detail"].startswith("patient: ")
    assert patient == "" or patient not in resp.text
    assert "input" not in resp.text
    assert access_log.count(ui_store) == before  # nothing fetched, nothing logged


def test_other_bad_requests_name_their_field(api, ui_store):
    before = access_log.count(ui_store)
    unknown = api.post("/api/overview", json=who(TOLVAN, unit="SE2321000016-XXXX"))
    assert unknown.status_code == 403 and unknown.json()["errors"][0]["field"] == "care_unit"
    assert "medarbetaruppdrag" in unknown.json()["detail"] and TOLVAN not in unknown.text
    bad_unit = api.post("/api/overview", json=who(TOLVAN, unit="<script>"))
    assert bad_unit.status_code == 422 and bad_unit.json()["errors"][0]["field"] == "care_unit"
    assert "<script>" not in bad_unit.text
    missing = api.post("/api/consent", json={"care_unit": EMERGENCY_DEPARTMENT})
    assert missing.status_code == 422 and missing.json()["errors"] == [{"field": "patient", "message": "saknas"}]
    long_reason = api.post("/api/overview", json=who(TOLVAN, emergency_reason="x" * 501))
    assert long_reason.status_code == 422 and long_reason.json()["errors"][0]["field"] == "emergency_reason"
    # a cross-site form cannot send JSON: a text/plain body is not read as JSON
    form = api.post("/api/overview", content=json.dumps(who(TOLVAN)), headers={"content-type": "text/plain"})
    assert form.status_code == 422 and TOLVAN not in form.text
    broken = api.post("/api/overview", content=b"{", headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["errors"][0]["message"] == "är inte giltig JSON"
    assert access_log.count(ui_store) == before


def test_one_producer_down_others_shown_with_the_failed_source_named(world, ui_store, serve_ui, oidc):
    dead = Source("Vårdcentral Norr", f"https://127.0.0.1:{free_port()}", "SE0000000000-DEAD")
    config = replace(world.config, sources=world.config.sources + (dead,),
                     fetch=FetchSettings(per_source_timeout=2, deadline=4))
    with serve_ui(config, ui_store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        ov = client.post("/api/overview", json=who(TOLVAN)).json()
    failed = [n["text"] for n in ov["notices"] if n["kind"] == "failed"]
    assert len(failed) == 1 and "Vårdcentral Norr" in failed[0]
    mine = [s for s in ov["sources"] if s["source"] == "Vårdcentral Norr"]
    assert len(mine) == len(INFORMATION_TYPES) and all(s["status"] == "failed" and s["reason"] for s in mine)
    assert {r["care_giver"] for r in records(ov)} == {MUNICIPALITY, REGION_GIVER}


def test_every_access_is_logged_and_sent_to_the_national_log_by_the_background_task(api, ui, world, ui_store):
    assert ui.app.state.log_flusher.running
    api.post("/api/overview", json=who(TOLVAN, unit="SE2321000016-GER1"))
    logged = [e for e in access_log.entries(ui_store, TOLVAN) if e["care_unit_id"] == "SE2321000016-GER1"]
    assert logged and all(e["user_id"] == DOCTOR for e in logged)
    assert {e["assignment_name"] for e in logged} == {"Geriatriska kliniken, Region Exempel"}
    deadline = time.monotonic() + 10
    stored = []
    while time.monotonic() < deadline:
        stored = [s for s in world.stubs.apps["log"].state.stub.stored(patient_id=TOLVAN)]
        with ui_store.connect() as conn:
            waiting = conn.execute(select(log_outbox.c.seq)).all()
        if not waiting and len(stored) >= len(logged):
            break
        time.sleep(0.1)
    assert not waiting, "the background task did not send the queued entries"
    assert len(stored) >= len(logged)


def test_audit_verify_reports_the_chain(api, ui_store):
    api.post("/api/overview", json=who(TOLVAN))
    answer = api.get("/api/audit/verify").json()
    assert answer == {"entries": access_log.count(ui_store), "ok": True, "problems": []}
    assert answer["entries"] > 0


def test_when_the_access_cannot_be_logged_nothing_is_shown(world, tmp_path, caplog, serve_ui, oidc):
    store = open_store(f"sqlite:///{tmp_path}/broken.db")
    with store.begin() as conn:
        conn.execute(text("DROP TABLE access_log"))
    caplog.set_level(logging.INFO)
    with serve_ui(world.config, store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        resp = client.post("/api/overview", json=who(TOLVAN))
    assert resp.status_code == 500
    assert re.fullmatch(r"Internt fel: ingen information visas \(logg-id [0-9a-f-]{36}\)\.", resp.json()["detail"])
    assert TOLVAN not in resp.text and "access_log" not in resp.text
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("internal error" in m for m in logged)
    assert not any(TOLVAN in m or "access_log" in m for m in logged)


def test_the_page_is_self_contained_and_admits_only_its_own_script(api):
    resp = api.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no CDN, no fonts, nothing outside
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    from adapter.ui.page import _sha256
    script = re.search(r"<script>(.*)</script>", html, re.S).group(1)
    style = re.search(r"<style>(.*)</style>", html, re.S).group(1)
    assert f"script-src {_sha256(script)}" in csp and f"style-src {_sha256(style)}" in csp
    for label in ("Registrera samtycke", "Nödåtkomst", "Personnummer eller samordningsnummer", "Logga ut"):
        assert label in html
    assert 'id="employee"' not in html  # who the user is comes from the sign-in, never from the form


def test_the_served_openapi_document_is_the_committed_one(api):
    assert api.get("/openapi.json").json() == json.loads(OPENAPI.read_text(encoding="utf-8"))
    assert api.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN


def test_the_source_of_every_record_is_the_source_system(api):
    ov = api.post("/api/overview", json=who(TOLVAN)).json()
    assert {r["source"] for r in records(ov) if r["care_giver"] == MUNICIPALITY} == {SOURCE}


def test_blocking_service_down_hides_other_units_and_says_why(api, world):
    world.set_mode("blocking", "down")
    try:
        ov = api.post("/api/overview", json=who(TOLVAN)).json()
    finally:
        world.set_mode("blocking", "ok")
    assert records(ov) == []  # fail closed: the emergency department itself has no records for Tolvan
    service = [n["text"] for n in ov["notices"] if n["kind"] == "service"]
    assert len(service) == 1 and service[0].startswith("Spärrtjänsten kunde inte nås")
