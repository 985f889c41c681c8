"""GetCareDocumentation 2.1: DocumentReference / Composition -> careDocumentation, checked against the
official 2.1 schema, the schematron-style rules and the input profile (mappings/GetCareDocumentation.md)."""

from __future__ import annotations

import base64
import copy
import random
import uuid
from functools import cache
from pathlib import Path

import orjson
import pytest
from lxml import etree

from adapter.demo import care_documentation as demo
from adapter.demo.generate import organisation, patient_resource
from adapter.demo.world import HSA_SYSTEM, PNR_SYSTEM, default_world
from adapter.ingest import ingest, validate
from adapter.mapping import profile
from adapter.mapping.context import SUPPORTING_TYPES, Context
from adapter.mapping.dispatch import map_resource
from adapter.mapping.errors import MappingError
from adapter.mapping.fhir_to_rivta.care_documentation import (
    MAX_EMBEDDED,
    map_composition,
    map_document_reference,
)
from adapter.mapping.record import Record
from adapter.rivta.contracts import GET_CARE_DOCUMENTATION as GCD
from adapter.store import records as store

REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference"
XSD = (REFERENCE / "rivta/GetCareDocumentation/2.1/interactions/GetCareDocumentationInteraction"
       / "GetCareDocumentationResponder_2.1.xsd")
C = GCD.core_ns
WORLD = default_world()
PNR = "191212121212"
SOURCE = WORLD.source_system
SPECIAL = "Åsa, Öberg & Ärlig: blodtryck <140/90> & puls > 60 – åäö ÅÄÖ"
HOME, HOUSING = WORLD.units
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}


# -- helpers ---------------------------------------------------------------------------------------------
@cache
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def support() -> list[dict]:
    return organisation(WORLD) + [patient_resource(p) for p in WORLD.patients]


def context(*extra: dict) -> Context:
    ctx = Context()
    for raw in support() + list(extra):
        ctx.add(validate(raw))
    return ctx


def response(records: list[Record]) -> etree._Element:
    root = etree.Element(f"{{{GCD.responder_ns}}}{GCD.response_element}", nsmap={None: GCD.responder_ns})
    for rec in records:
        root.append(etree.fromstring(rec.fragment))
    result_ns, child_ns = GCD.result_ns
    result = etree.SubElement(root, f"{{{result_ns}}}result")
    etree.SubElement(result, f"{{{child_ns}}}resultCode").text = "OK"
    etree.SubElement(result, f"{{{child_ns}}}logId").text = str(uuid.uuid4())
    return root


def assert_valid(records: list[Record]) -> etree._Element:
    root = response(records)
    # round-trip through bytes so the check sees exactly what a consumer would parse
    root = etree.fromstring(etree.tostring(root, encoding="utf-8"))
    xsd = schema()
    assert xsd.validate(root), xsd.error_log
    assert_schematron(root)
    return root


def assert_schematron(root: etree._Element) -> None:
    for el in root.iter():
        if len(el) == 0:
            assert el.text is not None and el.text.strip(), f"empty element {el.tag}"
    for forbidden in ("clinicalDocumentTypeCode", "nullified", "nullifiedReason", "documentTitle"):
        assert root.find(f".//{{{C}}}{forbidden}") is None, forbidden
    for cv in root.iter(f"{{{C}}}healthcareProfessionalRoleCode"):
        names = {etree.QName(child).localname for child in cv}
        assert names in ({"code", "codeSystem", "displayName"}, {"originalText"}), names
        if "codeSystem" in names:
            assert all(part.isdigit() for part in cv.findtext(f"{{{C}}}codeSystem").split("."))
    ids = [el.text for el in root.iter(f"{{{C}}}documentId")]
    assert len(ids) == len(set(ids)), "documentIds must be unique in a response"
    for note in root.iter(f"{{{C}}}clinicalDocumentNote"):
        text = note.find(f"{{{C}}}clinicalDocumentNoteText")
        media = note.find(f"{{{C}}}multimediaEntry")
        assert (text is None) != (media is None), "exactly one of text and multimediaEntry"
        if media is not None:
            assert (media.find(f"{{{C}}}value") is None) != (media.find(f"{{{C}}}reference") is None)


