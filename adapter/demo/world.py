"""The synthetic municipality behind the demo data: one care giver, two care units, staff, patients.

Every clinical generator (adapter/demo/<kind>.py) builds FHIR R4 resources for one patient on top
of this world, following the input profile in mappings/.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from adapter.mapping.timefmt import SWEDEN

HSA_SYSTEM = "urn:oid:1.2.752.29.4.19"
PNR_SYSTEM = "http://electronichealth.se/identifier/personnummer"
SNR_SYSTEM = "http://electronichealth.se/identifier/samordningsnummer"
ROLE_SYSTEM = "urn:oid:1.2.752.129.2.2.1.4"  # KV Befattning
SOURCE_PREFIX = "urn:oid:1.2.752.129.2.1.4.1#"


@dataclass(frozen=True)
class Unit:
    id: str  # FHIR Organization id
    hsa_id: str
    name: str


@dataclass(frozen=True)
class Staff:
    id: str  # FHIR Practitioner id; the PractitionerRole id is f"{id}-role"
    hsa_id: str
    given: str
    family: str
    role_code: str
    role_display: str
    unit: Unit

    @property
    def role_ref(self) -> dict:
        return {"reference": f"PractitionerRole/{self.id}-role"}


@dataclass(frozen=True)
class DemoPatient:
    id: str  # FHIR Patient id
    number: str  # 12 digits
    system: str  # PNR_SYSTEM or SNR_SYSTEM
    given: str
    family: str

    @property
    def ref(self) -> dict:
        return {"reference": f"Patient/{self.id}"}


@dataclass(frozen=True)
class World:
    source_system: str
    care_giver: Unit
    units: tuple[Unit, ...]
    staff: tuple[Staff, ...]
    patients: tuple[DemoPatient, ...]
    extra: dict = field(default_factory=dict)

    @property
    def meta(self) -> dict:
        """`meta` for a clinical resource: its source system in the EHDS-TK form."""
        return {"source": SOURCE_PREFIX + self.source_system}

    def staff_at(self, unit: Unit) -> list[Staff]:
        return [s for s in self.staff if s.unit == unit]


class Episode:
    """One patient's episode in the world, starting on a random day of 2024-2025 at `hour`: what the generators
    that tell a story over days (notes, care contacts) share. The random draws stay in their original order so
    that the demo data does not change."""

    def __init__(self, world: World, patient: DemoPatient, rng: random.Random, hour: int) -> None:
        self.world, self.patient, self.rng = world, patient, rng
        self.home_care, self.housing = world.units[0], world.units[1]
        self.start = datetime(2024 + rng.randrange(2), rng.randrange(1, 10), rng.randrange(1, 28), hour, 0,
                              tzinfo=SWEDEN)
        self.out: list[dict] = []

    def staff(self, staff_id: str) -> Staff:
        return next(s for s in self.world.staff if s.id == staff_id)

    def at(self, days: int, hour: int) -> datetime:
        return (self.start + timedelta(days=days)).replace(hour=hour, minute=self.rng.randrange(0, 60))


def default_world() -> World:
    giver = Unit("vg-exempelby", "SE2120001231-VG01", "Exempelby kommun")
    home_care = Unit("ve-hemtjanst", "SE2120001231-HT01", "Hemtjänsten Ängsvägen")
    housing = Unit("ve-sabo", "SE2120001231-SB01", "Särskilt boende Björkgården")
    staff = (
        Staff("ssk-asa", "SE2120001231-P001", "Åsa", "Öberg", "204010", "Sjuksköterska", home_care),
        Staff("ssk-jonas", "SE2120001231-P002", "Jonas", "Lind", "204010", "Sjuksköterska", housing),
        Staff("at-maria", "SE2120001231-P003", "Maria", "Ek", "322010", "Arbetsterapeut", housing),
        Staff("usk-omar", "SE2120001231-P004", "Omar", "Haddad", "532010", "Undersköterska", home_care),
    )
    patients = (
        DemoPatient("pat-1", "191212121212", PNR_SYSTEM, "Tolvan", "Tolvansson"),
        DemoPatient("pat-2", "194004019818", PNR_SYSTEM, "Märta", "Åkesson"),
        DemoPatient("pat-3", "193508199282", PNR_SYSTEM, "Göran", "Ärlig"),
        DemoPatient("pat-4", "192703152385", PNR_SYSTEM, "Karin", "Björk"),
        DemoPatient("pat-5", "195311262397", PNR_SYSTEM, "Per", "Östlund"),
        DemoPatient("pat-6", "197010632391", SNR_SYSTEM, "Ali", "Rahimi"),
    )
    return World("SE2120001231-SYS1", giver, (home_care, housing), staff, patients)
