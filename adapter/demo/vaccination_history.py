"""Demo vaccinations (Immunization) for one patient: the seasonal influenza vaccinations, a pneumococcal
vaccination and the covid-19 doses given in special housing, as a municipal nurse records them.

Vaccine product ids are synthetic NPL-ids (14 digits, as NPL gives them) next to the real ATC codes;
target diseases, route and site are SNOMED CT.
"""

from __future__ import annotations

import random

from adapter.demo.world import HSA_SYSTEM, DemoPatient, Staff, World
from adapter.mapping import profile

NPL = "urn:oid:1.2.752.129.2.1.5.1"
ATC = "http://www.whocc.no/atc"
SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
FUNCTION = "http://terminology.hl7.org/CodeSystem/v2-0443"
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}
XHTML = "http://www.w3.org/1999/xhtml"

# (NPL-id (synthetic), product, ATC, ATC display, manufacturer)
INFLUENZA = [
    ("20230818100011", "Influvac Tetra", "J07BB02", "Influensa, inaktiverat, split virus eller ytantigen", "Viatris"),
    ("20230818100028", "Vaxigrip Tetra", "J07BB02", "Influensa, inaktiverat, split virus eller ytantigen",
     "Sanofi Pasteur"),
]
PNEUMOCOCCAL = [
    ("20220301100035", "Prevenar 20", "J07AL02", "Pneumokocker, polysackaridantigen, konjugerat", "Pfizer"),
    ("20220301100042", "Pneumovax", "J07AL01", "Pneumokocker, renat polysackaridantigen", "MSD"),
]
COVID = ("20240401100059", "Comirnaty", "J07BN01", "Covid-19, RNA-baserat vaccin", "BioNTech")
DISEASES = {
    "influenza": ("6142004", "Influensa"),
    "pneumococcal": ("16814004", "Pneumokockinfektion"),
    "covid": ("840539006", "Covid-19"),
}
INTRAMUSCULAR = {"coding": [{"system": SCT, "code": "78421000", "display": "Intramuskulär"}]}
SITES = [("368208006", "Vänster överarm"), ("368209003", "Höger överarm")]
# The ordering physician of the region's primary care: a logical reference (HSA-id), not a municipal resource.
DOCTOR = {"identifier": {"system": HSA_SYSTEM, "value": "SE2120001231-L001"}, "display": "Leila Nordin"}


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    home_care, housing = world.units
    home_nurse = next(s for s in world.staff_at(home_care) if s.role_code == "204010")
    housing_nurse = next(s for s in world.staff_at(housing) if s.role_code == "204010")
    odd = int(patient.number[-2]) % 2 == 1
    out: list[dict] = []
    for n, year in enumerate((2023, 2024), start=1):
        npl, name, atc, atc_display, maker = rng.choice(INFLUENZA)
        nurse = home_nurse if (n + odd) % 2 else housing_nurse
        day = rng.randrange(10, 28)
        given = f"{year}-10-{day:02d}T10:{rng.randrange(60):02d}:00+02:00"
        imm = _immunization(world, patient, f"vac-influensa-{year}", nurse, given, (npl, name, atc, atc_display, maker),
                            "influenza", f"Säsongsinfluensa {year}/{year + 1}", 1, 1, rng, signed=True)
        imm["reasonCode"] = [{"text": "Ålder 65 år eller äldre"}]
        imm["encounter"] = {"identifier": {"value": f"vk-{patient.id}-vaccination-{year}"},
                            "display": "Vaccinationsbesök"}
        imm["text"] = {"status": "generated", "div": (
            f'<div xmlns="{XHTML}"><p>{name} 0,5 ml intramuskulärt, säsongsinfluensa {year}/{year + 1}.</p></div>')}
        out.append(imm)
    npl, name, atc, atc_display, maker = rng.choice(PNEUMOCOCCAL)
    given = f"2022-0{rng.randrange(3, 10)}-14T13:20:00+02:00"
    pneumo = _immunization(world, patient, "vac-pneumokock", home_nurse, given, (npl, name, atc, atc_display, maker),
                           "pneumococcal", None, 1, 1, rng, signed=False)
    pneumo["reasonCode"] = [{"text": "Kronisk hjärt- eller lungsjukdom"}]
    if odd:
        pneumo["meta"]["security"] = [dict(NOPATIENT)]
    out.append(pneumo)
    # Special housing: two covid-19 doses in 2024, the spring dose and the autumn dose.
    for dose, (month, day) in enumerate(((4, 16), (10, 8)), start=1):
        given = f"2024-{month:02d}-{day:02d}T09:45:00+02:00"
        imm = _immunization(world, patient, f"vac-covid-2024-{dose}", housing_nurse, given, COVID, "covid",
                            "Covid-19 2024, särskilt boende", dose, 2, rng, signed=True)
        imm["reasonCode"] = [{"text": "Boende på särskilt boende för äldre"}]
        imm["doseQuantity"] = {"value": 0.3, "unit": "ml", "system": UCUM, "code": "mL"}
        if dose == 1:
            imm["contained"] = [{
                "resourceType": "Observation", "id": "reaktion", "status": "final",
                "code": {"coding": [{"system": SCT, "code": "386661006", "display": "Feber"}]},
                "subject": patient.ref,
            }]
            imm["reaction"] = [{"date": f"2024-{month:02d}-{day + 1:02d}", "detail": {"reference": "#reaktion"},
                                "reported": True}]
            imm["note"] = [{"text": "Lätt feber dagen efter (>38 °C <24 h), gick över utan åtgärd & utan "
                                    "läkarkontakt."}]
        out.append(imm)
    return out


