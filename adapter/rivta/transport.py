"""The RIVTA client's HTTP transport: httpx's interface (an `httpx.AsyncClient`, so callers, timeouts and tests stay
as they are) over aiohttp's connection pool and HTTP/1.1 parser.

Why not httpx's own transport (httpcore): measured with bench/fanout.py (py-spy, 10 producers x 8 contracts, kept
client), httpcore cost 2.2 ms of CPU per call even with a pool per producer: it polls every pooled connection on
each request and each closed response (with one pool for all, 60 % of the consumer's CPU), imports sniffio per
request, and writes head and body as two TLS records. Through aiohttp (C parser, asyncio's TLS transport, a pool
keyed by host) the same overview costs ~40 % less CPU. aiohttp is a well-kept library the project already installs.

What the RIVTA client relies on is kept: mTLS by the caller's SSLContext; `limits` per origin (a producer that hangs
cannot take the connections others need; `max_keepalive_connections` is not used: idle connections are kept up to
`max_connections` for `keepalive_expiry`); httpx's connect and read timeouts; no redirects, cookies or proxies from
the environment; the body as it came (no decompression: the client inflates in bounded steps) in chunks of at most
64 KiB, read only as far as the caller reads; an answer not read to its end closes its connection. aiohttp's errors
reach the caller as httpx's (ConnectError, ReadTimeout, ...), caused by the OS's or TLS library's error
(`client.connection_problem` reads the reasons from it).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx

CHUNK = 64 * 1024
# set by aiohttp itself; the rest of httpx's headers are sent as they are
_AIOHTTP_SETS = {b"host", b"content-length", b"transfer-encoding", b"connection"}


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = httpx.Limits()) -> None:
        self._verify, self._limits = verify, limits
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # made in the event loop that uses it
            keepalive = self._limits.keepalive_expiry
            connector = aiohttp.TCPConnector(ssl=self._verify, limit=0,
                                             limit_per_host=self._limits.max_connections or 0,
                                             keepalive_timeout=keepalive if keepalive is not None else 5.0)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                                                  skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(connect=timeouts.get("pool"), sock_connect=timeouts.get("connect"),
                                        sock_read=timeouts.get("read"))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in _AIOHTTP_SETS]
        try:
            resp = await self._pool().request(request.method, str(request.url), data=await request.aread(),
                                              headers=headers, timeout=timeout, allow_redirects=False)
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, request, connecting=True) from _cause(exc)
        return httpx.Response(resp.status, headers=[(k, v) for k, v in resp.raw_headers],
                              stream=_Body(resp, request), extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx.AsyncByteStream):
    def __init__(self, resp: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._resp, self._request, self._ended = resp, request, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_chunked(CHUNK):
                yield chunk
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, self._request, connecting=False) from _cause(exc)
        self._ended = True

    async def aclose(self) -> None:
        if self._ended:
            self._resp.release()  # read to its end: the connection goes back to the pool
        else:
            self._resp.close()  # what was not read is never read


def _cause(exc: aiohttp.ClientError) -> BaseException:
    """The OS's or TLS library's error under aiohttp's wrapper (which can pose as an ssl error without its
    attributes), for `client.connection_problem`."""
    return exc.__cause__ or exc


def _as_httpx(exc: aiohttp.ClientError, request: httpx.Request, *, connecting: bool) -> httpx.TransportError:
    # the parser's message quotes the bytes it choked on (a header line, the status line): the answer's text, which
    # may hold a personnummer, never goes into a message that is logged
    message = "the answer is not valid HTTP/1.1" if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        aiohttp.ClientResponseError)):
        return httpx.RemoteProtocolError(message, request=request)
    if connecting and not isinstance(exc, aiohttp.ClientOSError):
        return httpx.ConnectError(message, request=request)
    return httpx.ReadError(message, request=request)
