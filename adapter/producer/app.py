"""The producer: serves every registered contract from the store over SOAP 1.1 (RIVTA BP 2.1).

Answering is a filtered query plus joining pre-rendered record fragments; all FHIR work happened
at ingest. Every failure answers with a SOAP fault carrying a log id (UUID) and no personal data;
the same log id is in the server log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect

from adapter import correlation, logs, metrics
from adapter.config import Settings
from adapter.fhir import endpoint as fhir_endpoint
from adapter.gateway import identity
from adapter.gateway.authorisation import Authorisations
from adapter.gateway.body import BodyTooLarge, read_capped
from adapter.gateway.verify import CertificateRefused, ReloadableVerifier
from adapter.health import Readiness, StoreProbe
from adapter.ops import health_endpoints
from adapter.privacy import may_hold_personnummer
from adapter.producer.paging import INVALID as INVALID_REFERENCE
from adapter.producer.paging import Pager, Position
from adapter.producer.requests import Refusal, has_more_reference, to_query
from adapter.rivta import soap, wsdl
from adapter.rivta.contracts import CONTRACTS, Contract
from adapter.store.reader import RecordReader, StoreUnavailable

log = logging.getLogger("adapter.producer")
ORIGINAL_CONSUMER_HEADER = "x-rivta-original-serviceconsumer-hsaid"
CORRELATION_HEADER = correlation.HEADER  # set by the platform (NTjP) on every call it routes
STREAM_FROM_BYTES = 1024 * 1024  # answers this large are streamed
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Access:
    """How callers are identified and what they may call. `x-vp-sender-id` and `x-vp-instance-id`
    are never read: the platform strips them on https hops, and a caller could forge them."""

    source: identity.CertSource = identity.CertSource.NONE
    authorisations: Authorisations = field(default_factory=Authorisations)
    verifier: ReloadableVerifier | None = None  # behind the proxy: checks the forwarded certificate

    def __post_init__(self) -> None:
        if self.source is identity.CertSource.PROXY and self.verifier is None:
            raise ValueError("behind the proxy the forwarded certificate must be verified: give a verifier")


_HSA_ID = re.compile(r"^SE[0-9]{10,12}-[A-Za-z0-9._-]{1,31}$")


@functools.lru_cache(maxsize=4096)  # a few callers and logical addresses, shown on every answer
def _shown(value: str | None) -> str:
    """Identifiers from the network are echoed only when they look like HSA-ids: a misused field
    (say, a personnummer as LogicalAddress) must not reach a fault or a log line."""
    return value if value and _HSA_ID.match(value) and not may_hold_personnummer(value) else "(not shown)"


def _correlation(_request: Request) -> str:
    """The call's correlation id (the platform's, or one made for the call: adapter/logs.RequestContext)."""
    return correlation.current() or "-"


def _fault(message: str, *, client: bool = True, status: int = 500) -> Response:
    log_id = soap.new_log_id()
    logs.bind(log_id=log_id)
    log.warning("SOAP fault %s: %s", log_id, message)
    return Response(soap.fault(f"{message} (log id {log_id})", client=client), status_code=status,
                    media_type=soap.CONTENT_TYPE)


def create_app(engine: Engine, settings: Settings, access: Access | None = None,
               readiness: Readiness | None = None) -> FastAPI:
    """The producer. `readiness`: what /health/ready checks (default: the store and, behind the proxy, the
    verifier's CRLs; `serve` passes the embedded server's CRLs too)."""
    access = access or Access()
    app = _ProducerApp(title="NPÖ adapter producer", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    if readiness is None:
        verifier = access.verifier
        readiness = Readiness(StoreProbe(engine), (lambda: metrics.crl_facts(verifier.crls())) if verifier else None)
    app.state.readiness = readiness

    pager = Pager(settings.max_records_per_answer, settings.paging_key)
    reader = RecordReader(engine)
    for contract in CONTRACTS:
        wsdl.request_schema(contract)  # compile at start: a broken contract fails fast
        wsdl.documents(contract)
        app.soap_calls[contract.url_path] = _contract_call(app, contract, reader, settings, access, pager)

    app.include_router(fhir_endpoint.router(engine, settings, access))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "contracts": [f"{c.name} {c.version}" for c in CONTRACTS]}

    # Behind the same gateway as everything on this port (in the embedded mode the handshake needs a client
    # certificate); probes without one use the metrics listener (adapter/ops.py). They name no patient or caller.
    for path, endpoint in health_endpoints(readiness):
        app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)  # type: ignore[arg-type]

    return app


class _ProducerApp(FastAPI):
    """Every request gets its correlation id first (`logs.RequestContext`); a SOAP call (POST to a contract's path)
    then goes straight to its handler, and everything else through the framework's middleware and routes. The
    calls are the hot path: the framework's layers (error and telemetry middleware, body limit, the router's
    matching over every route, per-route wrappers) cost more than parsing the request (bench/producer_throughput.py);
    the handler catches every error itself and caps the body it reads."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.soap_calls: dict[str, Callable[[Request], Awaitable[Response]]] = {}

    def build_middleware_stack(self) -> Any:
        return logs.RequestContext(SoapCalls(super().build_middleware_stack(), self.soap_calls))


