"""The FHIR R4 REST endpoint at `/fhir`, on the producer's server behind the same mTLS gateway.

Interactions: capabilities (`GET /fhir/metadata`), transaction and batch (`POST /fhir`), create (`POST
/fhir/{type}`, conditional with If-None-Exist), update (`PUT /fhir/{type}/{id}`, conditional as
`PUT /fhir/{type}?identifier=system|value`), delete (by id or conditional), read and search by identifier or _id.
Every write goes through the intake unit of work (adapter/intake) in one database transaction, so it is in the
next SOAP answer once its 2xx is sent, and its engagement changes are in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from starlette.requests import ClientDisconnect

from adapter import logs, metrics
from adapter.config import Settings
from adapter.fhir.capability import capability_statement
from adapter.fhir.outcome import (
    entry_issue,
    error,
    operation_outcome,
    respond,
    result_headers,
    status_line,
)
from adapter.gateway import identity
from adapter.gateway.body import BodyTooLarge, read_capped
from adapter.gateway.verify import CertificateRefused
from adapter.intake.results import Result, shown_ref, shown_type
from adapter.intake.unit import ACCEPTED_TYPES, SEARCH_PARAMS, Intake, matching
from adapter.intake.writer import Writer
from adapter.rivta import soap
from adapter.sources.bundles import entries
from adapter.sources.files import Item
from adapter.store import resources

log = logging.getLogger("adapter.fhir")
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
BATCH_CHUNK = 100  # batch entries per database transaction


class _Refused(Exception):
    def __init__(self, results: list[Result]) -> None:
        self.results = results


def router(engine: Engine, settings: Settings, access: Any) -> APIRouter:
    api = APIRouter(prefix="/fhir", include_in_schema=False)

    def base_of(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/fhir"

    def writer_of(request: Request) -> Writer | Response:
        if access.source is identity.CertSource.NONE:  # development: plain HTTP on loopback or a Unix socket
            return Writer(None, None)
        try:
            hsa_id = identity.caller_hsa_id(request, access.source, access.verifier)
        except CertificateRefused:
            log.warning("FHIR refused: the forwarded certificate is not accepted")
            return error(403, "security", "the caller's certificate is not accepted")
        if hsa_id is None:
            return error(403, "security", "the caller's certificate carries no HSA-id")
        logs.bind(consumer=hsa_id)
        systems, care_givers = access.authorisations.writes_for(hsa_id)
        if not systems:
            log.warning("FHIR refused: %s is not a writer", hsa_id)
            return error(403, "forbidden", f"{hsa_id} is not authorised to write to this endpoint")
        return Writer(hsa_id, systems, care_givers)

    async def body_of(request: Request) -> dict | Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media and media not in JSON_TYPES:
            return error(415, "not-supported", "send application/fhir+json")
        try:
            data = await read_capped(request, settings.max_fhir_request_bytes, settings.max_fhir_request_seconds)
        except BodyTooLarge:
            return error(413, "too-costly", f"request larger than {settings.max_fhir_request_bytes} bytes")
        except TimeoutError:
            return error(408, "timeout", f"request body not received within {settings.max_fhir_request_seconds:g} s")
        except ClientDisconnect:  # the writer's doing: no traceback at error level (nobody reads this answer)
            log.info("FHIR: the writer hung up before its request was complete")
            return error(400, "incomplete", "the request body ended early")
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return error(400, "structure", f"not valid JSON (at character {exc.pos})")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
            return error(400, "structure", "not a FHIR resource (no resourceType)")
        return parsed

    def apply(items: list[Item], writer: Writer, atomic: bool, base: str) -> list[Result]:
        """A transaction in one database transaction; a batch in chunks, each its own transaction, so that one
        large batch does not keep every other writer waiting."""
        with engine.connect() as conn:
            intake = Intake(conn, writer, default_source_system=settings.source_system_hsaid, local_base=base)
            chunks = [items] if atomic else [items[i:i + BATCH_CHUNK] for i in range(0, len(items), BATCH_CHUNK)]
            results: list[Result] = []
            for chunk in chunks:
                for attempt in range(3):
                    try:
                        with intake.transaction():
                            done = intake.run(chunk, atomic=atomic)
                            if atomic and any(r.error is not None for r in done):
                                raise _Refused(done)
                            intake.finish()
                        break
                    except _Refused as refused:
                        return refused.results
                    except (IntegrityError, OperationalError):  # a concurrent writer won a race: again
                        if attempt == 2:
                            raise
                results += done
            return results

    async def take(request: Request, writer: Writer, items: list[Item], interaction: str, atomic: bool,
                   answer: Callable[[list[Result], Writer], Response]) -> Response:
        timer = metrics.Timer()
        response = await _take(request, writer, items, interaction, atomic, answer)
        metrics.FHIR_REQUESTS.labels(interaction, str(response.status_code)).inc()
        metrics.FHIR_SECONDS.labels(interaction).observe(timer.seconds)
        return response

    async def _take(request: Request, writer: Writer, items: list[Item], interaction: str, atomic: bool,
                    answer: Callable[[list[Result], Writer], Response]) -> Response:
        try:
            results = await asyncio.to_thread(apply, items, writer, atomic, base_of(request))
        except SQLAlchemyError as exc:
            log_id = soap.new_log_id()
            logs.bind(log_id=log_id)
            log.error("FHIR %s by %s: store unavailable (%s), log id %s", interaction, writer.shown,
                      type(exc).__name__, log_id)
            return error(503, "transient", f"the store is unavailable (log id {log_id})")
        except Exception as exc:  # never a stack trace to the caller; details only at debug level
            log_id = soap.new_log_id()
            logs.bind(log_id=log_id)
            log.error("FHIR %s by %s: internal error %s (%s)", interaction, writer.shown, log_id, type(exc).__name__)
            log.debug("internal error detail %s", log_id, exc_info=True)
            return error(500, "exception", f"internal error (log id {log_id})")
        metrics.count_intake("fhir", interaction, results)
        shown = [f"{shown_ref(r.resource_type, r.resource_id)} {r.status}" for r in results[:20]]
        more = f" and {len(results) - 20} more" if len(results) > 20 else ""
        log.info("FHIR %s by %s: %s%s", interaction, writer.shown, ", ".join(shown), more)
        return answer(results, writer)

    def single(request: Request, expression_type: str | None) -> Callable[[list[Result], Writer], Response]:
        def answer(results: list[Result], _writer: Writer) -> Response:
            result = results[0]
            if result.error is not None:
                return respond(result.error.status,
                               operation_outcome([entry_issue(result.error, "", expression_type)]))
            if result.status == 204:
                return respond(204, headers=result_headers(result, base_of(request)))
            return represented(request, result)
        return answer

    def represented(request: Request, result: Result) -> Response:
        headers = result_headers(result, base_of(request))
        prefer = _prefer(request)
        if prefer == "minimal" or result.body is None:
            return respond(result.status, None, headers)
        if prefer == "OperationOutcome":
            return respond(result.status, operation_outcome([{
                "severity": "information", "code": "informational",
                "diagnostics": f"{shown_ref(result.resource_type, result.resource_id)} {result.outcome}"}]), headers)
        return respond(result.status, result.body, headers)

    @api.get("/metadata")
    async def metadata(request: Request) -> Response:
        if (refused := _unacceptable(request)) is not None:
            return refused
        return respond(200, capability_statement(base_of(request)))

    @api.post("")
    @api.post("/")
    async def bundle(request: Request) -> Response:
        if (refused := _unacceptable(request)) is not None:
            return refused
        writer = writer_of(request)  # refused before its body is read (up to 32 MiB)
        if isinstance(writer, Response):
            return writer
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        kind = body.get("type")
        if body["resourceType"] != "Bundle" or kind not in ("transaction", "batch"):
            return error(400, "invalid", "POST to the base takes a Bundle of type transaction or batch",
                         "Bundle.type" if body["resourceType"] == "Bundle" else None)
        items = list(entries(body))
        atomic = kind == "transaction"
        if atomic and len(items) > settings.max_fhir_transaction_entries:
            return error(413, "too-costly", f"a transaction of {len(items)} entries is more than this endpoint takes "
                         f"at once ({settings.max_fhir_transaction_entries}): split it, or send a batch")

        def answer(results: list[Result], _writer: Writer) -> Response:
            if atomic and (failed := next((r for r in results if r.error is not None), None)) is not None:
                where = items[results.index(failed)].expression
                return respond(failed.error.status,
                               operation_outcome([entry_issue(failed.error, where, failed.resource_type)]))
            base = base_of(request)
            out = []
            for item, result in zip(items, results, strict=True):
                response: dict[str, Any] = {"status": status_line(result.status)}
                if result.location:
                    response["location"] = result.location
                if result.etag:
                    response["etag"] = result.etag
                if result.last_modified:
                    response["lastModified"] = result.last_modified.isoformat().replace("+00:00", "Z")
                if result.error is not None:
                    response["outcome"] = operation_outcome([entry_issue(result.error, item.expression,
                                                                         result.resource_type)])
                entry: dict[str, Any] = {"response": response}
                if result.resource_type and result.resource_id and result.status < 300:
                    entry["fullUrl"] = f"{base}/{result.resource_type}/{result.resource_id}"
                    if _prefer(request, "minimal") == "representation" and result.body:
                        entry["resource"] = orjson.loads(result.body)
                out.append(entry)
            return respond(200, {"resourceType": "Bundle", "type": f"{kind}-response", "entry": out})

        return await take(request, writer, items, kind, atomic, answer)

    @api.get("/{rtype}")
    async def search(request: Request, rtype: str) -> Response:
        if (refused := _unacceptable(request) or _unsupported(rtype)) is not None:
            return refused
        writer = writer_of(request)
        if isinstance(writer, Response):
            return writer
        given = parse_qsl(request.url.query)
        params = [(k, v) for k, v in given if k in SEARCH_PARAMS]
        strict = "handling=strict" in request.headers.get("prefer", "").replace(" ", "").lower()
        ignored = sorted({k for k, _ in given} - set(SEARCH_PARAMS) - {"_format"})
        if not params or (strict and ignored):
            # Unknown parameters are ignored as FHIR asks (unless Prefer: handling=strict), but a search must name
            # what it looks for: it never lists everything.
            return error(400, "not-supported", "search by identifier (system|value) or _id; nothing else is "
                                               "supported here")

        def found() -> list[resources.Stored]:
            with engine.connect() as conn:
                return matching(conn, rtype, params, writer)

        matches = await asyncio.to_thread(found)
        base = base_of(request)
        return respond(200, {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": [
            {"fullUrl": f"{base}/{s.key}", "resource": orjson.loads(s.body), "search": {"mode": "match"}}
            for s in matches]})

    @api.get("/{rtype}/{rid}")
    async def read(request: Request, rtype: str, rid: str) -> Response:
        return await read_version(request, rtype, rid, None)

    @api.get("/{rtype}/{rid}/_history/{vid}")
    async def read_version(request: Request, rtype: str, rid: str, vid: str | None) -> Response:
        if (refused := _unacceptable(request) or _unsupported(rtype)) is not None:
            return refused
        writer = writer_of(request)
        if isinstance(writer, Response):
            return writer

        def load() -> resources.Stored | None:
            with engine.connect() as conn:
                return resources.get(conn, rtype, rid)

        stored = await asyncio.to_thread(load)
        if stored is None or not writer.may(stored.owner):
            return error(404, "not-found", f"{shown_ref(rtype, rid)} is not known here")
        if vid is not None and vid != str(stored.version_id):
            return error(404, "not-found", "only the current version of a resource is kept")
        result = Result(200, "read", rtype, rid, stored.version_id, stored.last_updated, stored.body)
        if stored.deleted:
            return respond(410, operation_outcome([{"severity": "error", "code": "deleted",
                                                    "diagnostics": f"{shown_ref(rtype, rid)} was deleted"}]),
                           result_headers(result, base_of(request)))
        return respond(200, stored.body, result_headers(result, base_of(request)))

    @api.post("/{rtype}")
    async def create(request: Request, rtype: str) -> Response:
        return await write(request, rtype, "POST", rtype, if_none_exist=request.headers.get("if-none-exist"))

    @api.put("/{rtype}")
    async def update_conditional(request: Request, rtype: str) -> Response:
        query = request.url.query
        if not query:
            return error(400, "invalid", "PUT needs Type/id or Type?identifier=system|value")
        return await write(request, rtype, "PUT", f"{rtype}?{query}")

    @api.put("/{rtype}/{rid}")
    async def update(request: Request, rtype: str, rid: str) -> Response:
        return await write(request, rtype, "PUT", f"{rtype}/{rid}")

    async def write(request: Request, rtype: str, method: str, url: str, if_none_exist: str | None = None
                    ) -> Response:
        if (refused := _unacceptable(request) or _unsupported(rtype)) is not None:
            return refused
        writer = writer_of(request)  # refused before its body is read (up to 32 MiB)
        if isinstance(writer, Response):
            return writer
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        item = Item(origin="request", raw=body, method=method, url=url, if_match=request.headers.get("if-match"),
                    if_none_exist=if_none_exist)
        interaction = "create" if method == "POST" else "update"
        return await take(request, writer, [item], interaction, True, single(request, rtype))

    @api.delete("/{rtype}")
    async def delete_conditional(request: Request, rtype: str) -> Response:
        if not request.url.query:
            return error(400, "invalid", "DELETE needs Type/id or Type?identifier=system|value")
        return await remove(request, rtype, f"{rtype}?{request.url.query}")

    @api.delete("/{rtype}/{rid}")
    async def delete(request: Request, rtype: str, rid: str) -> Response:
        return await remove(request, rtype, f"{rtype}/{rid}")

    async def remove(request: Request, rtype: str, url: str) -> Response:
        if (refused := _unsupported(rtype)) is not None:
            return refused
        writer = writer_of(request)
        if isinstance(writer, Response):
            return writer
        item = Item(origin="request", method="DELETE", url=url, if_match=request.headers.get("if-match"))
        return await take(request, writer, [item], "delete", True, single(request, rtype))

    return api


def _unsupported(rtype: str) -> Response | None:
    if rtype in ACCEPTED_TYPES:
        return None
    return error(404, "not-supported", f"{shown_type(rtype)} is not a resource type this endpoint takes "
                                       "(see /fhir/metadata)")


def _unacceptable(request: Request) -> Response | None:
    """JSON only: an Accept or _format asking for XML alone is answered 406."""
    wanted = (request.query_params.get("_format") or request.headers.get("accept") or "").lower()
    if not wanted or "json" in wanted or "*/*" in wanted or "application/*" in wanted:
        return None
    return error(406, "not-supported", "this endpoint speaks application/fhir+json only")


def _prefer(request: Request, default: str = "representation") -> str:
    for part in request.headers.get("prefer", "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "return":
            return value.strip().strip('"')
    return default
