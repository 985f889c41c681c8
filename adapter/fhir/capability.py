"""The CapabilityStatement (`GET /fhir/metadata`): exactly what the endpoint supports."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from adapter.intake.unit import ACCEPTED_TYPES, SEARCH_PARAMS


def _version() -> str:
    try:
        return version("npo-adapter")
    except PackageNotFoundError:  # running from a source tree
        return "0"


def capability_statement(base: str) -> dict[str, Any]:
    resource = [{
        "type": rtype,
        "interaction": [{"code": c} for c in ("read", "create", "update", "delete", "search-type")],
        "versioning": "versioned-update",
        "readHistory": False,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchParam": [{"name": name, "type": "token"} for name in SEARCH_PARAMS],
    } for rtype in sorted(ACCEPTED_TYPES)]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "publisher": "NPÖ adapter",
        "kind": "instance",
        "software": {"name": "npo-adapter", "version": _version()},
        "implementation": {"description": "FHIR intake of the NPÖ adapter: journal data for the national patient "
                                          "overview (NPÖ)", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Writes are mapped to the RIVTA contracts NPÖ reads and are visible in the next SOAP "
                             "answer. Only the current version of a resource is kept.",
            "security": {"description": "Mutual TLS: the caller's function certificate (HSA-id in the subject "
                                        "serialNumber) names the writing system; the authorisations file says "
                                        "for which source systems it may write."},
            "resource": resource,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    }
