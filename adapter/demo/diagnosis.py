"""Demo diagnoses (Condition) for one patient."""

from __future__ import annotations

import random

from adapter.demo.world import DemoPatient, World
from adapter.mapping import profile

ICD = "https://www.icd10.se/"
DIAGNOSES = [
    ("I50.9", "Hjärtsvikt, ospecificerad"),
    ("E11.9", "Diabetes mellitus typ 2 utan komplikationer"),
    ("F03.9", "Ospecificerad demens"),
    ("M81.9", "Osteoporos, ospecificerad"),
    ("J44.9", "Kroniskt obstruktiv lungsjukdom, ospecificerad"),
    ("I10.9", "Essentiell hypertoni"),
    ("N39.0", "Urinvägsinfektion, lokalisation ospecificerad"),
]


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    picks = rng.sample(DIAGNOSES, 3)
    out: list[dict] = []
    main_id = f"{patient.id}-dia-1"
    for i, (code, display) in enumerate(picks, start=1):
        unit = world.units[i % 2]
        author = rng.choice(world.staff_at(unit))
        year = 2019 + i + rng.randrange(3)
        month = rng.randrange(1, 13)
        cond: dict = {
            "resourceType": "Condition",
            "id": f"{patient.id}-dia-{i}",
            "meta": dict(world.meta),
            "identifier": [{"system": f"urn:oid:1.2.752.129.2.1.4.1#{world.source_system}",
                            "value": f"{patient.id}-dia-{i}"}],
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [{"coding": [{"system": profile.DIAGNOSIS_TYPE,
                                      "code": "Huvuddiagnos" if i == 1 else "Bidiagnos"}]}],
            "code": {"coding": [{"system": ICD, "code": code, "display": display}]},
            "subject": patient.ref,
            "onsetDateTime": f"{year}-{month:02d}-10",
            "recordedDate": f"{year}-{month:02d}-12T09:30:00+01:00",
            "recorder": author.role_ref,
            "asserter": author.role_ref,
            "extension": [
                {"url": profile.CONDITION_ASSERTED_DATE, "valueDateTime": f"{year}-{month:02d}-12T15:05:00+01:00"},
            ],
        }
        if i > 1:
            cond["extension"].append({"url": profile.RELATED_DIAGNOSIS,
                                      "valueReference": {"reference": f"Condition/{main_id}"}})
        if code in ("E11.9", "F03.9", "J44.9", "M81.9"):
            cond["extension"].append({"url": profile.CHRONIC_DIAGNOSIS, "valueBoolean": True})
        elif i == 3:
            cond["extension"].append({"url": profile.CHRONIC_DIAGNOSIS, "valueBoolean": False})
        out.append(cond)
    # A free-text diagnosis without code, not approved for the patient to read.
    unit = world.units[0]
    out.append({
        "resourceType": "Condition",
        "id": f"{patient.id}-dia-fritext",
        "meta": {**world.meta, "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                              "code": "NOPATIENT"}]},
        "category": [{"coding": [{"system": profile.DIAGNOSIS_TYPE, "code": "Bidiagnos"}]}],
        "code": {"text": "Misstänkt fallrisk <&> yrsel vid uppresning, bedöms av sjuksköterska"},
        "subject": patient.ref,
        "recordedDate": "2024-05-03T13:20:00+02:00",
        "recorder": world.staff_at(unit)[0].role_ref,
    })
    return out
