"""The content rules the national certification schematron checks on every answer, as plain code.

Used by the tests and by the contract suite: `check_answer` returns the broken rules (empty when
the answer keeps them all). Messages name elements and record positions, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from lxml import etree

from adapter.rivta.contracts import SOAP_NS, Contract

OID = re.compile(r"^[0-2](\.[0-9]+)+$")
TIMESTAMP = re.compile(r"^(19|20)\d{12}$")
NOT_TIMESTAMPS = {"isMaximumTreatmentTime"}  # a boolean whose name ends in "Time"
CV_PARTS = {"code", "codeSystem", "codeSystemName", "codeSystemVersion", "displayName", "originalText"}
PADL_ACTIVITIES = 5


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def records(answer: etree._Element, contract: Contract) -> list[etree._Element]:
    body = answer.find(f"{{{SOAP_NS}}}Body") if _local(answer) == "Envelope" else None
    resp = body[0] if body is not None and len(body) else answer
    return resp.findall(f"{{{contract.responder_ns}}}{contract.record_element}")


def check_answer(answer: etree._Element, contract: Contract) -> list[str]:
    problems: list[str] = []
    recs = records(answer, contract)
    for i, rec in enumerate(recs):
        where = f"{contract.record_element}[{i}]"
        problems.extend(f"{where}: {p}" for p in check_record(rec, contract))
    ids = Counter(_document_id(r, contract) for r in recs)
    problems.extend(f"documentId used by {n} records" for doc, n in ids.items() if n > 1 and doc)
    return problems


def check_record(rec: etree._Element, contract: Contract) -> list[str]:
    problems: list[str] = []
    for el in rec.iter():
        if not isinstance(el.tag, str):
            continue
        name = _local(el)
        if len(el) == 0 and not (el.text or "").strip():
            problems.append(f"empty element {name}")
        if name in contract.forbidden:
            problems.append(f"forbidden element {name}")
        if len(el) and {_local(c) for c in el} <= CV_PARTS and name not in ("result",):
            problems.extend(_cv(el))
        is_timestamp = name.endswith("Time") and name not in NOT_TIMESTAMPS and len(el) == 0
        if is_timestamp and not TIMESTAMP.match((el.text or "").strip()):
            problems.append(f"{name} is not YYYYMMDDhhmmss")
    problems.extend(_sjf_fields(rec, contract))
    extra = CONTRACT_RULES.get(contract.name)
    if extra:
        problems.extend(extra(rec, contract))
    return problems


def _cv(el: etree._Element) -> list[str]:
    parts = {_local(c): (c.text or "").strip() for c in el}
    name = _local(el)
    out = []
    if "originalText" in parts and len(parts) > 1:
        out.append(f"{name}: originalText must stand alone")
    if "code" in parts and not ("codeSystem" in parts and "displayName" in parts):
        out.append(f"{name}: code needs codeSystem and displayName")
    if "codeSystem" in parts:
        if not ("code" in parts and "displayName" in parts):
            out.append(f"{name}: codeSystem needs code and displayName")
        if not OID.match(parts["codeSystem"]):
            out.append(f"{name}: codeSystem is not an OID")
    return out


def _header(rec: etree._Element, contract: Contract) -> etree._Element | None:
    return rec.find(f"{{{contract.core_ns}}}{contract.header_element}")


def _document_id(rec: etree._Element, contract: Contract) -> str | None:
    h = _header(rec, contract)
    return h.findtext(f"{{{contract.core_ns}}}documentId") if h is not None else None


def _sjf_fields(rec: etree._Element, contract: Contract) -> list[str]:
    """Regel 1: care unit, care giver and author time are needed for blocks, access control and logging."""
    h = _header(rec, contract)
    if h is None:
        return [f"{contract.header_element} missing"]
    ns = contract.core_ns
    prof = h.find(f"{{{ns}}}accountableHealthcareProfessional")
    if prof is None:
        return ["accountableHealthcareProfessional missing"]
    return [
        f"{field} missing"
        for field in ("authorTime", "healthcareProfessionalCareUnitHSAId", "healthcareProfessionalCareGiverHSAId")
        if not (prof.findtext(f"{{{ns}}}{field}") or "").strip()
    ]


def _functional_status(rec: etree._Element, contract: Contract) -> list[str]:
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
    if len(padl) > PADL_ACTIVITIES or len(set(kinds)) != len(kinds):
        out.append("padl holds at most one assessment of each of the five activities")
    return out


def _care_documentation(rec: etree._Element, contract: Contract) -> list[str]:
    ns = contract.core_ns
    note = rec.find(f"{{{ns}}}{contract.body_element}/{{{ns}}}clinicalDocumentNote")
    if note is None:
        return []
    has_text = note.find(f"{{{ns}}}clinicalDocumentNoteText") is not None
    media = note.find(f"{{{ns}}}multimediaEntry")
    out = []
    if has_text == (media is not None):
        out.append("clinicalDocumentNote needs exactly one of clinicalDocumentNoteText and multimediaEntry")
    if media is not None and (media.find(f"{{{ns}}}value") is None) == (media.find(f"{{{ns}}}reference") is None):
        out.append("multimediaEntry needs exactly one of value and reference")
    return out


def _care_plans(rec: etree._Element, contract: Contract) -> list[str]:
    ns = contract.core_ns
    out = []
    for i, content in enumerate(rec.findall(f"{{{ns}}}{contract.body_element}/{{{ns}}}content")):
        if content.find(f"{{{ns}}}id") is not None:
            out.append(f"content[{i}]: id must not be given")
        if (content.find(f"{{{ns}}}value") is None) == (content.find(f"{{{ns}}}reference") is None):
            out.append(f"content[{i}]: exactly one of value and reference")
    h = _header(rec, contract)
    org_unit = f"{{{ns}}}accountableHealthcareProfessional/{{{ns}}}healthcareProfessionalOrgUnit"
    if h is not None and h.find(org_unit) is None:
        out.append("healthcareProfessionalOrgUnit missing (Regel 4)")
    return out


CONTRACT_RULES: dict[str, Callable[[etree._Element, Contract], list[str]]] = {
    "GetFunctionalStatus": _functional_status,
    "GetCareDocumentation": _care_documentation,
    "GetCarePlans": _care_plans,
}
