"""FHIR DocumentReference / Composition (care notes) -> GetCareDocumentation 2.1 `careDocumentation` record.

The input profile is described in mappings/GetCareDocumentation.md; the FHIR resource is read in
care_notes.py (shared with 3.0), this module renders the note in the 2.1 vocabulary.
"""

from __future__ import annotations

import base64
from typing import Any

from adapter.mapping import rivta_xml
from adapter.mapping.context import Context
from adapter.mapping.fhir_to_rivta.care_notes import (
    MAX_EMBEDDED,
    MEDIA_TYPES,
    Content,
    Note,
    Opinion,
    read_composition,
    read_document_reference,
)
from adapter.mapping.record import Map, Record
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION

__all__ = ["MAX_EMBEDDED", "MEDIA_TYPES", "map_composition", "map_document_reference", "render", "write_content"]

(CATEGORY,) = GET_CARE_DOCUMENTATION.ei_categorizations


def map_document_reference(doc: Any, ctx: Context) -> list[Record]:
    return [render(read_document_reference(doc, ctx))]


def map_composition(comp: Any, ctx: Context) -> list[Record]:
    return [render(read_composition(comp, ctx))]


def render(n: Note) -> Record:
    header = n.header
    root, b = rivta_xml.record_root(GET_CARE_DOCUMENTATION)
    rivta_xml.header(b, root, GET_CARE_DOCUMENTATION, header)
    note = b.node(b.node(root, GET_CARE_DOCUMENTATION.body_element), "clinicalDocumentNote")
    b.text(note, "clinicalDocumentNoteCode", n.note_code)
    # clinicalDocumentTypeCode is for 13606 adapters only (0..0) and is never written.
    b.text(note, "clinicalDocumentNoteTitle", n.title)
    write_content(b, note, n.content)
    for op in n.opinions:
        _write_opinion(b, note, op)

    return Record(
        contract=GET_CARE_DOCUMENTATION.key,
        header=header,
        fragment=rivta_xml.serialise(root),
        times={
            "documentTime": header.document_time,
            "authorTime": header.author.time,
            "signatureTime": header.signer.time if header.signer else None,
            "dissentingOpinionTime": [op.author_time for op in n.opinions],
        },
        category=CATEGORY,
    )


def write_content(b: rivta_xml.Builder, note: Any, content: Content) -> None:
    """Exactly one of clinicalDocumentNoteText and multimediaEntry (value xor reference)."""
    if content.text is not None:
        b.text(note, "clinicalDocumentNoteText", content.text)
        return
    media = b.node(note, "multimediaEntry")
    b.text(media, "mediaType", content.media_type)
    if content.value is not None:
        b.text(media, "value", base64.b64encode(content.value).decode("ascii"))
    else:
        b.text(media, "reference", content.reference)


def _write_opinion(b: rivta_xml.Builder, note: Any, op: Opinion) -> None:
    el = b.node(note, "dissentintOpinion")  # sic: the 2.1 schema's spelling
    if op.opinion_id is not None:
        b.ii(el, "opinionId", *op.opinion_id)
    b.text(el, "authorTime", op.author_time)
    b.text(el, "opinion", op.opinion)
    pid = b.node(el, "personId")
    b.text(pid, "id", op.person_id[0])
    b.text(pid, "type", op.person_id[1])
    b.text(el, "personName", op.person_name)


MAPS = (Map("DocumentReference", map_document_reference), Map("Composition", map_composition))
