"""Demo care plans (CarePlan) for one patient.

Every patient has a samordnad individuell plan (SIP) with contained goals and activities; some also
have a genomförandeplan (GP) from home care or the special housing unit, or a nursing care plan (VP)
at the special housing unit. One SIP is not approved for the patient, one is completed.
"""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

from adapter.demo.world import HSA_SYSTEM, DemoPatient, Unit, World
from adapter.mapping import profile

LOCAL_ID_SYSTEM = "urn:oid:1.2.752.129.2.1.2.1"
NOPATIENT = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NOPATIENT"}
# A regional primary-care unit taking part in the SIPs (known only by a logical reference).
REGION_UNIT = ("SE2321000016-VC01", "Vårdcentralen Exempelby")

SIP_GOALS = [
    ("Kunna bo kvar i sitt hem med stöd av hemtjänst och hemsjukvård", "in-progress"),
    ("Inga fall under planperioden", "improving"),
    ("Trygg och säker läkemedelshantering", "achieved"),
    ("Bibehålla förmågan att själv sköta sin personliga hygien", "sustaining"),
    ("Social samvaro minst två gånger i veckan", "in-progress"),
    ("Stabilt blodsocker utan akuta sjukhusbesök", "improving"),
]
SIP_ACTIVITIES = [
    ("Hjälp med inköp och städning varannan vecka", "in-progress",
     "Hemtjänsten Ängsvägen", "varannan onsdag"),
    ("Dosdispenserade läkemedel; ordination och uppföljning av läkare", "in-progress",
     "Vårdcentralen Exempelby", "löpande"),
    ("Fallriskbedömning och utprovning av rollator och toalettförhöjning", "completed",
     "Arbetsterapeut", None),
    ("Blodsockerkontroll av hemsjukvårdens sjuksköterska", "in-progress",
     "Hemsjukvården", "tisdag och fredag"),
    ("Uppföljande SIP-möte med anhörig, biståndshandläggare & distriktssköterska", "scheduled",
     "Hemtjänsten Ängsvägen", "om tre månader"),
]
GP_ACTIVITIES = [
    ("Morgonhjälp med dusch och påklädning", "in-progress", "tisdagar och fredagar kl. 8–9"),
    ("Promenad i trädgården efter lunch, gärna tillsammans med andra boende", "in-progress",
     "dagligen kl. 13"),
    ("Måltider i den gemensamma matsalen; önskar kaffe med mjölk", "in-progress",
     "frukost, lunch och middag"),
    ("Hjälp att ringa dottern på söndagar", "not-started", "söndagar"),
]
VP_ACTIVITIES = [
    ("Lägesändring var tredje timme nattetid", "in-progress", "kl. 22–06"),
    ("Riskbedömning för trycksår enligt RAPS", "in-progress", "en gång i månaden"),
    ("Inspektion av hud på häl och korsrygg vid morgonhygien", "in-progress", "dagligen"),
]


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    index = world.patients.index(patient)
    out = [_sip(world, patient, rng, index)]
    if index % 2 == 0:
        out.append(_gp(world, patient, rng, index))
    if index in (1, 3, 5):
        out.append(_vp(world, patient, rng))
    return out


def _sip(world: World, patient: DemoPatient, rng: random.Random, index: int) -> dict:
    home_care, housing = world.units
    unit = world.units[index % 2]
    author = rng.choice(world.staff_at(unit))
    year, month, day = 2023 + rng.randrange(2), rng.randrange(1, 13), rng.randrange(1, 28)
    goals = rng.sample(SIP_GOALS, 3)
    activities = rng.sample(SIP_ACTIVITIES, 3)
    completed = index == 5
    plan = _base(world, patient, f"{patient.id}-sip-1", "SIP", author.role_ref,
                 _at(year, month, day, 10, 15))
    plan.update({
        "status": "completed" if completed else "active",
        "title": "SIP – samordnad individuell plan",
        "description": "Samordning mellan kommunens hemtjänst <&> regionens primärvård kring läkemedel, "
                       "fallrisk och stöd till anhörig. Patienten önskar att dottern är med på mötena.",
        "period": {"start": f"{year}-{month:02d}-{day:02d}",
                   **({"end": f"{year + 1}-{month:02d}-{day:02d}"} if completed else {})},
        "contained": [_goal(patient.ref, f"mal-{n}", text, achievement, f"{year + 1}-{month:02d}-01")
                      for n, (text, achievement) in enumerate(goals, start=1)],
        "goal": [{"reference": f"#mal-{n}"} for n in range(1, len(goals) + 1)],
        "activity": [_activity(desc, status, schedule, performer)
                     for desc, status, performer, schedule in activities],
        "contributor": [
            {"reference": f"Organization/{home_care.id}", "display": home_care.name},
            {"reference": f"Organization/{housing.id}", "display": housing.name} if index % 2 else
            {"identifier": {"system": HSA_SYSTEM, "value": REGION_UNIT[0]}, "display": REGION_UNIT[1]},
            patient.ref,
        ],
        "encounter": {"identifier": {"value": f"{patient.id}-sip-mote-1"}, "display": "SIP-möte"},
        "note": [{"text": "Anhörig (dotter) deltog på mötet. Nästa möte bokas av hemtjänstens samordnare."}],
    })
    plan["extension"] = [{"url": profile.SIGNATURE_TIME,
                          "valueDateTime": _at(year, month, day, 15, 40)}]
    if index == 3:  # information the care unit has not approved for the patient's own access
        plan["meta"]["security"] = [NOPATIENT]
    return plan


