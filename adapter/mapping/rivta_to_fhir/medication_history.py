"""GetMedicationHistory 2.2 `medicationMedicalRecord` record -> MedicationStatement (EHDS-TK
IneraEHDSMedicationStatement).

Where EHDS-TK names an extension without a URL (chain, prescriber, evaluator, evaluation time, start of
first treatment) the input profile's extensions are used, so that the statement maps back to the same
record (mappings/GetMedicationHistory.md). Product form and strength need a Medication: it is contained.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

from lxml import etree

from adapter.mapping import codes, profile
from adapter.mapping.rivta_to_fhir.common import (
    DATA_ABSENT,
    EHDS_TK,
    EU_EPS,
    LOCAL_ID_ROOT,
    Json,
    Node,
    Output,
    Professional,
    concept,
    extension,
    ii,
    ii_identifier,
    quantity,
    read_header,
    read_professional,
    signature_extension,
)
from adapter.rivta.contracts import GET_MEDICATION_HISTORY as CONTRACT
from adapter.rivta.contracts import Contract

PROFILES = [EHDS_TK + "inera-ehds-medication-statement", EU_EPS + "medicationstatement-obl-eu-eps"]
PRESCRIPTION_TYPES = {"I": "Insättningsordination", "U": "Utsättningsordination"}
# EHDS-TK: Active -> active, Inactive -> stopped, whatever the type of prescription.
STATUS = {"Active": "active", "Inactive": "stopped"}
MEDICATION_ID = "medication"
DISPENSATION_ID = "dispensation"
FHIR_TIME_UNITS = frozenset({"s", "min", "h", "d", "wk", "mo", "a"})
# The Swedish words the input profile writes for FHIR `when` codes in an occasion dosage.
WHEN = {
    "morgon": "MORN", "mitt på dagen": "NOON", "eftermiddag": "AFT", "kväll": "EVE", "natt": "NIGHT",
    "till natten": "HS", "vid uppvaknande": "WAKE", "till frukost": "CM", "till lunch": "CD",
    "till middag": "CV", "före frukost": "ACM", "före lunch": "ACD", "före middag": "ACV",
    "efter frukost": "PCM", "efter lunch": "PCD", "efter middag": "PCV",
}


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    mp = record.required(CONTRACT.body_element).required("medicationPrescription")
    out = Output(CONTRACT, header)
    source = header.source_system

    kind = mp.required_text("typeOfPrescription")
    prescription_id = ii(mp.required("prescriptionId"))
    drug = _Drug.read(mp.child("drug"))
    contained = [drug.medication] if drug.medication else []
    administrations = [_administration(adm, n, drug, out) for n, adm in enumerate(mp.children("administration"), 1)]
    contained += [a for a in administrations if a]
    dispensation = _dispensation(mp.child("dispensationAuthorization"), drug, out)
    if dispensation is not None:
        contained.append(dispensation)

    statement = {
        "resourceType": "MedicationStatement",
        "id": out.id,
        "meta": out.meta(PROFILES),
        "contained": contained,
        "extension": [
            extension(profile.PRESCRIPTION_CHAIN_ID,
                      valueIdentifier=ii_identifier(ii(mp.child("prescriptionChainId")), source)),
            extension(profile.PRECEDING_PRESCRIPTION,
                      valueIdentifier=ii_identifier(ii(mp.child("precedingPrescriptionId")), source)),
            extension(profile.SUCCEEDING_PRESCRIPTION,
                      valueIdentifier=ii_identifier(ii(mp.child("succeedingPrescriptionId")), source)),
            _actor(profile.PRESCRIBER, mp.child("prescriber"), out),
            _actor(profile.EVALUATOR, mp.child("evaluator"), out),
            extension(profile.EVALUATION_TIME, valueDateTime=mp.time("evaluationTime")),
            extension(profile.START_OF_FIRST_TREATMENT, valueDateTime=mp.time("startOfFirstTreatment")),
            extension(profile.SELF_MEDICATION, valueBoolean=mp.boolean("selfMedication")),
            signature_extension(header),
        ],
        "identifier": _identifiers(header.document_id, prescription_id, source),
        "status": STATUS.get(mp.required_text("prescriptionStatus"), "unknown"),
        "statusReason": [concept(mp.child("endOfTreatmentReason"))],
        "category": {"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": kind,
                                 "display": PRESCRIPTION_TYPES.get(kind)}]},
        **drug.medication_element(),
        "subject": out.subject(),
        "context": out.encounter(),
        "effectivePeriod": {"start": mp.time("startOfTreatment"), "end": mp.time("endOfTreatment")},
        "basedOn": [{"reference": f"#{DISPENSATION_ID}"}] if dispensation is not None else None,
        "dateAsserted": header.author.time,
        "informationSource": out.role_ref(header.author),
        "derivedFrom": [{"reference": f"#{a['id']}"} for a in administrations if a],
        "reasonCode": [*_reasons(mp), _purpose(mp)],
        "note": [{"text": t} for t in (mp.text("prescriptionNote"), drug.comment) if t and t.strip()],
        "dosage": [d for node in drug.dosages for d in _dosages(node, drug.route)],
    }
    return out.finish(statement)


# -- identifiers and people ---------------------------------------------------------------------------
def _identifiers(document_id: str, prescription_id: tuple[str, str | None], source: str) -> list[Json]:
    """identifier[0] = documentId (EHDS-TK), given the prescriptionId's system when that id is the
    document id under an OID; identifier[1] = prescriptionId when it says more than identifier[0]."""
    root, ext = prescription_id
    document = {"value": document_id}
    local = root == LOCAL_ID_ROOT and ext == f"{source}:{document_id}"
    if ext is not None and codes.OID_PATTERN.match(root) and (ext == document_id or local):
        document["system"] = codes.uri_for(root)
    prescription = ii_identifier(prescription_id, source)
    same = prescription == document or (prescription or {}).get("value") == f"urn:uuid:{document_id.lower()}"
    return [document] if same else [document, prescription]


def _actor(url: str, node: Node | None, out: Output) -> Json | None:
    """prescriber / evaluator: the input profile's complex extension (who, when)."""
    if node is None:
        return None
    who = read_professional(node)
    # Body professionals carry no care unit or care giver (TKB Övriga regler 1.9).
    who = Professional(time=who.time, hsa_id=who.hsa_id, name=who.name, role=who.role,
                       unit_hsa_id=who.unit_hsa_id, unit_name=who.unit_name)
    return extension(url, extension=[
        extension("practitioner", valueReference=out.role_ref(who)),
        extension("time", valueDateTime=who.time),
    ])


