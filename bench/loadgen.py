"""A keep-alive HTTP/1.1 load generator over mutual TLS: several processes, each an event loop (uvloop)
driving raw asyncio protocols, so the client is not the bottleneck.

Why not a packaged tool: wrk (Debian 4.1) has no client-certificate option; h2load and hey have none
either; ab has `-E` for a client certificate but speaks HTTP/1.0, and uvicorn closes HTTP/1.0
connections after each answer, so ab would measure TLS handshakes instead of keep-alive requests;
siege takes a certificate but reports no latency percentiles. This client records every latency.

Connections open (and shake hands) before the clock starts; requests completed in the measured window
count; any status other than 200, an answer of the wrong length or a dropped connection is an error.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    cert: str
    key: str
    ca: str
    expect_length: int | None = None  # the answer's exact length when it never varies

    def request(self) -> bytes:
        head = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                f"Content-Length: {len(self.body)}", *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


@dataclass
class LoadResult:
    connections: int
    seconds: float
    completed: int
    errors: int
    latencies_ms: list[float]
    client_cpu: float = 0.0  # cores the load processes kept busy during the measured window
    window_cpu: list[float] = field(default_factory=list)  # each meter's CPU seconds during the window

    @property
    def rps(self) -> float:
        return self.completed / self.seconds

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class _Conn(asyncio.Protocol):
    def __init__(self, request: bytes, expect_length: int | None, window: tuple[float, float], out: dict) -> None:
        self.request, self.expect_length, self.window, self.out = request, expect_length, window, out
        self.buf = bytearray()
        self.need: int | None = None  # total bytes (head + body) of the answer being read
        self.status = 0
        self.body_len = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                self.status = int(head[9:12])
                at = head.find(b"content-length:")
                length = 0
                if at >= 0:
                    eol = head.find(b"\r\n", at)
                    length = int(head[at + 15:eol if eol >= 0 else len(head)])
                self.body_len = length
                self.need = end + 4 + length
            if len(self.buf) < self.need:
                return
            del self.buf[:self.need]
            self.need = None
            self._done()

    def _done(self) -> None:
        now = time.perf_counter()
        start, stop = self.window
        ok = self.status == 200 and (self.expect_length is None or self.body_len == self.expect_length)
        if start <= now <= stop:
            if ok:
                self.out["lat"].append((now - self.sent_at) * 1000)
            else:
                self.out["errors"] += 1
        if now < stop:
            self.send()
        else:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if time.perf_counter() < self.window[1]:
            self.out["errors"] += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def _drive(target: Target, n: int, start_at: float, seconds: float, warmup: float) -> dict:
    ctx = ssl.create_default_context(cafile=target.ca)
    ctx.load_cert_chain(target.cert, target.key)
    out: dict = {"lat": [], "errors": 0}
    loop = asyncio.get_running_loop()
    window = (start_at + warmup, start_at + warmup + seconds)
    req = target.request()
    conns: list[_Conn] = []
    for _ in range(n):  # shake hands before the clock starts
        try:
            _, proto = await loop.create_connection(
                lambda: _Conn(req, target.expect_length, window, out), target.host, target.port,
                ssl=ctx, server_hostname=target.host)
            conns.append(proto)
        except OSError:
            out["errors"] += 1
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    for c in conns:
        c.send()
    try:
        await asyncio.wait_for(asyncio.gather(*(c.closed for c in conns)), timeout=window[1] - time.perf_counter() + 30)
    except TimeoutError:
        out["errors"] += sum(1 for c in conns if not c.closed.done())
    return out


def _worker(target: Target, n: int, start_at: float, seconds: float, warmup: float, q) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    q.put(asyncio.run(_drive(target, n, start_at, seconds, warmup)))


def run(target: Target, connections: int, seconds: float, warmup: float = 1.0, processes: int = 2,
        meters: tuple[Callable[[], float], ...] = ()) -> LoadResult:
    """Drive `connections` keep-alive connections for `seconds` (after `warmup`) from `processes` processes.
    perf_counter is CLOCK_MONOTONIC on Linux, shared by the processes. CPU is read at the window's start and end
    (the load processes' own, and each of `meters`, a callable giving CPU seconds so far): the handshakes before
    it and the warm-up are not in the figures."""
    processes = max(1, min(processes, connections))
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start_at = time.perf_counter() + 1.0 + connections * 0.01  # time to shake hands first
    shares = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    procs = [ctx.Process(target=_worker, args=(target, n, start_at, seconds, warmup, q)) for n in shares]
    for p in procs:
        p.start()
    load = [psutil.Process(p.pid) for p in procs]

    def cpu_at(moment: float) -> list[float]:
        time.sleep(max(0.0, moment - time.perf_counter()))
        return [sum(_cpu(p) for p in load), *(meter() for meter in meters)]

    first = cpu_at(start_at + warmup)
    last = cpu_at(start_at + warmup + seconds)
    parts = [q.get(timeout=start_at - time.perf_counter() + warmup + seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    lat = [x for part in parts for x in part["lat"]]
    used = [b - a for a, b in zip(first, last, strict=True)]
    return LoadResult(connections, seconds, len(lat), sum(part["errors"] for part in parts), lat,
                      client_cpu=used[0] / seconds, window_cpu=used[1:])


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of a load process so far; one that ended early (its errors are counted) reads 0."""
    try:
        return float(sum(process.cpu_times()[:2]))
    except psutil.NoSuchProcess:
        return 0.0
