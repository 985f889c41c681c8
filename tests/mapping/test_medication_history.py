"""GetMedicationHistory 2.2: FHIR MedicationRequest / MedicationStatement -> medicationMedicalRecord, checked
against the official 2.2 XSD (and 2.1 where every product carries its NPL-id), the certification rules of
the TKB (Övriga regler) and mappings/GetMedicationHistory.md."""

from __future__ import annotations

import copy
import random
import uuid
from pathlib import Path

import orjson
import pytest
from lxml import etree

from adapter.demo import medication_history as demo
from adapter.demo.generate import organisation, patient_resource
from adapter.demo.world import HSA_SYSTEM, default_world
from adapter.ingest import ingest, validate
from adapter.mapping import dispatch, profile
from adapter.mapping.context import Context
from adapter.mapping.errors import MappingError
from adapter.mapping.fhir_to_rivta.medication_history import map_medication_request, map_medication_statement
from adapter.mapping.record import Record
from adapter.rivta import rules
from adapter.rivta.contracts import GET_MEDICATION_HISTORY as CONTRACT
from adapter.store import records as store
from adapter.store.engine import open_store
from tests.stores import BACKENDS, StoreUrls, require

REFERENCE = Path(__file__).resolve().parents[2] / "../shared/reference/rivta/GetMedicationHistory"
XSD = {
    v: REFERENCE / f"{v}/interactions/GetMedicationHistoryInteraction/GetMedicationHistoryResponder_{v}.xsd"
    for v in ("2.2", "2.1")
}
NS = {"c": CONTRACT.core_ns, "r": CONTRACT.responder_ns}
WORLD = default_world()
SOURCE = WORLD.source_system
META = {"source": f"urn:oid:1.2.752.129.2.1.4.1#{SOURCE}"}
PNR = "191212121212"
ASA, JONAS, MARIA, OMAR = WORLD.staff
HOME_CARE, HOUSING = WORLD.units
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}
NPL = {
    "system": "urn:oid:1.2.752.129.2.1.5.1",
    "code": "20010925000105",
    "display": "Metoprolol Sandoz 50 mg",
}
ATC = {"system": "http://www.whocc.no/atc", "code": "C07AB02", "display": "Metoprolol"}
PACK = {
    "system": "urn:oid:1.2.752.129.2.1.5.2",
    "code": "20010925100123",
    "display": "Metoprolol 50 mg 100 st",
}
UCUM = "http://unitsofmeasure.org"
DOCTOR = {"identifier": {"system": HSA_SYSTEM, "value": "SE2300000000-L001"}, "display": "Leila Nordin"}
TEXT = "Extempore: salva <zink & vaselin> 50/50 – åäö"
LOCAL = "1.2.752.129.2.1.2.1"
BODY_ACTORS = ("prescriber", "evaluator", "dispensationAuthorizer", "administeringHealthcareProfessional")


# -- schemas, context, input ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schemas() -> dict[str, etree.XMLSchema]:
    return {v: etree.XMLSchema(etree.parse(str(p.resolve()))) for v, p in XSD.items()}


def supporting() -> list[dict]:
    return organisation(WORLD) + [patient_resource(p) for p in WORLD.patients]


@pytest.fixture
def ctx() -> Context:
    c = Context()
    for raw in supporting():
        c.add(validate(raw))
    return c


def tablets(value: float) -> dict:
    return {"value": value, "unit": "tablett", "system": UCUM, "code": "{tablett}"}


def daily(times: int = 2, dose: float = 1, text: str | None = "1 tablett morgon och kväll") -> dict:
    d: dict = {
        "timing": {
            "repeat": {
                "frequency": times,
                "period": 1,
                "periodUnit": "d",
                "boundsPeriod": {"start": "2024-03-02"},
            }
        },
        "doseAndRate": [{"doseQuantity": tablets(dose)}],
    }
    if text:
        d["text"] = text
    return d


def med_request(rid: str = "mr-1", **extra) -> dict:
    r = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "meta": copy.deepcopy(META),
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2024-03-01T10:00:00+01:00",
        "recorder": ASA.role_ref,
        "requester": copy.deepcopy(DOCTOR),
        "medicationCodeableConcept": {"coding": [NPL, ATC], "text": "Metoprolol Sandoz 50 mg depottablett"},
        "dosageInstruction": [daily()],
    }
    r.update(extra)
    return r


def prescriber_ext(ref: dict | None = None, time: str | None = "2024-02-28T15:00:00+01:00") -> dict:
    parts = [{"url": "practitioner", "valueReference": ref or DOCTOR}]
    if time:
        parts.append({"url": "time", "valueDateTime": time})
    return {"url": profile.PRESCRIBER, "extension": parts}


def med_statement(rid: str = "ms-1", **extra) -> dict:
    r = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "meta": copy.deepcopy(META),
        "status": "active",
        "subject": {"reference": "Patient/pat-1"},
        "dateAsserted": "2024-03-04T09:00:00+01:00",
        "informationSource": JONAS.role_ref,
        "medicationCodeableConcept": {"coding": [NPL, ATC]},
        "effectivePeriod": {"start": "2024-03-05"},
        "dosage": [daily()],
        "extension": [prescriber_ext()],
    }
    r.update(extra)
    return r


def map_one(raw: dict, ctx: Context) -> Record:
    recs = dispatch.map_resource(validate(raw), ctx)
    assert len(recs) == 1
    return recs[0]


def answer(*recs: Record) -> etree._Element:
    resp = etree.Element(
        f"{{{CONTRACT.responder_ns}}}{CONTRACT.response_element}", nsmap={None: CONTRACT.responder_ns}
    )
    for r in recs:
        resp.append(etree.fromstring(r.fragment))
    outer, inner = CONTRACT.result_ns
    result = etree.SubElement(resp, f"{{{outer}}}result")
    etree.SubElement(result, f"{{{inner}}}resultCode").text = "OK"
    etree.SubElement(result, f"{{{inner}}}logId").text = str(uuid.uuid4())
    return resp


def has_npl_everywhere(resp: etree._Element) -> bool:
    return all(d.find("c:nplId", NS) is not None for d in resp.iterfind(".//c:drug/c:drug", NS))


def assert_ok(resp: etree._Element, schemas: dict, *, also_21: bool | None = None) -> None:
    assert schemas["2.2"].validate(resp), str(schemas["2.2"].error_log)
    if also_21 is None:
        also_21 = has_npl_everywhere(resp)
    if also_21:
        assert schemas["2.1"].validate(resp), str(schemas["2.1"].error_log)
    assert rules.check_answer(resp, CONTRACT) == []  # includes the TKB's Övriga regler for this contract
    for el in resp.iter():  # no empty elements, no childless containers
        assert len(el) or (el.text or "").strip(), etree.QName(el).localname


def t(el: etree._Element, path: str) -> str | None:
    return el.findtext(path, namespaces=NS)


def mp_of(rec: Record) -> etree._Element:
    return etree.fromstring(rec.fragment).find(".//c:medicationPrescription", NS)


