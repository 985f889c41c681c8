"""FHIR Immunization -> GetVaccinationHistory 2.0 `vaccinationMedicalRecord`.

One Immunization (R4; HL7 Sweden has no Immunization base profile, so plain R4 with the Swedish identifier
systems) is one vaccination occasion with one administrationRecord. A `not-done` Immunization records a
vaccination that was not given: it publishes nothing (`entered-in-error` withdraws generically). The input
profile is mappings/GetVaccinationHistory.md.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any, cast

from fhir.resources.R4B.reference import Reference

from adapter.mapping import codes, profile, rivta_xml, timefmt
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, Professional, Record
from adapter.rivta import xml
from adapter.rivta.contracts import GET_VACCINATION_HISTORY as CONTRACT

CATEGORY = "caa-gvh"
PERFORMER_FUNCTION = "http://terminology.hl7.org/CodeSystem/v2-0443"
ADMINISTERING, ORDERING = "AP", "OP"
KV_KON = "1.2.752.129.2.2.1.1"
_GENDER = {"male": ("1", "Man"), "female": ("2", "Kvinna"), "unknown": ("0", "Okänt")}
_PROFESSIONALS = {"Practitioner", "PractitionerRole"}
_UUID = re.compile(r"^(?:urn:uuid:)?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
_SPACE = re.compile(r"[ \t\r\f\v]+")


class _Unattributed:
    """Stands in for the record when resolving a body actor (performer, prescriber): their care unit and care
    giver must not come from the record's Provenance."""

    id = None

    def get_resource_type(self) -> str:
        return "-"


_UNATTRIBUTED = _Unattributed()


def map_immunization(imm: Any, ctx: Context) -> list[Record]:
    if imm.status != "completed":
        return []  # not-done: no vaccination was given (entered-in-error is withdrawn before mapping)
    if imm.occurrenceDateTime is None:
        raise MappingError("occurrenceDateTime", "a vaccination needs its date and time (registrationRecord.date; "
                           "occurrenceString cannot be dated)")
    given = timefmt.timestamp(imm.occurrenceDateTime)
    administering = _performer(imm, ctx, ADMINISTERING)
    ordering = _performer(imm, ctx, ORDERING)
    source = ctx.source_system(imm)
    header = _header(imm, ctx, source, administering, given)

    root, b = rivta_xml.record_root(CONTRACT)
    h = rivta_xml.header(b, root, CONTRACT, header)
    b.text(h, "nullified", False)  # TKB 1..1; a nullified (entered-in-error) vaccination is withdrawn instead
    body = b.node(root, CONTRACT.body_element)
    _registration(b, body, imm, ctx, header, source, given)
    _administration(b, body, imm, ctx, source, header, administering, ordering)
    _additional_patient_information(b, body, imm, ctx, header)
    signer = header.signer
    return [
        Record(
            contract=CONTRACT.key,
            header=header,
            fragment=rivta_xml.serialise(root),
            times={
                "documentTime": given,
                "authorTime": header.author.time,
                "signatureTime": signer.time if signer else None,
                "date": given[:8],
            },
            category=CATEGORY,
        )
    ]


# -- header ---------------------------------------------------------------------------------------
def _header(imm: Any, ctx: Context, source: str, administering: Any, given: str) -> Header:
    """The accountable professional is the administering performer; authorTime is when the vaccination was
    recorded (`recorded`), else when it was given."""
    person = None if _is_organization(administering, imm, ctx) else administering
    author = ctx.professional(person, imm.recorded or imm.occurrenceDateTime, imm, "recorded")
    if person is None and administering is not None:  # an organisation vaccinated: it is the care unit
        with ctx.mapping(imm):
            unit = ctx.resolve(administering)
            parent = ctx.resolve(unit.partOf) if unit is not None and unit.partOf is not None else None
        unit_hsa = _hsa_of(unit.identifier if unit is not None else None) or _hsa_of(
            [administering.identifier] if administering.identifier is not None else None)
        giver_hsa = _hsa_of(parent.identifier if parent is not None else None) or (
            _hsa_of([unit.partOf.identifier]) if unit is not None and unit.partOf is not None
            and unit.partOf.identifier is not None else None)
        author = replace(author, care_unit=author.care_unit or unit_hsa, care_giver=author.care_giver or giver_hsa)
    signed = profile.extension(imm, profile.SIGNATURE_TIME)
    return Header(
        document_id=ctx.document_id(imm),
        source_system=source,
        patient=ctx.patient(imm.patient, "patient"),
        author=author,
        approved_for_patient=ctx.approved_for_patient(imm),
        document_time=given,
        signer=ctx.signer(person, signed.valueDateTime if signed else None),
        care_contact=ctx.care_contact(imm.encounter),
    )


