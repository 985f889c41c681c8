"""The bundled demo data in a store, served by the real producer: over mTLS (the green run) and over plain
HTTP behind a fault-injecting wrapper (the broken producers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapter.config import Settings
from adapter.demo.generate import generate
from adapter.gateway import authorisation
from adapter.gateway.identity import CertSource
from adapter.gateway.tls import TlsContexts
from adapter.ingest import ingest
from adapter.producer.app import Access, create_app
from adapter.suite import declaration
from tests.conftest import RunningServer, free_port
from tests.gateway.conftest import AUTHORISATIONS, TlsServer, tls_files
from tests.stores import BACKENDS, engine_for
from tests.suite.breakers import Breaker

REPO = Path(__file__).resolve().parents[2]
DEMO_DECLARATION = REPO / "config" / "contract-test.demo.toml"


@pytest.fixture(scope="session", params=BACKENDS)
def demo_engine(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite-store")
    engine = engine_for(request, tmp, "demo")
    report = ingest(engine, generate(tmp / "demo-data"))
    assert not report.rejected, report.rejected
    return engine


@pytest.fixture(scope="session")
def demo_declaration() -> declaration.Declaration:
    return declaration.load([DEMO_DECLARATION])


@pytest.fixture(scope="session")
def tls_producer(demo_engine, pki) -> Iterator[TlsServer]:
    with TlsServer(demo_engine, TlsContexts(tls_files(pki))) as srv:
        yield srv


def producer_app(engine):
    """The real producer as the dev gateway configures it, minus TLS: hidden care units keyed on the
    x-rivta-original-serviceconsumer-hsaid header (7.1)."""
    return create_app(engine, Settings(store_url="sqlite://"),
                      Access(CertSource.NONE, authorisation.load(AUTHORISATIONS)))


@pytest.fixture
def broken_producer(demo_engine) -> Iterator[Callable[[str], RunningServer]]:
    running: list[RunningServer] = []

    def start(fault: str) -> RunningServer:
        srv = RunningServer(Breaker(producer_app(demo_engine), fault), free_port()).__enter__()
        running.append(srv)
        return srv

    yield start
    for srv in running:
        srv.__exit__(None, None, None)
