"""The raw loopback server of tests/rivta/servers.py as a fixture; servers stop when the test ends."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import pytest

from tests.rivta.servers import Handler, RawServer


@pytest.fixture
def server() -> Iterator[Callable[..., RawServer]]:
    started: list[RawServer] = []

    def start(handler: Handler, tls: ssl.SSLContext | None = None) -> RawServer:
        srv = RawServer(handler, tls).__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.__exit__()


@pytest.fixture(scope="module")
def server_tls(pki) -> ssl.SSLContext:
    """The producer's side of mTLS: the dev PKI's server certificate, client certificates required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ctx.load_verify_locations(str(pki.ca_bundle))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