def one(root: etree._Element, path: str) -> str | None:
    return root.findtext(".//" + "/".join(f"{{{C}}}{p}" for p in path.split("/")))


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode("utf-8") if isinstance(text, str) else text).decode("ascii")


def note_type(code: str = "bes") -> dict:
    return {"coding": [{"system": profile.NOTE_CODE, "code": code}]}


def dissent(time: str = "2024-06-10T09:00:00+02:00", **override) -> dict:
    parts = {
        "opinionId": {"valueIdentifier": {"system": "urn:oid:1.2.752.129.2.1.2.1", "value": "avv-1"}},
        "authorTime": {"valueDateTime": time},
        "opinion": {"valueString": "Jag håller inte med <&> om bedömningen."},
        "personId": {"valueIdentifier": {"system": PNR_SYSTEM, "value": "19121212-1212"}},
        "personName": {"valueString": "Tolvan Tolvansson"},
    }
    parts.update(override)
    return {"url": profile.DISSENTING_OPINION,
            "extension": [{"url": k, **v} for k, v in parts.items() if v is not None]}


def docref(**override) -> dict:
    """A minimal, valid note: unsigned, no title, plain text."""
    doc = {
        "resourceType": "DocumentReference",
        "id": "note-1",
        "meta": dict(WORLD.meta),
        "status": "current",
        "type": note_type("bes"),
        "subject": {"reference": "Patient/pat-1"},
        "date": "2024-06-01T10:15:00+02:00",
        "author": [WORLD.staff[0].role_ref],
        "content": [{"attachment": {"contentType": "text/plain", "data": b64("Hembesök, allt väl.")}}],
    }
    doc.update(override)
    return {k: v for k, v in doc.items() if v is not None}


def rich_docref() -> dict:
    return docref(
        masterIdentifier={"value": "anteckning-4711"},
        identifier=[{"value": "other-id"}],
        docStatus="final",
        description="Hembesök <sjuksköterska> & anhörig",
        authenticator=WORLD.staff[0].role_ref,
        extension=[
            {"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-06-01T12:30:00Z"},
            dissent("2024-06-20T09:00:00+02:00"),
            dissent("2024-06-05T08:00:00+02:00", opinionId=None),
        ],
        context={"encounter": [{"reference": "Encounter/enc-1"}]},
        content=[{"attachment": {"contentType": "text/plain; charset=utf-8", "data": b64(SPECIAL + "\r\nRad två.")}}],
    )


ENCOUNTER = {
    "resourceType": "Encounter", "id": "enc-1", "status": "finished",
    "identifier": [{"system": "urn:oid:1.2.752.129.2.1.2.1", "value": "vk-123"}],
    "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
}


def composition(**override) -> dict:
    comp = {
        "resourceType": "Composition",
        "id": "comp-1",
        "meta": dict(WORLD.meta),
        "identifier": {"value": "sammanfattning-1"},
        "status": "final",
        "type": note_type("sam"),
        "subject": {"reference": "Patient/pat-2"},
        "date": "2024-11-03T14:00:00+01:00",
        "author": [WORLD.staff[2].role_ref],
        "title": "Sammanfattning <vårdtid> & plan",
        "attester": [{"mode": "legal", "time": "2024-11-03T16:45:00+01:00", "party": WORLD.staff[2].role_ref}],
        "section": [
            {"title": "Hälsotillstånd", "text": {"status": "generated", "div":
                '<div xmlns="http://www.w3.org/1999/xhtml"><p>Stabilt   &amp; piggt,\n  äter väl.</p>'
                "<p>Blodtryck &lt;140/90&gt;.</p></div>"}},
            {"title": "Omvårdnad", "text": {"status": "generated", "div":
                '<div xmlns="http://www.w3.org/1999/xhtml"><ul><li>Rollator</li><li>Nattbelysning</li></ul>'
                "<table><tr><th>Mått</th><th>Värde</th></tr><tr><td>Vikt</td><td>61 kg</td></tr></table>"
                "</div>"},
             "section": [{"title": "Nutrition", "text": {"status": "additional", "div":
                          '<div xmlns="http://www.w3.org/1999/xhtml">Rad ett<br/>Rad två</div>'}}]},
            {"title": "Tom", "text": {"status": "empty", "div":
                '<div xmlns="http://www.w3.org/1999/xhtml">Inget</div>'}},
        ],
    }
    comp.update(override)
    return {k: v for k, v in comp.items() if v is not None}


