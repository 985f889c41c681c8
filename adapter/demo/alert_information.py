"""Demo alert information (uppmärksamhetsinformation) for one patient: AllergyIntolerance for hypersensitivities,
Flag (HL7 Sweden alert categories) for the rest. The first patient gets every kind, so that the official test
suite's content cases find a record for each; the others a realistic few."""

from __future__ import annotations

import random

from adapter.demo.world import DemoPatient, Staff, World
from adapter.mapping import profile
from adapter.mapping.fhir_to_rivta import alert_information as alert

ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
ICD = "https://www.icd10.se/"
NPL = "urn:oid:1.2.752.129.2.1.5.1"
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    home_care, housing = world.units
    nurse = rng.choice(world.staff_at(home_care))
    other = rng.choice(world.staff_at(housing))
    year = 2019 + rng.randrange(4)
    out = [_penicillin(world, patient, nurse, year, rng)]
    builders = [_latex, _herbal, _fall_risk, _no_cpr, _mrsa, _addison, _warfarin, _historic, _old_fall_risk]
    chosen = builders if patient == world.patients[0] else rng.sample(builders, 3)
    for build in chosen:
        out.append(build(world, patient, other if build in (_fall_risk, _no_cpr, _old_fall_risk) else nurse, year))
    return out


def _base(world: World, patient: DemoPatient, kind: str, rid: str) -> dict:
    return {"resourceType": kind, "id": f"{patient.id}-upp-{rid}", "meta": dict(world.meta),
            "identifier": [{"system": f"urn:oid:1.2.752.129.2.1.4.1#{world.source_system}",
                            "value": f"{patient.id}-upp-{rid}"}]}


def _signed(time: str) -> dict:
    return {"url": profile.SIGNATURE_TIME, "valueDateTime": time}


def _allergy(world: World, patient: DemoPatient, rid: str, who: Staff, recorded: str, **content) -> dict:
    res = _base(world, patient, "AllergyIntolerance", rid)
    res.update({
        "clinicalStatus": {"coding": [{"system": alert.ALLERGY_CLINICAL, "code": "active"}]},
        "patient": patient.ref,
        "recordedDate": recorded,
        "recorder": who.role_ref,
        "asserter": who.role_ref,
    })
    res.update(content)
    return res


def _flag(world: World, patient: DemoPatient, rid: str, who: Staff, category: str, start: str, code: dict,
          **content) -> dict:
    res = _base(world, patient, "Flag", rid)
    res.update({
        "status": "active",
        "category": [{"coding": [{"system": alert.SE_CATEGORY, "code": category}]}],
        "code": code,
        "subject": patient.ref,
        "period": {"start": start},
        "author": who.role_ref,
    })
    res.update(content)
    return res


def _verified(status: str, text: str | None = None) -> dict:
    concept: dict = {"coding": [{"system": alert.ALLERGY_VERIFICATION, "code": status}]}
    if text:
        concept["text"] = text
    return concept


def _penicillin(world: World, patient: DemoPatient, who: Staff, year: int, rng: random.Random) -> dict:
    # Life-threatening for most, a severe (harmful) reaction for some: both need the ATC code.
    severe = rng.random() < 0.3
    content: dict = {
        "verificationStatus": _verified("confirmed"),
        "type": "allergy",
        "category": ["medication"],
        "code": {"coding": [
            {"system": ATC, "code": "J01CE02", "display": "Fenoximetylpenicillin"},
            {"system": SNOMED, "code": "764146007", "display": "Penicillin"},
            {"system": NPL, "code": "19700101000025", "display": "Kåvepenin 1 g filmdragerad tablett"},
        ], "text": "Penicillin V"},
        "onsetDateTime": f"{year}-03-04",
        "encounter": {"identifier": {"value": f"vk-{patient.id}-{year}0305"}, "display": "Hembesök"},
        "note": [{"text": "Urtikaria och andningspåverkan efter första dosen."}],
        "extension": [_signed(f"{year}-03-05T14:10:00+01:00"),
                      {"url": alert.ALERT_VERIFIED_TIME, "valueDateTime": f"{year}-03-05T14:10:00+01:00"}],
    }
    if severe:
        content["criticality"] = "low"
        content["reaction"] = [{"manifestation": [{"text": "Generaliserad urtikaria"}], "severity": "severe"}]
    else:
        content["criticality"] = "high"
    return _allergy(world, patient, "penicillin", who, f"{year}-03-05T10:20:00+01:00", **content)


