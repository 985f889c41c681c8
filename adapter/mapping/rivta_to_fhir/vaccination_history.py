"""GetVaccinationHistory 2.0 `vaccinationMedicalRecord` -> Immunization (R4; EHDS-TK maps no vaccinations, so
the resource follows the input profile mappings/GetVaccinationHistory.md and maps back to the same record).

One record is one vaccination occasion; its first administrationRecord becomes the Immunization (a record
with several administrations gives one Immunization each, ids suffixed by their position).
"""

from __future__ import annotations

from html import escape
from typing import Any

from lxml import etree

from adapter.mapping.rivta_to_fhir.common import (
    DATA_ABSENT,
    PARTICIPANT_TYPE,
    Json,
    Node,
    Output,
    Professional,
    concept,
    hsa_identifier,
    ii,
    ii_identifier,
    model,
    quantity,
    read_header,
    record_id,
    signature_extension,
)
from adapter.rivta.contracts import GET_VACCINATION_HISTORY as CONTRACT
from adapter.rivta.contracts import Contract

PERFORMER_FUNCTION = "http://terminology.hl7.org/CodeSystem/v2-0443"
XHTML = "http://www.w3.org/1999/xhtml"
NPL_ID = "1.2.752.129.2.1.5.1"
KV_KON = "1.2.752.129.2.2.1.1"


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    h = record.required(CONTRACT.header_element)
    body = record.required(CONTRACT.body_element)
    reg = body.required("registrationRecord")
    administrations: list[Node | None] = [*body.children("administrationRecord")] or [None]
    nullified = h.boolean("nullified")
    out = Output(CONTRACT, header)
    resources: list[Json] = []
    for n, adm in enumerate(administrations):
        imm_id = out.id if n == 0 else record_id(CONTRACT, header.source_system, header.document_id, f"adm{n}")
        resources.append(_immunization(imm_id, out, reg, adm, bool(nullified)))
    main = resources[0]
    provenance = out.provenance("Immunization")
    provenance["target"] = [{"reference": f"urn:uuid:{r['id']}", "type": "Immunization"} for r in resources]
    _name_care_giver(provenance, reg)
    performer = next((p["actor"] for p in main.get("performer") or [] if p
                      if p["function"]["coding"][0]["code"] == "AP"), None)
    author = out.role_ref(header.author)
    if author is not None and performer is not None and author.get("reference") != performer.get("reference"):
        provenance["agent"].append(_agent("enterer", "Enterer", author))
    return [*(model(r) for r in resources), model(provenance), *(model(r) for r in out.roles.values())]


