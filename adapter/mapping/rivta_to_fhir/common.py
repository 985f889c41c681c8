"""What every RIVTA record shares on its way to FHIR: reading the record element, the header
(meta.source, subject, recorder/author, signer, approvedForPatient, care contact), the PractitionerRoles
it names, its Provenance, identifiers, codes, quantities and deterministic ids.

The output profile is written down in mappings/fhir-output.md.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias, overload

from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from adapter.mapping import codes, profile, timefmt
from adapter.mapping.context import NOPATIENT_CODE, NOPATIENT_SYSTEM
from adapter.rivta.contracts import Contract, HeaderModel

# All ids are uuid5 in this namespace: the same record always gives the same ids.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://fhir.npo-adapter.org/rivta-to-fhir")

EHDS_TK = "https://fhir.inera.se/ig/ehds-tk/StructureDefinition/"
EU_EPS = "http://hl7.eu/fhir/eps/StructureDefinition/"
SE_BASE_PRACTITIONER_ROLE = "http://hl7.se/fhir/ig/base/StructureDefinition/SEBasePractitionerRole"
# EHDS-TK writes logical references to people and units with the HL7 Sweden HSA-id system.
HSA_SYSTEM = "urn:oid:1.2.752.29.4.19"
SOURCE_PREFIX = f"urn:oid:{codes.HSA_ID}#"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
UCUM = "http://unitsofmeasure.org"
URI_SYSTEM = "urn:ietf:rfc:3986"
LOCAL_ID_ROOT = "1.2.752.129.2.1.2.1"  # national OID for local ids: extension = "<source system>:<id>"

Json: TypeAlias = dict[str, Any]  # a FHIR JSON object, as built before clean() and model validation

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TIMESTAMP = re.compile(r"^\d{8}(\d{6})?$")
# UCUM units the RIVTA answers commonly carry; anything else is kept as unit text only.
_UCUM_UNITS = frozenset({
    "1", "%", "mg", "g", "kg", "ug", "ng", "mL", "L", "dL", "cL", "uL", "mmol", "umol", "mol", "U", "[iU]",
    "[IU]", "[drp]", "s", "min", "h", "d", "wk", "mo", "a", "mg/mL", "mg/h", "ug/h", "mL/h",
})
_UCUM_ANNOTATION = re.compile(r"^\{[^{}\s]+\}$")


class RecordError(ValueError):
    """A record cannot be read; `field` names the RIVTA element at fault (never its value)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# -- reading the record ------------------------------------------------------------------------------
class Node:
    """Read access to a RIVTA element by local names: the record element is in the responder namespace,
    its content in the core namespace (and a few 2.1 extensions in their own)."""

    def __init__(self, el: etree._Element, path: str) -> None:
        self.el = el
        self.path = path

    def children(self, name: str, ignore_case: bool = False) -> list[Node]:
        want = name.lower() if ignore_case else name
        found = []
        for child in self.el:
            if not isinstance(child.tag, str):
                continue
            local = etree.QName(child).localname
            if (local.lower() if ignore_case else local) == want:
                found.append(Node(child, f"{self.path}/{local}"))
        return found

    def child(self, name: str, ignore_case: bool = False) -> Node | None:
        found = self.children(name, ignore_case)
        return found[0] if found else None

    def required(self, name: str) -> Node:
        found = self.child(name)
        if found is None:
            raise RecordError(f"{self.path}/{name}", "missing")
        return found

    @property
    def value(self) -> str | None:
        text = self.el.text
        return text if text is not None and text.strip() else None

    def text(self, name: str, ignore_case: bool = False) -> str | None:
        found = self.child(name, ignore_case)
        return found.value if found is not None else None

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise RecordError(f"{self.path}/{name}", "missing")
        return value.strip()

    def time(self, name: str) -> str | None:
        value = self.text(name)
        return iso(value.strip(), f"{self.path}/{name}") if value else None

    def day(self, name: str) -> str | None:
        """A DateType (YYYYMMDD) as a FHIR date: the whole day, not its first moment."""
        value = (self.text(name) or "").strip()
        if not value:
            return None
        iso(value[:8], f"{self.path}/{name}")  # checks the value
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        value = value.strip()
        if value not in ("true", "false", "1", "0"):
            raise RecordError(f"{self.path}/{name}", "not a boolean")
        return value in ("true", "1")

    def number(self, name: str) -> Decimal | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise RecordError(f"{self.path}/{name}", "not a number") from None