def _reasons(mp: Node) -> Iterator[Json | None]:
    """Coded reasons, principal first; otherReason is the concept's text (input profile)."""
    for node in [*mp.children("principalPrescriptionReason"), *mp.children("additionalPrescriptionReason")]:
        reason = concept(node.child("reason")) or {}
        other = node.text("otherReason")
        yield {**reason, "text": other or reason.get("text")} if reason or other else None


def _purpose(mp: Node) -> Json | None:
    """treatmentPurpose is a reason given as text only (input profile; EHDS-TK would put it in a note,
    where it would come back as part of the prescription note)."""
    purpose = mp.text("treatmentPurpose")
    return {"text": purpose} if purpose else None


# -- the drug -------------------------------------------------------------------------------------------
class _Drug:
    """DrugChoiceType: exactly one alternative, plus the dosages written under it."""

    def __init__(self) -> None:
        self.concept: Json | None = None
        self.medication: Json | None = None  # contained Medication when form or strength is given
        self.route: Json | None = None
        self.comment: str | None = None
        self.dosages: list[Node] = []

    @classmethod
    def read(cls, node: Node | None) -> _Drug:
        drug = cls()
        if node is None:
            return drug
        drug.comment = node.text("comment")
        drug.dosages = node.children("dosage")
        if (unstructured := node.child("unstructuredDrugInformation")) is not None:
            drug.concept = {"text": unstructured.text("unstructuredInformation")}
        elif (merchandise := node.child("merchandise")) is not None:
            # varunummer: the TKB gives it the ATC OID, so the input profile keeps it in its own system
            drug.concept = _coded(merchandise.child("articleNumber"), system=profile.VARUNUMMER)
        elif (article := node.child("drugArticle")) is not None:
            drug.concept = concept(article.child("nplPackId"))
        elif (product := node.child("drug")) is not None:
            npl, atc = concept(product.child("nplId")), concept(product.child("atcCode"))
            codings = [c for part in (npl, atc) if part for c in part.get("coding") or []]
            drug.concept = {"coding": codings, "text": None if codings else _text(npl, atc)}
            drug.route = concept(product.child("routeOfAdministration"))
            strength = product.number("strength")
            form = product.text("pharmaceuticalForm")
            if strength is not None or form:
                drug.medication = _medication(drug.concept, form, atc or npl,
                                              quantity(strength, product.text("strengthUnit")))
        elif (generics := node.child("generics")) is not None:
            pq = generics.child("strength")
            amount = quantity(pq.number("value"), pq.text("unit")) if pq is not None else None
            substance = generics.text("substance")
            drug.medication = _medication(None, generics.text("form"), {"text": substance} if substance else None,
                                          amount, generics=True)
        return drug

    def medication_element(self) -> Json:
        if self.medication is not None:
            return {"medicationReference": {"reference": f"#{MEDICATION_ID}", "display": _name(self.concept)}}
        if self.concept:
            return {"medicationCodeableConcept": self.concept}
        # MedicationStatement needs a medication; the record names none.
        return {"medicationCodeableConcept": {"extension": [extension(DATA_ABSENT, valueCode="unknown")]}}