# -- minimal and rich -------------------------------------------------------------------------------------
def test_minimal_request(ctx, schemas):
    rec = map_one(med_request(), ctx)
    resp = answer(rec)
    assert_ok(resp, schemas, also_21=True)
    mp = mp_of(rec)
    assert t(mp, "c:prescriptionId/c:root") == LOCAL
    assert t(mp, "c:prescriptionId/c:extension") == f"{SOURCE}:mr-1"
    assert t(mp, "c:typeOfPrescription") == "I" and t(mp, "c:prescriptionStatus") == "Active"
    assert t(mp, "c:prescriber/c:authorTime") == "20240301100000"
    assert t(mp, "c:prescriber/c:healthcareProfessionalHSAId") == "SE2300000000-L001"
    assert t(mp, "c:prescriber/c:healthcareProfessionalName") == "Leila Nordin"
    assert t(mp, "c:startOfTreatment") == "20240302000000"
    assert t(mp, "c:selfMedication") == "false"
    assert t(mp, "c:drug/c:drug/c:nplId/c:code") == NPL["code"]
    assert t(mp, "c:drug/c:drug/c:atcCode/c:codeSystem") == "1.2.752.129.2.2.3.1.1"
    freq = mp.find("c:drug/c:dosage/c:setDosage/c:frequencyDosage", NS)
    assert (t(freq, "c:frequency/c:value"), t(freq, "c:frequency/c:unit")) == ("2", "/d")
    assert (t(freq, "c:dose/c:low"), t(freq, "c:dose/c:unit")) == ("1", "{tablett}")
    header = etree.fromstring(rec.fragment).find("c:medicationMedicalRecordHeader", NS)
    assert t(header, "c:documentId") == "mr-1"
    assert (
        t(header, "c:accountableHealthcareProfessional/c:healthcareProfessionalCareUnitHSAId")
        == HOME_CARE.hsa_id
    )
    assert (
        t(header, "c:accountableHealthcareProfessional/c:healthcareProfessionalCareGiverHSAId")
        == WORLD.care_giver.hsa_id
    )
    assert header.find("c:documentTime", NS) is None
    assert (rec.category, rec.status, rec.chain_id, rec.period) == (
        "caa-gmh",
        "Active",
        None,
        ("20240301", None),
    )
    assert rec.header.author.care_giver == WORLD.care_giver.hsa_id  # the careGiverHSAId filter uses it


def test_minimal_statement(ctx, schemas):
    rec = map_one(med_statement(), ctx)
    assert_ok(answer(rec), schemas, also_21=True)
    mp = mp_of(rec)
    assert t(mp, "c:prescriber/c:authorTime") == "20240228150000"
    assert t(mp, "c:startOfTreatment") == "20240305000000"
    header = etree.fromstring(rec.fragment).find("c:medicationMedicalRecordHeader", NS)
    assert t(header, "c:accountableHealthcareProfessional/c:authorTime") == "20240304090000"
    assert (
        t(header, "c:accountableHealthcareProfessional/c:healthcareProfessionalCareUnitHSAId")
        == HOUSING.hsa_id
    )
    assert rec.period == ("20240228", None)


def rich_request() -> dict:
    contained = [
        {
            "resourceType": "PractitionerRole",
            "id": "ordinator",
            "identifier": [{"system": HSA_SYSTEM, "value": "SE2300000000-L002"}],
            "practitioner": {"display": "Henrik Sjöberg"},
            "organization": {
                "identifier": {"system": HSA_SYSTEM, "value": "SE2300000000-GM01"},
                "display": "Geriatriska kliniken",
            },
            "code": [{"text": "Specialistläkare i geriatrik"}],
        },
        {
            "resourceType": "MedicationAdministration",
            "id": "adm-1",
            "status": "completed",
            "medicationCodeableConcept": {"coding": [NPL, ATC]},
            "subject": {"reference": "Patient/pat-1"},
            "effectiveDateTime": "2024-07-01T06:30:00Z",
            "request": {"reference": "#"},
            "performer": [{"actor": OMAR.role_ref}],
            "note": [{"text": "Given med yoghurt, åäö <&>"}],
            "dosage": {"route": {"text": "Oralt"}, "dose": tablets(1)},
            "extension": [{"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-07-01T08:35:00+02:00"}],
        },
        {
            "resourceType": "MedicationAdministration",
            "id": "adm-2",
            "status": "not-done",
            "medicationCodeableConcept": {"text": "x"},
            "subject": {"reference": "Patient/pat-1"},
            "effectiveDateTime": "2024-07-02T08:30:00+02:00",
        },
        {
            "resourceType": "MedicationAdministration",
            "id": "adm-3",
            "status": "completed",
            "identifier": [{"system": "urn:oid:1.2.752.129.2.1.2.9", "value": "adm-77"}],
            "medicationCodeableConcept": {"text": TEXT},
            "subject": {"reference": "Patient/pat-1"},
            "effectivePeriod": {"start": "2024-07-03T20:00:00+02:00"},
            "performer": [{"actor": {"reference": "#ordinator"}}],
        },
    ]
    return med_request(
        "mr-rich",
        identifier=[{"system": "urn:oid:1.2.752.129.2.1.2.9", "value": "ORD-4711"}],
        meta={**META, "lastUpdated": "2024-07-01T12:00:00Z", "security": [NOPATIENT]},
        category=[{"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": "I"}]}],
        groupIdentifier={"value": "0f0f0f0f-1111-4222-8333-444455556666"},
        contained=contained,
        requester={"reference": "#ordinator"},
        encounter={"identifier": {"value": "vk-123"}},
        note=[{"text": "Dosen ändrad efter blodtryckskontroll: <90/60> & yrsel – åäö"}],
        reasonCode=[
            {"coding": [{"system": "urn:oid:1.2.752.116.2.3.1.1", "code": "1234", "display": "Hypertoni"}]},
            {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "46021000052104",
                        "display": "Annan ordinationsorsak",
                    }
                ],
                "text": "Hjärtklappning",
            },
            {"text": "Mot högt blodtryck"},
        ],
        priorPrescription={"reference": "MedicationRequest/mr-0"},
        medicationCodeableConcept={"coding": [NPL, ATC, PACK], "text": "Metoprolol"},
        dosageInstruction=[
            {
                "text": "1 tablett kl 08 och 20",
                "patientInstruction": "1+0+1",
                "route": {
                    "coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}]
                },
                "timing": {
                    "repeat": {
                        "timeOfDay": ["08:00:00", "20:00:00"],
                        "period": 1,
                        "periodUnit": "d",
                        "boundsPeriod": {
                            "start": "2024-06-30T00:00:00+02:00",
                            "end": "2024-12-31T00:00:00+01:00",
                        },
                    }
                },
                "doseAndRate": [{"doseQuantity": tablets(1)}],
                "maxDosePerPeriod": {
                    "numerator": tablets(3),
                    "denominator": {"value": 1, "system": UCUM, "code": "d"},
                },
            }
        ],
        dispenseRequest={
            "validityPeriod": {"end": "2025-06-30"},
            "performer": {"identifier": {"system": "urn:oid:1.3.6.1.4.1.9.6.1", "value": "7350045511119"}},
            "dispenseInterval": {"value": 14, "system": UCUM, "code": "d"},
            "quantity": {"value": 100, "unit": "st"},
        },
        substitution={"allowedBoolean": False},
        statusReason={"text": "Ska trappas ut vid yrsel"},
        extension=[
            {
                "url": profile.PRESCRIPTION_CHAIN_ID,
                "valueIdentifier": {"system": "urn:oid:1.2.752.129.2.1.2.9", "value": "KEDJA-1"},
            },
            {"url": profile.EVALUATION_TIME, "valueDateTime": "2024-09-01T10:00:00+02:00"},
            {"url": profile.START_OF_FIRST_TREATMENT, "valueDateTime": "2020-01-15"},
            {
                "url": profile.EVALUATOR,
                "extension": [
                    {"url": "practitioner", "valueReference": JONAS.role_ref},
                    {"url": "time", "valueDateTime": "2024-08-01T13:00:00+02:00"},
                ],
            },
            {"url": profile.SIGNATURE_TIME, "valueDateTime": "2024-07-01T15:00:00+02:00"},
        ],
    )