def iso(value: str, field: str) -> str:
    """A RIVTA TimeStampType/DateType as ISO 8601 with the Europe/Stockholm offset of that moment."""
    if not _TIMESTAMP.match(value):
        raise RecordError(field, "not a YYYYMMDDhhmmss time")
    try:
        return timefmt.from_timestamp(value).isoformat()
    except ValueError:
        raise RecordError(field, "not a valid time") from None


# -- the header --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Professional:
    """HealthcareProfessionalType: who, in which role and unit, and when."""

    time: str | None  # authorTime, ISO
    hsa_id: str | None = None
    name: str | None = None
    role: Json | None = None  # CodeableConcept
    unit_hsa_id: str | None = None
    unit_name: str | None = None
    care_unit: str | None = None
    care_giver: str | None = None

    @property
    def identified(self) -> bool:
        return any((self.hsa_id, self.name, self.role, self.unit_hsa_id, self.unit_name))


@dataclass(frozen=True)
class Header:
    document_id: str
    source_system: str
    patient_id: str
    patient_type: str
    author: Professional
    approved_for_patient: bool
    document_title: str | None = None
    document_time: str | None = None
    signer: Professional | None = None  # legalAuthenticator (time = signatureTime)
    care_contact: str | None = None


def read_professional(node: Node) -> Professional:
    unit = node.child("healthcareProfessionalOrgUnit")
    return Professional(
        time=node.time("authorTime"),
        hsa_id=_stripped(node.text("healthcareProfessionalHSAId")),
        name=node.text("healthcareProfessionalName"),
        role=concept(node.child("healthcareProfessionalRoleCode")),
        unit_hsa_id=_stripped(unit.text("orgUnitHSAId")) if unit is not None else None,
        unit_name=unit.text("orgUnitName") if unit is not None else None,
        # GetMedicationHistory's TKB spells these with a lower-case "c"; the 2.2 schema does not.
        care_unit=_stripped(node.text("healthcareProfessionalCareUnitHSAId", ignore_case=True)),
        care_giver=_stripped(node.text("healthcareProfessionalCareGiverHSAId", ignore_case=True)),
    )


def read_header(record: Node, contract: Contract) -> Header:
    """The record header in the contract's header model."""
    if contract.header_model is HeaderModel.JOL:
        return read_jol_header(record, contract)
    h = record.required(contract.header_element)
    patient = h.required("patientId")
    author = h.required("accountableHealthcareProfessional")
    signer = h.child("legalAuthenticator")
    approved = h.boolean("approvedForPatient")
    professional = read_professional(author)
    if professional.time is None:
        raise RecordError(f"{author.path}/authorTime", "missing")
    return Header(
        document_id=h.required_text("documentId"),
        source_system=(h.text(contract.header_source_system_element)
                       or _missing(h, contract.header_source_system_element)).strip(),
        patient_id=patient.required_text("id"),
        patient_type=patient.required_text("type"),
        author=professional,
        approved_for_patient=bool(approved),  # missing (schema-invalid): not shown to the patient
        document_title=h.text("documentTitle"),
        document_time=h.time("documentTime"),
        signer=Professional(
            time=signer.time("signatureTime"),
            hsa_id=_stripped(signer.text("legalAuthenticatorHSAId")),
            name=signer.text("legalAuthenticatorName"),
        ) if signer is not None else None,
        care_contact=h.text("careContactId"),
    )