def _coded(node: Node | None, system: str) -> Json | None:
    found = concept(node)
    if found and found.get("coding"):
        found["coding"] = [{**c, "system": system} for c in found["coding"]]
    return found


def _name(found: Json | None) -> str | None:
    if not found:
        return None
    return found.get("text") or next((c.get("display") for c in found.get("coding") or [] if c.get("display")), None)


def _text(*concepts: Json | None) -> str | None:
    return next((c.get("text") for c in concepts if c and c.get("text")), None)


def _medication(code: Json | None, form: str | None, item: Json | None, strength: Json | None,
                generics: bool = False) -> Json:
    """A contained Medication: the product's codes, its form, and the strength of its (first) ingredient
    (the input profile's reading: Medication.form, ingredient[0].strength.numerator)."""
    ingredient = None
    if item or strength:
        ingredient = {
            # item[x] is required: a substance the record does not name is marked as absent
            "itemCodeableConcept": item or {"extension": [extension(DATA_ABSENT, valueCode="unknown")]},
            "strength": {"numerator": strength, "denominator": {"value": Decimal(1)}} if strength else None,
        }
    return {
        "resourceType": "Medication",
        "id": MEDICATION_ID,
        "code": None if generics else code,
        "form": {"text": form} if form else None,
        "ingredient": [ingredient],
    }


# -- dosage --------------------------------------------------------------------------------------------
def _dosages(node: Node, route: Json | None) -> list[Json]:
    """DosageType -> Dosage: the instruction as text and, where the structure allows, the same timing
    the input profile reads (frequency/period/occasion/single dose). A fixed dosage with an as-needed
    part becomes two Dosages, as FHIR's asNeeded applies to a whole Dosage."""
    unit_label = _label(node.child("unitDose"))
    common: dict[str, Any] = {
        "text": node.text("dosageInstruction"),
        "patientInstruction": node.text("shortNotation"),
        "route": route,
        "maxDosePerPeriod": _maximum(node.child("maximumDosage")),
    }
    length = node.child("lengthOfTreatment")
    bounds = _length(length.child("treatmentInterval")) if length is not None else None
    fixed, conditional = node.child("setDosage"), node.child("conditionalDosage")
    out = []
    if fixed is not None or conditional is None:
        out.append({**common, **_timed(fixed, unit_label, bounds)})
    if conditional is not None:
        out.append({**common, "asNeededCodeableConcept": {"text": conditional.text("conditionDescription")},
                    **_timed(conditional, unit_label, bounds)})
    return out


def _timed(schedule: Node | None, label: str | None, bounds: Json | None) -> Json:
    timing, dose = _schedule(schedule, label)
    if bounds:
        timing = {**(timing or {}), "repeat": {**(timing or {}).get("repeat", {}), **bounds}}
    return {"timing": timing, "doseAndRate": [dose] if dose else None}


def _label(node: Node | None) -> str | None:
    if node is None:
        return None
    return node.text("originalText") or node.text("displayName") or node.text("code")


def _schedule(node: Node | None, label: str | None) -> tuple[Json | None, Json | None]:
    """(timing, doseAndRate) of one frequency/period/occasion/single dosage; (None, None) for
    unstructured or ramped dosages, which only the text describes."""
    if node is None:
        return None, None
    if (freq := node.child("frequencyDosage")) is not None:
        pq = freq.child("frequency")
        value, unit = (pq.number("value"), (pq.text("unit") or "").strip()) if pq is not None else (None, "")
        per = unit.removeprefix("1").removeprefix("/") if unit.startswith(("/", "1/")) else ""  # "/d", "1/d"
        if value is None or value <= 0 or per not in FHIR_TIME_UNITS:
            return None, _dose(freq.child("dose"), label)
        ratio = Fraction(value).limit_denominator(1000)
        return ({"repeat": {"frequency": ratio.numerator, "period": Decimal(ratio.denominator), "periodUnit": per}},
                _dose(freq.child("dose"), label))
    if (period := node.child("periodDosage")) is not None:
        return _every(period.child("period")), _dose(period.child("dose"), label)
    if (occasion := node.child("occasionDosage")) is not None:
        return _occasions(occasion), _dose(_first_dose(occasion), label)
    if (single := node.child("singleDose")) is not None:
        time = single.time("time")
        timing = {"event": [time]} if time else {"repeat": {"count": 1}}
        return timing, _dose(single.child("dose"), label)
    return None, None


