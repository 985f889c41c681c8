"""Ingest: FHIR R4 files -> validation -> mapping -> store, with a summary of what happened.

Two passes over the input: first the supporting resources (patients, organisations, roles,
provenance ...) so that references resolve whatever the order of the input, then the clinical
resources. Each clinical resource is stored in its own savepoint; batches commit together, so a
run that dies midway leaves every stored record whole.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pydantic
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy.engine import Engine

from adapter.mapping import dispatch
from adapter.mapping.context import SUPPORTING_TYPES, Context
from adapter.mapping.errors import MappingError
from adapter.sources.files import Item, expand, read
from adapter.store import engagements
from adapter.store import records as store
from adapter.store.engagements import RecordKey

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
    rejected: list[Rejection] = field(default_factory=list)


class InvalidResource(ValueError):
    pass


def validate(raw: dict) -> Any:
    """A validated fhir.resources R4B model, or InvalidResource naming the fields (never values)."""
    rtype = raw.get("resourceType")
    try:
        model = get_fhir_model_class(str(rtype))
    except (KeyError, ValueError):
        raise InvalidResource(f"resourceType: unknown resource type {str(rtype)[:40]!r}") from None
    if _NOT_FOR_XML.search(orjson.dumps(raw)) and (where := _unfit_path(raw)) is not None:
        raise InvalidResource(f"{where}: holds a control character XML cannot carry")
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise InvalidResource(_describe(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:  # fhir-core raises bare KeyError for nested types
        raise InvalidResource(f"invalid content ({type(exc).__name__})") from None


_ELEMENT = re.compile(r"^[a-z_][A-Za-z0-9_]{0,63}$")  # FHIR element names start in lower case
# Characters JSON may carry but XML 1.0 may not (C0 controls except tab, newline, carriage return; U+FFFE/FFFF),
# as orjson writes them: found by fuzzing, they reached the RIVTA rendering and failed there.
_NOT_FOR_XML = re.compile(rb"\\u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])|\\[bf]|\xef\xbf[\xbe\xbf]")
_BAD_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _shown_path(path: tuple | list) -> str:
    """A location in a resource with only element names and indexes shown: anything else is input."""
    return ".".join(p if isinstance(p, str) and _ELEMENT.match(p) else str(p) if isinstance(p, int) else "?"
                    for p in path) or "(resource)"


def _unfit_path(node: Any, path: tuple = ()) -> str | None:
    """Where the first string XML cannot carry sits, as a path of element names (never the value)."""
    if isinstance(node, str):
        return _shown_path(path) if _BAD_CHAR.search(node) else None
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(key, str) and _BAD_CHAR.search(key):
            return _shown_path(path)
        found = _unfit_path(value, (*path, key))
        if found is not None:
            return found
    return None


def _describe(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        path, msg = list(err["loc"]), err["msg"]
        if err["type"] == "extra_forbidden":
            # An unknown element's name is input: shown only when it looks like an element name (not, say,
            # a personnummer or a name used as a key).
            msg = "an element FHIR R4B does not define"
        parts.append(f"{_shown_path(path)}: {msg}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _label(raw: dict | None) -> str:
    if not raw:
        return "?"
    rid = raw.get("id")
    return f"{raw.get('resourceType', '?')}/{rid if isinstance(rid, str) else '?'}"


def ingest(
    engine: Engine,
    paths: Iterable[str | Path],
    *,
    default_source_system: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestReport:
    files = expand(paths)
    report = IngestReport()

    def lookup(ref: str) -> Any | None:
        body = store.load_context(engine, ref)
        return validate(orjson.loads(body)) if body else None

    ctx = Context(default_source_system=default_source_system, lookup=lookup)

    # Pass 1: supporting resources, kept in the store for later runs.
    with engine.begin() as conn:
        for item in read(files):
            if item.raw is None or item.raw.get("resourceType") not in SUPPORTING_TYPES:
                continue
            try:
                res = validate(item.raw)
            except InvalidResource as exc:
                report.rejected.append(Rejection(item.origin, _label(item.raw), str(exc)))
                continue
            ctx.add(res, item.full_url)
            if res.id:
                store.save_context(conn, f"{res.get_resource_type()}/{res.id}", res.get_resource_type(),
                                   res.model_dump_json())
            report.context += 1

    # Pass 2: clinical resources and deletes.
    pending = 0
    touched: set[RecordKey] = set()
    conn = engine.connect()
    tx = conn.begin()
    try:
        for item in read(files):
            report.read += 1 if item.raw is not None or item.delete_ref else 0
            if progress:
                progress(1)
            if item.error:
                report.rejected.append(Rejection(item.origin, "?", item.error))
                continue
            if item.delete_ref:
                rtype, _, rid = item.delete_ref.partition("/")
                with conn.begin_nested():
                    keys = store.remove(conn, rtype, rid)
                    store.remove_context(conn, item.delete_ref)
                report.removed += 1 if keys else 0
                touched |= keys
                pending += 1
            elif item.raw is not None and item.raw.get("resourceType") not in SUPPORTING_TYPES:
                pending += _ingest_clinical(conn, item, ctx, report, touched)
            if pending >= BATCH:
                _commit(conn, tx, touched)
                tx = conn.begin()
                pending = 0
        _commit(conn, tx, touched)
    except BaseException:
        tx.rollback()
        raise
    finally:
        conn.close()
    return report


def _commit(conn, tx, touched: set[RecordKey]) -> None:
    """Engagement changes go into the outbox in the same transaction as the records they describe."""
    engagements.note_changes(conn, touched)
    touched.clear()
    tx.commit()


def _ingest_clinical(conn, item: Item, ctx: Context, report: IngestReport, touched: set[RecordKey]) -> int:
    label = _label(item.raw)
    try:
        res = validate(item.raw)
        if not dispatch.is_clinical(res.get_resource_type()):
            report.skipped += 1
            return 0
        if not res.id:
            raise InvalidResource("id: a clinical resource needs an id (it identifies the record on re-ingest)")
        rtype = res.get_resource_type()
        if dispatch.withdraws(res):
            with conn.begin_nested():
                keys = store.remove(conn, rtype, res.id)
            report.removed += 1 if keys else 0
            touched |= keys
            return 1
        recs = dispatch.map_resource(res, ctx)
        if not recs:  # e.g. a plan back in draft: whatever it published before is withdrawn
            with conn.begin_nested():
                keys = store.remove(conn, rtype, res.id)
            report.removed += 1 if keys else 0
            touched |= keys
            report.skipped += 1
            return 1
        for rec in recs:
            if not (rec.header.author.care_unit and rec.header.author.care_giver):
                raise MappingError("author", "no care unit or care giver HSA-id (Provenance author/custodian, or the "
                                   "author's Organization and its partOf): NPÖ consumers cannot apply blocks "
                                   "and access control without them (TKB Regel 1)")
        with conn.begin_nested():
            touched |= store.publish(conn, rtype, res.id, recs)
    except (InvalidResource, MappingError, store.DuplicateDocumentId) as exc:
        report.rejected.append(Rejection(item.origin, label, str(exc)))
        return 0
    except Exception as exc:  # a mapping defect must not stop the run; details only at debug level
        log.error("mapping failed for %s (%s)", label, type(exc).__name__)
        log.debug("mapping failure detail", exc_info=True)
        report.rejected.append(Rejection(item.origin, label, f"internal mapping error ({type(exc).__name__})"))
        return 0
    for r in recs:
        report.published[r.contract] += 1
    return 1


def count_items(paths: Iterable[str | Path]) -> int:
    return sum(1 for _ in read(expand(paths)))
