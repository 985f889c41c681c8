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
