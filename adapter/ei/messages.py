"""Engagement index Update 1.0 (urn:riv:itintegration:engagementindex:UpdateResponder:1): the request a
producer sends and the answer it reads.

Rules (TKB itintegration:engagementindex 1.0.9 §8.2, §9.2; the national EI's validator, see DOMAIN.md §2):
* a producer never sends creationTime, updateTime or owner: the index sets them;
* at most 1000 transactions per call, and no two with the same unique key in one call;
* logicalAddress equals sourceSystem (the domains' EI schematron); no value starts or ends with white space;
  the index's length limits apply.
One bad engagement makes the index refuse the whole call, so `engagement_problems` lets the caller set such
an engagement aside before it is batched; `build_update` refuses to build a call that breaks a rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache

from lxml import etree

from adapter.rivta import client as rivta
from adapter.rivta.contracts import CONTRACTS_DIR, REGISTRY_NS, SOAP_NS

UPDATE_RESPONDER_NS = "urn:riv:itintegration:engagementindex:UpdateResponder:1"
EI_CORE_NS = "urn:riv:itintegration:engagementindex:1"
SOAP_ACTION = f"{UPDATE_RESPONDER_NS}:Update"
URL_PATH = "/itintegration/engagementindex/Update/1/rivtabp21"
UPDATE_XSD = CONTRACTS_DIR / "EngagementIndexUpdate" / "1.0" / "EngagementIndexUpdateResponder_1.0.xsd"
UPDATE_WSDL = CONTRACTS_DIR / "EngagementIndexUpdate" / "1.0" / "EngagementIndexUpdateInteraction_1.0_RIVTABP21.wsdl"
MAX_TRANSACTIONS = 1000

# (attribute, element) in schema order. creationTime, updateTime and owner are the index's own fields.
FIELDS: tuple[tuple[str, str], ...] = (
    ("registered_resident_identification", "registeredResidentIdentification"),
    ("service_domain", "serviceDomain"),
    ("categorization", "categorization"),
    ("logical_address", "logicalAddress"),
    ("business_object_instance_identifier", "businessObjectInstanceIdentifier"),
    ("clinical_process_interest_id", "clinicalProcessInterestId"),
    ("most_recent_content", "mostRecentContent"),
    ("source_system", "sourceSystem"),
    ("data_controller", "dataController"),
)
INDEX_SET_FIELDS = ("creationTime", "updateTime", "owner")
# The national EI's column sizes (skltp/ei EngagementValidator).
MAX_LENGTHS: dict[str, int] = {
    "registeredResidentIdentification": 32, "serviceDomain": 255, "categorization": 255, "logicalAddress": 64,
    "businessObjectInstanceIdentifier": 128, "clinicalProcessInterestId": 128, "sourceSystem": 64,
    "dataController": 64, "mostRecentContent": 14, "creationTime": 14, "updateTime": 14,
}
# TKB 1.0.9 / the official schema; the deployed national EI's schema is stricter (DEPLOYED_RESIDENT_PATTERN).
RESIDENT_PATTERN = re.compile(r"[0-9]{8}[0-9A-Zptf]{4}")
DEPLOYED_RESIDENT_PATTERN = re.compile(r"[0-9]{8}[0-9pPtTfF][0-9]{3}")
TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
_TIMESTAMP = re.compile(r"[1-9][0-9]{13}")
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Engagement:
    """One index post as a producer sends it (never creationTime, updateTime, owner)."""

    registered_resident_identification: str
    service_domain: str
    categorization: str
    logical_address: str
    business_object_instance_identifier: str = "NA"
    clinical_process_interest_id: str = "NA"
    most_recent_content: str | None = None  # YYYYMMDDhhmmss, Swedish local time
    source_system: str = ""
    data_controller: str = ""

    def key(self) -> tuple[str, ...]:
        """The index's unique key: every field but mostRecentContent (owner is the index's own, constant)."""
        return (self.registered_resident_identification, self.service_domain, self.categorization,
                self.logical_address, self.business_object_instance_identifier, self.clinical_process_interest_id,
                self.source_system, self.data_controller)

    def fields(self) -> dict[str, str]:
        """Element name -> value in schema order; mostRecentContent only when set."""
        values = {element: getattr(self, attr) for attr, element in FIELDS}
        return {k: v for k, v in values.items() if v is not None}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str | None]) -> Engagement:
        """From element names (as `fields()` gives them); index-set fields are ignored."""
        return cls(**{attr: fields[element] for attr, element in FIELDS if fields.get(element) is not None})


@dataclass(frozen=True)
class EngagementTransaction:
    engagement: Engagement
    delete_flag: bool


class ResultCode(StrEnum):
    OK = "OK"
    INFO = "INFO"  # done, with a remark in the comment
    ERROR = "ERROR"  # a logical error: resending the same call fails again


@dataclass(frozen=True)
class UpdateResult:
    code: ResultCode
    comment: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is not ResultCode.ERROR


class EiError(Exception):
    """An Update call that did not get a ResultCode answer."""


class EiFault(EiError):
    """The index (or the platform in front of it) answered with a SOAP fault.

    `code` is the EIxxx or VPxxx code found in the fault text, if any; `message` has identity-like values
    redacted. The national EI reports its validation errors as faults too (EI001–EI006): those are
    `rejected`, and resending the same batch fails the same way.
    """

    REJECTION_CODES = frozenset({"EI001", "EI002", "EI003", "EI004", "EI005", "EI006"})

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)  # the fault text itself normally starts with the code
        self.code = code
        self.message = message

    @property
    def rejected(self) -> bool:
        return self.code in self.REJECTION_CODES


class EiUnavailable(EiError):
    """No usable answer: connection refused or dropped, timeout, an HTTP error or an unreadable answer.
    Whether the index applied the call is unknown; resending it is safe (an unchanged post is a no-op)."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class InvalidBatch(ValueError):
    """The transactions cannot be sent as one call; `index` is the offending transaction (0-based) if one is."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def is_timestamp(value: str) -> bool:
    """YYYYMMDDhhmmss naming a real moment (the schema pattern alone admits 30 February)."""
    if not _TIMESTAMP.fullmatch(value):
        return False
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def engagement_problems(engagement: Engagement) -> list[str]:
    """What the national EI (or the certification mock) would refuse in this engagement. Messages name
    fields, never values."""
    problems = []
    fields = engagement.fields()
    for element, value in fields.items():
        if not value:
            problems.append(f"{element} is empty")
            continue
        if value != value.strip():
            problems.append(f"{element} starts or ends with white space")
        if len(value) > MAX_LENGTHS[element]:
            problems.append(f"{element} is longer than {MAX_LENGTHS[element]} characters")
        if _XML_UNSAFE.search(value):
            problems.append(f"{element} holds characters XML cannot carry")
    resident = fields["registeredResidentIdentification"]
    if resident and not RESIDENT_PATTERN.fullmatch(resident):
        problems.append("registeredResidentIdentification is not a national identity of 12 characters")
    recent = engagement.most_recent_content
    if recent and not is_timestamp(recent):
        problems.append("mostRecentContent is not a timestamp YYYYMMDDhhmmss")
    if engagement.logical_address != engagement.source_system:
        problems.append("logicalAddress differs from sourceSystem")
    return problems


def build_update(ei_logical_address: str, transactions: Sequence[EngagementTransaction]) -> bytes:
    """The SOAP 1.1 envelope of one Update call. Raises InvalidBatch (a ValueError) for an empty batch, more
    than 1000 transactions, an engagement the index would refuse, or two transactions with the same key."""
    if not ei_logical_address or ei_logical_address != ei_logical_address.strip():
        raise InvalidBatch("the index's logical address is empty or has surrounding white space")
    if not transactions:
        raise InvalidBatch("an Update needs at least one transaction")
    if len(transactions) > MAX_TRANSACTIONS:
        raise InvalidBatch(f"{len(transactions)} transactions: at most {MAX_TRANSACTIONS} per Update")
    seen: dict[tuple[str, ...], int] = {}
    for i, t in enumerate(transactions):
        problems = engagement_problems(t.engagement)
        if problems:
            raise InvalidBatch(f"transaction {i}: " + "; ".join(problems), i)
        first = seen.setdefault(t.engagement.key(), i)
        if first != i:
            raise InvalidBatch(f"transactions {first} and {i} have the same unique key", i)

    env = etree.Element(f"{{{SOAP_NS}}}Envelope",
                        nsmap={"soapenv": SOAP_NS, "itr": REGISTRY_NS, "u": UPDATE_RESPONDER_NS, "ei": EI_CORE_NS})
    header = etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    etree.SubElement(header, f"{{{REGISTRY_NS}}}LogicalAddress").text = ei_logical_address
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    update = etree.SubElement(body, f"{{{UPDATE_RESPONDER_NS}}}Update")
    for t in transactions:
        tx = etree.SubElement(update, f"{{{UPDATE_RESPONDER_NS}}}engagementTransaction")
        etree.SubElement(tx, f"{{{EI_CORE_NS}}}deleteFlag").text = "true" if t.delete_flag else "false"
        eng = etree.SubElement(tx, f"{{{EI_CORE_NS}}}engagement")
        for element, value in t.engagement.fields().items():
            etree.SubElement(eng, f"{{{EI_CORE_NS}}}{element}").text = value
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


@cache
def update_schema() -> etree.XMLSchema:
    """The project's Update 1.0 schema (contracts/EngagementIndexUpdate/1.0)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(UPDATE_XSD), parser))


