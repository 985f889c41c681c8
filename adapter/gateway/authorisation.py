"""Who may call what: the adapter's own copy of the platform's routing catalogue (TAK).

A TOML file lists, per consumer HSA-id (taken from the caller's certificate), which contracts it may
call for which logical addresses, and which care units are hidden from which consumers as the TKB allows
(official test cases 7.1–7.3):

    platform = ["SE165565594230-1000"]         # callers whose x-rivta-original-serviceconsumer-hsaid counts

    [[allow]]
    consumer = "SE165565594230-1000"          # the national platform
    contracts = ["*"]                          # or e.g. ["GetDiagnosis", "GetCarePlans"]
    logical_addresses = ["*"]                  # or the source systems' HSA-ids

    [[hide]]
    consumers = ["SE2321000016-9KHR"]          # callers or original service consumers
    care_units = ["SE2120001231-SB01"]         # answered as if these units did not exist

A caller sees what is hidden from itself; a platform caller also what is hidden from the original consumer it
names. The header can only hide more, and only the platform's: anyone else could name a consumer with
fewer hidden units. HSA-ids of callers must be written, and are matched, exactly as the certificates carry
them (canonical: upper-case ASCII); hiding compares case-insensitively, which can only hide more.

and which systems may write to the FHIR endpoint (`/fhir`), for which source systems:

    [[writer]]
    hsa_id = "SE2120001231-JS01"               # the municipal journal system's function certificate
    source_systems = ["SE2120001231-SYS1"]     # records it may write, change and delete
    care_givers = ["SE2120001231-VG01"]        # the care givers (data controllers) its records may name
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from adapter.gateway.pki import is_canonical_hsa_id
from adapter.rivta.contracts import BY_NAME

ANY = "*"


@dataclass(frozen=True)
class Allow:
    consumer: str
    contracts: frozenset[str]
    logical_addresses: frozenset[str]

    def permits(self, consumer: str, contract: str, logical_address: str) -> bool:
        return (
            self.consumer == consumer
            and (ANY in self.contracts or contract in self.contracts)
            and (ANY in self.logical_addresses or logical_address.upper() in self.logical_addresses)
        )


@dataclass(frozen=True)
class Hide:
    consumers: frozenset[str]
    care_units: tuple[str, ...]


@dataclass(frozen=True)
class WriterGrant:
    hsa_id: str
    source_systems: frozenset[str]  # upper case
    care_givers: frozenset[str]  # upper case


class AuthorisationError(ValueError):
    pass


@dataclass(frozen=True)
class Authorisations:
    allows: tuple[Allow, ...] = ()
    hides: tuple[Hide, ...] = ()
    writers: tuple[WriterGrant, ...] = ()
    platform: frozenset[str] = frozenset()

    def writes_for(self, writer: str | None) -> tuple[frozenset[str], frozenset[str]]:
        """The source systems `writer` may write for and the care givers its records may name (both empty when
        it is not a writer)."""
        grants = [w for w in self.writers if writer and w.hsa_id == writer]
        return (frozenset().union(*(w.source_systems for w in grants)),
                frozenset().union(*(w.care_givers for w in grants)))

    def permits(self, consumer: str | None, contract: str, logical_address: str) -> bool:
        return consumer is not None and any(a.permits(consumer, contract, logical_address) for a in self.allows)

    def is_platform(self, consumer: str | None) -> bool:
        return consumer is not None and consumer in self.platform

    def hidden_care_units(self, *consumers: str | None) -> tuple[str, ...]:
        """The care units hidden from any of `consumers` (the union: more consumers never hide less)."""
        keys = {c.upper() for c in consumers if c}
        units: dict[str, None] = {}
        for h in self.hides:
            if keys & h.consumers:
                units.update(dict.fromkeys(h.care_units))
        return tuple(units)


def load(path: Path) -> Authorisations:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuthorisationError(f"{path}: {exc}") from None
    allows, hides = [], []
    for i, entry in enumerate(data.get("allow", [])):
        consumer = entry.get("consumer")
        if not isinstance(consumer, str) or not is_canonical_hsa_id(consumer):
            raise AuthorisationError(f"{path}: allow[{i}].consumer must be an HSA-id in canonical form "
                                     "(upper-case ASCII, as in the certificate)")
        unknown_contracts = set(_strings(entry, "contracts", path, f"allow[{i}]")) - {ANY, *BY_NAME}
        if unknown_contracts:
            raise AuthorisationError(f"{path}: allow[{i}].contracts: unknown {sorted(unknown_contracts)}")
        allows.append(Allow(
            consumer=consumer,
            contracts=frozenset(_strings(entry, "contracts", path, f"allow[{i}]")),
            logical_addresses=frozenset(s.upper() for s in _strings(entry, "logical_addresses", path, f"allow[{i}]")),
        ))
    for i, entry in enumerate(data.get("hide", [])):
        hides.append(Hide(
            consumers=frozenset(s.upper() for s in _strings(entry, "consumers", path, f"hide[{i}]")),
            care_units=tuple(_strings(entry, "care_units", path, f"hide[{i}]")),
        ))
    writers = []
    for i, entry in enumerate(data.get("writer", [])):
        hsa_id = entry.get("hsa_id")
        if not isinstance(hsa_id, str) or not is_canonical_hsa_id(hsa_id):
            raise AuthorisationError(f"{path}: writer[{i}].hsa_id must be an HSA-id in canonical form")
        systems = _strings(entry, "source_systems", path, f"writer[{i}]")
        givers = _strings(entry, "care_givers", path, f"writer[{i}]")
        if ANY in systems or ANY in givers:
            raise AuthorisationError(f"{path}: writer[{i}]: name the source systems and care givers (no \"*\")")
        writers.append(WriterGrant(hsa_id, frozenset(s.upper() for s in systems), frozenset(g.upper() for g in givers)))
    platform = data.get("platform", [])
    if not isinstance(platform, list) or not all(isinstance(p, str) and is_canonical_hsa_id(p) for p in platform):
        raise AuthorisationError(f"{path}: platform must be a list of HSA-ids in canonical form")
    unknown = set(data) - {"allow", "hide", "platform", "writer"}
    if unknown:
        raise AuthorisationError(f"{path}: unknown section(s) {sorted(unknown)}")
    return Authorisations(tuple(allows), tuple(hides), tuple(writers), frozenset(platform))


def _strings(entry: dict, key: str, path: Path, where: str) -> list[str]:
    value = entry.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise AuthorisationError(f"{path}: {where}.{key} must be a non-empty list of strings")
    return value
