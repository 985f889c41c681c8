"""GetCareDocumentation 2.1 `careDocumentation` record -> DocumentReference (EHDS-TK
IneraEHDSDocumentReference).

EHDS-TK describes GetCareDocumentation 3.0; the 2.1 header is read the same way
(documentId -> masterIdentifier, documentTime -> date, accountableHealthcareProfessional -> author,
legalAuthenticator -> authenticator + signature time).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from lxml import etree

from adapter.mapping import codes, profile
from adapter.mapping.fhir_to_rivta.care_notes import NOTE_CODE_NAMES, NOTE_CODE_OID
from adapter.mapping.rivta_to_fhir.common import (
    EHDS_TK,
    Json,
    Node,
    Output,
    extension,
    ii,
    ii_identifier,
    read_header,
    signature_extension,
)
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION as CONTRACT
from adapter.rivta.contracts import Contract
from adapter.rivta.rules import embedded_too_large

PROFILES = [EHDS_TK + "inera-ehds-document-reference"]  # EU EPS has no DocumentReference obligations
NOTE_CODES = NOTE_CODE_NAMES  # KV Anteckningstyp, as the input side reads it
TEXT_TYPE = "text/plain; charset=utf-8"
_SPACE = re.compile(r"\s+")


def convert(el: etree._Element) -> list[Any]:
    record = Node(el, CONTRACT.record_element)
    note = record.required(CONTRACT.body_element).required("clinicalDocumentNote")
    return document(record, CONTRACT, note, _note_type(note.text("clinicalDocumentNoteCode")))


def document(record: Node, contract: Contract, note: Node, note_type: Json | None) -> list[Any]:
    """The DocumentReference of a care note of either version: `note` holds the note's elements
    (2.1 clinicalDocumentNote, 3.0 body), whose names the versions share."""
    header = read_header(record, contract)
    out = Output(contract, header)
    signed = header.signer is not None and header.signer.time is not None

    document = {
        "resourceType": "DocumentReference",
        "id": out.id,
        "meta": out.meta(PROFILES),
        "extension": [
            signature_extension(header),
            # the 2.1 schema spells it dissentintOpinion; 3.0 (and a corrected 2.1) dissentingOpinion
            *(_opinion(op) for op in note.children("dissentintOpinion")),
            *(_opinion(op) for op in note.children("dissentingOpinion")),
        ],
        "masterIdentifier": out.identifier(),
        "identifier": [out.identifier()],
        # EHDS-TK: the service returns valid notes, so status is always current; an unsigned note is
        # preliminary (the input profile publishes such a note unsigned).
        "status": "current",
        "docStatus": "final" if signed else "preliminary",
        "type": note_type,
        "subject": out.subject(),
        "date": header.document_time or header.author.time,
        "author": [out.role_ref(header.author)],
        "authenticator": out.role_ref(header.signer),
        "description": note.text("clinicalDocumentNoteTitle"),
        "content": [{"attachment": _attachment(note, header.document_title)}],
        "context": {"encounter": [out.encounter()]},
    }
    return out.finish(document)


def _note_type(code: str | None) -> Json | None:
    """A KV Anteckningstyp code (2.1 gives the code alone) as the DocumentReference type."""
    code = (code or "").strip()
    if not code:
        return None
    return {"coding": [{"system": codes.uri_for(NOTE_CODE_OID), "code": code, "display": NOTE_CODES.get(code)}]}


def _attachment(note: Node, title: str | None) -> Json:
    """The note text as UTF-8 text/plain in base64 (EHDS-TK), or the multimedia entry as it came."""
    text = note.child("clinicalDocumentNoteText")
    if text is not None and text.el.text:
        data = base64.b64encode(text.el.text.encode("utf-8")).decode("ascii")
        return {"contentType": TEXT_TYPE, "data": data, "title": title}
    media = note.child("multimediaEntry")
    if media is None:
        # Neither text nor multimedia (schema-valid, rule-invalid): say so rather than invent content.
        return {"extension": [extension("http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                                        valueCode="unknown")], "title": title}
    value = media.text("value")
    return {
        "contentType": media.required_text("mediaType"),
        "data": _SPACE.sub("", value) if value else None,
        "url": (media.text("reference") or "").strip() or None,
        "title": title,
    }


def _opinion(op: Node) -> Json | None:
    """A dissenting opinion as EHDS-TK's complex extension (the input profile's sub-extension types)."""
    person = op.child("personId")
    person_value = None
    if person is not None and person.child("root") is not None:  # 3.0: an IIType (root = the id's type OID)
        root, value = ii(person)
        person_value = {"system": codes.uri_for(root), "value": value}
    elif person is not None:
        person_value = {"system": codes.uri_for(person.required_text("type")), "value": person.required_text("id")}
    return extension(profile.DISSENTING_OPINION, extension=[
        extension("opinionId", valueIdentifier=_opinion_id(op)),
        extension("authorTime", valueDateTime=op.time("authorTime")),
        extension("opinion", valueString=op.text("opinion")),
        extension("personId", valueIdentifier=person_value),
        extension("personName", valueString=op.text("personName")),
    ])


def _opinion_id(op: Node) -> Json | None:
    value = ii(op.child("opinionId"))
    if value is None:
        return None
    root, ext = value
    if ext is None:  # a globally unique root (e.g. a UUID) stands alone, as the input profile reads it
        return {"value": root}
    return ii_identifier(value, source_system=None)


# -- for people: one line of the overview ---------------------------------------------------------------------
def summary(first: Any, body: str, header: str) -> tuple[str, str | None]:
    note = f"{body}/c:clinicalDocumentNote"
    title = first(f"{note}/c:clinicalDocumentNoteTitle") or "Anteckning"
    text = first(f"{note}/c:clinicalDocumentNoteText")
    return f"{title}: {text if text else '(bilaga)'}", first(f"{header}/c:documentTime")


# -- the contract's own rules (TKB, schematron) that its schema cannot say --------------------------------------
def rules(rec: etree._Element, contract: Contract) -> list[str]:
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
    if media is not None and embedded_too_large(media, ns):
        out.append("multimediaEntry value larger than 100 KB (Regel 2)")
    return out
