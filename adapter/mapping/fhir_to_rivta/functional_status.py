"""FHIR Condition / Observation (functional status, ADL) -> GetFunctionalStatus 2.0
`functionalStatusAssessment` record.

Two input shapes (mappings/GetFunctionalStatus.md):
- Condition as EHDS-TK maps it: category from AssessmentCategoryCS; fun-fun carries the ICF code in
  Condition.code, pad-pad carries one "[activity]: assessment" line per PADL activity in Condition.note.
- Observation as municipal systems record ADL: a PADL assessment with one component per activity, or an
  ICF disability assessment with the ICF code in Observation.code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, cast

from adapter.mapping import codes, profile, rivta_xml, timefmt
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.record import Header, Map, Professional, Record, Signer
from adapter.rivta.contracts import GET_FUNCTIONAL_STATUS as GFS

PAD, FUN = "pad-pad", "fun-fun"
CATEGORIES = (PAD, FUN)
# The TKB names 1.2.752.116.1.1.3 for ICF; other ICF system identifiers are normalised to it in
# mappings/code-systems.csv.
ICF_OID = "1.2.752.116.1.1.3"
_ICF_CODE = re.compile(r"^[bdes][0-9]{1,5}$")

# TKB Regel 2: the five personal ADL activities, spelled as the TKB spells them.
HYGIENE, DRESSING, TRANSFER, TOILET, EATING = (
    "personlig hygien", "på/avklädning", "förflyttning", "toalettbesök", "födointag",
)
PADL_ACTIVITIES = (HYGIENE, DRESSING, TRANSFER, TOILET, EATING)
# Folded spellings (lower case, no åäö, no spaces, "-", "/" or "och") -> activity.
_ACTIVITY_KEYS = {
    "personlighygien": HYGIENE,
    "paavkladning": DRESSING,
    "avpakladning": DRESSING,
    "forflyttning": TRANSFER,
    "toalettbesok": TOILET,
    "fodointag": EATING,
}
# ICF activity codes accepted as PADL activity codes (ICF chapter d5 self-care, d420 transferring).
_ICF_ACTIVITIES = {"d510": HYGIENE, "d540": DRESSING, "d420": TRANSFER, "d530": TOILET, "d550": EATING}
# A note line "[Förflyttning]: text" or "Förflyttning: text".
_NOTE_ITEM = re.compile(r"^\s*(?P<open>\[)?\s*(?P<label>[^\[\]:\n]{1,60}?)\s*(?(open)\])\s*:\s*(?P<text>.*)$")

_CONDITION_ASSERTED = profile.CONDITION_ASSERTED_DATE
_FUNCTION = profile.PERFORMER_FUNCTION
_NOT_PADL = "not one of the five personal ADL activities (Regel 2)"


@dataclass
class _Assessment:
    category: str
    comment: str | None = None  # pad-pad: comment on the whole assessment; fun-fun: disability.comment
    padl: list[tuple[str, str]] = field(default_factory=list)  # (activity, assessment text)
    icf: tuple[str, str] | None = None  # (ICF code without qualifier, displayName)
    function_text: str | None = None  # the assessed function when there is no ICF code


# -- Condition -------------------------------------------------------------------------------------------
def is_functional_condition(cond: Any) -> bool:
    """A Condition with an AssessmentCategory category, or coded with ICF, is a functional assessment."""
    return bool(_categories(cond.category)) or _icf_coding(cond.code) is not None


def map_condition(cond: Any, ctx: Context) -> list[Record]:
    category = _category(cond.category, "category")
    if category is None:
        category = FUN  # only reached for an ICF-coded Condition without category
    if _has_code(cond.verificationStatus, "refuted"):
        raise MappingError("verificationStatus", "a refuted assessment is not published")
    author = ctx.professional(cond.recorder or cond.asserter, cond.recordedDate, cond, "recordedDate")
    document_time, signature_time = _condition_times(cond)
    signer = ctx.signer(cond.asserter or cond.recorder, signature_time)

    notes = [(f"note[{i}].text", n.text) for i, n in enumerate(cond.note or [])]
    if category == PAD:
        padl, comment = _padl_from_notes(notes)
        assessment = _padl_assessment(padl, comment, "note")
    else:
        assessment = _disability(cond.code, "code", _join(t for _, t in notes))
    return [_record(ctx, cond, cond.encounter, assessment, author, signer, document_time)]


def _condition_times(cond: Any) -> tuple[Any, Any]:
    """(documentTime, signatureTime): EHDS-TK's assertedDate is the assessment time, and also the
    signature time of a signed (asserter) Condition unless the signature-time extension says otherwise."""
    asserted = profile.extension(cond, _CONDITION_ASSERTED)
    asserted_time = asserted.valueDateTime if asserted is not None else None
    onset = cond.onsetDateTime or (cond.onsetPeriod.start if cond.onsetPeriod else None)
    signature = profile.extension(cond, profile.SIGNATURE_TIME)
    signature_time = signature.valueDateTime if signature is not None else None
    if signature_time is None and cond.asserter is not None:
        signature_time = asserted_time
    return asserted_time or onset or cond.recordedDate, signature_time


# -- Observation -----------------------------------------------------------------------------------------
def map_observation(obs: Any, ctx: Context) -> list[Record]:
    """Records for an ADL/ICF assessment Observation; [] for any other Observation."""
    category = _category(obs.category, "category")
    if category is None:
        if _icf_coding(obs.code) is None:
            return []
        category = FUN
    if obs.status == "cancelled":
        raise MappingError("status", "a cancelled assessment is not published")
    author_ref, signer_ref = _performers(obs.performer)
    effective = obs.effectiveDateTime or obs.effectiveInstant or (
        obs.effectivePeriod.start if obs.effectivePeriod else None
    )
    document_time = effective or obs.issued
    if document_time is None:
        raise MappingError("effective[x]", "missing assessment time (effective[x] or issued)")
    author = ctx.professional(author_ref, obs.issued or document_time, obs, "issued")
    signature = profile.extension(obs, profile.SIGNATURE_TIME)
    signer = ctx.signer(signer_ref or author_ref, signature.valueDateTime if signature is not None else None)

    comment = _join([_value_text(obs), *(n.text for n in obs.note or [])])
    if category == PAD:
        assessment = _padl_assessment(_padl_from_components(obs.component), comment, "component")
    else:
        if obs.component:
            raise MappingError("component", "components (PADL activities) are only allowed with pad-pad")
        assessment = _disability(obs.code, "code", comment)
    return [_record(ctx, obs, obs.encounter, assessment, author, signer, document_time)]


def _performers(performers: Any) -> tuple[Any, Any]:
    """(author, legal authenticator): the first performer not marked LA, the first marked LA."""
    author = signer = None
    for ref in performers or []:
        functions = [e.valueCodeableConcept for e in ref.extension or [] if e.url == _FUNCTION]
        is_la = any(_has_code(f, "LA", profile.PARTICIPATION_TYPE) for f in functions)
        if is_la:
            signer = signer or ref
        else:
            author = author or ref
    return author or signer, signer


def _padl_from_components(components: Any) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for i, comp in enumerate(components or []):
        activity = _activity(comp.code)
        if activity is None:
            raise MappingError(f"component[{i}].code", _NOT_PADL)
        text = _value_text(comp)
        if not text:
            raise MappingError(f"component[{i}].value[x]", "missing assessment text")
        items.append((activity, text))
    _check_unique(items, "component")
    return items


# -- body parts ------------------------------------------------------------------------------------------
def _padl_from_notes(notes: list[tuple[str, str | None]]) -> tuple[list[tuple[str, str]], str | None]:
    """PADL items from note lines "[activity]: assessment"; every other line goes to the comment.

    A line without an activity label continues the item started earlier in the same note.
    """
    items: list[tuple[str, list[str], str]] = []  # activity, text lines, field
    comment: list[str] = []
    for fld, text in notes:
        current: list[str] | None = None
        for line in (text or "").splitlines():
            labelled = _note_item(line, fld)
            if labelled is not None:
                current = [labelled[1]]
                items.append((labelled[0], current, fld))
            elif current is not None:
                current.append(line)
            else:
                comment.append(line)
    padl = []
    for activity, lines, fld in items:
        joined = "\n".join(lines).strip()
        if not joined:
            raise MappingError(fld, "PADL activity without assessment text")
        padl.append((activity, joined))
    _check_unique(padl, "note")
    return padl, _join(["\n".join(comment)])


def _note_item(line: str, fld: str) -> tuple[str, str] | None:
    """(activity, text) for a line labelled with a PADL activity, else None."""
    m = _NOTE_ITEM.match(line)
    if m is None:
        return None
    activity = _ACTIVITY_KEYS.get(_fold(m["label"]))
    if activity is None:
        if m["open"]:
            raise MappingError(fld, f"bracketed label is {_NOT_PADL}")
        return None
    return activity, m["text"]


def _padl_assessment(padl: list[tuple[str, str]], comment: str | None, fld: str) -> _Assessment:
    if not padl and not comment:
        raise MappingError(fld, "a pad-pad assessment needs at least one PADL activity or a comment")
    return _Assessment(PAD, comment=comment, padl=padl)


def _check_unique(items: list[tuple[str, str]], fld: str) -> None:
    seen: set[str] = set()
    for activity, _ in items:
        if activity in seen:
            raise MappingError(fld, "a PADL activity is given more than once (Regel 2)")
        seen.add(activity)


def _disability(code: Any, fld: str, comment: str | None) -> _Assessment:
    icf = _icf_coding(code)
    if icf is not None:
        value = _icf_code(icf.code, f"{fld}.coding")
        display = icf.display or (code.text if code.text else None) or value
        return _Assessment(FUN, comment=comment, icf=(value, display))
    text = _concept_text(code)
    if not text:
        raise MappingError(fld, "no ICF code and no text naming the assessed function")
    return _Assessment(FUN, comment=comment, function_text=text)


def _icf_code(code: str | None, fld: str) -> str:
    # The contract carries no ICF qualifier: "b3101.2" is sent as "b3101" (TKB disabilityAssessment).
    value = (code or "").strip().split(".", 1)[0]
    value = value[:1].lower() + value[1:]
    if not _ICF_CODE.match(value):
        raise MappingError(fld, "not a valid ICF code")
    return value


# -- the record ------------------------------------------------------------------------------------------
def _record(
    ctx: Context,
    resource: Any,
    encounter: Any,
    a: _Assessment,
    author: Professional,
    signer: Signer | None,
    document_time: Any,
) -> Record:
    # GetFunctionalStatus forbids documentTitle (0..0); documentTime is the assessment time (1..1).
    header = Header(
        document_id=ctx.document_id(resource),
        source_system=ctx.source_system(resource),
        patient=ctx.patient(resource.subject),
        author=author,
        approved_for_patient=ctx.approved_for_patient(resource),
        document_time=timefmt.timestamp(document_time),
        signer=signer,
        care_contact=ctx.care_contact(encounter),
    )
    root, b = rivta_xml.record_root(GFS)
    rivta_xml.header(b, root, GFS, header)
    body = b.node(root, GFS.body_element)
    b.text(body, "assessmentCategory", a.category)
    if a.category == PAD:
        b.text(body, "comment", a.comment)
        for activity, text in a.padl:
            padl = b.node(body, "padl")
            # No national code system for the activities: the Regel 2 term is sent as originalText.
            b.cv(padl, "typeOfAssessment", original_text=activity)
            b.text(padl, "assessment", text)
    else:
        disability = b.node(body, "disability")
        if a.icf is not None:
            b.cv(disability, "disabilityAssessment", a.icf[0], ICF_OID, a.icf[1], field="code.coding")
        else:
            b.cv(disability, "disabilityAssessment", original_text=a.function_text)
        b.text(disability, "comment", a.comment)
    return Record(
        contract=GFS.key,
        header=header,
        fragment=rivta_xml.serialise(root),
        times={"documentTime": header.document_time},
        category=a.category,
    )


# -- helpers ---------------------------------------------------------------------------------------------
def _categories(concepts: Any) -> set[str]:
    return {
        c.code or ""
        for concept in concepts or []
        for c in concept.coding or []
        if c.system == profile.ASSESSMENT_CATEGORY
    }


def _category(concepts: Any, fld: str) -> str | None:
    found = _categories(concepts)
    if not found:
        return None
    if not found <= set(CATEGORIES):
        raise MappingError(fld, "unknown assessment category (expected pad-pad or fun-fun)")
    if len(found) > 1:
        raise MappingError(fld, "both pad-pad and fun-fun given; one assessment has one category")
    return found.pop()


def _icf_coding(concept: Any) -> Any | None:
    for coding in (concept.coding or []) if concept is not None else []:
        if coding.code and codes.oid_for(coding.system) == ICF_OID:
            return coding
    return None


def _activity(concept: Any) -> str | None:
    if concept is None:
        return None
    for coding in concept.coding or []:
        if coding.system == profile.PADL_ACTIVITY and coding.code:
            found = _ACTIVITY_KEYS.get(_fold(coding.code))
            if found:
                return found
        if coding.code and codes.oid_for(coding.system) == ICF_OID:
            found = _ICF_ACTIVITIES.get(coding.code.strip().split(".", 1)[0].lower())
            if found:
                return found
    for text in [concept.text, *(c.display for c in concept.coding or [])]:
        found = _ACTIVITY_KEYS.get(_fold(text or ""))
        if found:
            return found
    return None


def _fold(text: str) -> str:
    text = re.sub(r"\boch\b", "", text.lower())
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text if ch.isalnum() and not unicodedata.combining(ch))


def _concept_text(concept: Any) -> str | None:
    if concept is None:
        return None
    if concept.text and concept.text.strip():
        return cast("str | None", concept.text)
    return next((c.display for c in concept.coding or [] if c.display and c.display.strip()), None)


def _value_text(element: Any) -> str | None:
    if element.valueString and element.valueString.strip():
        return cast("str | None", element.valueString)
    return _concept_text(element.valueCodeableConcept)


def _has_code(concept: Any, code: str, system: str | None = None) -> bool:
    if concept is None:
        return False
    return any(c.code == code and (system is None or c.system == system) for c in concept.coding or [])


def _join(parts: Any) -> str | None:
    kept = [p.strip() for p in parts if p and p.strip()]
    return "\n".join(kept) if kept else None


MAPS = (Map("Condition", map_condition, claims=is_functional_condition), Map("Observation", map_observation))
