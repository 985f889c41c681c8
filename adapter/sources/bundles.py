"""A Bundle's entries as items to take in, for every Bundle type a FHIR system sends.

transaction and batch entries carry their request (method, url, ifMatch, ifNoneExist); a history Bundle's
DELETE entries withdraw; document, collection and searchset entries are resources as they stand (a document's
Composition becomes a note like any other).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapter.sources.files import Item

BUNDLE_TYPES = frozenset({"collection", "document", "transaction", "batch", "history", "searchset",
                          "transaction-response", "batch-response"})
REQUEST_TYPES = frozenset({"transaction", "batch", "history"})
METHODS = frozenset({"POST", "PUT", "DELETE"})


def entries(bundle: dict, origin: str = "Bundle") -> Iterator[Item]:
    from adapter.sources.files import Item

    with_requests = bundle.get("type") in REQUEST_TYPES
    listed = bundle.get("entry") or []
    if not isinstance(listed, list):
        yield Item(origin=origin, error="Bundle.entry is not a list", expression="Bundle.entry")
        return
    for i, entry in enumerate(listed):
        where, expression = f"{origin}#entry[{i}]", f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            yield Item(origin=where, error="not an object", expression=expression)
            continue
        request = entry.get("request") if with_requests else None
        if request is not None and not isinstance(request, dict):
            yield Item(origin=where, error="request is not an object", expression=f"{expression}.request")
            continue
        method = str(request.get("method") or "").upper() if request else None
        if method is not None and method not in METHODS:
            yield Item(origin=where, error="request.method must be POST, PUT or DELETE (GET, HEAD and PATCH are "
                       "not supported here)", expression=f"{expression}.request.method")
            continue
        odd = [k for k in ("url", "ifMatch", "ifNoneExist", "ifNoneMatch", "ifModifiedSince")
               if request and k in request and not isinstance(request[k], str)]
        if odd:
            yield Item(origin=where, error=f"request.{odd[0]} must be a string", expression=f"{expression}.request")
            continue
        url = str(request.get("url") or "").strip().strip("/") if request else None
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        common = {"origin": where, "full_url": full_url, "method": method, "url": url, "expression": expression,
                  "if_match": _text(request, "ifMatch"), "if_none_exist": _text(request, "ifNoneExist")}
        if method == "DELETE":
            if not url:
                yield Item(error="request.url is needed for a DELETE", **{**common, "expression":
                                                                               f"{expression}.request.url"})
            else:
                yield Item(**common)
            continue
        resource = entry.get("resource")
        if not isinstance(resource, dict) or "resourceType" not in resource:
            yield Item(error="resource missing or without resourceType", **{**common, "expression":
                                                                            f"{expression}.resource"})
            continue
        if method and not url:
            yield Item(error="request.url is needed", **{**common, "expression": f"{expression}.request.url"})
            continue
        yield Item(raw=resource, **common)


def _text(request: dict | None, key: str) -> str | None:
    value = request.get(key) if request else None
    return value if isinstance(value, str) and value else None