def test_rich_request_keeps_every_part(ctx, schemas):
    rec = map_one(rich_request(), ctx)
    assert_ok(answer(rec), schemas, also_21=True)
    root = etree.fromstring(rec.fragment)
    h = root.find("c:medicationMedicalRecordHeader", NS)
    assert t(h, "c:documentId") == "ORD-4711"
    assert t(h, "c:approvedForPatient") == "false"
    assert t(h, "c:careContactId") == "vk-123"
    assert (
        t(h, "c:accountableHealthcareProfessional/c:authorTime") == "20240701140000"
    )  # meta.lastUpdated, UTC+2
    assert t(h, "c:legalAuthenticator/c:signatureTime") == "20240701150000"
    assert t(h, "c:legalAuthenticator/c:legalAuthenticatorHSAId") == ASA.hsa_id
    mp = root.find(".//c:medicationPrescription", NS)
    assert (t(mp, "c:prescriptionId/c:root"), t(mp, "c:prescriptionId/c:extension")) == (
        "1.2.752.129.2.1.2.9",
        "ORD-4711",
    )
    assert t(mp, "c:prescriptionNote") == "Dosen ändrad efter blodtryckskontroll: <90/60> & yrsel – åäö"
    assert t(mp, "c:principalPrescriptionReason/c:reason/c:codeSystem") == "1.2.752.116.2.3.1.1"
    assert t(mp, "c:additionalPrescriptionReason/c:reason/c:code") == "46021000052104"
    assert t(mp, "c:additionalPrescriptionReason/c:otherReason") == "Hjärtklappning"
    assert t(mp, "c:treatmentPurpose") == "Mot högt blodtryck"
    assert t(mp, "c:evaluationTime") == "20240901100000"
    assert (t(mp, "c:prescriptionChainId/c:root"), t(mp, "c:prescriptionChainId/c:extension")) == (
        "1.2.752.129.2.1.2.9",
        "KEDJA-1",
    )
    assert rec.chain_id == "1.2.752.129.2.1.2.9:KEDJA-1"
    assert t(mp, "c:precedingPrescriptionId/c:extension") == f"{SOURCE}:mr-0"
    assert mp.find("c:succeedingPrescriptionId", NS) is None
    p = mp.find("c:prescriber", NS)
    assert t(p, "c:healthcareProfessionalHSAId") == "SE2300000000-L002"
    assert t(p, "c:healthcareProfessionalName") == "Henrik Sjöberg"
    assert t(p, "c:healthcareProfessionalRoleCode/c:originalText") == "Specialistläkare i geriatrik"
    assert t(p, "c:healthcareProfessionalOrgUnit/c:orgUnitName") == "Geriatriska kliniken"
    assert t(mp, "c:evaluator/c:healthcareProfessionalName") == "Jonas Lind"
    assert t(mp, "c:evaluator/c:healthcareProfessionalOrgUnit/c:orgUnitName") == HOUSING.name
    assert t(mp, "c:startOfFirstTreatment") == "20200115000000"
    assert (t(mp, "c:startOfTreatment"), t(mp, "c:endOfTreatment")) == ("20240630000000", "20241231000000")
    assert t(mp, "c:endOfTreatmentReason/c:originalText") == "Ska trappas ut vid yrsel"
    assert t(mp, "c:drug/c:drug/c:routeOfAdministration/c:code") == "26643006"
    d = mp.find("c:drug/c:dosage", NS)
    assert t(d, "c:shortNotation") == "1+0+1" and t(d, "c:unitDose/c:originalText") == "tablett"
    times = [e.text for e in d.iterfind("c:setDosage/c:occasionDosage/c:administration/c:time", NS)]
    assert times == ["08:00", "20:00"]
    assert t(d, "c:maximumDosage/c:periodDosage/c:dose/c:high") == "3"
    da = mp.find("c:dispensationAuthorization", NS)
    assert t(da, "c:dispensationAuthorizationId/c:root") == "0f0f0f0f-1111-4222-8333-444455556666"
    assert da.find("c:dispensationAuthorizationId/c:extension", NS) is None
    assert t(da, "c:validUntil") == "20250630"
    assert (t(da, "c:receivingPharmacy/c:root"), t(da, "c:receivingPharmacy/c:extension")) == (
        "1.3.6.1.4.1.9.6.1",
        "7350045511119",
    )
    assert (
        t(da, "c:minimumDispensationInterval/c:value"),
        t(da, "c:minimumDispensationInterval/c:unit"),
    ) == ("14", "d")
    assert (t(da, "c:totalAmount"), t(da, "c:packageUnit")) == ("100", "st")
    assert t(da, "c:dispensationAuthorizer/c:healthcareProfessionalHSAId") == "SE2300000000-L002"
    assert t(da, "c:prescriptionSignatura") == "1 tablett kl 08 och 20"
    assert t(da, "c:nonReplaceable") == "Prescriber"
    assert t(da, "c:drug/c:drugArticle/c:nplPackId/c:code") == PACK["code"]
    adms = mp.findall("c:administration", NS)
    assert len(adms) == 2  # the not-done one is left out
    a1, a3 = adms
    assert t(a1, "c:administrationId/c:extension") == f"{SOURCE}:ORD-4711#adm-1"
    assert t(a1, "c:administrationTime/c:start") == "20240701083000"  # 06:30Z in Swedish summer time
    assert t(a1, "c:administrationComment") == "Given med yoghurt, åäö <&>"
    assert t(a1, "c:routeOfAdministration/c:originalText") == "Oralt"
    assert t(a1, "c:administeringHealthcareProfessional/c:authorTime") == "20240701083500"
    assert t(a1, "c:administeringHealthcareProfessional/c:healthcareProfessionalHSAId") == OMAR.hsa_id
    assert t(a1, "c:drug/c:dosage/c:setDosage/c:singleDose/c:time") == "20240701083000"
    assert (t(a3, "c:administrationId/c:root"), t(a3, "c:administrationId/c:extension")) == (
        "1.2.752.129.2.1.2.9",
        "adm-77",
    )
    assert a3.find("c:administrationTime/c:end", NS) is None
    assert t(a3, "c:drug/c:unstructuredDrugInformation/c:unstructuredInformation") == TEXT
    assert t(a3, "c:administeringHealthcareProfessional/c:healthcareProfessionalName") == "Henrik Sjöberg"
    assert rec.period == ("20240301", "20241231")


