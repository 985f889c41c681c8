"""GetFunctionalStatus 2.0: FHIR Condition / Observation -> functionalStatusAssessment records."""

from __future__ import annotations

import copy
import random
import uuid
from pathlib import Path

import orjson
import pytest
from lxml import etree
from sqlalchemy import select

from adapter.demo import functional_status as demo
from adapter.demo.generate import organisation, patient_resource
from adapter.demo.world import HSA_SYSTEM, World, default_world
from adapter.ingest import ingest, validate
from adapter.mapping import dispatch, profile
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.fhir_to_rivta import functional_status as fs
from adapter.rivta import rules
from adapter.rivta.contracts import GET_FUNCTIONAL_STATUS as GFS
from adapter.store import records as store
from adapter.store.tables import record_days
from adapter.store.tables import records as records_table
from tests.samples import REFERENCE, official_schema

ROOT = Path(__file__).resolve().parents[2]
XSD = (
    ROOT / "../shared/reference/rivta/GetFunctionalStatus/2.0/interactions/GetFunctionalStatusInteraction"
    / "GetFunctionalStatusResponder_2.0.xsd"
)
C = GFS.core_ns
R = GFS.responder_ns
NS = {"c": C, "r": R}
PNR = "191212121212"
ICF_OID = "1.2.752.116.1.1.3"
AC = profile.ASSESSMENT_CATEGORY
ICF = "http://hl7.org/fhir/sid/icf"
LA = {"coding": [{"system": profile.PARTICIPATION_TYPE, "code": "LA"}]}
SPECIAL = "Tål stående <5 min & behöver stöd (>2 ggr/dag), åäö ÅÄÖ"

WORLD = default_world()
UNIT, HOUSING = WORLD.units
ASA = WORLD.staff[0]  # nurse, home care
MARIA = WORLD.staff[2]  # occupational therapist, special housing


# -- fixtures and helpers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    assert XSD.resolve() == next((REFERENCE / "rivta/GetFunctionalStatus/2.0").rglob("*Responder_2.0.xsd"))
    return official_schema(GFS)


def supporting(world: World) -> list[dict]:
    return organisation(world) + [patient_resource(p) for p in world.patients]


@pytest.fixture()
def ctx() -> Context:
    c = Context()
    for raw in supporting(WORLD):
        c.add(validate(raw))
    return c


def base(rtype: str, rid: str = "fs-1", **extra) -> dict:
    res = {
        "resourceType": rtype,
        "id": rid,
        "meta": WORLD.meta,
        "identifier": [{"value": f"DOC-{rid}"}],
        "subject": {"reference": "Patient/pat-1"},
    }
    res.update(extra)
    return res


def padl_observation(**extra) -> dict:
    res = base(
        "Observation",
        status="final",
        category=[{"coding": [{"system": AC, "code": "pad-pad"}]}],
        code={"text": "PADL-bedömning"},
        effectiveDateTime="2024-06-10T08:30:00Z",
        issued="2024-06-10T12:00:00+02:00",
        performer=[ASA.role_ref],
        component=[{"code": {"text": "Förflyttning"}, "valueString": "Går med rollator."}],
    )
    res.update(extra)
    return res


def icf_condition(**extra) -> dict:
    res = base(
        "Condition",
        category=[{"coding": [{"system": AC, "code": "fun-fun"}]}],
        code={"coding": [{"system": ICF, "code": "b230", "display": "Hörselfunktioner"}]},
        recordedDate="2024-02-01T10:00:00+01:00",
        recorder=MARIA.role_ref,
        extension=[{"url": profile.CONDITION_ASSERTED_DATE, "valueDateTime": "2024-01-31T09:15:00+01:00"}],
    )
    res.update(extra)
    return res


def map_raw(raw: dict, ctx: Context):
    raw = {k: v for k, v in raw.items() if v is not None}
    return dispatch.map_resource(validate(raw), ctx)


def respond(fragments: list[bytes]) -> etree._Element:
    resp = etree.Element(f"{{{R}}}{GFS.response_element}", nsmap={None: R, "c": C})
    for frag in fragments:
        resp.append(etree.fromstring(frag))
    result_ns, child_ns = GFS.result_ns
    result = etree.SubElement(resp, f"{{{result_ns}}}result")
    etree.SubElement(result, f"{{{child_ns}}}resultCode").text = "OK"
    etree.SubElement(result, f"{{{child_ns}}}logId").text = str(uuid.uuid4())
    return etree.fromstring(etree.tostring(resp))  # reparse: the answer as a consumer sees it


