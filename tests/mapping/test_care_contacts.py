"""GetCareContacts 3.0: FHIR Encounter -> careContact records, checked against the OFFICIAL XSD and the rule checks
(mappings/GetCareContacts.md); careContact records -> Encounter, validated by fhir.resources."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
from lxml import etree

from adapter.demo import care_contacts as demo
from adapter.demo.world import HSA_SYSTEM, ROLE_SYSTEM, World, default_world
from adapter.ingest import validate
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.fhir_to_rivta.care_contacts import map_encounter
from adapter.mapping.rivta_to_fhir import care_contacts as to_fhir
from adapter.rivta import rules
from adapter.rivta.contracts import GET_CARE_CONTACTS as CONTRACT
from adapter.rivta.contracts import SOAP_NS

REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference"
XSD = REFERENCE / "rivta/GetCareContacts/3.0/interactions/GetCareContactsInteraction/GetCareContactsResponder_3.0.xsd"
Q = f"{{{CONTRACT.core_ns}}}"
NS = {"c": CONTRACT.core_ns}
PNR = "191212121212"
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}
WORLD = default_world()
HOME_CARE, HOUSING = WORLD.units
ASA, JONAS, MARIA = WORLD.staff[0], WORLD.staff[1], WORLD.staff[2]
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
KV_TYPE = "urn:oid:1.2.752.129.2.2.2.25"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD.resolve())))


def supporting(world: World) -> list[dict]:
    giver = world.care_giver
    out: list[dict] = [{"resourceType": "Organization", "id": giver.id, "name": giver.name,
                        "identifier": [{"system": HSA_SYSTEM, "value": giver.hsa_id}]}]
    for unit in world.units:
        out.append({"resourceType": "Organization", "id": unit.id, "name": unit.name,
                    "identifier": [{"system": HSA_SYSTEM, "value": unit.hsa_id}],
                    "telecom": [{"system": "phone", "value": "010-000 00 00"},
                                {"system": "email", "value": "enhet@example.invalid"}],
                    "address": [{"line": ["Ängsvägen 1"], "postalCode": "123 45", "city": "Exempelby"}],
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
    out.append({"resourceType": "Patient", "id": "pat-reserve", "gender": "female", "birthDate": "1931-05",
                "identifier": [{"system": "urn:oid:1.2.752.97.3.1.3", "value": "99310501AB12"}]})
    return out


@pytest.fixture
def ctx() -> Context:
    c = Context()
    for raw in supporting(WORLD):
        c.add(validate(raw))
    return c


def encounter(**overrides) -> dict:
    enc = {
        "resourceType": "Encounter",
        "id": "enc-1",
        "meta": dict(WORLD.meta),
        "identifier": [{"system": "urn:oid:1.2.752.129.2.1.2.1", "value": "vk-0001"}],
        "status": "finished",
        "class": {"system": ACT, "code": "HH"},
        "subject": {"reference": "Patient/pat-1"},
        "participant": [{"individual": ASA.role_ref}],
        "period": {"start": "2024-03-05T10:00:00+01:00", "end": "2024-03-05T10:40:00+01:00"},
        "serviceProvider": {"reference": f"Organization/{HOME_CARE.id}"},
    }
    enc.update(overrides)
    return enc


def record(raw: dict, ctx: Context):
    model = validate(raw)
    ctx.add(model)
    with ctx.mapping(model):
        recs = map_encounter(model, ctx)
    assert len(recs) == 1
    return recs[0]


def answer(fragments: list[bytes]) -> etree._Element:
    resp = etree.Element(CONTRACT.response_tag, nsmap={None: CONTRACT.responder_ns, "c": CONTRACT.core_ns})
    for f in fragments:
        resp.append(etree.fromstring(f))
    result = etree.SubElement(resp, f"{{{CONTRACT.responder_ns}}}result")
    etree.SubElement(result, f"{Q}resultCode").text = "OK"
    etree.SubElement(result, f"{Q}logId").text = "9f3c1e52-0000-4000-8000-000000000001"
    return resp


def checked(schema: etree.XMLSchema, fragments: list[bytes]) -> etree._Element:
    doc = answer(fragments)
    assert schema.validate(doc), schema.error_log
    assert rules.find_problems(doc, CONTRACT) == []
    assert [m for rec in rules.records(doc, CONTRACT) for m in to_fhir.rules(rec, CONTRACT)] == []
    return doc


def text(el: etree._Element, path: str) -> str | None:
    return el.findtext(path, namespaces=NS)


# -- FHIR -> RIVTA --------------------------------------------------------------------------------------
def test_home_visit_every_field(ctx: Context, schema: etree.XMLSchema) -> None:
    raw = encounter(
        meta={**WORLD.meta, "security": [NOPATIENT]},
        type=[{"coding": [{"system": KV_TYPE, "code": "1", "display": "Besök"}], "text": "Hembesök"}],
        participant=[
            {"type": [{"coding": [{"code": "PART"}]}], "individual": MARIA.role_ref},
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                   "code": "PPRF"}]}], "individual": ASA.role_ref},
        ],
        reasonCode=[{"text": "Omläggning av trycksår"}, {"coding": [{"display": "Smärta"}]}],
    )
    rec = record(raw, ctx)
    doc = checked(schema, [rec.fragment])
    cc = rules.records(doc, CONTRACT)[0]
    h = "c:careContactHeader"
    assert text(cc, f"{h}/c:documentId") == "vk-0001"
    assert text(cc, f"{h}/c:sourceSystemHSAId") == WORLD.source_system
    assert text(cc, f"{h}/c:patientId/c:id") == PNR
    assert text(cc, f"{h}/c:approvedForPatient") == "false"
    prof = f"{h}/c:accountableHealthcareProfessional"
    assert text(cc, f"{prof}/c:authorTime") == "20240305100000"
    assert text(cc, f"{prof}/c:healthcareProfessionalHSAId") == ASA.hsa_id  # PPRF wins over the first participant
    assert text(cc, f"{prof}/c:healthcareProfessionalRoleCode/c:displayName") == "Sjuksköterska"
    assert text(cc, f"{prof}/c:healthcareProfessionalOrgUnit/c:orgUnitHSAId") == HOME_CARE.hsa_id
    assert text(cc, f"{prof}/c:healthcareProfessionalCareUnitHSAId") == HOME_CARE.hsa_id
    assert text(cc, f"{prof}/c:healthcareProfessionalCareGiverHSAId") == WORLD.care_giver.hsa_id
    for forbidden in ("documentTitle", "documentTime", "legalAuthenticator", "careContactId", "nullified"):
        assert cc.find(f".//c:{forbidden}", NS) is None
    b = "c:careContactBody"
    assert text(cc, f"{b}/c:careContactCode/c:code") == "1"
    assert text(cc, f"{b}/c:careContactCode/c:codeSystem") == "1.2.752.129.2.2.2.25"
    assert text(cc, f"{b}/c:careContactCode/c:displayName") == "Besök"
    assert text(cc, f"{b}/c:careContactReason") == "Omläggning av trycksår; Smärta"
    unit = f"{b}/c:careContactOrgUnit"
    assert text(cc, f"{unit}/c:orgUnitHSAId") == HOME_CARE.hsa_id
    assert text(cc, f"{unit}/c:orgUnitName") == HOME_CARE.name
    assert text(cc, f"{unit}/c:orgUnitTelecom") == "010-000 00 00"
    assert text(cc, f"{unit}/c:orgUnitEmail") == "enhet@example.invalid"
    assert text(cc, f"{unit}/c:orgUnitAddress") == "Ängsvägen 1, 123 45 Exempelby"
    assert text(cc, f"{unit}/c:orgUnitLocation") == "Exempelby"
    # TKB: a visit's start and end are both its start time
    assert text(cc, f"{b}/c:careContactTimePeriod/c:start") == "20240305100000"
    assert text(cc, f"{b}/c:careContactTimePeriod/c:end") == "20240305100000"
    assert text(cc, f"{b}/c:careContactStatus/c:code") == "53671000052101"
    assert text(cc, f"{b}/c:careContactStatus/c:codeSystem") == "1.2.752.116.2.1.1"
    assert cc.find(f"{b}/c:additionalPatientInformation", NS) is None  # a personnummer: PU has it
    assert rec.category == "vko"
    assert rec.header.care_contact == "vk-0001"  # what the request's careContactId filter matches
    assert rec.contract == CONTRACT.key


def test_document_id_is_what_other_records_carry(ctx: Context) -> None:
    """A Condition's careContactId (Context.care_contact) is the care contact's documentId, with or without an
    identifier on the Encounter."""
    for raw in (encounter(), encounter(id="enc-2", identifier=None)):
        rec = record(raw, ctx)
        ref = validate({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/pat-1"},
                        "encounter": {"reference": f"Encounter/{raw['id']}"}}).encounter
        assert ctx.care_contact(ref) == rec.header.document_id


@pytest.mark.parametrize(("status", "code"), [
    ("planned", "53631000052103"), ("arrived", "53651000052107"), ("in-progress", "53651000052107"),
    ("onleave", "53681000052104"), ("finished", "53671000052101"), ("cancelled", "53641000052109"),
    ("unknown", None),
])
def test_status(ctx: Context, schema: etree.XMLSchema, status: str, code: str | None) -> None:
    rec = record(encounter(status=status), ctx)
    cc = rules.records(checked(schema, [rec.fragment]), CONTRACT)[0]
    assert text(cc, "c:careContactBody/c:careContactStatus/c:code") == code


def test_entered_in_error_withdraws() -> None:
    from adapter.mapping import dispatch
    assert dispatch.withdraws(validate(encounter(status="entered-in-error")))
    assert not dispatch.withdraws(validate(encounter(status="cancelled")))  # published as inställd


@pytest.mark.parametrize(("klass", "types", "expected"), [
    ("AMB", None, ("1", None)),
    ("IMP", None, ("3", None)),
    ("SS", None, ("4", None)),
    ("VR", None, ("5", None)),
    ("VR", [{"coding": [{"system": KV_TYPE, "code": "2", "display": "Telefon"}]}], ("2", None)),
    ("XYZ", [{"text": "Gruppbesök"}], (None, "Gruppbesök")),
    ("XYZ", None, (None, None)),
])
def test_contact_code(ctx: Context, schema: etree.XMLSchema, klass, types, expected) -> None:
    rec = record(encounter(**{"class": {"system": ACT, "code": klass}, "type": types}), ctx)
    cc = rules.records(checked(schema, [rec.fragment]), CONTRACT)[0]
    assert text(cc, "c:careContactBody/c:careContactCode/c:code") == expected[0]
    assert text(cc, "c:careContactBody/c:careContactCode/c:originalText") == expected[1]


def test_unknown_kv_code_rejected(ctx: Context) -> None:
    with pytest.raises(MappingError) as exc:
        record(encounter(type=[{"coding": [{"system": KV_TYPE, "code": "9", "display": "?"}]}]), ctx)
    assert exc.value.field == "type"


def test_phone_contact_keeps_its_end(ctx: Context, schema: etree.XMLSchema) -> None:
    rec = record(encounter(**{"class": {"system": ACT, "code": "VR"}},
                           type=[{"coding": [{"system": KV_TYPE, "code": "2", "display": "Telefon"}]}]), ctx)
    cc = rules.records(checked(schema, [rec.fragment]), CONTRACT)[0]
    assert text(cc, "c:careContactBody/c:careContactTimePeriod/c:end") == "20240305104000"


def test_without_participant_the_service_provider_is_accountable(ctx: Context, schema: etree.XMLSchema) -> None:
    """Like the care-documentation demo's home visit: no participant, a serviceProvider unit under a care giver."""
    rec = record(encounter(participant=None), ctx)
    cc = rules.records(checked(schema, [rec.fragment]), CONTRACT)[0]
    prof = "c:careContactHeader/c:accountableHealthcareProfessional"
    assert cc.find(f"{prof}/c:healthcareProfessionalHSAId", NS) is None
    assert text(cc, f"{prof}/c:healthcareProfessionalOrgUnit/c:orgUnitName") == HOME_CARE.name
    assert text(cc, f"{prof}/c:healthcareProfessionalCareGiverHSAId") == WORLD.care_giver.hsa_id


