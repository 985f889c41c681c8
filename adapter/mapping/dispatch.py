"""Which mapping a FHIR resource goes through, and when a resource withdraws its records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapter.mapping.context import Context
from adapter.mapping.fhir_to_rivta import (
    care_documentation,
    care_plans,
    diagnosis,
    functional_status,
    medication_history,
)
from adapter.mapping.record import Record

Mapper = Callable[[Any, Context], list[Record]]


def _condition(cond: Any, ctx: Context) -> list[Record]:
    if functional_status.is_functional_condition(cond):
        return functional_status.map_condition(cond, ctx)
    return diagnosis.map_condition(cond, ctx)


MAPPERS: dict[str, Mapper] = {
    "Condition": _condition,
    "Observation": functional_status.map_observation,
    "MedicationStatement": medication_history.map_medication_statement,
    "MedicationRequest": medication_history.map_medication_request,
    "CarePlan": care_plans.map_care_plan,
    "DocumentReference": care_documentation.map_document_reference,
    "Composition": care_documentation.map_composition,
}


def is_clinical(resource_type: str) -> bool:
    return resource_type in MAPPERS


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
    return MAPPERS[resource.get_resource_type()](resource, ctx)
