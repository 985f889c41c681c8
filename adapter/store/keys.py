"""The columns of a stored record that decide its engagement (adapter/ei/outbox.py turns them into changes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordKey:
    patient_id: str
    patient_type: str
    contract: str
    category: str | None
    source_system: str
    care_giver: str | None

    @classmethod
    def of(cls, row: Any) -> RecordKey:  # a result row with the columns above
        return cls(row.patient_id, row.patient_type, row.contract, row.category, row.source_system, row.care_giver)
