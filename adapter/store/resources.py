"""Stored FHIR resources: versions, owners, identifiers and links (SQLAlchemy Core, inside the caller's
transaction). Records (store/records.py) are what a resource publishes; this is the resource itself."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from adapter.store.later import Later
from adapter.store.tables import fhir_identifiers, fhir_links, fhir_resources

USES, TARGETS = "uses", "targets"


class VersionConflict(Exception):
    """The stored version changed between reading and writing (another writer won the race)."""


@dataclass(frozen=True)
class Stored:
    resource_type: str
    resource_id: str
    version_id: int
    owner: str | None
    content_hash: str
    deleted: bool
    body: str
    last_updated: datetime

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


# Statements built once (writes are a hot path: building a statement costs more than running it on SQLite).
_THIS = (fhir_resources.c.resource_type == bindparam("t")) & (fhir_resources.c.resource_id == bindparam("i"))
_GET = select(fhir_resources).where(_THIS)
_GET_MANY = select(fhir_resources).where(fhir_resources.c.resource_type == bindparam("t"),
                                         fhir_resources.c.resource_id.in_(bindparam("ids", expanding=True)))
_HEAD = select(fhir_resources.c.version_id, fhir_resources.c.owner, fhir_resources.c.deleted,
               fhir_resources.c.content_hash).where(_THIS)
_IDENTIFIERS_OF = select(fhir_identifiers.c.system, fhir_identifiers.c.value).where(
    fhir_identifiers.c.resource_type == bindparam("t"), fhir_identifiers.c.resource_id == bindparam("i"))
_LINKS_OF = select(fhir_links.c.target).where(fhir_links.c.resource_type == bindparam("t"),
                                              fhir_links.c.resource_id == bindparam("i"),
                                              fhir_links.c.kind == bindparam("k"))
_LINKING = select(fhir_links.c.resource_type, fhir_links.c.resource_id).where(
    fhir_links.c.kind == bindparam("k"), fhir_links.c.target.in_(bindparam("targets", expanding=True)))
_INSERT = insert(fhir_resources)
_UPDATE = update(fhir_resources).where(_THIS, fhir_resources.c.version_id == bindparam("v"))
_INSERT_IDENTIFIERS = insert(fhir_identifiers)
_FORGET_IDENTIFIERS = delete(fhir_identifiers).where(fhir_identifiers.c.resource_type == bindparam("t"),
                                                     fhir_identifiers.c.resource_id == bindparam("i"))
_INSERT_LINKS = insert(fhir_links)
_LINKING_BY_TARGET = select(fhir_links.c.target, fhir_links.c.resource_type, fhir_links.c.resource_id).where(
    fhir_links.c.kind == bindparam("k"), fhir_links.c.target.in_(bindparam("targets", expanding=True)))
_UNLINK = delete(fhir_links).where(fhir_links.c.resource_type == bindparam("t"),
                                   fhir_links.c.resource_id == bindparam("i"), fhir_links.c.kind == bindparam("k"))


@dataclass(frozen=True)
class Head:
    version_id: int
    owner: str | None
    deleted: bool
    content_hash: str


def head(conn: Connection, resource_type: str, resource_id: str) -> Head | None:
    """Version, owner and deletion of a stored resource, without its body."""
    row = conn.execute(_HEAD, {"t": resource_type, "i": resource_id}).first()
    return Head(row.version_id, row.owner, bool(row.deleted), row.content_hash) if row is not None else None


def get(conn: Connection, resource_type: str, resource_id: str) -> Stored | None:
    row = conn.execute(_GET, {"t": resource_type, "i": resource_id}).first()
    return _stored(row._mapping) if row is not None else None


def get_many(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Stored]:
    """The stored versions of (type, id) `keys`, one query per type (a unit of work reads all it writes at once)."""
    ids: dict[str, set[str]] = {}
    for rtype, rid in keys:
        ids.setdefault(rtype, set()).add(rid)
    found = {}
    for rtype, wanted in sorted(ids.items()):
        for row in conn.execute(_GET_MANY, {"t": rtype, "ids": sorted(wanted)}):
            found[(row.resource_type, row.resource_id)] = _stored(row._mapping)
    return found


def _stored(row: Any) -> Stored:
    found = Stored(**row)
    when = found.last_updated  # SQLite keeps no zone (what is written is UTC); PostgreSQL answers in its own
    return replace(found, last_updated=when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC))


def save(conn: Connection, previous: Stored | None, stored: Stored, identifiers: Iterable[tuple[str, str]],
         later: Later | None = None) -> None:
    """Write a new version; `previous` is what the writer's decision was based on (None: a new resource);
    `later`: a new resource and its identifiers are inserted when the batch is flushed."""
    values = {c: getattr(stored, c) for c in ("version_id", "owner", "content_hash", "deleted", "body",
                                              "last_updated")}
    this = {"t": stored.resource_type, "i": stored.resource_id}
    rows = [{"resource_type": stored.resource_type, "resource_id": stored.resource_id, "system": s[:255],
             "value": v[:255]} for s, v in dict.fromkeys(identifiers)]
    if previous is None and later is not None and not stored.deleted:
        later.insert(fhir_resources, [{"resource_type": stored.resource_type, "resource_id": stored.resource_id,
                                       **values}])
        later.insert(fhir_identifiers, rows)
        return
    if previous is None:
        conn.execute(_INSERT, {"resource_type": stored.resource_type, "resource_id": stored.resource_id, **values})
    else:
        done = conn.execute(_UPDATE, {**this, "v": previous.version_id, **values}).rowcount
        if done != 1:
            raise VersionConflict(stored.key)
        conn.execute(_FORGET_IDENTIFIERS, this)  # a new resource has none yet
    if rows and not stored.deleted:
        conn.execute(_INSERT_IDENTIFIERS, rows)
    if stored.deleted:
        set_links(conn, stored.resource_type, stored.resource_id, USES, ())
        set_links(conn, stored.resource_type, stored.resource_id, TARGETS, ())


def find(conn: Connection, resource_types: Iterable[str] | None, system: str, value: str) -> list[tuple[str, str]]:
    """(type, id) of the live resources carrying identifier system|value (system "" matches any system)."""
    params: dict[str, object] = {"value": value, "system": system}
    if resource_types is not None:
        params["types"] = list(resource_types)
    rows = conn.execute(_find_statement(bool(system), resource_types is not None), params).all()
    return sorted((r.resource_type, r.resource_id) for r in rows)


@lru_cache(maxsize=4)
def _find_statement(system: bool, types: bool) -> Select[tuple[str, str]]:
    where = [fhir_identifiers.c.value == bindparam("value")]
    if system:
        where.append(fhir_identifiers.c.system == bindparam("system"))
    if types:
        where.append(fhir_identifiers.c.resource_type.in_(bindparam("types", expanding=True)))
    return select(fhir_identifiers.c.resource_type, fhir_identifiers.c.resource_id).where(*where).distinct()


def identifiers_of(conn: Connection, resource_type: str, resource_id: str) -> list[tuple[str, str]]:
    rows = conn.execute(_IDENTIFIERS_OF, {"t": resource_type, "i": resource_id}).all()
    return [(r.system, r.value) for r in rows]


def set_links(conn: Connection, resource_type: str, resource_id: str, kind: str, targets: Iterable[str],
              *, fresh: bool = False, later: Later | None = None) -> None:
    """Replace a resource's `kind` links (`fresh`: a resource stored for the first time has none to replace;
    its links may then wait for the batch's flush in `later`)."""
    if not fresh:
        conn.execute(_UNLINK, {"t": resource_type, "i": resource_id, "k": kind})
    rows = [{"resource_type": resource_type, "resource_id": resource_id, "kind": kind, "target": t[:600]}
            for t in sorted(set(targets))]
    if rows and fresh and later is not None:
        later.insert(fhir_links, rows)
    elif rows:
        conn.execute(_INSERT_LINKS, rows)


def linking(conn: Connection, kind: str, targets: Iterable[str]) -> set[tuple[str, str]]:
    """(type, id) of the resources with a `kind` link to any of `targets`."""
    wanted = sorted(set(targets))
    if not wanted:
        return set()
    rows = conn.execute(_LINKING, {"k": kind, "targets": wanted}).all()
    return {(r.resource_type, r.resource_id) for r in rows}


def linking_by_target(conn: Connection, kind: str, targets: Iterable[str]) -> dict[str, set[tuple[str, str]]]:
    """`linking` for many targets at once: each of `targets` -> the (type, id) with a `kind` link to it."""
    wanted = sorted(set(targets))
    found: dict[str, set[tuple[str, str]]] = {t: set() for t in wanted}
    if wanted:
        for row in conn.execute(_LINKING_BY_TARGET, {"k": kind, "targets": wanted}):
            found[row.target].add((row.resource_type, row.resource_id))
    return found


def links_of(conn: Connection, resource_type: str, resource_id: str, kind: str) -> set[str]:
    return set(conn.execute(_LINKS_OF, {"t": resource_type, "i": resource_id, "k": kind}).scalars())
