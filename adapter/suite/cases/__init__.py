"""The test cases, numbered after the official suites' TF numbers (GetCarePlans: derived from its TKB)."""

from __future__ import annotations

from adapter.suite.cases import basic, consumer, content, encoding, load
from adapter.suite.cases.base import Case, CaseContext, Session, Skipped

ALL: tuple[Case, ...] = (*basic.CASES, *encoding.CASES, *content.SJF, *content.CONTENT, *load.CASES,
                         *consumer.CASES)


def for_contract(name: str) -> list[Case]:
    return sorted((c for c in ALL if c.applies_to(name)), key=lambda c: c.sort_key)


__all__ = ["ALL", "Case", "CaseContext", "Session", "Skipped", "for_contract"]
