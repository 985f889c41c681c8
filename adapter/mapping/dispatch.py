"""Which mapping a FHIR resource goes through, and when a resource withdraws its records."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from adapter.mapping.context import Context
from adapter.mapping.record import Map, Record
from adapter.rivta.contracts import CONTRACTS


def _maps() -> dict[str, list[Map]]:
    by_type: dict[str, list[Map]] = defaultdict(list)
    for contract in CONTRACTS:
        module = contract.code("mapping.fhir_to_rivta")
        for m in getattr(module, "MAPS", ()):
            by_type[m.resource_type].append(m)
    return dict(by_type)


MAPS: dict[str, list[Map]] = _maps()  # resource type -> the contracts' mappings of it, in registry order


def is_clinical(resource_type: str) -> bool:
    return resource_type in MAPS


def withdraws(resource: Any) -> bool:
    """A resource marked entered-in-error (or a superseded document) removes what it published before."""
    if getattr(resource, "status", None) == "entered-in-error":
        return True
    if resource.get_resource_type() == "Observation" and resource.status == "cancelled":
        return True
    if resource.get_resource_type() == "DocumentReference" and (
        resource.status == "superseded" or resource.docStatus == "entered-in-error"
    ):
        return True
    verification = getattr(resource, "verificationStatus", None)
    if verification is not None:  # a refuted diagnosis or assessment is no longer part of the journal
        return any(c.code in ("entered-in-error", "refuted") for c in verification.coding or [])
    return False


def map_resource(resource: Any, ctx: Context) -> list[Record]:
    """Records published by a clinical resource ([] when it carries nothing for NPÖ, e.g. a
    non-ADL Observation)."""
    maps = MAPS[resource.get_resource_type()]
    chosen = [m for m in maps if m.claims is not None and m.claims(resource)]
    out: list[Record] = []
    for m in chosen or [m for m in maps if m.claims is None]:
        out.extend(m.mapper(resource, ctx))
    return out
