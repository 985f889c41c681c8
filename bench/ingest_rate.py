"""Benchmark 3: ingest rate on a synthetic municipality of 100 000 FHIR resources (bench/municipality.py).

Ingest (`adapter.ingest.ingest`: reading, validation, reference resolution, mapping, storing with the
engagement-index outbox) runs in one process on one core, into SQLite (a file) and into PostgreSQL (a fresh
schema in the local server, as tests/stores.py makes them: NPO_TEST_PG names the server); the rate is resources
per second of wall time and per CPU-second. On PostgreSQL part of the work is done by the server's backend
process: its CPU time (psutil on `pg_backend_pid()` of every connection the store opened) is added to the
ingest's own. Baseline in the same run: fhir.resources R4B validation alone of the same resources (already
parsed JSON, `get_fhir_model_class(type).model_validate(raw)`).

Target (issue 15): ingest >= 50 % of the baseline's rate per CPU-second, on each engine. `python -m
bench.ingest_rate` (NPO_BENCH_SCALE shrinks the municipality: 0.05 is 5 000 resources; NPO_BENCH_ENGINES=sqlite
runs one engine).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psutil
import sqlalchemy as sa
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy.engine import Engine

from adapter.ingest import IngestReport, ingest
from adapter.store.engine import open_store
from bench import municipality
from bench.report import Report, scale

RESOURCES = 100_000
TARGET = 0.5
PG_BASE = os.environ.get("NPO_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def validate_all(files: list[Path]) -> tuple[float, float, int]:
    raw = [orjson.loads(line) for f in files for line in f.read_bytes().splitlines() if line.strip()]
    wall, cpu = time.perf_counter(), time.process_time()
    for r in raw:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    return time.perf_counter() - wall, time.process_time() - cpu, len(raw)


@contextmanager
def store(engine_name: str, folder: Path) -> Iterator[tuple[Engine, set[int]]]:
    """A fresh store and the set of PostgreSQL backend pids its connections use (filled as they connect)."""
    if engine_name == "sqlite":
        engine = open_store(f"sqlite:///{folder}/store.db")
        yield engine, set()
        engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    backends: set[int] = set()
    try:
        engine = open_store(f"{PG_BASE}?options=-csearch_path%3D{schema}")
        engine.dispose()  # the migration's connections are not the ingest's

        @sa.event.listens_for(engine, "connect")
        def _backend(dbapi_conn: Any, _record: Any) -> None:
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backends.add(cur.fetchone()[0])

        yield engine, backends
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def backend_cpu(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:  # closed: its time is lost, so the ingest's engine is disposed only after
            continue
        total += t.user + t.system
    return total


def run(engine_name: str, folder: Path, files: list[Path]) -> tuple[float, float, float, IngestReport]:
    """Wall seconds, the ingest's CPU seconds and the database backend's CPU seconds of one ingest."""
    with store(engine_name, folder) as (engine, backends):
        with engine.connect():  # the connection ingest will take from the pool, connected before the clock
            pass
        server = backend_cpu(backends)
        wall, cpu = time.perf_counter(), time.process_time()
        result = ingest(engine, files)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        server = backend_cpu(backends) - server
    return wall, cpu, server, result


def main() -> int:
    report = Report("ingest_rate")
    wanted = max(500, round(RESOURCES * scale()))
    engines = [e for e in os.environ.get("NPO_BENCH_ENGINES", "sqlite,postgresql").split(",") if e]
    with tempfile.TemporaryDirectory(prefix="npo-bench-") as tmp:
        folder = Path(tmp)
        files, count = municipality.write(folder / "fhir", wanted)
        base_wall, base_cpu, n = validate_all(files)
        assert n == count
        report.add("municipality", resources=count)
        report.add("validation_alone", per_s=count / base_wall, per_cpu_s=count / base_cpu, seconds=base_wall)
        for name in engines:
            wall, cpu, server, result = run(name, folder, files)
            stored = sum(result.published.values())
            total = cpu + server
            report.add(name, per_s=count / wall, per_cpu_s=count / total, seconds=wall, cpu_s=cpu,
                       backend_cpu_s=server, context=result.context, records=stored, rejected=len(result.rejected),
                       ratio_per_s=base_wall / wall, ratio_per_cpu_s=base_cpu / total)
            report.at_most(f"{name}: rejected resources", len(result.rejected), 0)
            report.at_least(f"{name}: ingest rate / validation-alone rate (per CPU-second"
                            f"{', the server backend counted' if name == 'postgresql' else ''})",
                            base_cpu / total, TARGET)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