def _immunization(imm_id: str, out: Output, reg: Node, adm: Node | None, nullified: bool) -> Json:
    header = out.header
    given = header.document_time or reg.day("date")
    a = adm if adm is not None else Node(etree.Element("none"), "administrationRecord")
    dose_number, series_doses = a.number("doseOrdinalNumber"), a.number("numberOfPrescribedDoses")
    complete = a.boolean("isDoseComplete")
    source_description = a.text("sourceDescription")
    performer = _actor(a, "performer", "performerOrg", out) or out.role_ref(header.author)
    prescriber = _actor(a, "prescriberPerson", "prescriberOrg", out)
    contained, reactions = _reactions(reg, a, out)
    program = a.child("vaccinationProgramName")
    diseases = [concept(d, text_fallback=True) for d in a.children("vaccineTargetDisease")]
    protocol = None
    if program is not None or diseases or dose_number is not None or series_doses is not None:
        protocol = {
            "series": (program.text("originalText") or program.text("displayName")) if program is not None else None,
            "targetDisease": diseases,
            "doseNumberPositiveInt": int(dose_number) if dose_number is not None and dose_number > 0 else None,
            "doseNumberString": None if dose_number is not None and dose_number > 0 else "okänd",
            "seriesDosesPositiveInt": int(series_doses) if series_doses is not None and series_doses > 0 else None,
        }
    incomplete_series = dose_number is not None and series_doses is not None and dose_number < series_doses
    unique = ii(a.child("vaccinationUniqueReference"))
    note = reg.text("vaccinationUnstructuredNote")
    dose = a.child("dose")
    pq = dose.child("quantity") if dose is not None else None
    return {
        "resourceType": "Immunization",
        "id": imm_id,
        "meta": out.meta([]),
        "text": _narrative(note),
        "contained": contained,
        "extension": [signature_extension(header)],
        "identifier": [out.identifier(),
                       ii_identifier(unique, header.source_system)
                       if unique is not None and unique != (header.source_system, header.document_id) else None],
        "status": "entered-in-error" if nullified else "completed",
        "vaccineCode": _vaccine_code(a),
        "patient": out.subject(),
        "encounter": out.encounter(),
        "occurrenceDateTime": given,
        "recorded": header.author.time,
        "primarySource": False if source_description else None,
        "reportOrigin": {"text": source_description} if source_description else None,
        "manufacturer": {"display": a.text("vaccineManufacturer")},
        "lotNumber": a.text("vaccineBatchId"),
        "site": concept(a.child("anatomicalSite"), text_fallback=True),
        "route": concept(a.child("route"), text_fallback=True),
        "doseQuantity": _dose(pq, dose.text("displayName")) if pq is not None and dose is not None else None,
        "performer": [
            {"function": _function("AP", "Administering Provider"), "actor": performer} if performer else None,
            {"function": _function("OP", "Ordering Provider"), "actor": prescriber} if prescriber else None,
        ],
        "note": [{"text": a.text("commentAdministration")}],
        "reasonCode": [concept(c, text_fallback=True) for c in reg.children("riskCategory")],
        "isSubpotent": True if complete is False and not incomplete_series else None,
        "reaction": reactions,
        "protocolApplied": [protocol],
    }


def _dose(pq: Node, shown: str | None) -> Json | None:
    """The PQ as Quantity; the unit as the dose's text writes it (e.g. "ml" in "0,5 ml") is the unit label."""
    value, unit = pq.number("value"), pq.text("unit")
    label = None
    if value is not None and shown:
        number = format(value.normalize(), "f").replace(".", ",")
        if shown.startswith(number + " ") and shown[len(number) + 1:].strip():
            label = shown[len(number) + 1:].strip()
    return quantity(value, unit, label)


def _vaccine_code(a: Node) -> Json:
    """vaccineName (NPL-id, or its name as text) and typeOfVaccine (ATC, SNOMED CT) as one concept."""
    name, kind = concept(a.child("vaccineName"), text_fallback=True), concept(a.child("typeOfVaccine"))
    codings = [*((name or {}).get("coding") or []), *((kind or {}).get("coding") or [])]
    text = (name or {}).get("text") or (kind or {}).get("text")
    if not codings and not text:
        return {"extension": [{"url": DATA_ABSENT, "valueCode": "unknown"}]}
    return {"coding": codings, "text": text}


def _actor(a: Node, person: str, org: str, out: Output) -> Json | None:
    """An ActorType (and its OrgUnitType) as a PractitionerRole; an organisation alone as an Organization."""
    who, unit = a.child(person), a.child(org)
    unit_hsa = unit.text("orgUnitHSAId") if unit is not None else None
    unit_name = unit.text("orgUnitName") if unit is not None else None
    author = out.header.author
    if who is not None and who.text("hsaid") and who.text("hsaid") == author.hsa_id and (
            not unit_hsa or unit_hsa == author.unit_hsa_id):
        return out.role_ref(author)  # the accountable professional gave the vaccination: one PractitionerRole
    if who is not None:
        return out.role_ref(Professional(time=None, hsa_id=who.text("hsaid"), name=who.text("personName"),
                                         unit_hsa_id=unit_hsa, unit_name=unit_name))
    if unit_hsa or unit_name:
        return {"type": "Organization", "identifier": hsa_identifier(unit_hsa), "display": unit_name}
    return None


def _reactions(reg: Node, a: Node, out: Output) -> tuple[list[Json], list[Json]]:
    """patientAdverseEffect (of the occasion and of the administration) as reactions, each detail a contained
    Observation whose code is the effect."""
    contained, reactions = [], []
    for n, effect in enumerate([*reg.children("patientAdverseEffect"), *a.children("patientAdverseEffect")], 1):
        code = concept(effect, text_fallback=True)
        if code is None:
            continue
        contained.append({"resourceType": "Observation", "id": f"reaction-{n}", "status": "final", "code": code,
                          "subject": out.subject()})
        reactions.append({"detail": {"reference": f"#reaction-{n}"}, "reported": True})
    return contained, reactions