def test_without_service_provider_the_professional_unit_performed_it(ctx: Context, schema: etree.XMLSchema) -> None:
    rec = record(encounter(serviceProvider=None, participant=[{"individual": MARIA.role_ref}]), ctx)
    cc = rules.records(checked(schema, [rec.fragment]), CONTRACT)[0]
    assert text(cc, "c:careContactBody/c:careContactOrgUnit/c:orgUnitHSAId") == HOUSING.hsa_id


def test_no_unit_rejected(ctx: Context) -> None:
    with pytest.raises(MappingError) as exc:
        record(encounter(serviceProvider=None, participant=None), ctx)
    assert exc.value.field == "serviceProvider"


def test_no_period_rejected(ctx: Context) -> None:
    with pytest.raises(MappingError) as exc:
        record(encounter(period=None), ctx)
    assert exc.value.field == "period"


def test_reservnummer_gets_additional_patient_information(ctx: Context, schema: etree.XMLSchema) -> None:
    rec = record(encounter(subject={"reference": "Patient/pat-reserve"}), ctx)
    cc = rules.records(checked(schema, [rec.fragment]), CONTRACT)[0]
    info = "c:careContactBody/c:additionalPatientInformation"
    assert text(cc, f"{info}/c:dateOfBirth/c:format") == "YYYYMM"
    assert text(cc, f"{info}/c:dateOfBirth/c:value") == "193105"
    assert text(cc, f"{info}/c:gender/c:code") == "2"
    assert text(cc, f"{info}/c:gender/c:codeSystem") == "1.2.752.129.2.2.1.1"


