"""RIVTA times: `YYYYMMDDhhmmss` / `YYYYMMDD`, no zone, always Swedish local time."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import overload
from zoneinfo import ZoneInfo

SWEDEN = ZoneInfo("Europe/Stockholm")
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")


class OutOfRange(ValueError):
    """A time the contracts cannot carry: their time types take the years 1900 to 2099 only."""


def to_local(value: datetime | date | str) -> datetime:
    """A FHIR date/dateTime (model value or string, partial dates allowed) as naive Swedish local time."""
    try:
        local = _local(value)
    except OverflowError:  # year 1 or 9999 moved across a day boundary by the zone
        raise OutOfRange("a time outside the years 1900 to 2099, which the contracts cannot carry") from None
    if not 1900 <= local.year <= 2099:
        raise OutOfRange("a time outside the years 1900 to 2099, which the contracts cannot carry")
    return local


def _local(value: datetime | date | str) -> datetime:
    if isinstance(value, str):
        m = _PARTIAL.match(value)
        if m:
            return datetime(int(m[1]), int(m[2] or 1), int(m[3] or 1))
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(SWEDEN)
        return value.replace(tzinfo=None, microsecond=0)
    return datetime(value.year, value.month, value.day)


@overload
def timestamp(value: datetime | date | str) -> str: ...
@overload
def timestamp(value: None) -> None: ...
def timestamp(value: datetime | date | str | None) -> str | None:
    """RIVTA TimeStampType (YYYYMMDDhhmmss)."""
    return None if value is None else _timestamp(value)


# Cached: a resource's time is written several times (document, author, signature) and the zone conversion and
# strftime cost more than the lookup. Equal values (aware ones: the same instant) give the same local time.
@lru_cache(maxsize=4096)
def _timestamp(value: datetime | date | str) -> str:
    return to_local(value).strftime("%Y%m%d%H%M%S")


@overload
def day(value: datetime | date | str) -> str: ...
@overload
def day(value: None) -> None: ...
def day(value: datetime | date | str | None) -> str | None:
    """RIVTA DateType (YYYYMMDD)."""
    return None if value is None else to_local(value).strftime("%Y%m%d")


def from_timestamp(value: str) -> datetime:
    """Parse a RIVTA timestamp or date into an aware datetime in Swedish time."""
    fmt = "%Y%m%d%H%M%S" if len(value) == 14 else "%Y%m%d"
    return datetime.strptime(value, fmt).replace(tzinfo=SWEDEN)