def read_jol_header(record: Node, contract: Contract) -> Header:
    """The JoL header (GetCareDocumentation 3.0) in the shape of the patient-summary header: record.id is the
    document id (root, or root:extension), the access-control header gives care unit and care giver, the author
    (0..1; else the record's time) is the accountable professional, the signature the signer."""
    h = record.required(contract.header_element)
    acl = h.required("accessControlHeader")
    rec = h.required("record")
    record_id = ii(rec.required("id"))
    patient = ii(acl.required("patientId"))
    if patient[1] is None:
        raise RecordError(f"{acl.path}/patientId/extension", "missing")
    author = h.child("author")
    signature = h.child("signature")
    record_time = rec.time("timestamp")
    if record_time is None:
        raise RecordError(f"{rec.path}/timestamp", "missing")
    approved = acl.boolean("approvedForPatient")
    return Header(
        document_id=record_id[0] if record_id[1] is None else f"{record_id[0]}:{record_id[1]}",
        source_system=_hsa(h.required("sourceSystemId")) or _missing(h, "sourceSystemId"),
        patient_id=patient[1],
        patient_type=patient[0],
        author=_jol_person(author, record_time, acl),
        approved_for_patient=bool(approved),
        document_time=record_time,
        signer=_jol_person(signature, None, None) if signature is not None else None,
    )


def _hsa(node: Node | None) -> str | None:
    """An HSA-id written as an IIType (root = the HSA OID, extension = the id)."""
    value = ii(node)
    return (value[1] or value[0]) if value is not None else None


def _jol_person(node: Node | None, fallback_time: str | None, acl: Node | None) -> Professional:
    unit = node.child("orgUnit") if node is not None else None
    return Professional(
        time=node.time("timestamp") if node is not None else fallback_time,
        hsa_id=_hsa(node.child("id")) if node is not None else None,
        name=node.text("name") if node is not None else None,
        role=concept(node.child("byRole")) if node is not None else None,
        unit_hsa_id=_stripped(unit.text("orgUnitHSAId")) if unit is not None else None,
        unit_name=unit.text("orgUnitName") if unit is not None else None,
        care_unit=_hsa(acl.child("accountableCareUnit")) if acl is not None else None,
        care_giver=_hsa(acl.child("accountableHealthcareProvider")) if acl is not None else None,
    )


def _missing(node: Node, name: str) -> str:
    raise RecordError(f"{node.path}/{name}", "missing")


def _stripped(value: str | None) -> str | None:
    return value.strip() if value else None


# -- building the output -----------------------------------------------------------------------------
def record_id(contract: Contract, source_system: str, document_id: str, part: str = "") -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{contract.name}|{source_system}|{document_id}|{part}"))