def _every(pq: Node | None) -> Json | None:
    value, unit = (pq.number("value"), (pq.text("unit") or "").strip()) if pq is not None else (None, "")
    if value is None or value <= 0 or unit not in FHIR_TIME_UNITS:
        return None
    return {"repeat": {"frequency": 1, "period": value, "periodUnit": unit}}


def _occasions(node: Node) -> Json | None:
    pq = node.child("period")
    days = pq.number("value") if pq is not None else None
    if pq is None or days is None or (pq.text("unit") or "").strip() != "d":
        return None
    times, whens = [], []
    for adm in node.children("administration"):
        moment = (adm.text("time") or "").strip()
        if len(moment) == 5 and moment[2] == ":" and moment.replace(":", "").isdigit():
            times.append(f"{moment}:00")
        elif moment.lower() in WHEN:
            whens.append(WHEN[moment.lower()])
    if not times and not whens:
        return None
    return {"repeat": {"timeOfDay": times, "when": whens, "period": days, "periodUnit": "d"}}


def _first_dose(occasion: Node) -> Node | None:
    adm = occasion.child("administration")
    return adm.child("dose") if adm is not None else None


def _dose(node: Node | None, label: str | None) -> Json | None:
    """A PQIntervalType dose: one quantity when low = high, else a range."""
    if node is None:
        return None
    low, high, unit = node.number("low"), node.number("high"), node.text("unit")
    if low is not None and (high is None or high == low):
        return {"doseQuantity": quantity(low, unit, label)}
    if high is not None and low is None:
        return {"doseRange": {"high": quantity(high, unit, label)}}
    return {"doseRange": {"low": quantity(low, unit, label), "high": quantity(high, unit, label)}}


def _length(node: Node | None) -> Json | None:
    if node is None:
        return None
    low, high, unit = node.number("low"), node.number("high"), node.text("unit")
    if low is not None and (high is None or high == low):
        return {"boundsDuration": quantity(low, unit)}
    if low is None and high is None:
        return None
    return {"boundsRange": {"low": quantity(low, unit), "high": quantity(high, unit)}}


def _maximum(node: Node | None) -> Json | None:
    """maximumDosage as a period dosage ("at most 8 per day") -> maxDosePerPeriod."""
    period = node.child("periodDosage") if node is not None else None
    if period is None:
        return None
    dose, per = period.child("dose"), period.child("period")
    if dose is None or per is None:
        return None
    amount = dose.number("high") if dose.number("high") is not None else dose.number("low")
    if amount is None:
        return None
    return {"numerator": quantity(amount, dose.text("unit")),
            "denominator": quantity(per.number("value"), per.text("unit"))}


# -- förskrivning ---------------------------------------------------------------------------------------
def _dispensation(node: Node | None, drug: _Drug, out: Output) -> Json | None:
    """dispensationAuthorization (förskrivning) -> a contained MedicationRequest the statement is basedOn
    (EHDS-TK leaves it unmapped, MED-005 points at MedicationRequest). Consumer side only: the input profile
    reads a förskrivning from a MedicationRequest's own dispenseRequest, not from a statement."""
    if node is None:
        return None
    authorizer = node.child("dispensationAuthorizer")
    who = read_professional(authorizer) if authorizer is not None else None
    if who is not None:
        who = Professional(time=who.time, hsa_id=who.hsa_id, name=who.name, role=who.role,
                           unit_hsa_id=who.unit_hsa_id, unit_name=who.unit_name)
    article = _Drug.read(node.child("drug"))
    pharmacy = ii_identifier(ii(node.child("receivingPharmacy")), out.header.source_system)
    interval = node.child("minimumDispensationInterval")
    non_replaceable = (node.text("nonReplaceable") or "").strip()
    valid_until = node.day("validUntil")
    return {
        "resourceType": "MedicationRequest",
        "id": DISPENSATION_ID,
        "groupIdentifier": ii_identifier(ii(node.required("dispensationAuthorizationId")), out.header.source_system),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": article.concept or drug.concept or {
            "extension": [extension(DATA_ABSENT, valueCode="unknown")]},
        "subject": out.subject(),
        "authoredOn": who.time if who is not None else None,
        "requester": out.role_ref(who),
        "dosageInstruction": [{"text": node.text("prescriptionSignatura")}],
        "dispenseRequest": {
            "validityPeriod": {"end": valid_until},
            "dispenseInterval": quantity(interval.number("value"), interval.text("unit"))
            if interval is not None else None,
            "quantity": quantity(node.number("totalAmount"), node.text("packageUnit")),
            "performer": {"type": "Organization", "identifier": pharmacy} if pharmacy else None,
        },
        # nonReplaceable: who refused generic substitution (Prescriber / Patient)
        "substitution": {"allowedBoolean": False, "reason": {"text": non_replaceable}} if non_replaceable else None,
    }


