"""Demo care notes (DocumentReference, one Composition) for one patient: GetCareDocumentation 2.1.

Every patient gets one note of each of the nine KV Anteckningstyp codes, following an episode that
starts in home care (Hemtjänsten) and continues after the move to special housing (Björkgården):
one note is a Composition, one a PNG photo, one carries the patient's dissenting opinion, one is
unsigned, one is not approved for the patient, one is linked to a home-visit Encounter and one has
a Provenance naming its care unit and care giver.
"""

from __future__ import annotations

import base64
import random
import struct
import uuid
import zlib
from datetime import datetime, timedelta

from adapter.demo.world import HSA_SYSTEM, DemoPatient, Episode, World
from adapter.mapping import profile
from adapter.mapping.context import NOPATIENT_CODE, NOPATIENT_SYSTEM

LOCAL_ID = "urn:oid:1.2.752.129.2.1.2.1"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
XHTML = "http://www.w3.org/1999/xhtml"
NOTE_DISPLAY = {
    "utr": "Utredning", "atb": "Åtgärd/Behandling", "sam": "Sammanfattning", "sao": "Samordning",
    "ins": "Inskrivning", "slu": "Slutanteckning", "auf": "Anteckning utan fysiskt möte",
    "sva": "Slutenvårdsanteckning", "bes": "Besöksanteckning",
}


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    return _Notes(world, patient, rng).build()


