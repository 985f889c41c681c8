"""Errors as clean JSON (`ErrorAnswer`): never the submitted values, a stack trace or personal data.

FastAPI's own validation answer repeats the input; ours names the field and what is wrong with it. Any other
failure becomes a 500 with a log id, logged without its message (an exception text may hold a patient id or
SQL parameters); the traceback goes to the debug level only.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter.gateway.body import BodyTooLarge, read_capped
from adapter.rivta import ids

log = logging.getLogger("adapter.ui")


class ApiError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


def error_body(detail: str, errors: list[dict[str, str]] | None = None) -> dict:
    return {"detail": detail, "errors": errors or []}


async def api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else []
    detail = f"{exc.field}: {exc.detail}" if exc.field else exc.detail
    return JSONResponse(error_body(detail, errors), status_code=exc.status)


async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        if e.get("type") == "json_invalid":
            message = "är inte giltig JSON"
        elif e.get("type") == "model_attributes_type":
            message = "ska vara ett JSON-objekt (Content-Type: application/json)"
        elif e.get("type") == "missing":
            message = "saknas"
        elif e.get("type") == "extra_forbidden":
            message = "är okänt"
        else:
            message = str(e.get("msg", "är inte giltigt")).removeprefix("Value error, ")
        errors.append({"field": field, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "ogiltig begäran"
    return JSONResponse(error_body(detail, errors), status_code=422)


class InternalErrors:
    """Outermost catch: an unexpected failure answers 500 with a log id and is logged without its text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log_id = ids.uuid4()
            log.error("internal error, log id %s (%s)", log_id, type(exc).__name__)
            log.debug("internal error, log id %s", log_id, exc_info=True)
            if started:  # the answer is under way: nothing clean can be sent any more
                return
            body = error_body(f"Internt fel: ingen information visas (logg-id {log_id}).")
            await JSONResponse(body, status_code=500)(scope, receive, send)


class SecurityHeaders:
    """No caching of answers that hold patient data, no framing, no sniffing, no referrer."""

    HEADERS = [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """A request's body is read here first, at most `max_bytes` within `seconds` (413 and 408 otherwise), then handed
    on. The framework reads a body whole, before the route's sign-in check: anyone who reached the page could make
    it hold as many bytes as they sent, or keep a connection by sending a byte now and then."""

    def __init__(self, app: ASGIApp, max_bytes: int = 64 * 1024, seconds: float = 10.0) -> None:
        self.app, self.max_bytes, self.seconds = app, max_bytes, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_capped(Request(scope, receive), self.max_bytes, self.seconds)
        except BodyTooLarge:
            await self._refuse(413, "Begäran är för stor.", scope, receive, send)
            return
        except TimeoutError:
            await self._refuse(408, "Begäran kom inte fram i tid.", scope, receive, send)
            return
        except ClientDisconnect:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(status: int, detail: str, scope: Scope, receive: Receive, send: Send) -> None:
        log.info("request refused (%d): its body was too large or too slow", status)
        response = JSONResponse(error_body(detail), status_code=status, headers={"connection": "close"})
        await response(scope, receive, send)