def test_rich_statement(ctx, schemas):
    raw = med_statement(
        "ms-rich",
        identifier=[{"value": "3f2504e0-4f89-41d3-9a0c-0305e82c3301"}],
        context={"reference": "Encounter/enc-1"},
        category={"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": "I"}]},
        statusReason=[
            {"coding": [{"system": "http://snomed.info/sct", "code": "62014003", "display": "Biverkan"}]}
        ],
        status="stopped",
        effectivePeriod={"start": "2024-01-01", "end": "2024-02-01T12:00:00+01:00"},
        extension=[
            prescriber_ext(),
            {
                "url": profile.PRESCRIPTION_CHAIN_ID,
                "valueIdentifier": {"value": "urn:uuid:6a2f41a3-c54c-fce8-32d2-0324e1c32e22"},
            },
            {"url": profile.PRECEDING_PRESCRIPTION, "valueIdentifier": {"value": "ms-0"}},
            {
                "url": profile.SUCCEEDING_PRESCRIPTION,
                "valueReference": {
                    "reference": "MedicationStatement/ms-2",
                    "identifier": {"system": "urn:oid:1.2.752.129.2.1.2.9", "value": "X2"},
                },
            },
        ],
    )
    ctx.add(
        validate(
            {
                "resourceType": "Encounter",
                "id": "enc-1",
                "status": "finished",
                "class": {"code": "HH"},
                "identifier": [{"value": "besök-9"}],
            }
        )
    )
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas, also_21=True)
    mp = mp_of(rec)
    assert t(mp, "c:prescriptionId/c:root") == "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    assert mp.find("c:prescriptionId/c:extension", NS) is None
    assert rec.chain_id == "6a2f41a3-c54c-fce8-32d2-0324e1c32e22"
    assert t(mp, "c:precedingPrescriptionId/c:extension") == f"{SOURCE}:ms-0"
    assert t(mp, "c:succeedingPrescriptionId/c:extension") == "X2"
    assert t(mp, "c:prescriptionStatus") == "Inactive"
    assert t(mp, "c:endOfTreatment") == "20240201120000"
    assert t(mp, "c:endOfTreatmentReason/c:code") == "62014003"
    assert t(etree.fromstring(rec.fragment), ".//c:careContactId") == "besök-9"


# -- drug choice ----------------------------------------------------------------------------------------
MEDICATION = {
    "resourceType": "Medication",
    "id": "med-kalk",
    "form": {"text": "Tuggtablett"},
    "code": {"coding": [ATC | {"code": "A12AX", "display": "Kalcium, kombinationer med vitamin D"}]},
    "ingredient": [
        {
            "itemCodeableConcept": {"text": "Kalciumkarbonat"},
            "strength": {
                "numerator": {"value": 500, "unit": "mg", "system": UCUM, "code": "mg"},
                "denominator": {"value": 1, "system": UCUM, "code": "{tablett}"},
            },
        }
    ],
}


@pytest.mark.parametrize(
    "medication, kind, expect",
    [
        ({"medicationCodeableConcept": {"coding": [NPL, ATC]}}, "drug", {"c:nplId/c:code": NPL["code"]}),
        (
            {"medicationCodeableConcept": {"coding": [ATC], "text": "Metoprolol"}},
            "drug",
            {"c:atcCode/c:code": "C07AB02"},
        ),
        (
            {
                "medicationCodeableConcept": {
                    "coding": [{**NPL, "display": None}],
                    "text": "Metoprolol tablett",
                }
            },
            "drug",
            {"c:nplId/c:displayName": "Metoprolol tablett"},
        ),
        (
            {"medicationCodeableConcept": {"coding": [PACK]}},
            "drugArticle",
            {"c:nplPackId/c:code": PACK["code"]},
        ),
        (
            {
                "medicationCodeableConcept": {
                    "coding": [
                        {"system": profile.VARUNUMMER, "code": "123456", "display": "Inkontinensskydd"}
                    ]
                }
            },
            "merchandise",
            {"c:articleNumber/c:codeSystem": "1.2.752.129.2.2.3.1.1"},
        ),
        (
            {"medicationCodeableConcept": {"text": TEXT}},
            "unstructuredDrugInformation",
            {"c:unstructuredInformation": TEXT},
        ),
        (
            {
                "medicationCodeableConcept": {
                    "coding": [{"system": "urn:x-lokal", "code": "77", "display": "Lokalt preparat"}]
                }
            },
            "unstructuredDrugInformation",
            {"c:unstructuredInformation": "Lokalt preparat"},
        ),
        (
            {"medicationReference": {"reference": "Medication/med-kalk"}},
            "drug",
            {
                "c:atcCode/c:code": "A12AX",
                "c:pharmaceuticalForm": "Tuggtablett",
                "c:strength": "500",
                "c:strengthUnit": "mg",
            },
        ),
        (
            {
                "medicationReference": {"reference": "#g"},
                "contained": [
                    MEDICATION
                    | {
                        "id": "g",
                        "code": None,
                        "ingredient": [
                            {
                                "itemCodeableConcept": {"text": "Paracetamol"},
                                "strength": {
                                    "numerator": {"value": 24, "unit": "mg", "system": UCUM, "code": "mg"},
                                    "denominator": {"value": 1, "system": UCUM, "code": "mL"},
                                },
                            }
                        ],
                    }
                ],
            },
            "generics",
            {
                "c:substance": "Paracetamol",
                "c:strength/c:value": "24",
                "c:strength/c:unit": "mg/mL",
                "c:form": "Tuggtablett",
            },
        ),
        (
            {"medicationReference": {"reference": "Medication/saknas", "display": "Okänt preparat"}},
            "unstructuredDrugInformation",
            {"c:unstructuredInformation": "Okänt preparat"},
        ),
    ],
    ids=[
        "npl+atc",
        "atc-only",
        "npl-display-from-text",
        "pack",
        "varunummer",
        "free-text",
        "unknown-system",
        "medication-resource",
        "contained-generics",
        "unresolved-display",
    ],
)
def test_drug_choices(ctx, schemas, medication, kind, expect):
    ctx.add(validate(copy.deepcopy(MEDICATION)))
    raw = med_request()
    del raw["medicationCodeableConcept"]
    raw.update(copy.deepcopy(medication))
    raw["contained"] = [
        {k: v for k, v in c.items() if v is not None} for c in raw.get("contained", [])
    ] or None
    if raw["contained"] is None:
        del raw["contained"]
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    choice = mp_of(rec).find("c:drug", NS)
    present = [etree.QName(c).localname for c in choice if etree.QName(c).localname != "dosage"]
    assert present == [kind]
    for path, value in expect.items():
        assert t(choice, f"c:{kind}/{path}") == value


def test_atc_only_product_is_not_valid_for_21_consumers(ctx, schemas):
    """TKB: a 2.1 consumer is not compatible with a 2.2 producer because nplId became optional."""
    raw = med_request(medicationCodeableConcept={"coding": [ATC]})
    resp = answer(map_one(raw, ctx))
    assert schemas["2.2"].validate(resp)
    assert not schemas["2.1"].validate(resp)


# -- dosage ---------------------------------------------------------------------------------------------
def dosage_el(ctx, dosage: dict, schemas) -> etree._Element:
    rec = map_one(med_request(dosageInstruction=[dosage]), ctx)
    assert_ok(answer(rec), schemas)
    return mp_of(rec).find("c:drug/c:dosage", NS)


def test_period_dosage_every_six_hours(ctx, schemas):
    d = dosage_el(
        ctx,
        {
            "text": "1 tablett var 6:e timme",
            "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": tablets(1)}],
        },
        schemas,
    )
    assert (
        t(d, "c:setDosage/c:periodDosage/c:period/c:value"),
        t(d, "c:setDosage/c:periodDosage/c:period/c:unit"),
    ) == ("6", "h")


def test_frequency_over_longer_period_and_range_dose(ctx, schemas):
    d = dosage_el(
        ctx,
        {
            "timing": {"repeat": {"frequency": 3, "period": 2, "periodUnit": "wk"}},
            "doseAndRate": [{"doseRange": {"low": tablets(1), "high": tablets(2)}}],
        },
        schemas,
    )
    f = d.find("c:setDosage/c:frequencyDosage", NS)
    assert (t(f, "c:frequency/c:value"), t(f, "c:frequency/c:unit")) == ("1.5", "/wk")
    assert (t(f, "c:dose/c:low"), t(f, "c:dose/c:high")) == ("1", "2")
    assert t(d, "c:dosageInstruction") == "1-2 tablett 3 gånger per 2 vecka"  # built when no text is given