def assert_valid(schema: etree.XMLSchema, fragments: list[bytes]) -> etree._Element:
    doc = respond(fragments)
    assert schema.validate(doc), schema.error_log.filter_from_errors()
    assert_rules(doc)
    assert rules.check_answer(doc, GFS) == []
    return doc


def assert_rules(doc: etree._Element) -> None:
    """What the certification schematron checks, as far as this contract goes."""
    for el in doc.iter():
        children = list(el)
        if not children:
            assert el.text is not None and el.text.strip(), f"empty element {el.tag}"
    cvs = "//c:typeOfAssessment | //c:disabilityAssessment | //c:healthcareProfessionalRoleCode"
    for cv in doc.xpath(cvs, namespaces=NS):
        names = {etree.QName(ch).localname for ch in cv}
        if "originalText" in names:
            assert names == {"originalText"}, names
        else:
            assert {"code", "codeSystem", "displayName"} <= names, names
    assert not doc.xpath("//c:codeSystemName | //c:codeSystemVersion", namespaces=NS)
    assert not doc.xpath("//c:documentTitle | //c:nullified | //c:nullifiedReason", namespaces=NS)
    ids = doc.xpath("//c:functionalStatusAssessmentHeader/c:documentId/text()", namespaces=NS)
    assert len(ids) == len(set(ids))
    for body in doc.xpath("//c:functionalStatusAssessmentBody", namespaces=NS):
        category = body.findtext(f"{{{C}}}assessmentCategory")
        assert category in ("pad-pad", "fun-fun")
        if category == "fun-fun":
            assert body.find(f"{{{C}}}comment") is None and body.find(f"{{{C}}}padl") is None
        else:
            assert body.find(f"{{{C}}}disability") is None
            kinds = body.xpath("c:padl/c:typeOfAssessment/c:originalText/text()", namespaces=NS)
            assert set(kinds) <= set(fs.PADL_ACTIVITIES) and len(kinds) == len(set(kinds))
        header = body.getparent().find(f"{{{C}}}functionalStatusAssessmentHeader")
        assert header.find(f"{{{C}}}documentTime") is not None  # 1..1 in the TKB


def text(doc: etree._Element, path: str) -> list[str]:
    return doc.xpath(path + "/text()", namespaces=NS)


# -- Observation: PADL ---------------------------------------------------------------------------------
def test_minimal_padl_observation(ctx, schema):
    recs = map_raw(padl_observation(), ctx)
    assert len(recs) == 1
    rec = recs[0]
    assert rec.contract == "GetFunctionalStatus:2" and rec.category == "pad-pad"
    assert rec.times == {"documentTime": "20240610103000"}  # 08:30Z is 10:30 Swedish summer time
    doc = assert_valid(schema, [rec.fragment])
    assert text(doc, "//c:documentTime") == ["20240610103000"]
    assert text(doc, "//c:authorTime") == ["20240610120000"]
    assert text(doc, "//c:padl/c:typeOfAssessment/c:originalText") == ["förflyttning"]
    assert text(doc, "//c:padl/c:assessment") == ["Går med rollator."]
    assert text(doc, "//c:approvedForPatient") == ["true"]
    assert not doc.xpath("//c:legalAuthenticator | //c:careContactId | //c:body/c:comment", namespaces=NS)