# -- administrations -----------------------------------------------------------------------------------
def _administration(node: Node, n: int, drug: _Drug, out: Output) -> Json | None:
    """An administration that took place -> contained MedicationAdministration (the input profile reads
    it back from `contained`)."""
    when = node.child("administrationTime")
    start = when.time("start") if when is not None else None
    end = when.time("end") if when is not None else None
    if start is None and end is None:
        return None  # effective[x] is required in FHIR and the record gives no time
    effective = {"effectiveDateTime": start} if start == end or end is None else (
        {"effectiveDateTime": end} if start is None else {"effectivePeriod": {"start": start, "end": end}})
    given = _Drug.read(node.child("drug"))
    who = read_professional(node.required("administeringHealthcareProfessional"))
    dose = _given_dose(given)
    return {
        "resourceType": "MedicationAdministration",
        "id": f"administration-{n}",
        "extension": [extension(profile.SIGNATURE_TIME, valueDateTime=who.time)],
        "identifier": [ii_identifier(ii(node.child("administrationId")), out.header.source_system)],
        "status": "completed",
        "medicationCodeableConcept": given.concept or drug.concept or {
            "extension": [extension(DATA_ABSENT, valueCode="unknown")]},
        "subject": out.subject(),
        **effective,
        "performer": [{"actor": out.role_ref(Professional(
            time=who.time, hsa_id=who.hsa_id, name=who.name, role=who.role,
            unit_hsa_id=who.unit_hsa_id, unit_name=who.unit_name))}],
        "note": [{"text": node.text("administrationComment")}],
        # a dosage needs a dose (mad-1): the route alone is not written
        "dosage": {"route": concept(node.child("routeOfAdministration")), "dose": dose} if dose else None,
    }


def _given_dose(drug: _Drug) -> Json | None:
    for dosage in drug.dosages:
        label = _label(dosage.child("unitDose"))
        _, dose = _schedule(dosage.child("setDosage"), label)
        if dose and "doseQuantity" in dose:
            return cast("Json | None", dose["doseQuantity"])
    return None



def _day(text: str | None) -> str | None:
    return text.strip()[:8] if text and text.strip() else None


def period(rec: etree._Element, contract: Contract) -> tuple[str | None, str | None]:
    """The days the TKB's datePeriod rule sees: from the prescription decision (prescriber.authorTime), else
    startOfTreatment, else the registration (header authorTime), to endOfTreatment (open when missing)."""
    ns = {"c": contract.core_ns}
    mp = ".//c:medicationPrescription"
    start = next((d for p in (f"{mp}/c:prescriber/c:authorTime", f"{mp}/c:startOfTreatment",
                              f"c:{contract.header_element}/c:accountableHealthcareProfessional/c:authorTime")
                  if (d := _day(rec.findtext(p, namespaces=ns)))), None)
    return start, _day(rec.findtext(f"{mp}/c:endOfTreatment", namespaces=ns))

# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    mp = f"{body}/c:medicationPrescription"
    drug = first(f"{mp}/c:drug/c:drug/c:nplId/c:displayName", f"{mp}/c:drug/c:drug/c:atcCode/c:displayName",
                 f"{mp}/c:drug/c:unstructuredDrugInformation/c:unstructuredInformation",
                 f"{mp}/c:drug/c:generics/c:substance", f"{mp}/c:drug/c:merchandise/c:articleNumber/c:displayName",
                 f"{mp}/c:drug/c:drugArticle/c:nplPackId/c:displayName")
    dose = first(f"{mp}/c:drug/c:dosage/c:dosageInstruction", f"{mp}/c:drug/c:dosage/c:shortNotation")
    kind = "utsättning" if first(f"{mp}/c:typeOfPrescription") == "U" else "insättning"
    status = "aktuell" if first(f"{mp}/c:prescriptionStatus") == "Active" else "ej aktuell"
    parts = [p for p in (drug, dose) if p]
    return f"{' - '.join(parts)} ({kind}, {status})", first(f"{mp}/c:startOfTreatment")


