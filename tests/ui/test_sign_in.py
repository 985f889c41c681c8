"""Who may use the staff API, shown by the attacks a review made: staff sign in through the OpenID provider
(tests/oidc/provider.mjs) and nothing a request says about who the user is counts."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapter.consumer.pdl import access_log
from adapter.consumer.staff_settings import EmergencyPolicy, SessionPolicy
from tests.conftest import free_port
from tests.consumer.world import EMERGENCY_DEPARTMENT, GORAN, HOUSING, TOLVAN
from tests.oidc.provider import API_AUDIENCE, STAFF, machine_token, sign_in
from tests.ui.conftest import browser_like_client, signed_in_config

ANNA = STAFF["anna"]["hsa_id"]
REASON = "Medvetslös patient, akut läkemedelsgenomgång"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def ask(unit: str = EMERGENCY_DEPARTMENT, patient: str = TOLVAN, **extra) -> dict:
    return {"care_unit": unit, "patient": patient, **extra}


@pytest.fixture
def stranger(ui, oidc):
    """A client that never signed in."""
    with browser_like_client(oidc, ui.url) as client:
        yield client


def test_the_old_attack_an_invented_employee_in_the_body_gets_nothing(stranger, anna, ui_store):
    before = access_log.count(ui_store)
    forged = {"employee": "SE2321000016-NOBODY", "care_unit": EMERGENCY_DEPARTMENT, "patient": TOLVAN}
    for path in ("/api/overview", "/api/overview/fhir", "/api/consent"):
        resp = stranger.post(path, json=forged)
        assert resp.status_code == 401, (path, resp.text)
        assert TOLVAN not in resp.text
    # signed in, the body still cannot say who the user is
    resp = anna.post("/api/overview", json=forged)
    assert resp.status_code == 422 and resp.json()["errors"] == [{"field": "employee", "message": "är okänt"}]
    assert access_log.count(ui_store) == before


def test_a_forged_token_is_refused(stranger, oidc, ui_store):
    """Signed with the attacker's key under the provider's key id, with the right issuer and audience."""
    kid = httpx.get(oidc.issuer + "/jwks", verify=oidc.tls()).json()["keys"][0]["kid"]
    now = int(time.time())
    claims = {"iss": oidc.issuer, "aud": API_AUDIENCE, "sub": "anna", "iat": now, "exp": now + 600,
              "jti": "forged", "hsa_id": "SE2321000016-NOBODY", "medarbetaruppdrag": STAFF["anna"]["medarbetaruppdrag"]}
    forged = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": kid}, claims, RSAKey.generate_key(2048))
    unsigned = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims)}."
    before = access_log.count(ui_store)
    for token in (forged, unsigned, "not-a-jwt", "a.b.c"):
        resp = stranger.post("/api/overview", json=ask(), headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, resp.text
    assert access_log.count(ui_store) == before


def test_a_real_token_with_its_claims_changed_is_refused(stranger, anna_token):
    header, payload, signature = anna_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["hsa_id"] = "SE2321000016-NOBODY"
    changed = _b64(claims)
    resp = stranger.get("/api/assignments", headers={"Authorization": f"Bearer {header}.{changed}.{signature}"})
    assert resp.status_code == 401
    assert stranger.get("/api/assignments", headers={"Authorization": f"Bearer {anna_token}"}).status_code == 200


def test_a_bearer_token_from_the_provider_works_and_is_logged_as_such(stranger, anna_token, ui_store):
    resp = stranger.post("/api/overview", json=ask(), headers={"Authorization": f"Bearer {anna_token}"})
    assert resp.status_code == 200, resp.text
    entry = access_log.entries(ui_store, TOLVAN)[-1]
    assert entry["user_id"] == ANNA and entry["authenticated_by"] == "oidc-bearer"
    assert entry["session_id"].startswith("t-") and entry["client_address"] == "127.0.0.1"


def test_an_expired_token_is_refused(world, ui_store, serve_ui, oidc):
    # npo-short's tokens live 2 seconds; this server allows 1 second of clock skew
    short = machine_token(oidc, "anna", client_id="npo-short")
    port = free_port()
    config = signed_in_config(world.config, oidc, port, leeway_seconds=1)
    with serve_ui(config, ui_store, port=port) as srv, browser_like_client(oidc, srv.url) as client:
        auth = {"Authorization": f"Bearer {short}"}
        assert client.get("/api/assignments", headers=auth).status_code == 200
        time.sleep(3.5)
        resp = client.get("/api/assignments", headers=auth)
        assert resp.status_code == 401 and "utgången" in resp.json()["detail"]


def test_a_missing_or_wrong_csrf_token_is_refused(anna, ui, oidc, ui_store):
    before = access_log.count(ui_store)
    cookies = anna.cookies
    with browser_like_client(oidc, ui.url) as bare:
        bare.cookies = cookies  # the session cookie, as a cross-site request would carry it, without the token
        assert bare.post("/api/overview", json=ask()).status_code == 403
        assert bare.post("/api/consent", json=ask(patient=GORAN)).status_code == 403
        assert bare.get("/api/assignments").status_code == 403
        wrong = bare.post("/api/overview", json=ask(), headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        with browser_like_client(oidc, ui.url) as bertil:  # another session's token does not fit this session
            other = sign_in(bertil, ui.url, "bertil")
        assert bare.post("/api/overview", json=ask(), headers={"X-CSRF-Token": other}).status_code == 403
        assert bare.get("/api/session").status_code == 200  # where the page fetches the token
    assert access_log.count(ui_store) == before


def test_another_users_assignment_is_refused(anna, stranger, anna_token, ui_store):
    before = access_log.count(ui_store)
    mine = anna.post("/api/overview", json=ask(unit=HOUSING))  # Bertil's assignment at Björkgården
    assert mine.status_code == 403 and mine.json()["errors"][0]["field"] == "care_unit"
    assert anna.post("/api/consent", json=ask(unit=HOUSING, patient=GORAN)).status_code == 403
    bearer = stranger.post("/api/overview", json=ask(unit=HOUSING), headers={"Authorization": f"Bearer {anna_token}"})
    assert bearer.status_code == 403
    assert access_log.count(ui_store) == before


def test_a_foreign_host_is_refused(anna, ui_store):
    before = access_log.count(ui_store)
    for path in ("/", "/login", "/api/session"):
        assert anna.get(path, headers={"Host": "evil.example"}).status_code == 400
    assert anna.post("/api/overview", json=ask(), headers={"Host": "evil.example"}).status_code == 400
    assert access_log.count(ui_store) == before


def test_the_session_cookie_is_httponly_secure_samesite_strict(ui, oidc):
    seen: list[httpx.Response] = []
    with httpx.Client(verify=oidc.tls(), trust_env=False, timeout=20,
                      event_hooks={"response": [seen.append]}) as client:
        sign_in(client, ui.url, "bertil")
    set_cookies = [c for r in seen for c in r.headers.get_list("set-cookie") if c.startswith("__Host-npo-session=")]
    assert len(set_cookies) == 1
    attrs = {a.strip().lower() for a in set_cookies[0].split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attrs
    assert not any(a.startswith("domain") for a in attrs)


def test_a_wrong_password_gives_no_session(ui, oidc):
    with browser_like_client(oidc, ui.url) as client:
        with pytest.raises(AssertionError):
            sign_in(client, ui.url, "anna", password="fel")
        assert client.get("/api/session").status_code == 401


def test_a_callback_not_started_here_is_refused(stranger, ui):
    resp = stranger.get("/auth/callback", params={"code": "stolen", "state": "guessed"})
    assert resp.status_code == 400
    assert stranger.get("/api/session").status_code == 401


def test_logout_ends_the_session_here_and_at_the_provider(ui, oidc):
    with browser_like_client(oidc, ui.url) as client:
        sign_in(client, ui.url, "bertil")
        assert client.post("/auth/logout", headers={"X-CSRF-Token": ""}).status_code == 403
        out = client.post("/auth/logout")
        assert out.status_code == 200
        redirect = out.json()["redirect"]
        assert redirect.startswith(oidc.issuer + "/session/end") and "id_token_hint=" in redirect
        assert client.get("/api/session").status_code == 401
        assert client.get("/api/assignments").status_code == 401
        confirm = client.get(redirect, follow_redirects=True)  # the provider asks; the user confirms
        form = confirm.text.split('action="', 1)[1].split('"', 1)[0]
        xsrf = confirm.text.split('name="xsrf" value="', 1)[1].split('"', 1)[0]
        done = client.post(httpx.URL(str(confirm.url)).join(form), data={"xsrf": xsrf, "logout": "yes"},
                           follow_redirects=True)
        assert str(done.url).startswith(ui.url + "/")
        # signed out at the provider too: signing in again asks for the password
        again = client.get(ui.url + "/login", follow_redirects=True)
        assert 'name="password"' in again.text


def test_an_idle_session_ends(world, ui_store, serve_ui, oidc):
    config = replace(world.config, session=SessionPolicy(idle_seconds=1.0, lifetime_seconds=600))
    with serve_ui(config, ui_store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        assert client.get("/api/assignments").status_code == 200
        time.sleep(1.5)
        assert client.get("/api/assignments").status_code == 401


def test_a_session_ends_after_its_lifetime_however_busy(world, ui_store, serve_ui, oidc):
    config = replace(world.config, session=SessionPolicy(idle_seconds=600, lifetime_seconds=2.0))
    with serve_ui(config, ui_store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            assert client.get("/api/assignments").status_code == 200
            time.sleep(0.3)
        time.sleep(0.8)
        assert client.get("/api/assignments").status_code == 401


def test_the_access_log_names_the_signed_in_user_assignment_session_and_address(anna, ui_store):
    assert anna.post("/api/overview", json=ask(unit="SE2321000016-GER1")).status_code == 200
    entry = access_log.entries(ui_store, TOLVAN)[-1]
    assert entry["user_id"] == ANNA and entry["user_name"] == "Anna Andersson"
    assert entry["care_unit_id"] == "SE2321000016-GER1" and entry["care_provider_id"] == "SE2321000016-RG01"
    assert entry["assignment_name"] == "Geriatriska kliniken, Region Exempel"
    assert entry["authenticated_by"] == "oidc-session"
    assert entry["session_id"].startswith("s-") and entry["client_address"] == "127.0.0.1"
    assert entry["session_id"] not in anna.cookies.get("__Host-npo-session", "")  # the cookie is not logged


def test_emergency_needs_a_reason_of_substance_and_ends_after_the_configured_time(world, anna, ui_store):
    before = access_log.count(ui_store)
    for reason in ("x", "   akut      ", ""):
        resp = anna.post("/api/overview", json=ask(patient=GORAN, emergency_reason=reason))
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "emergency_reason", reason
    assert access_log.count(ui_store) == before
    resp = anna.post("/api/overview", json=ask(patient=GORAN, emergency_reason=REASON))
    assert resp.status_code == 200 and resp.json()["emergency"] is True
    stub = world.stubs.apps["consent"].state.stub
    emergency = [a for a in stub.assertions(GORAN) if a.assertion_type == "Emergency" and a.employee == ANNA]
    assert emergency, "the emergency access was not registered with the consent service"
    end = emergency[-1].end
    assert end is not None  # not open-ended
    expected = datetime.now(UTC) + timedelta(hours=4)
    assert abs((end - expected).total_seconds()) < 120


def test_emergency_accesses_per_user_are_limited(world, ui_store, serve_ui, oidc):
    config = replace(world.config, emergency=EmergencyPolicy(per_user_per_hour=2))
    with serve_ui(config, ui_store) as srv, browser_like_client(oidc, srv.url) as client:
        sign_in(client, srv.url, "anna")
        codes = [client.post("/api/overview", json=ask(patient=GORAN, emergency_reason=REASON)).status_code
                 for _ in range(3)]
        assert codes == [200, 200, 429]
        assert client.post("/api/overview", json=ask(patient=GORAN)).status_code == 200  # no emergency: not limited
