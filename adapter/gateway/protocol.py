"""uvicorn's httptools protocol with a cap on a request's head (its line and headers).

uvicorn's httptools protocol has none: a client could send header lines for ever, each one kept, until the memory ran
out, before the app (and its sign-in or authorisation) saw anything of the request. Every server of the adapter uses
this protocol: the producer (`tls.PeerCertProtocol` with mTLS, this one on a socket or plain HTTP), the staff page and
the metrics listener.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("adapter.gateway")
MAX_HEAD_BYTES = 64 * 1024  # RIVTA, FHIR and browser requests need a few kB at most


class HeadCappedProtocol(HttpToolsProtocol):
    _in_head = True  # between requests, or in a request's line and headers
    _head_bytes = 0  # of the head being received, counted while no head or message ends
    _ends = 0  # heads and messages that ended on the connection

    def data_received(self, data: bytes) -> None:
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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._ends += 1
        super().on_message_complete()
