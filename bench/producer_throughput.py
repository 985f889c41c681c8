"""Benchmark 1: producer throughput and latency over mTLS on loopback.

GetDiagnosis for a patient with 20 records, in a store holding a small municipality, at 10 and 200
concurrent keep-alive connections. The server under test is `npo-adapter serve` in its own process
(mTLS, CRLs, TAK authorisations, log level info). Baseline in the same run: the same uvicorn + TLS
set-up and framework with a handler that returns the very same answer bytes without any adapter work.

Targets: >= 80 % of the baseline's req/s, zero errors, p99 <= 100 ms at 10 connections.
`python -m bench.producer_throughput` (NPO_BENCH_SCALE shortens the runs).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil
from lxml import etree

from adapter.demo.generate import organisation, patient_resource
from adapter.ingest import ingest
from adapter.rivta.contracts import GET_DIAGNOSIS as GD
from adapter.rivta.request_builder import build_request
from adapter.store.engine import open_store
from bench import loadgen, municipality
from bench.report import Report, scale
from bench.servers import client_context, dev_pki, fixed_server, free_port, real_server

RECORDS = 20
CONCURRENCY = (10, 200)


def build_store(folder: Path, patients: int = 100) -> tuple[str, str]:
    """A municipality of `patients` patients; the last one has exactly RECORDS diagnoses. Returns
    (store URL, that patient's personnummer)."""
    w = municipality.world(patients)
    resources = organisation(w)
    for p in w.patients[:-1]:
        resources += municipality.patient_resources(w, p)
    target = w.patients[-1]
    resources += [patient_resource(target), *municipality.conditions(w, target, RECORDS)]
    (folder / "fhir.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in resources))
    url = f"sqlite:///{folder}/store.db"
    report = ingest(open_store(url), [folder / "fhir.ndjson"])
    assert not report.rejected, report.rejected[:3]
    return url, target.number


def capture(url: str, ctx, body: bytes) -> bytes:
    with httpx.Client(verify=ctx, trust_env=False, timeout=30) as c:
        r = c.post(url + GD.url_path, content=body,
                   headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{GD.soap_action}"'})
    r.raise_for_status()
    return r.content


def count_records(answer: bytes) -> int:
    root = etree.fromstring(answer)
    return len(root.findall(f".//{{{GD.responder_ns}}}{GD.record_element}"))


def measure(target: loadgen.Target, pid: int, connections: int, seconds: float) -> dict:
    server = psutil.Process(pid)
    cpu0 = sum(server.cpu_times()[:2])
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = loadgen.run(target, connections, seconds)
    wall = time.perf_counter() - t0
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = (sum(server.cpu_times()[:2]) - cpu0) / wall
    client_cpu = (kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime) / wall
    return {"rps": res.rps, "p50_ms": res.percentile(50), "p99_ms": res.percentile(99), "errors": res.errors,
            "requests": res.completed, "server_cpu": server_cpu, "client_cpu": client_cpu}


def main() -> int:
    seconds = max(3.0, 15.0 * scale())
    report = Report("producer_throughput")
    with tempfile.TemporaryDirectory(prefix="npo-bench-") as tmp:
        folder = Path(tmp)
        pki = dev_pki(folder / "pki")
        store_url, pnr = build_store(folder)
        body = build_request(GD, "SE2120001231-SYS1", pnr)
        client = pki.client("platform")
        ctx = client_context(pki)
        with real_server(store_url, pki, free_port(), folder / "real.log") as real:
            answer = capture(real.url, ctx, body)
            assert count_records(answer) == RECORDS, "the benchmark patient should have 20 records"
            (folder / "answer.xml").write_bytes(answer)
            with fixed_server(folder / "answer.xml", pki, free_port(), folder / "fixed.log") as fixed:
                headers = (("Content-Type", "text/xml; charset=utf-8"), ("SOAPAction", f'"{GD.soap_action}"'))

                def target(port: int) -> loadgen.Target:
                    return loadgen.Target("127.0.0.1", port, GD.url_path, body, headers, str(client.cert),
                                          str(client.key), str(pki.ca_bundle), expect_length=len(answer))

                for n in CONCURRENCY:
                    base = measure(target(fixed.port), fixed.pid, n, seconds)
                    mine = measure(target(real.port), real.pid, n, seconds)
                    report.add(f"baseline_c{n}", **base)
                    report.add(f"producer_c{n}", **mine)
                    report.add(f"ratio_c{n}", rps=mine["rps"] / base["rps"])
                    report.at_least(f"req/s vs baseline at {n} connections", mine["rps"] / base["rps"], 0.8)
                    report.at_most(f"errors at {n} connections", mine["errors"] + base["errors"], 0)
                    if n == 10:
                        report.at_most("p99 ms at 10 connections", mine["p99_ms"], 100.0)
        report.add("set_up", answer_bytes=len(answer), records=RECORDS, seconds_per_run=seconds,
                   load_processes=2, cpus=psutil.cpu_count())
        report.note("server_cpu/client_cpu are cores busy during a run: a server near 1.0 is the bottleneck, "
                    "not the client")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
