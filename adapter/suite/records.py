"""Reading what the cases compare from a record: its ids, care unit and giver, and the days the date filter sees.

The date rules come from the contract description (adapter/rivta/contracts.py): ANY_TIME_WITHIN looks at
the record times named in `filter_times`, OVERLAP at the interval its `overlap_start`/`overlap_end` paths give.
"""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree

from adapter.rivta.contracts import Contract, DateRule

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
    return header_text(rec, contract, "documentId") or ""


def document_ids(recs: Iterable[etree._Element], contract: Contract) -> set[str]:
    return {document_id(r, contract) for r in recs}


def care_unit(rec: etree._Element, contract: Contract) -> str | None:
    return header_text(rec, contract, "accountableHealthcareProfessional/healthcareProfessionalCareUnitHSAId")


def care_giver(rec: etree._Element, contract: Contract) -> str | None:
    return header_text(rec, contract, "accountableHealthcareProfessional/healthcareProfessionalCareGiverHSAId")


def care_contact(rec: etree._Element, contract: Contract) -> str | None:
    return header_text(rec, contract, "careContactId")


def source_system(rec: etree._Element, contract: Contract) -> str | None:
    return header_text(rec, contract, contract.header_source_system_element)


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
    """ANY_TIME_WITHIN: the days of every record time the date filter looks at."""
    names = {_TIME_ELEMENTS.get(n, n) for n in contract.filter_times}
    return {d for el in rec.iter() if isinstance(el.tag, str) and etree.QName(el).localname in names
            if (d := _day(el.text))}


def overlap_interval(rec: etree._Element, contract: Contract) -> tuple[str | None, str | None]:
    """OVERLAP: the record's [start, end] in days, as the contract description reads it from the answer
    (GetMedicationHistory: the treatment, GetAlertInformation: the validity); the end open when missing."""
    ns = _c(contract)
    start = next((d for p in contract.overlap_start if (d := _day(rec.findtext(p, namespaces=ns)))), None)
    ends = [d for p in contract.overlap_end if (d := _day(rec.findtext(p, namespaces=ns)))]
    return start, min(ends) if ends else None


def days(rec: etree._Element, contract: Contract) -> set[str]:
    """All days the period cases use as boundaries for this record."""
    if contract.date_rule is DateRule.OVERLAP:
        ns = _c(contract)
        found = {_day(rec.findtext(p, namespaces=ns)) for p in (*contract.overlap_start, *contract.overlap_end)}
        return {d for d in found if d}
    return filter_days(rec, contract)


def in_period(rec: etree._Element, contract: Contract, start: str | None, end: str | None) -> bool:
    if contract.date_rule is DateRule.OVERLAP:
        s, e = overlap_interval(rec, contract)
        return (s is None or end is None or s <= end) and (e is None or start is None or e >= start)
    return any((start is None or start <= d) and (end is None or d <= end) for d in filter_days(rec, contract))


def expected_in_period(recs: Iterable[etree._Element], contract: Contract, start: str | None,
                       end: str | None) -> set[str]:
    return {document_id(r, contract) for r in recs if in_period(r, contract, start, end)}


def text_of(recs: Iterable[etree._Element]) -> str:
    """All character data of the records, decoded (what a user would read)."""
    return "\n".join(t for r in recs for t in r.itertext())
