"""FHIR DocumentReference / Composition (care notes) -> GetCareDocumentation 3.0 `careDocumentation` record.

The FHIR resource is read once, in care_notes.py, exactly as for 2.1 (mappings/GetCareDocumentation.md);
this module renders that note in the 3.0 vocabulary: the JoL header (rivta_xml.jol_header), the note
code as a CVType from KV Anteckningstyp, `dissentingOpinion` with IIType person ids. The 2.1 care contact
has no place in 3.0 and is left out.
"""

from __future__ import annotations

from typing import Any

from adapter.mapping import rivta_xml
from adapter.mapping.context import Context
from adapter.mapping.fhir_to_rivta.care_documentation import write_content
from adapter.mapping.fhir_to_rivta.care_notes import (
    NOTE_CODE_NAMES,
    NOTE_CODE_OID,
    Note,
    Opinion,
    read_composition,
    read_document_reference,
)
from adapter.mapping.record import Map, Record
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as CONTRACT

(CATEGORY,) = CONTRACT.ei_categorizations


def map_document_reference(doc: Any, ctx: Context) -> list[Record]:
    return [render(read_document_reference(doc, ctx))]


def map_composition(comp: Any, ctx: Context) -> list[Record]:
    return [render(read_composition(comp, ctx))]


def render(n: Note) -> Record:
    header = n.header
    root, b = rivta_xml.record_root(CONTRACT)
    rivta_xml.jol_header(b, root, CONTRACT, header)
    body = b.node(root, CONTRACT.body_element)
    b.cv(body, "clinicalDocumentNoteCode", n.note_code, NOTE_CODE_OID, NOTE_CODE_NAMES[n.note_code])
    b.text(body, "clinicalDocumentNoteTitle", n.title)
    write_content(b, body, n.content)
    for op in n.opinions:
        _write_opinion(b, body, op)
    time = header.document_time or header.author.time
    return Record(
        contract=CONTRACT.key,
        header=header,
        fragment=rivta_xml.serialise(root),
        times={
            "recordTime": time,
            "authorTime": header.author.time,
            "signatureTime": header.signer.time if header.signer else None,
            "dissentingOpinionTime": [op.author_time for op in n.opinions],
        },
        category=CATEGORY,
    )


def _write_opinion(b: rivta_xml.Builder, body: Any, op: Opinion) -> None:
    el = b.node(body, "dissentingOpinion")
    if op.opinion_id is not None:
        b.ii(el, "opinionId", *op.opinion_id)
    b.text(el, "authorTime", op.author_time)
    b.text(el, "opinion", op.opinion)
    person_id, person_type = op.person_id
    b.ii(el, "personId", person_type, person_id)
    b.text(el, "personName", op.person_name)


# Published beside 2.1: neither version claims a note, so every DocumentReference and Composition is in both.
MAPS = (Map("DocumentReference", map_document_reference), Map("Composition", map_composition))