def _is_organization(ref: Any, imm: Any, ctx: Context) -> bool:
    if ref is None:
        return False
    with ctx.mapping(imm):
        target = ctx.resolve(ref)
    return bool((target.get_resource_type() if target is not None else ref.type) == "Organization")


def _performer(imm: Any, ctx: Context, function: str) -> Any | None:
    """The performer with this function (v2-0443 AP / OP); a performer without function is the administering
    one. Only a professional (Practitioner, PractitionerRole) or an Organization can be a performer."""
    for perf in imm.performer or []:
        codes_ = {c.code for c in (perf.function.coding or []) if c.system == PERFORMER_FUNCTION} \
            if perf.function else set()
        if function in codes_ or (function == ADMINISTERING and not codes_ and perf.function is None):
            return perf.actor
    return None


# -- registrationRecord ---------------------------------------------------------------------------
def _registration(b: rivta_xml.Builder, body: Any, imm: Any, ctx: Context, header: Header, source: str,
                  given: str) -> None:
    reg = b.node(body, "registrationRecord")
    giver_hsa = header.author.care_giver
    giver = _organization_by_hsa(giver_hsa, ctx) if giver_hsa else None
    giver_name = giver.name if giver is not None else _custodian_display(imm, ctx, giver_hsa)
    if not giver_hsa and not giver_name:
        raise MappingError(
            "performer", "no care giver (a Provenance agent of type custodian, or the performer's "
            "PractitionerRole organization partOf): registrationRecord.careGiverOrg is required")
    _org_unit(b, reg, "careGiverOrg", giver, giver_hsa, fallback_name=giver_name)
    contact = next((c for c in (giver.contact or []) if c.name or c.telecom), None) if giver is not None else None
    if contact is not None:
        actor = b.node(reg, "careGiverContact")
        b.text(actor, "personName", _name(contact.name))
        b.text(actor, "personEmail", _telecom(contact.telecom, "email"))
        b.text(actor, "personTelecom", _telecom(contact.telecom, "phone"))
        b.text(actor, "personAddress", _address(contact.address))
        if len(actor) == 0:
            reg.remove(actor)
    # TKB: the name of the organisation responsible for the vaccination (the care giver)
    b.text(reg, "sourceSystemName", giver_name or giver_hsa)
    b.text(b.node(reg, "sourceSystemContact"), "hsaid", source)
    b.text(reg, "date", given[:8])
    b.text(reg, "vaccinationUnstructuredNote", _narrative(imm))
    for reason in imm.reasonCode or []:
        _cv(b, reg, "riskCategory", reason, "reasonCode")