def test_occasion_dosage_from_when_codes(ctx, schemas):
    d = dosage_el(
        ctx,
        {
            "text": "2 tabletter morgon och till natten",
            "timing": {"repeat": {"when": ["MORN", "HS"], "period": 2, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": tablets(2)}],
        },
        schemas,
    )
    occ = d.find("c:setDosage/c:occasionDosage", NS)
    assert t(occ, "c:period/c:value") == "2"
    assert [e.text for e in occ.iterfind("c:administration/c:time", NS)] == ["morgon", "till natten"]
    assert {e.text for e in occ.iterfind("c:administration/c:dayOfPeriod", NS)} == {"1"}


def test_single_dose_at_an_event(ctx, schemas):
    d = dosage_el(
        ctx,
        {
            "text": "Engångsdos före ingreppet",
            "timing": {"event": ["2024-03-05T07:00:00+01:00"]},
            "doseAndRate": [{"doseQuantity": {"value": 10, "unit": "mg", "system": UCUM, "code": "mg"}}],
        },
        schemas,
    )
    assert t(d, "c:setDosage/c:singleDose/c:time") == "20240305070000"
    assert t(d, "c:setDosage/c:singleDose/c:dose/c:unit") == "mg"


def test_unstructured_dosage_and_length_of_treatment(ctx, schemas):
    d = dosage_el(
        ctx,
        {
            "text": "Enligt särskilt schema <se ordination> & följ upp",
            "timing": {"repeat": {"boundsDuration": {"value": 10, "system": UCUM, "code": "d"}}},
        },
        schemas,
    )
    assert (
        t(d, "c:setDosage/c:unstructuredDosageInformation/c:text")
        == "Enligt särskilt schema <se ordination> & följ upp"
    )
    assert (
        t(d, "c:lengthOfTreatment/c:treatmentInterval/c:low"),
        t(d, "c:lengthOfTreatment/c:isMaximumTreatmentTime"),
    ) == ("10", "false")


def test_length_of_treatment_range(ctx, schemas):
    d = dosage_el(
        ctx,
        {
            "text": "1 tablett dagligen i 5-6 veckor",
            "timing": {
                "repeat": {
                    "frequency": 1,
                    "period": 1,
                    "periodUnit": "d",
                    "boundsRange": {
                        "low": {"value": 5, "system": UCUM, "code": "wk"},
                        "high": {"value": 6, "system": UCUM, "code": "wk"},
                    },
                }
            },
            "doseAndRate": [{"doseQuantity": tablets(1)}],
        },
        schemas,
    )
    iv = d.find("c:lengthOfTreatment/c:treatmentInterval", NS)
    assert (t(iv, "c:low"), t(iv, "c:high"), t(iv, "c:unit")) == ("5", "6", "wk")


@pytest.mark.parametrize(
    "dosage, condition, inner",
    [
        (
            {
                "asNeededBoolean": True,
                "text": "1 tablett vid behov",
                "doseAndRate": [{"doseQuantity": tablets(1)}],
            },
            "vid behov",
            "singleDose",
        ),
        (
            {
                "asNeededCodeableConcept": {"text": "vid oro"},
                "text": "1 tablett vid oro, högst 2 per dygn",
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": tablets(1)}],
            },
            "vid oro",
            "frequencyDosage",
        ),
        (
            {
                "asNeededBoolean": True,
                "additionalInstruction": [{"text": "vid andnöd"}],
                "text": "2 puffar vid andnöd",
            },
            "vid andnöd",
            "unstructuredDosageInformation",
        ),
    ],
    ids=["boolean", "codeable", "instruction-only"],
)
def test_as_needed_dosage(ctx, schemas, dosage, condition, inner):
    d = dosage_el(ctx, dosage, schemas)
    assert d.find("c:setDosage", NS) is None
    assert t(d, "c:conditionalDosage/c:conditionDescription") == condition
    assert d.find(f"c:conditionalDosage/c:{inner}", NS) is not None


# -- type, status, chains ---------------------------------------------------------------------------------
def test_discontinuation_has_no_dosage_or_prescription_and_is_the_active_link(ctx, schemas):
    raw = med_request(
        "mr-u",
        status="completed",
        category=[{"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": "U"}]}],
        priorPrescription={"reference": "MedicationRequest/mr-i"},
        dosageInstruction=[{"timing": {"repeat": {"boundsPeriod": {"end": "2024-04-01"}}}}],
        dispenseRequest={"quantity": {"value": 1, "unit": "st"}},
        extension=[{"url": profile.PRESCRIPTION_CHAIN_ID, "valueIdentifier": {"value": "k-1"}}],
    )
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    mp = mp_of(rec)
    assert t(mp, "c:typeOfPrescription") == "U" and t(mp, "c:prescriptionStatus") == "Active"
    assert mp.find("c:startOfTreatment", NS) is None
    assert t(mp, "c:endOfTreatment") == "20240401000000"
    assert mp.find("c:drug/c:dosage", NS) is None and mp.find("c:dispensationAuthorization", NS) is None
    assert rec.chain_id == f"{LOCAL}:{SOURCE}:k-1"
    assert rec.period == ("20240301", "20240401")


@pytest.mark.parametrize(
    "rtype, status, expected",
    [
        ("MedicationRequest", "active", "Active"),
        ("MedicationRequest", "on-hold", "Active"),
        ("MedicationRequest", "completed", "Inactive"),
        ("MedicationRequest", "stopped", "Inactive"),
        ("MedicationRequest", "cancelled", "Inactive"),
        ("MedicationStatement", "active", "Active"),
        ("MedicationStatement", "intended", "Active"),
        ("MedicationStatement", "completed", "Inactive"),
        ("MedicationStatement", "stopped", "Inactive"),
        ("MedicationStatement", "not-taken", "Inactive"),
    ],
)
def test_status(ctx, rtype, status, expected):
    raw = (med_request if rtype == "MedicationRequest" else med_statement)(status=status)
    rec = map_one(raw, ctx)
    assert rec.status == expected == t(mp_of(rec), "c:prescriptionStatus")


def test_a_link_with_a_successor_is_inactive(ctx):
    raw = med_request(
        extension=[
            {
                "url": profile.SUCCEEDING_PRESCRIPTION,
                "valueReference": {"reference": "MedicationRequest/mr-2"},
            }
        ]
    )
    rec = map_one(raw, ctx)
    assert rec.status == "Inactive"
    assert t(mp_of(rec), "c:succeedingPrescriptionId/c:extension") == f"{SOURCE}:mr-2"


@pytest.mark.parametrize(
    "extra", [{"status": "draft"}, {"intent": "proposal"}, {"intent": "plan"}, {"doNotPerform": True}]
)
def test_requests_that_are_no_ordination_publish_nothing(ctx, extra):
    assert map_medication_request(validate(med_request(**extra)), ctx) == []