def _immunization(world: World, patient: DemoPatient, suffix: str, nurse: Staff, given: str,
                  vaccine: tuple[str, str, str, str, str], disease: str, series: str | None, dose: int,
                  doses: int, rng: random.Random, *, signed: bool) -> dict:
    npl, name, atc, atc_display, maker = vaccine
    site = rng.choice(SITES)
    day, zone = given[:11], given[19:]  # "YYYY-MM-DDT", "+02:00"
    recorded = f"{day}15:10:00{zone}"
    protocol: dict = {
        "targetDisease": [{"coding": [{"system": SCT, "code": DISEASES[disease][0], "display": DISEASES[disease][1]}]}],
        "doseNumberPositiveInt": dose,
        "seriesDosesPositiveInt": doses,
    }
    if series:
        protocol["series"] = series
    imm: dict = {
        "resourceType": "Immunization",
        "id": f"{patient.id}-{suffix}",
        "meta": dict(world.meta),
        "status": "completed",
        "vaccineCode": {"coding": [{"system": NPL, "code": npl, "display": name},
                                   {"system": ATC, "code": atc, "display": atc_display}], "text": name},
        "patient": patient.ref,
        "occurrenceDateTime": given,
        "recorded": recorded,
        "primarySource": True,
        "manufacturer": {"display": maker},
        "lotNumber": f"{rng.choice('ABCDEFGHKLMNPRSTUVXYZ')}{rng.randrange(10000, 99999)}",
        "site": {"coding": [{"system": SCT, "code": site[0], "display": site[1]}]},
        "route": INTRAMUSCULAR,
        "doseQuantity": {"value": 0.5, "unit": "ml", "system": UCUM, "code": "mL"},
        "performer": [
            {"function": {"coding": [{"system": FUNCTION, "code": "AP"}]}, "actor": nurse.role_ref},
            {"function": {"coding": [{"system": FUNCTION, "code": "OP"}]}, "actor": dict(DOCTOR)},
        ],
        "protocolApplied": [protocol],
    }
    if signed:
        imm["extension"] = [{"url": profile.SIGNATURE_TIME, "valueDateTime": f"{day}16:00:00{zone}"}]
    return imm