# -- administrationRecord -------------------------------------------------------------------------
def _administration(b: rivta_xml.Builder, body: Any, imm: Any, ctx: Context, source: str, header: Header,
                    administering: Any, ordering: Any) -> None:
    adm = b.node(body, "administrationRecord")
    protocol = (imm.protocolApplied or [None])[0]
    if protocol is not None and protocol.series:
        b.cv(adm, "vaccinationProgramName", original_text=protocol.series)
    if ordering is not None:
        _org_of(b, adm, "prescriberOrg", ordering, imm, ctx)
        _actor(b, adm, "prescriberPerson", ordering, imm, ctx, "performer.actor")
    if administering is not None:
        _org_of(b, adm, "performerOrg", administering, imm, ctx)
        _actor(b, adm, "performer", administering, imm, ctx, "performer.actor")
    _cv(b, adm, "anatomicalSite", imm.site, "site")
    _cv(b, adm, "route", imm.route, "route")
    _dose(b, adm, imm.doseQuantity)
    dose_number = _positive(protocol, "doseNumberPositiveInt")
    series_doses = _positive(protocol, "seriesDosesPositiveInt")
    complete = None
    if imm.isSubpotent:
        complete = False
    elif dose_number is not None and series_doses is not None:
        complete = dose_number >= series_doses
    b.text(adm, "isDoseComplete", complete)
    b.text(adm, "doseOrdinalNumber", dose_number)
    if dose_number is None or series_doses is None or dose_number <= series_doses:
        b.text(adm, "numberOfPrescribedDoses", series_doses)  # a dose beyond the series (a booster) has none
    if imm.primarySource is False and imm.reportOrigin is not None:
        b.text(adm, "sourceDescription", _text(imm.reportOrigin))
    b.text(adm, "commentAdministration", _notes(imm.note))
    for n, reaction in enumerate(imm.reaction or []):
        _reaction(b, adm, reaction, imm, ctx, f"reaction[{n}].detail")
    vaccine_type, vaccine_name = _vaccine(imm.vaccineCode)
    if vaccine_type is not None:
        b.cv(adm, "typeOfVaccine", *vaccine_type, field="vaccineCode.coding")
    if vaccine_name is not None:
        if len(vaccine_name) == 3:
            # the TKB names NPL-id's codeSystemName
            b.cv(adm, "vaccineName", *vaccine_name, field="vaccineCode.coding", code_system_name="NPL")
        else:
            b.cv(adm, "vaccineName", original_text=vaccine_name[0])
    b.text(adm, "vaccineBatchId", imm.lotNumber)
    b.text(adm, "vaccineManufacturer", _manufacturer(imm, ctx))
    for protocol_ in imm.protocolApplied or []:
        for disease in protocol_.targetDisease or []:
            _cv(b, adm, "vaccineTargetDisease", disease, "protocolApplied.targetDisease")
    b.ii(adm, "vaccinationUniqueReference", *_unique_reference(header.document_id, source))


def _vaccine(concept: Any) -> tuple[tuple[str, str, str] | None, tuple[str, ...] | None]:
    """vaccineCode: an NPL-id coding is the product (vaccineName); an ATC or SNOMED CT coding the kind of
    vaccine (typeOfVaccine). Without an NPL-id the product name is the text (or the first display)."""
    kind = name = None
    for coding in concept.coding or [] if concept else []:
        oid = codes.oid_for(coding.system)
        if not coding.code or not oid:
            continue
        display = coding.display or coding.code
        if oid == "1.2.752.129.2.1.5.1" and name is None:
            name = (coding.code, oid, display)
        elif oid != "1.2.752.129.2.1.5.1" and kind is None:
            kind = (coding.code, oid, display)
    if name is None and concept is not None:
        text = concept.text or next((c.display for c in concept.coding or [] if c.display), None)
        if text and text.strip():
            return kind, (text,)
    return kind, name


def _dose(b: rivta_xml.Builder, adm: Any, qty: Any) -> None:
    if qty is None or qty.value is None:
        return
    unit = qty.code if qty.system == "http://unitsofmeasure.org" and qty.code else (qty.unit or qty.code)
    shown = qty.unit or unit
    value = _number(qty.value)
    dose = b.node(adm, "dose")
    if unit:
        pq = b.node(dose, "quantity")
        b.text(pq, "value", value)
        b.text(pq, "unit", unit)
    b.text(dose, "displayName", f"{value.replace('.', ',')} {shown}" if shown else value)


def _number(value: Decimal | float | int) -> str:
    text = format(Decimal(str(value)).normalize(), "f")
    return text


def _positive(protocol: Any, name: str) -> int | None:
    value = getattr(protocol, name, None) if protocol is not None else None
    return int(value) if value is not None else None


def _reaction(b: rivta_xml.Builder, adm: Any, reaction: Any, imm: Any, ctx: Context, field: str) -> None:
    """A reaction's detail is an Observation: its value (CodeableConcept) or code says what happened; a
    reference that does not resolve keeps its display as text."""
    detail = reaction.detail
    if detail is None:
        return
    with ctx.mapping(imm):
        obs = ctx.resolve(detail)
    if obs is not None and obs.get_resource_type() == "Observation":
        concept = obs.valueCodeableConcept or obs.code
        if concept is not None:
            _cv(b, adm, "patientAdverseEffect", concept, field)
            return
        if obs.valueString:
            b.cv(adm, "patientAdverseEffect", original_text=obs.valueString)
            return
    if detail.display:
        b.cv(adm, "patientAdverseEffect", original_text=detail.display)


