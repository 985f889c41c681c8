"""uvicorn's httptools protocol with a cap on a request's head (its line and headers), in bytes and in time.

uvicorn's httptools protocol has neither: a client could send header lines for ever, each one kept, until the memory
ran out, before the app (and its sign-in or authorisation) saw anything of the request; and a connection that sends
nothing after it opened, or a byte of its head now and then, was kept for ever (uvicorn's keep-alive timeout starts
only after an answer), so a few thousand of them took every file descriptor (slowloris). Nor has it a write timeout:
a client that asked for a large answer and read none of it kept the answer in memory, with its connection, for ever.

Every server of the adapter uses this protocol: the producer (`tls.PeerCertProtocol` with mTLS, this one on a socket
or plain HTTP), the staff page and the metrics listener.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("adapter.gateway")
MAX_HEAD_BYTES = 64 * 1024  # RIVTA, FHIR and browser requests need a few kB at most
HEAD_SECONDS = 30.0  # from the connection or a head's first byte to its end; as uvicorn's keep-alive timeout
WRITE_STALL_SECONDS = 30.0  # a client that takes nothing of its answer for this long is dropped


class HeadCappedProtocol(HttpToolsProtocol):
    _in_head = True  # between requests, or in a request's line and headers
    _head_bytes = 0  # of the head being received, counted while no head or message ends
    _ends = 0  # heads and messages that ended on the connection
    _head_since: float | None = None  # the loop's time when the head in hand began (or the connection opened)
    _head_timer: asyncio.TimerHandle | None = None  # one per connection, re-armed: no timer per request
    _stall_timer: asyncio.TimerHandle | None = None  # while the transport's buffer is full (writing paused)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_since = self.loop.time()
        self._head_timer = self.loop.call_later(HEAD_SECONDS, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._stall_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._stall_timer = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(WRITE_STALL_SECONDS, self._write_stalled)

    def resume_writing(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        super().resume_writing()

    def _write_stalled(self) -> None:
        self._stall_timer = None
        if not self.transport.is_closing():
            log.info("connection closed: the client took nothing of its answer for %g s", WRITE_STALL_SECONDS)
            self.transport.abort()

    def _check_head(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        since = self._head_since
        if since is not None and self.loop.time() - since >= HEAD_SECONDS:
            log.info("connection closed: no complete request line and headers within %g s", HEAD_SECONDS)
            self.transport.abort()
            return
        wait = HEAD_SECONDS if since is None else since + HEAD_SECONDS - self.loop.time()
        self._head_timer = self.loop.call_later(wait, self._check_head)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_since is None:
            self._head_since = self.loop.time()
        ends = self._ends
        super().data_received(data)
        if ends != self._ends:  # a head or a message ended within these bytes (and the next head may have begun)
            self._head_bytes = 0
        elif self._in_head and not self.transport.is_closing():  # all of these bytes belong to one head
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                log.warning("request refused, connection closed: its line and headers exceed %d bytes",
                            MAX_HEAD_BYTES)
                self.transport.abort()  # close() would read (and decrypt) on until the TLS shutdown times out

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._ends += 1
        self._head_since = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._ends += 1
        super().on_message_complete()
