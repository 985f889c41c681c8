"""Reading what the cases compare from a record: its ids, care unit and giver, and the days the date filter sees.

The date rules come from the contract description (adapter/rivta/contracts.py): ANY_TIME_WITHIN looks at
the record times named in `filter_times`, OVERLAP at the record's interval: the `period` its rivta_to_fhir module
gives.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from adapter.rivta.contracts import Contract, DateRule
from adapter.rivta.rules import first_text

# contracts.py names the dissenting opinion's time by what it is; in the answer it is its authorTime.
_TIME_ELEMENTS = {"dissentingOpinionTime": "authorTime"}


def _c(contract: Contract) -> dict[str, str]:
    return {"c": contract.core_ns}


def header(rec: etree._Element, contract: Contract) -> etree._Element | None:
    return rec.find(f"{{{contract.core_ns}}}{contract.header_element}")


def header_text(rec: etree._Element, contract: Contract, path: str) -> str | None:
    """Text at `path` (slash-separated local names) below the record header."""
    h = header(rec, contract)
    if h is None:
        return None
    ns = contract.core_ns
    value = h.findtext("/".join(f"{{{ns}}}{part}" for part in path.split("/")))
    return value.strip() if value and value.strip() else None


def document_id(rec: etree._Element, contract: Contract) -> str:
    return first_text(rec, contract, contract.paths.document_id) or ""


def document_ids(recs: Iterable[etree._Element], contract: Contract) -> set[str]:
    return {document_id(r, contract) for r in recs}


def care_unit(rec: etree._Element, contract: Contract) -> str | None:
    return first_text(rec, contract, contract.paths.care_unit)


def care_giver(rec: etree._Element, contract: Contract) -> str | None:
    return first_text(rec, contract, contract.paths.care_giver)


def care_contact(rec: etree._Element, contract: Contract) -> str | None:
    """The care contact a request's careContactId finds the record by: the header's careContactId; where the header
    may not carry one (GetCareContacts, TKB 0..0), the record is the care contact and its documentId is that id."""
    if "careContactId" in contract.forbidden:
        return document_id(rec, contract) or None
    return header_text(rec, contract, "careContactId")


def source_system(rec: etree._Element, contract: Contract) -> str | None:
    return first_text(rec, contract, contract.paths.source_system)


def chain_id(rec: etree._Element, contract: Contract) -> tuple[str, str | None] | None:
    ns = _c(contract)
    chain = rec.find(".//c:medicationPrescription/c:prescriptionChainId", ns)
    if chain is None:
        return None
    root = (chain.findtext("c:root", namespaces=ns) or "").strip()
    ext = (chain.findtext("c:extension", namespaces=ns) or "").strip() or None
    return (root, ext) if root else None


def prescription_status(rec: etree._Element, contract: Contract) -> str | None:
    value = rec.findtext(".//c:medicationPrescription/c:prescriptionStatus", namespaces=_c(contract))
    return value.strip() if value else None


def _day(timestamp: str | None) -> str | None:
    value = (timestamp or "").strip()
    return value[:8] if len(value) >= 8 and value[:8].isdigit() else None


def filter_days(rec: etree._Element, contract: Contract) -> set[str]:
    """ANY_TIME_WITHIN: the days of every record time the date filter looks at (at the description's
    `filter_time_paths` when it gives them, else every element named like a filter time)."""
    if contract.filter_time_paths:
        found = (el.text for path in contract.filter_time_paths for el in rec.xpath(path, namespaces=_c(contract)))
        return {d for text in found if (d := _day(text))}
    names = {_TIME_ELEMENTS.get(n, n) for n in contract.filter_times}
    return {d for el in rec.iter() if isinstance(el.tag, str) and etree.QName(el).localname in names
            if (d := _day(el.text))}


def interval(rec: etree._Element, contract: Contract) -> tuple[str | None, str | None]:
    """OVERLAP: the record's [start, end] in days as its contract's rivta_to_fhir module reads it from the answer
    (`period`); an open end is None."""
    module = contract.code("mapping.rivta_to_fhir")
    result: tuple[str | None, str | None] = module.period(rec, contract)  # type: ignore[union-attr]
    return result


def days(rec: etree._Element, contract: Contract) -> set[str]:
    """All days the period cases use as boundaries for this record."""
    if contract.date_rule is DateRule.OVERLAP:
        return {d for d in interval(rec, contract) if d}
    return filter_days(rec, contract)


def in_period(rec: etree._Element, contract: Contract, start: str | None, end: str | None) -> bool:
    if contract.date_rule is DateRule.OVERLAP:
        s, e = interval(rec, contract)
        return (s is None or end is None or s <= end) and (e is None or start is None or e >= start)
    return any((start is None or start <= d) and (end is None or d <= end) for d in filter_days(rec, contract))


def expected_in_period(recs: Iterable[etree._Element], contract: Contract, start: str | None,
                       end: str | None) -> set[str]:
    return {document_id(r, contract) for r in recs if in_period(r, contract, start, end)}


def text_of(recs: Iterable[etree._Element]) -> str:
    """All character data of the records, decoded (what a user would read)."""
    return "\n".join(t for r in recs for t in r.itertext())
