"""Shared fixtures: stores, a real producer server on loopback, and the official schemas."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from adapter.config import Settings
from adapter.producer.app import create_app
from adapter.store.engine import open_store
from tests.stores import BACKENDS, StoreUrls, require

# The access log's chain key and checkpoints live outside the database: for the tests, in a folder of their own
# (each store's checkpoints are told apart by the store's URL).
_AUDIT = tempfile.mkdtemp(prefix="npo-audit-")
os.environ.setdefault("NPO_AUDIT_KEY_FILE", f"{_AUDIT}/audit.key")
os.environ.setdefault("NPO_AUDIT_CHECKPOINTS", f"{_AUDIT}/checkpoints.jsonl")
# `serve` runs one process in the tests (its default is one worker per core); tests of several ask with --workers.
os.environ.setdefault("NPO_SERVE_WORKERS", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, app, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(engine, **overrides) -> RunningServer:
    settings = Settings(store_url="sqlite://", **overrides)
    return RunningServer(create_app(engine, settings), free_port())


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Every store-dependent test runs on SQLite (embedded default) and on PostgreSQL."""
    require(request.param)
    return request.param


@pytest.fixture
def store_urls(tmp_path) -> Iterator[StoreUrls]:
    urls = StoreUrls(tmp_path)
    yield urls
    urls.cleanup()


@pytest.fixture
def new_store(backend, store_urls):
    """Opens a fresh store on the test's backend (call it more than once for several stores)."""
    engines = []

    def make(name: str = "store"):
        engine = open_store(store_urls.url(backend, name))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture
def store(new_store):
    return new_store()


@pytest.fixture
def server_for() -> Iterator:
    running: list[RunningServer] = []

    def start(engine, **overrides) -> RunningServer:
        srv = serve(engine, **overrides).__enter__()
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.__exit__(None, None, None)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A development PKI (SITHS-like), shared by every test that drives real TLS."""
    from adapter.gateway.pki import init_pki

    return init_pki(tmp_path_factory.mktemp("pki"))
