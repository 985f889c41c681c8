"""The RIVTA client's HTTP transport: httpx's own (httpcore: HTTP/1.1, TLS, keep-alive), one connection pool per
origin (scheme, host, port).

Why not one pool for all: httpcore's pool walks every connection it holds, asking each whether it has expired
(a socket poll per connection), every time a request is queued or a response closed. An overview asks 10
producers for 8 contracts at once: 80 connections, so 80 x 80 polls twice per call. Measured with
bench/fanout.py (py-spy): 60 % of the consumer's CPU, 400 ms per overview. With a pool per producer the walk is
over that producer's 8 connections.

`limits` apply to each origin: at most `max_connections` to one producer, so one that hangs cannot take the
connections the others need.
"""

from __future__ import annotations

import ssl

import httpx


class PoolPerOrigin(httpx.AsyncBaseTransport):
    def __init__(self, *, verify: ssl.SSLContext | bool = True, limits: httpx.Limits = httpx.Limits()) -> None:
        self._verify, self._limits = verify, limits
        self._pools: dict[tuple[bytes, bytes, int | None], httpx.AsyncHTTPTransport] = {}

    def _pool(self, url: httpx.URL) -> httpx.AsyncHTTPTransport:
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits,
                                                               trust_env=False)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
