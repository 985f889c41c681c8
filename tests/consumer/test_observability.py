"""The consumer, observed: an overview against producers over mTLS and the national stand-ins moves the consumer's
counters (per source and contract), and one correlation id, made for the overview, goes with every call it makes
and arrives in the producers' logs."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import httpx

from adapter import correlation, ops
from adapter.consumer.overview import build_overview
from adapter.consumer.pdl.decide import UserContext
from adapter.metrics import StateCollector
from adapter.rivta.contracts import GET_DIAGNOSIS
from adapter.store.engine import open_store
from tests.consumer.world import EMERGENCY_DEPARTMENT, REGION_GIVER, TOLVAN, running_world
from tests.scrape import label_values, listener, scrape, value

DOCTOR = UserContext("SE2321000016-L001", EMERGENCY_DEPARTMENT, REGION_GIVER)


def test_an_overview_moves_the_counters_and_one_correlation_id_reaches_every_service(tmp_path, pki, caplog):
    caplog.set_level(logging.INFO)
    store = open_store(f"sqlite:///{tmp_path}/consumer.db")
    sent: list[tuple[str, str | None]] = []  # every request the consumer put on the wire: path, correlation id

    async def record(request: httpx.Request) -> None:
        sent.append((request.url.path, request.headers.get(correlation.HEADER)))

    with running_world(tmp_path, pki) as world:
        probe, readiness, certificates = ops.consumer_health(store, world.config)
        with listener(readiness, StateCollector(probe, certificates)) as url:
            before = scrape(url)

            async def run():
                async with httpx.AsyncClient(verify=world.config.tls_context(), trust_env=False, timeout=5,
                                             event_hooks={"request": [record]}) as client:
                    return await build_overview(world.config, store, DOCTOR, TOLVAN, client=client)

            ov = asyncio.run(run())
            after = scrape(url)
            ready = httpx.get(url + "/health/ready", trust_env=False)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    contracts = {r.contract.key for r in ov.sources}
    assert moved("npo_consumer_calls_total", source="Exempelby kommun", contract=GET_DIAGNOSIS.key,
                 outcome="data") == 1
    assert moved("npo_consumer_calls_total") == len(ov.sources) == 2 * len(contracts)
    assert moved("npo_consumer_call_seconds_count", source="Region Exempel") == len(contracts)
    assert moved("npo_consumer_overview_seconds_count") == 1
    assert moved("npo_national_service_calls_total", outcome="answered") >= 2  # consent and blocks checked
    assert value(after, "npo_storelog_queue_depth") == len(ov.log_seqs) > 0  # the access, queued for StoreLog
    assert value(after, "npo_storelog_oldest_age_seconds") >= 0
    assert value(after, "npo_certificate_expiry_days", role="client") > 300
    assert TOLVAN not in after and DOCTOR.employee_hsa_id not in label_values(after)
    assert ready.status_code == 200

    # one id, made for the overview, on every call: producers and national services alike
    ids = {cid for _, cid in sent}
    assert len(ids) == 1
    [made] = ids
    assert str(uuid.UUID(made)) == made
    paths = [p for p, _ in sent]
    assert any(GET_DIAGNOSIS.url_path == p for p in paths)
    assert any(re.search("consent", p, re.I) for p in paths) and any(re.search("block", p, re.I) for p in paths)
    # ... and it arrived: every producer's answer line names it, as does the consumer's own line
    answered = [r.getMessage() for r in caplog.records if r.name == "adapter.producer" and " OK " in r.getMessage()]
    assert len(answered) == len(ov.sources)
    assert all(f"correlation id {made})" in line for line in answered)
    assert any(r.name == "adapter.consumer" and f"correlation id {made}" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and TOLVAN in r.getMessage()]


def test_each_overview_gets_its_own_correlation_id_and_a_request_s_id_is_kept(tmp_path, pki):
    store = open_store(f"sqlite:///{tmp_path}/consumer.db")
    sent: list[str | None] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.headers.get(correlation.HEADER))

    with running_world(tmp_path, pki) as world:
        async def run() -> None:
            async with httpx.AsyncClient(verify=world.config.tls_context(), trust_env=False, timeout=5,
                                         event_hooks={"request": [record]}) as client:
                await build_overview(world.config, store, DOCTOR, TOLVAN, client=client)
                first = set(sent)
                sent.clear()
                with correlation.scope("staff-page-request-1"):  # what the staff page's middleware sets
                    await build_overview(world.config, store, DOCTOR, TOLVAN, client=client)
                assert set(sent) == {"staff-page-request-1"}
                assert len(first) == 1 and first != {"staff-page-request-1"}

        asyncio.run(run())
    assert correlation.current() is None