def test_chain_links_point_at_each_others_prescription_ids(ctx):
    first = map_one(
        med_request(
            "11111111-2222-4333-8444-555555555555",
            extension=[
                {
                    "url": profile.SUCCEEDING_PRESCRIPTION,
                    "valueReference": {"reference": "MedicationRequest/mr-local"},
                }
            ],
        ),
        ctx,
    )
    second = map_one(
        med_request(
            "mr-local",
            priorPrescription={"reference": "MedicationRequest/11111111-2222-4333-8444-555555555555"},
        ),
        ctx,
    )
    ids = {
        "first": (
            t(mp_of(first), "c:prescriptionId/c:root"),
            t(mp_of(first), "c:prescriptionId/c:extension"),
        ),
        "second": (
            t(mp_of(second), "c:prescriptionId/c:root"),
            t(mp_of(second), "c:prescriptionId/c:extension"),
        ),
    }
    assert ids["first"] == (
        t(mp_of(second), "c:precedingPrescriptionId/c:root"),
        t(mp_of(second), "c:precedingPrescriptionId/c:extension"),
    )
    assert ids["second"] == (
        t(mp_of(first), "c:succeedingPrescriptionId/c:root"),
        t(mp_of(first), "c:succeedingPrescriptionId/c:extension"),
    )


# -- self-medication, period, times ---------------------------------------------------------------------
def test_self_medication_by_patient_requester(ctx, schemas):
    raw = med_request(requester={"reference": "Patient/pat-1"})
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    mp = mp_of(rec)
    assert t(mp, "c:selfMedication") == "true" and mp.find("c:prescriber", NS) is None
    assert rec.period == ("20240302", None)  # no prescriber: startOfTreatment


def test_self_medication_statement_without_start_uses_registration_time(ctx, schemas):
    raw = med_statement(
        extension=[{"url": profile.SELF_MEDICATION, "valueBoolean": True}],
        category={"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": "U"}]},
    )
    del raw["effectivePeriod"]
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    assert rec.period == ("20240304", None)


def test_insertion_without_start_defaults_to_registration_time(ctx):
    raw = med_statement(extension=[{"url": profile.SELF_MEDICATION, "valueBoolean": True}])
    del raw["effectivePeriod"]
    assert t(mp_of(map_one(raw, ctx)), "c:startOfTreatment") == "20240304090000"


def test_times_are_swedish_local_time(ctx):
    rec = map_one(med_request(authoredOn="2024-07-01T06:00:00Z"), ctx)
    assert t(mp_of(rec), "c:prescriber/c:authorTime") == "20240701080000"
    rec = map_one(med_request(authoredOn="2024-01-15T23:30:00Z"), ctx)
    assert t(mp_of(rec), "c:prescriber/c:authorTime") == "20240116003000"
    assert rec.period[0] == "20240116"


def test_prescriber_never_carries_care_unit_or_giver_even_with_provenance(ctx, schemas):
    ctx.add(
        validate(
            {
                "resourceType": "Provenance",
                "id": "prov-1",
                "target": [{"reference": "MedicationRequest/mr-p"}],
                "recorded": "2024-03-01T10:00:00+01:00",
                "agent": [
                    {
                        "type": {"coding": [{"code": "author"}]},
                        "who": {"identifier": {"system": HSA_SYSTEM, "value": HOUSING.hsa_id}},
                    },
                    {
                        "type": {"coding": [{"code": "custodian"}]},
                        "who": {"identifier": {"system": HSA_SYSTEM, "value": "SE2120001231-VG99"}},
                    },
                ],
            }
        )
    )
    rec = map_one(med_request("mr-p", requester=JONAS.role_ref, recorder=JONAS.role_ref), ctx)
    assert_ok(answer(rec), schemas)
    assert (
        rec.header.author.care_unit == HOUSING.hsa_id and rec.header.author.care_giver == "SE2120001231-VG99"
    )
    p = mp_of(rec).find("c:prescriber", NS)
    assert t(p, "c:healthcareProfessionalOrgUnit/c:orgUnitHSAId") == HOUSING.hsa_id
    assert p.find("c:healthcareProfessionalCareUnitHSAId", NS) is None


# -- rejections -----------------------------------------------------------------------------------------
def _bad_statement_without_prescriber() -> dict:
    raw = med_statement()
    raw["extension"] = []
    return raw


@pytest.mark.parametrize(
    "raw, field",
    [
        (_bad_statement_without_prescriber(), "extension(prescriber)"),
        (med_request(requester={"display": "Någon"}), "requester"),
        (med_request(authoredOn=None), "authoredOn"),
        (med_statement(dateAsserted=None), "dateAsserted"),
        (med_statement(extension=[prescriber_ext(time=None)]), "extension(prescriber)"),
        (
            med_request(medicationCodeableConcept={"coding": [{"system": "http://x", "code": "1"}]}),
            "medication[x]",
        ),
        (
            med_request(
                medicationCodeableConcept=None, medicationReference={"reference": "Medication/saknas"}
            ),
            "medication[x]",
        ),
        (med_request(status="unknown"), "status"),
        (
            med_request(category=[{"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": "X"}]}]),
            "category",
        ),
        (med_request(dispenseRequest={"quantity": {"value": 1, "unit": "st"}}), "groupIdentifier"),
        (
            med_request(extension=[{"url": profile.PRESCRIPTION_CHAIN_ID, "valueString": "k"}]),
            "extension(prescription-chain-id)",
        ),
        (med_request(dosageInstruction=[{"doseAndRate": [{"doseQuantity": tablets(1)}]}]), "dosage"),
        (
            med_request(
                dosageInstruction=[
                    {
                        "text": "x",
                        "timing": {"repeat": {"frequency": 1, "period": 0}},
                        "doseAndRate": [{"doseQuantity": tablets(1)}],
                    }
                ]
            ),
            "dosage.timing.repeat.period",
        ),
        (
            med_request(
                contained=[
                    {
                        "resourceType": "MedicationAdministration",
                        "id": "a",
                        "status": "completed",
                        "medicationCodeableConcept": {"text": "x"},
                        "subject": {"reference": "Patient/pat-1"},
                        "effectivePeriod": {},
                    }
                ]
            ),
            "contained(MedicationAdministration).effective[x]",
        ),
        (
            med_request(subject={"display": "Tolvan", "identifier": {"system": "urn:x", "value": PNR}}),
            "subject",
        ),
        (
            med_request(
                subject={
                    "identifier": {
                        "system": "http://electronichealth.se/identifier/personnummer",
                        "value": PNR + "9",
                    }
                }
            ),
            "subject.identifier.value",
        ),
    ],
    ids=[
        "no-prescriber",
        "requester-not-professional",
        "no-authoredOn",
        "no-dateAsserted",
        "prescriber-no-time",
        "no-drug",
        "unresolved-medication",
        "unknown-status",
        "unknown-type",
        "dispense-without-id",
        "chain-not-identifier",
        "dose-without-timing-or-text",
        "zero-period",
        "administration-without-time",
        "no-patient-id",
        "bad-patient-id",
    ],
)
def test_bad_input_is_rejected_naming_the_field(ctx, raw, field):
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(MappingError) as err:
        dispatch.map_resource(validate(raw), ctx)
    assert err.value.field == field
    assert PNR not in str(err.value) and "Tolvan" not in str(err.value)


def test_unknown_status_of_statement_is_rejected(ctx):
    with pytest.raises(MappingError) as err:
        map_medication_statement(validate(med_statement(status="unknown")), ctx)
    assert err.value.field == "status"


# -- demo data ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def demo_store(request, tmp_path_factory):
    require(request.param)
    folder = tmp_path_factory.mktemp("gmh")
    urls = StoreUrls(folder)
    request.addfinalizer(urls.cleanup)
    entries = supporting()
    for p in WORLD.patients:
        entries += demo.resources(WORLD, p, random.Random(f"seed-{p.id}"))
    path = folder / "bundle.json"
    path.write_bytes(
        orjson.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in entries]}
        )
    )
    engine = open_store(urls.url(request.param))
    request.addfinalizer(engine.dispose)
    report = ingest(engine, [path])
    return engine, report


