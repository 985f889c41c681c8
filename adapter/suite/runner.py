"""Runs the cases of each declared contract against the producer, one contract and one case at a time."""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from adapter.rivta import client as rivta
from adapter.suite import cases as suite_cases
from adapter.suite.cases import Case, CaseContext, Session, Skipped
from adapter.suite.declaration import ContractDeclaration, Declaration, DeclarationError, LoadProfile, covered
from adapter.suite.exchange import Caller
from adapter.suite.results import CaseResult, Status, SuiteResult

Progress = Callable[[CaseResult], None]  # called when a case has finished
Starting = Callable[[Session, Case], None]  # called before a case runs


@dataclass(frozen=True)
class RunOptions:
    endpoint: str | None = None  # base URL or service address; wins over the declaration's url
    verify: ssl.SSLContext | bool = True  # TLS context (client certificate, trusted CAs)
    quick: bool = False  # family 6 for seconds instead of minutes
    load_seconds: float | None = None  # family 6 durations, overriding the declaration and --quick
    only: tuple[str, ...] = ()  # case numbers or their prefixes ("1.2" = 1.2.x)
    skip: tuple[str, ...] = ()
    seed: int = 20240101  # random periods and samples: the same run for the same seed
    timeout: float = 27.0  # TKB SLA: an answer within 27 s


def service_url(decl: ContractDeclaration, endpoint: str | None) -> str:
    """A URL ending in /rivtabp21 is the service address; any other is a base the contract's path is added to."""
    url = endpoint or decl.url
    if not url:
        raise DeclarationError(f"no address for {decl.contract.title}: give --endpoint (or url / webServiceUrl)")
    if not url.startswith(("http://", "https://")):
        raise DeclarationError(f"{url!r} is not an http(s) URL")
    url = url.rstrip("/")
    return url if url.endswith("/rivtabp21") else url + decl.contract.url_path


class ConnectionProblem(Exception):
    """The producer cannot be reached at all (refused, unknown host, TLS refused either way): one error for the run
    instead of every case failing alike."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"{url}: {why}")
        self.url, self.why = url, why


async def check_connections(urls: Sequence[str], options: RunOptions) -> None:
    """Connect once to each producer (scheme, host and port) before the first case: `ConnectionProblem` if one
    cannot be reached."""
    origins: dict[tuple[str, str, int | None], str] = {}
    for url in urls:
        u = httpx.URL(url)
        origins.setdefault((u.scheme, u.host, u.port), url)
    for url in origins.values():
        why = await rivta.check_connection(url, options.verify, timeout=options.timeout)
        if why is not None:
            raise ConnectionProblem(url, why)


def _matches(number: str, prefixes: Sequence[str]) -> bool:
    return any(number == p or number.startswith(p.rstrip(".") + ".") for p in prefixes)


def load_profile(declared: LoadProfile, options: RunOptions) -> LoadProfile:
    profile = declared.quick() if options.quick else declared
    return profile.lasting(options.load_seconds) if options.load_seconds else profile


async def run_contract(decl: ContractDeclaration, options: RunOptions, load: LoadProfile, result: SuiteResult,
                       progress: Progress | None = None, starting: Starting | None = None) -> None:
    url = service_url(decl, options.endpoint)
    result.endpoints[decl.contract.key] = url
    result.contract_started[decl.contract.key] = datetime.now().astimezone()
    connections = max(load.ramp_to, load.basic_threads, load.endurance_threads) + 5
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with rivta.new_client(options.verify, limits=limits, timeout=options.timeout) as client:
        session = Session(decl, Caller(client, url, decl.contract, decl.consumer, options.timeout), load,
                          random.Random(f"{options.seed}-{decl.contract.key}"))
        for case in suite_cases.for_contract(decl.contract):
            if options.only and not _matches(case.number, options.only):
                continue
            if starting:
                starting(session, case)
            outcome = await _run_case(case, session, options)
            result.cases.append(outcome)
            if progress:
                progress(outcome)


async def _run_case(case: Case, session: Session, options: RunOptions) -> CaseResult:
    out = CaseResult(session.contract, case.number, case.title, case.described(session.load), Status.PASSED)
    declared = session.decl.skip.get(case.number)
    if declared or _matches(case.number, options.skip):
        out.status = Status.SKIPPED
        out.reasons.append(f"declared: {declared}" if declared else "skipped on the command line (--skip)")
        return out
    ctx = CaseContext(case, session)
    started = time.perf_counter()
    try:
        await case.run(ctx)
    except Skipped as exc:
        out.status = Status.SKIPPED
        out.reasons.append(str(exc))
    except Exception as exc:  # a defect in the suite must not end the run: the case reports it
        ctx.fail(f"the suite could not run this case ({type(exc).__name__}: {exc})")
    out.seconds = time.perf_counter() - started
    out.exchanges, out.notes, out.load = ctx.exchanges, ctx.notes, ctx.load_run
    if ctx.failures and out.status is not Status.SKIPPED:
        out.status = Status.FAILED
        out.reasons.extend(ctx.failures)
    return out


async def run_async(declaration: Declaration, contract: str = "all", options: RunOptions = RunOptions(),
                    progress: Progress | None = None, starting: Starting | None = None) -> SuiteResult:
    chosen = covered(declaration, contract)
    load = load_profile(declaration.load, options)
    result = SuiteResult(datetime.now().astimezone(), declaration=declaration.sources, options={
        "contracts": ", ".join(d.contract.title for d in chosen),
        "quick": "yes" if options.quick else "no",
        "load": f"{load.basic_threads} threads {load.basic_seconds:g} s; {load.endurance_threads} threads "
                f"{load.endurance_seconds:g} s; ramp {load.ramp_from}→{load.ramp_to} threads {load.ramp_seconds:g} s",
        "seed": str(options.seed),
    }, quick=options.quick, not_for_declaration=load.shortfalls())
    for decl in chosen:
        service_url(decl, options.endpoint)  # refuse a missing address before any case runs
    await check_connections([service_url(decl, options.endpoint) for decl in chosen], options)
    for decl in chosen:
        await run_contract(decl, options, load, result, progress, starting)
    result.finished = datetime.now().astimezone()
    return result


def run(declaration: Declaration, contract: str = "all", options: RunOptions = RunOptions(),
        progress: Progress | None = None, starting: Starting | None = None) -> SuiteResult:
    return asyncio.run(run_async(declaration, contract, options, progress, starting))
