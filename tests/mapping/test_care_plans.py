"""GetCarePlans 2.0: FHIR CarePlan -> carePlan records, checked against the official XSD and the
schematron-style rules (mappings/GetCarePlans.md)."""

from __future__ import annotations

import base64
import copy
import html
import random
from pathlib import Path

import orjson
import pytest
from lxml import etree

from adapter.demo import care_plans as demo
from adapter.demo.world import HSA_SYSTEM, ROLE_SYSTEM, World, default_world
from adapter.ingest import ingest, validate
from adapter.mapping import profile
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.fhir_to_rivta.care_plans import map_care_plan
from adapter.rivta import rules
from adapter.rivta.contracts import GET_CARE_PLANS as CONTRACT
from adapter.store import records as store

REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference"
XSD = REFERENCE / "rivta/GetCarePlans/2.0/interactions/GetCarePlansInteraction/GetCarePlansResponder_2.0.xsd"
CORE = CONTRACT.core_ns
Q = f"{{{CORE}}}"
PNR = "191212121212"
TKB_MEDIA_TYPES = {"text/plain", "text/html", "image/png", "image/jpeg", "image/tiff", "application/pdf"}
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}
WORLD = default_world()
HOME_CARE, HOUSING = WORLD.units
ASA = WORLD.staff[0]  # nurse at home care


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD.resolve())))


# -- building input -----------------------------------------------------------------------------
def supporting(world: World) -> list[dict]:
    giver = world.care_giver
    out: list[dict] = [{"resourceType": "Organization", "id": giver.id, "name": giver.name,
                        "identifier": [{"system": HSA_SYSTEM, "value": giver.hsa_id}]}]
    for unit in world.units:
        out.append({"resourceType": "Organization", "id": unit.id, "name": unit.name,
                    "identifier": [{"system": HSA_SYSTEM, "value": unit.hsa_id}],
                    "partOf": {"reference": f"Organization/{giver.id}"}})
    for s in world.staff:
        out.append({"resourceType": "Practitioner", "id": s.id,
                    "identifier": [{"system": HSA_SYSTEM, "value": s.hsa_id}],
                    "name": [{"given": [s.given], "family": s.family}]})
        out.append({"resourceType": "PractitionerRole", "id": f"{s.id}-role",
                    "practitioner": {"reference": f"Practitioner/{s.id}"},
                    "organization": {"reference": f"Organization/{s.unit.id}"},
                    "code": [{"coding": [{"system": ROLE_SYSTEM, "code": s.role_code,
                                          "display": s.role_display}]}]})
    for p in world.patients:
        out.append({"resourceType": "Patient", "id": p.id,
                    "identifier": [{"system": p.system, "value": p.number}],
                    "name": [{"given": [p.given], "family": p.family}]})
    return out


@pytest.fixture
def ctx() -> Context:
    c = Context()
    for raw in supporting(WORLD):
        c.add(validate(raw))
    return c


def minimal(**overrides) -> dict:
    plan = {
        "resourceType": "CarePlan",
        "id": "cp-min",
        "meta": dict(WORLD.meta),
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/pat-1"},
        "created": "2024-01-15T08:30:00Z",
        "author": ASA.role_ref,
    }
    plan.update(overrides)
    return plan