class Output:
    """The resources one record becomes: the main resource, its Provenance and the PractitionerRoles
    its references point to (Practitioner and Organization stay logical references, as in EHDS-TK)."""

    def __init__(self, contract: Contract, header: Header) -> None:
        self.contract = contract
        self.header = header
        self.id = record_id(contract, header.source_system, header.document_id)
        self.roles: dict[str, Json] = {}

    # -- header parts ---------------------------------------------------------------------------------
    def meta(self, profiles: list[str], **extra: Any) -> Json:
        security = None
        if not self.header.approved_for_patient:
            security = [{"system": NOPATIENT_SYSTEM, "code": NOPATIENT_CODE}]
        return {"profile": profiles, "source": SOURCE_PREFIX + self.header.source_system, "security": security,
                **extra}

    def identifier(self) -> Json:
        return {"value": self.header.document_id}

    def subject(self) -> Json:
        h = self.header
        return {"type": "Patient", "identifier": {"system": codes.uri_for(h.patient_type), "value": h.patient_id}}

    def encounter(self) -> Json | None:
        if not self.header.care_contact:
            return None
        return {"type": "Encounter", "identifier": {"value": self.header.care_contact}}

    def role_ref(self, who: Professional | None) -> Json | None:
        """A reference to the PractitionerRole for `who` (added to the output), with the HSA-id as a
        logical identifier too; None when the record names nobody."""
        if who is None or not who.identified:
            return None
        role = practitioner_role(who)
        self.roles.setdefault(role["id"], role)
        return {
            "reference": f"urn:uuid:{role['id']}",
            "type": "PractitionerRole",
            "identifier": hsa_identifier(who.hsa_id),
            "display": who.name,
        }

    def provenance(self, main_type: str) -> Json:
        """EHDS-TK's Provenance: author = care unit (inner block), custodian = care giver (outer block);
        also the legal authenticator, where the main resource has no element for a signer."""
        h = self.header
        agents = []
        if h.author.care_giver:
            agents.append(_agent("custodian", "Custodian", _org_ref(h.author.care_giver)))
        if h.author.care_unit:
            agents.append(_agent("author", "Author", _org_ref(h.author.care_unit)))
        signer = self.role_ref(h.signer)
        if signer is not None:
            agents.append(_agent("legal", "Legal Authenticator", signer))
        if not agents:  # Provenance needs an agent: the source system assembled the record
            agents.append(_agent("assembler", "Assembler",
                                 {"type": "Device", "identifier": hsa_identifier(h.source_system)}))
        return {
            "resourceType": "Provenance",
            "id": record_id(self.contract, h.source_system, h.document_id, "Provenance"),
            "target": [{"reference": f"urn:uuid:{self.id}", "type": main_type}],
            "recorded": h.author.time,
            "agent": agents,
        }

    def finish(self, main: Json) -> list[Any]:
        """Validated R4B models: the main resource, its Provenance, then the PractitionerRoles."""
        resources = [main, self.provenance(main["resourceType"]), *self.roles.values()]
        return [model(r) for r in resources]


def practitioner_role(who: Professional) -> Json:
    content = clean({
        "resourceType": "PractitionerRole",
        "meta": {"profile": [SE_BASE_PRACTITIONER_ROLE]},
        "identifier": [hsa_identifier(who.hsa_id)],
        "practitioner": {"type": "Practitioner", "identifier": hsa_identifier(who.hsa_id), "display": who.name},
        "organization": {"type": "Organization", "identifier": hsa_identifier(who.unit_hsa_id),
                         "display": who.unit_name},
        "code": [who.role],
    })
    # The same person in the same role and unit is one resource, whichever record names them.
    digest = json.dumps(content, sort_keys=True, ensure_ascii=False)
    return {"id": str(uuid.uuid5(ID_NAMESPACE, "PractitionerRole|" + digest)), **content}


def hsa_identifier(hsa_id: str | None) -> Json | None:
    return {"system": HSA_SYSTEM, "value": hsa_id} if hsa_id else None


def _org_ref(hsa_id: str) -> Json:
    return {"type": "Organization", "identifier": hsa_identifier(hsa_id)}


