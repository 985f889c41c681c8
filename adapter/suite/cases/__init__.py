"""The test cases, numbered after the official suites' TF numbers (GetCarePlans: derived from its TKB)."""

from __future__ import annotations

from adapter.rivta.contracts import Contract
from adapter.suite.cases import basic, consumer, content, encoding, load, paging
from adapter.suite.cases.base import Case, CaseContext, Session, Skipped

ALL: tuple[Case, ...] = (*basic.CASES, *encoding.CASES, *content.SJF, *content.CONTENT, *load.CASES,
                         *consumer.CASES, *paging.CASES)


def for_contract(contract: Contract) -> list[Case]:
    """The contract's cases: the shared families (chosen by what its description says) and its own content cases
    (its description's suite_cases)."""
    cases = [c for c in ALL if c.applies_to(contract)] + [content.declared(c) for c in contract.suite_cases]
    return sorted(cases, key=lambda c: c.sort_key)


__all__ = ["ALL", "Case", "CaseContext", "Session", "Skipped", "for_contract"]