def rich() -> dict:
    pdf = b"%PDF-1.4 demo"
    return minimal(
        id="cp-rich",
        meta={**WORLD.meta, "security": [NOPATIENT]},
        identifier=[{"system": "urn:oid:1.2.752.129.2.1.2.1", "value": "SIP-2024-0042"}],
        title="SIP för Tolvan – hemtjänst <&> vårdcentral",
        description="Samordning mellan hemtjänst <&> primärvård; åäö ÅÄÖ.\nAndra raden.",
        category=[{"coding": [{"system": profile.CARE_PLAN_TYPE, "code": "SIP"}]}],
        created="2024-07-01T08:30:00Z",
        period={"start": "2024-07-01", "end": "2025-06-30"},
        encounter={"identifier": {"value": "vk-123"}},
        contained=[
            {"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
             "description": {"text": "Inga fall under året"}, "subject": {"reference": "Patient/pat-1"},
             "achievementStatus": {"text": "Pågår"}, "target": [{"dueDate": "2025-06-30"}]},
            {"resourceType": "Goal", "id": "g2", "lifecycleStatus": "entered-in-error",
             "description": {"text": "Felregistrerat mål"}, "subject": {"reference": "Patient/pat-1"}},
            {"resourceType": "CareTeam", "id": "team", "participant": [
                {"member": {"reference": f"Organization/{HOUSING.id}"}},
                {"member": {"identifier": {"system": HSA_SYSTEM, "value": "SE2321000016-VC01"}}},
            ]},
        ],
        goal=[{"reference": "#g1"}, {"reference": "#g2"},
              {"reference": "Goal/external", "display": "Extern mål"}],
        activity=[
            {"detail": {"status": "in-progress", "description": "Hjälp med dusch <tisdagar> & fredagar",
                        "scheduledString": "kl. 8–9",
                        "performer": [{"reference": f"Organization/{HOME_CARE.id}"}]}},
            {"detail": {"status": "entered-in-error", "description": "Felregistrerad insats"}},
            {"reference": {"display": "Remiss till arbetsterapeut"},
             "progress": [{"text": "Utprovning av rollator klar"}]},
        ],
        note=[{"text": "Dottern deltog på mötet."}],
        contributor=[
            {"reference": f"Organization/{HOME_CARE.id}"},
            {"reference": "PractitionerRole/at-maria-role"},  # -> her unit, the special housing unit
            {"reference": "Patient/pat-1"},
        ],
        careTeam=[{"reference": "#team"}],
        extension=[
            {"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-07-01T14:00:00+02:00"},
            {"url": profile.CARE_PLAN_CONTENT,
             "valueAttachment": {"contentType": "application/pdf", "data": base64.b64encode(pdf).decode()}},
            {"url": profile.CARE_PLAN_CONTENT,
             "valueAttachment": {"contentType": "image/png", "url": "https://dokument.example.se/sip/42.png"}},
        ],
    )


def map_one(raw: dict, ctx: Context):
    recs = map_care_plan(validate(raw), ctx)
    assert len(recs) == 1
    return recs[0]


# -- checking output ----------------------------------------------------------------------------
def response(fragments: list[bytes]) -> etree._Element:
    result_ns, child_ns = CONTRACT.result_ns
    root = etree.Element(f"{{{CONTRACT.responder_ns}}}{CONTRACT.response_element}",
                         nsmap={None: CONTRACT.responder_ns})
    for frag in fragments:
        root.append(etree.fromstring(frag))
    result = etree.SubElement(root, f"{{{result_ns}}}result")
    etree.SubElement(result, f"{{{child_ns}}}resultCode").text = "OK"
    etree.SubElement(result, f"{{{child_ns}}}logId").text = "6f1c2b9e-0c1d-4a8e-9d1e-3b0f6a2f7c11"
    return root


def assert_valid(schema: etree.XMLSchema, fragments: list[bytes]) -> etree._Element:
    doc = response(fragments)
    assert schema.validate(doc), schema.error_log
    assert_rules(doc)
    assert rules.check_answer(doc, CONTRACT) == []
    return doc


