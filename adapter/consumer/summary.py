"""One line per shown record for people: date, what it says, care unit, source, access basis (CLI and web)."""

from __future__ import annotations

from adapter.consumer.overview import ShownRecord

BASIS_TEXT = {"own": "egen vårdgivare", "consent": "samtycke", "emergency": "nödåtkomst"}
PREVIEW = 160


def summarise(r: ShownRecord) -> dict[str, str]:
    ns = {"c": r.contract.core_ns}

    def first(*paths: str) -> str | None:
        for p in paths:
            found = r.element.xpath(f"string({p})", namespaces=ns)
            if found:
                return found.strip()
        return None

    body = f"c:{r.contract.body_element}"
    header = f"c:{r.contract.header_element}"
    text, when = _TEXT[r.contract.name](first, body, header)
    when = when or r.author_time
    return {
        "date": f"{when[:4]}-{when[4:6]}-{when[6:8]}" if when else "",
        "text": text or "(utan text)",
        "unit": r.unit_name or r.group.care_unit,
        "care_unit": r.group.care_unit,
        "care_giver": r.group.care_giver,
        "source": r.source_system,
        "basis": BASIS_TEXT[r.basis.value],
        "document_id": r.document_id,
    }


def _diagnosis(first, body, header):
    name = first(f"{body}/c:diagnosisCode/c:displayName", f"{body}/c:diagnosisCode/c:originalText")
    code = first(f"{body}/c:diagnosisCode/c:code")
    kind = first(f"{body}/c:typeOfDiagnosis")
    chronic = " (kronisk)" if first(f"{body}/c:chronicDiagnosis") == "true" else ""
    return f"{name}{f' [{code}]' if code else ''} - {kind}{chronic}", first(f"{body}/c:diagnosisTime")


def _medication(first, body, header):
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


def _care_plan(first, body, header):
    kind = first(f"{body}/c:typeOfCarePlanEnum")
    return f"{first(f'{header}/c:documentTitle') or 'Vårdplan'}{f' ({kind})' if kind else ''}", \
        first(f"{header}/c:documentTime")


def _functional_status(first, body, header):
    if first(f"{body}/c:assessmentCategory") == "fun-fun":
        what = first(f"{body}/c:disability/c:disabilityAssessment/c:displayName",
                     f"{body}/c:disability/c:disabilityAssessment/c:originalText")
        return f"Funktionsnedsättning: {what}", first(f"{header}/c:documentTime")
    return f"PADL: {_preview(first(f'{body}/c:comment') or 'bedömning av personlig ADL')}", \
        first(f"{header}/c:documentTime")


def _note(first, body, header):
    note = f"{body}/c:clinicalDocumentNote"
    title = first(f"{note}/c:clinicalDocumentNoteTitle") or "Anteckning"
    text = first(f"{note}/c:clinicalDocumentNoteText")
    return f"{title}: {_preview(text) if text else '(bilaga)'}", first(f"{header}/c:documentTime")


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW else text[:PREVIEW - 1] + "…"


_TEXT = {
    "GetDiagnosis": _diagnosis,
    "GetMedicationHistory": _medication,
    "GetCarePlans": _care_plan,
    "GetFunctionalStatus": _functional_status,
    "GetCareDocumentation": _note,
}
