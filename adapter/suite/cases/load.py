"""Family 6, non-functional: concurrent "threads" (asyncio tasks, as SoapUI's load-test threads) asking for
two patients in turn. Every answer must belong to the patient asked for and equal that patient's answer
outside load: a producer that mixes up answers between threads fails, whatever its speed."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from adapter.rivta.rules import first_text
from adapter.suite import exchange
from adapter.suite import records as R
from adapter.suite.cases.base import Case, CaseContext
from adapter.suite.declaration import LoadProfile, Patient
from adapter.suite.exchange import Exchange
from adapter.suite.results import LoadRun

MAX_SAMPLES = 3
MIXED = "an answer holding another patient's records"
DIFFERENT = "an answer different from the patient's answer outside load"


@dataclass(frozen=True)
class Target:
    patient: Patient
    body: bytes
    expected: frozenset[str]


@dataclass
class LoadStats:
    run: LoadRun  # every call's timing, kept for the report's chart
    problems: Counter = field(default_factory=Counter)
    threads: int = 0
    samples: list[Exchange] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.run.calls

    @property
    def seconds(self) -> list[float]:
        return self.run.seconds

    @property
    def mixed(self) -> int:
        return self.problems[MIXED] + self.problems[DIFFERENT]

    @property
    def errors(self) -> int:
        return sum(self.problems.values()) - self.mixed

    def summary(self, elapsed: float) -> str:
        if not self.seconds:
            return "no calls"
        ms = [s * 1000 for s in self.seconds]
        return (f"{self.calls} calls in {elapsed:.1f} s by up to {self.threads} threads "
                f"({self.calls / max(elapsed, 0.001):.0f}/s); response time average {statistics.fmean(ms):.0f} ms, "
                f"median {statistics.median(ms):.0f} ms, 95th percentile {self.run.percentile(95) * 1000:.0f} ms, "
                f"max {max(ms):.0f} ms")


async def _targets(ctx: CaseContext) -> list[Target]:
    patients = list(ctx.decl.load_patients) or list(ctx.decl.known_patients[:2])
    out = []
    for p in patients:
        base = await ctx.baseline(p)
        if not base.usable:
            ctx.fail(f"no usable answer for the {p.kind} outside load: nothing to compare under load")
            return []
        filters = {"source_system": ctx.decl.system} if p.kind == "reservnummer" else {}
        out.append(Target(p, ctx.request(p, **filters), frozenset(R.document_ids(base.records, ctx.contract))))
    if len(out) < 2:
        ctx.note("only one patient declared for load: mixed-up answers are found only between two patients")
    return out


def _verdict(ctx: CaseContext, ex: Exchange, target: Target) -> str | None:
    limit = ctx.session.load.max_call_seconds
    if ex.error:
        return f"no answer within {limit:g} s" if ex.error.startswith("no answer") else "connection failed"
    answer = exchange.read(ex, ctx.contract)
    if answer.fault is not None:
        return f"SOAP fault (HTTP {ex.status})"
    if not answer.usable:
        return f"unreadable answer (HTTP {ex.status})"
    if answer.result_code not in (None, "OK", "INFO"):
        return f"result {answer.result_code}"
    if any(first_text(r, ctx.contract, ctx.contract.paths.patient_id) != target.patient.id for r in answer.records):
        return MIXED
    got = R.document_ids(answer.records, ctx.contract)
    # a partial answer (hasMore) holds the first part of the patient's records, not all of them
    if got != target.expected and not (answer.has_more is not None and got <= target.expected):
        return DIFFERENT
    if ex.seconds > limit:
        return f"slower than {limit:g} s"
    return None


async def _drive(ctx: CaseContext, targets: list[Target], threads_at: Callable[[float], int],
                 seconds: float) -> LoadStats:
    stats = LoadStats(LoadRun(ctx.session.load.plan(ctx.case.number)))
    ctx.load_run = stats.run
    load, caller, rng = ctx.session.load, ctx.session.caller, ctx.session.rng
    started = time.monotonic()
    stop = started + seconds

    async def user() -> None:
        while time.monotonic() < stop:
            for target in targets:
                sent = time.monotonic() - started
                ex = await caller.post(f"load, {target.patient.kind}", target.body, consumer=ctx.decl.consumer,
                                       timeout=load.max_call_seconds)
                verdict = _verdict(ctx, ex, target)
                stats.run.started.append(sent)
                stats.run.seconds.append(ex.seconds)
                stats.run.failed.append(verdict is not None)
                if verdict:
                    stats.problems[verdict] += 1
                    if len(stats.samples) < MAX_SAMPLES:
                        ex.label = f"under load: {verdict}"
                        stats.samples.append(ex)
            low, high = load.think_seconds
            if high > 0:
                await asyncio.sleep(rng.uniform(low, high))
        running[0] -= 1  # the thread has finished its last round after the stop
        stats.run.threads.append((time.monotonic() - started, running[0]))

    tasks: list[asyncio.Task] = []
    running = [0]
    while time.monotonic() < stop:
        wanted = threads_at(time.monotonic() - started)
        if len(tasks) < wanted:
            stats.run.threads.append((time.monotonic() - started, wanted))
        while len(tasks) < wanted:
            tasks.append(asyncio.create_task(user()))
            running[0] += 1
        stats.threads = max(stats.threads, len(tasks))
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    stats.run.elapsed = time.monotonic() - started
    return stats


def _report(ctx: CaseContext, stats: LoadStats, elapsed: float, *, errors_fail: bool) -> None:
    ctx.exchanges.extend(stats.samples)
    ctx.note(stats.summary(elapsed))
    if stats.seconds:
        per_iteration = statistics.fmean(stats.seconds) * 1000
        ctx.note(f"genomsnittlig svarstid (self-declaration, SLA): {per_iteration:.0f} ms per call")
    if stats.mixed:
        ctx.fail(f"{stats.mixed} of {stats.calls} answers were not the patient's own answer "
                 f"({', '.join(f'{n} × {k}' for k, n in stats.problems.items() if k in (MIXED, DIFFERENT))})")
    other = {k: n for k, n in stats.problems.items() if k not in (MIXED, DIFFERENT)}
    if other:
        text = ", ".join(f"{n} × {k}" for k, n in other.items())
        if errors_fail:
            ctx.fail(f"{sum(other.values())} of {stats.calls} calls failed: {text}")
        else:
            ctx.note(f"{sum(other.values())} of {stats.calls} calls failed at up to {stats.threads} threads: {text}")
    if not stats.calls:
        ctx.fail("no call completed")


async def _steady(ctx: CaseContext, threads: int, seconds: float) -> None:
    targets = await _targets(ctx)
    if not targets:
        return
    started = time.monotonic()
    stats = await _drive(ctx, targets, lambda _t: threads, seconds)
    _report(ctx, stats, time.monotonic() - started, errors_fail=True)


async def basic(ctx: CaseContext) -> None:
    await _steady(ctx, ctx.session.load.basic_threads, ctx.session.load.basic_seconds)


async def endurance(ctx: CaseContext) -> None:
    await _steady(ctx, ctx.session.load.endurance_threads, ctx.session.load.endurance_seconds)


async def ramp_and_recovery(ctx: CaseContext) -> None:
    load = ctx.session.load
    targets = await _targets(ctx)
    if not targets:
        return
    low, high, seconds = load.ramp_from, load.ramp_to, load.ramp_seconds

    def threads_at(elapsed: float) -> int:
        return min(high, low + round((high - low) * elapsed / seconds))

    started = time.monotonic()
    stats = await _drive(ctx, targets, threads_at, seconds)
    _report(ctx, stats, time.monotonic() - started, errors_fail=False)
    target = targets[0]
    for attempt in range(3):  # recovery: after the peak, the producer must answer correctly again
        await asyncio.sleep(min(2.0 * attempt, 10.0))
        ex = await ctx.session.caller.post("after the load: recovery", target.body, consumer=ctx.decl.consumer,
                                           timeout=load.max_call_seconds)
        verdict = _verdict(ctx, ex, target)
        if verdict is None:
            ctx.exchanges.append(ex)
            ctx.note(f"recovered: a correct answer {attempt + 1} call(s) after the peak of {stats.threads} threads")
            return
    ctx.exchanges.append(ex)
    ctx.fail(f"did not recover after {stats.threads} threads: {verdict}")


def _described(number: str, what: str) -> Callable[[LoadProfile], str]:
    """The case's description with the load actually run; a lighter load than the official suite's says so."""

    def describe(load: LoadProfile) -> str:
        official = LoadProfile().plan(number)
        plan = load.plan(number)
        if any(f.startswith(f"{number}:") for f in load.shortfalls()):
            return (f"{plan}, {what} — shortened: the official case runs {official}, so this run is not valid "
                    f"for the self-declaration")
        return f"{plan}, {what}"

    return describe


CASES = (
    Case("6.1.1", "Loadtest Grund", "10 trådar i 180 s, inga sammanblandade svar / 10 threads, no mixed-up answers",
         basic, describe=_described("6.1.1", "no mixed-up answers")),
    Case("6.1.2", "Loadtest Uthållighet", "5 trådar i 30 min / 5 threads for 30 minutes (endurance)", endurance,
         describe=_described("6.1.2", "endurance: no errors, no mixed-up answers")),
    Case("6.2.1", "Recovery Återhämtning", "Ramp 10→100 trådar, sedan återhämtning / ramp to 100 threads and recover",
         ramp_and_recovery, describe=_described("6.2.1", "then a correct answer again (recovery)")),
)
