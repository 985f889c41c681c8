"""FHIR AllergyIntolerance and Flag -> GetAlertInformation 2.0 `alertInformation` records
(uppmärksamhetsinformation; mappings/GetAlertInformation.md).

* AllergyIntolerance -> `hypersensitivity` (läkemedelsöverkänslighet with ATC / NPL-id, or other hypersensitivity).
* Flag, classified by the HL7 Sweden medical alert information IG's category (SEAlertInformationCategoryCS) ->
  `seriousDisease` (A1), `treatment` (A2-A4), `communicableDisease` (B), `hypersensitivity` (C, when no
  AllergyIntolerance carries it), `restrictionOfCare` (D) or `unstructuredAlertInformation` (E). A Flag without
  such a category is not alert information for NPÖ and is not claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from adapter.mapping import codes, profile, rivta_xml, timefmt
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, Record
from adapter.rivta.contracts import GET_ALERT_INFORMATION as CONTRACT

_Element = rivta_xml.Element

# -- the input profile's URLs ----------------------------------------------------------------------------------
# HL7 Sweden, medical alert information IG (hl7.fhir.r4.ig.medicalalertinformation, draft 0.1.0)
SE_ALERT = "http://hl7.se/fhir/r4/ig/medicalalertinformation/"
SE_CATEGORY = SE_ALERT + "CodeSystem/SEAlertInformationCategoryCS"
SE_CRITICALITY = SE_ALERT + "StructureDefinition/SECriticalityLevelExtension"  # valueCodeableConcept
SE_CRITICALITY_CS = SE_ALERT + "CodeSystem/SEAlertInformationCriticalityLevelCS"
SE_ALERT_LABEL = SE_ALERT + "StructureDefinition/SEAlertLabelExtension"  # valueCodeableConcept
FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"  # valueReference
# FHIR R4 code systems
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
# Project extensions (neither EHDS-TK nor the HL7 Sweden IG has an element for these: EHDS-TK ALERT-005..007)
ALERT_COMMENT = profile.EXT + "alert-comment"  # valueString on Flag -> alertInformationComment
ALERT_OBSOLETE = profile.EXT + "alert-obsolete"  # complex: time (valueDateTime), comment (valueString)
ALERT_VERIFIED_TIME = profile.EXT + "alert-verified-time"  # valueDateTime -> verifiedTime
ROUTE_OF_TRANSMISSION = profile.EXT + "route-of-transmission"  # valueCodeableConcept on Flag (KV Smittväg)
RELATED_ALERT = profile.EXT + "related-alert-information"  # complex: relationship, comment, document (1..*)

# -- RIVTA code systems ------------------------------------------------------------------------------------------
KV_INFORMATIONSTYP = "1.2.752.129.2.2.2.1"  # stands in for KV Uppmärksamhetstyp, which has no OID (TKB)
KV_ALLVARLIGHETSGRAD = "1.2.752.129.2.2.3.3"
KV_VISSHETSGRAD = "1.2.752.129.2.2.3.11"
ATC = "1.2.752.129.2.2.3.1.1"
NPL_ID = "1.2.752.129.2.1.5.1"
KVA = "1.2.752.116.1.3.2.1.4"

# The six kinds of alert (the body's choice element) and their KV Uppmärksamhetstyp value (TKB Regel 2). That code
# system has no OID, so the value is written as code and displayName under KV Informationstyp's OID, as the TKB says.
HYPERSENSITIVITY, SERIOUS_DISEASE, TREATMENT = "hypersensitivity", "seriousDisease", "treatment"
COMMUNICABLE_DISEASE, RESTRICTION_OF_CARE = "communicableDisease", "restrictionOfCare"
UNSTRUCTURED = "unstructuredAlertInformation"
KINDS = (HYPERSENSITIVITY, SERIOUS_DISEASE, TREATMENT, COMMUNICABLE_DISEASE, RESTRICTION_OF_CARE, UNSTRUCTURED)
ALERT_TYPE = {
    HYPERSENSITIVITY: "Överkänslighet",
    SERIOUS_DISEASE: "Allvarlig sjukdom",
    TREATMENT: "Allvarlig behandling",
    COMMUNICABLE_DISEASE: "Smittsam sjukdom",
    RESTRICTION_OF_CARE: "Vårdbegränsning",
    UNSTRUCTURED: "Historisk varningsinformation",
}
# HL7 Sweden category (main group or sub-code) -> kind
SE_CATEGORY_KIND = {
    "A": SERIOUS_DISEASE, "A1": SERIOUS_DISEASE, "A2": TREATMENT, "A3": TREATMENT, "A4": TREATMENT,
    "B": COMMUNICABLE_DISEASE, "B1": COMMUNICABLE_DISEASE, "B2": COMMUNICABLE_DISEASE,
    "C": HYPERSENSITIVITY, "C1": HYPERSENSITIVITY, "C2": HYPERSENSITIVITY, "C3": HYPERSENSITIVITY,
    "C4": HYPERSENSITIVITY,
    "D": RESTRICTION_OF_CARE, "D1": RESTRICTION_OF_CARE, "D2": RESTRICTION_OF_CARE,
    "E": UNSTRUCTURED, "E1": UNSTRUCTURED,
}

# degreeOfSeverity (KV Allvarlighetsgrad) and degreeOfCertainty (KV Visshetsgrad) are written as the values'
# text (originalText), which the certification suite accepts; a coding the source sends in the national code
# system itself is passed on as it is.
LIFE_THREATENING, HARMFUL, DISCOMFORTING = "Livshotande", "Skadande", "Besvärande"
SE_CRITICALITY_LEVEL = {"442452003": LIFE_THREATENING, "59021000052107": HARMFUL, "59031000052109": DISCOMFORTING}
SUSPECTED, PROBABLE, CONFIRMED = "Misstänkt", "Trolig", "Konstaterad"
HYPERSENSITIVITY_TYPE = {  # AllergyIntolerance.category -> typeOfHypersensitivity (originalText, TKB examples)
    "medication": "Läkemedelsöverkänslighet",
    "food": "Överkänslighet avs. födoämne",
    "environment": "Överkänslighet avs. miljöämne",
    "biologic": "Överkänslighet avs. biologiskt ämne",
}
NON_ATC_COMMENT = "ATC-kod saknas i källsystemet för denna substans"


@dataclass(frozen=True)
class Cv:
    """A CVType to be written: full code or originalText alone."""

    code: str | None = None
    system: str | None = None
    display: str | None = None
    text: str | None = None

    def write(self, b: rivta_xml.Builder, parent: _Element, name: str, field: str) -> _Element | None:
        return b.cv(parent, name, self.code, self.system, self.display, self.text, field=field)


# -- AllergyIntolerance ------------------------------------------------------------------------------------------
def map_allergy_intolerance(ai: Any, ctx: Context) -> list[Record]:
    author = ctx.professional(ai.recorder or ai.asserter, ai.recordedDate, ai, "recordedDate")
    header = _header(ai, ctx, ai.patient, "patient", author, ai.asserter or ai.recorder)
    onset = ai.onsetDateTime or (ai.onsetPeriod.start if ai.onsetPeriod else None)
    start = timefmt.timestamp(onset or ai.recordedDate)
    obsolete_time, obsolete_comment = _obsolete(ai, _inactive_allergy(ai))

    root, b, body = _record(header, ctx)
    b.cv(body, "typeOfAlertInformation", ALERT_TYPE[HYPERSENSITIVITY], KV_INFORMATIONSTYP,
         ALERT_TYPE[HYPERSENSITIVITY])
    b.text(body, "ascertainedDate", timefmt.day(onset) if onset else start[:8])
    b.text(body, "verifiedTime", _verified_time(ai))
    period = b.node(body, "validityTimePeriod")
    b.text(period, "start", start)
    b.text(body, "alertInformationComment", _notes(ai.note))
    b.text(body, "obsoleteTime", obsolete_time)
    b.text(body, "obsoleteComment", obsolete_comment)
    _hypersensitivity(b, body, ai)
    _related(b, body, ai, ctx)
    return [_published(root, header, start, None, obsolete_time)]


def _inactive_allergy(ai: Any) -> bool:
    status = ai.clinicalStatus
    return status is not None and any(c.code in ("inactive", "resolved") for c in status.coding or [])


def _hypersensitivity(b: rivta_xml.Builder, body: _Element, ai: Any) -> None:
    el = b.node(body, HYPERSENSITIVITY)
    kinds = list(ai.category or [])
    type_text = next((HYPERSENSITIVITY_TYPE[k] for k in kinds if k in HYPERSENSITIVITY_TYPE), None)
    b.cv(el, "typeOfHypersensitivity", original_text=type_text)
    severity = _severity(ai)
    if severity is not None:
        severity.write(b, el, "degreeOfSeverity", "criticality")
    certainty = _certainty(ai.verificationStatus)
    if certainty is not None:
        certainty.write(b, el, "degreeOfCertainty", "verificationStatus")
    codings = list(ai.code.coding or []) if ai.code is not None else []
    atc = [c for c in codings if codes.oid_for(c.system) == ATC and c.code]
    npl = [c for c in codings if codes.oid_for(c.system) == NPL_ID and c.code]
    substance_text = _concept_text(ai.code)
    if "medication" in kinds or atc or npl:
        drug = b.node(el, "pharmaceuticalHypersensitivity")
        if atc:
            coding = atc[0]
            if len(coding.code.strip()) < 3:
                raise MappingError("code.coding", "an ATC code for a hypersensitivity needs at least three levels")
            display = coding.display or substance_text
            if not display:
                raise MappingError("code.coding", "an ATC code needs a display (the substance name)")
            b.cv(drug, "atcSubstance", coding.code.strip(), ATC, display, field="code.coding")
        else:
            if severity is not None and severity.text in (LIFE_THREATENING, HARMFUL):
                raise MappingError("code.coding", "a life-threatening or harmful drug hypersensitivity needs an ATC "
                                   "code (TKB)")
            if not substance_text:
                raise MappingError("code", "no substance: an ATC coding, or the substance as text or display")
            b.text(drug, "nonATCSubstance", substance_text)
            b.text(drug, "nonATCSubstanceComment", NON_ATC_COMMENT)
        for coding in npl:
            b.cv(drug, "pharmaceuticalProductId", coding.code.strip(), NPL_ID, coding.display,
                 original_text=coding.display, field="code.coding")
        return
    _other_hypersensitivity(b, el, substance_text, ai.code)
    if not len(el):
        raise MappingError("code", "a hypersensitivity needs its agent (code), category, criticality or verification")


def _other_hypersensitivity(b: rivta_xml.Builder, el: _Element, agent_text: str | None, code: Any) -> None:
    """otherHypersensitivity (a non-drug agent: its text and code), left out when it would be empty."""
    other = b.node(el, "otherHypersensitivity")
    b.text(other, "hypersensitivityAgent", agent_text)
    agent = _coded(code)
    if agent is not None and agent.code:
        agent.write(b, other, "hypersensitivityAgentCode", "code.coding")
    if not len(other):
        el.remove(other)


def _severity(resource: Any) -> Cv | None:
    """degreeOfSeverity: the national coding or the HL7 Sweden criticality-level extension when sent, else from
    criticality high (livshotande) and the worst reaction severity (severe/moderate: skadande, mild: besvärande)."""
    ext = profile.extension(resource, SE_CRITICALITY)
    concept = ext.valueCodeableConcept if ext is not None else None
    for coding in (concept.coding or []) if concept is not None else []:
        if codes.oid_for(coding.system) == KV_ALLVARLIGHETSGRAD and coding.code and coding.display:
            return Cv(coding.code, KV_ALLVARLIGHETSGRAD, coding.display)
        if coding.system == SE_CRITICALITY_CS and coding.code in SE_CRITICALITY_LEVEL:
            return Cv(text=SE_CRITICALITY_LEVEL[coding.code])
    if getattr(resource, "criticality", None) == "high":
        return Cv(text=LIFE_THREATENING)
    worst = {r.severity for r in getattr(resource, "reaction", None) or [] if r.severity}
    if worst & {"severe", "moderate"}:
        return Cv(text=HARMFUL)
    if "mild" in worst:
        return Cv(text=DISCOMFORTING)
    return None


def _certainty(status: Any) -> Cv | None:
    """degreeOfCertainty from verificationStatus: confirmed -> konstaterad, unconfirmed -> misstänkt (trolig when
    the concept's text says so); a KV Visshetsgrad coding is passed on."""
    if status is None:
        return None
    for coding in status.coding or []:
        if codes.oid_for(coding.system) == KV_VISSHETSGRAD and coding.code and coding.display:
            return Cv(coding.code, KV_VISSHETSGRAD, coding.display)
    found = {c.code for c in status.coding or [] if c.system in (ALLERGY_VERIFICATION, None)}
    if "confirmed" in found:
        return Cv(text=CONFIRMED)
    if "unconfirmed" in found:
        text = (status.text or "").strip().casefold()
        return Cv(text=PROBABLE if text == PROBABLE.casefold() else SUSPECTED)
    return None


# -- Flag --------------------------------------------------------------------------------------------------------
def flag_kind(flag: Any) -> str | None:
    """The alert kind of a Flag by its HL7 Sweden category, None when it is no alert information."""
    for concept in flag.category or []:
        for coding in concept.coding or []:
            if coding.system == SE_CATEGORY and coding.code in SE_CATEGORY_KIND:
                return SE_CATEGORY_KIND[coding.code]
    return None


def is_alert_flag(flag: Any) -> bool:
    return flag_kind(flag) is not None


def map_flag(flag: Any, ctx: Context) -> list[Record]:
    kind = flag_kind(flag)
    if kind is None:
        return []
    if kind == HYPERSENSITIVITY and _details_allergy(flag, ctx):
        return []  # the AllergyIntolerance it points to publishes the hypersensitivity (EHDS-TK GENERAL-004)
    start_value = flag.period.start if flag.period else None
    if start_value is None:
        raise MappingError("period.start", "an alert needs the start of its validity (TKB 1..1)")
    author = ctx.professional(flag.author, start_value, flag, "period.start")
    header = _header(flag, ctx, flag.subject, "subject", author, flag.author)
    start = timefmt.timestamp(start_value)
    end = timefmt.timestamp(flag.period.end) if flag.period.end else None
    obsolete_time, obsolete_comment = _obsolete(flag, flag.status == "inactive")

    root, b, body = _record(header, ctx)
    b.cv(body, "typeOfAlertInformation", ALERT_TYPE[kind], KV_INFORMATIONSTYP, ALERT_TYPE[kind])
    b.text(body, "ascertainedDate", start[:8])  # TKB: the validity start when no other date is known
    b.text(body, "verifiedTime", _verified_time(flag))
    period = b.node(body, "validityTimePeriod")
    b.text(period, "start", start)
    b.text(period, "end", end)
    comment = profile.extension(flag, ALERT_COMMENT)
    b.text(body, "alertInformationComment", comment.valueString if comment is not None else None)
    b.text(body, "obsoleteTime", obsolete_time)
    b.text(body, "obsoleteComment", obsolete_comment)
    _flag_body(b, body, kind, flag)
    _related(b, body, flag, ctx)
    return [_published(root, header, start, end, obsolete_time)]


def _details_allergy(flag: Any, ctx: Context) -> bool:
    for ext in profile.extensions(flag, FLAG_DETAIL):
        ref = ext.valueReference
        if ref is None:
            continue
        target = ctx.resolve(ref)
        if (target is not None and target.get_resource_type() == "AllergyIntolerance") or (
                ref.type == "AllergyIntolerance" or (ref.reference or "").startswith("AllergyIntolerance/")):
            return True
    return False


def _flag_body(b: rivta_xml.Builder, body: _Element, kind: str, flag: Any) -> None:
    el = b.node(body, kind)
    text = _concept_text(flag.code)
    if kind == SERIOUS_DISEASE:
        disease = _coded(flag.code)
        if disease is None:
            raise MappingError("code", "a serious disease needs its code or text")
        disease.write(b, el, "disease", "code")
    elif kind == TREATMENT:
        if not text:
            raise MappingError("code", "a treatment needs its description (code.text or a display)")
        b.text(el, "treatmentDescription", text)
        codings = list(flag.code.coding or [])
        kva = next((c for c in codings if codes.oid_for(c.system) == KVA and c.code and c.display), None)
        if kva is not None:
            b.cv(el, "treatmentCode", kva.code, KVA, kva.display)
        for coding in codings:
            if codes.oid_for(coding.system) == ATC and coding.code and coding.display:
                b.cv(el, "pharmaceuticalTreatment", coding.code, ATC, coding.display)
    elif kind == COMMUNICABLE_DISEASE:
        disease = _coded(flag.code)
        if disease is None:
            raise MappingError("code", "a communicable disease needs its code or text")
        disease.write(b, el, "communicableDiseaseCode", "code")
        route = profile.extension(flag, ROUTE_OF_TRANSMISSION)
        route_cv = _coded(route.valueCodeableConcept) if route is not None else None
        if route_cv is not None:
            route_cv.write(b, el, "routeOfTransmission", "extension")
    elif kind == HYPERSENSITIVITY:
        severity = _severity(flag)
        if severity is not None:
            severity.write(b, el, "degreeOfSeverity", "extension")
        _other_hypersensitivity(b, el, text, flag.code)
        if not len(el):
            raise MappingError("code", "a hypersensitivity needs its agent (code.text or a coded agent)")
    elif kind == RESTRICTION_OF_CARE:
        if not text:
            raise MappingError("code", "a restriction of care needs its text (code.text or a display)")
        b.text(el, "restrictionOfCareComment", text)
    else:  # UNSTRUCTURED
        label = profile.extension(flag, SE_ALERT_LABEL)
        heading = _concept_text(label.valueCodeableConcept) if label is not None else None
        content = (flag.code.text or "").strip() or text
        if not content:
            raise MappingError("code.text", "unstructured alert information needs its content")
        b.text(el, "unstructuredAlertInformationHeading", heading or ALERT_TYPE[UNSTRUCTURED])
        b.text(el, "unstructuredAlertInformationContent", content)


# -- shared parts -------------------------------------------------------------------------------------------------
def _header(resource: Any, ctx: Context, patient: Any, patient_field: str, author: Any, signer_ref: Any) -> Header:
    signed = profile.extension(resource, profile.SIGNATURE_TIME)
    signer = ctx.signer(signer_ref, signed.valueDateTime) if signed is not None else None
    # GetAlertInformation forbids documentTitle and documentTime (TKB 0..0), so they stay empty.
    return Header(
        document_id=ctx.document_id(resource),
        source_system=ctx.source_system(resource),
        patient=ctx.patient(patient, patient_field),
        author=author,
        approved_for_patient=ctx.approved_for_patient(resource),
        signer=signer,
        care_contact=ctx.care_contact(resource.encounter),
    )


def _record(header: Header, ctx: Context) -> tuple[_Element, rivta_xml.Builder, _Element]:
    root, b = rivta_xml.record_root(CONTRACT)
    rivta_xml.header(b, root, CONTRACT, header)
    return root, b, b.node(root, CONTRACT.body_element)


def _published(root: _Element, header: Header, start: str, end: str | None, obsolete: str | None) -> Record:
    """The record's validity interval runs from validityTimePeriod.start to obsoleteTime or validityTimePeriod.end,
    whichever comes first (the test-data checks 8.1/8.2 of the official suite read it so), else open."""
    ends = [t for t in (end, obsolete) if t]
    stop = min(ends) if ends else None
    return Record(
        contract=CONTRACT.key,
        header=header,
        fragment=rivta_xml.serialise(root),
        times={"authorTime": header.author.time, "validityStart": start, "validityEnd": end,
               "obsoleteTime": obsolete},
        period=(start[:8], stop[:8] if stop else None),
        category=CONTRACT.ei_categorizations[0],
    )


def _obsolete(resource: Any, inactive: bool) -> tuple[str | None, str | None]:
    """obsoleteTime/obsoleteComment: the alert-obsolete extension; an inactive alert without it is obsolete since
    its last update."""
    ext = profile.extension(resource, ALERT_OBSOLETE)
    time = comment = None
    if ext is not None:
        for part in ext.extension or []:
            if part.url == "time":
                time = part.valueDateTime
            elif part.url == "comment":
                comment = part.valueString
    if time is None and inactive:
        time = resource.meta.lastUpdated if resource.meta is not None else None
        if time is None:
            raise MappingError("extension", "an inactive alert needs the time it became obsolete (extension "
                               "alert-obsolete, or meta.lastUpdated)")
    return timefmt.timestamp(time), comment


def _verified_time(resource: Any) -> str | None:
    ext = profile.extension(resource, ALERT_VERIFIED_TIME)
    return timefmt.timestamp(ext.valueDateTime) if ext is not None and ext.valueDateTime else None


def _related(b: rivta_xml.Builder, body: _Element, resource: Any, ctx: Context) -> None:
    for ext in profile.extensions(resource, RELATED_ALERT):
        relationship = comment = None
        documents: list[str] = []
        for part in ext.extension or []:
            if part.url == "relationship":
                relationship = _coded(part.valueCodeableConcept)
            elif part.url == "comment":
                comment = part.valueString
            elif part.url == "document":
                doc = _document_id(part, ctx)
                if doc:
                    documents.append(doc)
        if relationship is None or not documents:
            raise MappingError("extension", "a related alert needs its relationship type and at least one document")
        el = b.node(body, "relatedAlertInformation")
        relationship.write(b, el, "typeOfAlertInformationRelationship", "extension")
        b.text(el, "relationComment", comment)
        for doc in documents:
            b.text(el, "documentId", doc)


def _document_id(part: Any, ctx: Context) -> str | None:
    if part.valueIdentifier is not None:
        return cast("str | None", part.valueIdentifier.value)
    ref = part.valueReference
    if ref is None:
        return None
    if ref.identifier is not None and ref.identifier.value:
        return cast(str, ref.identifier.value)
    target = ctx.resolve(ref)
    if target is not None:
        return ctx.document_id(target)
    return (ref.reference or "").rsplit("/", 1)[-1] or None


def _notes(notes: Any) -> str | None:
    texts = [n.text.strip() for n in notes or [] if n.text and n.text.strip()]
    return "\n".join(texts) or None


def _concept_text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text and concept.text.strip():
        return cast(str, concept.text.strip())
    for coding in concept.coding or []:
        if coding.display and coding.display.strip():
            return cast(str, coding.display.strip())
    return None


def _coded(concept: Any) -> Cv | None:
    """A CodeableConcept as CV: the first coding with a known system and a display, else its text."""
    if concept is None:
        return None
    for coding in concept.coding or []:
        oid = codes.oid_for(coding.system)
        if oid and coding.code and coding.display:
            return Cv(coding.code.strip(), oid, coding.display.strip())
    text = _concept_text(concept) or next((c.code for c in concept.coding or [] if c.code), None)
    return Cv(text=text) if text else None


MAPS = (Map("AllergyIntolerance", map_allergy_intolerance), Map("Flag", map_flag, claims=is_alert_flag))
