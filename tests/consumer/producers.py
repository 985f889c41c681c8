"""Test producers for the consumer: the municipality's demo-like data and a region's, each behind its own
embedded mTLS server, plus a producer that never answers and one that is slow."""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from adapter.demo.world import HSA_SYSTEM, PNR_SYSTEM
from adapter.ingest import ingest
from adapter.store.engine import open_store
from tests.conftest import free_port
from tests.samples import SOURCE, bundle, condition, support_bundle

REGION_SOURCE = "SE2321000016-RSYS"
REGION_GIVER = "SE2321000016-RG01"  # the region of adapter/stubs/seed.dev.toml
REGION_UNIT = "SE2321000016-GER1"  # its geriatric clinic
PNR = "191212121212"


def region_resources() -> list[dict]:
    org = {"resourceType": "Organization", "id": "region", "name": "Region Exempel",
           "identifier": [{"system": HSA_SYSTEM, "value": REGION_GIVER}]}
    unit = {"resourceType": "Organization", "id": "region-med", "name": "Medicinkliniken",
            "identifier": [{"system": HSA_SYSTEM, "value": REGION_UNIT}],
            "partOf": {"reference": "Organization/region"}}
    doctor = {"resourceType": "PractitionerRole", "id": "region-doc",
              "organization": {"reference": "Organization/region-med"},
              "identifier": [{"system": HSA_SYSTEM, "value": "SE2321000016-DOC1"}]}
    patient = {"resourceType": "Patient", "id": "region-pat", "identifier": [{"system": PNR_SYSTEM, "value": PNR}]}
    cond = condition("region-c1", identifier="r-dia-1", source=REGION_SOURCE, patient="region-pat",
                     code=("I48.9", "Förmaksflimmer, ospecificerat"))
    cond["recorder"] = {"reference": "PractitionerRole/region-doc"}
    return [org, unit, doctor, patient, cond]


def demo_store(folder):
    """The whole bundled demo municipality (every patient, every contract)."""
    from adapter.demo.generate import generate

    generate(folder / "demo")
    engine = open_store(f"sqlite:///{folder}/demo.db")
    assert not ingest(engine, [folder / "demo"]).rejected
    return engine


def municipal_store(folder):
    resources = [e["resource"] for e in support_bundle()["entry"]]
    data = bundle(*resources, condition("c-home", identifier="d-home", staff=0),
                  condition("c-housing", identifier="d-housing", staff=1))
    (folder / "m.json").write_bytes(orjson.dumps(data))
    engine = open_store(f"sqlite:///{folder}/m.db")
    assert not ingest(engine, [folder / "m.json"]).rejected
    return engine


def region_store(folder):
    (folder / "r.json").write_bytes(orjson.dumps(bundle(*region_resources())))
    engine = open_store(f"sqlite:///{folder}/r.db")
    assert not ingest(engine, [folder / "r.json"]).rejected
    return engine


class SlowProducer:
    """Answers every call after `delay` seconds with an empty 500 (or never, if delay is long)."""

    def __init__(self, delay: float) -> None:
        async def answer(_request):
            await asyncio.sleep(delay)
            return Response(b"", status_code=500)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/{path:path}", answer, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> SlowProducer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # do not wait for the deliberately hanging requests
        self.thread.join(timeout=5)


__all__ = ["REGION_SOURCE", "SOURCE", "PNR"]
