"""The consumer's world for end-to-end tests: two producers over mTLS (the demo municipality and a region) and
the national consent, blocking and log services as real SOAP stand-ins seeded from adapter/stubs/seed.dev.toml.

    with running_world(folder, pki) as world:
        world.config          # a ConsumerConfig reaching all of them with the platform's certificate
        world.set_mode("blocking", "down")
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapter.consumer.fetch import FetchSettings, Source, client_context
from adapter.consumer.overview import Assignment, ConsumerConfig, NationalServices
from adapter.gateway.pki import DevPki
from adapter.gateway.tls import TlsContexts
from adapter.stubs.run import DEV_SEED, StubServers
from tests.conftest import free_port
from tests.consumer.producers import REGION_GIVER, REGION_SOURCE, SOURCE, demo_store, region_store
from tests.gateway.conftest import TlsServer, tls_files

MUNICIPALITY = "SE2120001231-VG01"
HOME, HOUSING = "SE2120001231-HT01", "SE2120001231-SB01"
EMERGENCY_DEPARTMENT, GERIATRICS = "SE2321000016-AKUT", "SE2321000016-GER1"
TOLVAN, MARTA, GORAN, PER = "191212121212", "194004019818", "193508199282", "195311262397"
# the [names] table: a local stand-in for the HSA catalogue
NAMES = {MUNICIPALITY: "Exempelby kommun", REGION_GIVER: "Region Exempel", HOME: "Hemtjänsten Ängsvägen",
         "SE2120001231-SYS2": "Exempelby journal 2"}
ASSIGNMENTS = (
    Assignment("Akutmottagningen, Region Exempel", EMERGENCY_DEPARTMENT, REGION_GIVER),
    Assignment("Geriatriska kliniken, Region Exempel", GERIATRICS, REGION_GIVER),
    Assignment("Särskilt boende Björkgården, Exempelby kommun", HOUSING, MUNICIPALITY),
)


@dataclass
class World:
    config: ConsumerConfig
    stubs: StubServers
    folder: Path
    municipality: TlsServer
    region: TlsServer

    def set_mode(self, name: str, mode: str) -> None:
        """Steer a stand-in ("ok", "down", ...); its admin endpoint sits behind the same mTLS as its service."""
        c = self.config
        ctx = client_context(str(c.client_cert), str(c.client_key), str(c.ca))
        with httpx.Client(verify=ctx, trust_env=False) as client:
            client.post(self.stubs.url(name) + "/_stub/mode", json={"mode": mode}).raise_for_status()


@contextmanager
def running_world(folder: Path, pki: DevPki, assignments: tuple[Assignment, ...] = ASSIGNMENTS) -> Iterator[World]:
    ports = {name: free_port() for name in ("consent", "blocking", "log")}
    stubs = StubServers(DEV_SEED, ports=ports, tls=TlsContexts(tls_files(pki)))
    thread = threading.Thread(target=asyncio.run, args=(stubs.serve(),), daemon=True)
    thread.start()
    try:
        with TlsServer(demo_store(folder), TlsContexts(tls_files(pki))) as municipality, \
                TlsServer(region_store(folder), TlsContexts(tls_files(pki))) as region:
            deadline = time.monotonic() + 10
            while not stubs.started:
                assert time.monotonic() < deadline, "the stand-ins did not start"
                time.sleep(0.02)
            platform = pki.client("platform")  # the hospital's system calls with its function certificate
            config = ConsumerConfig(
                sources=(Source("Exempelby kommun", municipality.url, SOURCE),
                         Source("Region Exempel", region.url, REGION_SOURCE)),
                services=NationalServices(stubs.url("consent"), stubs.url("blocking"), stubs.url("log")),
                client_cert=platform.cert, client_key=platform.key, ca=pki.ca_bundle,
                fetch=FetchSettings(per_source_timeout=5, deadline=8), service_timeout=3,
                assignments=assignments, name_table=NAMES,
            )
            yield World(config, stubs, folder, municipality, region)
    finally:
        stubs.stop()
        thread.join(timeout=10)


__all__ = ["REGION_GIVER", "REGION_SOURCE", "SOURCE", "World", "running_world"]
