"""Test producers for the consumer: the municipality's demo-like data and a region's, each behind its own
embedded mTLS server, plus a producer that never answers and one that is slow."""

from __future__ import annotations

import asyncio
import base64
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


# -- notes to read whole: a long one, pictures, files, links (tests of the staff page and `overview --full`) -------
NOTES_SOURCE = "SE2120001231-SYS2"  # the municipality's second journal system
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PDF = "JVBERi0xLjQKJSBhIHRlc3QgZmlsZQo="  # "%PDF-1.4\n% a test file\n"
LONG_NOTE = ("Hembesök: patienten uppger yrsel på morgonen. <script>alert('x')</script> ska stå som text.\n"
             + " ".join(["Blodtryck 135/85 sittande, 118/70 stående efter en minut."] * 8)
             + "\nPlan: följ upp om en vecka. SLUTET AV ANTECKNINGEN")


def note(rid: str, title: str, attachment: dict, *, when: str = "2024-05-02T14:35:00+02:00", staff: int = 0,
         patient: str = "pat-1", source: str = NOTES_SOURCE) -> dict:
    """A DocumentReference as a municipal journal system writes it (demo staff as author)."""
    return {
        "resourceType": "DocumentReference", "id": rid,
        "meta": {"source": f"urn:oid:1.2.752.129.2.1.4.1#{source}"},
        "masterIdentifier": {"system": "urn:oid:1.2.752.129.2.1.2.1", "value": f"note-{rid}"},
        "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": "urn:oid:1.2.752.129.2.2.2.11", "code": "bes", "display": "Besöksanteckning"}]},
        "subject": {"reference": f"Patient/{patient}"}, "date": when,
        "author": [{"reference": f"PractitionerRole/{WORLD_STAFF[staff]}-role"}],
        "description": title, "content": [{"attachment": attachment}],
    }


WORLD_STAFF = ("ssk-asa", "ssk-jonas", "at-maria", "usk-omar")


def notes_resources() -> list[dict]:
    return [
        note("long", "Hembesök", {"contentType": "text/plain; charset=utf-8",
                                  "data": base64.b64encode(LONG_NOTE.encode()).decode()}),
        note("picture", "Foto av sår", {"contentType": "image/png", "data": PNG_1X1},
             when="2024-05-01T09:05:00+02:00"),
        note("pdf", "Remissvar", {"contentType": "application/pdf", "data": PDF}, when="2024-04-30T08:00:00+02:00"),
        note("link", "Vårdplan från regionen", {"contentType": "application/pdf",
                                                "url": "https://dokument.example.se/vardplan/1"},
             when="2024-04-29T08:00:00+02:00"),
        note("plain-link", "Gammal länk", {"contentType": "application/pdf", "url": "http://intranat.example/x"},
             when="2024-04-28T08:00:00+02:00"),
    ]


def store_of(folder, name: str, resources: list[dict]):
    """A producer's store holding the demo organisation and patients plus `resources`."""
    support = [e["resource"] for e in support_bundle()["entry"]]
    (folder / f"{name}.json").write_bytes(orjson.dumps(bundle(*support, *resources)))
    engine = open_store(f"sqlite:///{folder}/{name}.db")
    assert not ingest(engine, [folder / f"{name}.json"]).rejected
    return engine
