"""GetCarePlans 2.0 `carePlan` record -> CarePlan (EHDS-TK IneraEHDSCarePlan).

The plan's content (MultimediaType items) travels as the input profile's `care-plan-content`
extension (EHDS-TK CP-001 names an extension but no URL), in order; the first item of a record this
adapter published is its rendered HTML plan.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from adapter.mapping import codes, profile
from adapter.mapping.fhir_to_rivta.care_plans import PLAN_TYPES
from adapter.mapping.rivta_to_fhir.common import (
    EHDS_TK,
    Json,
    Node,
    Output,
    extension,
    ii,
    read_header,
    signature_extension,
)
from adapter.rivta.contracts import GET_CARE_PLANS as CONTRACT
from adapter.rivta.contracts import Contract
from adapter.rivta.rules import embedded_too_large

PROFILES = [EHDS_TK + "inera-ehds-care-plan"]  # EU EPS has no obligation profile for CarePlan
_SPACE = re.compile(r"\s+")


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    header = read_header(record, CONTRACT)
    body = record.required(CONTRACT.body_element)
    out = Output(CONTRACT, header)
    plan_type = (body.text("typeOfCarePlanEnum") or "").strip() or None

    plan = {
        "resourceType": "CarePlan",
        "id": out.id,
        # EHDS-TK: authorTime is meta.lastUpdated, documentTime is created.
        "meta": out.meta(PROFILES, lastUpdated=header.author.time),
        "extension": [signature_extension(header), *(_content(item) for item in body.children("content"))],
        "identifier": [out.identifier()],
        # The record carries no status (the rendered content may): "unknown" says exactly that.
        "status": "unknown",
        "intent": "plan",
        "category": [_plan_type(plan_type)] if plan_type else None,
        "title": header.document_title,
        "subject": out.subject(),
        "encounter": out.encounter(),
        "created": header.document_time,
        "author": out.role_ref(header.author),
        "contributor": [_unit(node) for node in body.children("participatingCareUnitHSAId")],
    }
    return out.finish(plan)


def _plan_type(code: str) -> Json:
    if code not in PLAN_TYPES:
        return {"text": code}
    return {"coding": [{"system": profile.CARE_PLAN_TYPE, "code": code, "display": PLAN_TYPES[code]}]}


def _content(item: Node) -> Json | None:
    value = item.text("value")
    return extension(profile.CARE_PLAN_CONTENT, valueAttachment={
        "contentType": item.required_text("mediaType"),
        "data": _SPACE.sub("", value) if value else None,  # base64 may be wrapped in the XML
        "url": (item.text("reference") or "").strip() or None,
    })


def _unit(node: Node) -> Json:
    """A participating care unit as a logical Organization reference (EHDS-TK CP-002)."""
    root, hsa_id = ii(node)
    if hsa_id is None:  # no extension: the root itself is the only identifier there is
        return {"type": "Organization", "identifier": {"value": root}}
    system = codes.uri_for(root) if codes.OID_PATTERN.match(root) else None
    return {"type": "Organization", "identifier": {"system": system, "value": hsa_id}}


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    kind = first(f"{body}/c:typeOfCarePlanEnum")
    return f"{first(f'{header}/c:documentTitle') or 'Vårdplan'}{f' ({kind})' if kind else ''}", \
        first(f"{header}/c:documentTime")


MEDIA_TYPES = {"text/plain", "text/html", "image/png", "image/jpeg", "image/tiff", "application/pdf"}  # TKB


# -- the contract's own rules (TKB, schematron) that its schema cannot say --------------------------------------
def rules(rec: etree._Element, contract: Contract) -> list[str]:
    ns = contract.core_ns
    out = []
    for i, content in enumerate(rec.findall(f"{{{ns}}}{contract.body_element}/{{{ns}}}content")):
        if content.find(f"{{{ns}}}id") is not None:
            out.append(f"content[{i}]: id must not be given")
        if (content.find(f"{{{ns}}}value") is None) == (content.find(f"{{{ns}}}reference") is None):
            out.append(f"content[{i}]: exactly one of value and reference")
        media_type = (content.findtext(f"{{{ns}}}mediaType") or "").strip()
        if media_type and media_type not in MEDIA_TYPES:
            out.append(f"content[{i}]: mediaType not one of the six the TKB allows")
        if embedded_too_large(content, ns):
            out.append(f"content[{i}]: value larger than 100 KB (R1)")
    h = rec.find(f"{{{ns}}}{contract.header_element}")
    org_unit = f"{{{ns}}}accountableHealthcareProfessional/{{{ns}}}healthcareProfessionalOrgUnit"
    if h is not None and h.find(org_unit) is None:
        out.append("healthcareProfessionalOrgUnit missing (Regel 4)")
    if h is not None and not (h.findtext(f"{{{ns}}}documentTitle") or "").strip():
        out.append("documentTitle missing (TKB 1..1)")
    return out
