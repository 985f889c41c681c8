"""Reading FHIR R4 JSON from files: Bundles, single resources, NDJSON, whole folders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

BUNDLE_TYPES = {"collection", "transaction", "batch", "searchset", "transaction-response", "batch-response"}


@dataclass(frozen=True)
class Item:
    """One resource (or one delete, or one unreadable piece) and where it came from."""

    origin: str  # file, plus entry index or line number
    raw: dict | None = None
    full_url: str | None = None
    delete_ref: str | None = None  # "Type/id" for a DELETE entry
    error: str | None = None


def expand(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.suffix in (".json", ".ndjson") and f.is_file()))
        else:
            files.append(p)
    return files


def read(files: Iterable[Path]) -> Iterator[Item]:
    for f in files:
        yield from _read_file(f)


def _read_file(path: Path) -> Iterator[Item]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield Item(origin=str(path), error=f"cannot read file ({exc.strerror})")
        return
    if path.suffix == ".ndjson":
        for n, line in enumerate(data.splitlines(), start=1):
            if line.strip():
                yield from _parsed(f"{path}:line {n}", line)
        return
    yield from _parsed(str(path), data)


def _parsed(origin: str, data: bytes) -> Iterator[Item]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        yield Item(origin=origin, error=f"not valid JSON (at character {exc.pos})")
        return
    if not isinstance(obj, dict) or "resourceType" not in obj:
        yield Item(origin=origin, error="not a FHIR resource (no resourceType)")
        return
    if obj["resourceType"] == "Bundle":
        yield from _bundle(origin, obj)
    else:
        yield Item(origin=origin, raw=obj)


def _bundle(origin: str, bundle: dict) -> Iterator[Item]:
    if bundle.get("type") not in BUNDLE_TYPES:
        yield Item(origin=origin, error="Bundle.type must be collection, transaction, batch or searchset")
        return
    for i, entry in enumerate(bundle.get("entry") or []):
        where = f"{origin}#entry[{i}]"
        if not isinstance(entry, dict):
            yield Item(origin=where, error="Bundle.entry is not an object")
            continue
        request = entry.get("request") or {}
        if isinstance(request, dict) and request.get("method") == "DELETE":
            url = str(request.get("url", "")).split("?")[0].strip("/")
            if url.count("/") != 1:
                yield Item(origin=where, error="Bundle.entry.request.url must be Type/id for a DELETE")
            else:
                yield Item(origin=where, delete_ref=url)
            continue
        resource = entry.get("resource")
        if not isinstance(resource, dict) or "resourceType" not in resource:
            yield Item(origin=where, error="Bundle.entry.resource missing or without resourceType")
            continue
        if resource["resourceType"] == "Bundle":
            yield from _bundle(where, resource)
            continue
        yield Item(origin=where, raw=resource, full_url=entry.get("fullUrl"))
