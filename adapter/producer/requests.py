"""A contract request -> a store query, applying the TKB request rules.

A request that breaks a TKB rule gets an answer holding only `result` ERROR / INVALID_REQUEST;
a request that is not valid XML or not schema-valid gets a SOAP fault (see app.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapter.mapping import codes
from adapter.rivta.contracts import HSA_ROOT, Contract, IdForm
from adapter.store.records import RecordQuery

_OID = re.compile(r"^[0-2](\.[0-9]+)+$")
_NATIONAL_ID = re.compile(r"^[0-9]{8}[0-9]{4}$")


@dataclass(frozen=True)
class Refusal:
    """A logical error: answered with result ERROR / INVALID_REQUEST and this message."""

    message: str


def _is_calendar_day(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return False
    return True


# The children are looked up with lxml's `iterchildren(tag)`, which matches in C; `find`/`findall` go through
# ElementPath in Python and made this module cost as much as parsing the request (bench/producer_throughput.py).
def _children(el: Any, ns: str, name: str) -> list[Any]:
    return list(el.iterchildren(f"{{{ns}}}{name}"))


def _child(el: Any, ns: str, name: str) -> Any | None:
    """The first child element `{ns}name` (as `el.find`)."""
    return next(el.iterchildren(f"{{{ns}}}{name}"), None)


def _text(el: Any | None, ns: str, name: str) -> str | None:
    if el is None:
        return None
    child = _child(el, ns, name)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


class _NotHsa(ValueError):
    """An IIType filter that is not an HSA-id; the message names the element."""


def _hsa_ids(contract: Contract, body: Any, name: str) -> tuple[str, ...]:
    """The HSA-ids a request gives in `name`: text, or IITypes with the HSA root and the id as extension."""
    r, c = contract.responder_ns, contract.core_ns
    found = []
    for el in _children(body, r, name):
        if contract.id_form is IdForm.II:
            root, ext = _text(el, c, "root"), _text(el, c, "extension")
            if root != HSA_ROOT or not ext:
                raise _NotHsa(f"{name} must be an HSA-id: root {HSA_ROOT} and the id as extension")
            found.append(ext)
        elif el.text and el.text.strip():
            found.append(el.text.strip())
    return tuple(found)


def has_more_reference(contract: Contract, body: Any) -> str | None:
    """The continuation reference of a paging contract's request: None when the request starts afresh, ""
    for a blank one (which no answer gave)."""
    el = _child(body, contract.responder_ns, "hasMoreReference") if contract.has_more else None
    return None if el is None else (el.text or "").strip()


def to_query(contract: Contract, body: Any, logical_address: str) -> RecordQuery | Refusal:
    r, c = contract.responder_ns, contract.core_ns
    patient = _child(body, r, "patientId")
    if contract.id_form is IdForm.II:  # root = the id's type (OID), extension = the id
        patient_id, patient_type = _text(patient, c, "extension") or "", _text(patient, c, "root") or ""
    else:
        patient_id, patient_type = _text(patient, c, "id") or "", _text(patient, c, "type") or ""
    try:
        source_systems = _hsa_ids(contract, body, contract.source_system_element)
        care_units = _hsa_ids(contract, body, contract.care_unit_element)
        care_givers = _hsa_ids(contract, body, contract.care_giver_element) if contract.has_care_giver_filter else ()
    except _NotHsa as exc:
        return Refusal(str(exc))
    source_system = source_systems[0] if source_systems else None
    care_contacts: tuple[str, ...] = ()
    if contract.has_care_contact_filter:
        care_contacts = tuple(t for t in (e.text.strip() for e in _children(body, r, "careContactId") if e.text) if t)

    if source_system is not None and source_system != logical_address:
        return Refusal(f"{contract.source_system_element} must equal the LogicalAddress of the call")
    if care_contacts and source_system is None:
        return Refusal(f"careContactId requires {contract.source_system_element}")
    type_field, id_field = ("root", "extension") if contract.id_form is IdForm.II else ("type", "id")
    if not _OID.match(patient_type):
        return Refusal(f"patientId.{type_field} must be an OID")
    if patient_type in (codes.PERSONNUMMER, codes.SAMORDNINGSNUMMER):
        if not _NATIONAL_ID.match(patient_id):
            return Refusal(f"patientId.{id_field} must be 12 digits without separator")
    elif source_system is None:
        # Reservnummer are local: only direct, source-system-addressed calls may use them.
        return Refusal(f"a reservnummer requires {contract.source_system_element}")

    period = _child(body, r, contract.period_element)
    start = _text(period, c, "start")
    end = _text(period, c, "end")
    for value in (start, end):
        if value and not _is_calendar_day(value):
            return Refusal(f"{contract.period_element} holds a date that does not exist")
    if start and end and start > end:
        return Refusal(f"{contract.period_element}.start is after its end")

    chain_id = status = None
    if contract.has_prescription_filters:
        chain = _child(body, r, "prescriptionChainId")
        if chain is not None:
            root, ext = _text(chain, c, "root"), _text(chain, c, "extension")
            chain_id = f"{root}:{ext}" if ext else root
        status = _text(body, r, "prescriptionStatus")

    return RecordQuery(
        contract=contract.key,
        source_system=logical_address,
        patient_id=patient_id,
        patient_type=patient_type,
        period_start=start,
        period_end=end,
        care_units=care_units,
        care_givers=care_givers,
        care_contacts=care_contacts,
        chain_id=chain_id,
        status=status,
    )
