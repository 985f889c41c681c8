"""GetAlertInformation 2.0: FHIR AllergyIntolerance and Flag -> alertInformation records, checked against the
OFFICIAL XSD and the schematron-style rules, and back to FHIR (mappings/GetAlertInformation.md)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from lxml import etree

from adapter.demo import alert_information as demo
from adapter.demo.generate import organisation, patient_resource
from adapter.demo.world import default_world
from adapter.ingest import validate
from adapter.mapping import profile
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.fhir_to_rivta import alert_information as alert
from adapter.mapping.rivta_to_fhir import alert_information as back
from adapter.rivta import rules
from adapter.rivta.contracts import GET_ALERT_INFORMATION as CONTRACT

REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference"
XSD = (REFERENCE / "rivta/GetAlertInformation/2.0/interactions/GetAlertInformationInteraction/"
       "GetAlertInformationResponder_2.0.xsd")
NS = {"c": CONTRACT.core_ns}
WORLD = default_world()
PATIENT = WORLD.patients[0]
NURSE = WORLD.staff[0]  # Åsa, home care
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    if not XSD.is_file():
        pytest.skip("reference pack not present")
    return etree.XMLSchema(etree.parse(str(XSD.resolve())))


@pytest.fixture
def ctx() -> Context:
    c = Context()
    for raw in [*organisation(WORLD), *(patient_resource(p) for p in WORLD.patients)]:
        c.add(validate(raw))
    return c


# -- helpers -------------------------------------------------------------------------------------------------
def map_one(raw: dict, ctx: Context) -> list:
    res = validate(raw)
    ctx.add(res)
    with ctx.mapping(res):
        if res.get_resource_type() == "AllergyIntolerance":
            return alert.map_allergy_intolerance(res, ctx)
        return alert.map_flag(res, ctx)


def response(fragments: list[bytes]) -> etree._Element:
    root = etree.Element(f"{{{CONTRACT.responder_ns}}}{CONTRACT.response_element}",
                         nsmap={None: CONTRACT.responder_ns})
    for frag in fragments:
        root.append(etree.fromstring(frag))
    result = etree.SubElement(root, f"{{{CONTRACT.responder_ns}}}result")
    etree.SubElement(result, f"{{{CONTRACT.core_ns}}}resultCode").text = "OK"
    etree.SubElement(result, f"{{{CONTRACT.core_ns}}}logId").text = "6f1c2b9e-0c1d-4a8e-9d1e-3b0f6a2f7c11"
    return root


def assert_valid(schema: etree.XMLSchema, records: list) -> etree._Element:
    doc = response([r.fragment for r in records])
    assert schema.validate(doc), schema.error_log
    assert rules.find_problems(doc, CONTRACT) == []
    for rec in rules.records(doc, CONTRACT):
        assert back.rules(rec, CONTRACT) == []
    return doc


def body(rec) -> etree._Element:
    return etree.fromstring(rec.fragment).find(f"c:{CONTRACT.body_element}", NS)


def txt(el: etree._Element, path: str) -> str | None:
    return el.findtext(path, namespaces=NS)


def allergy(**overrides) -> dict:
    res = {
        "resourceType": "AllergyIntolerance",
        "id": "ai-1",
        "meta": dict(WORLD.meta),
        "clinicalStatus": {"coding": [{"system": alert.ALLERGY_CLINICAL, "code": "active"}]},
        "verificationStatus": {"coding": [{"system": alert.ALLERGY_VERIFICATION, "code": "confirmed"}]},
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"system": ATC, "code": "J01CE02", "display": "Fenoximetylpenicillin"}]},
        "patient": PATIENT.ref,
        "onsetDateTime": "2021-03-04",
        "recordedDate": "2021-03-05T10:20:00+01:00",
        "recorder": NURSE.role_ref,
    }
    res.update(overrides)
    return res


def flag(category: str, code: dict, **overrides) -> dict:
    res = {
        "resourceType": "Flag",
        "id": f"flag-{category}",
        "meta": dict(WORLD.meta),
        "status": "active",
        "category": [{"coding": [{"system": alert.SE_CATEGORY, "code": category}]}],
        "code": code,
        "subject": PATIENT.ref,
        "period": {"start": "2022-05-02T09:00:00+02:00"},
        "author": NURSE.role_ref,
    }
    res.update(overrides)
    return res


# -- FHIR -> RIVTA -----------------------------------------------------------------------------------------------
def test_penicillin_allergy(schema, ctx):
    (rec,) = map_one(allergy(
        extension=[{"url": profile.SIGNATURE_TIME, "valueDateTime": "2021-03-05T14:10:00+01:00"},
                   {"url": alert.ALERT_VERIFIED_TIME, "valueDateTime": "2021-03-05T14:00:00+01:00"}],
        note=[{"text": "Urtikaria <&> andnöd"}],
        encounter={"identifier": {"value": "vk-1"}},
    ), ctx)
    assert_valid(schema, [rec])
    assert rec.contract == CONTRACT.key and rec.category == "upp"
    assert rec.period == ("20210304", None)
    b = body(rec)
    assert txt(b, "c:typeOfAlertInformation/c:code") == "Överkänslighet"
    assert txt(b, "c:typeOfAlertInformation/c:codeSystem") == "1.2.752.129.2.2.2.1"
    assert txt(b, "c:ascertainedDate") == "20210304"
    assert txt(b, "c:verifiedTime") == "20210305140000"
    assert txt(b, "c:validityTimePeriod/c:start") == "20210304000000"
    assert b.find("c:validityTimePeriod/c:end", NS) is None
    assert txt(b, "c:alertInformationComment") == "Urtikaria <&> andnöd"
    hs = b.find("c:hypersensitivity", NS)
    assert txt(hs, "c:typeOfHypersensitivity/c:originalText") == "Läkemedelsöverkänslighet"
    assert txt(hs, "c:degreeOfSeverity/c:originalText") == "Livshotande"
    assert txt(hs, "c:degreeOfCertainty/c:originalText") == "Konstaterad"
    atc = hs.find("c:pharmaceuticalHypersensitivity/c:atcSubstance", NS)
    assert [txt(atc, f"c:{n}") for n in ("code", "codeSystem", "displayName")] == [
        "J01CE02", "1.2.752.129.2.2.3.1.1", "Fenoximetylpenicillin"]
    header = etree.fromstring(rec.fragment).find(f"c:{CONTRACT.header_element}", NS)
    assert txt(header, "c:legalAuthenticator/c:signatureTime") == "20210305141000"
    assert txt(header, "c:accountableHealthcareProfessional/c:authorTime") == "20210305102000"
    assert txt(header, "c:accountableHealthcareProfessional/c:healthcareProfessionalCareUnitHSAId") == \
        WORLD.units[0].hsa_id
    assert txt(header, "c:careContactId") == "vk-1"
    for forbidden in CONTRACT.forbidden:
        assert header.find(f"c:{forbidden}", NS) is None


@pytest.mark.parametrize(("criticality", "severity", "level", "expected"), [
    ("low", "severe", None, "Skadande"),
    ("low", "moderate", None, "Skadande"),
    ("low", "mild", None, "Besvärande"),
    ("low", "mild", "442452003", "Livshotande"),  # the HL7 Sweden criticality level wins
    ("unable-to-assess", None, None, None),
])
def test_degree_of_severity(schema, ctx, criticality, severity, level, expected):
    raw = allergy(criticality=criticality)
    if severity:
        raw["reaction"] = [{"manifestation": [{"text": "Utslag"}], "severity": severity}]
    if level:
        raw["extension"] = [{"url": alert.SE_CRITICALITY, "valueCodeableConcept": {
            "coding": [{"system": alert.SE_CRITICALITY_CS, "code": level}]}}]
    (rec,) = map_one(raw, ctx)
    assert_valid(schema, [rec])
    assert txt(body(rec), "c:hypersensitivity/c:degreeOfSeverity/c:originalText") == expected


@pytest.mark.parametrize(("status", "expected"), [
    ({"coding": [{"system": alert.ALLERGY_VERIFICATION, "code": "unconfirmed"}]}, "Misstänkt"),
    ({"coding": [{"system": alert.ALLERGY_VERIFICATION, "code": "unconfirmed"}], "text": "Trolig"}, "Trolig"),
    ({"coding": [{"system": alert.ALLERGY_VERIFICATION, "code": "confirmed"}]}, "Konstaterad"),
])
def test_degree_of_certainty(schema, ctx, status, expected):
    (rec,) = map_one(allergy(verificationStatus=status), ctx)
    assert_valid(schema, [rec])
    assert txt(body(rec), "c:hypersensitivity/c:degreeOfCertainty/c:originalText") == expected


def test_national_codings_pass_through(schema, ctx):
    (rec,) = map_one(allergy(
        verificationStatus={"coding": [{"system": "urn:oid:1.2.752.129.2.2.3.11", "code": "k",
                                        "display": "Konstaterad"}]},
        extension=[{"url": alert.SE_CRITICALITY, "valueCodeableConcept": {"coding": [
            {"system": "urn:oid:1.2.752.129.2.2.3.3", "code": "1", "display": "Livshotande"}]}}]), ctx)
    assert_valid(schema, [rec])
    hs = body(rec).find("c:hypersensitivity", NS)
    assert txt(hs, "c:degreeOfCertainty/c:code") == "k"
    assert txt(hs, "c:degreeOfSeverity/c:codeSystem") == "1.2.752.129.2.2.3.3"


def test_drug_without_atc_and_product_id(schema, ctx):
    (rec,) = map_one(allergy(criticality="low", code={"coding": [
        {"system": "urn:oid:1.2.752.129.2.1.5.1", "code": "19700101000025", "display": "Kåvepenin 1 g"}],
        "text": "Penicillin V"}, reaction=[{"manifestation": [{"text": "Klåda"}], "severity": "mild"}]), ctx)
    assert_valid(schema, [rec])
    drug = body(rec).find("c:hypersensitivity/c:pharmaceuticalHypersensitivity", NS)
    assert drug.find("c:atcSubstance", NS) is None
    assert txt(drug, "c:nonATCSubstance") == "Penicillin V"
    assert txt(drug, "c:nonATCSubstanceComment") == alert.NON_ATC_COMMENT
    assert txt(drug, "c:pharmaceuticalProductId/c:codeSystem") == "1.2.752.129.2.1.5.1"


def test_life_threatening_drug_hypersensitivity_needs_atc(ctx):
    with pytest.raises(MappingError) as err:
        map_one(allergy(code={"text": "Penicillin"}), ctx)
    assert err.value.field == "code.coding"
    with pytest.raises(MappingError):
        map_one(allergy(code={"coding": [{"system": ATC, "code": "J0", "display": "x"}]}), ctx)


def test_other_hypersensitivity(schema, ctx):
    (rec,) = map_one(allergy(category=["environment"], criticality=None,
                             code={"coding": [{"system": SNOMED, "code": "111088007", "display": "Latex"}]}), ctx)
    assert_valid(schema, [rec])
    hs = body(rec).find("c:hypersensitivity", NS)
    assert hs.find("c:pharmaceuticalHypersensitivity", NS) is None
    assert txt(hs, "c:otherHypersensitivity/c:hypersensitivityAgent") == "Latex"
    assert txt(hs, "c:otherHypersensitivity/c:hypersensitivityAgentCode/c:codeSystem") == "2.16.840.1.113883.6.96"
    assert txt(hs, "c:typeOfHypersensitivity/c:originalText") == "Överkänslighet avs. miljöämne"


def test_hypersensitivity_without_anything_is_refused(ctx):
    with pytest.raises(MappingError) as err:
        map_one(allergy(category=None, criticality=None, verificationStatus=None, code=None), ctx)
    assert err.value.field == "code"


def test_inactive_allergy_is_obsolete(schema, ctx):
    obsolete = {"url": alert.ALERT_OBSOLETE, "extension": [
        {"url": "time", "valueDateTime": "2023-01-15T11:00:00+01:00"}, {"url": "comment", "valueString": "Avskriven"}]}
    inactive = {"coding": [{"system": alert.ALLERGY_CLINICAL, "code": "inactive"}]}
    (rec,) = map_one(allergy(clinicalStatus=inactive, extension=[obsolete]), ctx)
    assert_valid(schema, [rec])
    assert txt(body(rec), "c:obsoleteTime") == "20230115110000"
    assert txt(body(rec), "c:obsoleteComment") == "Avskriven"
    assert rec.period == ("20210304", "20230115")
    (rec,) = map_one(allergy(clinicalStatus=inactive, meta={**WORLD.meta, "lastUpdated": "2024-02-01T10:00:00Z"}),
                     ctx)
    assert txt(body(rec), "c:obsoleteTime") == "20240201110000"
    with pytest.raises(MappingError):
        map_one(allergy(clinicalStatus=inactive), ctx)


@pytest.mark.parametrize(("category", "code", "element", "value_path", "value"), [
    ("A1", {"coding": [{"system": "https://www.icd10.se/", "code": "E27.1", "display": "Primär binjurebarks"}]},
     "seriousDisease", "c:disease/c:code", "E27.1"),
    ("A2", {"coding": [{"system": ATC, "code": "B01AA03", "display": "Warfarin"}], "text": "Waranbehandling"},
     "treatment", "c:pharmaceuticalTreatment/c:code", "B01AA03"),
    ("B1", {"coding": [{"system": SNOMED, "code": "115329001", "display": "MRSA"}]},
     "communicableDisease", "c:communicableDiseaseCode/c:code", "115329001"),
    ("D1", {"text": "Fallrisk, tillsyn vid förflyttning"}, "restrictionOfCare", "c:restrictionOfCareComment",
     "Fallrisk, tillsyn vid förflyttning"),
    ("E1", {"text": "Gammal varning"}, "unstructuredAlertInformation", "c:unstructuredAlertInformationContent",
     "Gammal varning"),
    ("C2", {"coding": [{"system": SNOMED, "code": "373568007", "display": "Klorhexidin"}]},
     "hypersensitivity", "c:otherHypersensitivity/c:hypersensitivityAgent", "Klorhexidin"),
])
def test_flag_kinds(schema, ctx, category, code, element, value_path, value):
    (rec,) = map_one(flag(category, code), ctx)
    assert_valid(schema, [rec])
    b = body(rec)
    assert [etree.QName(c).localname for c in b if etree.QName(c).localname in alert.KINDS] == [element]
    assert txt(b.find(f"c:{element}", NS), value_path) == value
    assert txt(b, "c:typeOfAlertInformation/c:displayName") == alert.ALERT_TYPE[element]
    assert txt(b, "c:ascertainedDate") == "20220502"


def test_flag_details(schema, ctx):
    (rec,) = map_one(flag("B2", {"text": "MRSA"}, period={"start": "2022-05-02", "end": "2023-05-02"},
                          extension=[{"url": alert.ROUTE_OF_TRANSMISSION, "valueCodeableConcept": {"text": "Kontakt"}},
                                     {"url": alert.ALERT_COMMENT, "valueString": "Basala hygienrutiner"},
                                     {"url": alert.RELATED_ALERT, "extension": [
                                         {"url": "relationship", "valueCodeableConcept": {"text": "Ersätter"}},
                                         {"url": "comment", "valueString": "Ny odling"},
                                         {"url": "document", "valueReference": {"reference": "Flag/flag-D1"}},
                                         {"url": "document", "valueIdentifier": {"value": "old-42"}}]}]), ctx)
    assert_valid(schema, [rec])
    b = body(rec)
    assert txt(b, "c:validityTimePeriod/c:end") == "20230502000000"
    assert txt(b, "c:communicableDisease/c:routeOfTransmission/c:originalText") == "Kontakt"
    assert txt(b, "c:alertInformationComment") == "Basala hygienrutiner"
    related = b.find("c:relatedAlertInformation", NS)
    assert [d.text for d in related.findall("c:documentId", NS)] == ["flag-D1", "old-42"]
    assert rec.period == ("20220502", "20230502")


def test_flags_that_are_no_alert_or_carry_an_allergy(ctx):
    assert map_one(flag("X", {"text": "Hund i hemmet"}, id="flag-admin"), ctx) == []
    detail = {"url": alert.FLAG_DETAIL, "valueReference": {"reference": "AllergyIntolerance/ai-1"}}
    assert map_one(flag("C1", {"text": "Penicillin"}, extension=[detail]), ctx) == []
    with pytest.raises(MappingError):
        map_one(flag("A1", {"text": "x"}, period=None), ctx)


def test_demo_resources_all_map(schema, ctx):
    for patient in WORLD.patients:
        raws = demo.resources(WORLD, patient, random.Random(patient.id))
        recs = [r for raw in raws for r in map_one(raw, ctx)]
        assert len(recs) == len(raws)
        assert_valid(schema, recs)


# -- RIVTA -> FHIR -------------------------------------------------------------------------------------------------
def test_back_to_fhir_and_round_trip(schema, ctx):
    raws = demo.resources(WORLD, PATIENT, random.Random(1))
    for raw in raws:
        (rec,) = map_one(raw, ctx)
        resources = back.convert(etree.fromstring(rec.fragment))
        main = resources[0]
        assert main.get_resource_type() == raw["resourceType"]
        assert [r.get_resource_type() for r in resources[1:2]] == ["Provenance"]
        again = Context()
        for r in [*organisation(WORLD), *(patient_resource(p) for p in WORLD.patients)]:
            again.add(validate(r))
        for r in resources[1:]:
            again.add(r)
        data = main.model_dump(mode="json", exclude_none=True)
        data["subject" if data["resourceType"] == "Flag" else "patient"] = PATIENT.ref
        (rec2,) = map_one(data, again)
        b1, b2 = body(rec), body(rec2)
        assert etree.tostring(b1) == etree.tostring(b2), raw["id"]


def test_back_to_fhir_rich_sample():
    sample = Path(__file__).resolve().parents[1] / "contracts/samples/GetAlertInformation_2.0/valid_response_rich.xml"
    doc = etree.parse(str(sample)).getroot()
    recs = rules.records(doc, CONTRACT)
    converted = [back.convert(r)[0] for r in recs]
    assert [r.get_resource_type() for r in converted] == ["AllergyIntolerance"] + ["Flag"] * 5
    allergy_res = converted[0]
    assert allergy_res.criticality == "high"
    assert allergy_res.verificationStatus.coding[0].code == "confirmed"
    assert {c.code for c in allergy_res.code.coding} >= {"J01CE02", "19620101000017"}
    assert allergy_res.clinicalStatus.coding[0].code == "inactive"
    serious, treatment, communicable, restriction, unstructured = converted[1:]
    assert serious.code.coding[0].code == "D68.0" and serious.meta.security[0].code == "NOPATIENT"
    assert treatment.code.text.startswith("Antikoagulantia")
    assert communicable.period.start is not None
    assert restriction.code.text.startswith("Ej HLR")
    assert unstructured.category[0].coding[0].code == "E1"


# -- rules ---------------------------------------------------------------------------------------------------------
def test_rules_catch_what_a_schema_cannot(ctx):
    (rec,) = map_one(flag("A1", {"text": "Addison"}), ctx)
    el = etree.fromstring(rec.fragment)
    b = el.find(f"c:{CONTRACT.body_element}", NS)
    assert back.rules(el, CONTRACT) == []
    extra = etree.SubElement(b, f"{{{CONTRACT.core_ns}}}restrictionOfCare")
    etree.SubElement(extra, f"{{{CONTRACT.core_ns}}}restrictionOfCareComment").text = "x"
    assert any("exactly one" in p for p in back.rules(el, CONTRACT))
    b.remove(extra)
    b.find("c:typeOfAlertInformation/c:code", NS).text = "Vårdbegränsning"
    b.find("c:typeOfAlertInformation/c:displayName", NS).text = "Vårdbegränsning"
    assert any("does not match" in p for p in back.rules(el, CONTRACT))
    b.find("c:typeOfAlertInformation/c:code", NS).text = "upp-uas-sjd"
    assert back.rules(el, CONTRACT) == []
    b.find("c:typeOfAlertInformation/c:code", NS).text = "annat"
    b.find("c:typeOfAlertInformation/c:displayName", NS).text = "Annat"
    assert any("Regel 2" in p for p in back.rules(el, CONTRACT))
    b.find("c:validityTimePeriod", NS).remove(b.find("c:validityTimePeriod/c:start", NS))
    assert any("validityTimePeriod/start" in p for p in back.rules(el, CONTRACT))
    assert all("Addison" not in p for p in back.rules(el, CONTRACT))


def test_rules_on_drug_hypersensitivity(ctx):
    (rec,) = map_one(allergy(), ctx)
    el = etree.fromstring(rec.fragment)
    drug = el.find(f"c:{CONTRACT.body_element}/c:hypersensitivity/c:pharmaceuticalHypersensitivity", NS)
    drug.remove(drug.find("c:atcSubstance", NS))
    problems = back.rules(el, CONTRACT)
    assert any("nonATCSubstanceComment" in p for p in problems)
    assert any("life-threatening" in p for p in problems)
