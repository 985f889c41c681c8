"""Reading a request body with a size cap (the caller adds the slow-body deadline)."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect


class BodyTooLarge(Exception):
    pass


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, read from the ASGI channel as `Request.stream` does (its first reader), ClientDisconnect when the
    caller goes. Without the async generator of `stream`, whose set-up and hooks cost more than the read itself on
    the producer's hot path."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
