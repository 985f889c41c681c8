"""Benchmark 4: the consumer's fan-out (adapter.consumer.fetch.fetch_all) for one patient's overview:
10 producers x every information type the consumer asks (`INFORMATION_TYPES`: the newest version of each
contract, 8 today) over mTLS, each producer answering after a set delay (50 ms ... 500 ms).

Each producer is its own process (the gateway's TLS set-up, a handler that waits its delay and returns a
real answer of the demo patient). Baseline in the same run: the slowest producer alone, asked for the same
contracts by the same client. Target (issue 15): fan-out wall time <= the slowest producer alone + 50 ms,
measured the way the consumer runs (the staff page keeps one client, so its connections to producers stay
open between overviews: `adapter.consumer.overview.new_client`, made by `adapter.rivta.client.new_client`).
A fresh client per overview (one TLS handshake per call, 80 on one event loop) is measured and reported too,
without a target. Medians of several runs. The ten producer processes share the cores with the client, so
the client's own CPU time per overview (this process: requests, TLS, parsing and checking the answers) is
reported beside the wall times.
`python -m bench.fanout` (NPO_BENCH_SCALE lowers the number of runs).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from adapter.consumer.fetch import FetchSettings, Outcome, Source, fetch_all
from adapter.demo.generate import generate
from adapter.ingest import ingest
from adapter.rivta import client as rivta
from adapter.rivta import soap
from adapter.rivta.contracts import CONTRACTS, INFORMATION_TYPES
from adapter.store import records as store
from adapter.store.engine import open_store
from bench.report import Report, scale
from bench.servers import client_context, dev_pki, fixed_server, free_port

PRODUCERS = 10
DELAYS = tuple(0.05 * (i + 1) for i in range(PRODUCERS))  # 50 ms ... 500 ms
PNR = "191212121212"
SOURCE = "SE2120001231-SYS1"


def answers(folder: Path) -> Path:
    """A folder of the demo patient's answers, one file per contract served (`<name>-<major>.xml`); every
    producer returns the answer of the contract in the request's path."""
    generate(folder / "demo")
    engine = open_store(f"sqlite:///{folder}/store.db")
    assert not ingest(engine, [folder / "demo"]).rejected
    out = folder / "answers"
    out.mkdir()
    for c in CONTRACTS:
        with engine.connect() as conn:
            fragments = list(store.query(conn, store.RecordQuery(c.key, SOURCE, PNR, "1.2.752.129.2.1.3.1")))
        body = b"".join(soap.response_parts(c, fragments, soap.result_element(c, "OK", soap.new_log_id())))
        (out / f"{c.name}-{c.major}.xml").write_bytes(body)
    return out


LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100, keepalive_expiry=60)


async def overview(sources: list[Source], ctx) -> tuple[float, list]:
    """One overview with a fresh client (every connection a new TLS handshake)."""
    async with rivta.new_client(ctx, limits=LIMITS) as client:
        return await timed(client, sources)


async def timed(client: httpx.AsyncClient, sources: list[Source]) -> tuple[float, list]:
    t = time.perf_counter()
    results = await fetch_all(client, sources, PNR, "1.2.752.129.2.1.3.1", FetchSettings(deadline=20))
    return time.perf_counter() - t, results


def checked(results: list) -> None:
    bad = [r for r in results if r.outcome is not Outcome.DATA]
    assert not bad, [(r.source.name, r.contract.key, r.reason) for r in bad[:3]]
    assert len(results) == PRODUCERS * len(INFORMATION_TYPES), len(results)


async def kept_client(sources: list[Source], ctx, runs: int) -> tuple[list[float], list[float], list[float]]:
    """Overviews through one long-lived client, as the staff page runs them: the first warms the pool. Also the
    CPU seconds this process (the client alone) spent on each overview."""
    async with rivta.new_client(ctx, limits=LIMITS) as client:
        await timed(client, sources)
        walls, alone, cpu = [], [], []
        for _ in range(runs):
            started = time.process_time()
            wall, results = await timed(client, sources)
            cpu.append(time.process_time() - started)
            checked(results)
            walls.append(wall)
            alone.append((await timed(client, sources[-1:]))[0])
        return walls, alone, cpu


def main() -> int:
    report = Report("fanout")
    runs = max(3, round(9 * scale()))
    with tempfile.TemporaryDirectory(prefix="npo-bench-") as tmp, ExitStack() as stack:
        folder = Path(tmp)
        pki = dev_pki(folder / "pki")
        answer_dir = answers(folder)
        sources = []
        for i, delay in enumerate(DELAYS):
            srv = stack.enter_context(fixed_server(answer_dir, pki, free_port(), folder / f"p{i}.log", delay=delay))
            sources.append(Source(f"producer {i} ({delay * 1000:.0f} ms)", srv.url, SOURCE))
        ctx = client_context(pki)
        walls, alone = [], []
        for _ in range(runs):
            wall, results = asyncio.run(overview(sources, ctx))
            checked(results)
            walls.append(wall)
            alone.append(asyncio.run(overview(sources[-1:], ctx))[0])
        kept_walls, kept_alone, kept_cpu = asyncio.run(kept_client(sources, ctx, runs))
    slowest = max(DELAYS)
    wall, single = statistics.median(walls), statistics.median(alone)
    kept, kept_single = statistics.median(kept_walls), statistics.median(kept_alone)
    calls = PRODUCERS * len(INFORMATION_TYPES)
    cpu = statistics.median(kept_cpu)
    report.add("set_up", producers=PRODUCERS, contracts=len(INFORMATION_TYPES), calls=calls,
               delays_ms=f"{min(DELAYS) * 1000:.0f}..{slowest * 1000:.0f}", runs=runs)
    report.add("kept_client", fan_out_median_s=kept, slowest_alone_median_s=kept_single,
               overhead_vs_alone_ms=(kept - kept_single) * 1000, over_slowest_delay_ms=(kept - slowest) * 1000,
               client_cpu_per_overview_ms=cpu * 1000, client_cpu_per_call_ms=cpu / calls * 1000)
    report.add("fresh_client", fan_out_median_s=wall, max_s=max(walls), min_s=min(walls), slowest_alone_median_s=single,
               overhead_vs_alone_ms=(wall - single) * 1000, over_slowest_delay_ms=(wall - slowest) * 1000)
    report.at_most("fan-out - slowest producer alone, kept client (ms, median)", (kept - kept_single) * 1000, 50.0)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
