"""The store as reference resolution sees it: stored resources, limited to one source system's resources and
those that belong to none.

Validated models of stored resources are kept per process, keyed by type, id and content hash: a write looks up
the patient, role, practitioner and organisations it refers to, and validating them again each time cost half of a
single-resource write. The hash is read from the store every time, so a change by another replica is seen; it
names the content itself, so a model made from a write that was later rolled back is never taken for another
(version numbers are reused after a rollback, content hashes are not).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from adapter.intake.validation import InvalidResource, validate
from adapter.store import resources

_MODELS: OrderedDict[tuple[str, str], tuple[str, Any]] = OrderedDict()
_MODELS_KEPT = 20_000
_MODELS_LOCK = threading.Lock()


def _remembered(resource_type: str, resource_id: str, content_hash: str) -> Any | None:
    with _MODELS_LOCK:
        found = _MODELS.get((resource_type, resource_id))
        if found is None or not content_hash or found[0] != content_hash:
            return None
        _MODELS.move_to_end((resource_type, resource_id))
        return found[1]


def _remember(resource_type: str, resource_id: str, content_hash: str, model: Any) -> None:
    if not content_hash:  # moved over from an older store: no hash to key it by
        return
    with _MODELS_LOCK:
        _MODELS[(resource_type, resource_id)] = (content_hash, model)
        _MODELS.move_to_end((resource_type, resource_id))
        while len(_MODELS) > _MODELS_KEPT:
            _MODELS.popitem(last=False)


class StoreView:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], tuple[str | None, Any | None]] = {}
        self._about: dict[str, set[tuple[str, str]]] = {}  # key -> the stored Provenances about it, read ahead
        # (types, system, value) -> what carries that identifier: references by HSA-id to staff who are not in
        # the input are looked up by every resource that names them
        self._found: dict[tuple[tuple[str, ...] | None, str, str], list[tuple[str, str]]] = {}

    def clear(self) -> None:
        self._cache.clear()
        self._about.clear()
        self._found.clear()

    def forget_identifiers(self, values: set[str]) -> None:
        """Identifiers with these values were written or removed: look them up again."""
        for key in [k for k in self._found if k[2] in values]:
            del self._found[key]

    def forget(self, resource_type: str, resource_id: str) -> None:
        self._cache.pop((resource_type, resource_id), None)

    def forget_about(self, keys: set[str]) -> None:
        """A Provenance about these resources was written or deleted: read what is about them again."""
        for key in keys:
            self._about.pop(key, None)

    def expect(self, keys: list[str]) -> None:
        """Read the stored Provenances about the resources a unit writes at once, not one query each."""
        self._about = resources.linking_by_target(self._conn, resources.TARGETS, keys) if keys else {}

    def _load(self, resource_type: str, resource_id: str) -> tuple[str | None, Any | None]:
        key = (resource_type, resource_id)
        if key not in self._cache:
            head = resources.head(self._conn, resource_type, resource_id)
            model = None
            if head is not None and not head.deleted:
                model = _remembered(resource_type, resource_id, head.content_hash)
                stored = resources.get(self._conn, resource_type, resource_id) if model is None else None
                if stored is not None and not stored.deleted:
                    try:
                        model = validate(orjson.loads(stored.body))
                        _remember(resource_type, resource_id, stored.content_hash, model)
                    except InvalidResource:  # stored by an older version whose validation differed
                        model = None
            self._cache[key] = (head.owner if head is not None else None, model)
        return self._cache[key]

    def get(self, resource_type: str, resource_id: str, owner: str | None) -> Any | None:
        stored_owner, model = self._load(resource_type, resource_id)
        if model is None or (stored_owner is not None and (owner is None or stored_owner.upper() != owner.upper())):
            return None
        return model

    def by_identifier(self, resource_types: tuple[str, ...] | None, system: str, value: str,
                      owner: str | None) -> Any | None:
        key = (tuple(resource_types) if resource_types is not None else None, system, value)
        if key not in self._found:
            self._found[key] = resources.find(self._conn, resource_types, system, value)
        for rtype, rid in self._found[key]:
            found = self.get(rtype, rid, owner)
            if found is not None:
                return found
        return None

    def provenances_for(self, key: str, owner: str | None,
                        skip: frozenset[str] = frozenset()) -> list[tuple[str, Any]]:
        found = []
        about = self._about.get(key)
        if about is None:
            about = resources.linking(self._conn, resources.TARGETS, [key])
        for rtype, rid in sorted(about):
            if f"{rtype}/{rid}" in skip:  # the caller has this one's model: only whether `owner` sees it counts
                if self._visible(rtype, rid, owner):
                    found.append((f"{rtype}/{rid}", None))
                continue
            prov = self.get(rtype, rid, owner)
            if prov is not None:
                found.append((f"{rtype}/{rid}", prov))
        return found

    def _visible(self, resource_type: str, resource_id: str, owner: str | None) -> bool:
        if (resource_type, resource_id) in self._cache:
            stored_owner, model = self._cache[(resource_type, resource_id)]
            exists = model is not None
        else:
            head = resources.head(self._conn, resource_type, resource_id)
            exists, stored_owner = head is not None and not head.deleted, head.owner if head is not None else None
        return exists and (stored_owner is None or (owner is not None and stored_owner.upper() == owner.upper()))
