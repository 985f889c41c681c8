"""The engagement index stand-in served for real: uvicorn in a thread on loopback, plain HTTP or mTLS."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from adapter.gateway import server
from adapter.gateway.tls import TlsContexts
from adapter.stubs.engagement_index import EngagementIndexStub, create_app
from tests.conftest import free_port


class StubServer:
    def __init__(self, stub: EngagementIndexStub, tls: TlsContexts | None = None) -> None:
        self.stub = stub
        port = free_port()
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.url = self.base + "/itintegration/engagementindex/Update/1/rivtabp21"
        self.server = uvicorn.Server(server.uvicorn_config(create_app(stub), port=port, tls=tls))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "stand-in did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serve_stub(stub: EngagementIndexStub | None = None, tls: TlsContexts | None = None) -> Iterator[StubServer]:
    with StubServer(stub or EngagementIndexStub(), tls) as srv:
        yield srv


@pytest.fixture(scope="module")
def _shared_stub() -> Iterator[StubServer]:
    with serve_stub() as srv:
        yield srv


@pytest.fixture
def ei(_shared_stub: StubServer) -> StubServer:
    """A running stand-in (default settings), emptied and back in mode ok for each test."""
    _shared_stub.stub.reset()
    return _shared_stub
