"""GetFunctionalStatus 2.0 `functionalStatusAssessment` record -> Condition (EHDS-TK
IneraEHDSConditionFunctional).

pad-pad: the PADL items become `Condition.note`, one "[activity]: assessment" per item after the
comment (EHDS-TK FUNC-001); fun-fun: the ICF code is `Condition.code`, the comment a note.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapter.mapping import profile
from adapter.mapping.rivta_to_fhir.common import (
    EHDS_TK,
    EU_EPS,
    Json,
    Node,
    Output,
    concept,
    extension,
    read_header,
)
from adapter.rivta.contracts import GET_FUNCTIONAL_STATUS as CONTRACT
from adapter.rivta.contracts import Contract

PROFILES = [EHDS_TK + "inera-ehds-condition-functional", EU_EPS + "condition-obl-eu-eps"]
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
PAD, FUN = "pad-pad", "fun-fun"
CATEGORY_DISPLAY = {PAD: "PADL-bedömning", FUN: "Funktionsnedsättningsbedömning"}


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    body = record.required(CONTRACT.body_element)
    out = Output(CONTRACT, header)
    category = body.required_text("assessmentCategory")

    code: Json | None
    notes: list[str | None]
    if category == PAD:
        # A PADL assessment has no code of its own; the IPS Condition needs one, so it names the kind.
        code = {"text": CATEGORY_DISPLAY[PAD]}
        notes = [body.text("comment")] + [_padl_line(item) for item in body.children("padl")]
    else:
        disability = body.child("disability")
        code = concept(disability.child("disabilityAssessment") if disability is not None else None)
        notes = [disability.text("comment") if disability is not None else None]

    condition = {
        "resourceType": "Condition",
        "id": out.id,
        "meta": out.meta(PROFILES),
        "extension": _times(out),
        "identifier": [out.identifier()],
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
        "category": [{"coding": [{"system": profile.ASSESSMENT_CATEGORY, "code": category,
                                  "display": CATEGORY_DISPLAY.get(category)}]}],
        "code": code,
        "subject": out.subject(),
        "encounter": out.encounter(),
        "recordedDate": header.author.time,
        "recorder": out.role_ref(header.author),
        "asserter": out.role_ref(header.signer),
        "note": [{"text": n} for n in notes if n and n.strip()],
    }
    return out.finish(condition)


def _times(out: Output) -> list[Json | None]:
    """documentTime is EHDS-TK's assertedDate. A signature at another moment keeps its own time in the
    signature-time extension (the input profile's rule), so neither time is lost."""
    header = out.header
    found: list[Json | None] = []
    if header.document_time:
        found.append(extension(profile.CONDITION_ASSERTED_DATE, valueDateTime=header.document_time))
    signer = header.signer
    if signer is not None and signer.time and (signer.time != header.document_time or not signer.identified):
        found.append(extension(profile.SIGNATURE_TIME, valueDateTime=signer.time))
    return found


def _padl_line(item: Node) -> str:
    kind = item.child("typeOfAssessment")
    label = None
    if kind is not None:
        label = kind.text("originalText") or kind.text("displayName") or kind.text("code")
    assessment = item.text("assessment") or ""
    return f"[{label.strip()}]: {assessment}" if label else assessment


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    if first(f"{body}/c:assessmentCategory") == "fun-fun":
        what = first(f"{body}/c:disability/c:disabilityAssessment/c:displayName",
                     f"{body}/c:disability/c:disabilityAssessment/c:originalText")
        return f"Funktionsnedsättning: {what}", first(f"{header}/c:documentTime")
    return f"PADL: {first(f'{body}/c:comment') or 'bedömning av personlig ADL'}", \
        first(f"{header}/c:documentTime")


# -- the contract's own rules (TKB, schematron) that its schema cannot say --------------------------------------
def rules(rec: etree._Element, contract: Contract) -> list[str]:
    ns = contract.core_ns
    body = rec.find(f"{{{ns}}}{contract.body_element}")
    if body is None:
        return []
    category = body.findtext(f"{{{ns}}}assessmentCategory")
    out = []
    padl = body.findall(f"{{{ns}}}padl")
    if category == "fun-fun" and (padl or body.find(f"{{{ns}}}comment") is not None):
        out.append("comment and padl are only allowed with pad-pad")
    if category == "pad-pad" and body.find(f"{{{ns}}}disability") is not None:
        out.append("disability is only allowed with fun-fun")
    kinds = [p.findtext(f"{{{ns}}}typeOfAssessment/{{{ns}}}code") or
             p.findtext(f"{{{ns}}}typeOfAssessment/{{{ns}}}originalText") for p in padl]
    if len(padl) > 5 or len(set(kinds)) != len(kinds):
        out.append("padl holds at most one assessment of each of the five activities")
    return out