def map_doc(raw: dict, *extra: dict) -> Record:
    recs = map_document_reference(validate(raw), context(*extra))
    assert len(recs) == 1
    return recs[0]


def map_comp(raw: dict, *extra: dict) -> Record:
    recs = map_composition(validate(raw), context(*extra))
    assert len(recs) == 1
    return recs[0]


# -- valid records ----------------------------------------------------------------------------------------
def test_minimal_note_is_valid_and_unsigned():
    rec = map_doc(docref())
    root = assert_valid([rec])
    assert one(root, "documentId") == "note-1"
    assert one(root, "sourceSystemHSAid") == SOURCE
    assert one(root, "patientId/id") == PNR
    assert one(root, "documentTime") == "20240601101500"
    assert one(root, "accountableHealthcareProfessional/authorTime") == "20240601101500"
    assert one(root, "approvedForPatient") == "true"
    assert one(root, "clinicalDocumentNoteCode") == "bes"
    assert one(root, "clinicalDocumentNoteText") == "Hembesök, allt väl."
    assert root.find(f".//{{{C}}}legalAuthenticator") is None
    assert root.find(f".//{{{C}}}clinicalDocumentNoteTitle") is None
    assert root.find(f".//{{{C}}}careContactId") is None
    assert rec.category == "voo"
    assert rec.times == {"documentTime": "20240601101500", "authorTime": "20240601101500",
                         "signatureTime": None, "dissentingOpinionTime": []}


def test_rich_note_content_survives():
    rec = map_doc(rich_docref(), ENCOUNTER)
    root = assert_valid([rec])
    assert one(root, "documentId") == "anteckning-4711"  # masterIdentifier wins over identifier
    assert one(root, "clinicalDocumentNoteTitle") == "Hembesök <sjuksköterska> & anhörig"
    assert one(root, "clinicalDocumentNoteText") == SPECIAL + "\nRad två."
    assert one(root, "careContactId") == "vk-123"
    prof = "accountableHealthcareProfessional/"
    assert one(root, prof + "healthcareProfessionalHSAId") == WORLD.staff[0].hsa_id
    assert one(root, prof + "healthcareProfessionalName") == "Åsa Öberg"
    assert one(root, prof + "healthcareProfessionalRoleCode/code") == "204010"
    assert one(root, prof + "healthcareProfessionalCareUnitHSAId") == HOME.hsa_id
    assert one(root, prof + "healthcareProfessionalCareGiverHSAId") == WORLD.care_giver.hsa_id
    # 12:30 UTC in June is 14:30 Swedish summer time
    assert one(root, "legalAuthenticator/signatureTime") == "20240601143000"
    assert one(root, "legalAuthenticator/legalAuthenticatorHSAId") == WORLD.staff[0].hsa_id
    opinions = root.findall(f".//{{{C}}}dissentintOpinion")
    assert len(opinions) == 2
    first = opinions[0]
    assert first.findtext(f"{{{C}}}opinionId/{{{C}}}root") == "1.2.752.129.2.1.2.1"
    assert first.findtext(f"{{{C}}}opinionId/{{{C}}}extension") == "avv-1"
    assert first.findtext(f"{{{C}}}authorTime") == "20240620090000"
    assert first.findtext(f"{{{C}}}opinion") == "Jag håller inte med <&> om bedömningen."
    assert first.findtext(f"{{{C}}}personId/{{{C}}}id") == PNR
    assert first.findtext(f"{{{C}}}personId/{{{C}}}type") == "1.2.752.129.2.1.3.1"
    assert first.findtext(f"{{{C}}}personName") == "Tolvan Tolvansson"
    assert opinions[1].find(f"{{{C}}}opinionId") is None
    assert rec.times == {"documentTime": "20240601101500", "authorTime": "20240601101500",
                         "signatureTime": "20240601143000",
                         "dissentingOpinionTime": ["20240620090000", "20240605080000"]}
    assert b"&lt;&amp;&gt;" in rec.fragment  # entity-encoded, never raw markup


