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

import tomllib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from adapter.consumer.pdl.services import PATIENT_ID_ROOTS, PERSONNUMMER
from adapter.mapping.timefmt import SWEDEN

EXCLUDABLE_TYPES = frozenset({"lak", "upp"})


class SeedError(ValueError):
    """The seed file is unusable; the message names the entry and the field."""


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


def load_seed(path: Path) -> Seed:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SeedError(f"{path}: {exc}") from None
    return parse_seed(data, str(path))


def parse_seed(data: dict[str, Any], origin: str = "seed") -> Seed:
    _only(data, {"consent", "block"}, origin)
    consents = tuple(_consent(e, f"{origin}: consent #{i}") for i, e in enumerate(_tables(data, "consent", origin), 1))
    blocks = tuple(_block(e, f"{origin}: block #{i}") for i, e in enumerate(_tables(data, "block", origin), 1))
    return Seed(consents, blocks)


def _consent(e: dict[str, Any], where: str) -> ConsentRecord:
    _only(e, {"id", "patient", "patient_type", "type", "care_provider", "care_unit", "employee", "valid_from",
              "valid_to", "withdrawn"}, where)
    kind = _str(e, "type", where, default="Consent")
    if kind not in ("Consent", "Emergency"):
        raise SeedError(f"{where}: type must be Consent or Emergency")
    start, end = _time(e, "valid_from", where), _time(e, "valid_to", where, end_of_day=True)
    _check_period(start, end, where)
    return ConsentRecord(
        assertion_id=_str(e, "id", where, default=str(uuid.uuid4())),
        assertion_type=kind,
        patient_type=_patient_type(e, where),
        patient_id=_str(e, "patient", where),
        care_provider=_str(e, "care_provider", where),
        care_unit=_str(e, "care_unit", where),
        employee=_str(e, "employee", where, default=None),
        start=start,
        end=end,
        withdrawn=_time(e, "withdrawn", where),
    )


def _block(e: dict[str, Any], where: str) -> BlockRecord:
    _only(e, {"id", "patient", "patient_type", "type", "care_provider", "care_unit", "valid_from", "valid_to",
              "excluded_types", "revoke"}, where)
    kind = _str(e, "type", where)
    if kind not in ("Inner", "Outer"):
        raise SeedError(f"{where}: type must be Inner or Outer")
    unit = _str(e, "care_unit", where, default=None)
    if kind == "Inner" and unit is None:
        raise SeedError(f"{where}: an inner block needs care_unit")
    excluded = e.get("excluded_types", [])
    if not isinstance(excluded, list) or not set(excluded) <= EXCLUDABLE_TYPES:
        raise SeedError(f"{where}: excluded_types must be a list of {sorted(EXCLUDABLE_TYPES)}")
    start, end = _time(e, "valid_from", where), _time(e, "valid_to", where, end_of_day=True)
    _check_period(start, end, where)
    revokes = []
    for i, r in enumerate(_tables(e, "revoke", where), 1):
        at = f"{where}, revoke #{i}"
        _only(r, {"care_unit", "employee", "valid_to"}, at)
        until = _time(r, "valid_to", at, end_of_day=True)
        if until is None:
            raise SeedError(f"{at}: valid_to is required")
        revokes.append(Revoke(_str(r, "care_unit", at), until, _str(r, "employee", at, default=None)))
    return BlockRecord(
        block_id=_str(e, "id", where, default=str(uuid.uuid4())),
        block_type=kind,
        patient_type=_patient_type(e, where),
        patient_id=_str(e, "patient", where),
        care_provider=_str(e, "care_provider", where),
        care_unit=unit,
        start=start,
        end=end,
        excluded_types=frozenset(excluded),
        revokes=tuple(revokes),
    )


_REQUIRED = object()


def _str(e: dict[str, Any], key: str, where: str, default: Any = _REQUIRED) -> Any:
    if key not in e:
        if default is _REQUIRED:
            raise SeedError(f"{where}: {key} is required")
        return default
    value = e[key]
    if not isinstance(value, str) or not value.strip():
        raise SeedError(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _patient_type(e: dict[str, Any], where: str) -> str:
    root = _str(e, "patient_type", where, default=PERSONNUMMER)
    if root not in PATIENT_ID_ROOTS:
        raise SeedError(f"{where}: patient_type must be one of {sorted(PATIENT_ID_ROOTS)}")
    return root


def _time(e: dict[str, Any], key: str, where: str, *, end_of_day: bool = False) -> datetime | None:
    value = e.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=SWEDEN)
    if isinstance(value, date):
        return datetime.combine(value, time.max if end_of_day else time.min, tzinfo=SWEDEN)
    raise SeedError(f"{where}: {key} must be a TOML date or date-time")


def _check_period(start: datetime | None, end: datetime | None, where: str) -> None:
    if start is not None and end is not None and end < start:
        raise SeedError(f"{where}: valid_to is before valid_from")


def _tables(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SeedError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def _only(e: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(e) - allowed)
    if unknown:
        raise SeedError(f"{where}: unknown key(s) {', '.join(unknown)}")