def _agent(code: str, display: str, who: Json) -> Json:
    return {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": code, "display": display}]}, "who": who}


# -- codes, identifiers, quantities -----------------------------------------------------------------
def concept(node: Node | None, text_fallback: bool = False) -> Json | None:
    """A CVType as CodeableConcept: code + codeSystem (OID -> URI) + displayName as a coding,
    originalText as text (with `text_fallback`, the displayName when there is no originalText)."""
    if node is None:
        return None
    code, system, display = node.text("code"), node.text("codeSystem"), node.text("displayName")
    text = node.text("originalText")
    coding = None
    if code:
        coding = {"system": codes.uri_for(system.strip()) if system else None, "code": code.strip(),
                  "display": display}
    if text is None and text_fallback and coding is not None:
        text = display
    if coding is None and text is None:
        return None
    return {"coding": [coding] if coding else None, "text": text}


@overload
def ii(node: Node) -> tuple[str, str | None]: ...
@overload
def ii(node: None) -> None: ...
def ii(node: Node | None) -> tuple[str, str | None] | None:
    """An IIType as (root, extension)."""
    if node is None:
        return None
    root = node.text("root")
    if not root:
        raise RecordError(f"{node.path}/root", "missing")
    extension = node.text("extension")
    return root.strip(), extension.strip() if extension else None


@overload
def ii_identifier(value: tuple[str, str | None], source_system: str | None) -> Json: ...
@overload
def ii_identifier(value: None, source_system: str | None) -> None: ...
def ii_identifier(value: tuple[str, str | None] | None, source_system: str | None) -> Json | None:
    """An IIType as Identifier, in the input profile's form so that it maps back to the same IIType:
    a UUID root alone -> urn:uuid value; an OID root -> `urn:oid:` system (the project table's URI for
    known OIDs); a local id (1.2.752.129.2.1.2.1) of this source system -> its id without the prefix."""
    if value is None:
        return None
    root, extension = value
    if extension is None:
        if _UUID.match(root):
            return {"system": URI_SYSTEM, "value": f"urn:uuid:{root.lower()}"}
        if codes.OID_PATTERN.match(root):
            return {"system": URI_SYSTEM, "value": f"urn:oid:{root}"}
        return {"value": root}
    if root == LOCAL_ID_ROOT:
        prefix = f"{source_system}:" if source_system else None
        if prefix and extension.startswith(prefix) and len(extension) > len(prefix):
            extension = extension[len(prefix):]
        return {"system": f"urn:oid:{LOCAL_ID_ROOT}", "value": extension}
    if codes.OID_PATTERN.match(root):
        return {"system": codes.uri_for(root), "value": extension}
    return {"value": f"{root}:{extension}"}


def quantity(value: Decimal | None, unit: str | None, label: str | None = None) -> Json | None:
    """A PQ as Quantity; the unit is marked UCUM only when it is one (e.g. `mg`, `{tablett}`)."""
    if value is None:
        return None
    unit = unit.strip() if unit else None
    ucum = unit is not None and (unit in _UCUM_UNITS or bool(_UCUM_ANNOTATION.match(unit)))
    return {
        "value": value,
        "unit": label or unit,
        "system": UCUM if ucum else None,
        "code": unit if ucum else None,
    }


def extension(url: str, **value: Any) -> Json | None:
    """An extension, or None when its value is empty (an extension must carry a value)."""
    kept = {k: v for k, v in clean(value).items()}
    return {"url": url, **kept} if kept else None


def signature_extension(header: Header) -> Json | None:
    if header.signer is None or header.signer.time is None:
        return None
    return extension(profile.SIGNATURE_TIME, valueDateTime=header.signer.time)


# -- validation ---------------------------------------------------------------------------------------
def clean(value: Any) -> Any:
    """Drops None, blank strings and empty lists/objects, so that no null or empty element is written."""
    if isinstance(value, dict):
        out = {k: clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if not _empty(v)}
    if isinstance(value, list | tuple):
        items = [clean(v) for v in value]
        return [v for v in items if not _empty(v)]
    return value


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, dict | list) and not value


def model(resource: Json) -> Any:
    data = clean(resource)
    return get_fhir_model_class(data["resourceType"]).model_validate(data)


def collection_bundle(resources: Iterable[Any]) -> Any:
    """A Bundle of type collection; a resource given twice (e.g. a shared PractitionerRole) is kept once."""
    seen: dict[str, Any] = {}
    for res in resources:
        seen.setdefault(f"urn:uuid:{res.id}", res)
    entries = [{"fullUrl": url, "resource": res} for url, res in seen.items()]
    return get_fhir_model_class("Bundle").model_validate({"resourceType": "Bundle", "type": "collection",
                                                          "entry": entries})


PREVIEW = 160  # characters of free text in a summary line


def preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"
