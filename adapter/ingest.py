"""Ingest: FHIR R4 files -> validation -> mapping -> store, with a summary of what happened.

Files go through the same unit of work as the FHIR REST endpoint (adapter/intake): each chunk of a file is a
batch, so a bad resource is refused and the good ones beside it are stored. Supporting resources (patients,
organisations, roles, provenance ...) of every file are taken first, so that references resolve whatever the
order of the input; chunks commit whole, so a run that dies midway leaves every stored record whole.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from adapter import metrics
from adapter.intake.results import shown_ref
from adapter.intake.unit import REFERENCED_CLINICAL, Intake
from adapter.intake.validation import InvalidResource, validate
from adapter.intake.writer import Writer
from adapter.mapping.context import SUPPORTING_TYPES
from adapter.sources.files import Item, expand, read

__all__ = ["IngestReport", "InvalidResource", "Rejection", "count_items", "ingest", "validate"]

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class Rejection:
    origin: str
    resource: str  # "Type/id" or "?"
    reason: str


@dataclass
class IngestReport:
    read: int = 0
    context: int = 0
    published: Counter = field(default_factory=Counter)  # records per contract
    removed: int = 0  # resources whose records were withdrawn
    skipped: int = 0  # valid resources that carry nothing for NPÖ
    unchanged: int = 0  # resources sent again exactly as stored
    rejected: list[Rejection] = field(default_factory=list)


def _supporting(item: Item) -> bool:
    return item.raw is not None and item.raw.get("resourceType") in SUPPORTING_TYPES


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    """Chunks of at most `size` items, none holding one resource twice: files of one export often repeat the
    organisation and the patient (one Bundle a patient), and within one unit of work a resource is written once;
    in the next chunk the repeat is simply unchanged, or the later version wins."""
    chunk: list[Item] = []
    keys: set[tuple[object, object]] = set()
    for item in items:
        raw = item.raw or {}
        key = (str(raw.get("resourceType")), raw.get("id")) if item.raw is not None else (item.method, item.url)
        if not isinstance(key[1], str):  # no id (or not a string: refused later) repeats nothing
            key = ("", str(id(item)))
        if chunk and (len(chunk) >= size or key in keys):
            yield chunk
            chunk, keys = [], set()
        chunk.append(item)
        keys.add(key)
    if chunk:
        yield chunk


def ingest(
    engine: Engine,
    paths: Iterable[str | Path],
    *,
    default_source_system: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    files = expand(paths)
    report = IngestReport()
    with _collector_for_bulk_load(), engine.connect() as conn:
        intake = Intake(conn, Writer.operator(), default_source_system=default_source_system,
                        unknown_types="skip", derive_ids=True)
        # Pass 1: supporting resources, kept in the store; MedicationRequests read ahead for basedOn (one
        # reading of the files for both: parsing them costs a sixth of validating what they hold).
        with _kept_whole_run():
            ahead = [i for i in read(files) if _supporting(i) or (
                i.raw is not None and i.raw.get("resourceType") in REFERENCED_CLINICAL)]
            intake.know([i for i in ahead if not _supporting(i)])
        planner = _PlannerStatistics(conn)
        for chunk in _chunks((i for i in ahead if _supporting(i)), BATCH):
            _take(intake, chunk, report, progress, supporting=True)
            _keep_uncollected()
            planner.after_chunk()
        del ahead
        # Pass 2: clinical resources, deletes and whatever could not be read.
        for chunk in _chunks((i for i in read(files) if not _supporting(i)), BATCH):
            _take(intake, chunk, report, progress, supporting=False)
            planner.after_chunk()
    return report


@contextmanager
def _collector_for_bulk_load() -> Iterator[None]:
    """The garbage collector as an ingest wants it, restored afterwards: young collections after 10 000 allocations,
    not 700 (most of an ingest's objects die by reference count before one runs, so fewer of them walk what is
    alive for a moment, each batch, less often), and what the run froze (_keep_uncollected) unfrozen at its end."""
    thresholds = gc.get_threshold()
    gc.set_threshold(10_000, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class _PlannerStatistics:
    """PostgreSQL plans each batch's queries from the tables' statistics, which autovacuum renews about once a minute:
    while an ingest fills an empty store they say the tables are nearly empty, and the batch's document-id check
    was planned as a walk over every record of the source (backend CPU grew with the square of the input: 289 of
    420 CPU s at 150 000 resources). The tables are analysed after chunk 1, 2, 4, 8 ...: a handful of times per
    ingest, each a sample of at most 30 000 rows. SQLite plans from its indexes alone."""

    TABLES = "records, record_days, fhir_resources, fhir_identifiers, fhir_links, ei_outbox"

    def __init__(self, conn: Connection) -> None:
        self.conn, self.chunks = conn, 0
        self.postgres = conn.dialect.name == "postgresql"

    def after_chunk(self) -> None:
        self.chunks += 1
        if self.postgres and self.chunks & (self.chunks - 1) == 0:
            self.conn.exec_driver_sql(f"ANALYZE {self.TABLES}")
            self.conn.commit()


def _keep_uncollected() -> None:
    """Leave what is alive now (the resources pass 1 keeps for reference resolution, their models) out of the
    cyclic garbage collector until the ingest ends: every full collection walked all of them again, a sixth of
    an ingest's CPU time. Garbage without cycles is still freed at once; the rest waits for gc.unfreeze()."""
    gc.freeze()


@contextmanager
def _kept_whole_run() -> Iterator[None]:
    """No cyclic collection while the read-ahead is built (what it makes is kept to the end: each full
    collection on the way walked all of it again), then that is left out of collection (_keep_uncollected)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        _keep_uncollected()


def _take(intake: Intake, chunk: list[Item], report: IngestReport, progress, *, supporting: bool) -> None:
    with intake.transaction():
        results = intake.run(chunk, atomic=False, transient=not supporting)
        intake.finish()
    metrics.count_intake("ingest", "file", results)
    for item, result in zip(chunk, results, strict=True):
        report.read += 1 if item.error is None else 0
        if progress:
            progress(1)
        if result.error is not None:
            label = shown_ref(result.resource_type or (item.raw or {}).get("resourceType"),
                              result.resource_id or _raw_id(item))
            where = f"{result.error.expression}: " if result.error.expression and not str(
                result.error.diagnostics).startswith(result.error.expression) else ""
            report.rejected.append(Rejection(item.origin, label if item.raw or item.method else "?",
                                             f"{where}{result.error.diagnostics}"))
            continue
        report.published.update(result.published)
        if supporting and result.outcome in ("created", "updated", "unchanged"):
            report.context += 1
        if result.withdrew:
            report.removed += 1
        if result.outcome == "skipped" or (not supporting and result.outcome in ("created", "updated")
                                           and not result.published and not result.withdrew):
            report.skipped += 1
        if result.outcome == "unchanged":
            report.unchanged += 1


def _raw_id(item: Item) -> str | None:
    rid = (item.raw or {}).get("id")
    return rid if isinstance(rid, str) else None


def count_items(paths: Iterable[str | Path]) -> int:
    return sum(1 for _ in read(expand(paths)))
