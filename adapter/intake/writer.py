"""Who writes, and for which source systems.

The caller's function certificate names the writing system (HSA-id); the authorisations file says for which
source systems it may write (`[[writer]]`). A resource belongs to the source system its `meta.source` names,
else to the writer's only source system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapter.intake.results import IntakeError
from adapter.mapping import codes
from adapter.mapping.context import HSA_ID_PATTERN


@dataclass(frozen=True)
class Writer:
    hsa_id: str | None  # None: the operator (file ingest) or development mode on loopback
    source_systems: frozenset[str] | None  # upper-case HSA-ids; None: every source system
    care_givers: frozenset[str] | None = None  # the care givers its records may name; None: any

    @classmethod
    def operator(cls) -> Writer:
        return cls(None, None)

    def may_publish_for(self, care_giver: str | None) -> bool:
        return self.care_givers is None or (care_giver is not None and care_giver.upper() in self.care_givers)

    def may(self, source_system: str | None) -> bool:
        if self.source_systems is None:
            return True
        return source_system is not None and source_system.upper() in self.source_systems

    @property
    def only(self) -> str | None:
        if self.source_systems is not None and len(self.source_systems) == 1:
            return next(iter(self.source_systems))
        return None

    @property
    def shown(self) -> str:
        return self.hsa_id or "operator"


def declared_source(resource: Any) -> str | None:
    """The HSA-id in meta.source (`urn:oid:1.2.752.129.2.1.4.1#<HSA-id>`), or None when it names none."""
    src = resource.meta.source if resource.meta and resource.meta.source else None
    if not src or "#" not in src:
        return None
    system, _, value = src.partition("#")
    if not codes.is_hsa_system(system) or not value:
        return None
    if not HSA_ID_PATTERN.match(value) or value != value.upper():
        # one spelling per source system: another would be a second logical address for the same records
        raise IntakeError(422, "invalid", "meta.source: not a valid HSA-id (in its canonical, upper-case form)",
                          "meta.source")
    return value


def owner_of(resource: Any, writer: Writer, default: str | None) -> str | None:
    """The source system a resource belongs to, refused (403) when the writer may not write for it."""
    source = declared_source(resource)
    if source is not None:
        if not writer.may(source):
            raise IntakeError(403, "forbidden", "meta.source: this writer is not authorised for that source system",
                              "meta.source")
        return source
    if writer.only:
        return writer.only
    if writer.source_systems is None:
        return default
    raise IntakeError(422, "required", "meta.source: name the source system "
                      "(urn:oid:1.2.752.129.2.1.4.1#<HSA-id>); this writer writes for several", "meta.source")
