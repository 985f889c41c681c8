"""Resolving what a clinical resource refers to: patient, author, care unit, care giver, source system.

Care unit and care giver HSA-ids come from Provenance agents (author = care unit, custodian =
care giver, as EHDS-TK does) or else from the author PractitionerRole's organization and that
Organization's partOf.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from adapter.mapping import codes, timefmt
from adapter.mapping.errors import MappingError
from adapter.mapping.record import OrgUnit, PatientId, Professional, Signer

NOPATIENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NOPATIENT_CODE = "NOPATIENT"
HSA_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_.:]{0,63}$")
PATIENT_ID_PATTERN = re.compile(r"^[0-9]{8}[0-9A-Za-z]{4}$")

# Resources that only give context to clinical records; kept in the store between runs.
SUPPORTING_TYPES = frozenset(
    {"Patient", "Organization", "Practitioner", "PractitionerRole", "Provenance", "Encounter", "Medication"}
)


class Context:
    """Reference resolution over the resources of this ingest run plus those stored earlier."""

    def __init__(
        self,
        default_source_system: str | None = None,
        lookup: Callable[[str], Any | None] | None = None,
    ) -> None:
        self.default_source_system = default_source_system
        self._lookup = lookup
        self._by_ref: dict[str, Any] = {}
        self._provenance: dict[str, list[Any]] = defaultdict(list)

    # -- indexing -------------------------------------------------------------------------
    def add(self, resource: Any, full_url: str | None = None) -> None:
        key = f"{resource.get_resource_type()}/{resource.id}" if resource.id else None
        for ref in (key, full_url):
            if ref:
                self._by_ref[ref] = resource
        if resource.get_resource_type() == "Provenance":
            for target in resource.target or []:
                if target.reference:
                    self._provenance[target.reference].append(resource)

    def add_all(self, resources: Iterable[Any]) -> None:
        for r in resources:
            self.add(r)

    def resolve(self, ref: Any) -> Any | None:
        if ref is None or not getattr(ref, "reference", None):
            return None
        key = ref.reference
        found = self._by_ref.get(key)
        if found is None and self._lookup is not None and "/" in key and not key.startswith("urn:"):
            found = self._lookup(key)
            if found is not None:
                self.add(found)
        return found

    # -- header parts -----------------------------------------------------------------------
    def source_system(self, resource: Any) -> str:
        src = resource.meta.source if resource.meta and resource.meta.source else None
        if src and "#" in src:
            system, _, value = src.partition("#")
            if codes.is_hsa_system(system) and value:
                return _hsa(value, "meta.source")
        if self.default_source_system:
            return self.default_source_system
        raise MappingError(
            "meta.source", "no source-system HSA-id (expected urn:oid:1.2.752.129.2.1.4.1#<HSA-id>, "
            "or configure NPO_SOURCE_SYSTEM_HSAID)"
        )

    def document_id(self, resource: Any) -> str:
        idents = resource.identifier
        if idents is not None and not isinstance(idents, list):  # Composition.identifier is 0..1
            idents = [idents]
        for ident in idents or []:
            if ident.value:
                return ident.value
        if resource.id:
            return resource.id
        raise MappingError("identifier", "no document id (identifier.value or id)")

    def approved_for_patient(self, resource: Any) -> bool:
        for sec in (resource.meta.security or []) if resource.meta else []:
            if sec.code == NOPATIENT_CODE and sec.system == NOPATIENT_SYSTEM:
                return False
        return True

    def patient(self, subject: Any, field: str = "subject") -> PatientId:
        if subject is None:
            raise MappingError(field, "missing patient reference")
        idents = [subject.identifier] if subject.identifier else []
        target = self.resolve(subject)
        if target is not None and target.get_resource_type() == "Patient":
            idents.extend(target.identifier or [])
        best: PatientId | None = None
        for ident in idents:
            oid = codes.oid_for(ident.system)
            if not oid or not ident.value:
                continue
            value = ident.value.replace("-", "").replace("+", "")
            candidate = PatientId(value, oid)
            rank = {codes.PERSONNUMMER: 0, codes.SAMORDNINGSNUMMER: 1}.get(oid, 2)
            if best is None or rank < {codes.PERSONNUMMER: 0, codes.SAMORDNINGSNUMMER: 1}.get(best.type, 2):
                best = candidate
        if best is None:
            raise MappingError(field, "no personnummer, samordningsnummer or reservnummer identifier")
        if not PATIENT_ID_PATTERN.match(best.id):
            raise MappingError(f"{field}.identifier.value", "patient id must be 12 characters without separator")
        return best

    def care_contact(self, encounter_ref: Any) -> str | None:
        if encounter_ref is None:
            return None
        if encounter_ref.identifier and encounter_ref.identifier.value:
            return encounter_ref.identifier.value
        enc = self.resolve(encounter_ref)
        if enc is not None:
            for ident in enc.identifier or []:
                if ident.value:
                    return ident.value
            return enc.id
        return None

    def professional(self, ref: Any, time: Any, resource: Any, field: str) -> Professional:
        """The accountable professional: who (from a PractitionerRole or Practitioner) and where."""
        if time is None:
            raise MappingError(field, "missing author time")
        hsa_id, name, role_code, role_text, org_unit, org = self._who(ref)
        care_unit, care_giver = self._provenance_units(resource)
        if care_unit is None and org is not None:
            care_unit = _org_hsa(org)
        if care_giver is None and org is not None and org.partOf is not None:
            parent = self.resolve(org.partOf)
            care_giver = _org_hsa(parent) if parent is not None else _ref_hsa(org.partOf)
        if org_unit is None and care_unit is not None and org is not None and org.name:
            org_unit = OrgUnit(care_unit, org.name)
        return Professional(
            time=timefmt.timestamp(time),
            hsa_id=hsa_id,
            name=name,
            role_code=role_code,
            role_text=role_text,
            org_unit=org_unit,
            care_unit=care_unit,
            care_giver=care_giver,
        )

    def signer(self, ref: Any, time: Any) -> Signer | None:
        if time is None:
            return None
        hsa_id, name, *_ = self._who(ref)
        return Signer(time=timefmt.timestamp(time), hsa_id=hsa_id, name=name)

    # -- internals ------------------------------------------------------------------------------
    def _who(self, ref: Any):
        hsa_id = _ref_hsa(ref)
        name = ref.display if ref is not None and ref.display else None
        role_code = role_text = org_unit = org = None
        target = self.resolve(ref)
        if target is not None:
            rtype = target.get_resource_type()
            if rtype == "PractitionerRole":
                hsa_id = hsa_id or _first_hsa(target.identifier)
                practitioner = self.resolve(target.practitioner)
                if target.practitioner is not None:
                    name = name or target.practitioner.display
                    hsa_id = hsa_id or _ref_hsa(target.practitioner)
                if practitioner is not None:
                    hsa_id = hsa_id or _first_hsa(practitioner.identifier)
                    name = name or _human_name(practitioner)
                role_code, role_text = _role(target.code)
                org = self.resolve(target.organization)
                unit_hsa = _ref_hsa(target.organization) or (_org_hsa(org) if org is not None else None)
                unit_name = (target.organization.display if target.organization else None) or (
                    org.name if org is not None else None
                )
                if unit_hsa and unit_name:
                    org_unit = OrgUnit(unit_hsa, unit_name)
                if org is None and unit_hsa:
                    org = _LogicalOrg(unit_hsa, unit_name)
            elif rtype == "Practitioner":
                hsa_id = hsa_id or _first_hsa(target.identifier)
                name = name or _human_name(target)
        return hsa_id, name, role_code, role_text, org_unit, org

    def _provenance_units(self, resource: Any) -> tuple[str | None, str | None]:
        unit = giver = None
        keys = [f"{resource.get_resource_type()}/{resource.id}", f"urn:uuid:{resource.id}"]
        for key in keys:
            for prov in self._provenance.get(key, []):
                for agent in prov.agent or []:
                    kinds = {c.code for c in (agent.type.coding or [])} if agent.type else set()
                    hsa = _ref_hsa(agent.who)
                    if hsa is None:
                        target = self.resolve(agent.who)
                        hsa = _org_hsa(target) if target is not None else None
                    if "author" in kinds and hsa:
                        unit = hsa
                    elif "custodian" in kinds and hsa:
                        giver = hsa
        return unit, giver


class _LogicalOrg:
    """An Organization known only by a logical reference (identifier) on a PractitionerRole."""

    def __init__(self, hsa: str, name: str | None) -> None:
        self.identifier = None
        self.partOf = None
        self.name = name
        self._hsa = hsa


def _org_hsa(org: Any) -> str | None:
    if isinstance(org, _LogicalOrg):
        return org._hsa
    return _first_hsa(getattr(org, "identifier", None))


def _first_hsa(identifiers: Any) -> str | None:
    for ident in identifiers or []:
        if codes.is_hsa_system(ident.system) and ident.value:
            return _hsa(ident.value, "identifier")
    return None


def _ref_hsa(ref: Any) -> str | None:
    if ref is None or ref.identifier is None:
        return None
    ident = ref.identifier
    if codes.is_hsa_system(ident.system) and ident.value:
        return _hsa(ident.value, "identifier")
    return None


def _hsa(value: str, field: str) -> str:
    if not HSA_ID_PATTERN.match(value):
        raise MappingError(field, "not a valid HSA-id")
    return value


def _human_name(practitioner: Any) -> str | None:
    for n in practitioner.name or []:
        if n.text:
            return n.text
        parts = [*(n.given or []), n.family or ""]
        joined = " ".join(p for p in parts if p)
        if joined:
            return joined
    return None


def _role(code_concepts: Any) -> tuple[tuple[str, str, str] | None, str | None]:
    for concept in code_concepts or []:
        for coding in concept.coding or []:
            oid = codes.oid_for(coding.system)
            if oid and coding.code and coding.display:
                return (coding.code, oid, coding.display), None
        if concept.text:
            return None, concept.text
    return None, None
