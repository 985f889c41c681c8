"""Who may call what: the adapter's own copy of the platform's routing catalogue (TAK).

A TOML file lists, per consumer HSA-id (taken from the caller's certificate), which contracts it may
call for which logical addresses, and which care units are hidden from which consumers as the TKB allows
(official test cases 7.1–7.3):

    platform = ["SE165565594230-1000"]         # callers whose x-rivta-original-serviceconsumer-hsaid counts

    [[allow]]
    consumer = "SE165565594230-1000"          # the national platform
    contracts = ["*"]                          # or responder namespaces, as the TAK keys contracts, e.g.
                        # ["urn:riv:clinicalprocess:healthcond:description:GetDiagnosisResponder:2"]
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

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from adapter.gateway.pki import is_canonical_hsa_id
from adapter.rivta.contracts import BY_NAMESPACE, lookup
from adapter.tomlfile import Model, Text, TomlFileError, read, validate

ANY = "*"


@dataclass(frozen=True)
class Allow:
    consumer: str
    contracts: frozenset[str]
    logical_addresses: frozenset[str]

    def permits(self, consumer: str, contract: str, logical_address: str) -> bool:
        """`contract`: the responder namespace of the contract called."""
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


class AuthorisationError(TomlFileError):
    """The authorisations file cannot be used; the message names the file, the key path and the problem."""


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


def _canonical(value: str) -> str:
    if not is_canonical_hsa_id(value):
        raise ValueError("must be an HSA-id in canonical form (upper-case ASCII, as in the certificate)")
    return value


def _contract(value: str) -> str:
    if value == ANY or value in BY_NAMESPACE:
        return value
    try:  # a name or key: say which namespace is meant, rather than guess a version
        hint = f"; write {lookup(value).responder_ns}"
    except ValueError:
        hint = f" (known: {', '.join(BY_NAMESPACE)}, or \"*\")"
    raise ValueError(f"{value!r} is not a served contract's responder namespace{hint}")


HsaId = Annotated[str, AfterValidator(_canonical)]
Strings = Annotated[list[Text], Field(min_length=1)]


class _AllowTable(Model):
    consumer: HsaId
    contracts: Annotated[list[Annotated[str, AfterValidator(_contract)]], Field(min_length=1)]
    logical_addresses: Strings


class _HideTable(Model):
    consumers: Strings
    care_units: Strings


class _WriterTable(Model):
    hsa_id: HsaId
    source_systems: Strings
    care_givers: Strings

    @model_validator(mode="after")
    def _named(self) -> _WriterTable:
        if ANY in self.source_systems or ANY in self.care_givers:
            raise ValueError("name the source systems and care givers (no \"*\")")
        return self


class _AuthorisationsFile(Model):
    platform: list[HsaId] = []
    allow: list[_AllowTable] = []
    hide: list[_HideTable] = []
    writer: list[_WriterTable] = []


def load(path: Path) -> Authorisations:
    """The authorisations file; `AuthorisationError` names the file, the key path and the problem."""
    data = validate(_AuthorisationsFile, read(path, AuthorisationError), path, AuthorisationError)
    return Authorisations(
        allows=tuple(Allow(a.consumer, frozenset(a.contracts), frozenset(s.upper() for s in a.logical_addresses))
                     for a in data.allow),
        hides=tuple(Hide(frozenset(s.upper() for s in h.consumers), tuple(h.care_units)) for h in data.hide),
        writers=tuple(WriterGrant(w.hsa_id, frozenset(s.upper() for s in w.source_systems),
                                  frozenset(g.upper() for g in w.care_givers)) for w in data.writer),
        platform=frozenset(data.platform),
    )
