"""Reading FHIR R4 JSON from files: Bundles, single resources, NDJSON, whole folders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from adapter.sources.bundles import BUNDLE_TYPES, entries


@dataclass(frozen=True)
class Item:
    """One resource (or one delete, or one unreadable piece) and where it came from."""

    origin: str  # file, plus entry index or line number
    raw: dict | None = None
    full_url: str | None = None
    method: str | None = None  # Bundle.entry.request.method (POST, PUT, DELETE), None outside a request Bundle
    url: str | None = None  # Bundle.entry.request.url
    if_match: str | None = None
    if_none_exist: str | None = None
    error: str | None = None
    expression: str = ""  # FHIRPath of the entry in its Bundle ("Bundle.entry[3]"), "" for a lone resource


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
        yield Item(origin=origin, error=f"Bundle.type must be one of {', '.join(sorted(BUNDLE_TYPES))}",
                   expression="Bundle.type")
        return
    for item in entries(bundle, origin):
        if item.raw is not None and item.raw.get("resourceType") == "Bundle":
            yield from _bundle(item.origin, item.raw)  # e.g. a document inside a collection
        else:
            yield item
