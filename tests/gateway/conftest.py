"""A dev PKI, a store with demo-like data at two care units, and the producer behind the embedded mTLS server."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from adapter.config import Settings
from adapter.gateway import authorisation, server
from adapter.gateway.identity import CertSource
from adapter.gateway.pki import DevPki, load_pki
from adapter.gateway.tls import TlsContexts, TlsFiles
from adapter.ingest import ingest
from adapter.producer.app import Access, create_app
from tests.conftest import free_port
from tests.samples import WORLD, bundle, condition, support_bundle
from tests.stores import BACKENDS, engine_for

CLI = [sys.executable, "-m", "adapter.cli"]
REPO = Path(__file__).resolve().parents[2]
AUTHORISATIONS = Path(__file__).resolve().parents[2] / "config" / "authorisations.dev.toml"
HIDDEN_FROM = "SE2321000016-7HID"


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gw-store")
    resources = [e["resource"] for e in support_bundle()["entry"]]
    data = bundle(*resources, condition("c-home", identifier="d-home", staff=0),
                  condition("c-housing", identifier="d-housing", staff=1))
    (folder / "d.json").write_bytes(orjson.dumps(data))
    eng = engine_for(request, folder, "s")
    assert not ingest(eng, [folder / "d.json"]).rejected
    return eng


def tls_files(pki: DevPki, crls: tuple[Path, ...] | None = None) -> TlsFiles:
    return TlsFiles(pki.server_cert, pki.server_key, pki.ca_bundle, crls or (pki.crl_root, pki.crl_function))


class TlsServer:
    def __init__(self, engine, contexts: TlsContexts, app=None) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.tls = contexts
        app = app or create_app(engine, Settings(store_url="sqlite://"),
                                Access(CertSource.TLS, authorisation.load(AUTHORISATIONS)))
        self.server = uvicorn.Server(server.uvicorn_config(app, port=self.port, tls=contexts))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> TlsServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def gateway(engine, pki):
    with TlsServer(engine, TlsContexts(tls_files(pki))) as srv:
        yield srv


def client_context(pki: DevPki, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle))
    if name is not None:
        c = pki.client(name)
        ctx.load_cert_chain(str(c.cert), str(c.key))
    return ctx


def client(pki: DevPki, name: str | None) -> httpx.Client:
    return httpx.Client(verify=client_context(pki, name), trust_env=False, timeout=10)


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


@pytest.fixture
def served(engine, pki, tmp_path):
    copy = load_pki(shutil.copytree(pki.dir, tmp_path / "pki"))
    port = free_port()
    store_url = str(engine.url)
    proc = subprocess.Popen(
        [*CLI, "serve", "--store", store_url, "--port", str(port), "--log-level", "warning",
         "--tls-cert", str(copy.server_cert), "--tls-key", str(copy.server_key), "--client-ca", str(copy.ca_bundle),
         "--crl", str(copy.crl_root), "--crl", str(copy.crl_function), "--authorisations", str(AUTHORISATIONS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, proc)
        yield proc, f"https://127.0.0.1:{port}", copy
    finally:
        proc.terminate()
        proc.wait(timeout=10)


__all__ = ["WORLD", "HIDDEN_FROM", "client", "client_context", "tls_files", "TlsServer", "CLI", "wait_for_port"]
