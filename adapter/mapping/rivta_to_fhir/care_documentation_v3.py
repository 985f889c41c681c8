"""GetCareDocumentation 3.0 `careDocumentation` record -> DocumentReference (EHDS-TK
IneraEHDSDocumentReference, mapping-getcaredocumentation).

The JoL header is read by common.read_header (record.id -> masterIdentifier, record.timestamp -> date,
accessControlHeader care unit / care giver -> Provenance author / custodian, author -> author,
signature -> authenticator + signature time); the body is read as the 2.1 note is, with the note code
a CVType. `rules` holds the 3.0 rules a schema cannot say.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from adapter.mapping import codes
from adapter.mapping.fhir_to_rivta.care_notes import NOTE_CODE_OID
from adapter.mapping.rivta_to_fhir.care_documentation import NOTE_CODES, document
from adapter.mapping.rivta_to_fhir.common import Json, Node, concept
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as CONTRACT
from adapter.rivta.contracts import Contract
from adapter.rivta.rules import embedded_too_large


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    body = record.required(CONTRACT.body_element)
    return document(record, CONTRACT, body, _note_type(body.child("clinicalDocumentNoteCode")))


def _note_type(node: Node | None) -> Json | None:
    """KV Anteckningstyp codes with their display names; any other CV as it came."""
    if node is None:
        return None
    code, system = (node.text("code") or "").strip(), (node.text("codeSystem") or "").strip()
    if code and system == NOTE_CODE_OID:
        return {"coding": [{"system": codes.uri_for(NOTE_CODE_OID), "code": code,
                            "display": node.text("displayName") or NOTE_CODES.get(code)}],
                "text": node.text("originalText")}
    return concept(node)


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    title = first(f"{body}/c:clinicalDocumentNoteTitle") or first(f"{body}/c:clinicalDocumentNoteCode/c:displayName") \
        or "Anteckning"
    text = first(f"{body}/c:clinicalDocumentNoteText")
    return f"{title}: {text if text else '(bilaga)'}", first(f"{header}/c:record/c:timestamp")


# -- the contract's own rules (TKB, schematron) that its schema cannot say --------------------------------------
def rules(rec: etree._Element, contract: Contract) -> list[str]:
    """TKB GetCareDocumentation 3.0 Övriga regler and field rules a schema cannot say (names, never values)."""
    ns = {"c": contract.core_ns}
    out = []
    body = rec.find(f"c:{contract.body_element}", ns)
    if body is not None:
        media = body.find("c:multimediaEntry", ns)
        if (body.find("c:clinicalDocumentNoteText", ns) is None) == (media is None):
            out.append("body needs exactly one of clinicalDocumentNoteText and multimediaEntry (careDocumentationBody)")
        if media is not None and (media.find("c:value", ns) is None) == (media.find("c:reference", ns) is None):
            out.append("multimediaEntry needs exactly one of value and reference (multimediaEntry)")
        if media is not None and embedded_too_large(media, contract.core_ns):
            out.append("multimediaEntry value larger than 100 KB (Binära bilagor)")
        code = body.find("c:clinicalDocumentNoteCode", ns)
        if code is not None and (code.findtext("c:codeSystem", namespaces=ns) or "").strip() not in ("", NOTE_CODE_OID):
            out.append("clinicalDocumentNoteCode is not from KV Anteckningstyp (1.2.752.129.2.2.2.11)")
        for op in body.iterfind("c:dissentingOpinion", ns):
            if not (op.findtext("c:personId/c:extension", namespaces=ns) or "").strip():
                out.append("dissentingOpinion personId needs extension (the person's id)")
    h = rec.find(f"c:{contract.header_element}", ns)
    if h is None:
        return out
    acl = h.find("c:accessControlHeader", ns)
    if acl is not None and not (acl.findtext("c:patientId/c:extension", namespaces=ns) or "").strip():
        out.append("accessControlHeader patientId needs extension (the patient's id)")
    for name in ("accountableCareUnit", "accountableHealthcareProvider"):
        el = acl.find(f"c:{name}", ns) if acl is not None else None
        if el is not None and not (el.findtext("c:extension", namespaces=ns) or "").strip():
            out.append(f"{name} needs extension (the HSA-id)")
    source = h.find("c:sourceSystemId", ns)
    if source is not None and not (source.findtext("c:extension", namespaces=ns) or "").strip():
        out.append("sourceSystemId needs extension (the source system's HSA-id)")
    return out
