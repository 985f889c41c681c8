"""Each caller of the one RIVTA client keeps its own words for an answer over its cap, and none of them reads
past the cap: the fan-out and the suite used to read a whole answer before looking at its size."""

from __future__ import annotations

import asyncio

import httpx

from adapter.consumer.fetch import FetchSettings, Outcome, Source, fetch_all
from adapter.ei.client import EiUnavailable, send_update
from adapter.ei.messages import Engagement, EngagementTransaction
from adapter.rivta.contracts import GET_DIAGNOSIS
from adapter.suite import exchange
from tests.rivta.servers import stream_forever

CAP = 1_000_000
SENT_AT_MOST = CAP + 32 * 1024 * 1024  # the cap, one read, and what the socket buffers held
PNR = "191212121212"
SOURCE = "SE2120001231-SYS1"


def test_the_consumer_fan_out(server) -> None:
    srv = server(stream_forever)

    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:
            return await fetch_all(client, [Source("Stor", srv.url, SOURCE)], PNR, "1.2.752.129.2.1.3.1",
                                   FetchSettings(per_source_timeout=5, deadline=10, max_answer_bytes=CAP),
                                   contracts=(GET_DIAGNOSIS,))

    (result,) = asyncio.run(go())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "unreadable answer (HTTP 200)")
    assert srv.finished.wait(5) and srv.connections[0].sent < SENT_AT_MOST


def test_the_suite(server, monkeypatch) -> None:
    monkeypatch.setattr(exchange, "MAX_ANSWER_BYTES", CAP)
    srv = server(stream_forever)

    async def go() -> exchange.Exchange:
        async with httpx.AsyncClient(trust_env=False) as client:
            caller = exchange.Caller(client, srv.url, GET_DIAGNOSIS, "SE1-C", timeout=5)
            return await caller.post("large", b"<x/>", consumer="SE1-C")

    ex = asyncio.run(go())
    assert ex.status == 200 and not ex.error and ex.seconds > 0
    assert ex.headers["x-rivta-original-serviceconsumer-hsaid"] == "SE1-C"
    answer = exchange.read(ex, GET_DIAGNOSIS)
    assert answer.unreadable == f"HTTP 200, not readable as XML (answer larger than {CAP} bytes)"
    assert srv.finished.wait(5) and srv.connections[0].sent < SENT_AT_MOST


def test_the_engagement_index_sender(server) -> None:
    srv = server(stream_forever)
    engagement = Engagement(PNR, "riv:clinicalprocess:healthcond:description", "dia", SOURCE,
                            most_recent_content="20240301101500", source_system=SOURCE,
                            data_controller="SE2120001231-0001")

    async def go() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            await send_update(client, srv.url, "SE5565594230-EI01", [EngagementTransaction(engagement, False)])

    try:
        asyncio.run(go())
    except EiUnavailable as exc:
        assert (exc.reason, exc.status) == ("answer larger than 1000000 bytes", 200)
    else:
        raise AssertionError("an endless answer was accepted")
    assert srv.finished.wait(5) and srv.connections[0].sent < SENT_AT_MOST