# Values shaped like a personnummer, samordningsnummer or reserve number (6 or 8 digits, an optional
# separator, 3-4 more characters). A 10-digit organisation number (third digit 2 or more) is kept.
_IDENTITY_LIKE = re.compile(r"(?<![0-9A-Za-z])[0-9]{6}(?:[0-9]{2})?[-+]?[0-9A-Za-z]{3,4}(?![0-9A-Za-z])")
_QUOTED = re.compile(r"'[^']*'")


def redact(text: str, limit: int = 500) -> str:
    """Fault and comment text from the network with identity-like and quoted values removed, so it can go
    to logs and operators. Schema-validation messages quote the offending value; those quotes go too."""

    def identity(m: re.Match) -> str:
        token = m.group(0)
        is_org_number = len(token) == 10 and token.isdigit() and int(token[2]) >= 2
        return token if is_org_number else "(redacted)"

    text = _QUOTED.sub("'(redacted)'", text)
    text = _IDENTITY_LIKE.sub(identity, text)
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text if len(text) <= limit else text[:limit] + "…"


def parse_update_response(data: bytes) -> UpdateResult:
    """Read the index's answer. Raises EiFault for a SOAP fault, EiUnavailable for anything unreadable."""
    try:
        answer = rivta.read_answer(rivta.ANSWER_STATUS, data)
    except rivta.Fault as fault:
        raise ei_fault(fault) from None
    except rivta.RivtaCallError as exc:
        raise EiUnavailable(f"unreadable answer: {exc.reason}") from None
    return update_result(answer)


def update_result(answer: etree._Element) -> UpdateResult:
    """The result in the element of an answer's Body; raises EiUnavailable when it is no valid UpdateResponse."""
    if answer.tag != f"{{{UPDATE_RESPONDER_NS}}}UpdateResponse":
        raise EiUnavailable("unreadable answer: the body is not an UpdateResponse")
    if not update_schema().validate(answer):
        raise EiUnavailable("unreadable answer: the UpdateResponse does not follow the schema")
    comment = answer.findtext(f"{{{UPDATE_RESPONDER_NS}}}comment")
    return UpdateResult(ResultCode(answer.findtext(f"{{{UPDATE_RESPONDER_NS}}}ResultCode")),
                        redact(comment) if comment is not None else None)


def ei_fault(fault: rivta.Fault) -> EiFault:
    """The index's view of a SOAP fault: its EI/VP code and its text, redacted."""
    text = fault.faultstring or fault.code or "SOAP fault without text"
    return EiFault(fault.rivta_code, redact(text))