def assert_rules(doc: etree._Element) -> None:
    for el in doc.iter():
        if len(el) == 0:
            assert el.text is not None and el.text.strip(), f"empty element {el.tag}"
    for cv in doc.iter(f"{Q}healthcareProfessionalRoleCode"):
        names = {etree.QName(c).localname for c in cv}
        assert names in ({"code", "codeSystem", "displayName"}, {"originalText"}), names
    ids = [e.text for e in doc.iter(f"{Q}documentId")]
    assert len(ids) == len(set(ids))
    for plan in doc.iter(f"{{{CONTRACT.responder_ns}}}carePlan"):
        header = plan.find(f"{Q}carePlanHeader")
        for forbidden in ("nullified", "nullifiedReason"):
            assert header.find(f"{Q}{forbidden}") is None
        assert header.findtext(f"{Q}documentTitle").strip()  # TKB 1..1
        unit = header.find(f"{Q}accountableHealthcareProfessional/{Q}healthcareProfessionalOrgUnit")
        assert unit.findtext(f"{Q}orgUnitHSAId") and unit.findtext(f"{Q}orgUnitName")  # Regel 4
        for content in plan.iter(f"{Q}content"):
            assert content.find(f"{Q}id") is None
            assert content.findtext(f"{Q}mediaType") in TKB_MEDIA_TYPES
            assert (content.find(f"{Q}value") is None) != (content.find(f"{Q}reference") is None)
            if content.find(f"{Q}value") is not None:
                assert len(base64.b64decode(content.findtext(f"{Q}value"))) <= 100 * 1024


def plan_el(rec) -> etree._Element:
    return etree.fromstring(rec.fragment)


def rendered(rec) -> str:
    value = plan_el(rec).find(f".//{Q}content/{Q}value")
    return base64.b64decode(value.text).decode("utf-8")


def txt(el: etree._Element, path: str) -> str | None:
    return el.findtext(path.replace("c:", Q))


# -- tests --------------------------------------------------------------------------------------
def test_minimal_plan(schema, ctx):
    rec = map_one(minimal(), ctx)
    assert_valid(schema, [rec.fragment])
    el = plan_el(rec)
    h = "c:carePlanHeader/c:"
    assert txt(el, h + "documentId") == "cp-min"
    assert txt(el, h + "sourceSystemHSAId") == WORLD.source_system
    assert txt(el, h + "documentTitle") == "Vård- och omsorgsplan"
    assert txt(el, h + "documentTime") == "20240115093000"  # 08:30Z = 09:30 CET
    assert txt(el, h + "patientId/c:id") == PNR
    assert txt(el, h + "accountableHealthcareProfessional/c:authorTime") == "20240115093000"
    assert txt(el, h + "approvedForPatient") == "true"
    assert el.find(f"{Q}carePlanHeader/{Q}legalAuthenticator") is None
    assert el.find(f"{Q}carePlanBody/{Q}typeOfCarePlanEnum") is None
    assert el.find(f"{Q}carePlanBody/{Q}participatingCareUnitHSAId") is None
    assert rec.times == {"documentTime": "20240115093000"}
    assert rec.category == "cll-cp"
    assert "Status: Aktiv" in rendered(rec)