@pytest.mark.parametrize("code", ["utr", "atb", "sam", "sao", "ins", "slu", "auf", "sva", "bes"])
def test_every_note_code(code):
    raw = docref(type={"coding": [{"system": "http://snomed.info/sct", "code": "371531000"},
                                  {"system": profile.NOTE_CODE, "code": code, "display": "x"}]})
    root = assert_valid([map_doc(raw)])
    assert one(root, "clinicalDocumentNoteCode") == code


def test_note_code_by_plain_oid_system():
    raw = docref(type={"coding": [{"system": "urn:oid:1.2.752.129.2.2.2.11", "code": "sva"}]})
    assert one(assert_valid([map_doc(raw)]), "clinicalDocumentNoteCode") == "sva"


def test_embedded_png():
    png = demo._wound_png(random.Random(1))
    raw = docref(content=[{"attachment": {"contentType": "image/png", "data": b64(png), "title": "Foto sår"}}])
    root = assert_valid([map_doc(raw)])
    assert one(root, "multimediaEntry/mediaType") == "image/png"
    assert base64.b64decode(one(root, "multimediaEntry/value")) == png
    assert one(root, "clinicalDocumentNoteTitle") == "Foto sår"  # attachment.title when no description
    assert root.find(f".//{{{C}}}clinicalDocumentNoteText") is None


def test_multimedia_reference_and_size_limit():
    url = "https://dokument.exempelby.se/anteckning/42.pdf"
    linked = docref(content=[{"attachment": {"contentType": "application/pdf", "url": url}}])
    assert one(assert_valid([map_doc(linked)]), "multimediaEntry/reference") == url

    big = b"%PDF-1.4\n" + b"0" * MAX_EMBEDDED
    too_big = docref(content=[{"attachment": {"contentType": "application/pdf", "data": b64(big), "url": url}}])
    root = assert_valid([map_doc(too_big)])
    assert one(root, "multimediaEntry/reference") == url
    assert root.find(f".//{{{C}}}multimediaEntry/{{{C}}}value") is None

    at_limit = docref(content=[{"attachment": {"contentType": "application/pdf",
                                               "data": b64(big[:MAX_EMBEDDED]), "url": url}}])
    assert one(assert_valid([map_doc(at_limit)]), "multimediaEntry/value")

    with pytest.raises(MappingError) as err:
        map_doc(docref(content=[{"attachment": {"contentType": "application/pdf", "data": b64(big)}}]))
    assert err.value.field == "content.attachment.data"


def test_text_preferred_among_renditions():
    raw = docref(content=[
        {"attachment": {"contentType": "application/pdf", "data": b64(b"%PDF-1.4 ...")}},
        {"attachment": {"contentType": "text/plain;charset=ISO-8859-1", "data": b64("Åäö".encode("latin-1"))}},
    ])
    root = assert_valid([map_doc(raw)])
    assert one(root, "clinicalDocumentNoteText") == "Åäö"
    assert root.find(f".//{{{C}}}multimediaEntry") is None


def test_text_is_made_xml_safe():
    raw = docref(content=[{"attachment": {"contentType": "text/plain",
                                          "data": b64("\ufeffRad 1\x0c\x00\r\nRad 2\t  \n\n")}}])
    assert one(assert_valid([map_doc(raw)]), "clinicalDocumentNoteText") == "Rad 1\nRad 2"


def test_plain_text_link_becomes_multimedia_reference():
    raw = docref(content=[{"attachment": {"contentType": "text/plain", "url": "https://x.example/a.txt"}}])
    root = assert_valid([map_doc(raw)])
    assert one(root, "multimediaEntry/mediaType") == "text/plain"


def test_not_approved_for_patient():
    by_meta = docref(meta={**WORLD.meta, "security": [NOPATIENT]})
    by_label = docref(id="note-2", securityLabel=[{"coding": [NOPATIENT]}])
    root = assert_valid([map_doc(by_meta), map_doc(by_label)])
    assert [el.text for el in root.iter(f"{{{C}}}approvedForPatient")] == ["false", "false"]


