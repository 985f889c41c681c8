"""Shared fixtures: stores, a real producer server on loopback, and the official schemas."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from adapter.config import Settings
from adapter.producer.app import create_app
from adapter.store.engine import open_store


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


@pytest.fixture
def store(tmp_path):
    return open_store(f"sqlite:///{tmp_path}/store.db")


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
