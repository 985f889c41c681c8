"""Reading a request body with a size cap (the caller adds the slow-body deadline)."""

from __future__ import annotations

import asyncio

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


async def read_capped(request: Request, limit: int, seconds: float | None = None) -> bytes:
    """The body, at most `limit` bytes (BodyTooLarge) and, with `seconds`, within that time (TimeoutError: a caller
    that trickles its body, slowloris, is cut off; uvicorn bounds only idle keep-alive time). No timer is armed for a
    body the server already holds whole (`body_in_hand`: the usual small request). ClientDisconnect when the caller
    goes."""
    if seconds is None or body_in_hand(request):
        return await _read(request, limit)
    async with asyncio.timeout(seconds):
        return await _read(request, limit)


async def _read(request: Request, limit: int) -> bytes:
    """Read from the ASGI channel as `Request.stream` does (its first reader), without the async generator of
    `stream`, whose set-up and hooks cost more than the read itself on the producer's hot path."""
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