def stored(engine, patient, **filters) -> etree._Element:
    ptype = "1.2.752.129.2.1.3.1" if patient.system.endswith("personnummer") else "1.2.752.129.2.1.3.3"
    q = store.RecordQuery(
        contract=CONTRACT.key, source_system=SOURCE, patient_id=patient.number, patient_type=ptype, **filters
    )
    with engine.connect() as conn:
        frags = list(store.query(conn, q))
    resp = answer()
    result = resp[-1]
    for f in frags:
        result.addprevious(etree.fromstring(f))
    return resp


def test_demo_ingests_without_rejections_and_answers_are_valid(demo_store, schemas):
    engine, report = demo_store
    assert report.rejected == []
    assert report.published[CONTRACT.key] == 9 * len(WORLD.patients)
    for p in WORLD.patients:
        resp = stored(engine, p)
        assert len(resp) - 1 == 9
        assert_ok(resp, schemas, also_21=False)
        assert not schemas["2.1"].validate(resp) or has_npl_everywhere(resp)


def test_demo_variety(demo_store):
    engine, _ = demo_store
    seen: dict[str, set] = {
        k: set() for k in ("kind", "status", "self", "approved", "unit", "choice", "cond")
    }
    for p in WORLD.patients:
        resp = stored(engine, p)
        seen["kind"] |= set(resp.xpath(".//c:typeOfPrescription/text()", namespaces=NS))
        seen["status"] |= set(resp.xpath(".//c:prescriptionStatus/text()", namespaces=NS))
        seen["self"] |= set(resp.xpath(".//c:selfMedication/text()", namespaces=NS))
        seen["approved"] |= set(resp.xpath(".//c:approvedForPatient/text()", namespaces=NS))
        seen["unit"] |= set(resp.xpath(".//c:healthcareProfessionalCareUnitHSAId/text()", namespaces=NS))
        seen["cond"] |= set(resp.xpath(".//c:conditionDescription/text()", namespaces=NS))
        for drug in resp.iterfind(".//c:medicationPrescription/c:drug", NS):
            product = drug.find("c:drug", NS)
            if product is not None:
                seen["choice"].add("npl+atc" if product.find("c:nplId", NS) is not None else "atc")
            else:
                seen["choice"] |= {
                    etree.QName(c).localname for c in drug if etree.QName(c).localname != "dosage"
                }
        text = etree.tostring(resp, encoding="unicode")
        assert "&lt;" in text and "&amp;" in text and "ö" in text
        assert resp.find(".//c:dispensationAuthorization", NS) is not None
        assert resp.find(".//c:administration", NS) is not None
    assert seen["kind"] == {"I", "U"} and seen["status"] == {"Active", "Inactive"}
    assert seen["self"] == {"true", "false"} and seen["approved"] == {"true", "false"}
    assert seen["unit"] == {u.hsa_id for u in WORLD.units}
    assert seen["cond"]
    assert {"npl+atc", "atc", "unstructuredDrugInformation", "generics"} <= seen["choice"]


def test_demo_chain_filter_and_status_filter(demo_store):
    engine, _ = demo_store
    for p in WORLD.patients:
        resp = stored(engine, p)
        chains = {}
        for mp in resp.iterfind(".//c:medicationPrescription", NS):
            root, ext = t(mp, "c:prescriptionChainId/c:root"), t(mp, "c:prescriptionChainId/c:extension")
            if root:
                chains.setdefault(f"{root}:{ext}" if ext else root, []).append(mp)
        assert chains, p.id
        for chain_id, links in chains.items():
            assert len(links) >= 3
            filtered = stored(engine, p, chain_id=chain_id)
            assert len(filtered) - 1 == len(links)
            statuses = [
                t(mp, "c:prescriptionStatus") for mp in filtered.iterfind(".//c:medicationPrescription", NS)
            ]
            assert statuses.count("Active") == 1  # only the last link, the utsättning
            kinds = [
                t(mp, "c:typeOfPrescription") for mp in filtered.iterfind(".//c:medicationPrescription", NS)
            ]
            assert kinds.count("U") == 1
        active = stored(engine, p, status="Active")
        assert {
            t(mp, "c:prescriptionStatus") for mp in active.iterfind(".//c:medicationPrescription", NS)
        } == {"Active"}
        inactive = stored(engine, p, status="Inactive")
        assert len(active) + len(inactive) - 2 == len(resp) - 1


def test_demo_is_deterministic():
    p = WORLD.patients[0]
    assert demo.resources(WORLD, p, random.Random(1)) == demo.resources(WORLD, p, random.Random(1))


def test_patient_requester_cannot_carry_a_prescription(ctx):
    raw = med_request(
        requester={"reference": "Patient/pat-1"},
        groupIdentifier={"value": "recept-1"},
        dispenseRequest={"quantity": {"value": 1, "unit": "st"}},
    )
    with pytest.raises(MappingError) as err:
        map_medication_request(validate(raw), ctx)
    assert err.value.field == "requester"


def test_patient_as_information_source_is_no_professional(ctx, schemas):
    ctx.add(
        validate(
            {
                "resourceType": "Provenance",
                "id": "prov-ms",
                "recorded": "2024-03-04T09:00:00+01:00",
                "target": [{"reference": "MedicationStatement/ms-pat"}],
                "agent": [
                    {
                        "type": {"coding": [{"code": "author"}]},
                        "who": {"reference": f"Organization/{HOME_CARE.id}"},
                    },
                    {
                        "type": {"coding": [{"code": "custodian"}]},
                        "who": {"reference": f"Organization/{WORLD.care_giver.id}"},
                    },
                ],
            }
        )
    )
    raw = med_statement(
        "ms-pat", informationSource={"reference": "Patient/pat-1", "display": "Tolvan Tolvansson"}
    )
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    prof = etree.fromstring(rec.fragment).find(".//c:accountableHealthcareProfessional", NS)
    assert prof.find("c:healthcareProfessionalName", NS) is None
    assert t(prof, "c:healthcareProfessionalCareUnitHSAId") == HOME_CARE.hsa_id
    assert "Tolvan" not in rec.fragment.decode()


# -- MedicationStatement.basedOn -> MedicationRequest as the prescriber (EHDS-TK MED-005) ----------------
def based_on_statement(rid: str = "ms-b", request: str = "MedicationRequest/mr-b", **extra) -> dict:
    """A statement without the prescriber extension, based on a MedicationRequest."""
    raw = med_statement(rid, **{"basedOn": [{"reference": request}], **extra})
    raw["extension"] = [e for e in raw.get("extension", []) if e["url"] != profile.PRESCRIBER]
    return raw


def by_role(rid: str = "mr-b", **extra) -> dict:
    """The request the statement is based on: prescribed by Maria through her PractitionerRole."""
    fields = {"requester": MARIA.role_ref, "authoredOn": "2024-02-20T14:30:00+01:00", **extra}
    return med_request(rid, **fields)