def test_amended_and_preliminary_notes_are_published():
    amended = rich_docref() | {"docStatus": "amended"}
    preliminary = docref(id="note-2", docStatus="preliminary")
    root = assert_valid([map_doc(amended, ENCOUNTER), map_doc(preliminary)])
    assert len(root.findall(f".//{{{C}}}legalAuthenticator")) == 1


def test_logical_author_and_signer_references():
    hsa = {"system": HSA_SYSTEM, "value": "SE2120001231-P099"}
    raw = docref(author=[{"reference": "Organization/ve-hemtjanst"}, {"identifier": hsa, "display": "Vikarie Vik"}],
                 authenticator={"identifier": hsa, "display": "Vikarie Vik"},
                 extension=[{"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-06-01T18:00:00+02:00"}])
    root = assert_valid([map_doc(raw)])
    assert one(root, "healthcareProfessionalHSAId") == "SE2120001231-P099"
    assert one(root, "legalAuthenticatorName") == "Vikarie Vik"


def test_provenance_gives_care_unit():
    prov = {"resourceType": "Provenance", "id": "prov-1", "target": [{"reference": "DocumentReference/note-1"}],
            "recorded": "2024-06-01T10:15:00+02:00",
            "agent": [{"type": {"coding": [{"code": "author"}]},
                       "who": {"identifier": {"system": HSA_SYSTEM, "value": HOUSING.hsa_id}}}]}
    root = assert_valid([map_doc(docref(), prov)])
    assert one(root, "healthcareProfessionalCareUnitHSAId") == HOUSING.hsa_id


def test_composition_narrative_becomes_plain_text():
    rec = map_comp(composition())
    root = assert_valid([rec])
    assert one(root, "documentId") == "sammanfattning-1"
    assert one(root, "patientId/id") == "194004019818"
    assert one(root, "clinicalDocumentNoteCode") == "sam"
    assert one(root, "clinicalDocumentNoteTitle") == "Sammanfattning <vårdtid> & plan"
    assert one(root, "documentTime") == "20241103140000"
    assert one(root, "legalAuthenticator/signatureTime") == "20241103164500"
    assert one(root, "healthcareProfessionalCareUnitHSAId") == HOUSING.hsa_id
    assert one(root, "clinicalDocumentNoteText") == (
        "Hälsotillstånd\nStabilt & piggt, äter väl.\nBlodtryck <140/90>.\n\n"
        "Omvårdnad\n- Rollator\n- Nattbelysning\nMått | Värde\nVikt | 61 kg\n\nNutrition\nRad ett\nRad två"
    )
    assert b"xhtml" not in rec.fragment and b"&lt;p&gt;" not in rec.fragment
    assert rec.times["signatureTime"] == "20241103164500"


def test_composition_unsigned_and_other_attesters_ignored():
    comp = composition(status="preliminary",
                       attester=[{"mode": "professional", "time": "2024-11-03T16:45:00+01:00",
                                  "party": WORLD.staff[2].role_ref}],
                       encounter={"identifier": {"value": "vk-9"}}, date="2024-11-03")
    root = assert_valid([map_comp(comp)])
    assert root.find(f".//{{{C}}}legalAuthenticator") is None
    assert one(root, "careContactId") == "vk-9"
    assert one(root, "documentTime") == "20241103000000"


def test_dispatch_routes_both_resource_types():
    ctx = context(ENCOUNTER)
    both = map_resource(validate(rich_docref()), ctx) + map_resource(validate(composition()), ctx)
    # every note is published in 2.1 and in 3.0 (neither version claims it)
    assert sorted(r.contract for r in both) == ["GetCareDocumentation:2"] * 2 + ["GetCareDocumentation:3"] * 2
    recs = [r for r in both if r.contract == GCD.key]
    assert_valid(recs)


def test_date_filter_sees_every_time(new_store, tmp_path):
    engine = new_store()
    rec = map_doc(rich_docref(), ENCOUNTER)
    with engine.begin() as conn:
        store.publish(conn, "DocumentReference", "note-1", [rec])

    def hits(start: str, end: str) -> int:
        q = store.RecordQuery(contract=GCD.key, source_system=SOURCE, patient_id=PNR,
                              patient_type="1.2.752.129.2.1.3.1", period_start=start, period_end=end)
        with engine.connect() as conn:
            return len(list(store.query(conn, q)))

    assert hits("20240601", "20240601") == 1  # document, author and signature time
    assert hits("20240605", "20240605") == 1  # earliest dissenting opinion
    assert hits("20240602", "20240604") == 0
    assert hits("20230101", "20231231") == 0