class SoapCalls:
    """ASGI: a POST to a path in `calls` goes to its handler, anything else to `app`."""

    def __init__(self, app: Any, calls: dict[str, Callable[[Request], Awaitable[Response]]]) -> None:
        self.app, self.calls = app, calls

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        call = self.calls.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if call is None:
            await self.app(scope, receive, send)
            return
        response = await call(Request(scope, receive))
        await response(scope, receive, send)


def _contract_call(app: FastAPI, contract: Contract, reader: RecordReader, settings: Settings, access: Access,
                pager: Pager) -> Callable[[Request], Awaitable[Response]]:
    """The handler of the contract's SOAP calls (taken by `SoapCalls`); adds its WSDL and XSD route to `app`."""
    docs = wsdl.documents(contract)
    schema = wsdl.request_schema(contract)
    expected = f"{{{contract.responder_ns}}}{contract.name}"
    inline = reader.engine.dialect.name == "sqlite"
    query_seconds = metrics.STORE_QUERY_SECONDS.labels(contract.key)

    async def describe(request: Request) -> Response:
        return wsdl.describe(docs, request)

    async def call(request: Request) -> Response:
        timer = metrics.Timer()
        logs.bind(contract=contract.key)
        try:
            outcome, response = await answer(request)
        except Exception as exc:  # never a stack trace to the caller; details only at debug level
            log_id = soap.new_log_id()
            logs.bind(log_id=log_id)
            log.error("internal error %s (%s)", log_id, type(exc).__name__)
            log.debug("internal error detail %s", log_id, exc_info=True)
            outcome, response = metrics.INTERNAL, Response(soap.fault(f"internal error (log id {log_id})",
                                                                      client=False),
                                                           status_code=500, media_type=soap.CONTENT_TYPE)
        metrics.observe_producer(contract.key, outcome, timer.seconds)
        return response

    async def answer(request: Request) -> tuple[str, Response]:
        """The answer and its outcome for the metrics (adapter/metrics.py: PRODUCER_OUTCOMES)."""
        try:
            data = await read_capped(request, settings.max_request_bytes, settings.max_request_seconds)
        except BodyTooLarge:
            return metrics.SIZE, _fault(f"request larger than {settings.max_request_bytes} bytes", status=413)
        except TimeoutError:
            response = _fault(f"request body not received within {settings.max_request_seconds:g} s", status=408)
            response.headers["connection"] = "close"
            return metrics.TIMEOUT, response
        except ClientDisconnect:  # the caller's doing, not ours: no internal error (which pages the operator)
            log.info("%s: the caller hung up before its request was complete", contract.name)
            return metrics.DISCONNECTED, Response(status_code=400)  # nobody reads it
        try:
            req = soap.read_request(data, max_bytes=settings.max_request_bytes, max_depth=settings.max_xml_depth)
        except soap.SoapError as exc:
            return metrics.SCHEMA, _fault(f"invalid request: {exc}")
        if req.body.tag != expected:
            return metrics.SCHEMA, _fault(f"invalid request: expected {contract.name} in namespace "
                                          f"{contract.responder_ns}")
        if not req.logical_address:
            return metrics.SCHEMA, _fault("invalid request: LogicalAddress header missing")
        consumer = None
        if access.source is not identity.CertSource.NONE:
            try:
                consumer = identity.caller_hsa_id(request, access.source, access.verifier)
            except CertificateRefused as exc:
                log.warning("VP002 %s refused: the forwarded certificate is not accepted: %s", contract.name, exc)
                return metrics.VP002, _fault(f"VP002 the caller's certificate is not accepted: {exc}")
            if consumer is None:
                log.warning("VP002 %s refused: the caller's certificate carries no HSA-id", contract.name)
                return metrics.VP002, _fault("VP002 No sender id (HSA-id in subject serialNumber) found in the "
                                             "certificate")
            logs.bind(consumer=_shown(consumer))
            if not access.authorisations.permits(consumer, contract.responder_ns, req.logical_address):
                shown = _shown(consumer), _shown(req.logical_address)
                log.warning("VP007 %s refused for consumer %s at logical address %s", contract.name, *shown)
                return metrics.VP007, _fault(f"VP007 Authorization missing for serviceConsumerHsaId: {shown[0]}, "
                                             f"serviceContract: {contract.responder_ns}, logicalAddress: {shown[1]}")
        if not schema.validate(req.body):
            err = schema.error_log.last_error
            where = _schema_path(err.path, contract) if err is not None and err.path else "?"
            return metrics.SCHEMA, _fault(f"invalid request: does not follow the {contract.name} schema (at {where})")

        log_id = soap.new_log_id()
        logs.bind(log_id=log_id)
        caller = _shown(consumer) if consumer else "(no certificate: plain HTTP)"
        original = None
        query = to_query(contract, req.body, req.logical_address)
        if not isinstance(query, Refusal):
            original = request.headers.get(ORIGINAL_CONSUMER_HEADER)
            if original and access.source is not identity.CertSource.NONE \
                    and not access.authorisations.is_platform(consumer):
                log.info("%s: %s from %s ignored (not a platform caller)", contract.name, ORIGINAL_CONSUMER_HEADER,
                         _shown(consumer))
                original = None
            hidden = access.authorisations.hidden_care_units(consumer, original)
            if hidden:
                query = dataclasses.replace(query, hidden_care_units=hidden)
        after = None
        if contract.has_more and not isinstance(query, Refusal):
            digest = pager.digest(contract.key, req.logical_address, query)
            reference = has_more_reference(contract, req.body)
            if reference is not None:
                after = pager.position(reference, digest)
                if after is None:
                    query = Refusal(INVALID_REFERENCE)
        if isinstance(query, Refusal):
            log.info("%s INVALID_REQUEST %s for consumer %s at logical address %s (correlation id %s): %s",
                     contract.name, log_id, caller, _shown(req.logical_address), _correlation(request), query.message)
            result = soap.result_element(contract, "ERROR", log_id, query.message, error_code="INVALID_REQUEST")
            return metrics.INVALID_REQUEST, Response(b"".join(soap.response_parts(contract, (), result)),
                                                     media_type=soap.CONTENT_TYPE)
        has_more = None
        try:
            # SQLite is a local file: querying on the event loop beats a worker thread, whose GIL hand-overs
            # cost more than the query (measured in bench/producer_throughput). A networked store keeps the thread.
            queried = metrics.Timer()
            if contract.has_more:
                position = (after.day, after.pk) if after else None
                page = (reader.query_page(query, pager.limit + 1, position) if inline
                        else await asyncio.to_thread(reader.query_page, query, pager.limit + 1, position))
                fragments = [row.fragment for row in page[:pager.limit]]
                if len(page) > pager.limit:
                    last = page[pager.limit - 1]
                    # TKB: hasMore names the producer that has more, i.e. the logical address this call reached
                    has_more = soap.has_more_element(contract, req.logical_address,
                                                     pager.reference(digest, Position(last.day, last.pk)))
            else:
                fragments = reader.query(query) if inline else await asyncio.to_thread(reader.query, query)
            query_seconds.observe(queried.seconds)
        except StoreUnavailable as exc:
            log.error("store unavailable (%s), log id %s", exc, log_id)
            return metrics.STORE_DOWN, _fault("the producer's store is unavailable", client=False, status=500)
        result = soap.result_element(contract, "OK", log_id)
        # Who was told what: enough to trace a disclosure with the platform's logs, without the patient.
        log.info("%s OK %s: %d records%s to consumer %s at logical address %s (original consumer %s, "
                 "correlation id %s)", contract.name, log_id, len(fragments),
                 " (partial: hasMore)" if has_more else "", caller, _shown(req.logical_address),
                 _shown(original) if original else "-", _correlation(request))
        parts = list(soap.response_parts(contract, fragments, result, has_more))
        size = sum(map(len, parts))
        if size < STREAM_FROM_BYTES:
            return metrics.OK, Response(b"".join(parts), media_type=soap.CONTENT_TYPE)
        # A large answer goes out in chunks as the socket takes them, with its exact Content-Length: no joined
        # copy and no whole encrypted copy queued in the TLS transport (peak memory measured in bench/).
        return metrics.OK, StreamingResponse(_chunks(parts), media_type=soap.CONTENT_TYPE,
                                             headers={"content-length": str(size)})

    app.add_route(contract.url_path, describe, methods=["GET"], include_in_schema=False)
    return call


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    batch: list[bytes] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += len(part)
        if size >= CHUNK_BYTES:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


_STEP = re.compile(r"^(?:[^:/\[\]]+:)?([^:/\[\]]+)(\[[0-9]{1,6}\])?$")


def _schema_path(path: str, contract: Contract) -> str:
    """Where a request broke its schema, naming only elements the contract declares ("?" for any other name) and no
    namespace prefix: the caller chose those, and a name or prefix can carry a personnummer."""
    known = wsdl.element_names(contract)
    steps = []
    for step in path.strip("/").split("/"):
        m = _STEP.match(step)
        steps.append(m.group(1) + (m.group(2) or "") if m and m.group(1) in known else "?")
    return "/" + "/".join(steps)
