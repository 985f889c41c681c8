"""Demo medication (MedicationRequest, MedicationStatement) for one patient.

What a municipal nurse registers: ordinations from the patient's physician (the prescriber is a regional
doctor, sent as a contained PractitionerRole), a chain insättning -> dosändring -> utsättning, a vid
behov-ordination, self-medication the patient reports, an ended ordination, injections the home-care
nurse gave, and a förskrivning. Follows mappings/GetMedicationHistory.md.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

from adapter.demo.world import HSA_SYSTEM, DemoPatient, Staff, World
from adapter.mapping import profile

NPL = "urn:oid:1.2.752.129.2.1.5.1"
NPL_PACK = "urn:oid:1.2.752.129.2.1.5.2"
ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LOCAL_ID = "urn:oid:1.2.752.129.2.1.2.1"
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}
ORAL = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral användning"}]}
INTRAMUSCULAR = {"coding": [{"system": SNOMED, "code": "78421000", "display": "Intramuskulär användning"}]}

# (name, form, strength, strength unit, NPL-id (made up), ATC, ATC text[, treatment purpose])
CHAIN_DRUGS = [
    (
        "Furosemid Accord 40 mg tablett",
        "Tablett",
        40,
        "mg",
        "19990312000027",
        "C03CA01",
        "Furosemid",
        "Mot vätskeansamling vid hjärtsvikt",
    ),
    (
        "Metoprolol Sandoz 50 mg depottablett",
        "Depottablett",
        50,
        "mg",
        "20010925000105",
        "C07AB02",
        "Metoprolol",
        "Mot högt blodtryck och hjärtklappning",
    ),
    (
        "Ramipril Actavis 5 mg tablett",
        "Tablett",
        5,
        "mg",
        "20060417000089",
        "C09AA05",
        "Ramipril",
        "Mot högt blodtryck",
    ),
]
DAILY_DRUGS = [
    ("Donepezil Orion 10 mg tablett", "Tablett", 10, "mg", "20080130000063", "N06DA02", "Donepezil"),
    ("Levaxin 100 mikrog tablett", "Tablett", 100, "ug", "19860512000038", "H03AA01", "Levotyroxinnatrium"),
    ("Trombyl 75 mg tablett", "Tablett", 75, "mg", "19760624000031", "B01AC06", "Acetylsalicylsyra"),
]
DOCTORS = [
    ("SE2300000000-L001", "Leila Nordin", "Distriktsläkare", "SE2300000000-VC01", "Vårdcentralen Eken"),
    (
        "SE2300000000-L002",
        "Henrik Sjöberg",
        "Specialistläkare i geriatrik",
        "SE2300000000-GM01",
        "Geriatriska kliniken, Exempelby sjukhus",
    ),
]


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    home_care, housing = world.units
    nurse_home, nurse_housing = world.staff_at(home_care)[0], world.staff_at(housing)[0]
    aide = world.staff_at(home_care)[-1]
    doctor = rng.choice(DOCTORS)
    base = date(2023, 1, 9) + timedelta(days=rng.randrange(200))
    ctx = _Ctx(world, patient, rng, doctor)
    out = _chain(ctx, nurse_home if rng.random() < 0.5 else nurse_housing, base)
    out.append(_daily_with_prescription(ctx, nurse_housing, base + timedelta(days=40)))
    out.append(_as_needed(ctx, nurse_home, base + timedelta(days=70)))
    out.append(_self_medication(ctx, nurse_housing, base + timedelta(days=90)))
    out.append(_ended_not_for_patient(ctx, nurse_home, base + timedelta(days=20)))
    out.append(_injection(ctx, nurse_home, aide, base + timedelta(days=120)))
    out.append(_generic(ctx, nurse_housing, base + timedelta(days=150)))
    return out


class _Ctx:
    def __init__(self, world: World, patient: DemoPatient, rng: random.Random, doctor: tuple) -> None:
        self.world, self.patient, self.rng, self.doctor = world, patient, rng, doctor

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def base(self, rtype: str, rid: str, recorder: Staff, *, not_for_patient: bool = False) -> dict:
        meta: dict = dict(self.world.meta)
        if not_for_patient:
            meta["security"] = [NOPATIENT]
        res: dict = {
            "resourceType": rtype,
            "id": rid,
            "meta": meta,
            "subject": self.patient.ref,
            "contained": [self.prescriber_role()],
        }
        if rtype == "MedicationRequest":
            res.update(intent="order", recorder=recorder.role_ref, requester={"reference": "#ordinator"})
        else:
            res.update(informationSource=recorder.role_ref)
        return res

    def prescriber_role(self) -> dict:
        hsa, name, title, unit_hsa, unit_name = self.doctor
        return {
            "resourceType": "PractitionerRole",
            "id": "ordinator",
            "identifier": [{"system": HSA_SYSTEM, "value": hsa}],
            "practitioner": {"identifier": {"system": HSA_SYSTEM, "value": hsa}, "display": name},
            "organization": {"identifier": {"system": HSA_SYSTEM, "value": unit_hsa}, "display": unit_name},
            "code": [{"text": title}],
        }


def _ts(day: date, hour: int, minute: int = 0) -> str:
    offset = "+02:00" if 4 <= day.month <= 9 else "+01:00"  # close enough to CEST/CET for demo data
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00{offset}"


def _product(drug: tuple) -> dict:
    name, _, _, _, npl, atc, atc_text = drug[:7]
    coding = [
        {"system": NPL, "code": npl, "display": name},
        {"system": ATC, "code": atc, "display": atc_text},
    ]
    return {"coding": coding, "text": name}


def _tablets(value: float) -> dict:
    return {"value": value, "unit": "tablett", "system": UCUM, "code": "{tablett}"}


def _kind(code: str) -> list[dict]:
    return [{"coding": [{"system": profile.TYPE_OF_PRESCRIPTION, "code": code}]}]


def _chain(c: _Ctx, recorder: Staff, start: date) -> list[dict]:
    """Insättning -> dosändring -> utsättning (U) of one drug: three MedicationRequests in one chain."""
    drug = c.rng.choice(CHAIN_DRUGS)
    ids = [c.uuid() for _ in range(3)]
    chain = (
        {"system": LOCAL_ID, "value": f"{c.patient.id}-kedja-1"}
        if c.rng.random() < 0.5
        else {"value": c.uuid()}
    )
    change, stop = (
        start + timedelta(days=45 + c.rng.randrange(30)),
        start + timedelta(days=160 + c.rng.randrange(60)),
    )
    links = [
        (
            start,
            change,
            1,
            "1 tablett på morgonen.",
            f"{drug[6]} insatt enligt ordination från {c.doctor[1]}.",
        ),
        (change, stop, 2, "2 tabletter på morgonen.", "Dosen höjd efter uppföljning av vikt och blodtryck."),
    ]
    out = []
    for i, (begin, end, tablets, text, note) in enumerate(links):
        req = c.base("MedicationRequest", ids[i], recorder)
        req.update(
            status="stopped",
            category=_kind("I"),
            authoredOn=_ts(begin, 10, 15),
            medicationCodeableConcept=_product(drug),
            note=[{"text": note}],
            reasonCode=[{"text": drug[7]}],
            dosageInstruction=[
                {
                    "text": text,
                    "patientInstruction": f"{tablets}x1",
                    "route": ORAL,
                    "timing": {
                        "repeat": {
                            "when": ["MORN"],
                            "period": 1,
                            "periodUnit": "d",
                            "boundsPeriod": {"start": begin.isoformat(), "end": end.isoformat()},
                        }
                    },
                    "doseAndRate": [{"doseQuantity": _tablets(tablets)}],
                }
            ],
            extension=[
                {"url": profile.PRESCRIPTION_CHAIN_ID, "valueIdentifier": chain},
                {
                    "url": profile.SUCCEEDING_PRESCRIPTION,
                    "valueReference": {"reference": f"MedicationRequest/{ids[i + 1]}"},
                },
            ],
        )
        req["meta"]["lastUpdated"] = _ts(begin + timedelta(days=1), 8, 40)  # registered the next morning
        if i:
            req["priorPrescription"] = {"reference": f"MedicationRequest/{ids[i - 1]}"}
            req["extension"].append(
                {
                    "url": profile.EVALUATOR,
                    "extension": [
                        {"url": "practitioner", "valueReference": recorder.role_ref},
                        {"url": "time", "valueDateTime": _ts(begin + timedelta(days=14), 14, 0)},
                    ],
                }
            )
        out.append(req)
    stop_req = c.base("MedicationRequest", ids[2], recorder)
    stop_req.update(
        status="completed",
        category=_kind("U"),
        authoredOn=_ts(stop, 11, 5),
        medicationCodeableConcept=_product(drug),
        priorPrescription={"reference": f"MedicationRequest/{ids[1]}"},
        statusReason={"text": "Utsatt på grund av yrsel och lågt blodtryck"},
        dosageInstruction=[{"timing": {"repeat": {"boundsPeriod": {"end": stop.isoformat()}}}}],
        extension=[
            {"url": profile.PRESCRIPTION_CHAIN_ID, "valueIdentifier": chain},
            {"url": profile.SIGNATURE_TIME, "valueDateTime": _ts(stop, 15, 30)},
        ],
    )
    out.append(stop_req)
    return out


def _daily_with_prescription(c: _Ctx, recorder: Staff, start: date) -> dict:
    """An active ordination with fixed times of day and its förskrivning (e-recept via apodos)."""
    drug = c.rng.choice(DAILY_DRUGS)
    req = c.base("MedicationRequest", f"{c.patient.id}-lm-daglig", recorder)
    coding = _product(drug)
    coding["coding"].append(
        {
            "system": NPL_PACK,
            "code": f"{drug[4][:8]}1000{c.rng.randrange(10, 99)}",
            "display": f"{drug[0]}, 100 tablett(er) burk",
        }
    )
    name, form, strength, unit, _, _, substance = drug
    req["contained"].append(
        {
            "resourceType": "Medication",
            "id": "lakemedel",
            "code": coding,
            "form": {"text": form},
            "ingredient": [
                {
                    "itemCodeableConcept": {"text": substance},
                    "strength": {
                        "numerator": {"value": strength, "unit": unit, "system": UCUM, "code": unit},
                        "denominator": {"value": 1, "unit": "tablett", "system": UCUM, "code": "{tablett}"},
                    },
                }
            ],
        }
    )
    req.update(
        status="active",
        identifier=[{"system": LOCAL_ID, "value": f"{c.patient.id}-lm-daglig"}],
        groupIdentifier={"value": c.uuid()},
        authoredOn=_ts(start, 9, 30),
        medicationReference={"reference": "#lakemedel", "display": name},
        reasonCode=[
            {
                "coding": [{"system": SNOMED, "code": "46021000052104", "display": "Annan ordinationsorsak"}],
                "text": "Långvarig behandling enligt geriatrisk bedömning",
            }
        ],
        encounter={"identifier": {"value": f"vk-{c.patient.id}-{start.strftime('%Y%m%d')}"}},
        dosageInstruction=[
            {
                "text": "1 tablett morgon och kväll. Ges från dosett av personal.",
                "patientInstruction": "1+0+1",
                "route": ORAL,
                "timing": {
                    "repeat": {
                        "timeOfDay": ["08:00:00", "20:00:00"],
                        "period": 1,
                        "periodUnit": "d",
                        "boundsPeriod": {"start": start.isoformat()},
                    }
                },
                "doseAndRate": [{"doseQuantity": _tablets(1)}],
            }
        ],
        dispenseRequest={
            "validityPeriod": {"start": start.isoformat(), "end": (start + timedelta(days=365)).isoformat()},
            "dispenseInterval": {"value": 14, "unit": "dagar", "system": UCUM, "code": "d"},
            "quantity": {"value": 200, "unit": "tablett(er)"},
        },
        substitution={"allowedBoolean": False},
        extension=[
            {"url": profile.EVALUATION_TIME, "valueDateTime": _ts(start + timedelta(days=180), 10)},
            {"url": profile.START_OF_FIRST_TREATMENT, "valueDateTime": _ts(start - timedelta(days=700), 8)},
        ],
    )
    return req


def _as_needed(c: _Ctx, recorder: Staff, start: date) -> dict:
    """Vid behov: paracetamol by ATC only, at most 4 tablets a day (a MedicationStatement)."""
    st = c.base("MedicationStatement", f"{c.patient.id}-lm-vidbehov", recorder)
    st.update(
        status="active",
        dateAsserted=_ts(start, 13, 20),
        effectivePeriod={"start": start.isoformat()},
        medicationCodeableConcept={
            "coding": [{"system": ATC, "code": "N02BE01", "display": "Paracetamol"}],
            "text": "Paracetamol 500 mg tablett",
        },
        reasonCode=[{"text": "Smärta i höft och knän"}],
        dosage=[
            {
                "text": "1-2 tabletter vid smärta, högst 4 gånger per dygn.",
                "asNeededCodeableConcept": {"text": "vid smärta"},
                "route": ORAL,
                "doseAndRate": [{"doseRange": {"low": _tablets(1), "high": _tablets(2)}}],
                "maxDosePerPeriod": {
                    "numerator": _tablets(8),
                    "denominator": {"value": 1, "unit": "dygn", "system": UCUM, "code": "d"},
                },
            }
        ],
        extension=[
            {
                "url": profile.PRESCRIBER,
                "extension": [
                    {"url": "practitioner", "valueReference": {"reference": "#ordinator"}},
                    {"url": "time", "valueDateTime": _ts(start - timedelta(days=1), 16, 45)},
                ],
            }
        ],
    )
    return st


def _self_medication(c: _Ctx, recorder: Staff, start: date) -> dict:
    """Self-medication the patient reported (free text, no prescriber)."""
    st = c.base("MedicationStatement", f"{c.patient.id}-lm-egen", recorder)
    del st["contained"]
    st.update(
        status="active",
        dateAsserted=_ts(start, 10, 5),
        effectiveDateTime=(start - timedelta(days=30)).isoformat(),
        medicationCodeableConcept={"text": "Receptfritt: Johannesörtsextrakt <300 mg> & Omega-3 kapslar"},
        note=[
            {
                "text": "Patienten köper själv på apoteket. Sjuksköterska informerad om risk för "
                "interaktioner med övriga läkemedel; läkare kontaktad."
            }
        ],
        dosage=[{"text": "1 kapsel av vardera på morgonen, enligt patienten."}],
        extension=[{"url": profile.SELF_MEDICATION, "valueBoolean": True}],
    )
    return st


def _ended_not_for_patient(c: _Ctx, recorder: Staff, start: date) -> dict:
    """An ended sleeping pill, not to be shown to the patient (menprövad)."""
    st = c.base("MedicationStatement", f"{c.patient.id}-lm-avslutad", recorder, not_for_patient=True)
    st.update(
        status="completed",
        dateAsserted=_ts(start, 19, 10),
        effectivePeriod={"start": start.isoformat(), "end": (start + timedelta(days=21)).isoformat()},
        medicationCodeableConcept={
            "coding": [
                {"system": NPL, "code": "19950608000048", "display": "Zopiklon Mylan 5 mg tablett"},
                {"system": ATC, "code": "N05CF01", "display": "Zopiklon"},
            ],
            "text": "Zopiklon Mylan 5 mg tablett",
        },
        reasonCode=[{"text": "Sömnsvårigheter efter flytt till särskilt boende"}],
        dosage=[
            {
                "text": "1 tablett till natten i tre veckor.",
                "route": ORAL,
                "timing": {"repeat": {"when": ["HS"], "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": _tablets(1)}],
            }
        ],
        extension=[
            {
                "url": profile.PRESCRIBER,
                "extension": [
                    {"url": "practitioner", "valueReference": {"reference": "#ordinator"}},
                    {"url": "time", "valueDateTime": _ts(start, 15, 0)},
                ],
            }
        ],
    )
    return st


def _injection(c: _Ctx, recorder: Staff, giver: Staff, start: date) -> dict:
    """B12 injections every third month, given by the home-care staff (contained administrations)."""
    req = c.base("MedicationRequest", f"{c.patient.id}-lm-b12", recorder)
    medication = {
        "coding": [{"system": ATC, "code": "B03BA01", "display": "Cyanokobalamin"}],
        "text": "Behepan 1 mg/ml injektionsvätska",
    }
    given = []
    for n in range(2):
        day = start + timedelta(days=1 + 91 * n)
        given.append(
            {
                "resourceType": "MedicationAdministration",
                "id": f"given-{n + 1}",
                "status": "completed",
                "medicationCodeableConcept": medication,
                "subject": c.patient.ref,
                "effectiveDateTime": _ts(day, 10, 30),
                "request": {"reference": "#"},
                "performer": [{"actor": (recorder if n == 0 else giver).role_ref}],
                "note": [{"text": "Given i vänster överarm. Inga besvär efteråt."}],
                "dosage": {
                    "route": INTRAMUSCULAR,
                    "dose": {"value": 1, "unit": "ml", "system": UCUM, "code": "mL"},
                },
            }
        )
    req.update(
        status="active",
        authoredOn=_ts(start, 14, 0),
        medicationCodeableConcept=medication,
        reasonCode=[{"text": "B12-brist"}],
        dosageInstruction=[
            {
                "text": "1 ml intramuskulärt var tredje månad. Ges av sjuksköterska i hemmet.",
                "route": INTRAMUSCULAR,
                "timing": {
                    "repeat": {
                        "frequency": 1,
                        "period": 3,
                        "periodUnit": "mo",
                        "boundsPeriod": {"start": start.isoformat()},
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "ml", "system": UCUM, "code": "mL"}}],
            }
        ],
    )
    req["contained"].extend(given)
    return req


def _generic(c: _Ctx, recorder: Staff, start: date) -> dict:
    """A substance-level ordination (generics) through a contained Medication."""
    req = c.base("MedicationRequest", f"{c.patient.id}-lm-generika", recorder)
    req["contained"].append(
        {
            "resourceType": "Medication",
            "id": "substans",
            "form": {"text": "Tablett"},
            "ingredient": [
                {
                    "itemCodeableConcept": {"text": "Kalciumkarbonat/kolekalciferol"},
                    "strength": {
                        "numerator": {"value": 500, "unit": "mg", "system": UCUM, "code": "mg"},
                        "denominator": {"value": 1, "unit": "tablett", "system": UCUM, "code": "{tablett}"},
                    },
                }
            ],
        }
    )
    req.update(
        status="active",
        authoredOn=_ts(start, 11, 0),
        medicationReference={"reference": "#substans"},
        reasonCode=[{"text": "Benskörhet, förebyggande"}],
        dosageInstruction=[
            {
                "text": "1 tablett dagligen, tuggas.",
                "route": ORAL,
                "timing": {
                    "repeat": {
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsPeriod": {"start": start.isoformat()},
                    }
                },
                "doseAndRate": [{"doseQuantity": _tablets(1)}],
            }
        ],
    )
    return req