# -- the contract's own rules (TKB, schematron) that its schema cannot say --------------------------------------
_GMH_BODY_ACTORS = ("prescriber", "evaluator", "dispensationAuthorizer", "administeringHealthcareProfessional")
_GMH_DRUG_CHOICES = ("unstructuredDrugInformation", "merchandise", "drugArticle", "drug", "generics")
_GMH_STRICT_CV = ("nplId", "atcCode", "nplPackId", "articleNumber", "reason")


def rules(rec: etree._Element, contract: Contract) -> list[str]:
    """GetMedicationHistory Övriga regler (TKB activityprescription:actoutcome 2.2.1) that a schema cannot say."""
    ns = {"c": contract.core_ns}
    out = []
    for mp in rec.iterfind(".//c:medicationPrescription", ns):
        kind = mp.findtext("c:typeOfPrescription", namespaces=ns)
        if mp.findtext("c:selfMedication", namespaces=ns) == "false" and mp.find("c:prescriber", ns) is None:
            out.append("prescriber missing while selfMedication is false (1.8)")
        if kind == "I" and mp.find("c:startOfTreatment", ns) is None:
            out.append("startOfTreatment missing for typeOfPrescription I (1.8)")
        if kind == "U" and (mp.find("c:drug/c:dosage", ns) is not None
                            or mp.find("c:dispensationAuthorization", ns) is not None):
            out.append("typeOfPrescription U with dosage or dispensationAuthorization")
    for choice in rec.iterfind(".//c:drug", ns):
        parent = choice.getparent()  # never None: a descendant of rec
        if parent is not None and etree.QName(parent).localname == "drug":
            continue  # a DrugType inside a DrugChoiceType
        kinds = [k for k in _GMH_DRUG_CHOICES if choice.find(f"c:{k}", ns) is not None]
        if len(kinds) != 1:
            out.append("drug holds not exactly one of unstructuredDrugInformation, merchandise, drugArticle, "
                       "drug and generics (1.4)")
        product = choice.find("c:drug", ns)
        if product is not None and product.find("c:nplId", ns) is None and product.find("c:atcCode", ns) is None:
            out.append("drug without nplId and atcCode")
    for dosage in rec.iterfind(".//c:dosage", ns):
        if dosage.find("c:setDosage", ns) is None and dosage.find("c:conditionalDosage", ns) is None:
            out.append("dosage without setDosage or conditionalDosage (1.3)")
        parent = dosage.getparent()  # never None: a descendant of rec
        grandparent = parent.getparent() if parent is not None else None
        if grandparent is not None and etree.QName(grandparent).localname == "administration":
            for name in ("lengthOfTreatment", "dosageInstruction"):
                if dosage.find(f"c:{name}", ns) is not None:
                    out.append(f"administration dosage with {name} (1.11)")
    for name in _GMH_BODY_ACTORS:
        for actor in rec.iterfind(f".//c:{name}", ns):
            out.extend(f"{name} with {field} (1.9)"
                       for field in ("healthcareProfessionalCareUnitHSAId", "healthcareProfessionalCareGiverHSAId")
                       if actor.find(f"c:{field}", ns) is not None)
    for name in _GMH_STRICT_CV:
        for cv in rec.iterfind(f".//c:{name}", ns):
            if {etree.QName(c).localname for c in cv} != {"code", "codeSystem", "displayName"}:
                out.append(f"{name} must hold exactly code, codeSystem and displayName (1.6)")
    for interval in rec.xpath(".//c:dose | .//c:treatmentInterval", namespaces=ns):
        if interval.find("c:low", ns) is None and interval.find("c:high", ns) is None:
            out.append(f"{etree.QName(interval).localname} without low and high (2.2)")
    for da in rec.iterfind(".//c:dispensationAuthorization", ns):
        if (da.find("c:totalAmount", ns) is None) != (da.find("c:packageUnit", ns) is None):
            out.append("dispensationAuthorization: totalAmount and packageUnit go together (1.8)")
    return out