def _narrative(note: str | None) -> Json | None:
    if not note:
        return None
    paragraphs = "\n".join(f"<p>{escape(line, quote=False)}</p>" for line in note.splitlines() if line.strip())
    return {"status": "additional", "div": f'<div xmlns="{XHTML}">{paragraphs}</div>'}


def _function(code: str, display: str) -> Json:
    return {"coding": [{"system": PERFORMER_FUNCTION, "code": code, "display": display}]}


def _agent(code: str, display: str, who: Json) -> Json:
    return {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": code, "display": display}]}, "who": who}


def _name_care_giver(provenance: Json, reg: Node) -> None:
    """The custodian agent (the care giver) is named after registrationRecord/careGiverOrg."""
    giver = reg.child("careGiverOrg")
    name = giver.text("orgUnitName") if giver is not None else None
    for agent in provenance["agent"]:
        if agent["type"]["coding"][0]["code"] == "custodian" and name:
            agent["who"]["display"] = name


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    adm = f"{body}/c:administrationRecord"
    vaccine = first(f"{adm}/c:vaccineName/c:displayName", f"{adm}/c:vaccineName/c:originalText",
                    f"{adm}/c:typeOfVaccine/c:displayName", f"{adm}/c:typeOfVaccine/c:originalText",
                    f"{body}/c:registrationRecord/c:vaccinationUnstructuredNote")
    against = first(f"{adm}/c:vaccineTargetDisease/c:displayName", f"{adm}/c:vaccineTargetDisease/c:originalText")
    dose, doses = first(f"{adm}/c:doseOrdinalNumber"), first(f"{adm}/c:numberOfPrescribedDoses")
    parts = [p for p in (vaccine, f"mot {against}" if against else None,
                         f"dos {dose}{f' av {doses}' if doses else ''}" if dose else None) if p]
    texts = [" - ".join(parts)]
    for extra in (first(f"{body}/c:registrationRecord/c:vaccinationUnstructuredNote"),
                  first(f"{adm}/c:commentAdministration")):
        if extra and extra not in texts[0]:
            texts.append(extra)
    return "\n".join(t for t in texts if t), first(f"{header}/c:documentTime", f"{body}/c:registrationRecord/c:date")


# -- the contract's own rules (TKB activityprescription:actoutcome 2.2.1, 7.1.4 and 7.1.5) -----------
def rules(rec: etree._Element, contract: Contract) -> list[str]:
    """GetVaccinationHistory rules a schema cannot say; messages name elements, never values."""
    ns = {"c": contract.core_ns}
    out = []
    header = rec.find(f"c:{contract.header_element}", ns)
    if header is not None:
        nullified = header.findtext("c:nullified", namespaces=ns)
        if nullified is None:
            out.append("nullified missing (TKB 1..1)")
        if header.find("c:nullifiedReason", ns) is not None and (nullified or "").strip() not in ("true", "1"):
            out.append("nullifiedReason without nullified true (1.3)")
    for gender in rec.iterfind(".//c:additionalPatientInformation/c:gender", ns):
        if gender.find("c:originalText", ns) is not None or gender.find("c:code", ns) is None:
            out.append("gender must be coded, without originalText")
    for adm in rec.iterfind(".//c:administrationRecord", ns):
        dose = _integer(adm.findtext("c:doseOrdinalNumber", namespaces=ns))
        doses = _integer(adm.findtext("c:numberOfPrescribedDoses", namespaces=ns))
        if any(v is not None and v < 1 for v in (dose, doses)):
            out.append("doseOrdinalNumber and numberOfPrescribedDoses count from 1")
        elif dose is not None and doses is not None and dose > doses:
            out.append("doseOrdinalNumber greater than numberOfPrescribedDoses")
    return out


def _integer(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value and value.strip() else None
    except ValueError:
        return None