class _Notes(Episode):
    def __init__(self, world: World, patient: DemoPatient, rng: random.Random) -> None:
        super().__init__(world, patient, rng, hour=9)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def build(self) -> list[dict]:
        p = self.patient.given
        self.visit()
        self.text_note("atb-sar", "atb", "ssk-asa", 3, "Omläggning trycksår, text",
                       f"Omläggning av trycksår vänster häl. Sårstorlek 2 x 3 cm, rodnad < 1 cm runt såret & "
                       f"ingen lukt. Rengjort med NaCl, lagt Mepilex Border. {p} upplevde smärta 3 av 10 "
                       f"(VAS) vid omläggningen. Ny omläggning om 3 dagar.")
        self.photo()
        self.phone_call()
        self.coordination()
        self.text_note("slu", "slu", "ssk-asa", 20, "Avslut hemsjukvård",
                       f"Avslut av hemsjukvårdsinsatser i ordinärt boende då {p} flyttar till särskilt "
                       "boende Björkgården. Muntlig och skriftlig överrapportering till ansvarig "
                       "sjuksköterska. Läkemedelslista & pågående såromläggning överlämnade.")
        self.admission()
        self.assessment()
        self.text_note("sva", "sva", "ssk-jonas", 45, "Åter från slutenvården",
                       f"{p} åter från medicinkliniken efter tre dygns vård för urinvägsinfektion. Enligt "
                       "epikris avslutad antibiotikabehandling. Ordination: vätskelista och temperatur "
                       "morgon och kväll i tre dygn; kontakta ssk vid temp > 38,0 °C.")
        self.summary()
        return self.out

    # -- the notes ----------------------------------------------------------------------------------------
    def visit(self) -> None:
        when = self.at(0, 10)
        enc_id = f"{self.patient.id}-gcd-besok-enc"
        self.out.append({
            "resourceType": "Encounter", "id": enc_id, "meta": dict(self.world.meta), "status": "finished",
            "identifier": [{"system": LOCAL_ID, "value": f"vk-{self.uid()}"}],
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH",
                      "display": "home health"},
            "subject": self.patient.ref,
            "period": {"start": when.isoformat(), "end": (when + timedelta(minutes=40)).isoformat()},
            "serviceProvider": {"reference": f"Organization/{self.home_care.id}"},
        })
        bp = f"{self.rng.randrange(120, 150)}/{self.rng.randrange(70, 90)}"
        doc = self.document("bes", "bes", "ssk-asa", when, "Hembesök sjuksköterska", _text(
            f"Hembesök hos {self.patient.given}. Blodtryck {bp}, puls {self.rng.randrange(60, 90)}. "
            "Allmäntillståndet gott, äter och dricker. Såret på vänster häl läker långsamt; "
            "fortsatt omläggning enligt ordination. Nästa besök om en vecka."))
        doc["context"] = {"encounter": [{"reference": f"Encounter/{enc_id}"}],
                          "period": {"start": when.isoformat()}}
        self.out.append(doc)

    def text_note(self, key: str, code: str, staff_id: str, day: int, title: str, text: str) -> dict:
        doc = self.document(key, code, staff_id, self.at(day, self.rng.randrange(8, 16)), title, _text(text))
        self.out.append(doc)
        return doc

    def photo(self) -> None:
        png = _wound_png(self.rng)
        self.out.append(self.document("atb-foto", "atb", "ssk-asa", self.at(3, 14), "Foto trycksår vänster häl", {
            "contentType": "image/png", "title": "trycksar-vanster-hal.png",
            "data": base64.b64encode(png).decode("ascii"), "size": len(png)}))

    def phone_call(self) -> None:
        doc = self.text_note(
            "auf", "auf", "usk-omar", 7, "Telefonsamtal med anhörig",
            f"Dottern ringde och berättade att {self.patient.given} har ätit dåligt de senaste dagarna och "
            "verkar tröttare än vanligt. Vidarebefordrat till ansvarig sjuksköterska för bedömning.")
        doc["docStatus"] = "preliminary"  # not yet signed
        del doc["authenticator"]
        doc["extension"] = [e for e in doc["extension"] if e["url"] != profile.SIGNATURE_TIME]

    def coordination(self) -> None:
        doc = self.text_note(
            "sao", "sao", "ssk-asa", 10, "SIP-möte",
            "Samordnad individuell plan (SIP) med dotter, biståndshandläggare & distriktsläkare. "
            "Anhöriga uttrycker oro för tilltagande förvirring och nattlig oro; utredning av kognitiv "
            "svikt påbörjas via vårdcentralen. Ansökan om särskilt boende lämnas in.")
        doc["meta"] = {**doc["meta"], "security": [{"system": NOPATIENT_SYSTEM, "code": NOPATIENT_CODE}]}

    def admission(self) -> None:
        doc = self.text_note(
            "ins", "ins", "ssk-jonas", 21, "Inskrivning Björkgården",
            f"Inskrivning på särskilt boende Björkgården, avdelning Linnéan. {self.patient.given} kommer från "
            "ordinärt boende med hemtjänst. Medför rollator, toalettförhöjning & dosett. Inga kända "
            "allergier. Riskbedömningar (fall, nutrition, trycksår) planeras inom två veckor.")
        self.out.append({
            "resourceType": "Provenance", "id": f"{doc['id']}-prov",
            "target": [{"reference": f"DocumentReference/{doc['id']}"}],
            "recorded": doc["date"],
            "agent": [
                {"type": _participant("author"),
                 "who": {"identifier": {"system": HSA_SYSTEM, "value": self.housing.hsa_id}}},
                {"type": _participant("custodian"),
                 "who": {"identifier": {"system": HSA_SYSTEM, "value": self.world.care_giver.hsa_id}}},
            ],
        })

    def assessment(self) -> None:
        score = self.rng.randrange(3, 6)
        doc = self.text_note(
            "utr", "utr", "at-maria", 30, "Bedömning av fallrisk",
            f"Fallriskbedömning enligt Downton Fall Risk Index: {score} poäng (< 3 = låg risk). Gång med "
            "rollator säker men osäker förflyttning säng-stol nattetid. Rekommenderar rollator även inomhus, "
            "nattbelysning & höftskyddsbyxor. Uppföljning om tre månader.")
        patient = self.patient
        doc["extension"].append({"url": profile.DISSENTING_OPINION, "extension": [
            {"url": "opinionId", "valueIdentifier": {"system": LOCAL_ID, "value": self.uid()}},
            {"url": "authorTime", "valueDateTime": self.at(33, 11).isoformat()},
            {"url": "opinion", "valueString": "Jag håller inte med om att jag behöver rollator inomhus. "
                                              "Jag klarar mig bra med att hålla i möblerna."},
            {"url": "personId", "valueIdentifier": {"system": patient.system, "value": patient.number}},
            {"url": "personName", "valueString": f"{patient.given} {patient.family}"},
        ]})

    def summary(self) -> None:
        jonas = self.staff("ssk-jonas")
        when = self.at(60, 13)
        sections = [
            ("Hälsotillstånd", f"<p>{self.patient.given} har bott på Björkgården i drygt en månad. Stabilt "
                               "allmäntillstånd efter urinvägsinfektionen; ingen feber.</p>"),
            ("Omvårdnad", "<ul><li>Trycksår vänster häl läkt.</li><li>Rollator inomhus &amp; "
                          "nattbelysning enligt arbetsterapeut.</li><li>Vikt stabil.</li></ul>"),
            ("Fortsatt planering", "<p>Uppföljning av fallrisk och nutrition om tre månader. "
                                   "Läkemedelsgenomgång med läkare &lt;inom 2 veckor&gt;.</p>"),
        ]
        self.out.append({
            "resourceType": "Composition", "id": f"{self.patient.id}-gcd-sam", "meta": dict(self.world.meta),
            "identifier": {"system": LOCAL_ID, "value": self.uid()},
            "status": "final",
            "type": {"coding": [{"system": profile.NOTE_CODE, "code": "sam", "display": NOTE_DISPLAY["sam"]}]},
            "subject": self.patient.ref,
            "date": when.isoformat(),
            "author": [jonas.role_ref],
            "title": "Sammanfattning efter inflyttning",
            "attester": [{"mode": "legal", "time": (when + timedelta(hours=2)).isoformat(),
                          "party": jonas.role_ref}],
            "section": [{"title": title, "text": {
                "status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}} for title, body in sections],
        })

    # -- the common DocumentReference --------------------------------------------------------------------
    def document(self, key: str, code: str, staff_id: str, when: datetime, title: str, attachment: dict) -> dict:
        author = self.staff(staff_id)
        signed = when + timedelta(hours=self.rng.randrange(1, 6))
        return {
            "resourceType": "DocumentReference",
            "id": f"{self.patient.id}-gcd-{key}",
            "meta": dict(self.world.meta),
            "extension": [{"url": profile.SIGNATURE_TIME, "valueDateTime": signed.isoformat()}],
            "masterIdentifier": {"system": LOCAL_ID, "value": self.uid()},
            "status": "current",
            "docStatus": "final",
            "type": {"coding": [{"system": profile.NOTE_CODE, "code": code, "display": NOTE_DISPLAY[code]}]},
            "subject": self.patient.ref,
            "date": when.isoformat(),
            "author": [author.role_ref],
            "authenticator": author.role_ref,
            "description": title,
            "content": [{"attachment": attachment}],
        }


def _text(text: str) -> dict:
    return {"contentType": "text/plain; charset=utf-8", "data": base64.b64encode(text.encode("utf-8")).decode()}


def _participant(code: str) -> dict:
    return {"coding": [{"system": PARTICIPANT_TYPE, "code": code}]}


def _wound_png(rng: random.Random, width: int = 48, height: int = 32) -> bytes:
    """A small synthetic 'photo': a reddish oval on a skin-coloured background."""
    cx, cy = width / 2 + rng.uniform(-4, 4), height / 2 + rng.uniform(-3, 3)
    rx, ry = rng.uniform(7, 12), rng.uniform(5, 9)
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
            rows.extend((176, 58, 62) if inside else (231, 192, 164))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + \
        chunk(b"IEND", b"")