def _manufacturer(imm: Any, ctx: Context) -> str | None:
    ref = imm.manufacturer
    if ref is None:
        return None
    if ref.display:
        return cast(str, ref.display)
    with ctx.mapping(imm):
        org = ctx.resolve(ref)
    return cast("str | None", org.name) if org is not None and org.get_resource_type() == "Organization" else None


def _unique_reference(document_id: str, source: str) -> tuple[str, str | None]:
    """TKB: a globally unique id (a UUID) stands alone as root; else root is the source system's HSA-id and
    extension its local id for the vaccination."""
    m = _UUID.match(document_id)
    if m:
        return m.group(1).lower(), None
    return source, document_id


# -- actors and organisations --------------------------------------------------------------------
def _actor(b: rivta_xml.Builder, parent: Any, name: str, ref: Any, imm: Any, ctx: Context, field: str) -> None:
    with ctx.mapping(imm):
        target = ctx.resolve(ref)
        kind = target.get_resource_type() if target is not None else ref.type
        if kind == "Organization":
            return
        who: Professional = replace(ctx.professional(ref, imm.occurrenceDateTime, _UNATTRIBUTED, field),
                                    care_unit=None, care_giver=None)
        practitioner = None
        if target is not None and target.get_resource_type() == "PractitionerRole":
            practitioner = ctx.resolve(target.practitioner) if target.practitioner is not None else None
        telecom = [*(getattr(target, "telecom", None) or []), *(getattr(practitioner, "telecom", None) or [])]
    el = b.node(parent, name)
    b.text(el, "hsaid", who.hsa_id)
    b.text(el, "personName", who.name)
    b.text(el, "personEmail", _telecom(telecom, "email"))
    b.text(el, "personTelecom", _telecom(telecom, "phone"))
    if len(el) == 0:
        parent.remove(el)


def _org_of(b: rivta_xml.Builder, parent: Any, name: str, ref: Any, imm: Any, ctx: Context) -> None:
    """The performer's (or prescriber's) organisation: the Organization itself, or the PractitionerRole's."""
    with ctx.mapping(imm):
        target = ctx.resolve(ref)
        org_ref = None
        if target is not None and target.get_resource_type() == "PractitionerRole":
            org_ref = target.organization
        elif (target is not None and target.get_resource_type() == "Organization") or ref.type == "Organization":
            org_ref = ref
        if org_ref is None:
            return
        org = ctx.resolve(org_ref) if target is None or target.get_resource_type() != "Organization" else target
        if org is not None and org.get_resource_type() != "Organization":
            org = None
        location = ctx.resolve(imm.location) if name == "performerOrg" and imm.location is not None else None
    hsa = _hsa_of(org.identifier if org is not None else None) or _hsa_of(
        [org_ref.identifier] if org_ref.identifier is not None else None)
    place = getattr(location, "name", None) or (imm.location.display if name == "performerOrg" and imm.location
                                                  else None)
    _org_unit(b, parent, name, org, hsa, fallback_name=org_ref.display, place=place)


def _org_unit(b: rivta_xml.Builder, parent: Any, name: str, org: Any, hsa: str | None,
              fallback_name: str | None = None, place: str | None = None) -> None:
    """The organisation's unit, left out when it would be empty; `place` (the Location's name) is its
    orgUnitLocation where known, else the Organization's city, and never keeps an otherwise empty unit."""
    el = b.node(parent, name)
    b.text(el, "orgUnitHSAId", hsa)
    b.text(el, "orgUnitName", (org.name if org is not None else None) or fallback_name)
    city = None
    if org is not None:
        b.text(el, "orgUnitTelecom", _telecom(org.telecom, "phone"))
        b.text(el, "orgUnitEmail", _telecom(org.telecom, "email"))
        address = (org.address or [None])[0]
        b.text(el, "orgUnitAddress", _address(address))
        city = address.city if address is not None else None
    if len(el) == 0 and not (city and city.strip()):
        parent.remove(el)
        return
    b.text(el, "orgUnitLocation", place or city)


