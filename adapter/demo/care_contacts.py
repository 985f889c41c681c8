"""Demo care contacts (Encounter) for one patient: the district nurse's home visits, an occupational
therapist's assessment visit at the special housing unit, a phone contact with a relative, a visit that was
cancelled and one booked for later. One home visit is not approved for the patient.

Each contact carries a local identifier `vk-…`: the id other records name as their careContactId.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from adapter.demo.world import DemoPatient, Episode, Staff, Unit, World
from adapter.mapping.context import NOPATIENT_CODE, NOPATIENT_SYSTEM

LOCAL_ID = "urn:oid:1.2.752.129.2.1.2.1"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONTACT_TYPE = "urn:oid:1.2.752.129.2.2.2.25"  # KV Vårdkontakttyp
CLASSES = {"HH": "home health", "AMB": "ambulatory", "VR": "virtual"}
TYPES = {"1": "Besök", "2": "Telefon"}
HOME_VISIT_REASONS = [
    "Omläggning av trycksår vänster häl",
    "Blodtryckskontroll och läkemedelsgenomgång",
    "Provtagning: blodsocker och Hb",
    "Uppföljning efter fall i hemmet",
    "Kateterbyte",
    "Injektion B12",
]


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    return _Contacts(world, patient, rng).build()


class _Contacts(Episode):
    def __init__(self, world: World, patient: DemoPatient, rng: random.Random) -> None:
        super().__init__(world, patient, rng, hour=8)

    def build(self) -> list[dict]:
        nurse, ot, housing_nurse = self.staff("ssk-asa"), self.staff("at-maria"), self.staff("ssk-jonas")
        for n, reason in enumerate(self.rng.sample(HOME_VISIT_REASONS, 3)):
            enc = self.contact(f"hembesok-{n + 1}", "finished", "HH", "1", "Hembesök distriktssköterska",
                               nurse, self.home_care, self.at(2 + 5 * n, self.rng.randrange(8, 15)), 40, reason)
            if n == 2:  # e.g. a visit about something the patient has not yet been told
                enc["meta"]["security"] = [{"system": NOPATIENT_SYSTEM, "code": NOPATIENT_CODE}]
        self.contact("telefon", "finished", "VR", "2", "Telefonkontakt med anhörig", housing_nurse, self.housing,
                     self.at(18, 13), 10, "Dottern ringer: pappa äter sämre & är tröttare än vanligt; "
                     "blodsocker < 4 två morgnar, > 15 på kvällen")
        self.contact("at-bedomning", "finished", "AMB", "1", "Arbetsterapeutisk bedömning", ot, self.housing,
                     self.at(24, 10), 60, "Bedömning av förflyttningsförmåga och behov av hjälpmedel")
        self.contact("installt", "cancelled", "HH", "1", "Hembesök distriktssköterska", nurse, self.home_care,
                     self.at(28, 9), 30, "Provtagning: blodsocker och Hb")
        self.contact("planerat", "planned", "AMB", "1", "Uppföljande besök arbetsterapeut", ot, self.housing,
                     self.at(60, 10), None, "Utprovning av rollator och toalettförhöjning")
        return self.out

    def contact(self, key: str, status: str, klass: str, type_code: str, type_text: str, who: Staff, unit: Unit,
                when: datetime, minutes: int | None, reason: str) -> dict:
        period = {"start": when.isoformat()}
        if minutes is not None:
            period["end"] = (when + timedelta(minutes=minutes)).isoformat()
        enc = {
            "resourceType": "Encounter",
            "id": f"{self.patient.id}-vk-{key}",
            "meta": dict(self.world.meta),
            "identifier": [{"system": LOCAL_ID, "value": f"vk-{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"}],
            "status": status,
            "class": {"system": ACT_CODE, "code": klass, "display": CLASSES[klass]},
            "type": [{"coding": [{"system": CONTACT_TYPE, "code": type_code, "display": TYPES[type_code]}],
                      "text": type_text}],
            "subject": self.patient.ref,
            "participant": [{
                "type": [{"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF", "display": "primary performer"}]}],
                "individual": who.role_ref,
            }],
            "period": period,
            "reasonCode": [{"text": reason}],
            "serviceProvider": {"reference": f"Organization/{unit.id}", "display": unit.name},
        }
        if klass == "HH":
            enc["location"] = [{"location": {"display": "Patientens hem"}}]
        self.out.append(enc)
        return enc