def test_rich_plan_content_survives(schema, ctx):
    rec = map_one(rich(), ctx)
    assert_valid(schema, [rec.fragment])
    el = plan_el(rec)
    h = "c:carePlanHeader/c:"
    pro = h + "accountableHealthcareProfessional/c:"
    assert txt(el, h + "documentId") == "SIP-2024-0042"
    assert txt(el, h + "documentTitle") == "SIP för Tolvan – hemtjänst <&> vårdcentral"
    assert txt(el, h + "documentTime") == "20240701103000"  # 08:30Z = 10:30 CEST
    assert txt(el, pro + "healthcareProfessionalHSAId") == ASA.hsa_id
    assert txt(el, pro + "healthcareProfessionalName") == "Åsa Öberg"
    assert txt(el, pro + "healthcareProfessionalRoleCode/c:code") == "204010"
    assert txt(el, pro + "healthcareProfessionalOrgUnit/c:orgUnitHSAId") == HOME_CARE.hsa_id
    assert txt(el, pro + "healthcareProfessionalOrgUnit/c:orgUnitName") == "Hemtjänsten Ängsvägen"
    assert txt(el, pro + "healthcareProfessionalCareUnitHSAId") == HOME_CARE.hsa_id
    assert txt(el, pro + "healthcareProfessionalCareGiverHSAId") == WORLD.care_giver.hsa_id
    assert txt(el, h + "legalAuthenticator/c:signatureTime") == "20240701140000"
    assert txt(el, h + "legalAuthenticator/c:legalAuthenticatorHSAId") == ASA.hsa_id
    assert txt(el, h + "approvedForPatient") == "false"
    assert txt(el, h + "careContactId") == "vk-123"
    body = el.find(f"{Q}carePlanBody")
    assert txt(body, "c:typeOfCarePlanEnum") == "SIP"
    units = [(u.findtext(f"{Q}root"), u.findtext(f"{Q}extension"))
             for u in body.findall(f"{Q}participatingCareUnitHSAId")]
    assert units == [("1.2.752.129.2.1.4.1", HOME_CARE.hsa_id), ("1.2.752.129.2.1.4.1", HOUSING.hsa_id),
                     ("1.2.752.129.2.1.4.1", "SE2321000016-VC01")]
    contents = body.findall(f"{Q}content")
    assert [c.findtext(f"{Q}mediaType") for c in contents] == ["text/html", "application/pdf", "image/png"]
    assert base64.b64decode(contents[1].findtext(f"{Q}value")) == b"%PDF-1.4 demo"
    assert contents[2].findtext(f"{Q}reference") == "https://dokument.example.se/sip/42.png"


def test_rendered_text_is_escaped_html_with_goals_and_activities(ctx):
    page = rendered(map_one(rich(), ctx))
    assert '<meta charset="utf-8">' in page
    assert "&lt;&amp;&gt;" in page and "<&>" not in page  # text escaped, no markup injected
    assert "&lt;tisdagar&gt; &amp; fredagar" in page
    text = html.unescape(page)
    for expected in ("Samordnad individuell plan (SIP)", "Status: Aktiv", "2024-07-01 – 2025-06-30",
                     "Samordning mellan hemtjänst <&> primärvård; åäö ÅÄÖ.", "Inga fall under året",
                     "måldatum: 2025-06-30", "Extern mål", "utförare: Hemtjänsten Ängsvägen", "när: kl. 8–9",
                     "Remiss till arbetsterapeut", "Utprovning av rollator klar", "Dottern deltog på mötet."):
        assert expected in text, expected
    assert "Felregistrera" not in text
    assert "Samordning mellan hemtjänst &lt;&amp;&gt; primärvård; åäö ÅÄÖ.<br>Andra raden." in page


@pytest.mark.parametrize("code, heading", [
    ("SIP", "Samordnad individuell plan"), ("SPLPTLRV", "Samordnad plan enligt LPT och LRV"),
    ("SPU", "Samordnad plan vid utskrivning"), ("VP", "Vårdplan"), ("HP", "Habiliteringsplan"),
    ("RP", "Rehabiliteringsplan"), ("GP", "Genomförandeplan"), ("SVP", "Standardiserad vårdplan"),
])
def test_every_plan_type_and_title_fallback(schema, ctx, code, heading):
    raw = minimal(category=[{"coding": [{"system": "http://loinc.org", "code": "assess-plan"},
                                        {"system": profile.CARE_PLAN_TYPE, "code": code}]}])
    rec = map_one(raw, ctx)
    assert_valid(schema, [rec.fragment])
    el = plan_el(rec)
    assert txt(el, "c:carePlanBody/c:typeOfCarePlanEnum") == code
    assert txt(el, "c:carePlanHeader/c:documentTitle") == heading


