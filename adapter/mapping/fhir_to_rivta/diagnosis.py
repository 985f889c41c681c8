"""FHIR Condition (diagnosis) -> GetDiagnosis 2.0 `diagnosis` record."""

from __future__ import annotations

from typing import Any, cast

from adapter.mapping import codes, profile, rivta_xml, timefmt
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, Record
from adapter.rivta.contracts import GET_DIAGNOSIS

MAIN, SECONDARY = "Huvuddiagnos", "Bidiagnos"
_TYPE_CODES = {"Huvuddiagnos": MAIN, "HD": MAIN, "Bidiagnos": SECONDARY, "BY": SECONDARY, "BI": SECONDARY}


def map_condition(cond: Any, ctx: Context) -> list[Record]:
    author = ctx.professional(cond.recorder or cond.asserter, cond.recordedDate, cond, "recordedDate")
    asserted = profile.extension(cond, profile.CONDITION_ASSERTED_DATE)
    signer = ctx.signer(cond.asserter, asserted.valueDateTime if asserted else None)
    # GetDiagnosis forbids documentTitle and documentTime (schematron), so they stay empty.
    header = Header(
        document_id=ctx.document_id(cond),
        source_system=ctx.source_system(cond),
        patient=ctx.patient(cond.subject),
        author=author,
        approved_for_patient=ctx.approved_for_patient(cond),
        signer=signer,
        care_contact=ctx.care_contact(cond.encounter),
    )
    diagnosis_time = cond.onsetDateTime or (cond.onsetPeriod.start if cond.onsetPeriod else None)

    root, b = rivta_xml.record_root(GET_DIAGNOSIS)
    rivta_xml.header(b, root, GET_DIAGNOSIS, header)
    body = b.node(root, "diagnosisBody")
    b.text(body, "typeOfDiagnosis", _type_of_diagnosis(cond))
    chronic = profile.extension(cond, profile.CHRONIC_DIAGNOSIS)
    if chronic is not None and chronic.valueBoolean is not None:
        b.text(body, "chronicDiagnosis", chronic.valueBoolean)
    b.text(body, "diagnosisTime", timefmt.timestamp(diagnosis_time))
    _diagnosis_code(b, body, cond.code)
    for ext in profile.extensions(cond, profile.RELATED_DIAGNOSIS):
        related = _related_document_id(ext, ctx)
        if related:
            b.text(b.node(body, "relatedDiagnosis"), "documentId", related)

    return [
        Record(
            contract=GET_DIAGNOSIS.key,
            header=header,
            fragment=rivta_xml.serialise(root),
            times={
                "authorTime": author.time,
                "signatureTime": signer.time if signer else None,
                "diagnosisTime": timefmt.timestamp(diagnosis_time),
            },
            category=GET_DIAGNOSIS.ei_categorizations[0],
        )
    ]


def _type_of_diagnosis(cond: Any) -> str:
    for concept in cond.category or []:
        for coding in concept.coding or []:
            if coding.system in (profile.DIAGNOSIS_TYPE, profile.KV_DIAGNOSTYP) and coding.code:
                if coding.code not in _TYPE_CODES:
                    raise MappingError("category", "unknown diagnosis type code")
                return _TYPE_CODES[coding.code]
    return MAIN  # input profile: a diagnosis without a type is the main diagnosis


def _diagnosis_code(b: rivta_xml.Builder, body: Any, code: Any) -> None:
    if code is None:
        return
    for coding in code.coding or []:
        oid = codes.oid_for(coding.system)
        if oid and coding.code and coding.display:
            b.cv(body, "diagnosisCode", coding.code, oid, coding.display, field="code.coding")
            return
    # A code we cannot send as a full CV (unknown system, no display) survives as originalText.
    text = code.text or next((c.display or c.code for c in code.coding or [] if c.display or c.code), None)
    if text:
        b.cv(body, "diagnosisCode", original_text=text)


def _related_document_id(ext: Any, ctx: Context) -> str | None:
    if ext.valueIdentifier is not None:
        return cast("str | None", ext.valueIdentifier.value)
    if ext.valueReference is not None:
        if ext.valueReference.identifier is not None:
            return cast("str | None", ext.valueReference.identifier.value)
        target = ctx.resolve(ext.valueReference)
        if target is not None:
            return ctx.document_id(target)
        ref = ext.valueReference.reference or ""
        return ref.rsplit("/", 1)[-1] or None
    return None


MAPS = (Map("Condition", map_condition),)
