"""FHIR answers: OperationOutcome for errors, and the JSON response every interaction returns."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Any

import orjson
from fastapi import Response

from adapter.intake.results import IntakeError, Result

FHIR_JSON = "application/fhir+json; charset=utf-8"
ENTRY_ELEMENTS = ("fullUrl", "request")
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict",
            410: "Gone", 412: "Precondition Failed", 413: "Payload Too Large", 415: "Unsupported Media Type",
            422: "Unprocessable Entity", 500: "Internal Server Error", 503: "Service Unavailable"}


def status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, '')}".strip()


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": issues}


def issue(code: str, diagnostics: str, expression: str | None = None, severity: str = "error") -> dict[str, Any]:
    found: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        found["expression"] = [expression]
    return found


def entry_issue(exc: IntakeError, where: str, resource_type: str | None) -> dict[str, Any]:
    """The issue for a refused entry; `where` is the entry's FHIRPath ("Bundle.entry[3]", or "" for a single
    resource), so the expression names the entry and the element."""
    if where:
        base = f"{where}.resource" if exc.expression or resource_type else where
        prefix = f"{where}: "
    else:
        base, prefix = resource_type or "", ""
    expression = exc.expression
    if expression and where and expression.startswith(ENTRY_ELEMENTS):  # about the entry, not its resource
        expression = f"{where}.{expression}"
    elif expression and base:
        expression = f"{base}.{expression}" if not expression.startswith(base) else expression
    elif not expression:
        expression = where or None
    return issue(exc.code, prefix + exc.diagnostics, expression)


def respond(status: int, body: dict[str, Any] | str | None = None, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    content = body.encode() if isinstance(body, str) else orjson.dumps(body)
    return Response(content, status_code=status, media_type=FHIR_JSON, headers=headers)


def error(status: int, code: str, diagnostics: str, expression: str | None = None) -> Response:
    return respond(status, operation_outcome([issue(code, diagnostics, expression)]))


def result_headers(result: Result, base: str) -> dict[str, str]:
    headers = {}
    if result.etag:
        headers["ETag"] = result.etag
    if result.location:
        headers["Location"] = f"{base}/{result.location}"
        headers["Content-Location"] = headers["Location"]
    if result.last_modified:
        headers["Last-Modified"] = format_datetime(result.last_modified, usegmt=True)
    return headers
