"""Code systems: FHIR system URIs <-> RIVTA OIDs, from mappings/code-systems.csv."""

from __future__ import annotations

import csv
import re
from functools import cache
from pathlib import Path

TABLE = Path(__file__).resolve().parents[2] / "mappings" / "code-systems.csv"
OID_PATTERN = re.compile(r"^[0-2](\.[0-9]+)+$")

PERSONNUMMER = "1.2.752.129.2.1.3.1"
SAMORDNINGSNUMMER = "1.2.752.129.2.1.3.3"
HSA_ID = "1.2.752.129.2.1.4.1"


@cache
def _table() -> tuple[dict[str, str], dict[str, str]]:
    by_uri: dict[str, str] = {}
    by_oid: dict[str, str] = {}
    with TABLE.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_uri[row["uri"]] = row["oid"]
            by_oid.setdefault(row["oid"], row["uri"])  # first row is the preferred URI
    return by_uri, by_oid


def oid_for(system: str | None) -> str | None:
    """The OID for a FHIR system URI (`urn:oid:` forms included), or None when unknown."""
    if not system:
        return None
    by_uri, _ = _table()
    if system in by_uri:
        return by_uri[system]
    if system.startswith("urn:oid:") and OID_PATTERN.match(system[8:]):
        return system[8:]
    stripped = system.rstrip("/")
    for uri, oid in by_uri.items():
        if uri.rstrip("/") == stripped:
            return oid
    return None


def uri_for(oid: str) -> str:
    """The FHIR system URI for an OID; unknown OIDs keep their `urn:oid:` form."""
    _, by_oid = _table()
    return by_oid.get(oid, f"urn:oid:{oid}")


def is_hsa_system(system: str | None) -> bool:
    return oid_for(system) == HSA_ID
