"""Fetching a patient's records from producers: every contract from every source, concurrently, over mTLS.

Calls go through the one RIVTA client (adapter/rivta/client.py: per-source timeout, size cap, fault reading);
answers are parsed with lxml (hardened) rather than zeep: measured in STACK.md, zeep parses a 1000-record
answer ~30x slower (303 ms vs 9 ms). One failing or slow producer never hides the others: each source and
contract gets its own outcome (data, none, failed + a reason without personal data). No retry after a
result ERROR; after a SOAP fault the same call is not repeated for 5 minutes (RIVTA BP 2.1 rule 22).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum

import httpx
from lxml import etree

from adapter import metrics
from adapter.rivta import client as rivta
from adapter.rivta import wsdl
from adapter.rivta.client import client_context as client_context  # where overview and the tests find it
from adapter.rivta.contracts import CONTRACTS, Contract
from adapter.rivta.request_builder import build_request

FAULT_QUIET_SECONDS = 300.0


@dataclass(frozen=True)
class Source:
    name: str  # shown to the user, e.g. "Exempelby kommun"
    url: str  # base URL; the contract path is appended
    logical_address: str  # a source system's HSA-id, or the national aggregating address


class Outcome(StrEnum):
    DATA = "data"
    NONE = "none"
    FAILED = "failed"


@dataclass
class SourceResult:
    source: Source
    contract: Contract
    outcome: Outcome
    reason: str = ""
    records: list[etree._Element] = field(default_factory=list)


@dataclass(frozen=True)
class FetchSettings:
    per_source_timeout: float = 27.0  # TKB: a producer answers within 27 s
    deadline: float = 20.0  # the whole overview; shorter than 27 s so staff are not kept waiting
    max_answer_bytes: int = 50 * 1024 * 1024


class FaultMemory:
    """When each (source, contract, patient) last answered with a SOAP fault."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, str, str, str], float] = {}

    def quiet(self, key: tuple[str, str, str, str]) -> bool:
        at = self._at.get(key)
        return at is not None and time.monotonic() - at < FAULT_QUIET_SECONDS

    def remember(self, key: tuple[str, str, str, str]) -> None:
        self._at[key] = time.monotonic()


async def fetch_all(client: httpx.AsyncClient, sources: list[Source], patient_id: str, patient_type: str,
                    settings: FetchSettings = FetchSettings(), faults: FaultMemory | None = None,
                    contracts: tuple[Contract, ...] = CONTRACTS) -> list[SourceResult]:
    """Every source's results, in the order of `sources` and `contracts`, once all are in (or the deadline)."""
    by_source: dict[Source, list[SourceResult]] = {}
    async for batch in fetch_by_source(client, sources, patient_id, patient_type, settings, faults, contracts):
        by_source[batch.source] = batch.results
    return [r for s in sources for r in by_source[s]]


@dataclass
class SourceBatch:
    """One source's results for every contract asked, released together."""

    source: Source
    results: list[SourceResult]


async def fetch_by_source(client: httpx.AsyncClient, sources: list[Source], patient_id: str, patient_type: str,
                          settings: FetchSettings = FetchSettings(), faults: FaultMemory | None = None,
                          contracts: tuple[Contract, ...] = CONTRACTS) -> AsyncIterator[SourceBatch]:
    """Each source's results as soon as every contract asked of it answered or failed, in the order the sources
    finish, so one hung producer holds only itself; at the deadline the sources still waiting come with their
    unanswered contracts failed. A source's contracts are released together, never one by one: the moment
    a single contract's answer was released would otherwise tell which kind of information a block notice
    that appears with it is about (PDL: the user may learn only that blocked information exists at a care
    giver)."""
    faults = faults or FaultMemory()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.deadline

    async def one_source(s: Source) -> SourceBatch:
        jobs = {c: asyncio.create_task(_fetch_one(client, s, c, patient_id, patient_type, settings, faults))
                for c in contracts}
        try:
            await asyncio.wait(jobs.values(), timeout=max(0.0, deadline - loop.time()))
        finally:
            for task in jobs.values():
                if not task.done():
                    task.cancel()
        results = []
        for c, task in jobs.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                results.append(task.result())
            elif task.done() and not task.cancelled():
                metrics.observe_consumer(s.name, c.key, metrics.INTERNAL, settings.deadline)
                results.append(SourceResult(s, c, Outcome.FAILED,
                                            f"internal error ({type(task.exception()).__name__})"))
            else:
                metrics.observe_consumer(s.name, c.key, metrics.DEADLINE, settings.deadline)
                results.append(SourceResult(s, c, Outcome.FAILED,
                                            f"no answer within the {settings.deadline:g} s deadline"))
        return SourceBatch(s, results)

    waiting = [asyncio.create_task(one_source(s)) for s in sources]
    try:
        for next_done in asyncio.as_completed(waiting):
            yield await next_done
    finally:
        for task in waiting:
            task.cancel()


