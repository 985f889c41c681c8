"""FHIR Encounter -> GetCareContacts 3.0 `careContact` record (mappings/GetCareContacts.md).

A care contact (vårdkontakt) is a visit, a home visit, a phone contact or a stay. Its documentId is the id
other records carry as their careContactId (Context.care_contact: the Encounter's first identifier value,
else its id), so that a consumer can join a note or a diagnosis to the contact it was documented at.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from adapter.mapping import codes, rivta_xml, timefmt
from adapter.mapping.context import HSA_ID_PATTERN, Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, OrgUnit, Professional, Record
from adapter.rivta.contracts import GET_CARE_CONTACTS as CONTRACT

(CATEGORY,) = CONTRACT.ei_categorizations
# KV Vårdkontakttyp (TKB: careContactCode). Its codes and names are those the domain's CareContactCodeEnum
# annotates (clinicalprocess:logistics:logistics enums 3).
CONTACT_TYPE = "1.2.752.129.2.2.2.25"
VISIT = "1"
CONTACT_TYPES = {"1": "Besök", "2": "Telefon", "3": "Vårdtillfälle", "4": "Dagsjukvård", "5": "Annan"}
# Encounter.class (v3-ActCode) -> KV Vårdkontakttyp, used when Encounter.type carries no KV code.
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLASS_TO_TYPE = {
    "AMB": "1", "HH": "1", "FLD": "1", "EMER": "1",  # the patient met in person: at a unit, at home, elsewhere
    "IMP": "3", "ACUTE": "3", "NONAC": "3", "OBSENC": "3",  # inpatient stays
    "SS": "4",  # short stay: day care
    "VR": "5",  # virtual: phone or video; a phone contact says so with type code 2
}
# SNOMED CT SE (TKB: careContactStatus, value set 53761000052103)
SNOMED_SE = "1.2.752.116.2.1.1"
STATUS_CODES = {
    "53631000052103": "tidbokad vårdkontakt",
    "53651000052107": "pågående vårdkontakt",
    "53681000052104": "permission från vårdkontakt",
    "53671000052101": "avslutad vårdkontakt",
    "53641000052109": "inställd vårdkontakt",
    "53661000052105": "avbruten vårdkontakt",
    "53691000052102": "makulerad vårdkontakt",
    "53701000052102": "patient på väntelista",
}
# Encounter.status -> careContactStatus code ("entered-in-error" withdraws the record, in dispatch;
# "unknown" leaves the element out).
FHIR_STATUS = {
    "planned": "53631000052103",
    "arrived": "53651000052107",
    "triaged": "53651000052107",
    "in-progress": "53651000052107",
    "onleave": "53681000052104",
    "finished": "53671000052101",
    "cancelled": "53641000052109",
}
# v3-ParticipationType codes naming who is accountable for the contact, best first
ACCOUNTABLE = ("PPRF", "ATND", "PART", "SPRF", "CON")
# KV Kön (TKB: additionalPatientInformation.gender)
KV_KON = "1.2.752.129.2.2.1.1"
GENDER = {"male": ("1", "man"), "female": ("2", "kvinna"), "unknown": ("0", "okänt")}
NATIONAL_IDS = (codes.PERSONNUMMER, codes.SAMORDNINGSNUMMER)


def map_encounter(enc: Any, ctx: Context) -> list[Record]:
    start = timefmt.timestamp(enc.period.start) if enc.period and enc.period.start else None
    end = timefmt.timestamp(enc.period.end) if enc.period and enc.period.end else None
    if start is None and end is None:
        raise MappingError("period", "a care contact needs period.start or period.end (TKB: at least one)")
    code = _contact_code(enc)
    if code is not None and code[0] == VISIT and start is not None:
        end = start  # TKB: a visit's start and end are both the time the visit started
    provider = _of_type(ctx.resolve(enc.serviceProvider), "Organization")
    contact_unit = _org_unit(enc.serviceProvider, provider)
    # authorTime: an Encounter records no registration time of its own; the contact's start (else end) is the
    # one time every contact has, and it does not move when the resource is sent again.
    author = _accountable(enc, ctx, enc.period.start or enc.period.end, contact_unit, provider)
    if contact_unit is None:
        contact_unit = author.org_unit  # the accountable professional's unit performed the contact
    if author.org_unit is None or contact_unit is None:
        raise MappingError("serviceProvider", "no unit with HSA-id and name (serviceProvider, or the participant "
                           "PractitionerRole's organization): NPÖ needs it (TKB Regel 4 and 5)")
    document_id = ctx.document_id(enc)
    patient = ctx.patient(enc.subject)
    header = Header(
        document_id=document_id,
        source_system=ctx.source_system(enc),
        patient=patient,
        author=author,
        approved_for_patient=ctx.approved_for_patient(enc),
        # documentTitle, documentTime, legalAuthenticator and careContactId: 0..0 in the TKB
    )

    root, b = rivta_xml.record_root(CONTRACT)
    rivta_xml.header(b, root, CONTRACT, header)
    body = b.node(root, CONTRACT.body_element)
    if code is not None:
        b.cv(body, "careContactCode", *code)
    b.text(body, "careContactReason", _reason(enc))
    _org(b, body, "careContactOrgUnit", contact_unit, provider)
    period = b.node(body, "careContactTimePeriod")
    b.text(period, "start", start)
    b.text(period, "end", end)
    status = FHIR_STATUS.get(enc.status)
    if status:
        b.cv(body, "careContactStatus", status, SNOMED_SE, STATUS_CODES[status])
    if patient.type not in NATIONAL_IDS:  # what a lookup in the population register cannot give
        _additional_patient_information(b, body, ctx.resolve(enc.subject))

    times = [t for t in (author.time, start, end) if t]
    return [
        Record(
            contract=CONTRACT.key,
            # The store's careContactId filter looks at header.care_contact: here the contact's own id (the
            # request's careContactId "corresponds to documentId"); it is never rendered (0..0).
            header=dataclasses.replace(header, care_contact=document_id),
            fragment=rivta_xml.serialise(root),
            times={"authorTime": author.time},
            period=_filter_period(times, start, end),
            category=CATEGORY,
        )
    ]


def _filter_period(times: list[str], start: str | None, end: str | None) -> tuple[str | None, str | None]:
    """The days the TKB's datePeriod rule sees: the interval formed by authorTime and the contact's start and end
    (earliest to latest), open towards the future when the contact has no end and towards the past when it has no
    start (TKB GetCareContacts, datePeriod)."""
    days = sorted(t[:8] for t in times)
    return (days[0] if start else None, days[-1] if end else None)


# -- header -------------------------------------------------------------------------------------------
def _accountable(enc: Any, ctx: Context, time: Any, unit: OrgUnit | None, provider: Any) -> Professional:
    """The professional accountable for the contact: the participant of the first ACCOUNTABLE type, else the first
    participant naming someone. Care unit and care giver fall back to serviceProvider and its partOf."""
    ref = _participant(enc)
    author = ctx.professional(ref, time, enc, "participant")
    changes: dict[str, Any] = {}
    if author.org_unit is None and unit is not None:
        changes["org_unit"] = unit
    if author.care_unit is None and unit is not None:
        changes["care_unit"] = unit.hsa_id
    if author.care_giver is None and provider is not None and provider.partOf is not None:
        parent = _of_type(ctx.resolve(provider.partOf), "Organization")
        changes["care_giver"] = _hsa(provider.partOf.identifier) or (
            _hsa(parent.identifier) if parent is not None else None)
    return dataclasses.replace(author, **changes) if changes else author


def _participant(enc: Any) -> Any | None:
    people = [p for p in enc.participant or [] if p.individual is not None]
    for wanted in ACCOUNTABLE:
        for p in people:
            if any(c.code == wanted for t in p.type or [] for c in t.coding or []):
                return p.individual
    return people[0].individual if people else None


# -- body ---------------------------------------------------------------------------------------------
def _contact_code(enc: Any) -> tuple[str | None, str | None, str | None, str | None] | None:
    """careContactCode as (code, codeSystem, displayName, originalText): a KV Vårdkontakttyp coding in `type`,
    else what `class` says, else the text of a local `type`."""
    for concept in enc.type or []:
        for coding in concept.coding or []:
            if codes.oid_for(coding.system) == CONTACT_TYPE and coding.code:
                if coding.code not in CONTACT_TYPES:
                    raise MappingError("type", "unknown KV Vårdkontakttyp code")
                return coding.code, CONTACT_TYPE, CONTACT_TYPES[coding.code], None
    klass = enc.class_fhir
    if klass is not None and klass.system == ACT_CODE and klass.code in CLASS_TO_TYPE:
        code = CLASS_TO_TYPE[klass.code]
        return code, CONTACT_TYPE, CONTACT_TYPES[code], None
    for concept in enc.type or []:  # a local type without a national code: its text
        text = concept.text or next((c.display for c in concept.coding or [] if c.display), None)
        if text and text.strip():
            return None, None, None, text.strip()
    return None


def _reason(enc: Any) -> str | None:
    texts = []
    for concept in enc.reasonCode or []:
        text = concept.text or next((c.display for c in concept.coding or [] if c.display), None)
        if text and text.strip() and text.strip() not in texts:
            texts.append(text.strip())
    return "; ".join(texts) or None


def _org_unit(ref: Any, org: Any) -> OrgUnit | None:
    hsa = _hsa([ref.identifier] if ref is not None and ref.identifier is not None else None) or (
        _hsa(org.identifier) if org is not None else None)
    name = (org.name if org is not None else None) or (ref.display if ref is not None else None)
    return OrgUnit(hsa, name) if hsa and name and name.strip() else None


def _org(b: rivta_xml.Builder, parent: Any, name: str, unit: OrgUnit, org: Any) -> None:
    el = b.node(parent, name)
    b.text(el, "orgUnitHSAId", unit.hsa_id)
    b.text(el, "orgUnitName", unit.name)
    if org is None or _hsa(org.identifier) not in (None, unit.hsa_id):
        return  # contact details only from the Organization that is this unit
    b.text(el, "orgUnitTelecom", _telecom(org, "phone"))
    b.text(el, "orgUnitEmail", _telecom(org, "email"))
    address = next(iter(org.address or []), None)
    if address is not None:
        b.text(el, "orgUnitAddress", address.text or _address_text(address))
        b.text(el, "orgUnitLocation", address.city)


def _telecom(org: Any, system: str) -> str | None:
    return next((t.value for t in org.telecom or [] if t.system == system and t.value), None)


def _address_text(address: Any) -> str | None:
    street = ", ".join(line for line in address.line or [] if line)
    town = " ".join(p for p in (address.postalCode, address.city) if p)
    return ", ".join(p for p in (street, town) if p) or None


def _additional_patient_information(b: rivta_xml.Builder, body: Any, patient: Any) -> None:
    if patient is None or patient.get_resource_type() != "Patient":
        return
    born = _partial_date(patient.birthDate)
    gender = GENDER.get(patient.gender or "")
    if born is None and gender is None:
        return
    el = b.node(body, "additionalPatientInformation")
    if born is not None:
        dob = b.node(el, "dateOfBirth")
        b.text(dob, "format", born[0])
        b.text(dob, "value", born[1])
    if gender is not None:
        b.cv(el, "gender", gender[0], KV_KON, gender[1])


def _partial_date(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    text = str(value)
    digits = text.replace("-", "")[:8]
    fmt = {4: "YYYY", 6: "YYYYMM", 8: "YYYYMMDD"}.get(len(digits))
    if fmt is None or not digits.isdigit() or not 1900 <= int(digits[:4]) <= 2099:
        return None
    return fmt, digits


# -- helpers ------------------------------------------------------------------------------------------
def _of_type(resource: Any, resource_type: str) -> Any | None:
    return resource if resource is not None and resource.get_resource_type() == resource_type else None


def _hsa(identifiers: Any) -> str | None:
    for ident in identifiers or []:
        if codes.is_hsa_system(ident.system) and ident.value:
            if not HSA_ID_PATTERN.match(ident.value):
                raise MappingError("serviceProvider.identifier", "not a valid HSA-id")
            return cast(str, ident.value)
    return None


MAPS = (Map("Encounter", map_encounter),)