def test_rich_padl_observation_all_five_activities(ctx, schema):
    raw = padl_observation(
        component=[
            {"code": {"coding": [{"system": profile.PADL_ACTIVITY, "code": "personlig-hygien"}]},
             "valueString": SPECIAL},
            {"code": {"coding": [{"system": ICF, "code": "d540", "display": "Att klä sig"}]},
             "valueCodeableConcept": {"text": "Behöver hjälp med strumpor."}},
            {"code": {"text": "Förflyttning"}, "valueString": "Taklyft, två personal."},
            {"code": {"coding": [{"system": "urn:x:lokal", "code": "T", "display": "Toalettbesök"}]},
             "valueString": "Bäcken nattetid."},
            {"code": {"text": "FÖDOINTAG"}, "valueCodeableConcept": {"coding": [{"display": "Matas"}]}},
        ],
        valueString="Sammanfattning: stort omvårdnadsbehov.",
        note=[{"text": "Bedömt tillsammans med anhörig & kontaktperson."}],
        encounter={"identifier": {"value": "VK-123"}},
        extension=[{"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-06-11T09:00:00+02:00"}],
        performer=[MARIA.role_ref, {**ASA.role_ref, "extension": [
            {"url": profile.PERFORMER_FUNCTION, "valueCodeableConcept": LA}]}],
        meta={**WORLD.meta, "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                          "code": "NOPATIENT"}]},
    )
    doc = assert_valid(schema, [r.fragment for r in map_raw(raw, ctx)])
    assert text(doc, "//c:padl/c:typeOfAssessment/c:originalText") == list(fs.PADL_ACTIVITIES)
    assert text(doc, "//c:padl/c:assessment") == [
        SPECIAL, "Behöver hjälp med strumpor.", "Taklyft, två personal.", "Bäcken nattetid.", "Matas",
    ]
    assert text(doc, "//c:functionalStatusAssessmentBody/c:comment") == [
        "Sammanfattning: stort omvårdnadsbehov.\nBedömt tillsammans med anhörig & kontaktperson."
    ]
    assert text(doc, "//c:approvedForPatient") == ["false"]
    assert text(doc, "//c:careContactId") == ["VK-123"]
    # author: the occupational therapist; signer: the nurse marked LA
    assert text(doc, "//c:healthcareProfessionalHSAId") == [MARIA.hsa_id]
    assert text(doc, "//c:healthcareProfessionalName") == ["Maria Ek"]
    assert text(doc, "//c:healthcareProfessionalRoleCode/c:code") == ["322010"]
    assert text(doc, "//c:healthcareProfessionalCareUnitHSAId") == [HOUSING.hsa_id]
    assert text(doc, "//c:healthcareProfessionalCareGiverHSAId") == [WORLD.care_giver.hsa_id]
    assert text(doc, "//c:orgUnitName") == [HOUSING.name]
    assert text(doc, "//c:legalAuthenticator/c:signatureTime") == ["20240611090000"]
    assert text(doc, "//c:legalAuthenticatorHSAId") == [ASA.hsa_id]
    assert text(doc, "//c:legalAuthenticatorName") == ["Åsa Öberg"]
    assert text(doc, "//c:documentId") == ["DOC-fs-1"]
    assert text(doc, "//c:sourceSystemHSAId") == [WORLD.source_system]
    assert text(doc, "//c:patientId/c:id") == [PNR]
    assert text(doc, "//c:patientId/c:type") == ["1.2.752.129.2.1.3.1"]
    # the serialised bytes escape the special characters, and they parse back unchanged
    assert b"&lt;5 min &amp; beh" in etree.tostring(doc)


def test_padl_observation_comment_only_and_issued_fallback(ctx, schema):
    raw = padl_observation(component=None, note=[{"text": "Ingen förändring sedan förra bedömningen."}])
    del raw["issued"]
    recs = map_raw(raw, ctx)
    doc = assert_valid(schema, [recs[0].fragment])
    assert not doc.xpath("//c:padl", namespaces=NS)
    assert text(doc, "//c:authorTime") == text(doc, "//c:documentTime") == ["20240610103000"]


def test_signing_author_is_single_la_performer(ctx, schema):
    raw = padl_observation(
        performer=[{**ASA.role_ref, "extension": [{"url": profile.PERFORMER_FUNCTION,
                                                   "valueCodeableConcept": LA}]}],
        extension=[{"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-06-10T15:00:00+02:00"}],
    )
    doc = assert_valid(schema, [map_raw(raw, ctx)[0].fragment])
    assert text(doc, "//c:healthcareProfessionalHSAId") == [ASA.hsa_id]
    assert text(doc, "//c:legalAuthenticatorHSAId") == [ASA.hsa_id]


def test_effective_period_start_is_document_time(ctx, schema):
    raw = padl_observation(effectivePeriod={"start": "2024-12-02T13:00:00+01:00",
                                            "end": "2024-12-02T14:00:00+01:00"})
    del raw["effectiveDateTime"]
    rec = map_raw(raw, ctx)[0]
    assert rec.times["documentTime"] == "20241202130000"
    assert_valid(schema, [rec.fragment])


# -- Observation: ICF ----------------------------------------------------------------------------------
def test_icf_observation_without_category_by_code(ctx, schema):
    raw = base(
        "Observation", status="final", effectiveDateTime="2024-03-05T10:00:00+01:00",
        code={"coding": [{"system": "urn:oid:1.2.752.116.1.1.3", "code": "D450.3", "display": "Att gå"}]},
        valueCodeableConcept={"text": "Svår nedsättning"},
        note=[{"text": "20 meter med rollator."}],
        performer=[ASA.role_ref],
    )
    rec = map_raw(raw, ctx)[0]
    assert rec.category == "fun-fun"
    doc = assert_valid(schema, [rec.fragment])
    assert text(doc, "//c:disabilityAssessment/c:code") == ["d450"]  # qualifier dropped
    assert text(doc, "//c:disabilityAssessment/c:codeSystem") == [ICF_OID]
    assert text(doc, "//c:disabilityAssessment/c:displayName") == ["Att gå"]
    assert text(doc, "//c:disability/c:comment") == ["Svår nedsättning\n20 meter med rollator."]
    assert text(doc, "//c:healthcareProfessionalCareUnitHSAId") == [UNIT.hsa_id]


def test_other_observations_carry_nothing(ctx):
    vital = base("Observation", status="final",
                 code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                 effectiveDateTime="2024-03-05T10:00:00+01:00", valueQuantity={"value": 72, "unit": "/min"})
    assert map_raw(vital, ctx) == []


# -- Condition (EHDS-TK) -------------------------------------------------------------------------------
def test_padl_condition_notes(ctx, schema):
    raw = icf_condition(
        category=[{"coding": [{"system": AC, "code": "pad-pad"}]}],
        code={"text": "PADL-bedömning"},
        asserter=ASA.role_ref,
        note=[
            {"text": "Helhetsbedömning: behöver stöd i flera aktiviteter."},
            {"text": "[Personlig hygien]: Duschas av personal.\nKlarar att borsta tänderna själv."},
            {"text": "På- och avklädning: Behöver hjälp med skor.\n[Toalettbesök]: Klarar dagtid."},
            {"text": "Kl 14:30 bedömdes även förflyttning, se separat anteckning."},
        ],
    )
    fun = fs.is_functional_condition(validate(raw))
    assert fun
    rec = map_raw(raw, ctx)[0]
    assert rec.category == "pad-pad"
    assert rec.times == {"documentTime": "20240131091500"}  # assertedDate
    doc = assert_valid(schema, [rec.fragment])
    assert text(doc, "//c:padl/c:typeOfAssessment/c:originalText") == [
        "personlig hygien", "på/avklädning", "toalettbesök"
    ]
    assert text(doc, "//c:padl/c:assessment") == [
        "Duschas av personal.\nKlarar att borsta tänderna själv.", "Behöver hjälp med skor.", "Klarar dagtid."
    ]
    assert text(doc, "//c:functionalStatusAssessmentBody/c:comment") == [
        "Helhetsbedömning: behöver stöd i flera aktiviteter.\n"
        "Kl 14:30 bedömdes även förflyttning, se separat anteckning."
    ]
    # EHDS-TK: a signed Condition's assertedDate is the signature time
    assert text(doc, "//c:legalAuthenticator/c:signatureTime") == ["20240131091500"]
    assert text(doc, "//c:legalAuthenticatorHSAId") == [ASA.hsa_id]
    assert text(doc, "//c:authorTime") == ["20240201100000"]


def test_icf_condition(ctx, schema):
    raw = icf_condition(
        code={"coding": [{"system": "urn:oid:1.2.752.116.1.1.3.3.1", "code": "b1440.2"}],
              "text": "Korttidsminne"},
        note=[{"text": SPECIAL}],
        encounter={"reference": "Encounter/enc-1"},
    )
    ctx.add(validate({"resourceType": "Encounter", "id": "enc-1", "status": "finished",
                      "class": {"code": "HH"}, "identifier": [{"value": "VK-9"}]}))
    rec = map_raw(raw, ctx)[0]
    assert rec.category == "fun-fun"
    doc = assert_valid(schema, [rec.fragment])
    assert text(doc, "//c:disabilityAssessment/c:code") == ["b1440"]
    assert text(doc, "//c:disabilityAssessment/c:codeSystem") == [ICF_OID]
    assert text(doc, "//c:disabilityAssessment/c:displayName") == ["Korttidsminne"]  # from code.text
    assert text(doc, "//c:disability/c:comment") == [SPECIAL]
    assert text(doc, "//c:careContactId") == ["VK-9"]
    assert not doc.xpath("//c:legalAuthenticator", namespaces=NS)  # no asserter: unsigned


def test_icf_condition_without_display_uses_code(ctx, schema):
    raw = icf_condition(code={"coding": [{"system": ICF, "code": "b280"}]})
    doc = assert_valid(schema, [map_raw(raw, ctx)[0].fragment])
    assert text(doc, "//c:disabilityAssessment/c:displayName") == ["b280"]


def test_disability_without_icf_is_original_text(ctx, schema):
    function = "Nedsatt förmåga att använda trygghetslarm"
    raw = icf_condition(code={"text": function})
    doc = assert_valid(schema, [map_raw(raw, ctx)[0].fragment])
    assert text(doc, "//c:disabilityAssessment/c:originalText") == [function]
    assert not doc.xpath("//c:disabilityAssessment/c:code", namespaces=NS)


def test_condition_document_time_fallbacks(ctx):
    raw = icf_condition(extension=None, onsetDateTime="2023-11-20")
    assert map_raw(raw, ctx)[0].times["documentTime"] == "20231120000000"
    raw = icf_condition(extension=None)
    assert map_raw(raw, ctx)[0].times["documentTime"] == "20240201100000"  # recordedDate


def test_condition_signature_time_extension(ctx, schema):
    ext = [
        {"url": profile.CONDITION_ASSERTED_DATE, "valueDateTime": "2024-01-31T09:15:00+01:00"},
        {"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-02-03T16:45:00+01:00"},
    ]
    rec = map_raw(icf_condition(extension=ext), ctx)[0]  # no asserter: the recorder signs
    doc = assert_valid(schema, [rec.fragment])
    assert rec.times["documentTime"] == "20240131091500"
    assert text(doc, "//c:legalAuthenticator/c:signatureTime") == ["20240203164500"]
    assert text(doc, "//c:legalAuthenticatorHSAId") == [MARIA.hsa_id]


def test_provenance_gives_care_unit_and_giver(ctx, schema):
    ctx.add(validate({
        "resourceType": "Provenance", "id": "prov-1", "target": [{"reference": "Condition/fs-1"}],
        "recorded": "2024-02-01T10:00:00+01:00",
        "agent": [
            {"type": {"coding": [{"code": "author"}]},
             "who": {"identifier": {"system": HSA_SYSTEM, "value": "SE-X1"}}},
            {"type": {"coding": [{"code": "custodian"}]},
             "who": {"identifier": {"system": HSA_SYSTEM, "value": "SE-VG9"}}},
        ],
    }))
    doc = assert_valid(schema, [map_raw(icf_condition(), ctx)[0].fragment])
    assert text(doc, "//c:healthcareProfessionalCareUnitHSAId") == ["SE-X1"]
    assert text(doc, "//c:healthcareProfessionalCareGiverHSAId") == ["SE-VG9"]


def test_which_conditions_are_functional():
    diagnosis = validate(base("Condition", code={"coding": [
        {"system": "http://hl7.org/fhir/sid/icd-10", "code": "I63", "display": "Cerebral infarkt"}]}))
    assert not fs.is_functional_condition(diagnosis)
    assert fs.is_functional_condition(validate(icf_condition(category=None)))
    assert fs.is_functional_condition(validate(icf_condition(code=None)))


# -- rejections ----------------------------------------------------------------------------------------
def _components(*names: str) -> list[dict]:
    return [{"code": {"text": n}, "valueString": f"{PNR} bedömning"} for n in names]


REJECTED = [
    ("twice", padl_observation(component=_components("Förflyttning", "förflyttning")), "component"),
    ("iadl", padl_observation(component=_components("Förflyttning", "Städning")), "component[1].code"),
    ("no value", padl_observation(component=[{"code": {"text": "Födointag"}}]), "component[0].value[x]"),
    ("empty padl", padl_observation(component=None), "component"),
    ("no time", {**padl_observation(), "effectiveDateTime": None, "issued": None}, "effective[x]"),
    ("cancelled", padl_observation(status="cancelled"), "status"),
    ("both", padl_observation(category=[{"coding": [{"system": AC, "code": "pad-pad"}, {"system": AC,
                                                                                     "code": "fun-fun"}]}]),
     "category"),
    ("unknown category", padl_observation(category=[{"coding": [{"system": AC, "code": "xyz"}]}]),
     "category"),
    ("fun with components", padl_observation(category=[{"coding": [{"system": AC, "code": "fun-fun"}]}]),
     "component"),
    ("bracketed iadl", icf_condition(category=[{"coding": [{"system": AC, "code": "pad-pad"}]}],
                                     note=[{"text": f"[Matlagning]: {PNR}"}]), "note[0].text"),
    ("label only", icf_condition(category=[{"coding": [{"system": AC, "code": "pad-pad"}]}],
                                 note=[{"text": "[Födointag]:"}]), "note[0].text"),
    ("bad icf", icf_condition(code={"coding": [{"system": ICF, "code": PNR}]}),
     "code.coding"),
    ("no function", icf_condition(code=None), "code"),
    ("refuted", icf_condition(verificationStatus={"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}),
     "verificationStatus"),
    ("no recordedDate", icf_condition(recordedDate=None), "recordedDate"),
    ("no patient id", icf_condition(subject={"display": PNR}), "subject"),
]


@pytest.mark.parametrize(("raw", "field"), [(r, f) for _, r, f in REJECTED], ids=[n for n, _, _ in REJECTED])
def test_rejected(ctx, raw, field):
    raw = copy.deepcopy(raw)
    with pytest.raises(MappingError) as err:
        map_raw(raw, ctx)
    assert err.value.field == field
    assert PNR not in str(err.value)
    assert "Tolvan" not in str(err.value)


# -- demo data -----------------------------------------------------------------------------------------
def test_demo_data_ingests_and_is_valid(new_store, tmp_path, schema):
    generated = {p.id: demo.resources(WORLD, p, random.Random(7)) for p in WORLD.patients}
    again = demo.resources(WORLD, WORLD.patients[0], random.Random(7))
    assert again == generated["pat-1"]  # deterministic given the rng
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": r} for r in supporting(WORLD) + [r for rs in generated.values() for r in rs]
    ]}
    path = tmp_path / "demo.json"
    path.write_bytes(orjson.dumps(bundle))
    engine = new_store()
    report = ingest(engine, [path])
    assert report.rejected == []
    clinical = [r for rs in generated.values() for r in rs if r["resourceType"] != "Provenance"]
    assert report.published["GetFunctionalStatus:2"] == len(clinical)

    with engine.connect() as conn:
        mine = records_table.select().where(records_table.c.contract == "GetFunctionalStatus:2")
        rows = conn.execute(mine).all()
        assert {r.category for r in rows} == {"pad-pad", "fun-fun"}
        assert {r.care_unit for r in rows} == {u.hsa_id for u in WORLD.units}
        assert any(not r.approved_for_patient for r in rows)
        fragments = []
        for p in WORLD.patients:
            q = store.RecordQuery("GetFunctionalStatus:2", WORLD.source_system, p.number,
                                  "1.2.752.129.2.1.3.3" if p.id == "pat-6" else "1.2.752.129.2.1.3.1")
            found = list(store.query(conn, q))
            assert len(found) == len([r for r in generated[p.id] if r["resourceType"] != "Provenance"])
            fragments += found
            # the date filter looks at documentTime
            pks = [r.pk for r in rows if r.patient_id == p.number]
            days = sorted(conn.execute(select(record_days.c.day).where(record_days.c.record_pk.in_(pks))).scalars())
            narrow = store.RecordQuery(q.contract, q.source_system, q.patient_id, q.patient_type,
                                       period_start=days[0], period_end=days[0])
            assert len(list(store.query(conn, narrow))) == days.count(days[0])
    doc = assert_valid(schema, fragments)
    kinds = text(doc, "//c:padl/c:typeOfAssessment/c:originalText")
    assert set(kinds) == set(fs.PADL_ACTIVITIES)
    assert doc.xpath("//c:functionalStatusAssessmentBody[count(c:padl) = 5]", namespaces=NS)
    assert text(doc, "//c:disabilityAssessment/c:code")
    assert text(doc, "//c:disabilityAssessment/c:originalText")
    assert text(doc, "//c:legalAuthenticator/c:signatureTime")
    assert any("<" in t and "&" in t and ">" in t for t in text(doc, "//c:padl/c:assessment"))
    assert text(doc, "//c:approvedForPatient[. = 'false']")