# -- the date filter's interval ----------------------------------------------------------------------------
@pytest.mark.parametrize(("period", "klass", "expected"), [
    # a visit: start = end = its start time
    ({"start": "2024-03-05T10:00:00+01:00", "end": "2024-03-05T10:40:00+01:00"}, "HH", ("20240305", "20240305")),
    # a stay over days: from its start to its end
    ({"start": "2024-03-05T10:00:00+01:00", "end": "2024-03-09T12:00:00+01:00"}, "IMP", ("20240305", "20240309")),
    # no end (an ongoing stay): open towards the future
    ({"start": "2024-03-05T10:00:00+01:00"}, "IMP", ("20240305", None)),
    # no start: open towards the past (authorTime is then the end)
    ({"end": "2024-03-09T12:00:00+01:00"}, "IMP", (None, "20240309")),
    # UTC late evening is the next Swedish day
    ({"start": "2024-03-05T23:30:00Z"}, "AMB", ("20240306", "20240306")),
])
def test_filter_period(ctx: Context, period: dict, klass: str, expected: tuple) -> None:
    rec = record(encounter(period=period, **{"class": {"system": ACT, "code": klass}}), ctx)
    assert rec.period == expected


def test_filter_semantics_match_the_tkb(ctx: Context) -> None:
    """The store's OVERLAP clause over rec.period, evaluated here in Python, against the TKB's five bullets."""
    def matches(rec, start: str, end: str) -> bool:
        lo, hi = rec.period
        return (lo is None or lo <= end) and (hi is None or hi >= start)

    stay = record(encounter(period={"start": "2024-03-05T10:00:00+01:00", "end": "2024-03-09T12:00:00+01:00"},
                            **{"class": {"system": ACT, "code": "IMP"}}), ctx)
    assert matches(stay, "20240301", "20240305")  # start within
    assert matches(stay, "20240309", "20240331")  # end within
    assert matches(stay, "20240306", "20240307")  # around the search period
    assert not matches(stay, "20240310", "20240331")
    assert not matches(stay, "20240101", "20240304")
    ongoing = record(encounter(period={"start": "2024-03-05T10:00:00+01:00"},
                               **{"class": {"system": ACT, "code": "IMP"}}), ctx)
    assert matches(ongoing, "20250101", "20250131")  # start before the period, no end
    assert not matches(ongoing, "20240101", "20240304")
    ended = record(encounter(period={"end": "2024-03-09T12:00:00+01:00"},
                             **{"class": {"system": ACT, "code": "IMP"}}), ctx)
    assert matches(ended, "20200101", "20200131")  # end after the period, no start
    assert not matches(ended, "20240310", "20240331")


