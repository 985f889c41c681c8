"""A synthetic municipality of any size, built from the demo generators (adapter/demo/).

The demo world has six patients; this one has as many as asked, with valid (Luhn) personnummer, the
demo's care giver, care units and staff, and the demo's clinical generators run for every patient
(about 31 FHIR resources per patient, every contract, supporting Provenance and Encounter included).
`python -m bench.municipality DIR [RESOURCES]` writes it as NDJSON files.
"""

from __future__ import annotations

import copy
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from adapter.demo.generate import clinical_resources, organisation, patient_resource
from adapter.demo.world import PNR_SYSTEM, DemoPatient, World, default_world

RESOURCES_PER_PATIENT = 31  # measured on the demo generators; used only to size the world
GIVEN = ("Anna", "Erik", "Maja", "Lars", "Sven", "Ingrid", "Aisha", "Mehmet", "Elsa", "Olof")
FAMILY = ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson")


def luhn_digit(nine: str) -> str:
    total = 0
    for i, ch in enumerate(nine):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def personnummer(n: int) -> str:
    """The n-th synthetic personnummer: born 1925-1954, a valid check digit, distinct for n < 3 650 000."""
    year = 1925 + n % 30
    month = 1 + (n // 30) % 12
    day = 1 + (n // 360) % 28
    serial = (n // 10080) % 1000
    nine = f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}"
    return f"{year // 100}{nine}{luhn_digit(nine)}"


def world(patients: int) -> World:
    base = default_world()
    people = tuple(
        DemoPatient(f"p{n:06d}", personnummer(n), PNR_SYSTEM, GIVEN[n % len(GIVEN)], FAMILY[n % len(FAMILY)])
        for n in range(patients)
    )
    return World(base.source_system, base.care_giver, base.units, base.staff, _IndexedPatients(people))


def patient_resources(w: World, patient: DemoPatient, seed: int = 8) -> list[dict]:
    rng = random.Random(f"{seed}-{patient.id}")
    return [patient_resource(patient), *clinical_resources(w, patient, rng)]


class _IndexedPatients(tuple):
    """The demo generators look a patient's position up with `patients.index(p)`: make that O(1)."""

    def __new__(cls, items):
        obj = super().__new__(cls, items)
        obj._pos = {p.id: i for i, p in enumerate(items)}
        return obj

    def index(self, p, *_):  # type: ignore[override]
        return self._pos[p.id]


def resources(total: int) -> Iterator[dict]:
    """About `total` resources: the organisation, then each patient's resources."""
    w = world(max(1, round(total / RESOURCES_PER_PATIENT)))
    yield from organisation(w)
    for p in w.patients:
        yield from patient_resources(w, p)


def write(target: Path, total: int, per_file: int = 10_000) -> tuple[list[Path], int]:
    """NDJSON files of about `total` resources; returns the files and the exact count."""
    target.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    lines: list[bytes] = []
    count = 0

    def flush() -> None:
        path = target / f"municipality-{len(files):03d}.ndjson"
        path.write_bytes(b"\n".join(lines) + b"\n")
        files.append(path)
        lines.clear()

    for res in resources(total):
        lines.append(orjson.dumps(res))
        count += 1
        if len(lines) >= per_file:
            flush()
    if lines:
        flush()
    return files, count


def conditions(w: World, patient: DemoPatient, n: int) -> list[dict]:
    """`n` distinct diagnoses for one patient, shaped like the demo's (coded, dated, authored)."""
    template = next(r for r in patient_resources(w, patient) if r["resourceType"] == "Condition"
                    and r.get("identifier"))
    out = []
    for i in range(n):
        c = copy.deepcopy(template)
        c["id"] = f"{patient.id}-bench-dia-{i}"
        c["identifier"][0]["value"] = c["id"]
        c["extension"] = [e for e in c.get("extension", []) if "related" not in e["url"].lower()]
        out.append(c)
    return out


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    written, n = write(folder, wanted)
    print(f"{n} resources in {len(written)} files under {folder}")