def _gp(world: World, patient: DemoPatient, rng: random.Random, index: int) -> dict:
    unit = world.units[(index // 2) % 2]
    author = rng.choice(world.staff_at(unit))
    year, month = 2024, rng.randrange(1, 13)
    plan = _base(world, patient, f"{patient.id}-gp-1", "GP", author.role_ref,
                 _at(year, month, 5, 13, 0))
    if index != 4:  # one plan without title: documentTitle falls back to "Genomförandeplan"
        plan["title"] = f"Genomförandeplan – {unit.name}"
    plan.update({
        "status": "active",
        "description": "Planen är upprättad tillsammans med den enskilde utifrån biståndsbeslut om "
                       "personlig omvårdnad.",
        "contained": [_goal(patient.ref, "mal-1", "Känna sig trygg i vardagen och behålla sina rutiner",
                            "in-progress", None)],
        "goal": [{"reference": "#mal-1"}],
        "activity": [_activity(desc, status, schedule, unit.name)
                     for desc, status, schedule in rng.sample(GP_ACTIVITIES, 3)],
        "contributor": [_unit_ref(unit)],
    })
    return plan


def _vp(world: World, patient: DemoPatient, rng: random.Random) -> dict:
    housing = world.units[1]
    author = world.staff_at(housing)[0]
    year, month = 2024, rng.randrange(1, 13)
    plan = _base(world, patient, f"{patient.id}-vp-1", "VP", author.role_ref,
                 _at(year, month, 12, 9, 0))
    plan["meta"]["lastUpdated"] = _at(year, month, 20, 16, 30)
    plan.update({
        "status": "active",
        "title": "Vårdplan trycksårsprevention, särskilt boende",
        "period": {"start": f"{year}-{month:02d}-12"},
        "addresses": [{"display": "Risk för trycksår"}],
        "contained": [_goal(patient.ref, "mal-1", "Intakt hud utan trycksår", "in-progress",
                            f"{year + 1}-01-31")],
        "goal": [{"reference": "#mal-1"}],
        "activity": [_activity(desc, status, schedule, housing.name)
                     for desc, status, schedule in VP_ACTIVITIES],
        "contributor": [_unit_ref(housing)],
    })
    return plan


def _base(world: World, patient: DemoPatient, plan_id: str, plan_type: str, author: dict,
          created: str) -> dict:
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        "meta": dict(world.meta),
        "identifier": [{"system": LOCAL_ID_SYSTEM, "value": plan_id}],
        "intent": "plan",
        "category": [{"coding": [{"system": profile.CARE_PLAN_TYPE, "code": plan_type}]}],
        "subject": patient.ref,
        "created": created,
        "author": author,
    }


def _at(year: int, month: int, day: int, hour: int, minute: int) -> str:
    """A FHIR dateTime in Swedish local time with the offset that applied then."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Stockholm")).isoformat()


def _unit_ref(unit: Unit) -> dict:
    return {"reference": f"Organization/{unit.id}", "display": unit.name}


def _goal(subject: dict, goal_id: str, text: str, achievement: str, due: str | None) -> dict:
    goal: dict = {
        "resourceType": "Goal",
        "id": goal_id,
        "lifecycleStatus": "active",
        "achievementStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                                          "code": achievement}],
                              "text": _ACHIEVEMENT[achievement]},
        "description": {"text": text},
        "subject": subject,
    }
    if due:
        goal["target"] = [{"dueDate": due}]
    return goal


_ACHIEVEMENT = {"in-progress": "pågår", "improving": "förbättras", "achieved": "uppnått",
                "sustaining": "bibehålls"}


def _activity(description: str, status: str, schedule: str | None, performer: str) -> dict:
    detail: dict = {"status": status, "description": description, "performer": [{"display": performer}]}
    if schedule:
        detail["scheduledString"] = schedule
    return {"detail": detail}