# -- the demo ------------------------------------------------------------------------------------------------
def test_demo_contacts_valid(ctx: Context, schema: etree.XMLSchema) -> None:
    fragments, statuses, types = [], set(), set()
    for patient in WORLD.patients:
        for raw in demo.resources(WORLD, patient, random.Random(f"t-{patient.id}")):
            rec = record(raw, ctx)
            fragments.append(rec.fragment)
            statuses.add(raw["status"])
            types.add(raw["type"][0]["coding"][0]["code"])
    doc = checked(schema, fragments)
    assert len(rules.records(doc, CONTRACT)) == len(fragments)
    assert {"finished", "cancelled", "planned"} <= statuses
    assert types == {"1", "2"}


# -- RIVTA -> FHIR -------------------------------------------------------------------------------------------
def test_round_trip(ctx: Context) -> None:
    raw = encounter(type=[{"coding": [{"system": KV_TYPE, "code": "1", "display": "Besök"}]}],
                    reasonCode=[{"text": "Omläggning"}], meta={**WORLD.meta, "security": [NOPATIENT]})
    rec = record(raw, ctx)
    enc, prov, *roles = to_fhir.convert(etree.fromstring(rec.fragment))
    assert enc.get_resource_type() == "Encounter"
    assert enc.identifier[0].value == "vk-0001"
    assert enc.status == "finished"
    assert enc.class_fhir.code == "AMB"
    assert enc.type[0].coding[0].code == "1" and enc.type[0].coding[0].system == KV_TYPE
    assert enc.subject.identifier.value == PNR
    assert enc.period.start.isoformat() == "2024-03-05T10:00:00+01:00"
    assert enc.reasonCode[0].text == "Omläggning"
    assert enc.serviceProvider.identifier.value == HOME_CARE.hsa_id
    assert enc.serviceProvider.display == HOME_CARE.name
    assert enc.participant[0].type[0].coding[0].code == "PPRF"
    assert enc.meta.security[0].code == "NOPATIENT"
    assert prov.get_resource_type() == "Provenance"
    assert {a.type.coding[0].code for a in prov.agent} == {"author", "custodian"}
    assert roles and roles[0].get_resource_type() == "PractitionerRole"
    # the Encounter goes back in as input and publishes the same record
    again = copy.deepcopy(enc.model_dump(mode="json", exclude_none=True))
    assert again["identifier"][0]["value"] == rec.header.document_id


