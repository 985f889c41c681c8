"""What became of each entry, and the errors that stop one (FHIR HTTP status, issue type, location)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from adapter.privacy import may_hold_personnummer


class IntakeError(Exception):
    """An entry refused: `status` is the HTTP status FHIR assigns, `code` the OperationOutcome issue type,
    `expression` the element at fault (FHIRPath, relative to the resource), never a value."""

    def __init__(self, status: int, code: str, diagnostics: str, expression: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression


@dataclass
class Result:
    status: int
    outcome: str  # created | updated | unchanged | deleted | absent | skipped | rejected
    resource_type: str | None = None
    resource_id: str | None = None
    version_id: int | None = None
    last_modified: datetime | None = None
    body: str | None = None  # the stored resource (JSON)
    error: IntakeError | None = None
    published: Counter = field(default_factory=Counter)  # records per contract
    withdrew: bool = False  # records were removed

    @property
    def location(self) -> str | None:
        if self.resource_type and self.resource_id and self.version_id:
            return f"{self.resource_type}/{self.resource_id}/_history/{self.version_id}"
        return None

    @property
    def etag(self) -> str | None:
        return f'W/"{self.version_id}"' if self.version_id else None




def shown_ref(resource_type: str | None, resource_id: str | None) -> str:
    """`Type/id` for messages and logs; an id that looks like a personnummer is not shown."""
    if not resource_id:
        return f"{resource_type or '?'}/?"
    rid = "(id not shown)" if may_hold_personnummer(resource_id) else resource_id
    return f"{resource_type}/{rid}"


_TYPE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


def shown_type(value: object) -> str:
    """A resource type named in a message: only when it looks like one (it is input)."""
    return str(value) if isinstance(value, str) and _TYPE.match(value) else "(not shown)"