# -- rejected input ----------------------------------------------------------------------------------------
SIGNED = {"authenticator": WORLD.staff[0].role_ref,
          "extension": [{"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-06-01T12:00:00+02:00"}]}

BAD_DOCREFS = {
    "no note code": (docref(type={"text": "Besök"}), "type"),
    "unknown note code": (docref(type=note_type("epi")), "type.coding"),
    "no type": (docref(type=None), "type"),
    "no date": (docref(date=None), "date"),
    "no author": (docref(author=None), "author"),
    "organisation author only": (docref(author=[{"reference": "Organization/ve-hemtjanst"}]), "author"),
    "no subject": (docref(subject=None), "subject"),
    "authenticator without time": (docref(authenticator=WORLD.staff[0].role_ref), "extension(signature-time)"),
    "time without authenticator": (docref(extension=SIGNED["extension"]), "authenticator"),
    "signed preliminary": (docref(docStatus="preliminary", **SIGNED), "docStatus"),
    "superseded": (docref(status="superseded"), "status"),
    "docStatus entered-in-error": (docref(docStatus="entered-in-error"), "docStatus"),
    "empty text": (docref(content=[{"attachment": {"contentType": "text/plain", "data": b64(" \n\t ")}}]),
                   "content.attachment.data"),
    "bad charset": (docref(content=[{"attachment": {"contentType": "text/plain; charset=x-nonsense",
                                                    "data": b64("hej")}}]), "content.attachment.data"),
    "not utf-8": (docref(content=[{"attachment": {"contentType": "text/plain", "data": b64(b"\xff\xfe\xfa")}}]),
                  "content.attachment.data"),
    "media type not in contract": (docref(content=[{"attachment": {"contentType": "application/zip",
                                                                   "data": b64(b"PK")}}]),
                                   "content.attachment.contentType"),
    "no content type": (docref(content=[{"attachment": {"data": b64("hej")}}]), "content.attachment.contentType"),
    "attachment without data or url": (docref(content=[{"attachment": {"contentType": "image/png",
                                                                       "title": "x"}}]),
                                       "content.attachment"),
    "dissent without opinion": (docref(extension=[dissent(opinion=None)]),
                                "extension(dissenting-opinion).opinion"),
    "dissent without time": (docref(extension=[dissent(authorTime=None)]),
                             "extension(dissenting-opinion).authorTime"),
    "dissent without name": (docref(extension=[dissent(personName={"valueString": "  "})]),
                             "extension(dissenting-opinion).personName"),
    "dissent bad person id": (docref(extension=[dissent(personId={"valueIdentifier": {
        "system": PNR_SYSTEM, "value": "1912121212"}})]), "extension(dissenting-opinion).personId.value"),
    "dissent unknown person system": (docref(extension=[dissent(personId={"valueIdentifier": {
        "system": "http://example.org/ids", "value": PNR}})]), "extension(dissenting-opinion).personId"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCREFS))
def test_bad_document_reference_is_rejected(case):
    raw, field = BAD_DOCREFS[case]
    with pytest.raises(MappingError) as err:
        map_doc(raw)
    assert err.value.field == field
    assert PNR not in str(err.value) and "19121212" not in str(err.value)


BAD_COMPOSITIONS = {
    "legal attester without time": (composition(attester=[{"mode": "legal", "party": WORLD.staff[2].role_ref}]),
                                    "attester.time"),
    "legal attester without party": (composition(attester=[{"mode": "legal", "time": "2024-11-03"}]),
                                     "attester.party"),
    "signed preliminary": (composition(status="preliminary"), "status"),
    "no narrative": (composition(section=[{"title": "Tom", "entry": [{"reference": "Observation/x"}]}]),
                     "section.text"),
    "broken narrative": (composition(section=[{"text": {"status": "generated", "div": "<div>"}}]),
                         "section.text.div"),
    "unknown note code": (composition(type=note_type("xyz")), "type.coding"),
}


