"""Reading a request body with a size cap (the caller adds the slow-body deadline)."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect


class BodyTooLarge(Exception):
    pass


def body_in_hand(request: Request) -> bool:
    """Whether the server holds the whole body already, so that reading it cannot wait on the caller (and needs no
    deadline). uvicorn's request cycle (httptools and h11 alike) sets `more_body` to False once the message is
    complete, and its `receive` is what the app is given; anything else (another server, a wrapped channel) is
    taken as not known: False. tests/gateway/test_body.py fails if an upgrade of uvicorn changes this."""
    cycle = getattr(request.receive, "__self__", None)
    return getattr(cycle, "more_body", True) is False


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
