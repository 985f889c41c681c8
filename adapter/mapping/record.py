"""What mapping produces: a published record, ready to be stored and served."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PatientId:
    id: str
    type: str  # OID: personnummer, samordningsnummer, or a local reservnummer root


@dataclass(frozen=True)
class OrgUnit:
    hsa_id: str
    name: str


@dataclass(frozen=True)
class Professional:
    """RIVTA HealthcareProfessionalType."""

    time: str  # authorTime, YYYYMMDDhhmmss
    hsa_id: str | None = None
    name: str | None = None
    role_code: tuple[str, str, str] | None = None  # (code, codeSystem OID, displayName)
    role_text: str | None = None  # originalText when the role is not coded
    org_unit: OrgUnit | None = None
    care_unit: str | None = None
    care_giver: str | None = None


@dataclass(frozen=True)
class Signer:
    """RIVTA LegalAuthenticatorType."""

    time: str  # signatureTime
    hsa_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Header:
    """The common record header (PatientSummaryHeaderType and its variants)."""

    document_id: str
    source_system: str
    patient: PatientId
    author: Professional
    approved_for_patient: bool = True
    document_title: str | None = None
    document_time: str | None = None
    signer: Signer | None = None
    care_contact: str | None = None


@dataclass
class Record:
    """A published record of one contract: the rendered XML fragment plus what filtering needs.

    `times` holds, by name, every record time the contract's date filter may look at
    (`Contract.filter_times`; a name may carry several times, e.g. dissenting opinions); for OVERLAP
    contracts `period` is the record's (start, end?) in days.
    """

    contract: str  # Contract.key
    header: Header
    fragment: bytes  # the serialised record element, namespaces declared on it
    times: dict[str, str | list[str] | None] = field(default_factory=dict)  # YYYYMMDD... strings
    period: tuple[str | None, str | None] = (None, None)  # YYYYMMDD
    category: str | None = None  # EI categorization, e.g. "pad-pad"
    chain_id: str | None = None  # GetMedicationHistory prescriptionChainId (root/extension)
    status: str | None = None  # GetMedicationHistory prescriptionStatus


@dataclass(frozen=True)
class Map:
    """A FHIR resource type a contract publishes records from (a contract module's MAPS).

    A resource goes to every Map of its type whose `claims` is true; when none claims it, to every Map of its type
    without `claims` (a Condition is a functional status when that mapping claims it, else a diagnosis).
    """

    resource_type: str
    mapper: Callable[[Any, Any], list[Record]]  # (resource model, Context) -> records
    claims: Callable[[Any], bool] | None = None
