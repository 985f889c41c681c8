"""GetCareDocumentation 3.0: the same DocumentReference / Composition input as 2.1 -> 3.0 careDocumentation,
checked against the OFFICIAL 3.0 schema, the TKB rules (rules()) and back to FHIR."""

from __future__ import annotations

import base64
import copy
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from adapter.ingest import validate
from adapter.mapping.context import SUPPORTING_TYPES
from adapter.mapping.fhir_to_rivta import care_documentation as v21
from adapter.mapping.fhir_to_rivta import care_documentation_v3 as v3
from adapter.mapping.record import Record
from adapter.mapping.rivta_to_fhir import care_documentation_v3 as back
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION_3 as GCD3
from tests.mapping.test_care_documentation import (
    ENCOUNTER,
    HOME,
    NOPATIENT,
    PNR,
    SOURCE,
    SPECIAL,
    WORLD,
    b64,
    composition,
    context,
    demo_resources,
    docref,
    rich_docref,
)

REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference"
XSD = (REFERENCE / "rivta/GetCareDocumentation/3.0/interactions/GetCareDocumentationInteraction"
       / "GetCareDocumentationResponder_3.0.xsd")
C = GCD3.core_ns
HSA = "1.2.752.129.2.1.4.1"


@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def response(records: list[Record]) -> etree._Element:
    root = etree.Element(f"{{{GCD3.responder_ns}}}{GCD3.response_element}", nsmap={None: GCD3.responder_ns})
    for rec in records:
        root.append(etree.fromstring(rec.fragment))
    result = etree.SubElement(root, f"{{{GCD3.responder_ns}}}result")
    etree.SubElement(result, f"{{{C}}}resultCode").text = "OK"
    return root


def assert_valid(records: list[Record]) -> etree._Element:
    root = etree.fromstring(etree.tostring(response(records), encoding="utf-8"))
    xsd = schema()
    assert xsd.validate(root), xsd.error_log
    for el in root.iter():
        if len(el) == 0:
            assert el.text is not None and el.text.strip(), f"empty element {el.tag}"
    ids = [el.findtext(f"{{{C}}}id/{{{C}}}root") for el in root.iter(f"{{{C}}}record")]
    assert len(ids) == len(set(ids))
    for rec in root.iter(f"{{{GCD3.responder_ns}}}careDocumentation"):
        assert back.rules(rec, GCD3) == []
    return root


def one(root: etree._Element, path: str) -> str | None:
    return root.findtext(".//" + "/".join(f"{{{C}}}{p}" for p in path.split("/")))


def map_doc(raw: dict, *extra: dict) -> Record:
    (rec,) = v3.map_document_reference(validate(raw), context(*extra))
    return rec


def test_minimal_note():
    rec = map_doc(docref())
    root = assert_valid([rec])
    acl = "header/accessControlHeader/"
    assert one(root, acl + "patientId/root") == "1.2.752.129.2.1.3.1"
    assert one(root, acl + "patientId/extension") == PNR
    assert one(root, acl + "accountableCareUnit/root") == HSA
    assert one(root, acl + "accountableCareUnit/extension") == HOME.hsa_id
    assert one(root, acl + "accountableHealthcareProvider/extension") == WORLD.care_giver.hsa_id
    assert one(root, acl + "blockComparisonTime") == "20240601101500"
    assert one(root, acl + "approvedForPatient") == "true"
    assert one(root, "header/sourceSystemId/root") == HSA
    assert one(root, "header/sourceSystemId/extension") == SOURCE
    # TKB: record.id is the documentId of the earlier major versions, as root alone
    assert one(root, "header/record/id/root") == "note-1"
    assert root.find(f".//{{{C}}}record/{{{C}}}id/{{{C}}}extension") is None
    assert one(root, "header/record/timestamp") == "20240601101500"
    assert one(root, "header/author/timestamp") == "20240601101500"
    assert root.find(f".//{{{C}}}signature") is None
    assert one(root, "body/clinicalDocumentNoteCode/code") == "bes"
    assert one(root, "body/clinicalDocumentNoteCode/codeSystem") == "1.2.752.129.2.2.2.11"
    assert one(root, "body/clinicalDocumentNoteCode/displayName") == "Besöksanteckning"
    assert one(root, "body/clinicalDocumentNoteText") == "Hembesök, allt väl."
    assert rec.contract == GCD3.key == "GetCareDocumentation:3" and rec.category == "voo"
    assert rec.times == {"recordTime": "20240601101500", "authorTime": "20240601101500",
                         "signatureTime": None, "dissentingOpinionTime": []}


