"""The test OpenID provider (provider.mjs, oidc-provider from npm) as a fixture, and signing in through it the
way a browser and a machine client do: over HTTPS with the dev PKI's server certificate.

`make test` installs it (`npm ci` in tests/oidc); a missing node_modules fails the tests that need it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from adapter.consumer.staff_settings import StaffLogin
from adapter.gateway.pki import DevPki

HERE = Path(__file__).resolve().parent
STAFF = {k: v for k, v in json.loads((HERE / "staff.json").read_text(encoding="utf-8")).items() if k != "_comment"}
API_AUDIENCE = "urn:npo-adapter:staff-api"
STAFF_CLIENT_SECRET = "npo-staff-secret-for-tests-only"
NATIVE_REDIRECT = "http://127.0.0.1/callback"


def missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        return "tests/oidc/node_modules is missing: run `make test` (it runs `npm ci` there)"
    return None


@dataclass
class OidcProvider:
    issuer: str
    pki: DevPki
    process: subprocess.Popen

    def login_settings(self, public_url: str, **overrides) -> StaffLogin:
        return StaffLogin(**{"issuer": self.issuer, "client_id": "npo-staff", "client_secret": STAFF_CLIENT_SECRET,
                             "public_url": public_url, "scopes": "openid profile hsa", "api_audience": API_AUDIENCE,
                             "ca": self.pki.ca_bundle, **overrides})

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_bundle))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_provider(pki: DevPki) -> OidcProvider:
    reason = missing()
    if reason:
        raise RuntimeError(reason)
    env = {"PATH": "/usr/bin:/bin", "OIDC_TLS_CERT": str(pki.server_cert), "OIDC_TLS_KEY": str(pki.server_key),
           "OIDC_STAFF_SECRET": STAFF_CLIENT_SECRET}
    proc = subprocess.Popen(["node", str(HERE / "provider.mjs")], cwd=HERE, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not line or not line[0].strip():
        proc.kill()
        raise RuntimeError(f"the OpenID provider did not start: {proc.stderr.read()[-2000:]}")
    threading.Thread(target=proc.stderr.read, daemon=True).start()  # never let its pipe fill up
    return OidcProvider(json.loads(line[0])["issuer"], pki, proc)


def _login_form(page: httpx.Response) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert match, f"no login form at {page.url}"
    return urljoin(str(page.url), match.group(1))


def sign_in(client: httpx.Client, ui_url: str, login: str, password: str | None = None) -> str:
    """Sign in at the staff page through the provider, as a browser does; returns the session's CSRF token and
    sets it as the client's X-CSRF-Token header."""
    form = client.get(ui_url + "/login", follow_redirects=True)
    done = client.post(_login_form(form), data={"login": login, "password": password or STAFF[login]["password"]},
                       follow_redirects=True)
    assert done.status_code == 200 and str(done.url).rstrip("/") == ui_url, (done.status_code, done.url)
    csrf = client.get(ui_url + "/api/session").json()["csrf_token"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def machine_token(provider: OidcProvider, login: str, client_id: str = "npo-machine") -> str:
    """An access token (JWT for the API's audience) that a machine client obtains for `login`: authorization code
    with PKCE at the provider, as a native app does."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    with httpx.Client(verify=provider.tls(), trust_env=False, timeout=20) as c:
        form = c.get(provider.issuer + "/auth", follow_redirects=True, params={
            "client_id": client_id, "response_type": "code", "redirect_uri": NATIVE_REDIRECT,
            "scope": "openid hsa overview", "code_challenge": challenge, "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8), "resource": API_AUDIENCE})
        resp = c.post(_login_form(form), data={"login": login, "password": STAFF[login]["password"]})
        for _ in range(10):
            if not resp.is_redirect or resp.headers["location"].startswith(NATIVE_REDIRECT):
                break
            resp = c.get(urljoin(str(resp.url), resp.headers["location"]))
        assert resp.is_redirect and resp.headers["location"].startswith(NATIVE_REDIRECT), (resp.url, resp.text[:500])
        code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
        token = c.post(provider.issuer + "/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": NATIVE_REDIRECT,
            "client_id": client_id, "code_verifier": verifier, "resource": API_AUDIENCE})
        assert token.status_code == 200, token.text
        return token.json()["access_token"]
