"""What every stand-in shares: a SOAP endpoint per interaction (hardened parsing, the project's schema, faults
without personal data), its WSDL at `?wsdl`, a record of recent exchanges, and a switch to misbehave.

Misbehaviour, set by constructor arguments or `POST /_stub/mode {"mode": ..., "delay": seconds}`:
  ok     answer normally (after `delay`, when set)
  slow   answer normally after `delay` seconds (DEFAULT_SLOW_DELAY when none is given)
  fault  a SOAP fault (HTTP 500)
  down   HTTP 503 with a plain-text body
  close  drop the connection: the status line goes out, the promised body never does
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from fastapi import FastAPI, Request, Response
from lxml import etree
from pydantic import BaseModel, Field

from adapter.consumer.pdl.services import NationalService, compile_schema
from adapter.gateway import body
from adapter.mapping.timefmt import SWEDEN
from adapter.rivta import soap
from adapter.rivta.contracts import SOAP_NS
from adapter.rivta.wsdl import ContractDocuments
from adapter.rivta.wsdl import describe as describe_documents

log = logging.getLogger("adapter.stubs")

MAX_REQUEST_BYTES = 4_000_000  # a StoreLog call of 500 full records fits
MAX_XML_DEPTH = 64
DEFAULT_SLOW_DELAY = 30.0
RECORDED_EXCHANGES = 100

# (request body element, logical address) -> answer element
Handler = Callable[[etree._Element, str], etree._Element]


class Mode(StrEnum):
    OK = "ok"
    SLOW = "slow"
    FAULT = "fault"
    DOWN = "down"
    CLOSE = "close"


@dataclass
class Behaviour:
    mode: Mode = Mode.OK
    delay: float = 0.0

    def pause(self) -> float:
        if self.mode is Mode.SLOW and not self.delay:
            return DEFAULT_SLOW_DELAY
        return self.delay


@dataclass(frozen=True)
class Exchange:
    service: str
    request: bytes  # the request's body element
    answer: bytes  # the answer's body element


@dataclass
class Exchanges:
    """The most recent request/answer pairs, for tests and for looking at what a consumer sent."""

    items: deque[Exchange] = field(default_factory=lambda: deque(maxlen=RECORDED_EXCHANGES))

    def last(self, service: NationalService) -> Exchange:
        for item in reversed(self.items):
            if item.service == service.name:
                return item
        raise LookupError(f"no {service.name} exchange recorded")


class ModeChange(BaseModel):
    mode: Mode = Mode.OK
    delay: float = Field(0.0, ge=0, le=3600)


def create_soap_app(title: str, handlers: dict[NationalService, Handler], *, mode: Mode | str = Mode.OK,
                    delay: float = 0.0) -> FastAPI:
    """A FastAPI app serving the given interactions at their platform paths, plus /_stub/mode."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.behaviour = Behaviour(Mode(mode), delay)
    app.state.exchanges = Exchanges()
    for service, handler in handlers.items():
        _add_service(app, service, handler)

    @app.get("/_stub/mode")
    def current_mode() -> ModeChange:
        b: Behaviour = app.state.behaviour
        return ModeChange(mode=b.mode, delay=b.delay)

    @app.post("/_stub/mode")
    def change_mode(change: ModeChange) -> ModeChange:
        app.state.behaviour = Behaviour(change.mode, change.delay)
        log.info("%s: mode %s, delay %.1f s", title, change.mode.value, change.delay)
        return change

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "services": [f"{s.name} {s.version}" for s in handlers]}

    return app


def _add_service(app: FastAPI, service: NationalService, handler: Handler) -> None:
    s = compile_schema(service)
    docs = ContractDocuments(service)  # type: ignore[arg-type]  # needs only .wsdl

    async def describe(request: Request) -> Response:
        return describe_documents(docs, request)

    async def answer(request: Request) -> Response:
        data = await read_capped(request, MAX_REQUEST_BYTES)
        behaviour: Behaviour = app.state.behaviour
        if behaviour.pause() > 0 and not await pause(request, behaviour.pause()):
            return Response(status_code=499)  # the caller gave up; nobody reads this
        if behaviour.mode is Mode.DOWN:
            return Response("service unavailable (stand-in switched down)", status_code=503, media_type="text/plain")
        if behaviour.mode is Mode.FAULT:
            return _fault("service temporarily unavailable (stand-in in fault mode)", client=False)
        if behaviour.mode is Mode.CLOSE:
            return DroppedConnection()
        if data is None:
            return _fault(f"invalid request: larger than {MAX_REQUEST_BYTES} bytes", status=413)
        try:
            req = soap.read_request(data, max_bytes=MAX_REQUEST_BYTES, max_depth=MAX_XML_DEPTH)
        except soap.SoapError as exc:
            return _fault(f"invalid request: {exc}")
        if req.body.tag != service.request_tag:
            return _fault(f"invalid request: expected {service.name} in namespace {service.responder_ns}")
        if not req.logical_address:
            return _fault("invalid request: LogicalAddress header missing")
        if not s.validate(req.body):
            return _fault(f"invalid request: does not follow the {service.name} schema (at {_error_path(s)})")
        try:
            result = handler(req.body, req.logical_address)
        except Exception as exc:  # a stand-in bug must still answer without personal data
            log.debug("%s handler failed", service.name, exc_info=True)
            return _fault(f"internal error ({type(exc).__name__})", client=False)
        if not s.validate(result):
            return _fault(f"internal error: the stand-in's answer breaks the schema at {_error_path(s)}",
                          client=False)
        app.state.exchanges.items.append(
            Exchange(service.name, etree.tostring(req.body), etree.tostring(result)))
        return Response(_envelope(result), media_type=soap.CONTENT_TYPE)

    app.add_api_route(service.url_path, describe, methods=["GET"], include_in_schema=False)
    app.add_api_route(service.url_path, answer, methods=["POST"], include_in_schema=False)


class DroppedConnection(Response):
    """Starts a response and ends without its body: an ASGI server must then drop the connection."""

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", soap.CONTENT_TYPE.encode()), (b"content-length", b"4096")]})


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit` bytes (read no further)."""
    try:
        return await body.read_capped(request, limit)
    except body.BodyTooLarge:
        return None


async def pause(request: Request, seconds: float) -> bool:
    """Wait, but stop early (False) when the caller hangs up: a slow answer nobody waits for should not
    keep the server from shutting down."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(0.05, left))
        if await request.is_disconnected():
            return False
    return True


def _envelope(answer: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(answer)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _fault(message: str, *, client: bool = True, status: int = 500) -> Response:
    log_id = soap.new_log_id()
    log.warning("SOAP fault %s: %s", log_id, message)
    return Response(soap.fault(f"{message} (log id {log_id})", client=client), status_code=status,
                    media_type=soap.CONTENT_TYPE)


def _error_path(s: etree.XMLSchema) -> str:
    err = s.error_log.last_error
    return err.path if err is not None and err.path else "?"


def find_text(el: etree._Element, *steps: str) -> str | None:
    """Text of the descendant reached by the given Clark-notation steps, stripped; None when absent."""
    found = el.find("/".join(steps))
    return found.text.strip() if found is not None and found.text is not None else None


def parse_datetime(text: str) -> datetime:
    """An xs:dateTime; without an offset it is Swedish local time. ValueError when unreadable."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=SWEDEN)


def utc_now() -> datetime:
    return datetime.now(UTC)
