"""GetDiagnosis 2.0 `diagnosis` record -> Condition (EHDS-TK IneraEHDSConditionDiagnosis)."""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapter.mapping import profile
from adapter.mapping.rivta_to_fhir.common import EHDS_TK, EU_EPS, Json, Node, Output, concept, extension, read_header
from adapter.rivta.contracts import GET_DIAGNOSIS as CONTRACT

PROFILES = [EHDS_TK + "inera-ehds-condition-diagnosis", EU_EPS + "condition-obl-eu-eps"]
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
# typeOfDiagnosis -> kv_diagnostyp code (the EHDS-TK mapping page); the EHDS-TK DiagnosisType code system
# uses the RIVTA value itself. Both codings are written, and the input profile reads either.
KV_DIAGNOSTYP = {"Huvuddiagnos": "HD", "Bidiagnos": "BY"}


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    body = record.required(CONTRACT.body_element)
    out = Output(CONTRACT, header)

    extensions = []
    if header.signer is not None and header.signer.time:
        extensions.append(extension(profile.CONDITION_ASSERTED_DATE, valueDateTime=header.signer.time))
    chronic = body.boolean("chronicDiagnosis")
    if chronic is not None:
        extensions.append(extension(profile.CHRONIC_DIAGNOSIS, valueBoolean=chronic))
    for related in body.children("relatedDiagnosis"):
        extensions.append(extension(profile.RELATED_DIAGNOSIS, valueReference={
            "type": "Condition", "identifier": {"value": related.required_text("documentId")}}))

    condition = {
        "resourceType": "Condition",
        "id": out.id,
        "meta": out.meta(PROFILES),
        "extension": extensions,
        "identifier": [out.identifier()],
        # GetDiagnosis has no status: EHDS-TK derives active / confirmed for every record.
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
        "category": [_type_of_diagnosis(body.text("typeOfDiagnosis"))],
        "code": concept(body.child("diagnosisCode"), text_fallback=True),
        "subject": out.subject(),
        "encounter": out.encounter(),
        "onsetDateTime": body.time("diagnosisTime"),
        "recordedDate": header.author.time,
        "recorder": out.role_ref(header.author),
        "asserter": out.role_ref(header.signer),
    }
    return out.finish(condition)


def _type_of_diagnosis(value: str | None) -> Json:
    value = (value or "").strip()
    if value not in KV_DIAGNOSTYP:
        return {"text": value or None}
    return {"coding": [
        {"system": profile.KV_DIAGNOSTYP, "code": KV_DIAGNOSTYP[value], "display": value},
        {"system": profile.DIAGNOSIS_TYPE, "code": value, "display": value},
    ]}


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    name = first(f"{body}/c:diagnosisCode/c:displayName", f"{body}/c:diagnosisCode/c:originalText")
    code = first(f"{body}/c:diagnosisCode/c:code")
    kind = first(f"{body}/c:typeOfDiagnosis")
    chronic = " (kronisk)" if first(f"{body}/c:chronicDiagnosis") == "true" else ""
    return f"{name}{f' [{code}]' if code else ''} - {kind}{chronic}", first(f"{body}/c:diagnosisTime")
