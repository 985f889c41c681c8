"""Fetching a patient's records from producers: every contract from every source, concurrently, over mTLS.

Calls go through the one RIVTA client (adapter/rivta/client.py: per-source timeout, size cap, fault reading);
answers are parsed with lxml (hardened) rather than zeep: measured in STACK.md, zeep parses a 1000-record
answer ~30x slower (303 ms vs 9 ms). One failing or slow producer never hides the others: each source and
contract gets its own outcome (data, none, failed + a reason without personal data). No retry after a
result ERROR; after a SOAP fault the same call is not repeated for 5 minutes (RIVTA BP 2.1 rule 22).
"""

from __future__ import annotations

import asyncio
import re
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
from adapter.rivta.contracts import CONTRACTS, INFORMATION_TYPES, Contract, ResultModel
from adapter.rivta.request_builder import build_request
from adapter.rivta.rules import first_text

FAULT_QUIET_SECONDS = 300.0
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# The national aggregating services' logical address (Inera's HSA-id as the TKBs give it, källsystemsadressering):
# a region's aggregating address is a source's `aggregating = true` in the configuration.
NATIONAL_AGGREGATING = "5565594230"


@dataclass(frozen=True)
class Source:
    name: str  # shown to the user, e.g. "Exempelby kommun"
    url: str  # base URL; the contract path is appended
    logical_address: str  # a source system's HSA-id, or the national aggregating address
    # An aggregating address (the national or a region's) answers with many source systems' records; a source
    # system's own address only with its own (källsystemsadressering), and records claiming another are refused.
    aggregating: bool = False


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
    pages: int = 1  # answers fetched (more than one when the producer answered in parts: hasMore)
    # where a partial answer can be continued (logical address, reference) when the page limit stopped us
    has_more: tuple[str, str] | None = None


@dataclass(frozen=True)
class FetchSettings:
    per_source_timeout: float = 27.0  # TKB: a producer answers within 27 s
    deadline: float = 20.0  # the whole overview; shorter than 27 s so staff are not kept waiting
    max_answer_bytes: int = 50 * 1024 * 1024
    # partial answers (hasMore): at most this many answers per source and contract, so a producer that keeps
    # answering hasMore cannot hold the overview (the deadline bounds the time as well)
    max_pages: int = 20


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
                    contracts: tuple[Contract, ...] = INFORMATION_TYPES) -> list[SourceResult]:
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
                          contracts: tuple[Contract, ...] = INFORMATION_TYPES) -> AsyncIterator[SourceBatch]:
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
    """One source's answer for one contract; a partial answer (hasMore) is followed to its end, directly
    addressed to the logical address it names and with otherwise identical parameters (TKB), at most
    `settings.max_pages` answers. Records repeated on a later page (a record changed meanwhile) count once."""
    address, reference = source.logical_address, None
    records: list[etree._Element] = []
    seen: set[tuple[str, str]] = set()
    pages = 0
    while True:
        pages += 1
        page = await _fetch_page(client, source, contract, address, reference, patient_id, patient_type, settings,
                                 faults)
        if page.outcome is Outcome.FAILED:
            page.reason += f" (answer {pages})" if pages > 1 else ""
            page.pages = pages
            return page
        for rec in page.records:
            doc = document_key(contract, rec)
            if doc not in seen:  # TKB: the consumer drops repeated records (same record.id)
                seen.add(doc)
                records.append(rec)
        if page.has_more is None or pages >= settings.max_pages:
            return SourceResult(source, contract, Outcome.DATA if records else Outcome.NONE, records=records,
                                pages=pages, has_more=page.has_more,
                                reason=f"stopped after {pages} partial answers" if page.has_more else "")
        address, reference = page.has_more


async def _fetch_page(client: httpx.AsyncClient, source: Source, contract: Contract, address: str,
                      reference: str | None, patient_id: str, patient_type: str, settings: FetchSettings,
                      faults: FaultMemory) -> SourceResult:
    """One answer (one part of a partial answer), counted in the metrics."""
    timer = metrics.Timer()

    def counted(outcome: str, result: SourceResult) -> SourceResult:
        metrics.observe_consumer(source.name, contract.key, outcome, timer.seconds)
        return result

    key = (source.url, source.logical_address, contract.key, patient_id)
    if faults.quiet(key):
        return counted(metrics.NOT_ASKED, SourceResult(
            source, contract, Outcome.FAILED, "not asked again: it answered with a SOAP fault less than 5 minutes ago"))
    body = build_request(contract, address, patient_id, patient_type, has_more_reference=reference)
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
    return counted(*_interpret(source, contract, reply.answer, patient_id))


def _same_person(asked: str, answered: str | None) -> bool:
    """A record's header patientId/id is the patient asked about (12 digits; a hyphen before the last four is
    tolerated, as some systems write it)."""
    return answered is not None and answered.strip().replace("-", "") == asked.strip().replace("-", "")


def _same_system(asked: str, claimed: str | None) -> bool:
    return claimed is not None and claimed.strip().upper() == asked.strip().upper()


def _interpret(source: Source, contract: Contract, answer: etree._Element,
               patient_id: str) -> tuple[str, SourceResult]:
    """The result and its outcome for the metrics (adapter/metrics.py: CONSUMER_OUTCOMES). An answer holding a
    record of any other patient than the one asked about is not used at all: its records would be decided by PDL,
    shown and access-logged as the asked patient's (a faulty or hostile producer, or a mix-up on the way); nor is
    a source system's answer holding a record of another source system."""
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
        if contract.result_model is ResultModel.TEXT:
            # resultText is the producer's own words: only a log id is passed on, never the text
            log_id = _UUID.search(result.findtext(f"{{{inner}}}resultText") or "")
            return failed("the producer answered ERROR" + (f" (log id {log_id.group(0)})" if log_id else ""),
                          metrics.ERROR_RESULT)
        error = result.findtext(f"{{{inner}}}errorCode") or "ERROR"
        return failed(f"the producer answered {error} (log id {result.findtext(f'{{{inner}}}logId')})",
                      metrics.ERROR_RESULT)
    recs = answer.findall(f"{{{contract.responder_ns}}}{contract.record_element}")
    if any(not _same_person(patient_id, first_text(rec, contract, contract.paths.patient_id)) for rec in recs):
        return failed("the answer holds records of another patient than the one asked about")
    if not source.aggregating and any(not _same_system(source.logical_address, first_text(
            rec, contract, contract.paths.source_system)) for rec in recs):
        # A record is known by (documentId, sourceSystem) across sources: one claiming another system's would take
        # that system's record's place in the overview, shown (and decided by PDL) as if that system had said it.
        return failed("the answer holds records of another source system than the one asked (a source system's "
                      "address answers for that system alone)")
    more = None
    if contract.has_more:
        r = contract.responder_ns
        el = answer.find(f"{{{r}}}hasMore")
        address = (el.findtext(f"{{{r}}}logicalAddress") or "").strip() if el is not None else ""
        reference = (el.findtext(f"{{{r}}}reference") or "").strip() if el is not None else ""
        if address and reference:
            more = (address, reference)
    return (metrics.DATA if recs else metrics.NONE), SourceResult(
        source, contract, Outcome.DATA if recs else Outcome.NONE, records=recs, has_more=more)


def document_key(contract: Contract, record: etree._Element) -> tuple[str, str]:
    """A record's identity across answers and major versions: document id (3.0: record.id) and source system."""
    paths = contract.paths
    return (first_text(record, contract, paths.document_id) or "",
            first_text(record, contract, paths.source_system) or "")


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