def test_times_fall_back_to_period_and_last_updated(schema, ctx):
    raw = minimal(period={"start": "2024-03-10"})
    del raw["created"]
    raw["meta"] = {**WORLD.meta, "lastUpdated": "2024-03-12T12:00:00+01:00"}
    rec = map_one(raw, ctx)
    assert_valid(schema, [rec.fragment])
    el = plan_el(rec)
    assert txt(el, "c:carePlanHeader/c:documentTime") == "20240310000000"
    assert txt(el, "c:carePlanHeader/c:accountableHealthcareProfessional/c:authorTime") == "20240312120000"
    assert rec.times["documentTime"] == "20240310000000"


@pytest.mark.parametrize("status, shown", [("completed", "Avslutad"), ("revoked", "Avbruten"),
                                           ("on-hold", "Vilande"), ("unknown", "Okänd")])
def test_non_active_plans_are_published_with_their_status(schema, ctx, status, shown):
    rec = map_one(minimal(status=status), ctx)
    assert_valid(schema, [rec.fragment])
    assert f"Status: {shown}" in rendered(rec)


@pytest.mark.parametrize("changes", [{"status": "draft"}, {"intent": "proposal"}, {"intent": "option"}])
def test_plans_not_yet_established_publish_nothing(ctx, changes):
    assert map_care_plan(validate(minimal(**changes)), ctx) == []


def test_oversize_attachment_with_url_goes_by_reference(schema, ctx):
    big = base64.b64encode(b"\0" * (100 * 1024 + 1)).decode()
    raw = minimal(extension=[{"url": profile.CARE_PLAN_CONTENT, "valueAttachment": {
        "contentType": "application/pdf", "data": big, "url": "https://dokument.example.se/plan.pdf"}}])
    rec = map_one(raw, ctx)
    assert_valid(schema, [rec.fragment])
    content = plan_el(rec).findall(f".//{Q}content")[1]
    assert content.find(f"{Q}value") is None
    assert content.findtext(f"{Q}reference") == "https://dokument.example.se/plan.pdf"


def test_several_plans_in_one_answer(schema, ctx):
    recs = [map_one(minimal(id=f"cp-{n}", title=f"Plan {n} åäö"), ctx) for n in range(3)]
    assert_valid(schema, [r.fragment for r in recs])


def _attachment(**att) -> list[dict]:
    return [{"url": profile.CARE_PLAN_CONTENT, "valueAttachment": att}]


def _no_author_unit(raw: dict) -> None:
    raw["author"] = {"reference": f"Practitioner/{ASA.id}"}


def _no_times(raw: dict) -> None:
    del raw["created"]


def _no_patient_id(raw: dict) -> None:
    raw["subject"] = {"display": "Tolvan Tolvansson"}


@pytest.mark.parametrize("change, field", [
    ({"category": [{"coding": [{"system": profile.CARE_PLAN_TYPE, "code": "XYZ"}]}]}, "category"),
    (_no_times, "created"),
    (_no_author_unit, "author"),
    ({"author": None}, "author"),
    (_no_patient_id, "subject"),
    ({"extension": _attachment(contentType="text/rtf", data="aGVq")},
     "extension(care-plan-content).contentType"),
    ({"extension": _attachment(contentType="application/pdf",
                               data=base64.b64encode(b"x" * (100 * 1024 + 1)).decode())},
     "extension(care-plan-content).data"),
    ({"extension": _attachment(contentType="image/png")}, "extension(care-plan-content)"),
    ({"extension": _attachment(contentType="image/png", url="ftp://server/x.png")},
     "extension(care-plan-content).url"),
    ({"extension": [{"url": profile.CARE_PLAN_CONTENT, "valueString": "x"}]}, "extension(care-plan-content)"),
    ({"extension": [{"url": profile.SIGNATURE_TIME, "valueString": "igår"}]}, "extension(signature-time)"),
    ({"contributor": [{"identifier": {"system": HSA_SYSTEM, "value": "inte ett hsa-id!"}}]}, "contributor"),
    ({"description": "Lång text åäö. " * 7000}, "description"),  # rendered document over 100 KB (R1)
])
def test_bad_input_is_rejected_naming_the_field(ctx, change, field):
    raw = minimal()
    if callable(change):
        change(raw)
    else:
        raw.update({k: v for k, v in change.items() if v is not None})
        for k in [k for k, v in change.items() if v is None]:
            del raw[k]
    with pytest.raises(MappingError) as err:
        map_care_plan(validate(raw), ctx)
    assert err.value.field == field
    assert PNR not in str(err.value) and "Tolvan" not in str(err.value)


