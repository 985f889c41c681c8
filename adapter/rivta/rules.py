"""The content rules the national certification schematron checks on every answer, as plain code.

Used by the tests and by the contract suite: `check_answer` returns the broken rules (empty when
the answer keeps them all). Messages name elements and record positions, never values.
`find_problems` returns the same findings tagged with the rule they break, so the contract suite can
report each rule under the test case that owns it (e.g. Regel 1 under TF 3.1).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from adapter.rivta.contracts import SOAP_NS, Contract

OID = re.compile(r"^[0-2](\.[0-9]+)+$")
TIMESTAMP = re.compile(r"^(19|20)\d{12}$")
NOT_TIMESTAMPS = {"isMaximumTreatmentTime"}  # a boolean whose name ends in "Time"
CV_PARTS = {"code", "codeSystem", "codeSystemName", "codeSystemVersion", "displayName", "originalText"}
PADL_ACTIVITIES = 5
MAX_EMBEDDED_BYTES = 100 * 1024  # GetCareDocumentation Regel 2, GetCarePlans R1
CARE_PLAN_MEDIA_TYPES = {"text/plain", "text/html", "image/png", "image/jpeg", "image/tiff", "application/pdf"}


class Rule(StrEnum):
    EMPTY = "empty-element"
    FORBIDDEN = "forbidden-element"
    CV = "cv"
    TIMESTAMP = "timestamp-format"
    UNIQUE_DOCUMENT_ID = "unique-document-id"
    STRUCTURE = "structure"
    CARE_UNIT_AND_GIVER = "care-unit-and-care-giver"  # Regel 1 (sammanhållen journalföring)
    AUTHOR_TIME = "author-time"
    CONTRACT = "contract"  # the contract's own rules (CONTRACT_RULES)


@dataclass(frozen=True)
class Problem:
    rule: Rule
    message: str
    where: str = ""  # e.g. "diagnosis[2]"; empty for answer-level problems

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def records(answer: etree._Element, contract: Contract) -> list[etree._Element]:
    body = answer.find(f"{{{SOAP_NS}}}Body") if _local(answer) == "Envelope" else None
    resp = body[0] if body is not None and len(body) else answer
    return resp.findall(f"{{{contract.responder_ns}}}{contract.record_element}")


def check_answer(answer: etree._Element, contract: Contract) -> list[str]:
    return [str(p) for p in find_problems(answer, contract)]


def find_problems(answer: etree._Element, contract: Contract) -> list[Problem]:
    problems: list[Problem] = []
    recs = records(answer, contract)
    for i, rec in enumerate(recs):
        where = f"{contract.record_element}[{i}]"
        problems.extend(Problem(p.rule, p.message, where) for p in record_problems(rec, contract))
    ids = Counter(_document_id(r, contract) for r in recs)
    problems.extend(Problem(Rule.UNIQUE_DOCUMENT_ID, f"documentId used by {n} records")
                    for doc, n in ids.items() if n > 1 and doc)
    return problems


def record_problems(rec: etree._Element, contract: Contract) -> list[Problem]:
    problems: list[Problem] = []
    for el in rec.iter():
        if not isinstance(el.tag, str):
            continue
        name = _local(el)
        if len(el) == 0 and not (el.text or "").strip():
            problems.append(Problem(Rule.EMPTY, f"empty element {name}"))
        if name in contract.forbidden:
            problems.append(Problem(Rule.FORBIDDEN, f"forbidden element {name}"))
        if len(el) and {_local(c) for c in el} <= CV_PARTS and name not in ("result",):
            problems.extend(Problem(Rule.CV, m) for m in _cv(el))
        is_timestamp = (name.endswith("Time") or name == "timestamp") and name not in NOT_TIMESTAMPS and len(el) == 0
        if is_timestamp and not TIMESTAMP.match((el.text or "").strip()):
            problems.append(Problem(Rule.TIMESTAMP, f"{name} is not YYYYMMDDhhmmss"))
    problems.extend(_sjf_fields(rec, contract))
    extra = CONTRACT_RULES.get(contract.name)
    if extra:
        problems.extend(Problem(Rule.CONTRACT, m) for m in extra(rec, contract))
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


def first_text(rec: etree._Element, contract: Contract, paths: tuple[str, ...]) -> str | None:
    """The first non-empty value at one of `paths` (a `RecordPaths` entry of the contract's description)."""
    for path in paths:
        for found in rec.xpath(path, namespaces={"c": contract.core_ns}):
            text = found.text if isinstance(found, etree._Element) else str(found)
            if text and text.strip():
                return text.strip()
    return None


def _document_id(rec: etree._Element, contract: Contract) -> str | None:
    return first_text(rec, contract, contract.paths.document_id)


def _sjf_fields(rec: etree._Element, contract: Contract) -> list[Problem]:
    """Regel 1 (JoL: Spärrhantering): care unit, care giver and author time are needed for blocks, access
    control and logging; where they live is the contract's header model (`Contract.paths`)."""
    if _header(rec, contract) is None:
        return [Problem(Rule.STRUCTURE, f"{contract.header_element} missing")]
    paths = contract.paths
    fields = ((paths.author_time, Rule.AUTHOR_TIME), (paths.care_unit, Rule.CARE_UNIT_AND_GIVER),
              (paths.care_giver, Rule.CARE_UNIT_AND_GIVER))
    problems = []
    for where, rule in fields:
        if first_text(rec, contract, where) is None:
            parts = [p for p in where[0].replace("c:", "").split("/") if p not in ("extension", "root")]
            problems.append(Problem(rule, f"{parts[-1]} missing"))
    return problems


def _embedded_too_large(media: etree._Element, ns: str) -> bool:
    value = (media.findtext(f"{{{ns}}}value") or "").strip()
    if len(value) <= MAX_EMBEDDED_BYTES * 4 // 3:
        return False
    try:
        return len(base64.b64decode(value, validate=False)) > MAX_EMBEDDED_BYTES
    except (binascii.Error, ValueError):
        return False  # not base64: the schema check reports it


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
    if media is not None and _embedded_too_large(media, ns):
        out.append("multimediaEntry value larger than 100 KB (Regel 2)")
    return out


def _care_plans(rec: etree._Element, contract: Contract) -> list[str]:
    ns = contract.core_ns
    out = []
    for i, content in enumerate(rec.findall(f"{{{ns}}}{contract.body_element}/{{{ns}}}content")):
        if content.find(f"{{{ns}}}id") is not None:
            out.append(f"content[{i}]: id must not be given")
        if (content.find(f"{{{ns}}}value") is None) == (content.find(f"{{{ns}}}reference") is None):
            out.append(f"content[{i}]: exactly one of value and reference")
        media_type = (content.findtext(f"{{{ns}}}mediaType") or "").strip()
        if media_type and media_type not in CARE_PLAN_MEDIA_TYPES:
            out.append(f"content[{i}]: mediaType not one of the six the TKB allows")
        if _embedded_too_large(content, ns):
            out.append(f"content[{i}]: value larger than 100 KB (R1)")
    h = _header(rec, contract)
    org_unit = f"{{{ns}}}accountableHealthcareProfessional/{{{ns}}}healthcareProfessionalOrgUnit"
    if h is not None and h.find(org_unit) is None:
        out.append("healthcareProfessionalOrgUnit missing (Regel 4)")
    if h is not None and not (h.findtext(f"{{{ns}}}documentTitle") or "").strip():
        out.append("documentTitle missing (TKB 1..1)")
    return out


_GMH_BODY_ACTORS = ("prescriber", "evaluator", "dispensationAuthorizer", "administeringHealthcareProfessional")
_GMH_DRUG_CHOICES = ("unstructuredDrugInformation", "merchandise", "drugArticle", "drug", "generics")
_GMH_STRICT_CV = ("nplId", "atcCode", "nplPackId", "articleNumber", "reason")


def _medication_history(rec: etree._Element, contract: Contract) -> list[str]:
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
        if parent is not None and _local(parent) == "drug":
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
        if grandparent is not None and _local(grandparent) == "administration":
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
            if {_local(c) for c in cv} != {"code", "codeSystem", "displayName"}:
                out.append(f"{name} must hold exactly code, codeSystem and displayName (1.6)")
    for interval in rec.xpath(".//c:dose | .//c:treatmentInterval", namespaces=ns):
        if interval.find("c:low", ns) is None and interval.find("c:high", ns) is None:
            out.append(f"{_local(interval)} without low and high (2.2)")
    for da in rec.iterfind(".//c:dispensationAuthorization", ns):
        if (da.find("c:totalAmount", ns) is None) != (da.find("c:packageUnit", ns) is None):
            out.append("dispensationAuthorization: totalAmount and packageUnit go together (1.8)")
    return out


CONTRACT_RULES: dict[str, Callable[[etree._Element, Contract], list[str]]] = {
    "GetFunctionalStatus": _functional_status,
    "GetCareDocumentation": _care_documentation,
    "GetCarePlans": _care_plans,
    "GetMedicationHistory": _medication_history,
}