async def _fetch_one(client: httpx.AsyncClient, source: Source, contract: Contract, patient_id: str,
                     patient_type: str, settings: FetchSettings, faults: FaultMemory) -> SourceResult:
    timer = metrics.Timer()

    def counted(outcome: str, result: SourceResult) -> SourceResult:
        metrics.observe_consumer(source.name, contract.key, outcome, timer.seconds)
        return result

    key = (source.url, source.logical_address, contract.key, patient_id)
    if faults.quiet(key):
        return counted(metrics.NOT_ASKED, SourceResult(
            source, contract, Outcome.FAILED, "not asked again: it answered with a SOAP fault less than 5 minutes ago"))
    body = build_request(contract, source.logical_address, patient_id, patient_type)
    try:
        reply = await rivta.call(client, source.url.rstrip("/") + contract.url_path, body,
                                 soap_action=contract.soap_action, timeout=settings.per_source_timeout,
                                 deadline=settings.per_source_timeout, max_bytes=settings.max_answer_bytes,
                                 max_depth=64)
    except rivta.Timeout:
        return counted(metrics.C_TIMEOUT, SourceResult(source, contract, Outcome.FAILED,
                                                       f"no answer within {settings.per_source_timeout:g} s"))
    except rivta.Unreachable as exc:
        return counted(metrics.UNREACHABLE, SourceResult(source, contract, Outcome.FAILED,
                                                         f"could not connect: {exc.why}"))
    except rivta.Fault as fault:
        faults.remember(key)
        return counted(metrics.FAULT, SourceResult(source, contract, Outcome.FAILED, "SOAP fault" + (
            f" (log id {fault.log_id})" if fault.log_id else "")))
    except rivta.RivtaCallError as exc:  # TooLarge, NotSoap, HttpStatus
        return counted(metrics.INVALID_ANSWER, SourceResult(source, contract, Outcome.FAILED,
                                                            f"unreadable answer (HTTP {exc.status})"))
    return counted(*_interpret(source, contract, reply.answer))


def _interpret(source: Source, contract: Contract, answer: etree._Element) -> tuple[str, SourceResult]:
    """The result and its outcome for the metrics (adapter/metrics.py: CONSUMER_OUTCOMES)."""
    def failed(reason: str, outcome: str = metrics.INVALID_ANSWER) -> tuple[str, SourceResult]:
        return outcome, SourceResult(source, contract, Outcome.FAILED, reason)

    if answer.tag != f"{{{contract.responder_ns}}}{contract.response_element}":
        return failed(f"not a {contract.name} answer (HTTP 200)")
    if not wsdl.request_schema(contract).validate(answer):
        return failed(f"the answer does not follow the {contract.name} schema")
    outer, inner = contract.result_ns
    result = answer.find(f"{{{outer}}}result")
    code = result.findtext(f"{{{inner}}}resultCode") if result is not None else "OK"
    if code == "ERROR":
        error = result.findtext(f"{{{inner}}}errorCode") or "ERROR"
        return failed(f"the producer answered {error} (log id {result.findtext(f'{{{inner}}}logId')})",
                      metrics.ERROR_RESULT)
    recs = answer.findall(f"{{{contract.responder_ns}}}{contract.record_element}")
    return (metrics.DATA if recs else metrics.NONE), SourceResult(source, contract,
                                                                  Outcome.DATA if recs else Outcome.NONE, records=recs)


def document_key(contract: Contract, record: etree._Element) -> tuple[str, str]:
    ns = contract.core_ns
    header = record.find(f"{{{ns}}}{contract.header_element}")
    return (header.findtext(f"{{{ns}}}documentId") or "",
            header.findtext(f"{{{ns}}}{contract.header_source_system_element}") or "")


def merge(results: list[SourceResult]) -> dict[str, list[etree._Element]]:
    """Records per contract (key) from all sources, deduplicated on documentId + sourceSystem."""
    merged: dict[str, list[etree._Element]] = {c.key: [] for c in CONTRACTS}
    seen: set[tuple[str, str, str]] = set()
    for r in results:
        for rec in r.records:
            doc, system = document_key(r.contract, rec)
            if (r.contract.key, doc, system) not in seen:
                seen.add((r.contract.key, doc, system))
                merged[r.contract.key].append(rec)
    return merged