def test_rich_note_uses_the_same_reading_as_21():
    raw = rich_docref()
    rec3 = map_doc(raw, ENCOUNTER)
    (rec21,) = v21.map_document_reference(validate(copy.deepcopy(raw)), context(ENCOUNTER))
    assert rec3.header == rec21.header  # one reading of the FHIR resource
    root = assert_valid([rec3])
    assert one(root, "header/record/id/root") == "anteckning-4711"
    assert one(root, "body/clinicalDocumentNoteTitle") == "Hembesök <sjuksköterska> & anhörig"
    assert one(root, "body/clinicalDocumentNoteText") == SPECIAL + "\nRad två."
    assert one(root, "header/author/id/extension") == WORLD.staff[0].hsa_id
    assert one(root, "header/author/name") == "Åsa Öberg"
    assert one(root, "header/author/byRole/code") == "204010"
    assert one(root, "header/signature/timestamp") == "20240601143000"
    assert one(root, "header/signature/id/extension") == WORLD.staff[0].hsa_id
    assert root.find(f".//{{{C}}}careContactId") is None  # no place in 3.0
    opinions = root.findall(f".//{{{C}}}dissentingOpinion")
    assert len(opinions) == 2
    assert opinions[0].findtext(f"{{{C}}}personId/{{{C}}}root") == "1.2.752.129.2.1.3.1"
    assert opinions[0].findtext(f"{{{C}}}personId/{{{C}}}extension") == PNR
    assert opinions[0].findtext(f"{{{C}}}opinionId/{{{C}}}extension") == "avv-1"
    assert rec3.times["signatureTime"] == "20240601143000"
    assert rec3.times["dissentingOpinionTime"] == ["20240620090000", "20240605080000"]
    assert b"&lt;&amp;&gt;" in rec3.fragment


@pytest.mark.parametrize("code", ["utr", "atb", "sam", "sao", "ins", "slu", "auf", "sva", "bes"])
def test_every_note_code(code):
    raw = docref(type={"coding": [{"system": "urn:oid:1.2.752.129.2.2.2.11", "code": code}]})
    assert one(assert_valid([map_doc(raw)]), "body/clinicalDocumentNoteCode/code") == code


def test_multimedia_and_approval():
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 40
    embedded = docref(content=[{"attachment": {"contentType": "image/png", "data": b64(png)}}],
                      meta={**WORLD.meta, "security": [NOPATIENT]})
    linked = docref(id="note-2", content=[{"attachment": {"contentType": "application/pdf",
                                                          "url": "https://x.example/a.pdf"}}])
    root = assert_valid([map_doc(embedded), map_doc(linked)])
    assert base64.b64decode(one(root, "multimediaEntry/value")) == png
    assert one(root, "multimediaEntry/reference") == "https://x.example/a.pdf"
    assert [el.text for el in root.iter(f"{{{C}}}approvedForPatient")] == ["false", "true"]


def test_composition():
    (rec,) = v3.map_composition(validate(composition()), context())
    root = assert_valid([rec])
    assert one(root, "header/record/id/root") == "sammanfattning-1"
    assert one(root, "body/clinicalDocumentNoteCode/code") == "sam"
    assert one(root, "header/signature/timestamp") == "20241103164500"


@pytest.mark.parametrize("patient", WORLD.patients, ids=lambda p: p.id)
def test_demo_patients_valid(patient):
    models = [validate(copy.deepcopy(r)) for r in demo_resources(patient)]
    ctx = context()
    for m in models:
        if m.get_resource_type() in SUPPORTING_TYPES:
            ctx.add(m)
    recs = []
    for m in models:
        if m.get_resource_type() == "DocumentReference":
            recs += v3.map_document_reference(m, ctx)
        elif m.get_resource_type() == "Composition":
            recs += v3.map_composition(m, ctx)
    root = assert_valid(recs)
    assert root.find(f".//{{{C}}}dissentingOpinion") is not None


def test_back_to_fhir_same_document_as_21():
    """A consumer reading 2.1 and 3.0 answers gets the same DocumentReference id for the same note."""
    from adapter.mapping.rivta_to_fhir import care_documentation as back21

    raw = rich_docref()
    rec3 = map_doc(raw, ENCOUNTER)
    (rec21,) = v21.map_document_reference(validate(copy.deepcopy(raw)), context(ENCOUNTER))
    doc3, prov3, *roles3 = back.convert(etree.fromstring(rec3.fragment))
    doc21, *_ = back21.convert(etree.fromstring(rec21.fragment))
    assert doc3.id == doc21.id
    assert doc3.masterIdentifier.value == "anteckning-4711"
    assert doc3.type.coding[0].code == "bes" and doc3.type.coding[0].display == "Besöksanteckning"
    assert doc3.subject.identifier.value == PNR
    assert doc3.docStatus == "final" and doc3.authenticator is not None
    assert len(doc3.extension) == 3  # signature time + two dissenting opinions
    assert doc3.content[0].attachment.data == doc21.content[0].attachment.data
    assert prov3.get_resource_type() == "Provenance"
    agents = {a.type.coding[0].code: a.who.identifier.value for a in prov3.agent if a.who.identifier}
    assert agents["author"] == HOME.hsa_id and agents["custodian"] == WORLD.care_giver.hsa_id
    assert roles3 and doc21.date == doc3.date


def test_rules_name_elements_never_values():
    rec = map_doc(rich_docref(), ENCOUNTER)
    el = etree.fromstring(rec.fragment)
    body = el.find(f"{{{C}}}body")
    etree.SubElement(body, f"{{{C}}}multimediaEntry")
    el.find(f".//{{{C}}}accessControlHeader/{{{C}}}patientId/{{{C}}}extension").getparent().remove(
        el.find(f".//{{{C}}}accessControlHeader/{{{C}}}patientId/{{{C}}}extension"))
    found = back.rules(el, GCD3)
    assert any("exactly one of clinicalDocumentNoteText and multimediaEntry" in m for m in found)
    assert any("patientId needs extension" in m for m in found)
    assert not any(PNR in m for m in found)
