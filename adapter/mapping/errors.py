from __future__ import annotations


class MappingError(ValueError):
    """A resource cannot be published; `field` names the FHIR element at fault (never its value)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
