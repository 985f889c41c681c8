"""Benchmark 3: ingest rate on a synthetic municipality of 100 000 FHIR resources (bench/municipality.py).

Ingest (`adapter.ingest.ingest`: reading, validation, reference resolution, mapping, storing with the
engagement-index outbox) runs in one process on one core; the rate is resources per second of wall time
and per CPU-second. Baseline in the same run: fhir.resources R4B validation alone of the same resources
(already parsed JSON, `get_fhir_model_class(type).model_validate(raw)`).

Target: ingest >= 70 % of the baseline's rate. `python -m bench.ingest_rate` (NPO_BENCH_SCALE shrinks
the municipality: 0.05 is 5 000 resources).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson
from fhir.resources.R4B import get_fhir_model_class

from adapter.ingest import ingest
from adapter.store.engine import open_store
from bench import municipality
from bench.report import Report, scale

RESOURCES = 100_000


def validate_all(files: list[Path]) -> tuple[float, float, int]:
    raw = [orjson.loads(line) for f in files for line in f.read_bytes().splitlines() if line.strip()]
    wall, cpu = time.perf_counter(), time.process_time()
    for r in raw:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    return time.perf_counter() - wall, time.process_time() - cpu, len(raw)


def main() -> int:
    report = Report("ingest_rate")
    wanted = max(500, round(RESOURCES * scale()))
    with tempfile.TemporaryDirectory(prefix="npo-bench-") as tmp:
        folder = Path(tmp)
        files, count = municipality.write(folder / "fhir", wanted)
        base_wall, base_cpu, n = validate_all(files)
        engine = open_store(f"sqlite:///{folder}/store.db")
        wall, cpu = time.perf_counter(), time.process_time()
        result = ingest(engine, files)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert n == count
    stored = sum(result.published.values())
    report.add("municipality", resources=count, context=result.context, clinical=result.read,
               records=stored, rejected=len(result.rejected))
    report.add("validation_alone", per_s=count / base_wall, per_cpu_s=count / base_cpu, seconds=base_wall)
    report.add("ingest", per_s=count / wall, per_cpu_s=count / cpu, seconds=wall)
    report.add("ratio", per_s=base_wall / wall, per_cpu_s=base_cpu / cpu)
    report.at_most("rejected resources", len(result.rejected), 0)
    report.at_least("ingest rate / validation-alone rate (per CPU-second)", base_cpu / cpu, 0.7)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
