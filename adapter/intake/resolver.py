"""The store as reference resolution sees it: stored resources, validated once per unit of work, limited to
one source system's resources and those that belong to none."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.engine import Connection

from adapter.intake.validation import InvalidResource, validate
from adapter.store import resources


class StoreView:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], tuple[str | None, Any | None]] = {}

    def forget(self, resource_type: str, resource_id: str) -> None:
        self._cache.pop((resource_type, resource_id), None)

    def _load(self, resource_type: str, resource_id: str) -> tuple[str | None, Any | None]:
        key = (resource_type, resource_id)
        if key not in self._cache:
            stored = resources.get(self._conn, resource_type, resource_id)
            model = None
            if stored is not None and not stored.deleted:
                try:
                    model = validate(orjson.loads(stored.body))
                except InvalidResource:  # stored by an older version whose validation differed
                    model = None
            self._cache[key] = (stored.owner if stored is not None else None, model)
        return self._cache[key]

    def get(self, resource_type: str, resource_id: str, owner: str | None) -> Any | None:
        stored_owner, model = self._load(resource_type, resource_id)
        if model is None or (stored_owner is not None and (owner is None or stored_owner.upper() != owner.upper())):
            return None
        return model

    def by_identifier(self, resource_types: tuple[str, ...] | None, system: str, value: str,
                      owner: str | None) -> Any | None:
        for rtype, rid in resources.find(self._conn, resource_types, system, value):
            found = self.get(rtype, rid, owner)
            if found is not None:
                return found
        return None

    def provenances_for(self, key: str, owner: str | None) -> list[Any]:
        found = []
        for rtype, rid in sorted(resources.linking(self._conn, resources.TARGETS, [key])):
            prov = self.get(rtype, rid, owner)
            if prov is not None:
                found.append(prov)
        return found
