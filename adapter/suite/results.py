"""What a run found: one result per case and contract, read by the console, JUnit and HTML reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from adapter.rivta.contracts import Contract
from adapter.suite.exchange import Exchange


@dataclass
class LoadRun:
    """One load case's calls as they happened, for the figures and the chart of the HTML report."""

    plan: str  # the load actually run, in words ("5 threads for 2 s")
    elapsed: float = 0.0  # seconds from the first call sent to the last answer
    started: list[float] = field(default_factory=list)  # per call: seconds from the start of the load
    seconds: list[float] = field(default_factory=list)  # per call: its response time
    failed: list[bool] = field(default_factory=list)  # per call: counted as a problem (error, mixed-up, slow)
    threads: list[tuple[float, int]] = field(default_factory=list)  # (seconds from start, threads running)

    @property
    def calls(self) -> int:
        return len(self.seconds)

    def percentile(self, p: float) -> float:
        """The p-th percentile (0-100) of the response times in seconds, nearest rank; 0 without calls."""
        if not self.seconds:
            return 0.0
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


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
    load: LoadRun | None = None  # family 6: every call's timing

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
    contract_started: dict[str, datetime] = field(default_factory=dict)  # contract key -> its first case began
    quick: bool = False  # --quick: family 6 for seconds
    not_for_declaration: list[str] = field(default_factory=list)  # why the run is no evidence for the
    # self-declaration (a load lighter than the official suite's); empty: it is

    @property
    def declaration_mark(self) -> str:
        """What every report says about the run's use for the self-declaration (empty when it is valid)."""
        if not self.not_for_declaration:
            return ""
        kind = "QUICK RUN" if self.quick else "SHORTENED LOAD"
        return f"{kind}: not valid for the self-declaration"

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
