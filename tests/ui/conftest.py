"""The staff UI served for real (uvicorn on loopback, lifespan on, so the access-log sender runs) against the
consumer's world: producers over mTLS and the national services' stand-ins (tests/consumer/world.py)."""

from __future__ import annotations

import threading
import time

import pytest
import uvicorn
from fastapi import FastAPI

from adapter.ui import create_ui_app
from adapter.ui.serve import uvicorn_config
from tests.conftest import free_port
from tests.consumer.world import running_world
from tests.stores import BACKENDS, engine_for


class UiServer:
    def __init__(self, app: FastAPI, **tls) -> None:
        self.app = app
        self.port = free_port()
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


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki):
    with running_world(tmp_path_factory.mktemp("ui-world"), pki) as w:
        yield w


@pytest.fixture(scope="module", params=BACKENDS)
def ui_store(request, world):
    return engine_for(request, world.folder, "consumer")


@pytest.fixture(scope="module")
def ui(world, ui_store):
    with UiServer(create_ui_app(world.config, ui_store, log_flush_interval=0.2)) as srv:
        yield srv
