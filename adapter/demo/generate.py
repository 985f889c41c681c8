"""Writes the bundled demo data: one FHIR collection Bundle per patient plus one for the organisation.

Run `npo-adapter demo generate [DIR]`; the output is deterministic for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson

from adapter.demo.world import HSA_SYSTEM, ROLE_SYSTEM, World, default_world
from adapter.rivta.contracts import CONTRACTS

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "demo-data"


def organisation(world: World) -> list[dict]:
    out: list[dict] = []
    giver = world.care_giver
    out.append({"resourceType": "Organization", "id": giver.id, "name": giver.name,
                "identifier": [{"system": HSA_SYSTEM, "value": giver.hsa_id}]})
    for unit in world.units:
        out.append({"resourceType": "Organization", "id": unit.id, "name": unit.name,
                    "identifier": [{"system": HSA_SYSTEM, "value": unit.hsa_id}],
                    "partOf": {"reference": f"Organization/{giver.id}", "display": giver.name}})
    for s in world.staff:
        out.append({"resourceType": "Practitioner", "id": s.id,
                    "identifier": [{"system": HSA_SYSTEM, "value": s.hsa_id}],
                    "name": [{"given": [s.given], "family": s.family}]})
        out.append({"resourceType": "PractitionerRole", "id": f"{s.id}-role",
                    "practitioner": {"reference": f"Practitioner/{s.id}", "display": f"{s.given} {s.family}"},
                    "organization": {"reference": f"Organization/{s.unit.id}", "display": s.unit.name},
                    "code": [{"coding": [{"system": ROLE_SYSTEM, "code": s.role_code, "display": s.role_display}]}]})
    return out


def patient_resource(p) -> dict:
    return {"resourceType": "Patient", "id": p.id,
            "identifier": [{"system": p.system, "value": p.number}],
            "name": [{"given": [p.given], "family": p.family}]}


def bundle(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}


def clinical_resources(world: World, patient, rng: random.Random) -> list[dict]:
    """A patient's journal: every contract's demo module (where it has one), in registry order."""
    out: list[dict] = []
    for contract in CONTRACTS:
        module = contract.code("demo")
        if module is not None:
            out.extend(module.resources(world, patient, rng))
    return out


def generate(target: Path = DEFAULT_DIR, seed: int = 20261121, world: World | None = None) -> list[Path]:
    world = world or default_world()
    target.mkdir(parents=True, exist_ok=True)
    written = [_write(target / "00-organisation.json", bundle(organisation(world)))]
    for n, patient in enumerate(world.patients, start=1):
        rng = random.Random(f"{seed}-{patient.id}")
        resources = [patient_resource(patient), *clinical_resources(world, patient, rng)]
        written.append(_write(target / f"{n:02d}-{patient.id}.json", bundle(resources)))
    return written


def _write(path: Path, obj: dict) -> Path:
    path.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n")
    return path