def _organization_by_hsa(hsa: str, ctx: Context) -> Any | None:
    ref = Reference.model_validate({"type": "Organization", "identifier": {"system": f"urn:oid:{codes.HSA_ID}",
                                                                           "value": hsa}})
    org = ctx.resolve(ref)
    return org if org is not None and org.get_resource_type() == "Organization" else None


def _custodian_display(imm: Any, ctx: Context, hsa: str | None) -> str | None:
    """The care giver's name as the Provenance custodian agent's reference shows it, when no Organization with
    its HSA-id is known (e.g. a consumer's FHIR output, whose Provenance names the care giver)."""
    for prov in ctx._provenances_of(imm):  # the Provenances the header's care giver came from
        for agent in prov.agent or []:
            kinds = {c.code for c in (agent.type.coding or [])} if agent.type else set()
            who = agent.who
            if "custodian" in kinds and who is not None and who.display and (
                    hsa is None or (who.identifier is not None and who.identifier.value == hsa)):
                return cast(str, who.display)
    return None


def _hsa_of(identifiers: Any) -> str | None:
    for ident in identifiers or []:
        if codes.is_hsa_system(ident.system) and ident.value:
            return cast(str, ident.value)
    return None


# -- additionalPatientInformation ----------------------------------------------------------------
def _additional_patient_information(b: rivta_xml.Builder, body: Any, imm: Any, ctx: Context,
                                    header: Header) -> None:
    """Only for patients a population-register lookup cannot give (reservnummer): birth date and sex."""
    if header.patient.type in (codes.PERSONNUMMER, codes.SAMORDNINGSNUMMER):
        return
    with ctx.mapping(imm):
        patient = ctx.resolve(imm.patient)
    if patient is None or patient.get_resource_type() != "Patient" or patient.birthDate is None:
        return
    info = b.node(body, "additionalPatientInformation")
    b.text(info, "dateOfBirth", timefmt.day(patient.birthDate))
    if patient.gender in _GENDER:
        code, display = _GENDER[patient.gender]
        b.cv(info, "gender", code, KV_KON, display)


# -- small helpers --------------------------------------------------------------------------------
def _cv(b: rivta_xml.Builder, parent: Any, name: str, concept: Any, field: str) -> None:
    """A CVType: a coding with a known system (display falling back to the code), else the text."""
    if concept is None:
        return
    for coding in concept.coding or []:
        oid = codes.oid_for(coding.system)
        if oid and coding.code:
            b.cv(parent, name, coding.code, oid, coding.display or coding.code, field=field)
            return
    text = _text(concept)
    if text:
        b.cv(parent, name, original_text=text)


def _text(concept: Any) -> str | None:
    return cast("str | None", concept.text or next(
        (c.display or c.code for c in concept.coding or [] if c.display or c.code), None))


def _notes(notes: Any) -> str | None:
    texts = [n.text for n in notes or [] if n.text and n.text.strip()]
    return "\n\n".join(texts) or None


def _narrative(imm: Any) -> str | None:
    """The human-readable summary (Narrative div) as plain text (TKB: a CDA-style readable summary)."""
    div = imm.text.div if imm.text is not None else None
    if not div:
        return None
    try:
        root = xml.parse(div.encode("utf-8"), max_bytes=200_000, max_depth=32)
    except xml.UnsafeXml:
        raise MappingError("text.div", "the narrative is not well-formed XHTML") from None
    lines = [_SPACE.sub(" ", line).strip() for line in "".join(root.itertext()).splitlines()]
    text = "\n".join(line for line in lines if line)
    return text or None


def _name(name: Any) -> str | None:
    if name is None:
        return None
    if name.text:
        return cast(str, name.text)
    return " ".join([*(name.given or []), name.family or ""]).strip() or None


def _telecom(points: Any, system: str) -> str | None:
    return next((cast(str, p.value) for p in points or [] if p.system == system and p.value), None)


def _address(address: Any) -> str | None:
    if address is None:
        return None
    if address.text:
        return cast(str, address.text)
    city = " ".join(p for p in (address.postalCode, address.city) if p)
    return "\n".join(p for p in [*(address.line or []), city] if p) or None


MAPS = (Map("Immunization", map_immunization),)