@pytest.mark.parametrize(("code", "status"), [
    ("53661000052105", "finished"), ("53691000052102", "entered-in-error"), ("53701000052102", "planned"),
    ("53641000052109", "cancelled"), (None, "unknown"),
])
def test_status_to_fhir(code: str | None, status: str) -> None:
    el = etree.parse(str(Path(__file__).parents[1] / "contracts/samples/GetCareContacts_3.0/valid_response_rich.xml"))
    cc = el.getroot().find(f"{{{CONTRACT.responder_ns}}}careContact")
    st = cc.find("c:careContactBody/c:careContactStatus", NS)
    if code is None:
        st.getparent().remove(st)
    else:
        st.find("c:code", NS).text = code
    enc = to_fhir.convert(cc)[0]
    assert enc.status == status


def test_minimal_record_to_fhir() -> None:
    el = etree.parse(str(Path(__file__).parents[1] / "contracts/samples/GetCareContacts_3.0/valid_response_rich.xml"))
    minimal = el.getroot().findall(f"{{{CONTRACT.responder_ns}}}careContact")[1]
    enc = to_fhir.convert(minimal)[0]
    assert enc.status == "unknown"
    assert enc.class_fhir.extension[0].valueCode == "unknown"  # class is 1..1: data absent


# -- rules() ---------------------------------------------------------------------------------------------------
def test_rules_name_elements_not_values(ctx: Context) -> None:
    rec = record(encounter(), ctx)
    cc = etree.fromstring(rec.fragment)
    body = cc.find("c:careContactBody", NS)
    period = body.find("c:careContactTimePeriod", NS)
    for child in list(period):
        period.remove(child)
    body.find("c:careContactOrgUnit/c:orgUnitName", NS).getparent().remove(
        body.find("c:careContactOrgUnit/c:orgUnitName", NS))
    body.find("c:careContactStatus/c:code", NS).text = "123"
    body.find("c:careContactCode/c:codeSystem", NS).text = "1.2.3"
    unit = cc.find(".//c:healthcareProfessionalOrgUnit", NS)
    unit.getparent().remove(unit)
    found = to_fhir.rules(cc, CONTRACT)
    assert found == [
        "healthcareProfessionalOrgUnit with orgUnitHSAId and orgUnitName missing (Regel 4)",
        "careContactOrgUnit with orgUnitHSAId and orgUnitName missing (Regel 5)",
        "careContactTimePeriod needs start or end",
        "careContactCode: codeSystem is not the one the TKB names",
        "careContactStatus: code not in the code system's value set",
    ]
    assert not any(HOME_CARE.name in m or "123" in m for m in found)


