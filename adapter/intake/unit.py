"""One unit of work: a FHIR transaction or batch, a single interaction, or a chunk of a file.

Entries are prepared first (targets resolved, server ids assigned, references to fullUrls rewritten to
`Type/id`, resources validated and indexed for reference resolution), then processed deletes first, as a FHIR
transaction is. A write stores a new version unless the resource is unchanged; a clinical resource's records
are rendered and published; a change to a resource other records were rendered from re-renders those records.
Everything happens on the caller's connection and transaction: the caller commits (after `finish`, which
queues the engagement changes) or rolls back.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from fhir.resources.R4B import get_fhir_model_class
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from adapter.ei import outbox
from adapter.intake.resolver import StoreView
from adapter.intake.results import IntakeError, Result, shown_ref, shown_type
from adapter.intake.validation import InvalidResource, validate
from adapter.intake.writer import Writer, owner_of
from adapter.mapping import dispatch, timefmt
from adapter.mapping.context import (
    RELATIVE,
    SUPPORTING_TYPES,
    URI_SYSTEM,
    Context,
    canonical_system,
    identifier_key,
    key_of,
)
from adapter.mapping.errors import MappingError
from adapter.rivta import soap
from adapter.sources.files import Item
from adapter.store import locks, resources
from adapter.store import records as store
from adapter.store.keys import RecordKey
from adapter.store.later import Later
from adapter.store.resources import Stored

log = logging.getLogger("adapter.intake")

# What the endpoint keeps: the clinical resources NPÖ's contracts are rendered from, and what they refer to.
ACCEPTED_TYPES = frozenset(dispatch.MAPS) | SUPPORTING_TYPES
# Referred to by other clinical resources (MedicationStatement.basedOn): indexed ahead like supporting ones.
REFERENCED_CLINICAL = frozenset({"MedicationRequest"})
SEARCH_PARAMS = ("identifier", "_id")  # what conditional interactions and search match on
_VALID_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
WRITE_LOCK = "fhir-intake"
_PROCESS_WRITERS = threading.Lock()
MAX_DEPTH = 64  # FHIR resources nest a dozen levels; deeper input is an attack on the recursive walks below
_ID_NAMESPACE = uuid.UUID("6f1c1a52-4a43-4d0e-9a43-8f0a2c1d3e55")  # ids derived from a file entry's fullUrl


@dataclass
class _Entry:
    index: int
    item: Item
    method: str  # PUT, POST, DELETE, or "" for a resource as it stands (file ingest)
    resource_type: str | None = None
    resource_id: str | None = None
    raw: dict | None = None
    model: Any = None
    previous: Stored | None = None
    changed: bool = True
    result: Result | None = None  # decided already while preparing (refused, or a conditional create's match)

    @property
    def key(self) -> str | None:
        return f"{self.resource_type}/{self.resource_id}" if self.resource_type and self.resource_id else None


@dataclass
class Intake:
    conn: Connection
    writer: Writer
    default_source_system: str | None = None
    unknown_types: Literal["refuse", "skip"] = "refuse"
    derive_ids: bool = False  # file ingest: an entry without id takes one derived from its fullUrl (stable re-runs)
    touched: set[RecordKey] = field(default_factory=set)
    local_base: str | None = None  # this server's FHIR base: absolute references into it are local

    def __post_init__(self) -> None:
        self.view = StoreView(self.conn)
        self.ctx = Context(default_source_system=self.writer.only or self.default_source_system, store=self.view)
        if self.local_base:
            self.ctx.local_bases = (self.local_base.rstrip("/"),)
        self._written: set[str] = set()
        self._deferred: set[str] = set()
        self._known: dict[tuple[str, str], tuple[bytes, Any]] = {}  # (type, id) -> (its JSON, model) read ahead
        self._uses: dict[str, set[tuple[str, str]]] = {}  # a unit's targets -> what was rendered from them
        self._records: dict[tuple[str, str], list[Any]] = {}  # a unit's clinical resources -> their stored records
        self._later: Later | None = None  # a batch under one savepoint: its new rows, written at its end

    # -- the unit ---------------------------------------------------------------------------------------------
    def know(self, items: list[Item]) -> None:
        """Index resources for reference resolution without writing them (a file's MedicationRequests, read
        ahead so that statements anywhere in the input resolve them)."""
        for item in items:
            if item.raw is not None and isinstance(rid := item.raw.get("id"), str) and rid:
                try:
                    model = validate(item.raw)
                except InvalidResource:
                    continue  # reported when the item itself is taken in
                self.ctx.add(model, item.full_url)
                self._known[(str(item.raw.get("resourceType")), rid)] = (orjson.dumps(item.raw), model)

    def run(self, items: list[Item], *, atomic: bool, transient: bool = False) -> list[Result]:
        """Take in `items`; with `atomic`, stop at the first refused entry (the caller rolls back). `transient`:
        forget the entries' resources from reference resolution afterwards (large files)."""
        entries = self._prepare(items)
        upcoming = {e.key for e in entries if e.changed and e.method != "DELETE" and e.result is None and e.key}
        order = sorted(entries, key=lambda e: (e.method != "DELETE", e.index))
        # What was rendered from the resources this unit writes, read at once (links this unit makes are its own
        # entries', which are never re-rendered, or re-renders that already saw this input's resources)
        self._uses = resources.linking_by_target(self.conn, resources.USES, [
            t for e in entries if e.result is None and e.model is not None and e.key
            for t in (e.key, *_identifier_keys(e.model))])
        clinical = [e for e in entries if e.key and e.result is None and e.resource_type in dispatch.MAPS]
        self.view.expect([e.key or "" for e in clinical])
        # each entry's records are written only by itself in a unit (never re-rendered before or after it)
        self._records = store.stored_many(self.conn, [(e.resource_type or "", e.resource_id or "") for e in clinical
                                                      if e.changed and e.method != "DELETE"])
        if atomic or not self._at_once(order, set(upcoming)):
            self._one_by_one(order, upcoming, atomic)
        self._uses, self._records = {}, {}
        self.view.expect([])
        self._rerender_deferred(entries, atomic)
        if transient:
            for entry in entries:
                known = self._known.get((entry.resource_type or "", entry.resource_id or ""))
                if entry.model is not None and entry.resource_type not in SUPPORTING_TYPES and (
                        known is None or known[1] is not entry.model):
                    self.ctx.discard(entry.model)
        return [e.result or Result(500, "rejected") for e in entries]

    def _one_by_one(self, order: list[_Entry], upcoming: set[str | None], atomic: bool) -> None:
        for entry in order:
            if entry.result is not None:
                if atomic and entry.result.error is not None:
                    break
                continue
            upcoming.discard(entry.key)
            if atomic:
                entry.result = self._one(entry, upcoming)
                if entry.result.error is not None:
                    break
            else:
                touched = set(self.touched)
                with self.conn.begin_nested() as savepoint:
                    entry.result = self._one(entry, upcoming)
                    if entry.result.error is not None:
                        savepoint.rollback()
                        self.touched = touched
                        self._undo(entry)

    def _at_once(self, order: list[_Entry], upcoming: set[str | None]) -> bool:
        """A batch's entries under one savepoint instead of one each (savepoints cost as much as a resource's
        records): True when none was refused. At the first refusal everything is rolled back and False tells the
        caller to take the entries one by one, each refused alone. Batches with deletes go one by one at once:
        a delete also changes what references resolve to in this input, which a rollback would not restore."""
        todo = [e for e in order if e.result is None]
        if any(e.method == "DELETE" for e in todo):
            return False
        touched, deferred = set(self.touched), set(self._deferred)
        new = {e.key for e in todo} - self._written  # (what it wrote before stays: it spans a whole ingest)
        self._later = Later()
        try:
            with self.conn.begin_nested() as savepoint:
                for entry in todo:
                    upcoming.discard(entry.key)
                    entry.result = self._one(entry, upcoming)
                    if entry.result.error is not None:
                        break
                else:
                    self._later.flush(self.conn)
                    try:
                        store.check_batch(self.conn, self._later.documents)
                        return True
                    except store.DuplicateDocumentId:
                        pass  # one by one, the resource that clashes is refused alone
                savepoint.rollback()
        finally:
            self._later = None
        self.touched, self._deferred = touched, deferred
        self._written -= new
        self.view.clear()  # it may hold what the rolled-back writes made
        for entry in todo:
            entry.result = None
        return False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One database transaction of intake: writers take turns (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
        advisory lock across replicas), and what other writers committed before it is seen afresh."""
        conn = self.conn.execution_options(immediate=True) if self.conn.dialect.name == "sqlite" else self.conn
        # Writers queue on locks of their own first, this process's and then (SQLite) every process's: waiting in
        # SQLite's busy handler, which sleeps up to 100 ms between tries, gave single writes a tail of over a
        # second (bench/intake.py), and with `serve --workers 2` the workers' writers met there again.
        with _PROCESS_WRITERS, locks.wait_turn(conn, WRITE_LOCK), conn.begin():
            locks.xact_lock(conn, WRITE_LOCK)
            self.view.clear()
            yield

    def finish(self) -> None:
        """Queue the engagement changes of what was taken in (in the caller's transaction)."""
        outbox.note_changes(self.conn, self.touched)
        self.touched.clear()

    # -- preparing ----------------------------------------------------------------------------------------------
    def _prepare(self, items: list[Item]) -> list[_Entry]:
        entries = [_Entry(i, item, item.method or "") for i, item in enumerate(items)]
        rewrite: dict[str, str] = {}
        seen: dict[str, int] = {}
        full_urls: dict[tuple[str, str], int] = {}
        for entry in entries:
            # bdl-7, per Bundle (a chunk of files may hold several): a reference could not say which one is meant
            full_url = (entry.item.origin.rsplit("#entry[", 1)[0], entry.item.full_url or "")
            if full_url[1] and full_url in full_urls:
                entry.result = _refused(IntakeError(400, "invalid", f"fullUrl: the same as "
                                                    f"{entries[full_urls[full_url]].item.expression or 'another entry'}"
                                                    "'s (fullUrl must be unique in a Bundle)", "fullUrl"))
                continue
            if full_url[1]:
                full_urls[full_url] = entry.index
            try:
                self._target(entry)
            except IntakeError as exc:
                entry.result = _refused(exc, entry)
                continue
            if entry.result is not None and entry.key and entry.item.full_url:  # a conditional create's match
                rewrite[entry.item.full_url] = entry.key
            if entry.result is not None or entry.key is None:
                continue
            if entry.key in seen:
                other = entries[seen[entry.key]].item.expression or "another entry"
                entry.result = _refused(IntakeError(400, "duplicate", f"{other} already writes "
                                                    f"{shown_ref(entry.resource_type, entry.resource_id)}"), entry)
                continue
            seen[entry.key] = entry.index
            if entry.item.full_url and entry.raw is not None:
                rewrite[entry.item.full_url] = entry.key
        for entry in entries:
            if entry.raw is None or entry.result is not None:
                continue
            try:
                entry.raw = _rewritten(entry.raw, rewrite)
            except _TooDeep:
                entry.result = _refused(IntakeError(422, "structure", f"nested deeper than {MAX_DEPTH} levels"),
                                        entry)
                continue
            if entry.resource_id:
                entry.raw["id"] = entry.resource_id
            known = self._known.get((entry.resource_type or "", entry.resource_id or ""))
            try:
                # read ahead (`know`) as it is here: validated once, and the same model stays in resolution
                same = known is not None and known[0] == orjson.dumps(entry.raw)
                entry.model = known[1] if known is not None and same else validate(entry.raw)
            except InvalidResource as exc:
                entry.result = _refused(IntakeError(422, "structure", str(exc), exc.issues[0][0]
                                                    if len(exc.issues) == 1 and exc.issues[0][0] != "(resource)"
                                                    else None), entry)
                continue
            self.ctx.add(entry.model, entry.item.full_url)
        written = [e for e in entries if e.result is None and e.model is not None and e.key]
        stored = resources.get_many(self.conn, [(e.resource_type or "", e.resource_id or "") for e in written])
        for entry in written:
            entry.previous = stored.get((entry.resource_type or "", entry.resource_id or ""))
            live = _live(entry.previous)
            entry.changed = live is None or live.content_hash != content_hash(entry.raw or {})
        return entries

    def _target(self, entry: _Entry) -> None:
        """The resource an entry writes or deletes (conditional references resolved, ids assigned)."""
        item = entry.item
        if item.error:
            raise IntakeError(400, "invalid", item.error)
        if item.method == "DELETE":
            entry.resource_type, entry.resource_id, query = _parse_url(item.url or "")
            if entry.resource_type not in ACCEPTED_TYPES:
                raise IntakeError(404, "not-supported", f"{shown_type(entry.resource_type)} is not taken here")
            if query is None and entry.resource_id is None:
                raise IntakeError(400, "invalid", "DELETE needs Type/id or Type?identifier=…", "request.url")
            if query is not None:
                entry.resource_id = self._conditional(entry.resource_type, query, "delete")
                if entry.resource_id is None:
                    entry.result = Result(204, "absent", entry.resource_type)
            return
        raw = item.raw or {}
        rtype = raw.get("resourceType")
        if not isinstance(rtype, str) or rtype not in ACCEPTED_TYPES:
            if not _is_fhir_type(rtype):
                raise IntakeError(422, "structure", f"resourceType: unknown resource type {shown_type(rtype)}",
                                  "resourceType")
            if self.unknown_types == "skip":
                entry.result = Result(200, "skipped", str(rtype))
                return
            raise IntakeError(404, "not-supported", f"{shown_type(rtype)} is not taken here (GET /fhir/metadata "
                              "lists the resource types this endpoint takes)", "resourceType")
        entry.resource_type = rtype
        entry.raw = dict(raw)
        rid = raw.get("id")
        if rid is not None and (not isinstance(rid, str) or not _VALID_ID.match(rid)):
            raise IntakeError(400 if item.method else 422, "invalid", "id: not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)",
                              "id")
        if item.method in ("PUT", "POST"):
            url_type, url_id, query = _parse_url(item.url or "")
            if url_type != rtype:
                raise IntakeError(400, "invalid", "the resource type differs from the request URL's", "resourceType")
        if item.method == "PUT":
            if query is not None:
                if url_id:
                    raise IntakeError(400, "invalid", "request URL: Type/id or Type?identifier=…, not both")
                found = self._conditional(rtype, query, "update")
                if found and rid and found != rid:
                    raise IntakeError(400, "invalid", "the id differs from that of the resource the conditional "
                                      "update found", "id")
                entry.resource_id = found or rid or str(uuid.uuid4())
            elif not url_id:
                raise IntakeError(400, "invalid", "PUT needs Type/id or Type?identifier=…")
            else:
                if rid and rid != url_id:
                    raise IntakeError(400, "invalid", "the id in the resource differs from the id in the URL", "id")
                entry.resource_id = url_id
        elif item.method == "POST":
            if url_id or query is not None:
                raise IntakeError(400, "invalid", "POST goes to the type (Type), with If-None-Exist for a "
                                  "conditional create")
            if item.if_none_exist:
                found = self._conditional(rtype, _query(item.if_none_exist), "create")
                if found:
                    stored = resources.get(self.conn, rtype, found)
                    entry.result = _stored_result(200, "unchanged", stored) if stored else None
                    entry.resource_id = found
                    return
            # The server assigns the id of a created resource (a file's entry keeps one derived from its fullUrl,
            # so that ingesting the file again changes nothing).
            entry.resource_id = (str(uuid.uuid5(_ID_NAMESPACE, item.full_url)) if self.derive_ids and item.full_url
                                 else str(uuid.uuid4()))
        else:
            entry.resource_id = rid
            if rid is None and self.derive_ids and item.full_url:
                entry.resource_id = str(uuid.uuid5(_ID_NAMESPACE, item.full_url))
            if entry.resource_id is None and rtype not in SUPPORTING_TYPES:
                raise IntakeError(422, "required", "a clinical resource needs an id (it identifies the record when "
                                  "it is sent again)", "id")

    def _conditional(self, rtype: str | None, query: list[tuple[str, str]], what: str) -> str | None:
        """The id of the one resource the writer may see that matches `query` (None: no match)."""
        if not rtype or not query:
            raise IntakeError(400, "invalid", f"a conditional {what} needs search parameters")
        if any(name not in SEARCH_PARAMS for name, _ in query):
            raise IntakeError(400, "not-supported", f"conditional {what}: only the identifier and _id search "
                              "parameters are supported")
        visible = matching(self.conn, rtype, query, self.writer)
        if len(visible) > 1:
            raise IntakeError(412, "multiple-matches", f"conditional {what}: {len(visible)} resources match")
        return visible[0].resource_id if visible else None

    # -- processing ---------------------------------------------------------------------------------------------
    def _one(self, entry: _Entry, upcoming: set[str | None]) -> Result:
        try:
            if entry.method == "DELETE":
                return self._delete(entry, upcoming)
            return self._write(entry, upcoming)
        except IntakeError as exc:
            return _refused(exc, entry)
        except MappingError as exc:
            return _refused(IntakeError(422, "business-rule", str(exc), exc.field), entry)
        except timefmt.OutOfRange as exc:  # one such record would make the patient's whole answer schema-invalid
            return _refused(IntakeError(422, "business-rule", str(exc)), entry)
        except store.DuplicateDocumentId as exc:
            return _refused(IntakeError(409, "duplicate", str(exc), "identifier"), entry)
        except store.TooLong as exc:  # the same on both engines (PostgreSQL refused the insert: a 503 as if down)
            return _refused(IntakeError(422, "business-rule", str(exc)), entry)
        except resources.VersionConflict:
            return _refused(IntakeError(412, "conflict", "the resource changed meanwhile: read it again"), entry)
        except SQLAlchemyError:
            raise  # the store itself: the caller retries or answers 503
        except Exception as exc:  # a defect must cost this entry only (in a batch); details only at debug level
            log_id = soap.new_log_id()
            log.error("internal error %s on %s (%s)", log_id, shown_ref(entry.resource_type, entry.resource_id),
                      type(exc).__name__)
            log.debug("internal error detail %s", log_id, exc_info=True)
            return _refused(IntakeError(500, "exception", f"internal error (log id {log_id})"), entry)

    def _write(self, entry: _Entry, upcoming: set[str | None]) -> Result:
        rtype, rid, model, raw = entry.resource_type, entry.resource_id, entry.model, entry.raw
        assert rtype and raw is not None and model is not None
        if rid is None:  # a supporting resource without id in a file: kept for this input's references only
            return Result(200, "skipped", rtype)
        owner = owner_of(model, self.writer, self.ctx.default_source_system)
        live = _live(entry.previous)
        self._check_owner(live)
        _check_if_match(entry.item.if_match, live)
        if live is not None and not entry.changed and live.owner == owner:
            if entry.key in self._deferred:  # something it was rendered from changed in this unit
                self._render(entry, model)
                self._written.add(entry.key)
            return _stored_result(200, "unchanged", live)
        result = Result(201 if live is None else 200, "created" if live is None else "updated", rtype, rid)
        if rtype in dispatch.MAPS:
            result.published, result.withdrew = self._render(entry, model)
        now = datetime.now(UTC)
        version = (entry.previous.version_id + 1) if entry.previous else 1
        body = _with_meta(raw, version, now)
        stored = Stored(rtype, rid, version, owner, content_hash(raw), False, body, now)
        old = resources.identifiers_of(self.conn, rtype, rid) if entry.previous else []  # stored with the resource
        old_idents = [identifier_key(s, v) for s, v in old]
        idents = _identifiers(model, entry.item.full_url)
        resources.save(self.conn, entry.previous, stored, idents, self._later)
        self.view.forget_identifiers({v for _, v in [*old, *idents]})
        about: set[str] = set()  # a Provenance's targets, before and after
        if rtype == "Provenance":
            targets = self._targets(model)
            fresh = entry.previous is None  # its links are stored with it: a new one has none yet
            about = (set() if fresh else resources.links_of(self.conn, rtype, rid, resources.TARGETS)) | targets
            # A new one's links may wait for the batch's flush: what is read again from the store about the unit's
            # other resources (forget_about) misses it until then, but it is in this input, where
            # Context._provenances_of finds it by its targets in any case.
            resources.set_links(self.conn, rtype, rid, resources.TARGETS, targets, fresh=fresh, later=self._later)
            self.view.forget_about(about)
        self._written.add(f"{rtype}/{rid}")
        self.view.forget(rtype, rid)
        self._dependents([f"{rtype}/{rid}", *old_idents, *_identifier_keys(model)], about, upcoming)
        result.version_id, result.last_modified, result.body = version, now, body
        return result

    def _delete(self, entry: _Entry, upcoming: set[str | None]) -> Result:
        rtype, rid = entry.resource_type, entry.resource_id
        assert rtype and rid
        live = _live(resources.get(self.conn, rtype, rid))
        if live is None:
            return Result(204, "absent", rtype, rid)
        self._check_owner(live)
        _check_if_match(entry.item.if_match, live)
        withdrew = bool(keys := store.remove(self.conn, rtype, rid))
        self.touched |= keys
        old = resources.identifiers_of(self.conn, rtype, rid)
        old_idents = [identifier_key(s, v) for s, v in old]
        old_targets = resources.links_of(self.conn, rtype, rid, resources.TARGETS)
        now = datetime.now(UTC)
        tombstone = Stored(rtype, rid, live.version_id + 1, live.owner, "", True,
                           orjson.dumps({"resourceType": rtype, "id": rid}).decode(), now)
        resources.save(self.conn, live, tombstone, ())
        self.view.forget_identifiers({v for _, v in old})
        self.view.forget_about(old_targets)
        self._written.add(f"{rtype}/{rid}")
        self.ctx.forget(f"{rtype}/{rid}")
        self.view.forget(rtype, rid)
        self._dependents([f"{rtype}/{rid}", *old_idents], old_targets, upcoming)
        return Result(204, "deleted", rtype, rid, live.version_id + 1, now, withdrew=withdrew)

    def _render(self, entry: _Entry, model: Any) -> tuple[Counter, bool]:
        """Publish what a clinical resource renders to (or withdraw it); remember what it was rendered from."""
        rtype, rid = entry.resource_type, entry.resource_id
        assert rtype and rid
        if dispatch.withdraws(model):
            keys = store.remove(self.conn, rtype, rid)
            self.touched |= keys
            resources.set_links(self.conn, rtype, rid, resources.USES, ())
            return Counter(), bool(keys)
        with self.ctx.mapping(model, entry.item.full_url) as used:
            recs = dispatch.map_resource(model, self.ctx)
        for rec in recs:
            if not (rec.header.author.care_unit and rec.header.author.care_giver):
                raise MappingError("author", "no care unit or care giver HSA-id (Provenance author/custodian, or the "
                                   "author's Organization and its partOf): NPÖ consumers cannot apply blocks "
                                   "and access control without them (TKB Regel 1)")
            if not self.writer.may_publish_for(rec.header.author.care_giver):
                # Consumers decide on the care giver (PDL: the own care giver's information needs no consent),
                # so a writer may name only the care givers it is granted.
                raise IntakeError(403, "forbidden", f"the record's care giver {rec.header.author.care_giver} is not "
                                  "one this writer may publish for")
        if recs:
            stored = self._records.get((rtype, rid)) if entry.index >= 0 else None
            self.touched |= store.publish(self.conn, rtype, rid, recs, stored,
                                          self._later if entry.index >= 0 else None)
        else:  # e.g. a plan back in draft: whatever it published before is withdrawn
            self.touched |= store.remove(self.conn, rtype, rid)
        # links are stored with the resource: one stored for the first time (not a re-render) has none yet
        fresh = entry.index >= 0 and not entry.previous
        resources.set_links(self.conn, rtype, rid, resources.USES, used, fresh=fresh, later=self._later)
        return Counter(r.contract for r in recs), False

    # -- re-rendering what depends on a changed resource ------------------------------------------------------
    def _dependents(self, targets: list[str], about: set[str], upcoming: set[str | None]) -> None:
        """Re-render the clinical resources rendered from `targets` (and those a Provenance is `about`), except
        those this unit writes itself later (deferred: re-rendered at the end if they turn out unchanged)."""
        rest = [t for t in targets if t not in self._uses]
        linked = set().union(*(self._uses[t] for t in targets if t in self._uses))
        found = {f"{t}/{i}" for t, i in linked | resources.linking(self.conn, resources.USES, rest)} | about
        for key in sorted(found):
            rtype, _, rid = key.partition("/")
            if rtype not in dispatch.MAPS or key in self._written:
                continue
            if key in upcoming:
                self._deferred.add(key)
                continue
            self._rerender(rtype, rid)

    def _rerender(self, rtype: str, rid: str) -> None:
        stored = _live(resources.get(self.conn, rtype, rid))
        if stored is None or not self.writer.may(stored.owner):
            # Another source system's record is never re-rendered in this writer's unit: its resources (this
            # input among them) must not shape that record. It resolves only its own source system's.
            return
        try:
            model = validate(orjson.loads(stored.body))
            self._render(_Entry(-1, Item(origin="store"), "", rtype, rid), model)
        except (MappingError, InvalidResource, store.DuplicateDocumentId, store.TooLong, timefmt.OutOfRange) as exc:
            raise IntakeError(409, "conflict", f"{shown_ref(rtype, rid)}, rendered from this resource, could no "
                              f"longer be published: {exc}") from None

    def _rerender_deferred(self, entries: list[_Entry], atomic: bool) -> None:
        pending = sorted(self._deferred - self._written)
        self._deferred.clear()
        for key in pending:
            rtype, _, rid = key.partition("/")
            try:
                if atomic:
                    self._rerender(rtype, rid)
                else:
                    with self.conn.begin_nested():
                        self._rerender(rtype, rid)
            except IntakeError as exc:
                if atomic:
                    failed = next((e for e in entries if e.key == key), entries[-1])
                    failed.result = _refused(exc, failed)
                    return
                log.warning("%s kept its earlier records: %s", shown_ref(rtype, rid), exc.diagnostics)

    # -- helpers ------------------------------------------------------------------------------------------------
    def _check_owner(self, live: Stored | None) -> None:
        if live is not None and not self.writer.may(live.owner):
            raise IntakeError(403, "forbidden", "the stored resource belongs to a source system this writer is not "
                              "authorised for")

    def _targets(self, provenance: Any) -> set[str]:
        """The `Type/id` of the resources a Provenance is about."""
        out = set()
        for target in provenance.target or []:
            found = self.ctx.resolve(target)
            key = key_of(found) if found is not None else None
            m = RELATIVE.match(target.reference or "")
            out.add(key or (f"{m.group(1)}/{m.group(2)}" if m else ""))
        out.discard("")
        return out

    def _undo(self, entry: _Entry) -> None:
        """After a batch entry was rolled back: its resource no longer resolves from this input."""
        if entry.model is not None:
            self.ctx.discard(entry.model)
        if entry.key:
            self._written.discard(entry.key)
            self.view.clear()  # what it read after its writes (identifier searches among them) is rolled back


def matching(conn: Connection, rtype: str, query: list[tuple[str, str]], writer: Writer) -> list[Stored]:
    """The live resources of `rtype` that match every `identifier` (system|value, or value) and `_id` in `query`
    and that `writer` may see: what conditional interactions and search find."""
    candidates: set[str] | None = None
    for name, value in query:
        if name == "_id":
            found = {value}
        else:
            system, bar, code = value.rpartition("|")
            found = {rid for _, rid in resources.find(conn, [rtype], canonical_system(system) if bar else "", code)}
        candidates = found if candidates is None else candidates & found
    out = []
    for rid in sorted(candidates or ()):
        stored = _live(resources.get(conn, rtype, rid))
        if stored is not None and writer.may(stored.owner):
            out.append(stored)
    return out


def _is_fhir_type(name: Any) -> bool:
    try:
        get_fhir_model_class(str(name))
    except (KeyError, ValueError):
        return False
    return True


def content_hash(raw: dict) -> str:
    """What a resource says, without the version and time the server gives it."""
    meta = raw.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        raw = {**raw, "meta": meta} if meta else {k: v for k, v in raw.items() if k != "meta"}
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _with_meta(raw: dict, version: int, now: datetime) -> str:
    meta = dict(raw.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps({**raw, "meta": meta}).decode()


def _identifiers(model: Any, full_url: str | None) -> list[tuple[str, str]]:
    found = getattr(model, "identifier", None)
    idents = [] if found is None else list(found) if isinstance(found, list) else [found]
    out = [(canonical_system(i.system), i.value) for i in idents if i.value]
    if full_url and full_url.startswith(("http://", "https://")):
        out.append((URI_SYSTEM, full_url))
    return out


def _identifier_keys(model: Any) -> list[str]:
    return [identifier_key(s, v) for s, v in _identifiers(model, None)]


class _TooDeep(ValueError):
    pass


def _rewritten(node: Any, rewrite: dict[str, str], level: int = 1) -> Any:
    """`node` with every `reference` to an entry's fullUrl replaced by that entry's `Type/id` (what changes is
    copied, the rest shared); _TooDeep when it nests deeper than MAX_DEPTH (the input may be hostile: the walk
    stops there, far from Python's recursion limit, and the walks after it can rely on the depth)."""
    if level > MAX_DEPTH:
        raise _TooDeep
    if isinstance(node, dict):
        out = None
        for key, value in node.items():
            if isinstance(value, dict | list):
                new = _rewritten(value, rewrite, level + 1)
                if new is not value:
                    out = out if out is not None else dict(node)
                    out[key] = new
            elif level == MAX_DEPTH:
                raise _TooDeep
        ref = node.get("reference")
        if isinstance(ref, str) and ref in rewrite:
            out = out if out is not None else dict(node)
            out["reference"] = rewrite[ref]
        return node if out is None else out
    if isinstance(node, list):
        items = None
        for i, value in enumerate(node):
            if isinstance(value, dict | list):
                new = _rewritten(value, rewrite, level + 1)
                if new is not value:
                    items = items if items is not None else list(node)
                    items[i] = new
            elif level == MAX_DEPTH:
                raise _TooDeep
        return node if items is None else items
    return node


def _parse_url(url: str) -> tuple[str | None, str | None, list[tuple[str, str]] | None]:
    """`Type`, `Type/id` or `Type?params` of a request URL (relative to the base)."""
    path, question, params = url.partition("?")
    parts = [p for p in path.split("/") if p]
    if len(parts) > 2 or not parts or not parts[0][:1].isupper():
        raise IntakeError(400, "invalid", "request URL must be Type, Type/id or Type?identifier=…")
    rid = parts[1] if len(parts) == 2 else None
    if rid is not None and not RELATIVE.match(f"{parts[0]}/{rid}"):
        raise IntakeError(400, "invalid", "not a valid resource id in the request URL")
    return parts[0], rid, (_query(params) if question else None)


def _query(params: str) -> list[tuple[str, str]]:
    _, _, params = params.rpartition("?")
    return [(k, v) for k, v in parse_qsl(params, keep_blank_values=False)]


def _check_if_match(if_match: str | None, live: Stored | None) -> None:
    if not if_match:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted == "*" and live is not None:  # any current version (RFC 9110)
        return
    if live is None or str(live.version_id) != wanted:
        raise IntakeError(412, "conflict", "If-Match: the resource is not at that version (read it again)")


def _live(stored: Stored | None) -> Stored | None:
    return stored if stored is not None and not stored.deleted else None


def _stored_result(status: int, outcome: str, stored: Stored) -> Result:
    return Result(status, outcome, stored.resource_type, stored.resource_id, stored.version_id, stored.last_updated,
                  stored.body)


def _refused(exc: IntakeError, entry: _Entry | None = None) -> Result:
    return Result(exc.status, "rejected", entry.resource_type if entry else None,
                  entry.resource_id if entry else None, error=exc)
