"""The signed-in employee: HSA-id, name and assignments (medarbetaruppdrag), read from the provider's claims."""

from __future__ import annotations

import json
from dataclasses import dataclass

from adapter.consumer.overview import Assignment
from adapter.consumer.staff_settings import ClaimNames
from adapter.mapping.context import HSA_ID_PATTERN


class NotStaff(Exception):
    """The claims do not describe an employee who may use NPÖ (no HSA-id, or no usable assignment)."""


@dataclass(frozen=True)
class StaffUser:
    hsa_id: str
    name: str | None
    assignments: tuple[Assignment, ...]

    def assignment(self, care_unit: str) -> Assignment | None:
        """One of the user's own assignments, by its care unit; None for anything else."""
        for a in self.assignments:
            if a.care_unit.upper() == care_unit.upper():
                return a
        return None


def _hsa(value: object) -> str | None:
    return value if isinstance(value, str) and HSA_ID_PATTERN.match(value) else None


def staff_from_claims(claims: dict, names: ClaimNames) -> StaffUser:
    hsa_id = _hsa(claims.get(names.hsa_id))
    if hsa_id is None:
        raise NotStaff(f"the claim {names.hsa_id!r} holds no HSA-id")
    raw = claims.get(names.assignments)
    if isinstance(raw, str):  # some providers put structured claims as a JSON string
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if isinstance(raw, dict):
        raw = [raw]
    assignments = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        unit, giver = _hsa(item.get(names.care_unit)), _hsa(item.get(names.care_giver))
        label = item.get(names.assignment_name)
        purpose = item.get(names.purpose) or "Vård och behandling"
        if unit and giver and isinstance(label, str) and isinstance(purpose, str):
            assignments.append(Assignment(label, unit, giver, purpose))
    if not assignments:
        raise NotStaff(f"the claim {names.assignments!r} holds no assignment with care unit and care giver")
    name = claims.get(names.name)
    return StaffUser(hsa_id, name if isinstance(name, str) else None, tuple(assignments))
