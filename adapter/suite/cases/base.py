"""What every case works with: the contract session (declaration, caller, answers already fetched) and
the case context that asks the producer, checks every answer and collects failures and notes."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from adapter.rivta.contracts import Contract
from adapter.rivta.request_builder import build_request
from adapter.suite import exchange
from adapter.suite import records as R
from adapter.suite.declaration import ContractDeclaration, LoadProfile, Patient
from adapter.suite.exchange import Answer, Caller, Exchange
from adapter.suite.results import LoadRun

DEFAULT = object()  # "the declared consumer" for CaseContext.ask(consumer=...)
MAX_PARTS = 50  # partial answers (hasMore) followed by `ask` before the case gives up on the producer


class Skipped(Exception):
    """The case does not apply (nothing declared for it, or the producer declares it cannot show it)."""


@dataclass(frozen=True)
class Case:
    number: str  # the official TF number where there is one, e.g. "1.2.1"
    title: str
    description: str  # one line, Swedish/English as the official suites
    run: Callable[[CaseContext], Awaitable[None]]
    contracts: tuple[str, ...] = ()  # contract keys the case is written for; empty: every contract
    when: Callable[[Contract], bool] | None = None  # which contracts it applies to, by what their description says
    describe: Callable[[LoadProfile], str] | None = None  # family 6: the description for the load actually run

    @property
    def family(self) -> int:
        return int(self.number.split(".")[0])

    @property
    def sort_key(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.number.split("."))

    def described(self, load: LoadProfile) -> str:
        """The description of the case as it runs with `load` (family 6 names the load actually run)."""
        return self.describe(load) if self.describe else self.description

    def applies_to(self, contract: Contract) -> bool:
        return (not self.contracts or contract.key in self.contracts) and (self.when is None or self.when(contract))


@dataclass
class Session:
    """One contract under test."""

    decl: ContractDeclaration
    caller: Caller
    load: LoadProfile
    rng: random.Random
    baselines: dict[Patient, Answer] = field(default_factory=dict)

    @property
    def contract(self):
        return self.decl.contract


class CaseContext:
    def __init__(self, case: Case, session: Session) -> None:
        self.case, self.session = case, session
        self.exchanges: list[Exchange] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.load_run: LoadRun | None = None  # family 6: every call's timing, for the report's chart

    @property
    def decl(self) -> ContractDeclaration:
        return self.session.decl

    @property
    def contract(self):
        return self.session.decl.contract

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def skip(self, reason: str) -> NoReturn:
        raise Skipped(reason)

    def request(self, patient: Patient, *, logical_address: str | None = None, **filters) -> bytes:
        return build_request(self.contract, logical_address or self.decl.logical_address, patient.id, patient.type,
                             **filters)

    async def send(self, label: str, body: bytes, *, consumer: object = DEFAULT,
                   content_type: str = "text/xml; charset=UTF-8") -> Answer:
        who = self.decl.consumer if consumer is DEFAULT else consumer
        ex = await self.session.caller.post(label, body, content_type=content_type, consumer=who)  # type: ignore[arg-type]
        self.exchanges.append(ex)
        return exchange.read(ex, self.contract)

    async def ask(self, label: str, patient: Patient | None = None, *, consumer: object = DEFAULT,
                  encoding: str = "UTF-8", **filters) -> Answer:
        """Ask for `patient` (default: the case's patient) and check the answer as a usable OK answer."""
        patient = patient or self.patient
        if patient.kind == "reservnummer":
            filters.setdefault("source_system", self.decl.system)
        body = self.request(patient, encoding=encoding, **filters)
        answer = await self.send(label, body, consumer=consumer, content_type=f"text/xml; charset={encoding}")
        self._check(label, answer, patient)
        # A partial answer (TKB hasMore) is followed to its end, so that cases compare whole answers: directly
        # addressed to the producer it names, the same parameters and its reference; records once each.
        part, seen = answer, {R.document_id(r, self.contract) for r in answer.records}
        for n in range(2, MAX_PARTS + 1):
            if part.has_more is None or not part.usable:
                return answer
            address, reference = part.has_more
            part_label = f"{label}, part {n}"
            body = self.request(patient, logical_address=address, encoding=encoding, has_more_reference=reference,
                                **filters)
            part = await self.send(part_label, body, consumer=consumer, content_type=f"text/xml; charset={encoding}")
            self._check(part_label, part, patient)
            for rec in part.records:
                if (doc := R.document_id(rec, self.contract)) not in seen:
                    seen.add(doc)
                    answer.records.append(rec)
        self.fail(f"{label}: still hasMore after {MAX_PARTS} partial answers")
        return answer

    def _check(self, label: str, answer: Answer, patient: Patient) -> None:
        self.failures.extend(f"{label}: {p}" for p in exchange.problems(answer, self.contract, patient))
        if answer.usable and answer.result_code not in (None, "OK", "INFO"):
            self.fail(f"{label}: result {answer.result_code}/{answer.error_code or '-'} instead of OK")

    @property
    def patient(self) -> Patient:
        return self.decl.case_patients.get(self.case.number, self.decl.patient)

    async def baseline(self, patient: Patient | None = None) -> Answer:
        """The unfiltered answer for a patient: fetched (and checked) by the first case that needs it."""
        patient = patient or self.patient
        cached = self.session.baselines.get(patient)
        if cached is not None:
            return cached
        answer = await self.ask(f"unfiltered answer ({patient.kind})", patient)
        self.session.baselines[patient] = answer
        return answer

    async def known_answers(self) -> list[tuple[Patient, Answer]]:
        """The unfiltered answers that families 2–5 search: the case's own patient when the declaration
        names one for this case, else every declared patient."""
        if self.case.number in self.decl.case_patients:
            patients: Sequence[Patient] = [self.decl.case_patients[self.case.number]]
        else:
            patients = self.decl.known_patients
        out = []
        for p in patients:
            out.append((p, await self.baseline(p)))
        return out

    async def records_of_known_patients(self) -> list:
        recs = [r for _, a in await self.known_answers() for r in a.records]
        if not recs:
            self.fail("the declared patients have no records: the case has nothing to look at")
        return recs

    def compare(self, label: str, got: set[str], expected: set[str]) -> None:
        if got != expected:
            missing, extra = sorted(expected - got), sorted(got - expected)
            parts = []
            if missing:
                parts.append(f"missing documentId {_few(missing)}")
            if extra:
                parts.append(f"unexpected documentId {_few(extra)}")
            self.fail(f"{label}: " + "; ".join(parts))


def _few(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