def test_statement_prescriber_from_based_on_request_in_the_same_input(ctx, schemas):
    ctx.add(validate(by_role()))
    rec = map_one(based_on_statement(), ctx)
    assert_ok(answer(rec), schemas, also_21=True)
    p = mp_of(rec).find("c:prescriber", NS)
    assert t(p, "c:authorTime") == "20240220143000"  # authoredOn, not dateAsserted
    assert t(p, "c:healthcareProfessionalHSAId") == MARIA.hsa_id
    assert t(p, "c:healthcareProfessionalName") == f"{MARIA.given} {MARIA.family}"
    assert t(p, "c:healthcareProfessionalRoleCode/c:code") == MARIA.role_code
    assert t(p, "c:healthcareProfessionalOrgUnit/c:orgUnitHSAId") == MARIA.unit.hsa_id
    # TKB Övriga regler 1.9: never care unit or care giver in the body, even when the role's unit gives them
    assert p.find("c:healthcareProfessionalCareUnitHSAId", NS) is None
    assert p.find("c:healthcareProfessionalCareGiverHSAId", NS) is None
    assert t(mp_of(rec), "c:selfMedication") == "false"
    assert rec.period == ("20240220", None)  # the datePeriod starts at the prescription decision
    # the header still names who registered the statement (informationSource), not the prescriber
    assert rec.header.author.hsa_id == JONAS.hsa_id and rec.header.author.time == "20240304090000"


def test_statement_prescriber_from_a_request_stored_earlier(schemas):
    """Resolved through the Context's store lookup, as ingest does for what an earlier run kept."""
    kept = {"MedicationRequest/mr-b": orjson.dumps(by_role())}

    def lookup(ref: str):
        body = kept.get(ref)
        return validate(orjson.loads(body)) if body else None

    c = Context(lookup=lookup)
    for raw in supporting():
        c.add(validate(raw))
    rec = map_one(based_on_statement(), c)
    assert_ok(answer(rec), schemas)
    assert t(mp_of(rec), "c:prescriber/c:healthcareProfessionalHSAId") == MARIA.hsa_id
    assert t(mp_of(rec), "c:prescriber/c:authorTime") == "20240220143000"


def test_prescriber_extension_wins_over_based_on(ctx, schemas):
    ctx.add(validate(by_role()))
    raw = med_statement(basedOn=[{"reference": "MedicationRequest/mr-b"}])  # keeps the extension (Leila)
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    assert t(mp_of(rec), "c:prescriber/c:healthcareProfessionalHSAId") == DOCTOR["identifier"]["value"]
    assert t(mp_of(rec), "c:prescriber/c:authorTime") == "20240228150000"
    # an unresolvable basedOn does not matter while the extension is there
    raw = med_statement(basedOn=[{"reference": "MedicationRequest/saknas"}])
    assert t(mp_of(map_one(raw, ctx)), "c:prescriber/c:authorTime") == "20240228150000"


def test_based_on_contained_request_and_other_based_on_kinds(ctx, schemas):
    """A contained request (as fhir-output.md writes a förskrivning) counts; a CarePlan in basedOn is
    ignored; the first decided ordination among several requests is used."""
    ctx.add(validate(med_request("mr-plan", intent="plan", requester=ASA.role_ref)))
    contained = med_request("disp", requester=copy.deepcopy(DOCTOR), authoredOn="2024-02-01T08:00:00+01:00")
    for key in ("meta", "recorder"):
        del contained[key]
    raw = based_on_statement(
        contained=[contained],
        basedOn=[
            {"reference": "CarePlan/cp-1"},
            {"reference": "MedicationRequest/mr-plan"},
            {"reference": "#disp"},
        ],
    )
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    p = mp_of(rec).find("c:prescriber", NS)
    assert t(p, "c:healthcareProfessionalHSAId") == DOCTOR["identifier"]["value"]
    assert t(p, "c:authorTime") == "20240201080000"


def test_based_on_request_with_patient_requester_is_self_medication(ctx, schemas):
    ctx.add(validate(med_request("mr-b", requester={"reference": "Patient/pat-1"})))
    rec = map_one(based_on_statement(), ctx)
    assert_ok(answer(rec), schemas)
    mp = mp_of(rec)
    assert t(mp, "c:selfMedication") == "true" and mp.find("c:prescriber", NS) is None
    # the statement's own self-medication extension still has the last word
    raw = based_on_statement(extension=[{"url": profile.SELF_MEDICATION, "valueBoolean": False}])
    with pytest.raises(MappingError) as err:
        map_one(raw, ctx)
    assert err.value.field == "basedOn.requester"


def test_unresolvable_based_on_is_a_statement_without_prescriber(ctx, schemas):
    """Neither in this input nor stored: rejected as any statement without prescriber would be, unless it
    is self-medication; the rejection names basedOn and says what to send."""
    with pytest.raises(MappingError) as err:
        map_one(based_on_statement(request="MedicationRequest/saknas"), ctx)
    assert err.value.field == "basedOn"
    assert "MedicationRequest that could not be resolved" in str(err.value)
    raw = based_on_statement(
        request="MedicationRequest/saknas",
        extension=[{"url": profile.SELF_MEDICATION, "valueBoolean": True}],
    )
    rec = map_one(raw, ctx)
    assert_ok(answer(rec), schemas)
    assert mp_of(rec).find("c:prescriber", NS) is None and t(mp_of(rec), "c:selfMedication") == "true"


@pytest.mark.parametrize(
    "request_raw, field",
    [
        (by_role(intent="proposal"), "basedOn"),
        (by_role(status="draft"), "basedOn"),
        (by_role(doNotPerform=True), "basedOn"),
        (by_role(authoredOn=None), "basedOn.authoredOn"),
        (by_role(requester={"display": "Någon"}), "basedOn.requester"),
    ],
    ids=["proposal", "draft", "do-not-perform", "no-authoredOn", "requester-not-professional"],
)
def test_based_on_request_that_names_no_prescriber_is_rejected(ctx, request_raw, field):
    ctx.add(validate({k: v for k, v in request_raw.items() if v is not None}))
    with pytest.raises(MappingError) as err:
        map_one(based_on_statement(), ctx)
    assert err.value.field == field
    assert PNR not in str(err.value)


def _bundle(path: Path, resources: list[dict]) -> Path:
    path.write_bytes(
        orjson.dumps(
            {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
        )
    )
    return path




def test_ingest_statement_based_on_request_in_the_same_file(tmp_path, new_store):
    engine = new_store()
    report = ingest(engine, [_bundle(tmp_path / "b.json", supporting() + [by_role(), based_on_statement()])])
    assert report.rejected == []
    assert report.published[CONTRACT.key] == 2


def test_ingest_statement_based_on_request_stored_earlier(tmp_path, new_store, schemas):
    engine = new_store()
    first = ingest(engine, [_bundle(tmp_path / "1.json", supporting() + [by_role()])])
    assert first.rejected == []
    second = ingest(engine, [_bundle(tmp_path / "2.json", [based_on_statement()])])
    assert second.rejected == []
    patient = next(p for p in WORLD.patients if p.number == PNR)
    resp = stored(engine, patient)
    assert_ok(resp, schemas)
    prescribers = [t(p, "c:healthcareProfessionalHSAId") for p in resp.iterfind(".//c:prescriber", NS)]
    assert prescribers == [MARIA.hsa_id, MARIA.hsa_id]  # the request's record and the statement's


def test_a_prescriber_named_in_an_extension_is_among_what_the_record_depends_on(ctx):
    """The prescriber is resolved in a mapping nested in the statement's own (`#id` may point into `contained`);
    what it names must still reach the statement's dependencies, or a change to that practitioner would never
    re-render the record."""
    for raw in (med_statement(), med_request(extension=[prescriber_ext()])):
        model = validate(raw)
        with ctx.mapping(model) as used:
            dispatch.map_resource(model, ctx)
        named = [key for key in used if key.startswith("identifier:") and key.endswith(DOCTOR["identifier"]["value"])]
        assert named and "Patient/pat-1" in used, raw["resourceType"]
