"""The staff UI served for real (uvicorn over HTTPS on loopback, lifespan on, so the access-log sender runs)
against the consumer's world: producers over mTLS and the national services' stand-ins
(tests/consumer/world.py), with staff signing in through a real OpenID provider (tests/oidc/provider.mjs)."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI

from adapter.consumer.overview import ConsumerConfig
from adapter.ui import create_ui_app
from adapter.ui.serve import uvicorn_config
from tests.conftest import free_port
from tests.consumer.world import running_world
from tests.oidc.provider import STAFF, OidcProvider, machine_token, sign_in, start_provider
from tests.stores import BACKENDS, engine_for


class UiServer:
    def __init__(self, app: FastAPI, port: int | None = None, **tls) -> None:
        self.app = app
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn_config(app, port=self.port, log_level="warning", **tls))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> UiServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive(), "the UI server stopped while starting"
            assert time.monotonic() < deadline, "the UI server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def oidc(pki) -> Iterator[OidcProvider]:
    provider = start_provider(pki)
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki):
    with running_world(tmp_path_factory.mktemp("ui-world"), pki) as w:
        yield w


@pytest.fixture(scope="module", params=BACKENDS)
def ui_store(request, world):
    return engine_for(request, world.folder, "consumer")


def signed_in_config(config: ConsumerConfig, oidc: OidcProvider, port: int, **login) -> ConsumerConfig:
    """The world's consumer configuration with staff signing in through the test provider, served at `port`."""
    return replace(config, assignments=(), staff_login=oidc.login_settings(f"https://127.0.0.1:{port}", **login))


@pytest.fixture(scope="module")
def serve_ui(pki, oidc) -> Callable[..., UiServer]:
    """A UiServer over HTTPS (the dev server certificate) for a configuration, signing in through the provider."""

    def make(config: ConsumerConfig, store, port: int | None = None, **app_options) -> UiServer:
        port = port or free_port()
        if config.staff_login is None and config.demo_user is None:
            config = signed_in_config(config, oidc, port)
        app = create_ui_app(config, store, **app_options)
        return UiServer(app, port, tls_cert=pki.server_cert, tls_key=pki.server_key)

    return make


@pytest.fixture(scope="module")
def ui(world, ui_store, serve_ui):
    with serve_ui(world.config, ui_store, log_flush_interval=0.2) as srv:
        yield srv


def browser_like_client(oidc: OidcProvider, base_url: str | None = None) -> httpx.Client:
    return httpx.Client(verify=oidc.tls(), trust_env=False, timeout=20, **({"base_url": base_url} if base_url else {}))


@pytest.fixture(scope="module")
def anna(ui, oidc) -> Iterator[httpx.Client]:
    """Anna (SE2321000016-L001, emergency department and geriatrics), signed in through the provider."""
    with browser_like_client(oidc, ui.url) as client:
        sign_in(client, ui.url, "anna")
        yield client


@pytest.fixture(scope="module")
def anna_token(oidc) -> str:
    return machine_token(oidc, "anna")


# -- the real browser (Debian's chromium driven by Playwright) -----------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; no `playwright install` needed)"
    return None


def spki_pin(cert_pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser(pki):
    reason = _missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        pin = f"--ignore-certificate-errors-spki-list={spki_pin(pki.server_cert)}"
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, pin], timeout=30_000)
        yield chromium
        chromium.close()


def browser_sign_in(page, url: str, who: str = "anna") -> None:
    """Through the provider's login form, as staff do."""
    from playwright.sync_api import expect

    page.goto(url + "/")
    page.get_by_role("link", name="Logga in").click()
    page.get_by_label("Användarnamn").fill(who)
    page.get_by_label("Lösenord").fill(STAFF[who]["password"])
    page.get_by_role("button", name="Logga in").click()
    expect(page.locator("#user-name")).not_to_be_empty()
