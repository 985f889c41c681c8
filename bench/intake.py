"""Benchmark 5: live FHIR intake while the producer answers reads.

`npo-adapter serve` (mTLS, CRLs, authorisations with the demo journal system as a writer) over a store holding
a small municipality. Ten writers, each on its own keep-alive mTLS connection as the journal system, PUT one
Condition at a time (a new diagnosis for one of the municipality's patients); after every 2xx the writer asks
GetDiagnosis for that patient as the platform, and the answer must already hold the new record. Meanwhile
`bench/loadgen.py` keeps 10 connections of GetDiagnosis reads going.

Figures: writes/s, p50/p99 write latency (request sent to 2xx received), the time from a write's 2xx to the
SOAP answer that shows it, and the stale reads (an answer after the 2xx without the record).
Targets: p99 write <= 100 ms; 0 stale reads. `python -m bench.intake` (NPO_BENCH_SCALE shortens the run).
"""

from __future__ import annotations

import asyncio
import copy
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from adapter.demo.generate import organisation
from adapter.ingest import ingest
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.request_builder import build_request
from adapter.store.engine import open_store
from bench import loadgen, municipality
from bench.report import Report, scale
from bench.servers import client_context, dev_pki, free_port, real_server

WRITERS = 10
READERS = int(os.environ.get("NPO_BENCH_READERS", "10"))  # 0: writes alone, to see their floor
PATIENTS = 50
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{GD.soap_action}"'}


def build_store(folder: Path) -> tuple[str, list, dict]:
    w = municipality.world(PATIENTS)
    resources = organisation(w)
    for p in w.patients:
        resources += municipality.patient_resources(w, p)
    (folder / "fhir.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    url = f"sqlite:///{folder}/store.db"
    report = ingest(open_store(url), [folder / "fhir.ndjson"])
    assert not report.rejected, report.rejected[:3]
    template = municipality.conditions(w, w.patients[0], 1)[0]
    return url, w.patients, template


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def writer(n: int, url: str, pki, patients: list, template: dict, until: float, out: dict) -> None:
    journal = client_context(pki, "journal")
    platform = client_context(pki, "platform")
    async with httpx.AsyncClient(base_url=url, verify=journal, trust_env=False, timeout=30) as fhir, \
            httpx.AsyncClient(base_url=url, verify=platform, trust_env=False, timeout=30) as soap:
        i = 0
        while time.perf_counter() < until:
            patient = patients[(n * 7 + i) % len(patients)]
            rid = f"w{n}-{i}"
            body = copy.deepcopy(template)
            body["id"], body["identifier"][0]["value"] = rid, f"bench-intake-{rid}"
            body["subject"] = {"reference": f"Patient/{patient.id}"}
            sent = time.perf_counter()
            r = await fhir.put(f"/fhir/Condition/{rid}", content=orjson.dumps(body),
                               headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"})
            done = time.perf_counter()
            if r.status_code != 201:
                out["errors"] += 1
                i += 1
                continue
            out["write_ms"].append((done - sent) * 1000)
            answer = await soap.post(GD.url_path, content=build_request(GD, "SE2120001231-SYS1", patient.number),
                                     headers=SOAP_HEADERS)
            seen = time.perf_counter()
            if f"bench-intake-{rid}".encode() in answer.content:
                out["visible_ms"].append((seen - done) * 1000)
            else:
                out["stale"] += 1
            i += 1


def main() -> int:
    seconds = max(5.0, 20.0 * scale())
    report = Report("intake")
    with tempfile.TemporaryDirectory(prefix="npo-bench-") as tmp:
        folder = Path(tmp)
        pki = dev_pki(folder / "pki")
        store_url, patients, template = build_store(folder)
        with real_server(store_url, pki, free_port(), folder / "real.log") as real:
            client = pki.client("platform")
            read_body = build_request(GD, "SE2120001231-SYS1", patients[-1].number)
            target = loadgen.Target("127.0.0.1", real.port, GD.url_path, read_body, tuple(SOAP_HEADERS.items()),
                                    str(client.cert), str(client.key), str(pki.ca_bundle))
            reads: dict = {}
            reading = threading.Thread(target=lambda: reads.update(result=loadgen.run(
                target, READERS, seconds + 2, warmup=0.5, processes=1) if READERS else None))
            reading.start()
            out: dict = {"write_ms": [], "visible_ms": [], "stale": 0, "errors": 0}
            time.sleep(1.0)
            t0 = time.perf_counter()

            async def all_writers() -> None:
                until = time.perf_counter() + seconds
                await asyncio.gather(*(writer(n, real.url, pki, patients, template, until, out)
                                       for n in range(WRITERS)))

            asyncio.run(all_writers())
            wall = time.perf_counter() - t0
            reading.join()
    writes = out["write_ms"]
    report.add("writes", count=len(writes), per_s=len(writes) / wall, p50_ms=percentile(writes, 50),
               p99_ms=percentile(writes, 99), mean_ms=statistics.fmean(writes) if writes else 0.0,
               errors=out["errors"])
    report.add("visible", p50_ms=percentile(out["visible_ms"], 50), p99_ms=percentile(out["visible_ms"], 99),
               stale_reads=out["stale"])
    result = reads["result"]
    if result is not None:
        report.add("concurrent_reads", rps=result.rps, p50_ms=result.percentile(50),
                   p99_ms=result.percentile(99), errors=result.errors)
    report.add("set_up", writers=WRITERS, readers=READERS, patients=PATIENTS, seconds=seconds)
    report.at_most("p99 ms per write (10 concurrent writers, reads going on)", percentile(writes, 99), 100.0)
    report.at_most("stale reads after a 2xx", out["stale"], 0)
    report.at_most("write errors", out["errors"], 0)
    report.note("visible = from the write's 2xx to the SOAP answer that shows it: one read round trip, since the "
                "write is committed before its 2xx")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
