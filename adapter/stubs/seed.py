"""The stand-ins' starting state, read from a TOML file: consents and blocks (the log stand-in starts empty).

```toml
[[consent]]                                # a consent or emergency assertion
patient = "191212121212"
patient_type = "1.2.752.129.2.1.3.1"       # optional, personnummer by default
type = "Consent"                           # or "Emergency"; default "Consent"
care_provider = "SE2321000016-RG01"        # the care provider and unit it is registered for
care_unit = "SE2321000016-AKUT"
employee = "SE2321000016-L001"             # optional: for this employee only
valid_from = 2025-01-01                    # optional (default: always); a date means its first moment
valid_to = 2030-12-31                      # optional (default: until withdrawn); a date means its last moment
withdrawn = 2025-06-01T12:00:00+02:00      # optional: withdrawn (återkallat) at this time
id = "..."                                 # optional assertion id

[[block]]
patient = "194004019818"
type = "Outer"                             # "Outer" (yttre) or "Inner" (inre)
care_provider = "SE2120001231-VG01"        # whose information is blocked
care_unit = "SE2120001231-SB01"            # optional for Outer (default: the whole care provider); required for Inner
valid_from = 2024-01-01                    # optional information period; none: all the information
valid_to = 2024-12-31
excluded_types = ["lak"]                   # optional: kinds of information the block leaves out ("lak", "upp")
[[block.revoke]]                           # optional temporary revoke (tillfällig hävning)
care_unit = "SE2321000016-AKUT"
employee = "SE2321000016-L001"             # optional: for this employee only
valid_to = 2030-01-01T00:00:00+01:00
```

Times without an offset are Swedish local time. Unknown keys are refused, so a typo cannot silently
change what the stand-in answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, model_validator

from adapter.consumer.pdl.services import PATIENT_ID_ROOTS, PERSONNUMMER
from adapter.mapping.timefmt import SWEDEN
from adapter.tomlfile import Model, Stripped, TomlFileError, read, validate

EXCLUDABLE_TYPES = frozenset({"lak", "upp"})


class SeedError(TomlFileError):
    """The seed file is unusable; the message names the file, the key path and the problem."""


@dataclass(frozen=True)
class ConsentRecord:
    assertion_id: str
    assertion_type: str  # "Consent" | "Emergency"
    patient_type: str
    patient_id: str
    care_provider: str
    care_unit: str
    employee: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    withdrawn: datetime | None = None


@dataclass(frozen=True)
class Revoke:
    care_unit: str
    end: datetime
    employee: str | None = None


@dataclass(frozen=True)
class BlockRecord:
    block_id: str
    block_type: str  # "Inner" | "Outer"
    patient_type: str
    patient_id: str
    care_provider: str
    care_unit: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    excluded_types: frozenset[str] = frozenset()
    revokes: tuple[Revoke, ...] = ()


@dataclass(frozen=True)
class Seed:
    consents: tuple[ConsentRecord, ...] = ()
    blocks: tuple[BlockRecord, ...] = ()


def _start(value: Any) -> datetime:
    return _time(value, end_of_day=False)


def _end(value: Any) -> datetime:
    return _time(value, end_of_day=True)


def _time(value: Any, *, end_of_day: bool) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=SWEDEN)
    if isinstance(value, date):
        return datetime.combine(value, time.max if end_of_day else time.min, tzinfo=SWEDEN)
    raise ValueError(f"must be a TOML date or date-time (found {value!r})")


def _patient_type(value: str) -> str:
    if value not in PATIENT_ID_ROOTS:
        raise ValueError(f"must be one of {sorted(PATIENT_ID_ROOTS)}")
    return value


Start = Annotated[datetime, PlainValidator(_start)]  # a date means its first moment
End = Annotated[datetime, PlainValidator(_end)]  # a date means its last moment
PatientType = Annotated[Stripped, AfterValidator(_patient_type)]


def _new_id() -> str:
    return str(uuid.uuid4())


class _Period(Model):
    valid_from: Start | None = None
    valid_to: End | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _Period:
        if self.valid_from is not None and self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self


class _ConsentTable(_Period):
    id: Stripped = Field(default_factory=_new_id)
    patient: Stripped
    patient_type: PatientType = PERSONNUMMER
    type: Literal["Consent", "Emergency"] = "Consent"
    care_provider: Stripped
    care_unit: Stripped
    employee: Stripped | None = None
    withdrawn: Start | None = None

    def record(self) -> ConsentRecord:
        return ConsentRecord(self.id, self.type, self.patient_type, self.patient, self.care_provider, self.care_unit,
                             self.employee, self.valid_from, self.valid_to, self.withdrawn)


class _RevokeTable(Model):
    care_unit: Stripped
    employee: Stripped | None = None
    valid_to: End


class _BlockTable(_Period):
    id: Stripped = Field(default_factory=_new_id)
    patient: Stripped
    patient_type: PatientType = PERSONNUMMER
    type: Literal["Inner", "Outer"]
    care_provider: Stripped
    care_unit: Stripped | None = None
    excluded_types: list[Literal["lak", "upp"]] = []
    revoke: list[_RevokeTable] = []

    @model_validator(mode="after")
    def _inner_has_unit(self) -> _BlockTable:
        if self.type == "Inner" and self.care_unit is None:
            raise ValueError("an inner block needs care_unit")
        return self

    def record(self) -> BlockRecord:
        return BlockRecord(self.id, self.type, self.patient_type, self.patient, self.care_provider, self.care_unit,
                           self.valid_from, self.valid_to, frozenset(self.excluded_types),
                           tuple(Revoke(r.care_unit, r.valid_to, r.employee) for r in self.revoke))


class _SeedFile(Model):
    consent: list[_ConsentTable] = []
    block: list[_BlockTable] = []


def load_seed(path: Path) -> Seed:
    """The seed file; `SeedError` names the file, the key path (e.g. `block[0].revoke[1].valid_to`) and the
    problem."""
    return parse_seed(read(path, SeedError), str(path))


def parse_seed(data: dict[str, Any], origin: str = "seed") -> Seed:
    seed = validate(_SeedFile, data, origin, SeedError)
    return Seed(tuple(c.record() for c in seed.consent), tuple(b.record() for b in seed.block))
