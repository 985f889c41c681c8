"""Demo data for GetFunctionalStatus: PADL and ICF assessments from municipal home care and special housing.

Per patient one PADL assessment and one or two ICF (fun-fun) assessments, alternating between the two
input shapes of mappings/GetFunctionalStatus.md (Observation with components / Condition with notes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from adapter.demo.world import HSA_SYSTEM, DemoPatient, Staff, Unit, World
from adapter.mapping import profile
from adapter.mapping.context import NOPATIENT_CODE, NOPATIENT_SYSTEM
from adapter.mapping.timefmt import SWEDEN

_Item = tuple[str, str, str]  # PADL activity code, display, assessment text
ICF_SYSTEM = "http://hl7.org/fhir/sid/icf"
LOCAL_ID_SYSTEM = "urn:oid:1.2.752.129.2.1.2.1"
PROVENANCE_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

# (code in the project code system, display, assessment texts to choose from)
PADL = (
    ("personlig-hygien", "Personlig hygien", (
        "Klarar ansikte och händer själv. Behöver hjälp vid dusch två gånger i veckan.",
        "Tål stående <5 min & behöver duschpall; orkar tvätta överkroppen (>2 ggr/dag med stöd).",
        "Helt beroende av personal vid all personlig hygien.",
    )),
    ("pa-avkladning", "På/avklädning", (
        "Klär på sig överkroppen själv, behöver hjälp med strumpor och skor.",
        "Behöver hjälp med knappar och blixtlås på grund av nedsatt finmotorik i höger hand.",
        "Klarar av- och påklädning självständigt med extra tid.",
    )),
    ("forflyttning", "Förflyttning", (
        "Går med rollator inomhus. Behöver stöd av en person vid förflyttning säng–rullstol.",
        "Förflyttas med taklyft och två personal.",
        "Går självständigt inomhus utan hjälpmedel, rollator utomhus.",
    )),
    ("toalettbesok", "Toalettbesök", (
        "Klarar toalettbesök dagtid, använder bäcken nattetid.",
        "Behöver hjälp med byte av inkontinensskydd morgon och kväll.",
        "Klarar toalettbesök självständigt med förhöjd toalettstol.",
    )),
    ("fodointag", "Födointag", (
        "Äter själv efter att maten portionerats och skurits i bitar.",
        "Behöver matning vid samtliga måltider, konsistensanpassad kost.",
        "Äter själv med anpassade bestick, behöver påminnelse om att dricka.",
    )),
)

# (ICF code as recorded, display, comment); the last one has no ICF code and is sent as originalText.
ICF = (
    ("b1440.2", "Korttidsminne", "Glömmer planerade aktiviteter samma dag; använder dagbok och påminnelser."),
    ("b210", "Synfunktioner", "Ser dåligt på vänster öga, behöver god belysning vid läsning."),
    ("b230", "Hörselfunktioner", "Hörapparat båda öronen. Tala tydligt och vänd ansiktet mot brukaren."),
    ("d450", "Att gå", "Gångsträcka cirka 20 meter med rollator innan vila behövs."),
    ("b7302", "Kraft i muskler på ena sidan av kroppen", "Nedsatt kraft i höger arm och ben efter stroke."),
    ("b152", "Emotionella funktioner", "Periodvis nedstämd, särskilt kvällstid. Samtalsstöd erbjuds."),
    (None, "Nedsatt förmåga att använda trygghetslarm", "Förstår inte larmknappen & glömmer bära den."),
)


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    g = _Gen(world, patient, world.patients.index(patient))
    base = datetime(2024, 1, 8, 9, 0, tzinfo=SWEDEN) + timedelta(days=rng.randrange(0, 400))
    out: list[dict] = []

    # PADL: all five activities for two patients, a subset for the others.
    count = 5 if g.index in (0, 3) else rng.randint(2, 4)
    chosen = sorted(rng.sample(range(len(PADL)), count))
    items = [(PADL[i][0], PADL[i][1], rng.choice(PADL[i][2])) for i in chosen]
    if g.index == 0:
        items[0] = (PADL[0][0], PADL[0][1], PADL[0][2][1])  # the text with <&>
    comment = rng.choice((
        "Bedömning inför vårdplanering tillsammans med brukare och anhörig.",
        "Uppföljning efter sjukhusvistelse; förmågan har försämrats sedan förra bedömningen.",
        None,
    ))
    when = base + timedelta(hours=rng.randint(0, 6))
    staff = g.staff(g.index)
    if g.index % 2 == 0:
        out.append(g.padl_observation(staff, when, items, comment, signed=g.index != 4))
    else:
        out += g.padl_condition(staff, when, items, comment, signed=g.index != 5)

    # ICF: one assessment each, two for some; the emotional-function one is not approved for the patient.
    picks = rng.sample(range(len(ICF)), 2 if g.index in (1, 2, 5) else 1)
    forced = {2: 5, 4: len(ICF) - 1}.get(g.index)  # the emotional one; the one without ICF code
    if forced is not None and forced not in picks:
        picks[0] = forced
    staff = g.staff(g.index + 1)
    for n, pick in enumerate(picks):
        when = base + timedelta(days=rng.randint(1, 60) + 30 * n, hours=rng.randint(0, 8))
        if (g.index + n) % 2 == 1:
            out.append(g.icf_observation(n + 1, staff, when, ICF[pick], hidden=pick == 5))
        else:
            out += g.icf_condition(n + 1, staff, when, ICF[pick], hidden=pick == 5, signed=n == 0)
    return out


@dataclass(frozen=True)
class _Gen:
    world: World
    patient: DemoPatient
    index: int

    def padl_observation(
        self, staff: Staff, when: datetime, items: list[_Item], comment: str | None, signed: bool
    ) -> dict:
        obs = self._base("Observation", "padl", 0)
        obs |= {
            "status": "final",
            "category": [_category("pad-pad")],
            "code": {"text": "PADL-bedömning"},
            "subject": self.patient.ref,
            "effectiveDateTime": when.isoformat(),
            "issued": (when + timedelta(hours=2)).isoformat(),
            "performer": [staff.role_ref],
            "component": [
                {"code": {"coding": [{"system": profile.PADL_ACTIVITY, "code": code, "display": display}]},
                 "valueString": text}
                for code, display, text in items
            ],
        }
        if comment:
            obs["note"] = [{"text": comment}]
        if signed:
            signed_at = (when + timedelta(days=1)).isoformat()
            obs["extension"] = [{"url": profile.SIGNATURE_TIME, "valueDateTime": signed_at}]
            la = {"coding": [{"system": profile.PARTICIPATION_TYPE, "code": "LA"}]}
            signer = {
                **self.signer(staff).role_ref,
                "extension": [{"url": profile.PERFORMER_FUNCTION, "valueCodeableConcept": la}],
            }
            # An author who signs is one performer marked LA; another signer is a second performer.
            obs["performer"] = [signer] if self.signer(staff) == staff else [staff.role_ref, signer]
        if self.index == 0:
            obs["encounter"] = {"identifier": {"system": LOCAL_ID_SYSTEM, "value": f"VK-{self.patient.id}-1"}}
        return obs

    def padl_condition(
        self, staff: Staff, when: datetime, items: list[_Item], comment: str | None, signed: bool
    ) -> list[dict]:
        cond = self._condition("padl", 0, "pad-pad", staff, when, signed, hidden=False)
        notes = [{"text": comment}] if comment else []
        notes += [{"text": f"[{display}]: {text}"} for _, display, text in items]
        cond["note"] = notes
        return [cond, self._provenance(cond, staff.unit, when)]

    def icf_observation(self, number: int, staff: Staff, when: datetime, icf: tuple, hidden: bool) -> dict:
        code, display, text = icf
        obs = self._base("Observation", f"icf-{number}", number, hidden)
        obs |= {
            "status": "final",
            "category": [_category("fun-fun")],
            "code": _icf_concept(code, display),
            "subject": self.patient.ref,
            "effectiveDateTime": when.isoformat(),
            "issued": (when + timedelta(minutes=45)).isoformat(),
            "performer": [staff.role_ref],
            "note": [{"text": text}],
        }
        return obs

    def icf_condition(
        self, number: int, staff: Staff, when: datetime, icf: tuple, hidden: bool, signed: bool
    ) -> list[dict]:
        code, display, text = icf
        cond = self._condition(f"icf-{number}", number, "fun-fun", staff, when, signed, hidden)
        cond["code"] = _icf_concept(code, display)
        cond["note"] = [{"text": text}]
        return [cond, self._provenance(cond, staff.unit, when)]

    def staff(self, n: int) -> Staff:
        """Alternate between the two care units and between the staff of a unit."""
        unit = self.world.units[n % len(self.world.units)]
        at_unit = self.world.staff_at(unit)
        return at_unit[n // len(self.world.units) % len(at_unit)]

    def signer(self, author: Staff) -> Staff:
        """A nurse at the author's unit signs (the author when the author is that nurse)."""
        nurses = [s for s in self.world.staff_at(author.unit) if s.role_display == "Sjuksköterska"]
        return nurses[0] if nurses else author

    # -- parts ---------------------------------------------------------------------------------------
    def _condition(
        self, kind: str, number: int, category: str, staff: Staff, when: datetime, signed: bool, hidden: bool
    ) -> dict:
        cond = self._base("Condition", kind, number, hidden)
        cond |= {
            "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
            "verificationStatus": _coding(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"
            ),
            "category": [_category(category)],
            "subject": self.patient.ref,
            "recordedDate": (when + timedelta(hours=1)).isoformat(),
            "recorder": staff.role_ref,
            "extension": [{"url": profile.CONDITION_ASSERTED_DATE, "valueDateTime": when.isoformat()}],
        }
        if signed:
            cond["asserter"] = self.signer(staff).role_ref
        return cond

    def _base(self, rtype: str, kind: str, number: int, hidden: bool = False) -> dict:
        meta = dict(self.world.meta)
        if hidden:
            meta["security"] = [{"system": NOPATIENT_SYSTEM, "code": NOPATIENT_CODE}]
        return {
            "resourceType": rtype,
            "id": f"fs-{self.patient.id}-{kind}",
            "meta": meta,
            "identifier": [{"system": LOCAL_ID_SYSTEM, "value": f"FS-{self.index + 1:02d}-{number:02d}"}],
        }

    def _provenance(self, target: dict, unit: Unit, when: datetime) -> dict:
        """Care unit (author) and care giver (custodian) as EHDS-TK records them."""
        giver = self.world.care_giver
        return {
            "resourceType": "Provenance",
            "id": f"prov-{target['id']}",
            "target": [{"reference": f"{target['resourceType']}/{target['id']}"}],
            "recorded": when.isoformat(),
            "agent": [_agent("author", unit), _agent("custodian", giver)],
        }


def _agent(kind: str, unit: Unit) -> dict:
    return {
        "type": {"coding": [{"system": PROVENANCE_TYPE, "code": kind}]},
        "who": {"identifier": {"system": HSA_SYSTEM, "value": unit.hsa_id}, "display": unit.name},
    }


def _coding(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _category(code: str) -> dict:
    display = "PADL-bedömning" if code == "pad-pad" else "Funktionsnedsättningsbedömning"
    return {"coding": [{"system": profile.ASSESSMENT_CATEGORY, "code": code, "display": display}]}


def _icf_concept(code: str | None, display: str) -> dict:
    if code is None:
        return {"text": display}
    return {"coding": [{"system": ICF_SYSTEM, "code": code, "display": display}], "text": display}
