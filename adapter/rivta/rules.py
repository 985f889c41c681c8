"""The content rules the national certification schematron checks on every answer, as plain code.

Used by the tests and by the contract suite: `check_answer` returns the broken rules (empty when
the answer keeps them all). Messages name elements and record positions, never values.
`find_problems` returns the same findings tagged with the rule they break, so the contract suite can
report each rule under the test case that owns it (e.g. Regel 1 under TF 3.1).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from lxml import etree

from adapter.rivta.contracts import SOAP_NS, Contract

OID = re.compile(r"^[0-2](\.[0-9]+)+$")
TIMESTAMP = re.compile(r"^(19|20)\d{12}$")
NOT_TIMESTAMPS = {"isMaximumTreatmentTime"}  # a boolean whose name ends in "Time"
CV_PARTS = {"code", "codeSystem", "codeSystemName", "codeSystemVersion", "displayName", "originalText"}
MAX_EMBEDDED_BYTES = 100 * 1024  # GetCareDocumentation Regel 2, GetCarePlans R1


class Rule(StrEnum):
    EMPTY = "empty-element"
    FORBIDDEN = "forbidden-element"
    CV = "cv"
    TIMESTAMP = "timestamp-format"
    UNIQUE_DOCUMENT_ID = "unique-document-id"
    STRUCTURE = "structure"
    CARE_UNIT_AND_GIVER = "care-unit-and-care-giver"  # Regel 1 (sammanhållen journalföring)
    AUTHOR_TIME = "author-time"
    CONTRACT = "contract"  # the contract's own rules (`rules` in its rivta_to_fhir module)


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
    own = getattr(contract.code("mapping.rivta_to_fhir"), "rules", None)  # the contract's own rules, if any
    if own is not None:
        problems.extend(Problem(Rule.CONTRACT, m) for m in own(rec, contract))
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
        for found in _compiled(path, contract.core_ns)(rec):
            text = found.text if isinstance(found, etree._Element) else str(found)
            if text and text.strip():
                return text.strip()
    return None


@functools.cache  # a handful of paths per contract, read for every record
def _compiled(path: str, core_ns: str) -> etree.XPath:
    return etree.XPath(path, namespaces={"c": core_ns})


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


def embedded_too_large(media: etree._Element, ns: str) -> bool:
    value = (media.findtext(f"{{{ns}}}value") or "").strip()
    if len(value) <= MAX_EMBEDDED_BYTES * 4 // 3:
        return False
    try:
        return len(base64.b64decode(value, validate=False)) > MAX_EMBEDDED_BYTES
    except (binascii.Error, ValueError):
        return False  # not base64: the schema check reports it