def test_envelope_answer_checks(ctx: Context, schema: etree.XMLSchema) -> None:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope")
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    body.append(answer([record(encounter(), ctx).fragment]))
    assert rules.find_problems(env, CONTRACT) == []


def test_the_suite_reads_the_interval_the_store_was_given(ctx: Context) -> None:
    """rivta_to_fhir.period (the contract suite's oracle, read from the answer) agrees with what the mapping gave the
    store, for every demo contact and the open-ended forms."""
    raws = [r for p in WORLD.patients for r in demo.resources(WORLD, p, random.Random(f"s-{p.id}"))]
    raws += [encounter(id="open-end", period={"start": "2024-03-05T10:00:00+01:00"},
                       **{"class": {"system": ACT, "code": "IMP"}}),
             encounter(id="open-start", period={"end": "2024-03-09T12:00:00+01:00"})]
    for raw in raws:
        rec = record(raw, ctx)
        assert to_fhir.period(etree.fromstring(rec.fragment), CONTRACT) == rec.period, raw["id"]


def test_summary_line() -> None:
    el = etree.parse(str(Path(__file__).parents[1] / "contracts/samples/GetCareContacts_3.0/valid_response_rich.xml"))
    cc = el.getroot().find(f"{{{CONTRACT.responder_ns}}}careContact")

    def first(*paths: str) -> str | None:
        for p in paths:
            found = cc.xpath(f"string({p})", namespaces=NS)
            if found:
                return found.strip()
        return None

    text, when = to_fhir.summary(first, "c:careContactBody", "c:careContactHeader")
    assert text == "Besök: Synthetic reason: såromläggning, Hemsjukvården Teststad (avslutad vårdkontakt)"
    assert when == "20240115093000"