@pytest.mark.parametrize("case", sorted(BAD_COMPOSITIONS))
def test_bad_composition_is_rejected(case):
    raw, field = BAD_COMPOSITIONS[case]
    with pytest.raises(MappingError) as err:
        map_comp(raw)
    assert err.value.field == field
    assert "194004019818" not in str(err.value)


def test_unknown_patient_identifier_not_in_error():
    raw = docref(subject={"identifier": {"system": "http://example.org/x", "value": PNR}})
    with pytest.raises(MappingError) as err:
        map_doc(raw)
    assert PNR not in str(err.value)


# -- demo data -------------------------------------------------------------------------------------------------
def demo_resources(patient) -> list[dict]:
    return demo.resources(WORLD, patient, random.Random(f"test-{patient.id}"))


def test_demo_is_deterministic():
    p = WORLD.patients[0]
    assert demo_resources(p) == demo_resources(p)


@pytest.mark.parametrize("patient", WORLD.patients, ids=lambda p: p.id)
def test_demo_patient_maps_and_is_valid(patient):
    raws = demo_resources(patient)
    models = [validate(copy.deepcopy(r)) for r in raws]
    ctx = context()
    for m in models:
        if m.get_resource_type() in SUPPORTING_TYPES:
            ctx.add(m)
    recs = [rec for m in models if m.get_resource_type() not in SUPPORTING_TYPES for rec in map_resource(m, ctx)
            if rec.contract == GCD.key]  # (3.0 renders the same notes: test_care_documentation_v3.py)
    root = assert_valid(recs)
    assert {el.text for el in root.iter(f"{{{C}}}clinicalDocumentNoteCode")} == {
        "utr", "atb", "sam", "sao", "ins", "slu", "auf", "sva", "bes"}
    assert {el.text for el in root.iter(f"{{{C}}}healthcareProfessionalCareUnitHSAId")} == {
        HOME.hsa_id, HOUSING.hsa_id}
    assert root.find(f".//{{{C}}}multimediaEntry/{{{C}}}value") is not None
    assert root.find(f".//{{{C}}}dissentintOpinion") is not None
    assert root.find(f".//{{{C}}}careContactId") is not None
    assert "false" in {el.text for el in root.iter(f"{{{C}}}approvedForPatient")}
    assert len(root.findall(f".//{{{C}}}legalAuthenticator")) == len(recs) - 1  # one unsigned note
    texts = " ".join(el.text for el in root.iter(f"{{{C}}}clinicalDocumentNoteText"))
    assert "<" in texts and "&" in texts and ">" in texts and "å" in texts and "ö" in texts
    assert {r["resourceType"] for r in raws} >= {"DocumentReference", "Composition"}
    for r in raws:
        if r["resourceType"] not in SUPPORTING_TYPES:
            assert r["meta"]["source"] == WORLD.meta["source"]
            assert r["subject"] == patient.ref


def test_demo_ingests_without_rejections(new_store, tmp_path):
    files = [tmp_path / "00-support.json"]
    files[0].write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection",
                                       "entry": [{"resource": r} for r in support()]}))
    expected = 0
    for p in WORLD.patients:
        raws = demo_resources(p)
        expected += sum(1 for r in raws if r["resourceType"] not in SUPPORTING_TYPES)
        path = tmp_path / f"{p.id}.json"
        path.write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection",
                                       "entry": [{"resource": r} for r in raws]}))
        files.append(path)
    engine = new_store()
    report = ingest(engine, files)
    assert report.rejected == []
    assert report.published[GCD.key] == expected
    for p in WORLD.patients:
        q = store.RecordQuery(contract=GCD.key, source_system=SOURCE, patient_id=p.number,
                              patient_type=("1.2.752.129.2.1.3.1" if p.system == PNR_SYSTEM
                                            else "1.2.752.129.2.1.3.3"))
        with engine.connect() as conn:
            fragments = list(store.query(conn, q))
        assert len(fragments) == 10
        root = response([Record(GCD.name, None, f) for f in fragments])  # type: ignore[arg-type]
        assert schema().validate(root), schema().error_log
        assert_schematron(root)