# -- demo data ----------------------------------------------------------------------------------
def demo_resources() -> dict[str, list[dict]]:
    return {p.id: demo.resources(WORLD, p, random.Random(f"test-{p.id}")) for p in WORLD.patients}


def test_demo_is_deterministic():
    assert demo_resources() == demo_resources()


def test_demo_variety(ctx):
    everything = [r for rs in demo_resources().values() for r in rs]
    recs = [map_one(copy.deepcopy(r), ctx) for r in everything]
    types = {txt(plan_el(r), "c:carePlanBody/c:typeOfCarePlanEnum") for r in recs}
    assert {"SIP", "GP", "VP"} <= types
    for pid, rs in demo_resources().items():
        assert any(r["category"][0]["coding"][0]["code"] == "SIP" for r in rs), pid
    assert {r.header.author.care_unit for r in recs} == {HOME_CARE.hsa_id, HOUSING.hsa_id}
    assert any(not r.header.approved_for_patient for r in recs)
    pages = [html.unescape(rendered(r)) for r in recs]
    assert any("<&>" in p for p in pages)
    assert all(any(ch in p for ch in "åäö") for p in pages)
    assert any("Mål" in p and "Insatser och aktiviteter" in p for p in pages)


def test_demo_ingests_without_rejections_and_is_xsd_valid(new_store, schema, tmp_path):
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in supporting(WORLD)]
              + [{"resource": r} for rs in demo_resources().values() for r in rs]}
    path = tmp_path / "care-plans.json"
    path.write_bytes(orjson.dumps(bundle))
    engine = new_store()
    report = ingest(engine, [path])
    assert report.rejected == []
    total = sum(len(rs) for rs in demo_resources().values())
    assert report.published[CONTRACT.key] == total

    found = 0
    with engine.connect() as conn:
        for p in WORLD.patients:
            q = store.RecordQuery(contract=CONTRACT.key, source_system=WORLD.source_system,
                                  patient_id=p.number, patient_type=_oid(p.system))
            fragments = list(store.query(conn, q))
            assert fragments, p.id
            assert_valid(schema, fragments)
            found += len(fragments)
    assert found == total


def test_date_filter_uses_document_time(new_store, tmp_path):
    plans = [minimal(id="cp-jan", created="2024-01-15T08:30:00Z"),
             minimal(id="cp-jun", created="2024-06-30T22:30:00Z")]  # 1 July 00:30 in Sweden
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in supporting(WORLD) + plans]}
    path = tmp_path / "plans.json"
    path.write_bytes(orjson.dumps(bundle))
    engine = new_store()
    assert ingest(engine, [path]).rejected == []

    def ids(start: str, end: str) -> list[str]:
        q = store.RecordQuery(contract=CONTRACT.key, source_system=WORLD.source_system, patient_id=PNR,
                              patient_type="1.2.752.129.2.1.3.1", period_start=start, period_end=end)
        with engine.connect() as conn:
            return [etree.fromstring(f).findtext(f"{Q}carePlanHeader/{Q}documentId")
                    for f in store.query(conn, q)]

    assert ids("20240101", "20240131") == ["cp-jan"]
    assert ids("20240701", "20240701") == ["cp-jun"]
    assert ids("20240630", "20240630") == []


def _oid(system: str) -> str:
    return "1.2.752.129.2.1.3.3" if system.endswith("samordningsnummer") else "1.2.752.129.2.1.3.1"