def _latex(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    return _allergy(world, patient, "latex", who, f"{year + 1}-09-12T08:45:00+02:00",
                    verificationStatus=_verified("unconfirmed", "Trolig"), type="allergy", category=["environment"],
                    code={"coding": [{"system": SNOMED, "code": "111088007", "display": "Latex"}]},
                    reaction=[{"manifestation": [{"text": "Kontakteksem och svullnad på händerna"}],
                               "severity": "moderate"}])


def _herbal(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    # A drug hypersensitivity without ATC code: allowed for a discomforting one (nonATCSubstance + comment).
    return _allergy(world, patient, "naturlakemedel", who, f"{year + 2}-01-20T13:00:00+01:00",
                    verificationStatus=_verified("unconfirmed"), type="intolerance", category=["medication"],
                    code={"text": "Naturläkemedel med johannesört"},
                    reaction=[{"manifestation": [{"text": "Illamående"}], "severity": "mild"}],
                    meta={**world.meta, "security": [NOPATIENT]})


def _fall_risk(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    return _flag(world, patient, "fallrisk", who, "D1", f"{year + 1}-05-02T09:00:00+02:00",
                 {"text": "Fallrisk: ska ha tillsyn vid förflyttning och gånghjälpmedel inom räckhåll"},
                 extension=[{"url": alert.ALERT_COMMENT, "valueString": "Två fall senaste halvåret."}])


def _old_fall_risk(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    # No longer current: obsolete before its planned end (8.2 in the official suite's test-data checks).
    return _flag(world, patient, "fallrisk-gammal", who, "D1", f"{year - 1}-02-01T10:00:00+01:00",
                 {"text": "Fallrisk efter höftfraktur, rullator vid all förflyttning"},
                 status="inactive", period={"start": f"{year - 1}-02-01T10:00:00+01:00", "end": f"{year + 5}-02-01"},
                 extension=[{"url": alert.ALERT_OBSOLETE, "extension": [
                     {"url": "time", "valueDateTime": f"{year}-01-15T11:00:00+01:00"},
                     {"url": "comment", "valueString": "Återhämtad, går utan hjälpmedel."}]}])


def _no_cpr(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    return _flag(world, patient, "ej-hlr", who, "D2", f"{year + 2}-11-08T16:30:00+01:00",
                 {"text": "Ej HLR enligt beslut av ansvarig läkare efter samtal med patient och närstående"},
                 extension=[_signed(f"{year + 2}-11-08T17:00:00+01:00")])


def _mrsa(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    return _flag(world, patient, "mrsa", who, "B1", f"{year + 1}-10-01T08:00:00+02:00",
                 {"coding": [{"system": SNOMED, "code": "115329001",
                              "display": "Meticillinresistent Staphylococcus aureus"}], "text": "MRSA-bärare"},
                 extension=[{"url": alert.ROUTE_OF_TRANSMISSION, "valueCodeableConcept": {"text": "Kontaktsmitta"}},
                            _signed(f"{year + 1}-10-01T10:00:00+02:00")])


def _addison(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    return _flag(world, patient, "addison", who, "A1", f"{year}-06-15T11:00:00+02:00",
                 {"coding": [{"system": ICD, "code": "E27.1", "display": "Primär binjurebarksinsufficiens"}]})


def _warfarin(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    # A treatment planned to end: validity start and end (8.1).
    return _flag(world, patient, "waran", who, "A2", f"{year + 2}-04-01T08:00:00+02:00",
                 {"coding": [{"system": ATC, "code": "B01AA03", "display": "Warfarin"}],
                  "text": "Antikoagulantiabehandling med warfarin, risk för blödning"},
                 period={"start": f"{year + 2}-04-01T08:00:00+02:00", "end": f"{year + 3}-04-01T08:00:00+02:00"})


def _historic(world: World, patient: DemoPatient, who: Staff, year: int) -> dict:
    return _flag(world, patient, "historisk", who, "E1", f"{year - 2}-01-10T12:00:00+01:00",
                 {"text": "Varning från tidigare journalsystem: kraftig reaktion på jodkontrast <&> åäö"},
                 extension=[{"url": alert.SE_ALERT_LABEL, "valueCodeableConcept": {"text": "Kontrastmedel"}}])
