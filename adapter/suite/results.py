"""What a run found: one result per case and contract, read by the console, JUnit and HTML reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from adapter.rivta.contracts import Contract
from adapter.suite.exchange import Exchange


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class CaseResult:
    contract: Contract
    number: str
    title: str
    description: str
    status: Status
    reasons: list[str] = field(default_factory=list)  # why it failed or was skipped
    notes: list[str] = field(default_factory=list)  # what the tester may want in the self-declaration
    exchanges: list[Exchange] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.number} {self.title}"


@dataclass
class SuiteResult:
    started: datetime
    finished: datetime | None = None
    endpoints: dict[str, str] = field(default_factory=dict)  # contract name -> service address
    declaration: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if c.status is Status.FAILED]

    def counts(self, contract: str | None = None) -> dict[Status, int]:
        out = dict.fromkeys(Status, 0)
        for c in self.cases:
            if contract is None or c.contract.key == contract:
                out[c.status] += 1
        return out

    @property
    def contracts(self) -> list[Contract]:
        seen: list[Contract] = []
        for c in self.cases:
            if c.contract not in seen:
                seen.append(c.contract)
        return seen
