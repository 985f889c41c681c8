"""Resolving what a clinical resource refers to: patient, author, care unit, care giver, source system.

References resolve as the FHIR specification's Bundle rules say: `#id` into the resource's `contained`; a
literal match of an entry's fullUrl (urn:uuid, urn:oid, absolute URLs); a relative `Type/id` against the
referring entry's RESTful base, then the input's resources, then the store; a logical reference
(`reference.identifier`) against resources carrying that identifier, in the input or stored. Stored resources
are seen only when they belong to the same source system as the resource being mapped (or to none).

Care unit and care giver HSA-ids come from Provenance agents (author = care unit, custodian = care giver, as
EHDS-TK does) or else from the author PractitionerRole's organization and that Organization's partOf.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol, cast

from adapter.mapping import codes, timefmt
from adapter.mapping.errors import MappingError
from adapter.mapping.record import OrgUnit, PatientId, Professional, Signer
from adapter.privacy import may_hold_personnummer

NOPATIENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NOPATIENT_CODE = "NOPATIENT"
HSA_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_.:]{0,63}$")
PATIENT_ID_PATTERN = re.compile(r"^[0-9]{8}[0-9A-Za-z]{4}$")

# Resources that only give context to clinical records.
SUPPORTING_TYPES = frozenset(
    {"Patient", "Organization", "Practitioner", "PractitionerRole", "Provenance", "Encounter", "Medication"}
)

# who a reference names: HSA-id, name, role code, role text, org unit, Organization (or _LogicalOrg)
_Who = tuple[str | None, str | None, tuple[str, str, str] | None, str | None, OrgUnit | None, Any]

URI_SYSTEM = "urn:ietf:rfc:3986"
_ID = r"[A-Za-z0-9\-.]{1,64}"
RELATIVE = re.compile(rf"^([A-Z][A-Za-z]{{1,63}})/({_ID})(?:/_history/{_ID})?$")
ABSOLUTE = re.compile(rf"^(https?://\S+?)/([A-Z][A-Za-z]{{1,63}})/({_ID})(?:/_history/{_ID})?$")


def _shown_reference(reference: str) -> str:
    """A reference as written, for a message naming what did not resolve; one that may hold a personnummer (or is
    too long to be an id) is not shown."""
    text = reference.strip()
    if len(text) > 200 or may_hold_personnummer(text) or not text.isprintable():
        return "the referenced resource (its reference is not shown: it may hold a personnummer)"
    return text


def canonical_system(system: str | None) -> str:
    """One spelling per identifier system (`urn:oid:` when the system is a known OID), for matching."""
    oid = codes.oid_for(system)
    return f"urn:oid:{oid}" if oid else (system or "")


def identifier_key(system: str | None, value: str) -> str:
    return f"identifier:{canonical_system(system)}|{value}"


def key_of(resource: Any) -> str | None:
    return f"{resource.get_resource_type()}/{resource.id}" if getattr(resource, "id", None) else None


class StoredResources(Protocol):
    """The store as reference resolution sees it (adapter/intake/resolver.py), limited to `owner`'s resources
    and those that belong to no source system."""

    def get(self, resource_type: str, resource_id: str, owner: str | None) -> Any | None: ...

    def by_identifier(self, resource_types: tuple[str, ...] | None, system: str, value: str,
                      owner: str | None) -> Any | None: ...

    def provenances_for(self, key: str, owner: str | None,
                        skip: frozenset[str] = frozenset()) -> list[tuple[str, Any]]:
        """`Type/id` and model of the stored Provenances about `key`; those in `skip` are not read (None)."""
        ...


class Context:
    """Reference resolution over the resources of this input plus those stored earlier."""

    def __init__(
        self,
        default_source_system: str | None = None,
        lookup: Callable[[str], Any | None] | None = None,
        store: StoredResources | None = None,
    ) -> None:
        self.default_source_system = default_source_system
        self.local_bases: tuple[str, ...] = ()  # this server's own FHIR base URLs: absolute references into it
        self._lookup = lookup
        self._store = store
        self._by_url: dict[str, Any] = {}  # fullUrl, and "Type/id" of resources with an id
        self._full_url: dict[int, str] = {}  # id(resource) -> its entry's fullUrl
        self._by_identifier: dict[str, list[Any]] = defaultdict(list)
        self._provenance: dict[str, list[Any]] = defaultdict(list)  # a target reference as written -> Provenances
        self._gone: set[str] = set()  # "Type/id" deleted in this input
        self._current: list[Any] = []
        # id(resource) -> its Provenances' care unit and giver, while one resource is mapped (asked once for every
        # professional it names; what they depend on is recorded in `used` the first time)
        self._units: dict[int, tuple[str | None, str | None]] = {}
        self._people: dict[tuple[Any, ...], tuple[_Who, frozenset[str]]] = {}  # the same, for _who
        self.used: set[str] = set()

    # -- indexing -------------------------------------------------------------------------
    def add(self, resource: Any, full_url: str | None = None) -> None:
        key = key_of(resource)
        for ref in (key, full_url):
            if ref:
                self._by_url[ref] = resource
        if full_url:
            self._full_url[id(resource)] = full_url
        if key:
            self._gone.discard(key)
        for ident in _identifiers(resource):
            if ident.value:
                self._by_identifier[identifier_key(ident.system, ident.value)].append(resource)
        if resource.get_resource_type() == "Provenance":
            for target in resource.target or []:
                for form in self._forms(target.reference, full_url):
                    self._provenance[form].append(resource)

    def forget(self, key: str) -> None:
        """A resource deleted in this input: neither the input's copy nor the stored one resolves any more."""
        found = self._by_url.pop(key, None)
        self._gone.add(key)
        if found is not None:
            for refs in (self._by_identifier, self._provenance):
                for forms in refs.values():
                    while found in forms:
                        forms.remove(found)

    def discard(self, resource: Any) -> None:
        """Take a resource of this input out of reference resolution again (a refused batch entry, or a large
        file's clinical resources once they are stored)."""
        full_url = self._full_url.pop(id(resource), None)
        for ref in (key_of(resource), full_url):
            if ref and self._by_url.get(ref) is resource:
                del self._by_url[ref]
        buckets = [self._by_identifier.get(identifier_key(i.system, i.value), []) for i in _identifiers(resource)
                   if i.value]
        if resource.get_resource_type() == "Provenance":
            buckets += [self._provenance.get(f, []) for t in resource.target or []
                        for f in self._forms(t.reference, full_url)]
        for bucket in buckets:
            for i in reversed(range(len(bucket))):
                if bucket[i] is resource:
                    del bucket[i]

    @contextmanager
    def mapping(self, resource: Any, full_url: str | None = None) -> Iterator[set[str]]:
        """While `resource` is mapped: `#id` resolves into its contained resources, relative references against
        its fullUrl, and the yielded set collects what the mapping depended on (for re-rendering later)."""
        if full_url:
            self._full_url[id(resource)] = full_url
        self._current.append(resource)
        saved = self.used
        inner = self.used = set()
        try:
            yield inner
        finally:
            self._current.pop()
            if self._current:  # nested: what it used, the enclosing mapping used (in the set its caller holds)
                saved |= inner
            self.used = saved
            if not self._current:
                self._units.clear()
                self._people.clear()

    def resolve(self, ref: Any) -> Any | None:
        if ref is None:
            return None
        literal = getattr(ref, "reference", None)
        if literal:
            found = self._literal(literal)
            if found is not None:
                return found
        ident = getattr(ref, "identifier", None)
        if ident is not None and getattr(ident, "value", None):
            return self._logical(getattr(ref, "type", None), ident.system, ident.value)
        return None

    # -- resolution internals --------------------------------------------------------------------
    def _forms(self, reference: str | None, full_url: str | None) -> list[str]:
        """The spellings under which a reference written in the entry at `full_url` may have been indexed."""
        if not reference:
            return []
        if reference.startswith("#"):
            return [reference]
        form, relative = _spelling(reference)
        forms = [form]
        if relative:
            base = _base(full_url)
            if base:
                forms.append(f"{base}/{form}")
        return forms

    def _literal(self, reference: str) -> Any | None:
        current = self._current[-1] if self._current else None
        if reference.startswith("#"):
            # into the container: the resource being mapped, or the one holding the contained resource in hand
            for holder in reversed(self._current):
                for contained in getattr(holder, "contained", None) or []:
                    if contained.id == reference[1:]:
                        return contained
            return self._by_url.get(reference)
        full_url = self._full_url.get(id(current)) if current is not None else None
        forms = self._forms(reference, full_url)
        for form in reversed(forms):  # the absolute form first: it is what the Bundle rules resolve
            found = self._by_url.get(form)
            if found is not None:
                self._use(found)
                return found
        m = RELATIVE.match(reference) or ABSOLUTE.match(reference)
        if m is None:
            return None  # an urn:uuid/urn:oid that is not in the input: nothing else can resolve it
        assert m.lastindex is not None  # both patterns end in two groups that always take part
        rtype, rid = m.group(m.lastindex - 1), m.group(m.lastindex)
        absolute = ABSOLUTE.match(reference)
        if absolute is not None and absolute.group(1).rstrip("/") not in self.local_bases:
            # Another server's resource: known only if an earlier input carried it under that fullUrl.
            found = self._store.by_identifier(None, URI_SYSTEM, forms[0], self._owner()) if self._store else None
        else:
            found = self._stored(rtype, rid)
        if found is not None:
            self._use(found)
        return found

    def _stored(self, rtype: str, rid: str) -> Any | None:
        key = f"{rtype}/{rid}"
        if key in self._gone:
            return None
        found = None
        if self._store is not None:
            found = self._store.get(rtype, rid, self._owner())
        elif self._lookup is not None:
            found = self._lookup(key)
        return found

    def _logical(self, rtype: str | None, system: str | None, value: str) -> Any | None:
        key = identifier_key(system, value)
        self.used.add(key)
        for candidate in self._by_identifier.get(key, []):
            if rtype is None or candidate.get_resource_type() == rtype:
                self._use(candidate)
                return candidate
        if self._store is None:
            return None
        types = (rtype,) if rtype else None
        found = self._store.by_identifier(types, canonical_system(system), value, self._owner())
        if found is not None and key_of(found) not in self._gone:
            self._use(found)
            return found
        return None

    def _use(self, resource: Any) -> None:
        key = key_of(resource)
        if key and self._current and resource is not self._current[-1]:
            self.used.add(key)

    def _owner(self) -> str | None:
        """The source system whose stored resources the resource being mapped (the outermost one: a contained
        resource in hand belongs to it) may refer to."""
        if not self._current:
            return self.default_source_system
        try:
            return self.source_system(self._current[0])
        except MappingError:
            return None

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
            if ident.value and ident.value.strip():  # a blank one would be a documentId the schema refuses
                return cast(str, ident.value)
        if resource.id:
            return cast(str, resource.id)
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
            if subject.reference and target is None:
                raise MappingError(f"{field}.reference", f"{_shown_reference(subject.reference)} is not in the "
                                   "input or the store (and the reference carries no identifier)")
            if subject.reference and target is not None and target.get_resource_type() != "Patient":
                raise MappingError(f"{field}.reference", f"{_shown_reference(subject.reference)} is a "
                                   f"{target.get_resource_type()}, not a Patient")
            raise MappingError(field, "no personnummer, samordningsnummer or reservnummer identifier")
        if not PATIENT_ID_PATTERN.match(best.id):
            raise MappingError(f"{field}.identifier.value", "patient id must be 12 characters without separator")
        return best

    def care_contact(self, encounter_ref: Any) -> str | None:
        if encounter_ref is None:
            return None
        if encounter_ref.identifier and encounter_ref.identifier.value:
            return cast(str, encounter_ref.identifier.value)
        enc = self.resolve(encounter_ref)
        if enc is not None:
            for ident in enc.identifier or []:
                if ident.value:
                    return cast(str, ident.value)
            return cast("str | None", enc.id)
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
            parent = _of_type(self.resolve(org.partOf), "Organization")
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
    def _who(self, ref: Any) -> _Who:
        """`_person` of a reference, worked out once while one resource is mapped (it names the same author or
        role for every record it publishes); a repeat adds what the first one depended on to `used` again."""
        if ref is None or not self._current:
            return self._person(ref)
        ident = ref.identifier
        key = (id(self._current[-1]), ref.reference, ident.system if ident is not None else None,
               ident.value if ident is not None else None, getattr(ref, "type", None), ref.display)
        known = self._people.get(key)
        if known is not None:
            self.used.update(known[1])
            return known[0]
        outer, self.used = self.used, set()
        try:
            found = self._person(ref)
        finally:
            depended, self.used = self.used, outer
            outer.update(depended)
        self._people[key] = (found, frozenset(depended))
        return found

    def _person(self, ref: Any) -> _Who:
        hsa_id = _ref_hsa(ref)
        name = ref.display if ref is not None and ref.display else None
        role_code: tuple[str, str, str] | None = None
        role_text: str | None = None
        org_unit: OrgUnit | None = None
        org: Any = None  # an Organization, or a _LogicalOrg known only by its HSA-id
        target = self.resolve(ref)
        if target is not None:
            rtype = target.get_resource_type()
            if rtype == "PractitionerRole":
                hsa_id = hsa_id or _first_hsa(target.identifier)
                practitioner = _of_type(self.resolve(target.practitioner), "Practitioner")
                if target.practitioner is not None:
                    name = name or target.practitioner.display
                    hsa_id = hsa_id or _ref_hsa(target.practitioner)
                if practitioner is not None:
                    hsa_id = hsa_id or _first_hsa(practitioner.identifier)
                    name = name or _human_name(practitioner)
                role_code, role_text = _role(target.code)
                org = _of_type(self.resolve(target.organization), "Organization")
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
        if self._current and id(resource) in self._units:
            return self._units[id(resource)]
        unit = giver = None
        for prov in self._provenances_of(resource):
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
        if self._current:
            self._units[id(resource)] = (unit, giver)
        return unit, giver

    def _provenances_of(self, resource: Any) -> list[Any]:
        """The Provenances about `resource`: those in the input (by any form of its reference) and those stored."""
        key = key_of(resource)
        forms = [key, f"urn:uuid:{resource.id}"] if key else []
        full_url = self._full_url.get(id(resource))
        if full_url:
            forms.append(full_url)
        inputs = {key_of(prov) or str(id(prov)): prov for form in forms for prov in self._provenance.get(form, [])}
        found: dict[str, Any] = {}
        if key and self._store is not None:
            # the input's version of a stored one wins (in the stored one's place): that one is not read
            for stored_key, prov in self._store.provenances_for(key, self._owner(), frozenset(inputs)):
                if stored_key not in self._gone:
                    found[stored_key] = prov
        found.update(inputs)
        for prov in found.values():
            self._use(prov)
        return list(found.values())


def _of_type(resource: Any, resource_type: str) -> Any | None:
    """A resolved reference only when it is of the type the element allows (the input may point anywhere)."""
    return resource if resource is not None and resource.get_resource_type() == resource_type else None


@lru_cache(maxsize=4096)
def _spelling(reference: str) -> tuple[str, bool]:
    """A reference without its `_history` part, and whether it is relative (`Type/id`). Cached: the same few
    references (the author's role, the units) are resolved for nearly every resource of an input."""
    m = RELATIVE.match(reference)
    if m:
        return f"{m.group(1)}/{m.group(2)}", True
    a = ABSOLUTE.match(reference)
    if a:
        return f"{a.group(1)}/{a.group(2)}/{a.group(3)}", False
    return reference, False


def _base(full_url: str | None) -> str | None:
    """The RESTful base of an absolute fullUrl ([base]/Type/id), against which relative references resolve."""
    m = ABSOLUTE.match(full_url or "")
    return m.group(1) if m else None


def _identifiers(resource: Any) -> list[Any]:
    found = getattr(resource, "identifier", None)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


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
            return cast(str, n.text)
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
